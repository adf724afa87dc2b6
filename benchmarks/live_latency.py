"""Live hot path, wire to wire: from the fake venue starting to send a book frame to the fake venue receiving the
order request that frame triggered (issue 13 §4).

    python benchmarks/live_latency.py [--routes 50] [--seconds 60] [--trips-per-s 1] [--no-journal]
        [--journal log|inline|sql] [--task-hops] [--ab]

Three kinds of process, as a live run has them: the fake venues (``FakeVenues`` with the SYNTHETIC market, the
same as ``arbitrage-lite fake-venues --synthetic top:N``) in a subprocess of their own, so their CPU is not the
engine's and the wire is a real socket; this process, the Ray driver, doing what ``arbitrage-lite live`` does
(scenarios.live: Portfolio and Alert actors, one LiveHostActor with every route's hot path, the RiskCoordinator
and the SQLite journal in it); and Ray's daemons. The host runs with ``LiveSpec.trace`` (infra.live.trace): per
order, the key of the market message its route's turn ran on and wall stamps at the stage boundaries; the fakes
log when each book frame starts to be sent and when each order arrives. Joined: wire-to-wire per order and its
split (wire, parse, queue, fills, decide, risk, journal, send), for orders whose trigger was sent in the measured
window (after ``--warmup``). Unwind legs are left out (a fill's answer triggers them, not a market message).

The strategy is made eager (tiny thresholds, a 2 s time stop) and paced by its cooldown to ``--trips-per-s`` round
trips over all routes, so that the routes trade often enough for a p99 but within the venues' order limits; risk's
loss limits and the day's notional cap are lifted (fakes only). CPU and RSS: /proc of the host's process (the
engine), the fakes' process and the rest of Ray, over the measured window. Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from arbitrage_lite.infra.live.trace import STAGES, Joined, WireLog, join

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
HOLD_S = 2.0


def cycle_s(routes: int, trips_per_s: float) -> float:
    return max(0.5 + HOLD_S, routes / trips_per_s)


def stagger(routes: int, trips_per_s: float, i: int) -> list[str]:
    """Route ``i``'s warm-up: spread over one cycle."""
    return [f"strategy.warmup_s={2 + i * cycle_s(routes, trips_per_s) / routes:g}"]


def eager(routes: int, trips_per_s: float) -> list[str]:
    """A strategy that trades often, but within the venues' order limits (Upbit: 8 orders/s, which the client's
    limiter keeps to: above it orders wait in the client, and that wait is not the hot path's). A route opens on a
    0.5 bps deviation from a 10 s reference, closes within 2 s (1 bps either way, or the time stop), then cools
    down so that all routes together make about ``trips_per_s`` round trips (2 orders on each venue) a second.
    Each route's warm-up is staggered over one cycle (``stagger``): routes that all started together would trade in
    lockstep, 2 x routes orders at once every cycle, and measure the venues' order limits in those bursts."""
    cooldown = cycle_s(routes, trips_per_s) - HOLD_S
    return ["strategy.entry_bps=0.5", "strategy.exit_bps=0.1", "strategy.warmup_s=2", "strategy.min_edge_bps=-1000",
            f"strategy.cooldown_s={cooldown:g}", "strategy.order_notional_krw=1000000",
            "strategy.position_limit_krw=1000000", "strategy.ref_halflife_s=10", "strategy.take_profit_bps=1",
            "strategy.stop_loss_bps=1", f"strategy.max_hold_s={HOLD_S:g}",
            # it loses its fees on every trip: the risk checks still run for every open (the verdict is a stage
            # of the split), but their loss limits are lifted so that they do not stop the trading
            "risk.loss_cooldown_s=0", "risk.circuit_breaker_losses=1000000",
            "risk.global_circuit_breaker_losses=1000000", "risk.daily_loss_limit_krw=1000000000000",
            "risk.max_drawdown_krw=1000000000000"]


TARGETS = {"p50_ms": 1.0, "p99_ms": 5.0, "rss_mb": 8192.0, "cpu_cores": 0.8 * (os.cpu_count() or 1)}


# ---------------------------------------------------------------------------------------------- the fakes' process
async def _fakes_main(args: argparse.Namespace) -> None:
    from arbitrage_lite.infra.venues.fake.server import FakeVenues
    from arbitrage_lite.infra.venues.fake.synthetic import SyntheticSpec

    spec = SyntheticSpec(top_n=args.routes, seed=args.seed, rate_binance_hz=args.rate_binance,
                         rate_upbit_hz=args.rate_upbit)
    store = Path(args.store) if args.store else None
    fakes = FakeVenues(store=store, synthetic=spec, upbit_order_per_s=args.upbit_order_per_s)
    info = await fakes.start()
    log = WireLog()
    log.attach(fakes)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print(json.dumps(info), flush=True)
    await stop.wait()
    Path(args.wirelog).write_text(log.dump(), encoding="utf-8")
    await fakes.stop()


# ---------------------------------------------------------------------------------------------- /proc
def _stat(pid: int) -> tuple[float, int] | None:
    """(CPU seconds, RSS bytes) of a process, None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            f = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(f[11]) + int(f[12])) / CLK_TCK, int(f[21]) * PAGE


def _children() -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat", encoding="ascii") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            out.setdefault(ppid, []).append(int(d))
    return out


def _tree(root: int) -> list[int]:
    kids, out, todo = _children(), [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += kids.get(p, [])
    return out


def _title(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _machine_busy_s() -> float:
    with open("/proc/stat", encoding="ascii") as fh:
        f = [int(x) for x in fh.readline().split()[1:]]
    return (sum(f) - f[3] - f[4]) / CLK_TCK


class Group:
    """CPU seconds and peak RSS of a set of processes, sampled every half second between ``begin`` and ``end``."""

    def __init__(self, pids: dict[str, list[int]]) -> None:
        self.pids = pids
        self.peak_rss = dict.fromkeys(pids, 0)
        self.cpu0: dict[str, float] = {}
        self.cpu1: dict[str, float] = {}
        self.busy = (0.0, 0.0)
        self.wall = (0.0, 0.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _sample(self) -> dict[str, float]:
        cpu = {}
        for name, pids in self.pids.items():
            stats = [s for p in pids if (s := _stat(p)) is not None]
            cpu[name] = sum(c for c, _ in stats)
            self.peak_rss[name] = max(self.peak_rss[name], sum(r for _, r in stats))
        return cpu

    def _loop(self) -> None:
        while not self._stop.wait(0.5):
            self._sample()

    def begin(self) -> None:
        self.cpu0, self.busy, self.wall = self._sample(), (_machine_busy_s(), 0.0), (time.monotonic(), 0.0)
        self._thread.start()

    def end(self) -> None:
        self._stop.set()
        self._thread.join()
        self.cpu1 = self._sample()
        self.busy, self.wall = (self.busy[0], _machine_busy_s()), (self.wall[0], time.monotonic())

    def cores(self, name: str) -> float:
        return (self.cpu1[name] - self.cpu0[name]) / (self.wall[1] - self.wall[0])

    def machine_cores(self) -> float:
        return (self.busy[1] - self.busy[0]) / (self.wall[1] - self.wall[0])


# ---------------------------------------------------------------------------------------------- the run
def _kimpai_store(store: Path) -> Path:
    """The shared data set's 178-coin kimpai snapshots imported into ``store`` (~10 s): prices for top:N > 50."""
    from arbitrage_lite.infra.data.importer import run_import
    from arbitrage_lite.infra.data.sample import find_shared_data

    shared = find_shared_data()
    if shared is None:
        raise SystemExit("no shared data set: give --store")
    run_import(sorted((shared / "snapshots_multi_symbol_kimpai").glob("*.csv.gz")), store)
    return store


def _start_fakes(args: argparse.Namespace, wirelog: Path) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--role", "fakes", "--routes", str(args.routes),
           "--wirelog", str(wirelog), "--seed", str(args.seed), "--rate-binance", str(args.rate_binance),
           "--rate-upbit", str(args.rate_upbit),
           # --ab: two engines, each with its own client keeping to the limit, on one key: the venue allows both
           "--upbit-order-per-s", str(args.upbit_order_per_s * len(stacks(args)))]
    if args.routes > 50:  # beyond the built-in 50 coins: the kimpai snapshots' prices (as fake-venues --store)
        cmd += ["--store", str(args.store or _kimpai_store(wirelog.parent / "kimpai_store"))]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise SystemExit(f"the fake venues did not start (exit {proc.wait()})")
    return proc, json.loads(line)


@dataclass(frozen=True)
class Stack:
    """One live engine's way of working: its journal mode (log | inline | sql | off) and task hops."""

    label: str
    journal: str
    task_hops: bool

    def describe(self) -> str:
        return (f"journal: {JOURNAL_MODES[self.journal]}; "
                f"{'task hops' if self.task_hops else 'started at once'}")


JOURNAL_MODES = {"log": "intent log + SQLite", "inline": "intent log inline + SQLite", "sql": "SQLite commit",
                 "off": "off"}


def stacks(args: argparse.Namespace) -> list[Stack]:
    """The engines to run: one (the options given), or with ``--ab`` the old way and the new side by side."""
    now = Stack("after" if args.ab else "", "off" if args.no_journal else args.journal, args.task_hops)
    return [Stack("before", "sql", True), now] if args.ab else [now]


async def _drive(args: argparse.Namespace, info: dict[str, Any], fakes_pid: int, tmp: Path) -> dict[str, Any]:
    """What ``arbitrage-lite live`` does (scenarios.live._run), with the tracer on and a measured window; with
    ``--ab``, two such runs side by side on the same fakes (every other route each), measured in the same window."""
    from arbitrage_lite.actors.alert import AlertActor
    from arbitrage_lite.actors.live_host import LiveHostActor, LiveSpec
    from arbitrage_lite.actors.portfolio import PortfolioActor
    from arbitrage_lite.core.config import EngineConfig
    from arbitrage_lite.core.live_orders import OrderCaps
    from arbitrage_lite.core.replay import warm_up
    from arbitrage_lite.infra.config_tree import apply_sets
    from arbitrage_lite.infra.live.reconcile_loop import ReconcileSettings
    from arbitrage_lite.infra.ray_runtime import ensure_ray
    from arbitrage_lite.scenarios.backtest import capital_krw
    from arbitrage_lite.scenarios.live import _binance_rules, _endpoints_from_fakes, pick_routes

    binance, upbit = _endpoints_from_fakes(info)
    bases = pick_routes(f"top:{args.routes}", info["binance"]["markets"], info["upbit"]["markets"])
    rules = await _binance_rules(binance, bases)
    cfg = apply_sets(EngineConfig(), eager(args.routes, args.trips_per_s) + args.set)
    caps = OrderCaps(Decimal(2_000_000), Decimal(10) ** 13, override=True)  # fakes only: no daily cap in the way
    routes = {b: (apply_sets(cfg, stagger(len(bases), args.trips_per_s, i)), rules[b]) for i, b in enumerate(bases)}
    warm_up()
    ray = ensure_ray()
    runs: list[dict[str, Any]] = []
    todo = stacks(args)
    off = ReconcileSettings(every_s=-1)
    for k, st in enumerate(todo):
        mine = {b: routes[b] for b in bases[k::len(todo)]}
        capital = capital_krw(cfg) * len(mine)
        run_id = f"lb{st.label}"[:8] if st.label else "latbench"  # core.client_ids: 1-8 letters and digits
        spec = LiveSpec(mine, binance, upbit, run_id, cfg.risk, capital, False, caps,
                        journal_dir=None if st.journal == "off" else str(tmp / f"journal-{k}"), trace=True,
                        intent_log=st.journal in ("log", "inline"), intent_log_inline=st.journal == "inline",
                        eager=not st.task_hops,
                        reconcile=off if args.ab or args.no_reconcile else ReconcileSettings(),
                        gil_switch_s=LiveSpec.gil_switch_s if args.gil_switch_ms is None else args.gil_switch_ms / 1e3)
        alerts = ray.remote(AlertActor).remote(run_id, None, None)
        portfolio = ray.remote(PortfolioActor).remote(None, None)
        host = ray.remote(LiveHostActor).remote(spec, portfolio, alerts)
        await host.start.remote()
        await portfolio.connect.remote(host, dict.fromkeys(mine, host), alerts, capital)
        pid = (await host.status.remote())["pid"]
        runs.append({"stack": st, "bases": list(mine), "actors": (host, portfolio, alerts), "engine": pid})
    warmup = args.warmup if args.warmup is not None else cycle_s(len(bases), args.trips_per_s) + 5
    print(f"live: {len(bases)} routes on the fakes (pid {fakes_pid}); engine pid(s) "
          f"{', '.join(str(r['engine']) for r in runs)}; warming up {warmup:g} s (staggered starts), then measuring "
          f"{args.seconds:g} s", file=sys.stderr, flush=True)
    await asyncio.sleep(warmup)
    engines = {f"engine{'_' + r['stack'].label if r['stack'].label else ''}": [r["engine"]] for r in runs}
    mine_pids = {os.getpid(), *(r["engine"] for r in runs), *_tree(fakes_pid)}
    group = Group(engines | {"fakes": [fakes_pid], "driver": [os.getpid()],
                             "ray_rest": [p for p in _tree(os.getpid()) if p not in mine_pids]})
    t0 = time.time_ns()
    group.begin()
    await asyncio.sleep(args.seconds)
    group.end()
    t1 = time.time_ns()
    for r, key in zip(runs, engines, strict=True):
        host = r["actors"][0]
        r["status"] = await host.status.remote()
        r["stopped"] = await host.stop.remote()
        r["traces"] = await host.trace.remote()
        r["engine_key"] = key
        for h in r["actors"]:
            ray.kill(h)
    return {"routes": len(bases), "warmup": warmup, "t0": t0, "t1": t1, "group": group, "runs": runs}


def pct(xs: list[int], q: float) -> float:
    """Nearest-rank percentile of ns values, in ms."""
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))] / 1e6 if s else float("nan")


def report(run: dict[str, Any], r: dict[str, Any], log: WireLog, joined: Joined) -> dict[str, Any]:
    """One engine's figures (``r``: one of ``run["runs"]``), printed, and its JSON row."""
    g: Group = run["group"]
    st: Stack = r["stack"]
    window_s = (run["t1"] - run["t0"]) / 1e9
    frames = sum(1 for t in log.sent.values() if run["t0"] <= t < run["t1"])
    gw = r["stopped"]["gateways"]
    n = len(joined.total)
    p50, p99, p999 = (pct(joined.total, q) for q in (0.5, 0.99, 0.999))
    out = sys.stderr
    label = f"[{st.label}] " if st.label else ""
    print(f"\n{label}wire to wire, {len(r['bases'])} of {run['routes']} routes, {window_s:.0f} s measured after "
          f"{run['warmup']:g} s warm-up ({st.describe()}); {frames / window_s:,.0f} book frames/s sent", file=out)
    print(f"  orders joined n={n}: p50 {p50:.3f} ms  p99 {p99:.3f} ms  p99.9 {p999:.3f} ms  max "
          f"{max(joined.total, default=0) / 1e6:.3f} ms" + ("  (p99.9 from < 1000 orders: ~ the max)"
                                                            if n < 1000 else ""), file=out)
    print(f"  orders sent by the gateways: {gw[0]['sent']} Upbit, {gw[1]['sent']} Binance; not joined: "
          f"{dict(joined.dropped)}", file=out)
    for v, name in ((0, "Upbit"), (1, "Binance")):
        reasons = sorted(gw[v]["reject_reasons"].items(), key=lambda kv: -kv[1])[:3]
        if reasons:
            print(f"  {name} rejections (first 60 characters): {dict(reasons)}", file=out)
    tail = [i for i, x in enumerate(joined.total) if x >= p99 * 1e6]
    print(f"  {'stage':8} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'share':>6} {'mean in the p99 tail':>21}",
          file=out)
    mean_total = sum(joined.total) / max(n, 1)
    for s in STAGES:
        xs = joined.stages[s]
        mean = sum(xs) / max(n, 1)
        tail_mean = sum(xs[i] for i in tail) / max(len(tail), 1)
        print(f"  {s:8} {pct(xs, 0.5):8.3f} {pct(xs, 0.99):8.3f} {mean / 1e6:8.3f} {mean / max(mean_total, 1):6.0%} "
              f"{tail_mean / 1e6:21.3f}", file=out)
    sub = {"task hop to the gateway": [t["submit_ns"] - (t["journaled_ns"] or t["emit_ns"]) for t in joined.orders],
           "gateway (price, caps)": [t["place_ns"] - t["submit_ns"] for t in joined.orders],
           "client + HTTP to the venue": [t["recv_ns"] - t["place_ns"] for t in joined.orders]}
    print("  send = " + ", ".join(f"{k} p50 {pct(v, 0.5):.3f} / p99 {pct(v, 0.99):.3f} ms" for k, v in sub.items()),
          file=out)
    by_venue = {v: [x for x, t in zip(joined.total, joined.orders, strict=True) if t["cid"].endswith(c)]
                for v, c in (("Upbit", "u"), ("Binance", "b"))}
    print("  by venue of the order: " + ", ".join(f"{v} n={len(x)} p50 {pct(x, 0.5):.3f} p99 {pct(x, 0.99):.3f} ms"
                                                  for v, x in by_venue.items()), file=out)
    waited = sum(1 for t in joined.orders if t["fills_ns"])
    print(f"  orders whose route took an earlier order's answer in during the turn (fills): {waited}", file=out)
    cores = {k: g.cores(k) for k in g.pids}
    rss = {k: v / 2**20 for k, v in g.peak_rss.items()}
    me = r["engine_key"]
    print(f"  CPU (cores): engine {cores[me]:.2f}, fakes {cores['fakes']:.2f}, Ray rest {cores['ray_rest']:.2f}, "
          f"driver {cores['driver']:.2f}; machine {g.machine_cores():.2f} of {os.cpu_count()}", file=out)
    print(f"  RSS peak (MB): engine {rss[me]:.0f}, fakes {rss['fakes']:.0f}, Ray rest {rss['ray_rest']:.0f}, "
          f"driver {rss['driver']:.0f}", file=out)
    row = {"routes": len(r["bases"]), "p50_ms": round(p50, 3), "p99_ms": round(p99, 3), "p999_ms": round(p999, 3),
           "rss_mb": round(rss[me]), "cpu_cores": round(cores[me], 3)}
    miss = {k: f"{row[k]} vs < {v:g}" for k, v in TARGETS.items() if not row[k] < v}
    print(f"  targets (p50 < 1 ms, p99 < 5 ms, RSS < 8 GB, < 80 % of the cores): "
          f"{'met' if not miss else 'missed: ' + str(miss)}", file=out)
    return row | {"n": n, "seconds": round(window_s, 1), "journal": st.journal, "task_hops": st.task_hops,
                  "stages_p50_ms": {s: round(pct(joined.stages[s], 0.5), 3) for s in STAGES},
                  "stages_p99_ms": {s: round(pct(joined.stages[s], 0.99), 3) for s in STAGES},
                  "fakes_cpu_cores": round(cores["fakes"], 3), "ray_rest_cpu_cores": round(cores["ray_rest"], 3),
                  "machine_cpu_cores": round(g.machine_cores(), 3), "frames_per_s": round(frames / window_s),
                  "cpu_count": os.cpu_count()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--routes", type=int, default=50, help="routes (the fakes serve this many coins; at most 177)")
    ap.add_argument("--seconds", type=float, default=60.0, help="measured window")
    ap.add_argument("--warmup", type=float, default=None,
                    help="seconds traded before the window (default: one strategy cycle + 5 s, so that every "
                         "route's staggered start is behind)")
    ap.add_argument("--no-journal", action="store_true", help="no SQLite journal (intents not made durable)")
    ap.add_argument("--journal", choices=("log", "inline", "sql"), default="log",
                    help="log: the intent is durable by fdatasync of the intent log on its worker thread, SQLite "
                         "filled after (the default, infra/journal_intents.py); inline: that sync on the event "
                         "loop's thread; sql: the order waits for SQLite's commit (before)")
    ap.add_argument("--task-hops", action="store_true",
                    help="the route's turn, the intent write and the gateway each start as a new task, a loop turn "
                         "later (before); default: started at once (infra/live/eager.py)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--store", help="over 50 routes: a store with the kimpai snapshots (default: import them now)")
    ap.add_argument("--rate-binance", type=float, default=10.0, help="Binance diffs/s per symbol (the venue's 100 ms)")
    ap.add_argument("--rate-upbit", type=float, default=5.0, help="Upbit books/s per market")
    ap.add_argument("--upbit-order-per-s", type=int, default=12,
                    help="the fake Upbit's order limit: the venue's since 2026-08-21, which the Upbit client keeps to "
                         "(upbit/limits.py). At the fake's default 8 the client's 12/s earns 429s, then a 60 s ban")
    ap.add_argument("--trips-per-s", type=float, default=1.0,
                    help="round trips a second over all routes the strategy aims at (each: 2 Upbit + 2 Binance "
                         "orders); the recorded Binance limit is 50 orders / 10 s and the clients queue orders "
                         "above their venue's limit (up to 2 s, then refuse them)")
    ap.add_argument("--ab", action="store_true",
                    help="two engines side by side on the same fakes, every other route each, measured in the same "
                         "window: 'before' (--journal sql --task-hops) and 'after' (the options given); implies "
                         "--no-reconcile (each would see the other's orders move the shared balances, and hold)")
    ap.add_argument("--no-reconcile", action="store_true",
                    help="no reconciliation passes (a pass that times out on a loaded machine holds every route)")
    ap.add_argument("--set", action="append", default=[], help="config override (after the eager strategy)")
    ap.add_argument("--gil-switch-ms", type=float, help="the host process's GIL switch interval (Python's default: "
                    "5; default: LiveSpec.gil_switch_s)")
    ap.add_argument("--role", choices=("driver", "fakes"), default="driver", help=argparse.SUPPRESS)
    ap.add_argument("--wirelog", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.role == "fakes":
        asyncio.run(_fakes_main(args))
        return
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        wirelog = tmp / "wire.json"
        proc, info = _start_fakes(args, wirelog)
        try:
            run = asyncio.run(_drive(args, info, proc.pid, tmp))
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
        log = WireLog.load(wirelog.read_text(encoding="utf-8"))
    rows = {r["stack"].label: report(run, r, log, join(r["traces"], log, run["t0"], run["t1"])) for r in run["runs"]}
    print(json.dumps({"benchmark": "live_latency"} | (rows.get("") or {"ab": True, **rows})))


if __name__ == "__main__":
    main()
