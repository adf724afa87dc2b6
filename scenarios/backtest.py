"""The backtest campaign: routes in parallel (Ray tasks), one portfolio, summary/trades/report on disk."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, localcontext
from pathlib import Path
from typing import Any

import numpy as np

from ..core.config import EngineConfig
from ..core.fx import split_premium_series
from ..core.ledger import EXACT
from ..core.metrics import closed_trips, figures, funnel, money, rejections
from ..core.replay import RouteResult, fill_summary, run_route
from ..core.risk import RiskCoordinator
from ..core.risk_replay import RouteInput, replay_with_risk
from ..infra.data.ship import ShippedStore, local_store, store_for_tasks
from ..infra.data.store import Store
from ..infra.data.stream_reader import DEFAULT_CHUNK_ROWS
from .market_data import RouteData, load_route, route_resolution
from .outputs import report_fields, write_outputs
from .stream_replay import STREAM_ABOVE_ROWS, StreamStats, finish_data, load_route_stream, market_rows, run_route_stream
from .universe import Universe, route_guard_summary, universe_of, universe_summary


@dataclass(frozen=True)
class BacktestRequest:
    store: Path
    routes: str
    out: Path
    config: EngineConfig = field(default_factory=EngineConfig)
    start_ns: int | None = None
    end_ns: int | None = None
    use_ray: bool = True
    progress: bool = True
    risk: bool = True  # False: no risk tiers (routes replay independently, as Ray tasks)
    # stream a book route's market data from the store in chunks (scenarios.stream_replay): None = when its
    # series hold more than STREAM_ABOVE_ROWS rows; same result either way, with or without the risk tiers.
    stream: bool | None = None
    chunk_rows: int = DEFAULT_CHUNK_ROWS
    # streamed routes' merged market events kept here (infra.data.event_cache): a repeated backtest of the same
    # store and window skips decode and merge; None: no cache
    event_cache: Path | None = None
    ship_store: str = "auto"  # Ray tasks on other nodes read a shipped copy (infra.data.ship); never: shared disk


@dataclass(frozen=True)
class RouteRun:
    data: RouteData
    real: RouteResult


def streams(req: BacktestRequest, base: str) -> bool:
    """Whether the route replays streamed: a book route, asked for or larger than STREAM_ABOVE_ROWS rows."""
    if req.stream is False or route_resolution(Store(req.store), base) != "book":
        return False
    return req.stream is True or market_rows(req.store, base) > STREAM_ABOVE_ROWS


def run_one_route(store: Path, base: str, cfg: EngineConfig, start_ns: int | None,
                  end_ns: int | None, universe: Universe | None = None, stream: bool = False,
                  chunk_rows: int = DEFAULT_CHUNK_ROWS, event_cache: Path | None = None) -> RouteRun:
    """Load and replay one route (what its trips would make without costs is attributed per trip, not re-run:
    a zero-cost replay trades differently); ``stream``: read the store in chunks, bounded memory."""
    if stream:
        sdata = load_route_stream(store, base, cfg.costs, start_ns, end_ns, universe, chunk_rows, event_cache)
        stats = StreamStats()
        assert sdata.stream is not None
        real = run_route_stream(base, sdata.stream, cfg.model_copy(update={"costs": sdata.costs}), sdata.binance,
                                stats)
        return RouteRun(finish_data(sdata, stats), real)
    data = load_route(store, base, cfg.costs, start_ns, end_ns, universe)
    real_cfg = cfg.model_copy(update={"costs": data.costs})
    return RouteRun(data, run_route(base, data.events, real_cfg, data.binance))


def _load_route_task(store: Path | ShippedStore, *args: Any) -> RouteData:
    return load_route(local_store(store), *args)


def _run_one_route_task(store: Path | ShippedStore, *args: Any) -> RouteRun:
    return run_one_route(local_store(store), *args)


def _load_routes(req: BacktestRequest, routes: Sequence[str]) -> list[RouteData]:
    """Every route's events (Parquet reads, as Ray tasks when there are several)."""
    if req.use_ray and len(routes) > 1:
        from ..infra.ray_runtime import ensure_ray

        ray = ensure_ray()
        task = ray.remote(_load_route_task)
        store = store_for_tasks(req.store, req.ship_store)
        return list(ray.get([task.remote(store, b, req.config.costs, req.start_ns, req.end_ns, universe_of(req))
                             for b in routes]))
    return [load_route(req.store, b, req.config.costs, req.start_ns, req.end_ns, universe_of(req)) for b in routes]


def _run_routes_with_risk(req: BacktestRequest, routes: Sequence[str],
                          on_done: Callable[[str], None]) -> tuple[list[RouteRun], dict[str, object]]:
    """All routes in one market-time-ordered replay under one RiskCoordinator (core.risk_replay): the risk
    tiers couple routes, so they cannot run apart. Routes that stream (``streams``) are read chunk by chunk
    as the replay reaches them, so memory stays bounded with risk too."""
    streamed = {b for b in routes if streams(req, b)}
    in_memory = [b for b in routes if b not in streamed]
    loaded = dict(zip(in_memory, _load_routes(req, in_memory), strict=True))
    datas = [loaded[b] if b in loaded else load_route_stream(req.store, b, req.config.costs, req.start_ns,
                                                             req.end_ns, universe_of(req), req.chunk_rows,
                                                             req.event_cache)
             for b in routes]
    return replay_routes(datas, req.config, on_done)


def replay_routes(datas: Sequence[RouteData], cfg: EngineConfig,
                  on_done: Callable[[str], None] | None = None) -> tuple[list[RouteRun], dict[str, object]]:
    """Loaded routes replayed together under the config's risk (the backtest, and each sweep point); a route
    loaded by ``load_route_stream`` is read from the store in chunks during the replay."""
    stats = {d.base: StreamStats() for d in datas if d.stream is not None}
    inputs = [_risk_input(d, cfg, stats.get(d.base)) for d in datas]
    replay = replay_with_risk(inputs, RiskCoordinator(cfg.risk), capital_krw(cfg) * len(datas), on_done)
    done = [finish_data(d, stats[d.base]) if d.base in stats else d for d in datas]
    return [RouteRun(d, real) for d, real in zip(done, replay.results, strict=True)], replay.risk


def _risk_input(d: RouteData, cfg: EngineConfig, stats: StreamStats | None) -> RouteInput:
    route_cfg = cfg.model_copy(update={"costs": d.costs})
    if d.stream is None or stats is None:
        return RouteInput(d.base, d.events, d.binance, route_cfg)
    return RouteInput(d.base, d.events, d.binance, route_cfg, chunks=d.stream.chunks(stats),
                      span=lambda: (stats.first_market, stats.last_market))


def _run_routes(req: BacktestRequest, routes: Sequence[str],
                on_done: Callable[[str], None]) -> list[RouteRun]:
    if req.use_ray and len(routes) > 1:
        from ..core.replay import warm_up
        from ..infra.ray_runtime import ensure_ray

        warm_up()  # compile here once; the workers load the cache
        ray = ensure_ray()
        task = ray.remote(_run_one_route_task)
        store = store_for_tasks(req.store, req.ship_store)
        refs = {task.remote(store, b, req.config, req.start_ns, req.end_ns, universe_of(req), streams(req, b),
                            req.chunk_rows, req.event_cache): b for b in routes}
        results: dict[str, RouteRun] = {}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                results[refs[ref]] = ray.get(ref)
                on_done(refs[ref])
        return [results[b] for b in routes]
    runs = []
    for b in routes:
        runs.append(run_one_route(req.store, b, req.config, req.start_ns, req.end_ns, universe_of(req),
                                  streams(req, b), req.chunk_rows, req.event_cache))
        on_done(b)
    return runs


def capital_krw(cfg: EngineConfig) -> Decimal:
    inv = cfg.inventory
    return Decimal(str(inv.upbit_krw + inv.upbit_coin_krw + inv.binance_usdt_krw + inv.binance_coin_krw))


def _exact_sum(values: Iterable[Decimal]) -> Decimal:
    with localcontext(EXACT):
        return sum(values, Decimal(0))


def _route_figures(run: RouteRun, cfg: EngineConfig) -> dict[str, object]:
    r = run.real
    trips = [t for t in r.trips if t.closed]
    open_trips = [t for t in r.trips if not t.closed]
    out = figures(trips, open_trips, capital_krw(cfg), r.first_ts, r.last_ts)
    out["resolution"] = run.data.resolution
    out["fx_source"] = run.data.fx_source
    out["binance_rules"] = run.data.binance_rules_source
    out["half_spread_bps"] = {"upbit": run.data.costs.upbit.half_spread_bps,
                              "binance": run.data.costs.binance.half_spread_bps}
    prem = r.series_premium_bps[np.isfinite(r.series_premium_bps)]
    out["premium_bps"] = ({"p5": float(np.percentile(prem, 5)), "median": float(np.median(prem)),
                           "p95": float(np.percentile(prem, 95))} if prem.size else None)
    if run.data.usd_krw is not None and prem.size:
        fx_ev = run.data.events.venue == 2
        ok = np.isfinite(r.series_premium_bps)
        tether, total = split_premium_series(r.series_ts[ok], r.series_premium_bps[ok], run.data.events.ts[fx_ev],
                                             run.data.events.px[fx_ev], *run.data.usd_krw)
        known = np.isfinite(tether)
        if known.any():
            out["premium_split_bps"] = {"coin_median": float(np.median(prem)),
                                        "tether_median": float(np.median(tether[known])),
                                        "total_vs_usd_median": float(np.median(total[known]))}
    out.update(route_guard_summary(run.data.status_periods))  # causal pair guard (scenarios.universe)
    out["funnel"] = funnel([r])
    return out


def iso(ts_ns: int) -> str:
    return str(np.datetime64(int(ts_ns), "ns").astype("datetime64[s]")) + "Z"


def summarize(runs: Sequence[RouteRun], cfg: EngineConfig, mode: str = "backtest") -> dict[str, object]:
    real = [r.real for r in runs]
    first = min(r.first_ts for r in real)
    last = max(r.last_ts for r in real)
    trips = closed_trips(real)
    open_trips = [t for r in real for t in r.trips if not t.closed]
    cap = capital_krw(cfg) * len(runs)
    head = figures(trips, open_trips, cap, first, last)
    resolutions = sorted({r.data.resolution for r in runs})
    fx_sources = sorted({r.data.fx_source for r in runs})
    summary: dict[str, object] = {
        "mode": mode,
        "routes": [r.data.base for r in runs],
        "data": {"from": iso(first), "to": iso(last), "resolution": ", ".join(resolutions),
                 "fx_source": ", ".join(fx_sources), "events": int(sum(r.data.event_count for r in runs))},
        **head,  # zero_cost_net_pnl_krw: these same trips before fees and slippage (core.metrics.cost_attribution)
        "funnel": funnel(real),
        "rejections": rejections(real),
        "fills": fill_summary(real),
        "capital_krw": money(cap),
        "per_route": {r.data.base: _route_figures(r, cfg) for r in runs},
        **report_fields(runs),
        **universe_summary(runs[0].data.universe if runs else None, {r.data.base: r.data.status_periods for r in runs}),
        "assumptions": assumptions(cfg),
        "config": json.loads(cfg.model_dump_json()),
    }
    return summary


def risk_summary(report: dict[str, object] | None) -> dict[str, object]:
    """summary["risk"]: off, or what the RiskCoordinator refused and when it halted, reset or resumed."""
    if report is None:
        return {"enabled": False}
    events = report.get("events", [])
    assert isinstance(events, list)
    return {"enabled": True, **report, "events": [{**e, "ts": iso(int(e["ts_ns"]))} for e in events]}


def assumptions(cfg: EngineConfig) -> dict[str, str]:
    c = cfg.costs
    return {
        "fees": f"taker on every leg: Upbit {c.upbit.taker_fee}, Binance {c.binance.taker_fee}, in the quote currency",
        "latency": f"a leg meets the market {c.upbit.latency_ms:g} ms (Upbit) / {c.binance.latency_ms:g} ms "
                   "(Binance) after the decision; with bars that is the next bar's open",
        "bar_cost_model": "mid (bar price or last trade) moved against us by the half spread plus impact per "
                          "1M quote traded, rounded onto the venue's tick grid; half spread floored at half a tick",
        "slippage": "fill price against the mid the decision saw (spread, impact and latency drift)",
        "pnl": "per round trip: KRW flows on Upbit plus USDT flows on Binance converted at the exit's FX; "
               "inventory revaluation (coin price, FX on held USDT) is not strategy PnL and is not included",
        "stale": f"no trade when a quote is older than {c.max_quote_age_s:g} s or the venues are more than "
                 f"{c.max_venue_skew_s:g} s apart, or a book is crossed or one-sided",
        "hedge_policy": "legs that fill unevenly are equalized at once by trading the excess back",
    }


def run_backtest(req: BacktestRequest, mode: str = "backtest") -> dict[str, object]:
    routes = list(universe_of(req).routes)
    bar = None
    if req.progress and len(routes) > 1:
        from tqdm import tqdm

        bar = tqdm(total=len(routes), desc="routes", unit="route")

    def tick(_: str) -> None:
        if bar is not None:
            bar.update(1)

    risk: dict[str, object] | None = None
    if req.risk:
        runs, risk = _run_routes_with_risk(req, routes, tick)
    else:
        runs = _run_routes(req, routes, tick)
    if bar is not None:
        bar.close()
    summary = summarize(runs, req.config, mode)
    summary["risk"] = risk_summary(risk)
    write_outputs(req.out, summary, runs)
    return summary
