"""The kernel's leg slots read by name: the drivers (route actor, replay-check, the tests' venue driver) ask
which legs are out and which have a known outcome without indexing the raw array by position.

Slots 0/1 are the Upbit/Binance legs of an action, 2/3 their unwinds (hedge policy); see core.route_state.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .domain import Side
from .route_state import L_ACTIVE, L_DEADLINE, L_DONE, L_DUE, L_QTY, L_READY, L_SIDE, L_VENUE

N_SLOTS = 4


@dataclass(frozen=True, slots=True)
class Leg:
    slot: int
    venue: int  # 0 Upbit, 1 Binance (core.domain.Venue)
    side: Side
    qty_units: int
    due_ns: int  # it fills only against a quote stamped in [due, deadline]
    deadline_ns: int
    ready: int  # 0 outcome not known yet, 1 fill, 2 expired (core.book.leg_outcome)

    @property
    def is_unwind(self) -> bool:
        return self.slot >= 2


def _leg(legs: np.ndarray, slot: int) -> Leg:
    row = legs[slot]
    return Leg(slot, int(row[L_VENUE]), Side(int(row[L_SIDE])), int(row[L_QTY]), int(row[L_DUE]),
               int(row[L_DEADLINE]), int(row[L_READY]))


def out_legs(legs: np.ndarray) -> list[Leg]:
    """Legs of the current action (and its unwinds) not yet settled: to send, or waiting for their outcome."""
    return [_leg(legs, s) for s in range(N_SLOTS) if legs[s, L_ACTIVE] and not legs[s, L_DONE]]


def settled_legs(legs: np.ndarray) -> list[Leg]:
    """Legs out whose outcome the kernel knows (a fill against a quote, or an expiry): their answers are due."""
    return [leg for leg in out_legs(legs) if leg.ready]
