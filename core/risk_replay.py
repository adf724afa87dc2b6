"""The backtest under the one risk model: every route's kernel, one RiskCoordinator, in market-time order.

Paper and live ask the RiskCoordinator actor before each open; the backtest asks the very same
:class:`risk.RiskCoordinator` here. Each route's kernel runs until it has an open to ask about
(``ST_NEED_RISK``); the route whose question is earliest in market time is answered first, after every
route's trips opened or closed up to that time have been booked (equity first, then the closed trip, as the
paper portfolio and route do). A route's state up to its question never depends on risk, so answering
questions in time order is exact for every tier: global (kill switch, daily loss, portfolio breaker),
venue exposure, route and symbol.

One limit: a kill switch cannot flatten a position of a route that has already run past the halt (the
kernel does not rewind). Opens stop at the halt; positions open then exit by their own rules, listed in
``flatten_late``.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal

import numpy as np

from .config import P_ASK_RISK, EngineConfig
from .driver import StreamCursor
from .events import DECISION_KINDS, EventBatch
from .kernel import resolve_candidate
from .replay import RouteResult, build_result, kernel_params, new_state, step
from .risk import RiskCoordinator
from .risk_feed import RiskFeed, candidate_notionals
from .risk_sequencer import RiskSequencer, risk_facts
from .route_state import S_CAND_TS, S_FLATTEN, S_POS_DIR, ST_NEED_RISK, RouteState
from .rules import InstrumentRules


@dataclass(frozen=True)
class RouteInput:
    name: str
    events: EventBatch
    binance: InstrumentRules
    cfg: EngineConfig  # the route's own config (its cost calibration)
    # a streamed route: its events come in these chunks (``events`` is not replayed) and ``span`` gives its
    # first and last market time once they are read (bounded memory, same result: scenarios.stream_replay)
    chunks: Iterator[EventBatch] | None = None
    span: Callable[[], tuple[int, int]] | None = None


@dataclass
class _Route:
    inp: RouteInput
    state: RouteState
    params: np.ndarray
    feed: RiskFeed
    pos: int = 0
    cursor: StreamCursor | None = None


@dataclass(frozen=True)
class RiskReplay:
    results: list[RouteResult]
    risk: dict[str, object]  # RiskCoordinator.report() plus the driver's counts


def _advance(r: _Route) -> int | None:
    """Run the route to its next question; its market time, or None when its stream is done."""
    if r.cursor is not None:
        status = r.cursor.run(r.state, r.params)
    else:
        status, r.pos = step(r.state, r.inp.events, r.pos, len(r.inp.events), True, True, r.params)
    return int(r.state.si[S_CAND_TS]) if status == ST_NEED_RISK else None


def _span(inp: RouteInput) -> tuple[int, int]:
    if inp.span is not None:
        return inp.span()
    events = inp.events
    market = events.ts[events.venue < 2]
    ts = market if market.size else events.ts
    return int(ts[0]), int(ts[-1])


def replay_with_risk(routes: Sequence[RouteInput], risk: RiskCoordinator, capital_krw: Decimal,
                     on_done: Callable[[str], None] | None = None) -> RiskReplay:
    """Replay ``routes`` together under ``risk``. Deterministic: ties in market time go in route order."""
    runs: list[_Route] = []
    flatten_late: set[str] = set()
    for inp in routes:
        cursor = StreamCursor(inp.chunks) if inp.chunks is not None else None
        if (cursor.cur is None) if cursor is not None else len(inp.events) == 0:
            raise ValueError(f"route {inp.name}: no events to replay")
        params = kernel_params(inp.cfg, inp.binance)
        params[P_ASK_RISK] = 1.0
        hint = 1024 if cursor is not None else int(np.isin(inp.events.kind, DECISION_KINDS).sum()) + 16
        runs.append(_Route(inp, new_state(inp.cfg, series_hint=hint), params, RiskFeed(inp.name, inp.cfg),
                           cursor=cursor))
    names = {r.inp.name: k for k, r in enumerate(runs)}
    seq = RiskSequencer(risk, tuple(names), capital_krw)
    asked: list[tuple[int, int]] = []

    def advance(k: int) -> None:
        r = runs[k]
        t = _advance(r)
        facts = risk_facts(r.feed.new_facts(r.state))
        if t is None:
            seq.finish(r.inp.name, facts)
            if on_done is not None:
                on_done(r.inp.name)
        else:
            seq.ask(r.inp.name, t, facts)
            heapq.heappush(asked, (t, k))

    for k in range(len(runs)):
        advance(k)
    while asked:
        _, k = heapq.heappop(asked)
        r = runs[k]
        if not seq.ready(r.inp.name):  # cannot happen: the earliest question has nothing left to wait for
            raise RuntimeError(f"risk question of {r.inp.name} waits for {seq.blocking(r.inp.name)}")
        verdict = seq.answer(r.inp.name, candidate_notionals(r.state))
        for name in sorted(seq.flatten):  # the kill switch: flatten what is still open
            held = runs[names[name]]
            if held.state.si[S_POS_DIR] != 0:
                held.state.si[S_FLATTEN] = 1
            else:
                flatten_late.add(name)
        seq.flatten.clear()
        s = r.state
        resolve_candidate(s.si, s.sf, s.legs, s.counters, s.trips_i, s.trips_f, s.quotes, r.params, verdict.allowed)
        advance(k)
    seq.book()
    results = [build_result(r.inp.name, r.state, r.inp.cfg, *_span(r.inp)) for r in runs]
    report: dict[str, object] = {**risk.report(), "flatten_late": sorted(flatten_late)}
    return RiskReplay(results, report)
