"""``arbitrage-lite`` command line: data import, backtest, paper, drills, sweeps, demo.

Every input is checked before anything expensive starts (kernel imports, store loading, Ray); a bad one is
one line on stderr, ``arbitrage-lite: error: ...``, and exit 2. Anything unexpected is one line naming the
error, exit 1; ``--debug`` shows its traceback.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import cli_checks as chk
from .cli_checks import PROG, Parser, UsageError, one_line
from .errors import UserError

DRILL_KINDS = ("kill", "redis-down", "corrupt-snapshot", "postgres-down", "node-loss", "stores-down")  # drills.KINDS
LIVE_DRILL_KINDS = ("live-feed-kill", "live-route-kill", "live-5xx", "live-ws-gap")  # live_drills.KINDS
CONFIG_HELP = "TOML or JSON engine config, only the fields it changes (every field: docs/config.md)"
SNAPSHOT_CONFIG = Path(__file__).resolve().parent / "docs" / "configs" / "snapshots.toml"  # ships in the wheel


def _cmd_import(args: argparse.Namespace) -> int:
    files = chk.input_files(args.files)
    store = chk.output_dir(args.store, "--store")
    from .infra.data.importer import DataImportError, format_import_results, run_import

    try:
        results = run_import(files, store, symbol=args.symbol, venue=args.venue)
    except DataImportError as exc:
        failed = [r for r in exc.results if r.error is not None]
        first = [r.error.strip().splitlines()[0] for r in failed if r.error]
        raise UsageError(f"{len(failed)} of {len(exc.results)} file(s) could not be imported (nothing written for "
                         f"them): {'; '.join(first)}") from None
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
    if summary.get("small_sample_warning"):  # beside the headline, not only in the report
        print(f"  WARNING: {summary['small_sample_warning']}")
    for line in _risk_lines(summary):
        print(f"  {line}")
    rec: Any = summary.get("reconciliation")
    if isinstance(rec, dict) and not rec.get("ok"):
        print("  WARNING: the ledger does not reconcile (see summary.json reconciliation)")
    print(f"wrote {out}/summary.json, trades.csv, fills.csv, report.html")


def _risk_lines(summary: dict[str, object]) -> list[str]:
    """What risk refused, halted or reset, and the guarded pairs: the run's last lines, not only the report."""
    risk: Any = summary.get("risk") or {}
    out = []
    if not risk.get("enabled"):
        out.append("risk: off (--no-risk)")
    else:
        by = risk.get("rejections_by_reason") or {}
        refused = ", ".join(f"{k} {v}" for k, v in sorted(by.items(), key=lambda kv: -kv[1])) or "none"
        counts: dict[str, int] = {}
        for e in risk.get("events") or []:
            counts[e["action"]] = counts.get(e["action"], 0) + 1
        events = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"
        out.append(f"risk: opens refused {sum(by.values())} ({refused}); events: {events}; mode {risk.get('mode')}")
        if risk.get("order_timeouts"):
            out.append(f"WARNING: {len(risk['order_timeouts'])} risk questions answered before slower routes "
                       "caught up (summary.json risk.order_timeouts)")
    guarded: Any = summary.get("guarded_pairs") or []
    if guarded:
        names = sorted({g["route"] for g in guarded})
        out.append(f"guarded pairs (no opens while guarded): {len(names)}: {', '.join(names)}")
    return out


def _ray(args: argparse.Namespace) -> None:
    from .infra.ray_runtime import configure

    configure(getattr(args, "ray_address", None))


def _cmd_backtest(args: argparse.Namespace) -> int:
    store, out = chk.existing_store(args.store), chk.output_dir(args.out)
    start, end = chk.time_range(args.start, args.end)
    cfg = chk.engine_config(args)
    _ray(args)
    from .scenarios.backtest import BacktestRequest, run_backtest

    req = BacktestRequest(store=store, routes=args.routes, out=out, config=cfg, start_ns=start, end_ns=end,
                          use_ray=not args.no_ray, progress=not args.no_progress, risk=not args.no_risk,
                          ship_store=args.ship_store)
    summary = run_backtest(req)
    _print_headline(summary, req.out)
    return 0


def _recovery(args: argparse.Namespace) -> dict[str, Any]:
    """``--run-id`` / ``--resume`` / ``--clean`` / ``--redis`` / ``--journal``: the PaperRequest fields they set.

    Snapshots go to Redis with ``--redis``, else to files under ``--snapshots``."""
    if args.resume and args.clean:
        raise UsageError("--resume and --clean exclude each other")
    if args.journal_dsn and not args.journal:
        raise UsageError("--journal-dsn needs --journal DIR (the overflow file and SQLite fallback live there)")
    wanted = args.resume or args.clean or args.redis or args.journal
    if not wanted:
        for flag, value in (("--run-id", args.run_id), ("--snapshots", args.snapshots)):
            if value is not None:
                raise UsageError(f"{flag} is used only with --redis, --journal, --resume or --clean (a run without "
                                 "them keeps no snapshots or journal): add one of them or drop it")
        return {}
    if args.resume and not args.run_id:
        raise UsageError("--resume needs --run-id: the run whose snapshots to continue from")
    snap_dir = chk.output_dir(args.snapshots or "snapshots", "--snapshots")
    if args.journal:
        chk.output_dir(args.journal, "--journal")
    run_id = args.run_id or f"p{int(time.time()) % 10**7}"
    from .actors.recovery import RecoveryConfig, known_runs
    from .infra.snapshots import SnapshotError

    rec = RecoveryConfig(run_id, env="paper", redis_url=args.redis, dir=str(snap_dir), resume=bool(args.resume))
    try:  # Redis and the file store beside it (a copy of every snapshot): a run resumes while Redis is down
        known = run_id in known_runs(rec)
    except SnapshotError as exc:
        raise UsageError(f"snapshot store unavailable ({rec.redis_url or rec.dir}): {exc}") from None
    if args.resume and not known:
        raise UsageError(f"no snapshots of run {run_id!r} to resume (store: {rec.redis_url or rec.dir})")
    if not args.resume and known:
        raise UsageError(f"run {run_id!r} already has snapshots: --resume it, or start a new run (another --run-id "
                         f"or none); its keys are left alone")
    return {"run_id": run_id, "recovery": rec, "supervise": True, "journal_dir": args.journal,
            "journal_dsn": args.journal_dsn}


def bind_exporter(port: int | None) -> Any:
    """The Prometheus page (infra.metrics.Exporter), bound now, before Ray: a busy port is an error at once, and
    the page is served from the start. None without ``--metrics-port``."""
    if port is None:
        return None
    from .infra.metrics import start_exporter

    try:
        exporter = start_exporter(port)
    except OSError as exc:
        raise UsageError(f"--metrics-port {port} cannot be bound on 127.0.0.1 ({exc.strerror or exc}):"
                         " pick another port, or 0 for any free one") from None
    print(f"metrics: http://127.0.0.1:{exporter.port}/metrics")
    return exporter


def _cmd_paper(args: argparse.Namespace) -> int:
    store, out = chk.existing_store(args.replay, "--replay"), chk.output_dir(args.out)
    start, end = chk.time_range(args.start, args.end)
    if args.risk_in_host and args.route_hosts != 1:
        raise UsageError("--risk-in-host needs --route-hosts 1: the one RiskCoordinator must see every route")
    cfg = chk.engine_config(args)
    recovery = _recovery(args)
    exporter = bind_exporter(args.metrics_port)
    board = _dashboard(args, out, str(recovery.get("run_id") or "paper1"))
    _ray(args)
    try:
        from .scenarios.paper import PaperRequest, run_paper

        risk = None if args.no_risk else cfg.risk
        req = PaperRequest(store=store, routes=args.routes, out=out, config=cfg, risk=risk, start_ns=start,
                           end_ns=end, speed=args.speed, metrics_port=args.metrics_port, exporter=exporter,
                           dashboard=args.dashboard, dashboard_server=board, route_hosts=args.route_hosts,
                           risk_in_host=args.risk_in_host,
                           window_events=args.window_events,
                           window_ns=None if args.window_ms is None else round(args.window_ms * 1e6), **recovery)
        summary = run_paper(req)
    finally:
        if exporter is not None:
            exporter.close()
        if board is not None:
            board.close()
    _print_headline(summary, req.out)
    extra: Any = summary["paper"]
    print(f"feed -> intent latency: {extra['feed_to_intent_latency_ms']}")
    _warn_snapshot_fallbacks(extra, args)
    return 0


def _dashboard(args: argparse.Namespace, out: Path, run_id: str) -> Any:
    """The run's web dashboard (infra.dashboard), bound now like the exporter; None without --dashboard-port."""
    if args.dashboard_port is None:
        return None
    from .infra.dashboard.server import start_dashboard

    try:
        board = start_dashboard(out, run_id, args.dashboard_port)
    except OSError as exc:
        raise UsageError(f"--dashboard-port {args.dashboard_port} cannot be bound on 127.0.0.1 "
                         f"({exc.strerror or exc}): pick another port, or 0 for any free one") from None
    print(f"dashboard: {board.page_url} (also in {board.path}, mode 0600)")
    return board


def _warn_snapshot_fallbacks(extra: dict[str, Any], args: argparse.Namespace) -> None:
    """Snapshots that Redis refused went to the file store: say so (they are not where --redis says)."""
    if not args.redis:
        return
    fell = sum(int((s.get("recovery") or {}).get("snapshot_fallbacks_total", 0)) for s in extra.get("routes", []))
    if fell:
        print(f"{PROG}: warning: {fell} route snapshot(s) could not be written to Redis ({args.redis}) and went to "
              f"the file store under {args.snapshots or 'snapshots'}/ instead", file=sys.stderr)


def _cmd_drill(args: argparse.Namespace) -> int:
    if args.kind in LIVE_DRILL_KINDS:
        return _cmd_live_drill(args)
    if not args.replay or not args.routes:
        raise UsageError(f"drill {args.kind} replays a store: --replay STORE and --routes are required")
    store, out = chk.existing_store(args.replay, "--replay"), chk.output_dir(args.out)
    cfg = chk.engine_config(args)
    _ray(args)
    from .scenarios.drills import DrillRequest, drill_main

    try:
        req = DrillRequest(kind=args.kind, store=store, routes=args.routes, out=out, target=args.target,
                           times=args.times, seed=args.seed, mode=args.mode, config=cfg,
                           window_events=args.window_events, route_hosts=args.route_hosts, redis_url=args.redis)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return drill_main(req)


def _cmd_live_drill(args: argparse.Namespace) -> int:
    """A drill on the live path: the live host on the local fake venues (no store; --set tunes the strategy)."""
    out = chk.output_dir(args.out)
    if args.replay or args.config or args.route_hosts or args.redis or args.target != "route:BTC":
        raise UsageError(f"drill {args.kind} runs on the fake venues: no --replay/--config/--route-hosts/--redis/"
                         "--target (--routes, --times, --seed, --set)")
    routes = tuple(r.strip().upper() for r in (args.routes or "BTC,ETH").split(",") if r.strip())
    if any(r.startswith("TOP:") for r in routes):
        raise UsageError("live drills name their routes (BTC,ETH)")
    from .scenarios.live_drills import EAGER, LiveDrillRequest, live_drill_main

    if args.kind == "live-route-kill":
        _ray(args)
    try:
        req = LiveDrillRequest(args.kind, out, routes, times=args.times, seed=args.seed,
                               sets=EAGER + tuple(args.set or ()))
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return live_drill_main(req)


def _cmd_sweep(args: argparse.Namespace) -> int:
    store, out = chk.existing_store(args.store), chk.output_dir(args.out)
    cfg = chk.engine_config(args)
    chk.grid(args.grid, cfg)
    _ray(args)
    from .scenarios.sweep import parse_grid, run_sweep

    report = run_sweep(store, args.routes, parse_grid(args.grid), cfg, out, split=args.split,
                       use_ray=not args.no_ray, progress=not args.no_progress)
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
    """Build the real sample from the shared data set (only its MIT file ships) into ``<out>/sample_data``,
    import and backtest it: BTC 1m bars (2024) and the 25 coins of the Dec 2025 snapshots (ranked causally)."""
    out = chk.output_dir(args.out)
    cfg = chk.engine_config(args)
    shared = chk.shared_data(args.data)
    from .infra.data.sample import ensure_sample

    s = ensure_sample(out / "sample_data", shared)  # reused while its inputs are unchanged
    _ray(args)
    from .infra.data.importer import run_import
    from .scenarios.backtest import BacktestRequest, run_backtest

    btc_store, multi_store = out / "store_btc_1m", out / "store_multi"
    run_import([s / "btc_1m_joined_sample.csv.gz", s / "usdkrw_daily_sample.csv"], btc_store, symbol="BTC")
    run_import([s / "kimpai_snapshots_sample.csv.gz", s / "kimpai_usdkrw_sample.csv.gz"], multi_store)
    # the snapshots are minutes apart, irregularly: their part runs on the shipped snapshot config (unless the
    # user gave one), with the same --set on top
    snap_cfg = cfg if args.config else chk.engine_config(argparse.Namespace(config=str(SNAPSHOT_CONFIG),
                                                                            set=getattr(args, "set", None)))
    for store, routes, name, c in ((btc_store, "BTC", "btc_1m", cfg),
                                   (multi_store, "top:25", "top25_snapshots", snap_cfg)):
        print(f"== backtest {routes} on {store.name}")
        summary = run_backtest(BacktestRequest(store=store, routes=routes, out=out / name, config=c,
                                               use_ray=not args.no_ray, progress=not args.no_progress))
        _print_headline(summary, out / name)
    return 0


def _cmd_config_doc(args: argparse.Namespace) -> int:
    from .infra.config_tree import config_doc

    sys.stdout.write(config_doc())
    return 0


def _common(p: argparse.ArgumentParser, *, config: bool = True, ray: bool = True) -> None:
    """Flags every Ray-starting command shares: --config, --set, --ray-address."""
    if config:
        p.add_argument("--config", help=CONFIG_HELP)
        p.add_argument("--set", action="append", metavar="SECTION.FIELD=VALUE",
                       help="override one config field, after --config (repeatable; fields: docs/config.md)")
    if ray:
        p.add_argument("--ray-address", metavar="ADDR",
                       help="join this Ray cluster (auto, HOST:PORT); default: start a fresh local Ray, whatever "
                            "RAY_ADDRESS or a running Ray says")
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="show the traceback of an unexpected error")


def _add_recovery_args(pp: argparse.ArgumentParser) -> None:
    pp.add_argument("--run-id", type=chk.run_id,
                    help="run id (1-8 letters/digits): names the run's snapshots and journal rows")
    pp.add_argument("--resume", action="store_true", help="continue run --run-id from its snapshots")
    pp.add_argument("--clean", action="store_true", help="start fresh (older runs' snapshots are left alone)")
    pp.add_argument("--redis", type=chk.redis_url,
                    help="snapshots in Redis at this URL (default: files under --snapshots)")
    pp.add_argument("--snapshots", help="directory of the embedded snapshot store; with --redis it keeps a copy of "
                    "every snapshot, what a restart during a Redis outage reads (default: snapshots)")
    pp.add_argument("--journal", help="journal directory (SQLite there, or --journal-dsn; overflow file there)")
    pp.add_argument("--journal-dsn", help="PostgreSQL DSN for the journal")


def _add_backtest(sub: Any) -> None:
    bt = sub.add_parser("backtest", help="replay the store through the engine core")
    bt.add_argument("--store", required=True)
    bt.add_argument("--routes", required=True, type=chk.routes, help="comma list of bases (BTC,ETH) or top:N")
    bt.add_argument("--from", dest="start", help="UTC, ISO (2024-12-01 or 2024-12-01T09:30)")
    bt.add_argument("--to", dest="end", help="UTC, ISO; after --from")
    bt.add_argument("--out", required=True)
    bt.add_argument("--no-ray", action="store_true", help="run routes in this process instead of Ray tasks")
    bt.add_argument("--ship-store", choices=("auto", "always", "never"), default="auto",
                    help="Ray tasks on other nodes read a copy of the store sent through the object store: auto "
                    "(default) on a cluster of several nodes; never when the store is on shared storage")
    bt.add_argument("--no-progress", action="store_true")
    bt.add_argument("--no-risk", action="store_true",
                    help="no risk tiers: routes replay independently (the config's risk section is ignored)")
    _common(bt)
    bt.set_defaults(func=_cmd_backtest)


def _add_paper(sub: Any) -> None:
    pp = sub.add_parser("paper", help="paper trading on replayed data: the Ray actor system end to end")
    pp.add_argument("--replay", required=True, help="the store to replay")
    pp.add_argument("--routes", required=True, type=chk.routes)
    pp.add_argument("--speed", default=None, type=chk.speed, help="'max' (default) or N (N x market time)")
    pp.add_argument("--from", dest="start")
    pp.add_argument("--to", dest="end")
    pp.add_argument("--out", required=True)
    pp.add_argument("--no-risk", action="store_true", help="let the RiskCoordinator allow every open (parity runs)")
    pp.add_argument("--metrics-port", type=chk.port, default=None,
                    help="Prometheus exporter on 127.0.0.1:PORT (0: any free port), served from the start")
    pp.add_argument("--dashboard", action="store_true", help="start the Ray dashboard on 127.0.0.1")
    pp.add_argument("--dashboard-port", type=chk.port, default=None,
                    help="the run's web dashboard on 127.0.0.1:PORT (0: any free port); its URL with the token is "
                         "printed and written to OUT/dashboard.json")
    pp.add_argument("--route-hosts", type=chk.count(0), default=0, metavar="N",
                    help="run the routes co-located in N host processes (default 0: one process per route)")
    pp.add_argument("--risk-in-host", action="store_true",
                    help="with --route-hosts 1: the RiskCoordinator runs inside that host (a verdict is a call)")
    win = pp.add_mutually_exclusive_group()
    win.add_argument("--window-ms", type=chk.window_ms, metavar="MS",
                     help="feed windows of MS milliseconds of market time (real time: ~50-100)")
    win.add_argument("--window-events", type=chk.count(1), default=20_000, metavar="N",
                     help="feed windows of about N events per route (default 20000; used without --window-ms)")
    _add_recovery_args(pp)
    _common(pp)
    pp.set_defaults(func=_cmd_paper)


def _add_drill(sub: Any) -> None:
    dr = sub.add_parser("drill", help="chaos drill: a paper replay disturbed vs undisturbed, or the live host on the "
                        "fake venues (live-*) -> drill.json")
    dr.add_argument("kind", choices=DRILL_KINDS + LIVE_DRILL_KINDS)
    dr.add_argument("--target", default="route:BTC", help="route:SYM | feed:VENUE | portfolio | risk | fx | alert")
    dr.add_argument("--times", type=chk.count(1), default=3, help="kills at random moments (kill drills; >= 1)")
    dr.add_argument("--seed", type=chk.count(0), default=0)
    dr.add_argument("--mode", default="mixed", choices=("ray_kill", "sigkill", "mixed", "hang"),
                    help="how to kill: ray.kill, SIGKILL, alternating, or hang (SIGSTOP: the supervisor must notice)")
    dr.add_argument("--replay", help="the store to replay (paper drills)")
    dr.add_argument("--routes", type=chk.routes, help="paper drills: required; live drills: default BTC,ETH")
    dr.add_argument("--window-events", type=chk.count(1), default=200,
                    help="feed window size (more windows: more moments)")
    dr.add_argument("--route-hosts", type=chk.count(0), default=0)
    dr.add_argument("--redis", type=chk.redis_url, help="snapshots in Redis at this URL (default: the file store)")
    dr.add_argument("--out", required=True)
    _common(dr)
    dr.set_defaults(func=_cmd_drill)


def _add_sweep(sub: Any) -> None:
    sw = sub.add_parser("sweep", help="grid of configs as Ray jobs, picked in-sample, judged out-of-sample")
    sw.add_argument("--store", required=True)
    sw.add_argument("--routes", required=True, type=chk.routes)
    sw.add_argument("--grid", action="append", required=True, help="section.field=v1,v2 (repeatable)")
    sw.add_argument("--split", type=chk.finite(0.0, 1.0, "between 0 and 1 (the in-sample share)"), default=0.5,
                    help="in-sample share of the time span")
    sw.add_argument("--out", required=True)
    sw.add_argument("--no-ray", action="store_true")
    sw.add_argument("--no-progress", action="store_true")
    _common(sw)
    sw.set_defaults(func=_cmd_sweep)


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog=PROG, description=__doc__.splitlines()[0])
    p.add_argument("--debug", action="store_true", help="show the traceback of an unexpected error")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)
    data = sub.add_parser("data", help="market data store").add_subparsers(dest="data_command", required=True,
                                                                            parser_class=Parser)
    imp = data.add_parser("import", help="import recorded files into the columnar store")
    imp.add_argument("files", nargs="+")
    imp.add_argument("--store", required=True)
    imp.add_argument("--symbol", help="base asset for files that do not name it (e.g. the joined BTC file)")
    imp.add_argument("--venue", choices=["upbit", "binance"], help="venue for per-venue OHLCV files")
    _common(imp, config=False, ray=False)
    imp.set_defaults(func=_cmd_import)
    _add_backtest(sub)
    _add_paper(sub)
    from .cli_live import add_live

    add_live(sub, _common)
    from .cli_replay import add_replay_check

    add_replay_check(sub, _common)
    from .cli_venues import add_venues

    add_venues(sub)
    _add_drill(sub)
    _add_sweep(sub)
    from .cli_stress import add_stress
    from .cli_tune import add_tune

    add_tune(sub, _common)
    add_stress(sub, _common)
    demo = sub.add_parser("demo", help="build the real sample from the shared data set, import and backtest it")
    demo.add_argument("--out", default="out/demo")
    demo.add_argument("--data", metavar="DIR", help="the shared data set (the directory holding MANIFEST.md); "
                      "default: $ARBITRAGE_LITE_DATA, else ../shared/data beside the repository or the working "
                      "directory")
    demo.add_argument("--no-ray", action="store_true")
    demo.add_argument("--no-progress", action="store_true")
    _common(demo)
    demo.set_defaults(func=_cmd_demo)
    doc = sub.add_parser("config-doc", help="print docs/config.md: every config field, unit, default")
    doc.set_defaults(func=_cmd_config_doc)
    from .cli_ops import add_ops

    add_ops(sub)
    return p


def _error(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)


def _log_lines(debug: bool) -> None:
    """Log records as one line each, like the errors (``arbitrage-lite: warning: ...``); --debug: everything."""
    from loguru import logger

    logger.remove()
    if debug:
        logger.add(sys.stderr, level="DEBUG")
    else:  # a template per record (the message is substituted by loguru, braces and all)
        logger.add(sys.stderr, level="WARNING", format=lambda r: f"{PROG}: {r['level'].name.lower()}: {{message}}\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns its exit code (2: bad input, 1: failed, 130: interrupted)."""
    command_line = argv is None  # the real command (not a test calling main): own the log format too
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    if command_line:
        _log_lines(debug)
    try:
        args = build_parser().parse_args(argv)
        return int(args.func(args))
    except UserError as exc:  # bad input the user can fix (CLI checks, scenarios: DataError, ...)
        if debug:
            raise
        _error(one_line(exc))
        return 2
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    except Exception as exc:  # last resort: one line, not a traceback
        if debug:
            raise
        _error(f"{type(exc).__name__}: {one_line(exc) or '(no message)'} (unexpected: rerun with --debug for the "
               "traceback)")
        return 1


if __name__ == "__main__":
    sys.exit(main())
