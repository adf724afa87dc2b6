"""A route's decisions read off its kernel state: intents (legs sent), risk verdicts, fills, kill-switch flattens.

Live and the replay check both call :meth:`DecisionObserver.observe` at the same points of the same driver
loop (after every ``route_step`` return and after every verdict), so two runs that took the same decisions
after the same events write the same records. Each record carries where in the route's event stream it was
taken: ``chunk`` (the n-th event batch the kernel ran, as the live route cut it) and ``offset`` (events of that
chunk applied before it) -- a position that stays put when an earlier chunk of a recording lost rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .kernel import C_EVENTS, C_PASSED_RISK, C_REJ_RISK
from .route_state import (
    F_CAND_PREM,
    F_PPREM,
    F_PREF0,
    FI_ACTION,
    FI_PX,
    FI_QTY,
    FI_SIDE,
    FI_TRIP,
    FI_TS_DEC,
    FI_TS_FILL,
    FI_VENUE,
    L_ACTIVE,
    L_DONE,
    L_DUE,
    L_QTY,
    L_SIDE,
    L_VENUE,
    S_CAND_DIR,
    S_CAND_QTY,
    S_CAND_TS,
    S_FLATTEN,
    S_NF,
    S_PACT,
    S_PDEC,
    S_PTRIP,
    RouteState,
)

ACTIONS = ("open", "close", "unwind")
Record = dict[str, Any]


def leg_key(rec: Record) -> tuple[int, str, int, int]:
    """Which leg a fill or intent record belongs to: (trip, action, venue, decision time)."""
    return int(rec["trip"]), str(rec["action"]), int(rec["venue"]), int(rec["ts"])


@dataclass
class DecisionObserver:
    """Diffs a kernel state against what it has seen; one per route and run."""

    chunk: int = -1
    chunk_start: int = 0  # the kernel's event count when the current chunk began
    seen_legs: dict[int, tuple[int, ...]] = field(default_factory=dict)
    seen_fills: int = 0
    passed: int = 0
    rejected: int = 0
    intents: int = 0
    step_at: tuple[int, int] = (-1, 0)  # where the kernel's next step starts (the last look's position)
    flatten_on: bool = False

    def begin_chunk(self, number: int, state: RouteState) -> None:
        self.chunk, self.chunk_start = number, int(state.counters[C_EVENTS])
        self.step_at = (number, 0)

    def position(self, state: RouteState) -> tuple[int, int]:
        return self.chunk, int(state.counters[C_EVENTS]) - self.chunk_start

    def observe(self, state: RouteState, rejections: list[str]) -> list[Record]:
        """New verdicts, fills and intents since the last call, in that order (a verdict precedes its legs;
        fills come in before the decisions they allow). ``rejections``: the risk triggers so far, in order."""
        si, sf, legs = state.si, state.sf, state.legs
        pos = self.position(state)
        at = {"chunk": pos[0], "offset": pos[1]}
        out: list[Record] = []
        if si[S_FLATTEN] and not self.flatten_on:  # the kill switch (set between looks): the step from here saw it
            out.append({"chunk": self.step_at[0], "offset": self.step_at[1], "kind": "flatten"})
        self.flatten_on = bool(si[S_FLATTEN])
        self.step_at = pos
        passed, rejected = int(state.counters[C_PASSED_RISK]), int(state.counters[C_REJ_RISK])
        # observed right after every verdict, so at most one is new here
        for allowed in [True] * (passed - self.passed) + [False] * (rejected - self.rejected):
            n = self.passed + self.rejected
            self.passed += allowed
            self.rejected += not allowed
            trigger = "" if allowed else (rejections[self.rejected - 1] if len(rejections) >= self.rejected else "")
            out.append(at | {"kind": "verdict", "n": n, "allowed": allowed, "trigger": trigger,
                             "ts": int(si[S_CAND_TS]), "direction": int(si[S_CAND_DIR]),
                             "qty": int(si[S_CAND_QTY]), "premium_bps": _num(float(sf[F_CAND_PREM]))})
        nf = int(si[S_NF])
        for row in state.fills[self.seen_fills:nf]:
            out.append(at | {"kind": "fill", "trip": int(row[FI_TRIP]), "action": ACTIONS[int(row[FI_ACTION])],
                             "venue": int(row[FI_VENUE]), "side": int(row[FI_SIDE]), "px": int(row[FI_PX]),
                             "qty": int(row[FI_QTY]), "ts": int(row[FI_TS_DEC]), "ts_fill": int(row[FI_TS_FILL])})
        self.seen_fills = nf
        for slot in range(4):
            if not legs[slot, L_ACTIVE] or legs[slot, L_DONE]:
                continue
            key = (int(si[S_PTRIP]), int(si[S_PDEC]), slot, int(legs[slot, L_DUE]), int(legs[slot, L_QTY]))
            if self.seen_legs.get(slot) == key:
                continue
            self.seen_legs[slot] = key
            v = int(legs[slot, L_VENUE])
            out.append(at | {"kind": "intent", "n": self.intents, "trip": key[0], "ts": key[1], "slot": slot,
                             "action": ACTIONS[2] if slot >= 2 else ACTIONS[int(si[S_PACT])], "venue": v,
                             "side": int(legs[slot, L_SIDE]), "qty": key[4], "due": key[3],
                             "premium_bps": _num(float(sf[F_PPREM])), "ref_px": _num(float(sf[F_PREF0 + v]))})
            self.intents += 1
        return out


def _num(x: float) -> float | None:
    """JSON has no NaN: an undefined premium (no FX yet) is null."""
    return x if x == x else None
