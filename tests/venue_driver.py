"""The paper runtime's loop without Ray: the kernel in external mode, each leg filled by a ``core.PaperVenue``.

It does what ``actors.route.RouteActor`` does with its venue actors (every open allowed, as with ``--no-risk``),
in one process, so tests can check on any market that the simulated venues accept every order the kernel sends
and that the fills equal the backtest's (``core.replay.run_route``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from arbitrage_lite.core.config import EngineConfig
from arbitrage_lite.core.domain import Venue
from arbitrage_lite.core.driver import kernel_turns
from arbitrage_lite.core.events import DECISION_KINDS, EventBatch
from arbitrage_lite.core.kernel import N_COUNTERS, resolve_candidate
from arbitrage_lite.core.legs import settled_legs
from arbitrage_lite.core.paper_venue import NO_MORE_EVENTS, ExecutionReport, PaperVenue, VenueOrder
from arbitrage_lite.core.replay import RouteResult, build_result, inject_report, kernel_params
from arbitrage_lite.core.route_state import RouteState
from arbitrage_lite.core.rules import InstrumentRules, upbit_krw_rules


@dataclass(frozen=True)
class VenueRun:
    result: RouteResult
    orders: tuple[tuple[int, VenueOrder, ExecutionReport], ...]  # (venue, order, the venue's report)


def run_with_venues(route: str, events: EventBatch, cfg: EngineConfig, binance: InstrumentRules) -> VenueRun:
    params = kernel_params(cfg, binance)
    state = RouteState.new(N_COUNTERS, series_hint=int(np.isin(events.kind, DECISION_KINDS).sum()) + 16)
    costs = (cfg.costs.upbit, cfg.costs.binance)
    venues = (PaperVenue(Venue.UPBIT, costs[0].taker_fee), PaperVenue(Venue.BINANCE, costs[1].taker_fee))
    symbols = (f"{route}-KRW", f"{route}-USDT")
    for v, rules in ((0, upbit_krw_rules()), (1, binance)):
        venues[v].list_symbol(symbols[v], rules, costs[v].half_spread_bps, costs[v].impact_bps_per_m_quote,
                              binance.tick_units)
        venues[v].on_events(symbols[v], NO_MORE_EVENTS, events)
    orders: list[tuple[int, VenueOrder, ExecutionReport]] = []
    for turn in kernel_turns(state, events, True, params):  # the one driver loop (paper, live, replay-check)
        if turn.needs_risk:
            resolve_candidate(state.si, state.sf, state.legs, state.counters, state.trips_i, state.trips_f,
                              state.quotes, params, True)
        elif turn.needs_fills:
            for leg in settled_legs(state.legs):  # the legs whose outcome the kernel knows (core.book.leg_outcome)
                order = VenueOrder(f"{route}-{len(orders)}", symbols[leg.venue], leg.side, leg.qty_units, leg.due_ns,
                                   leg.deadline_ns)
                report = venues[leg.venue].fill(order)
                orders.append((leg.venue, order, report))
                inject_report(state, params, leg.slot, report.fills)
    market_ts = events.ts[events.venue < 2]
    return VenueRun(build_result(route, state, cfg, int(market_ts[0]), int(market_ts[-1])), tuple(orders))
