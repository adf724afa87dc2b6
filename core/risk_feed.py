"""What a route tells the RiskCoordinator, read off its kernel state: one implementation for every mode.

The backtest's risk driver (:mod:`risk_replay`) and the paper/live route actor both turn a route's kernel
arrays into the same facts -- a candidate's leg notionals, a trip's opened legs, a closed trip's PnL -- with
the functions here, and apply them to :class:`risk.RiskCoordinator` in the same order (equity, then the closed
trip), so a verdict depends only on market time, never on which mode asked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np

from .accounting import TripPnl, fx_to_dec, trip_pnl
from .config import EngineConfig
from .domain import Venue
from .ledger import Fill, units_to_dec
from .replay import fill_at
from .route_state import (
    F_FX,
    FI_ACTION,
    FI_TRIP,
    L_ACTIVE,
    L_DONE,
    L_DUE,
    S_CAND_QTY,
    S_NF,
    S_NTR,
    S_PEND,
    TI_TS1,
    TI_TS3,
    RouteState,
)


def candidate_notionals(state: RouteState) -> dict[Venue, Decimal]:
    """KRW value of each leg of the open the kernel is asking about, at the mids its decision saw."""
    qty = units_to_dec(int(state.si[S_CAND_QTY]))
    mids = state.quotes[:, 0]
    fx = Decimal(str(round(float(state.sf[F_FX]), 4)))
    return {Venue.UPBIT: qty * Decimal(str(mids[0])), Venue.BINANCE: qty * Decimal(str(mids[1])) * fx}


@dataclass(frozen=True, slots=True)
class TripOpened:
    route: str
    trip: int
    ts_ns: int  # the entry fill's market time
    notionals: dict[Venue, Decimal]


@dataclass(frozen=True, slots=True)
class TripClosed:
    route: str
    trip: int
    ts_ns: int  # the exit fill's market time
    pnl: TripPnl
    fills: tuple[Fill, ...]


Fact = TripOpened | TripClosed


def _trip_fx(state: RouteState, trip: int, col: int) -> Decimal:
    """The FX the kernel recorded for the trip (4 = entry, 5 = exit), else the current rate."""
    x = float(state.trips_f[trip, col])
    return fx_to_dec(x) if x > 0 else fx_to_dec(float(state.sf[F_FX]))


def closed_trip_pnl(fills: tuple[Fill, ...], fx: Decimal) -> TripPnl:
    """A closed trip's PnL as risk books it. Units it left on a venue (an unwind that expired, dust under a
    venue minimum, a position left as dust) are valued at the trip's last decision mid on that venue: a
    price of the trip's own time, the same in every mode. Valued at zero they were booked as lost: a 10M KRW
    leg left by a venue outage read as a 10M loss and tripped the drawdown kill switch (the summary, which
    marks them at the data's end, showed -1.6M for that trip)."""
    marks = [Decimal(0), Decimal(0)]
    for f in fills:  # in fill order: the last one's decision mid
        marks[0 if f.venue is Venue.UPBIT else 1] = f.ref_price
    return trip_pnl(fills, fx, (marks[0], marks[1]))


@dataclass
class RiskFeed:
    """Reads a route's newly opened and closed trips, each once (a restored route keeps ``reported_*``)."""

    route: str
    cfg: EngineConfig
    reported_opens: int = 0
    reported_closes: set[int] = field(default_factory=set)

    def new_facts(self, state: RouteState, up_to_ns: int | None = None) -> list[Fact]:
        """Facts not reported yet, in trip order (a trip's open before its close); ``up_to_ns``: only those
        at or before that market time (the backtest driver books every route's facts in time order)."""
        out: list[Fact] = []
        nf = int(state.si[S_NF])
        for trip in range(int(state.si[S_NTR])):
            ts1, ts3 = int(state.trips_i[trip, TI_TS1]), int(state.trips_i[trip, TI_TS3])
            if ts1 >= 0 and trip >= self.reported_opens and (up_to_ns is None or ts1 <= up_to_ns):
                self.reported_opens = trip + 1
                rows = np.flatnonzero((state.fills[:nf, FI_TRIP] == trip) & (state.fills[:nf, FI_ACTION] == 0))
                fx = _trip_fx(state, trip, 4)
                notionals: dict[Venue, Decimal] = {}
                for r in rows:
                    f = fill_at(state, int(r), self.cfg)
                    krw = f.notional if f.venue is Venue.UPBIT else f.notional * fx
                    notionals[f.venue] = notionals.get(f.venue, Decimal(0)) + krw
                if notionals:
                    out.append(TripOpened(self.route, trip, ts1, notionals))
            if ts3 >= 0 and trip < self.reported_opens and trip not in self.reported_closes and (
                    up_to_ns is None or ts3 <= up_to_ns):
                self.reported_closes.add(trip)
                rows = np.flatnonzero(state.fills[:nf, FI_TRIP] == trip)
                fills = tuple(fill_at(state, int(r), self.cfg) for r in rows)
                out.append(TripClosed(self.route, trip, ts3, closed_trip_pnl(fills, _trip_fx(state, trip, 5)), fills))
            if ts1 < 0 or (up_to_ns is not None and ts1 > up_to_ns):
                break  # trips open in order: nothing later is due yet
        return out


NEVER_NS = 2**63 - 1  # a finished route has reported everything


def facts_done_through(state: RouteState, processed_until_ns: int, final: bool) -> int:
    """How far in market time a route has reported everything, once it has processed every event before
    ``processed_until_ns``: a leg still waiting for the market (due at d, filled by the first event after
    d) may yet open or close a trip at d, so the route is done only up to just before it."""
    if final:
        return NEVER_NS
    done = processed_until_ns - 1
    if state.si[S_PEND]:
        for slot in range(state.legs.shape[0]):
            if state.legs[slot, L_ACTIVE] and not state.legs[slot, L_DONE]:
                done = min(done, int(state.legs[slot, L_DUE]) - 1)
    return done
