"""``arbitrage-lite`` command line: data import, backtest, demo."""

from __future__ import annotations

import argparse
import json
import sys
import time
import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from ..core.config import EngineConfig

SAMPLE_DIR = Path(__file__).resolve().parent.parent / "sample_data"


class UsageError(ValueError):
    pass


def parse_time(text: str | None) -> int | None:
    """ISO date or date-time, UTC (a trailing Z is allowed) → ns."""
    if text is None:
        return None
    try:
        return int(np.datetime64(text.rstrip("Zz"), "ns").astype(np.int64))
    except ValueError:
        raise UsageError(f"cannot read time {text!r}: use ISO form like 2024-12-01 or 2024-12-01T09:30") from None


def load_config(path: Path | None) -> EngineConfig:
    if path is None:
        return EngineConfig()
    if not path.exists():
        raise UsageError(f"config file {path} does not exist")
    text = path.read_text()
    try:
        raw = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"config file {path} is not valid {path.suffix.lstrip('.') or 'JSON'}: {exc}") from None
    try:
        return EngineConfig.model_validate(raw)
    except ValidationError as exc:
        raise UsageError(f"config file {path} is invalid:\n{exc}") from None


def _cmd_import(args: argparse.Namespace) -> int:
    from .data.importer import format_import_results, run_import

    results = run_import([Path(p) for p in args.files], Path(args.store), symbol=args.symbol, venue=args.venue)
    print(format_import_results(results))
    return 0


def _print_headline(summary: dict[str, object], out: Path) -> None:
    keys = ("trades", "wins", "win_rate", "gross_pnl_krw", "fees_krw", "slippage_krw", "net_pnl_krw",
            "max_drawdown_krw", "zero_cost_net_pnl_krw")
    data: Any = summary["data"]
    routes: Any = summary["routes"]
    print(f"routes: {', '.join(routes)}  ({data['resolution']}, FX {data['fx_source']}, "
          f"{data['from']} -> {data['to']})")
    for k in keys:
        v = summary[k]
        if isinstance(v, str):
            v = f"{float(v):,.0f}"
        elif isinstance(v, float):
            v = f"{v:.3f}"
        print(f"  {k:<24} {v}")
    print(f"wrote {out}/summary.json, trades.csv, fills.csv, report.html")


def _cmd_backtest(args: argparse.Namespace) -> int:
    from ..scenarios.backtest import BacktestRequest, run_backtest

    req = BacktestRequest(store=Path(args.store), routes=args.routes, out=Path(args.out),
                          config=load_config(Path(args.config) if args.config else None),
                          start_ns=parse_time(args.start), end_ns=parse_time(args.end),
                          use_ray=not args.no_ray, progress=not args.no_progress)
    if not req.store.exists():
        raise UsageError(f"store {req.store} does not exist: run 'arbitrage-lite data import FILE... --store DIR'")
    summary = run_backtest(req)
    _print_headline(summary, req.out)
    return 0


def _count(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if n < minimum:
            raise argparse.ArgumentTypeError(f"{n} is below {minimum}")
        return n
    return parse


def _window_ms(text: str) -> float:
    """An argparse type: a window of market time in ms, at least 1 ns."""
    try:
        ms = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of milliseconds") from None
    if not (1e-6 <= ms < 1e12):  # false for NaN too
        raise argparse.ArgumentTypeError(f"{text} ms is not a usable window (from 0.000001 ms, finite)")
    return ms


def _cmd_paper(args: argparse.Namespace) -> int:
    from ..scenarios.paper import PaperRequest, run_paper

    if not Path(args.replay).exists():
        raise UsageError(f"store {args.replay} does not exist: run 'arbitrage-lite data import' first")
    speed = None if args.speed == "max" else float(args.speed)
    if speed is not None and speed <= 0:
        raise UsageError("--speed must be 'max' or a positive multiple of market time")
    if args.risk_in_host and args.route_hosts != 1:
        args.paper_parser.error("--risk-in-host needs --route-hosts 1: the one RiskCoordinator must see every route")
    risk = None if args.no_risk else "config"  # the config's risk section
    req = PaperRequest(store=Path(args.replay), routes=args.routes, out=Path(args.out),
                       config=load_config(Path(args.config) if args.config else None), risk=risk,
                       start_ns=parse_time(args.start), end_ns=parse_time(args.end), speed=speed,
                       metrics_port=args.metrics_port, dashboard=args.dashboard, route_hosts=args.route_hosts,
                       risk_in_host=args.risk_in_host, window_events=args.window_events,
                       window_ns=None if args.window_ms is None else round(args.window_ms * 1e6))
    req = _with_recovery(req, args)
    summary = run_paper(req)
    _print_headline(summary, req.out)
    extra: Any = summary["paper"]
    print(f"feed -> intent latency: {extra['feed_to_intent_latency_ms']}")
    return 0


def _with_recovery(req: Any, args: argparse.Namespace) -> Any:
    """``--resume`` / ``--clean`` (snapshots in Redis with ``--redis``, else files under ``--snapshots``)."""
    import dataclasses

    from ..actors.recovery import RecoveryConfig

    if args.resume and args.clean:
        raise UsageError("--resume and --clean exclude each other")
    if not (args.resume or args.clean or args.redis or args.journal):
        return req
    if args.resume and not args.run_id:
        raise UsageError("--resume needs --run-id: the run whose snapshots to continue from")
    run_id = args.run_id or f"p{int(time.time()) % 10**7}"
    rec = RecoveryConfig(run_id, env="paper", redis_url=args.redis, dir=args.snapshots, resume=bool(args.resume))
    from .snapshots import SnapshotError, open_store

    try:
        known = run_id in open_store(rec.env, run_id, redis_url=rec.redis_url, dir=rec.dir).runs()
    except SnapshotError as exc:
        raise UsageError(f"snapshot store unavailable: {exc}") from None
    if args.resume and not known:
        raise UsageError(f"no snapshots of run {run_id!r} to resume (store: {rec.redis_url or rec.dir})")
    if not args.resume and known:
        raise UsageError(f"run {run_id!r} already has snapshots: --resume it, or start a new run (another --run-id "
                         f"or none); its keys are left alone")
    return dataclasses.replace(req, run_id=run_id, recovery=rec, supervise=True, journal_dir=args.journal,
                               journal_dsn=args.journal_dsn)


def _add_recovery_args(pp: argparse.ArgumentParser) -> None:
    pp.add_argument("--run-id", help="run id (letters/digits, <= 8): names the run's snapshots and journal rows")
    pp.add_argument("--resume", action="store_true", help="continue run --run-id from its snapshots")
    pp.add_argument("--clean", action="store_true", help="start fresh (older runs' snapshots are left alone)")
    pp.add_argument("--redis", help="snapshots in Redis at this URL (default: files under --snapshots)")
    pp.add_argument("--snapshots", default="snapshots", help="directory of the embedded snapshot store")
    pp.add_argument("--journal", help="journal directory (SQLite there, or --journal-dsn; overflow file there)")
    pp.add_argument("--journal-dsn", help="PostgreSQL DSN for the journal")


def _cmd_drill(args: argparse.Namespace) -> int:
    from ..scenarios.drills import DrillRequest, drill_main

    if not Path(args.replay).exists():
        raise UsageError(f"store {args.replay} does not exist: run 'arbitrage-lite data import' first")
    try:
        req = DrillRequest(kind=args.kind, store=Path(args.replay), routes=args.routes, out=Path(args.out),
                           target=args.target, times=args.times, seed=args.seed, mode=args.mode,
                           config=load_config(Path(args.config) if args.config else None),
                           window_events=args.window_events, route_hosts=args.route_hosts, redis_url=args.redis)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return drill_main(req)


def _cmd_sweep(args: argparse.Namespace) -> int:
    from ..scenarios.sweep import parse_grid, run_sweep

    if not Path(args.store).exists():
        raise UsageError(f"store {args.store} does not exist")
    report = run_sweep(Path(args.store), args.routes, parse_grid(args.grid),
                       load_config(Path(args.config) if args.config else None), Path(args.out),
                       split=args.split, use_ray=not args.no_ray, progress=not args.no_progress)
    best = report["best_in_sample"]
    oos = report["best_in_sample_out_of_sample"]
    print(f"{report['points']} grid points; split at {report['split_at']}")
    print(f"best in-sample: {best}")
    print(f"  its out-of-sample: trades {oos['trades']}, net {float(oos['net_pnl_krw']):,.0f} KRW "
          f"(zero-cost {float(oos['zero_cost_net_pnl_krw']):,.0f})")
    print(f"points with positive out-of-sample net PnL: {report['out_of_sample_positive_points']}")
    print(f"wrote {args.out}/sweep.csv, sweep.json")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    """Import the bundled real sample and backtest it: BTC 1m bars (2024) and Top-10 coins (Dec 2025)."""
    from ..scenarios.backtest import BacktestRequest, run_backtest
    from .data.importer import run_import

    out = Path(args.out)
    s = SAMPLE_DIR
    btc_store, multi_store = out / "store_btc_1m", out / "store_multi"
    run_import([s / "btc_1m_joined_sample.csv.gz", s / "usdkrw_daily_sample.csv"], btc_store, symbol="BTC")
    run_import([s / "kimpai_snapshots_sample.csv.gz", s / "kimpai_usdkrw_sample.csv.gz"], multi_store)
    for store, routes, name in ((btc_store, "BTC", "btc_1m"), (multi_store, "top:10", "top10_snapshots")):
        print(f"== backtest {routes} on {store.name}")
        summary = run_backtest(BacktestRequest(store=store, routes=routes, out=out / name,
                                               use_ray=not args.no_ray, progress=not args.no_progress))
        _print_headline(summary, out / name)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="arbitrage-lite", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    data = sub.add_parser("data", help="market data store").add_subparsers(dest="data_command", required=True)
    imp = data.add_parser("import", help="import recorded files into the columnar store")
    imp.add_argument("files", nargs="+")
    imp.add_argument("--store", required=True)
    imp.add_argument("--symbol", help="base asset for files that do not name it (e.g. the joined BTC file)")
    imp.add_argument("--venue", choices=["upbit", "binance"], help="venue for per-venue OHLCV files")
    imp.set_defaults(func=_cmd_import)
    bt = sub.add_parser("backtest", help="replay the store through the engine core")
    bt.add_argument("--store", required=True)
    bt.add_argument("--routes", required=True, help="comma list of bases (BTC,ETH) or top:N")
    bt.add_argument("--from", dest="start")
    bt.add_argument("--to", dest="end")
    bt.add_argument("--config", help="TOML or JSON engine config (see docs/config.md)")
    bt.add_argument("--out", required=True)
    bt.add_argument("--no-ray", action="store_true", help="run routes in this process instead of Ray tasks")
    bt.add_argument("--no-progress", action="store_true")
    bt.set_defaults(func=_cmd_backtest)
    pp = sub.add_parser("paper", help="paper trading on replayed data: the Ray actor system end to end")
    pp.add_argument("--replay", required=True, help="the store to replay")
    pp.add_argument("--routes", required=True)
    pp.add_argument("--speed", default="max", help="'max' or N (N x market time)")
    pp.add_argument("--from", dest="start")
    pp.add_argument("--to", dest="end")
    pp.add_argument("--config")
    pp.add_argument("--out", required=True)
    pp.add_argument("--no-risk", action="store_true", help="let the RiskCoordinator allow every open (parity runs)")
    pp.add_argument("--metrics-port", type=int, default=None, help="Prometheus exporter on 127.0.0.1:PORT")
    pp.add_argument("--dashboard", action="store_true", help="start the Ray dashboard on 127.0.0.1")
    pp.add_argument("--route-hosts", type=_count(0), default=0, metavar="N",
                    help="run the routes co-located in N host processes (default 0: one process per route)")
    pp.add_argument("--risk-in-host", action="store_true",
                    help="with --route-hosts 1: the RiskCoordinator runs inside that host (a verdict is a call)")
    win = pp.add_mutually_exclusive_group()
    win.add_argument("--window-ms", type=_window_ms, metavar="MS",
                     help="feed windows of MS milliseconds of market time (real time: ~50-100)")
    win.add_argument("--window-events", type=_count(1), default=20_000, metavar="N",
                     help="feed windows of about N events per route (default 20000; used without --window-ms)")
    _add_recovery_args(pp)
    pp.set_defaults(func=_cmd_paper, paper_parser=pp)
    dr = sub.add_parser("drill", help="chaos drill: a paper replay disturbed vs undisturbed -> drill.json")
    dr.add_argument("kind", choices=("kill", "redis-down", "corrupt-snapshot", "postgres-down", "node-loss"))
    dr.add_argument("--target", default="route:BTC", help="route:SYM | feed:VENUE | portfolio | risk | fx | alert")
    dr.add_argument("--times", type=int, default=3, help="kills at random moments (kill drills)")
    dr.add_argument("--seed", type=int, default=0)
    dr.add_argument("--mode", default="mixed", choices=("ray_kill", "sigkill", "mixed", "hang"),
                    help="how to kill: ray.kill, SIGKILL, alternating, or hang (SIGSTOP: the supervisor must notice)")
    dr.add_argument("--replay", required=True, help="the store to replay")
    dr.add_argument("--routes", required=True)
    dr.add_argument("--config")
    dr.add_argument("--window-events", type=int, default=200, help="feed window size (more windows: more moments)")
    dr.add_argument("--route-hosts", type=int, default=0)
    dr.add_argument("--redis", help="snapshots in Redis at this URL (kill drills; default: the file store)")
    dr.add_argument("--out", required=True)
    dr.set_defaults(func=_cmd_drill)
    sw = sub.add_parser("sweep", help="grid of configs as Ray jobs, picked in-sample, judged out-of-sample")
    sw.add_argument("--store", required=True)
    sw.add_argument("--routes", required=True)
    sw.add_argument("--grid", action="append", required=True, help="section.field=v1,v2 (repeatable)")
    sw.add_argument("--config", help="base config (TOML or JSON)")
    sw.add_argument("--split", type=float, default=0.5, help="in-sample share of the time span")
    sw.add_argument("--out", required=True)
    sw.add_argument("--no-ray", action="store_true")
    sw.add_argument("--no-progress", action="store_true")
    sw.set_defaults(func=_cmd_sweep)
    demo = sub.add_parser("demo", help="import the bundled real sample and backtest it")
    demo.add_argument("--out", default="out/demo")
    demo.add_argument("--no-ray", action="store_true")
    demo.add_argument("--no-progress", action="store_true")
    demo.set_defaults(func=_cmd_demo)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
