"""What a RouteActor tells the rest of the system about its trips (portfolio, journal, metrics, risk facts),
and its statistics: functions over the actor, kept apart from the actor's event and order flow."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..core.risk_feed import TripOpened
from ..core.risk_sequencer import RiskFact, risk_facts
from ..core.route_state import S_POS_DIR
from ..infra.journal import pnl_snapshot_record

if TYPE_CHECKING:
    from .route import RouteActor


async def report_trips(r: RouteActor) -> list[RiskFact]:
    """Tell the portfolio about the trips closed since the last call; returns the trips opened and closed,
    for risk (core.risk_feed reads them, as the backtest's driver does; risk books them in market time)."""
    s = r.state
    facts = r.feed.new_facts(s)
    for fact in facts:
        if isinstance(fact, TripOpened):
            continue
        trip, pnl = fact.trip, fact.pnl
        r.net_krw += pnl.net_krw
        r.wins += pnl.net_krw > 0
        n_closed = len(r.feed.reported_closes)
        if r.journal is not None:  # keyed by the trip's close time in market time: replays map onto it
            r.journal.submit(pnl_snapshot_record(
                r.run_id, r.route, fact.ts_ns,
                {"trip": trip, "gross_krw": pnl.gross_krw, "fees_krw": pnl.fees_krw,
                 "slippage_krw": pnl.slippage_krw, "net_krw": pnl.net_krw, "route_net_krw": r.net_krw,
                 "round_trips": n_closed, "wins": r.wins}))
        if r.metrics is not None:
            hours = max(r.last_ts - r.first_ts, 1) / 3.6e12
            r.metrics.route_stats.remote(r.route, float(r.net_krw), n_closed, r.wins, int(s.si[S_POS_DIR] != 0),
                                         hours)
            r.metrics.latencies.remote(r.latencies_s.since(r.latencies_pushed))
            r.latencies_pushed = r.latencies_s.total
        if r.portfolio is not None and not r.portfolio_waits:  # live: risk has the fact already
            r._track(r.portfolio.on_trip_closed.remote(r.route, pnl.gross_krw, pnl.fees_krw, pnl.slippage_krw,
                                                       pnl.net_krw, fact.ts_ns, trip=trip))
        elif r.portfolio is not None:
            # awaited: the kill switch must see this trip before the route decides anything later
            await r.portfolio.on_trip_closed.remote(r.route, pnl.gross_krw, pnl.fees_krw, pnl.slippage_krw,
                                                    pnl.net_krw, fact.ts_ns, trip=trip)
    return risk_facts(facts)


def route_stats(r: RouteActor) -> dict[str, Any]:
    """The route's counters for the run's report (paper.json, drills, soak)."""
    import ray

    statuses: dict[str, int] = dict(r.order_counts)
    for o in r.orders.values():
        statuses[o.status.name] = statuses.get(o.status.name, 0) + 1
    return {"route": r.route, "node_id": ray.get_runtime_context().get_node_id(),
            "events_in": r.events_in, "latencies_s": list(r.latencies_s),
            "orders": r.n_issued, "order_status": statuses,
            "client_ids_unique": len(set(r.issued)) == len(r.issued),
            "unhedged_ns_total": r.unhedged_ns_total, "max_unhedged_krw": format(r.max_unhedged_krw, "f"),
            "risk_rejections": list(r.risk_rejections), "flatten_requests": r.flatten_requests,
            "holds": dict(r.holds), "hold_rejections": r.hold_rejections,
            "trade_fsm": r.trade_book.stats(),
            "recovery": {"restores": r.restores, "recovered_orders": r.recovered_orders,
                         "resent_orders": r.resent_orders, "duplicate_messages": r.inbox.duplicates,
                         "restore_sources": r.restore_sources,
                         "snapshot_fallbacks_total": r.snap_fallbacks_before + (
                             r.snaps.fallbacks if r.snaps is not None else 0),
                         "snapshots": r.snaps.stats() if r.snaps is not None else None}}
