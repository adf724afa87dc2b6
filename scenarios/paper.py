"""Paper trading over replayed real data: the actor system end to end, with backtest parity.

Feeds (Upbit, Binance, FX) replay the store in common time windows; the FX aggregator passes its rate on;
one RouteActor per route runs the kernel in external mode; PaperVenueActors fill legs with the core fill
model; the RiskCoordinator rules on every open; the Portfolio keeps the ledger of record; alerts go to the
AlertActor; KPIs to the Prometheus exporter. Outputs use the backtest's schema.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..actors.recovery import RESTARTABLE, RecoveryConfig
from ..core.book import MAX_LEVELS
from ..core.config import EngineConfig
from ..core.domain import Venue
from ..core.events import VENUE_BINANCE, VENUE_FX, VENUE_STATUS, VENUE_UPBIT, EventBatch
from ..core.kernel import MAX_FX_AGE_NS
from ..core.replay import RouteResult
from ..core.risk import RiskLimits
from ..core.rules import upbit_krw_rules
from .backtest import RouteRun, capital_krw, risk_summary, summarize
from .market_data import RouteData, load_route
from .outputs import write_outputs
from .universe import universe_of

FEED_LAG = 8  # windows a feed may run ahead of its slowest subscriber
SOURCE_CODES = {"fx": VENUE_FX, "upbit": VENUE_UPBIT, "binance": VENUE_BINANCE}


@dataclass(frozen=True)
class PaperRequest:
    store: Path
    routes: str
    out: Path
    config: EngineConfig = field(default_factory=EngineConfig)
    # "config": the config's risk section; None: the coordinator allows every open; or explicit limits
    risk: RiskLimits | str | None = "config"
    start_ns: int | None = None
    end_ns: int | None = None
    speed: float | None = None  # None = as fast as possible; N = N x market time
    run_id: str = "paper1"
    metrics_port: int | None = None  # Prometheus exporter on 127.0.0.1 (0 = any free port)
    exporter: Any = None  # infra.metrics.Exporter already serving (the CLI binds it before Ray starts)
    dashboard: bool = False  # the Ray dashboard
    dashboard_port: int | None = None  # the run's web dashboard (infra.dashboard) on 127.0.0.1 (0 = any free port)
    dashboard_server: Any = None  # infra.dashboard.DashboardServer already serving (the CLI, tests)
    window_events: int = 20_000
    spread_nodes: bool = False  # place route actors with the SPREAD strategy (multi-node clusters)
    window_ns: int | None = None  # fixed feed windows of this much market time (real time: ~100 ms), else by events
    route_hosts: int = 0  # 0: one actor (process) per route; N: the routes run co-located in N RouteHostActors
    risk_in_host: bool = False  # with route_hosts=1: the RiskCoordinator runs in that host (a verdict is a call)
    recovery: RecoveryConfig | None = None  # snapshots + restartable named actors (supervision, drills, resume)
    supervise: bool = False  # with recovery: a SupervisorActor health-checks every actor (restart intensity, halt)
    hung_after_s: float = 5.0  # the supervisor kills (to restart) a child that has not answered for this long
    chaos: Any = None  # scenarios.chaos.ChaosPlan: kill actors during the run (drills)
    journal_dir: str | None = None  # journal intents (before sending), fills and verdicts; overflow file here
    journal_dsn: str | None = None  # PostgreSQL for the journal (None: SQLite under journal_dir)
    route_node: str | None = None  # Ray node id the routes prefer (soft: they restart elsewhere if it is lost)
    home_node: str | None = None  # Ray node id every other actor prefers (node-loss drills keep them off the lost one)
    # a stress scenario's transform of each loaded route (scenarios.stress.apply_route: the backtest applies the
    # same function), with ``config`` already under the scenario's costs
    transform: Callable[[RouteData], RouteData] | None = None

    def risk_limits(self) -> RiskLimits | None:
        if isinstance(self.risk, str):
            if self.risk != "config":
                raise ValueError(f"risk must be 'config', None or RiskLimits, got {self.risk!r}")
            return self.config.risk
        return self.risk


def _split(events: EventBatch) -> dict[str, EventBatch]:
    out = {}
    for name, code in SOURCE_CODES.items():
        m = (events.venue == code) | ((events.venue == VENUE_STATUS) & (code == VENUE_UPBIT))  # status: upbit feed
        out[name] = EventBatch(events.ts[m], events.ts_venue[m], events.venue[m], events.kind[m], events.side[m],
                               events.px[m], events.qty[m])
    return out


async def _run_actors(req: PaperRequest, data: dict[str, RouteData]) -> tuple[dict[str, RouteResult],
                                                                              dict[str, Any]]:
    from ..actors.alert import AlertActor
    from ..actors.feed import FeedActor, windows
    from ..actors.fx_aggregator import FxAggregatorActor
    from ..actors.metrics import MetricsActor
    from ..actors.paper_venue import PaperVenueActor
    from ..actors.portfolio import PortfolioActor
    from ..actors.risk import RiskCoordinatorActor
    from ..actors.route import RouteActor
    from ..actors.route_host import RouteHostActor
    from ..core.replay import warm_up
    from ..infra.ray_runtime import ensure_ray

    warm_up()  # compile here once; the actors load the cache
    ray = ensure_ray(dashboard=req.dashboard)
    cfg = req.config
    rec = req.recovery

    def opts(role: str) -> dict[str, Any]:
        """Ray options of a run's actor: named and restartable when the run can recover; placed on a node when
        the run says so (soft affinity: a lost node's actors restart on another)."""
        out: dict[str, Any] = {} if rec is None else {"name": rec.actor_name(role), **RESTARTABLE}
        node = req.route_node if role.startswith("route:") else req.home_node
        if node is not None:
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            out["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node, soft=True)
        return out

    home = {k: v for k, v in opts("venue").items() if k == "scheduling_strategy"}

    if req.risk_in_host and req.route_hosts != 1:
        raise ValueError("risk_in_host needs route_hosts=1: the one RiskCoordinator must see every route")
    if req.supervise and rec is None:
        raise ValueError("supervise needs a recovery config: a supervised actor comes back from its snapshot")
    names = list(data)
    host_of = {b: f"host{j % max(req.route_hosts, 1)}" for j, b in enumerate(names)}
    route_role = {b: f"route:{host_of[b]}" if req.route_hosts > 0 else f"route:{b}" for b in names}
    journal = None
    if req.journal_dir is not None:
        from ..actors.journal import JournalActor

        jdir = Path(req.journal_dir)
        jdir.mkdir(parents=True, exist_ok=True)
        jopts = {**home, **({} if rec is None else {"name": rec.actor_name("journal")})}
        journal = ray.remote(JournalActor).options(**jopts).remote(
            str(jdir / f"{req.run_id}.overflow.jsonl"), req.journal_dsn, sqlite_path=str(jdir / "journal.sqlite3"))
        await journal.start.remote()
    alerts = ray.remote(AlertActor).options(**opts("alert")).remote(req.run_id, rec, journal, cfg.alerts.anchored())
    if journal is not None:
        journal.watch_backend.remote(alerts)  # a journal that cannot write is a P0
    limits = req.risk_limits()
    local_risk = limits if req.risk_in_host else None
    wiring = None if rec is None else {
        "risk": (rec.actor_name("route:host0") if local_risk is not None else
                 rec.actor_name("risk") if limits is not None else None),
        "routes": {b: rec.actor_name(route_role[b]) for b in names}, "alerts": rec.actor_name("alert"),
        "capital_krw": str(capital_krw(cfg) * len(data))}
    portfolio = ray.remote(PortfolioActor).options(**opts("portfolio")).remote(rec, wiring)
    risk = (ray.remote(RiskCoordinatorActor).options(**opts("risk")).remote(limits, rec)
            if limits is not None and local_risk is None else None)
    watched = req.exporter is not None or req.dashboard_server is not None
    metrics = ray.remote(MetricsActor).remote() if watched else None

    def venue_opts(v: int) -> dict[str, Any]:  # the venue is the outside world: named, never restarted
        return {**home, **({} if rec is None else {"name": rec.actor_name(f"venue:{v}")})}

    venues = {int(Venue.UPBIT): ray.remote(PaperVenueActor).options(**venue_opts(0)).remote(
                  int(Venue.UPBIT), str(cfg.costs.upbit.taker_fee)),
              int(Venue.BINANCE): ray.remote(PaperVenueActor).options(**venue_opts(1)).remote(int(Venue.BINANCE),
                                                                      str(cfg.costs.binance.taker_fee))}
    route_opts: dict[str, Any] = {"scheduling_strategy": "SPREAD"} if req.spread_nodes else {}
    routes: dict[str, Any] = {}  # route -> its actor, or the RouteHostActor running it
    hosts: list[tuple[Any, list[str]]] | None = None
    if req.route_hosts > 0:
        hosts = []
        for j, group in enumerate(names[j::req.route_hosts] for j in range(min(req.route_hosts, len(names)))):
            host = ray.remote(RouteHostActor).options(**{**route_opts, **opts(f"route:host{j}")}).remote(
                {b: (cfg.model_copy(update={"costs": data[b].costs}), data[b].binance) for b in group}, req.run_id,
                venues, risk, portfolio, alerts, metrics, local_risk, rec, f"host{j}", journal)
            hosts.append((host, group))
            routes.update(dict.fromkeys(group, host))
            if local_risk is not None:
                risk = host  # the host answers for the RiskCoordinator it runs
    for base, d in data.items():
        if hosts is None:
            rcfg = cfg.model_copy(update={"costs": d.costs})
            routes[base] = ray.remote(RouteActor).options(**{**route_opts, **opts(route_role[base])}).remote(
                base, rcfg, d.binance, req.run_id, venues, risk, portfolio, alerts, metrics, rec, journal=journal)
        levels = d.costs.book_levels or MAX_LEVELS  # the route kernel's depth (core.replay.book_levels)
        await venues[0].list_symbol.remote(f"{base}-KRW", upbit_krw_rules(), d.costs.upbit.half_spread_bps,
                                           d.costs.upbit.impact_bps_per_m_quote, d.binance.tick_units, levels)
        await venues[1].list_symbol.remote(f"{base}-USDT", d.binance, d.costs.binance.half_spread_bps,
                                           d.costs.binance.impact_bps_per_m_quote, d.binance.tick_units, levels)
    if rec is None:
        await portfolio.connect.remote(risk, routes, alerts, capital_krw(cfg) * len(data))
    if risk is not None:  # answer in market-time order, ties in route order (as the backtest's risk driver)
        await risk.configure.remote(list(data), capital_krw(cfg) * len(data), portfolio=portfolio)
    fx_agg = ray.remote(FxAggregatorActor).options(**opts("fx")).remote(MAX_FX_AGE_NS, 200.0, 1, "USDT/KRW", "store",
                                                                        routes, hosts, rec)
    split = {b: _split(d.events) for b, d in data.items()}
    all_ts = np.concatenate([d.events.ts for d in data.values()])
    if req.window_ns is not None:
        edges = np.arange(int(all_ts.min()) + req.window_ns, int(all_ts.max()) + req.window_ns + 1, req.window_ns,
                          dtype=np.int64)
    else:
        edges = windows(int(all_ts.min()), int(all_ts.max()), int(all_ts.size) // max(len(data), 1),
                        req.window_events,
                        2 * int(max(cfg.costs.upbit.latency_ms, cfg.costs.binance.latency_ms) * 1e6) + 1)
    # each feed's events put once and held here until the run ends: passed by value, Ray puts them itself and
    # may drop them once the actor is built, and a restarted feed then fails to build (seen in a 24 h soak:
    # ReferenceCountingAssertionError in FeedActor.__init__ after a chaos kill)
    feed_events = {name: ray.put({b: split[b][name] for b in data}) for name in SOURCE_CODES}
    feeds = {name: ray.remote(FeedActor).options(**opts(f"feed:{name}")).remote(
        name, feed_events[name], edges, req.speed, recovery=rec) for name in SOURCE_CODES}
    actors = [h for h in {id(h): h for h in [*routes.values(), *feeds.values(), fx_agg, risk, alerts]}.values()
              if h is not None]
    await asyncio.gather(*[h.__ray_ready__.remote() for h in actors])  # all started before market time runs
    children = {"alert": alerts, "portfolio": portfolio, "fx": fx_agg,
                **({"risk": risk} if risk is not None and local_risk is None else {}),
                **{f"feed:{n}": f for n, f in feeds.items()},
                **{route_role[b]: h for b, h in routes.items()}}
    pump = None
    if metrics is not None:
        from ..actors.metrics import relay

        await metrics.watch.remote(children, list(data))
        pump = asyncio.ensure_future(relay(metrics, req.exporter)) if req.exporter is not None else None
    board = None
    if req.dashboard_server is not None:
        from ..infra.dashboard.state import Sources, poll_state

        board = Sources(list(data), capital_krw(cfg) * len(data), portfolio, risk, alerts, metrics,
                        universe_of(req).periods)
        board_task = asyncio.ensure_future(poll_state(board, req.dashboard_server))
    supervisor = None
    if req.supervise and rec is not None:
        from ..supervision.supervisor import SupervisorActor, default_tree

        supervisor = ray.remote(SupervisorActor).options(name=rec.actor_name("supervisor"), **home).remote(
            default_tree(list(children)), children, risk, alerts, 0.05, req.hung_after_s)
        await supervisor.check_once.remote()  # every child's process known before anything can die
        supervisor.run.remote()
    start_at = time.time() + 0.2  # one clock for the three feeds: they release each window together
    lag = FEED_LAG  # a route waiting for its risk turn takes windows in without holding its feed up
    runs = [feeds["fx"].run.remote(routes, None, fx_agg, alerts, hosts=hosts, start_at=start_at, in_flight=lag),
            feeds["upbit"].run.remote(routes, venues[0], None, alerts, hosts=hosts, start_at=start_at,
                                      in_flight=lag),
            feeds["binance"].run.remote(routes, venues[1], None, alerts, hosts=hosts, start_at=start_at,
                                        in_flight=lag)]
    chaos_task = None
    if req.chaos is not None:
        from .chaos import run_chaos

        chaos_task = asyncio.ensure_future(run_chaos(req.chaos, children))
    feed_stats = await asyncio.gather(*runs)
    feeds_wall = (start_at, time.time())
    args = {b: (b,) if hosts is not None else () for b in routes}  # a host is told which of its routes
    results = dict(zip(routes, await asyncio.gather(*[routes[b].result.remote(*args[b]) for b in routes]),
                       strict=True))
    stats = await asyncio.gather(*[routes[b].stats.remote(*args[b]) for b in routes])
    extras: dict[str, Any] = {"feeds": feed_stats, "routes": stats, "feeds_wall_s": feeds_wall,
                              "venues": await asyncio.gather(*[v.stats.remote() for v in venues.values()]),
                              "alerts": await alerts.alerts.remote(),
                              "risk_decisions": len(await risk.decisions.remote()) if risk is not None else 0,
                              "risk_report": await risk.report.remote() if risk is not None else None,
                              "portfolio": await portfolio.report.remote()}
    lat = np.array([x for s in stats for x in s["latencies_s"]])
    extras["feed_to_intent_latency_ms"] = ({"p50": float(np.percentile(lat, 50) * 1e3),
                                            "p99": float(np.percentile(lat, 99) * 1e3),
                                            "max": float(lat.max() * 1e3), "intents": int(lat.size)}
                                           if lat.size else None)
    extras["ledger"] = await portfolio.all_balances.remote()
    if board is not None:
        from ..infra.dashboard.state import final_state

        board_task.cancel()
        await final_state(board, req.dashboard_server)
    if journal is not None:
        extras["journal"] = await _close_journal(journal, req.run_id, {
            "intent": sum(s["orders"] for s in stats), "fill": sum(len(r.fills) for r in results.values())})
        ray.kill(journal)
    if chaos_task is not None:
        extras["chaos"] = await chaos_task
    if supervisor is not None:
        extras["supervisor"] = await supervisor.stop.remote()
        ray.kill(supervisor)
    if metrics is not None and pump is not None:
        pump.cancel()
    if metrics is not None and req.exporter is not None:
        await metrics.stop.remote()
        req.exporter.update(await metrics.families.remote())
        extras["metrics_port"] = req.exporter.port
        extras["metrics_scrape"] = await asyncio.to_thread(req.exporter.scrape)  # what Prometheus saw at the end
    if metrics is not None:
        ray.kill(metrics)
    for name in ("feeds", "routes"):
        for s in extras[name]:
            s.pop("latencies_s", None)
    for h in [*{id(r): r for r in routes.values()}.values(), *feeds.values(), *venues.values(), fx_agg, alerts,
              portfolio]:
        ray.kill(h)
    if risk is not None and local_risk is None:  # else it was a route host, gone already
        ray.kill(risk)
    return results, extras


JOURNAL_FLUSH_S, JOURNAL_FLUSH_DOWN_S = 60.0, 10.0  # how long the end of a run waits for the journal backend


async def _close_journal(journal: Any, run_id: str, expected: dict[str, int]) -> dict[str, Any]:
    """The journal's end of a run. With its backend down (PostgreSQL not back yet) the run still ends: what is
    not written is in the overflow file, fsync'ed, for the next start on that journal directory to write; the
    report says how much (``left_in_overflow``) and which service failed (``error``)."""
    from ..infra.journal import JournalUnavailable

    state = await journal.stats.remote()
    out: dict[str, Any] = {"flushed": await journal.flush.remote(
        JOURNAL_FLUSH_S if state["backend_ok"] else JOURNAL_FLUSH_DOWN_S), "expected": expected}
    try:
        out["counts"] = await journal.counts.remote(run_id)
    except JournalUnavailable as exc:  # Ray's task error is an instance of the actor's exception class too
        out["counts"], out["error"] = None, str(getattr(exc, "cause", exc))
    out["stats"] = await journal.close.remote()
    out["left_in_overflow"] = out["stats"]["pending"]
    return out


def run_paper(req: PaperRequest) -> dict[str, object]:
    own = own_board = None
    if req.metrics_port is not None and req.exporter is None:  # served from the start, before anything is loaded
        from ..infra.metrics import start_exporter

        own = start_exporter(req.metrics_port)
        req = dataclasses.replace(req, exporter=own)
    if req.dashboard_port is not None and req.dashboard_server is None:
        from ..infra.dashboard.server import start_dashboard

        own_board = start_dashboard(req.out, req.run_id, req.dashboard_port)
        req = dataclasses.replace(req, dashboard_server=own_board)
    try:
        routes = list(universe_of(req).routes)
        data = {b: load_route(req.store, b, req.config.costs, req.start_ns, req.end_ns, universe_of(req))
                for b in routes}
        if req.transform is not None:
            data = {b: req.transform(d) for b, d in data.items()}
        results, extras = asyncio.run(_run_actors(req, data))
    finally:
        if own is not None:
            own.close()
        if own_board is not None:
            own_board.close()
    runs = [RouteRun(data[b], results[b]) for b in routes]  # zero-cost figures: per trip, no re-run
    summary = summarize(runs, req.config, mode="paper")
    summary["risk"] = risk_summary(extras.pop("risk_report"))
    summary["paper"] = json.loads(json.dumps(extras, default=str))
    write_outputs(req.out, summary, runs)
    return summary
