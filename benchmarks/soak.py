"""Soak: 24 h of market events for 50 routes through the paper actor system, compressed, with periodic chaos.

    python benchmarks/soak.py [--routes 50] [--hours 24] [--stretch 50] [--kills 24] [--out DIR]

The load is paper_latency.py's (a synthetic stream per route calibrated on the real Binance L2 and Upbit WS
recordings: Binance depth diffs + trades, Upbit top-15 snapshots, FX at 1 Hz), with every message gap stretched
``--stretch`` times (50: a Binance diff every ~5 s and an Upbit book every ~17 s instead of every 100 ms and
340 ms; 600 events per route per second at 1x is ~2.6 G events for 24 h x 50 routes, beyond this machine in
one sitting). The paper system replays it as fast as it can (``scenarios.soak``: restartable, supervised,
SQLite journal, alerts through a file outbox to a local webhook) while one actor is killed at evenly spaced
points, the targets taking turns. Prints crashes, restarts, alerts, what was lost (paper = backtest route by
route, journal = what was sent), RSS per actor over market hours (slope MB/h, first and last hour), latency
p50/p99 per market hour; ends with ONE JSON line. Target: 0 crashes, flat memory, stable p99, nothing lost.
See benchmarks/README.md ("Soak").
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import paper_latency as pl
import replay_throughput as rt

from arbitrage_lite.actors.risk import ORDER_WAIT_S
from arbitrage_lite.scenarios.soak import SoakPlan, run_soak

MAIN_ROLES = ("route:host0", "portfolio", "risk", "alert", "fx", "feed:upbit", "driver")


def stretched(cal: pl.Calibration, k: float) -> pl.Calibration:
    """The calibration with every message gap (Binance diffs, Upbit books) ``k`` times longer."""
    shape = dataclasses.replace(cal.shape, diff_dt_ns=(cal.shape.diff_dt_ns * k).astype(cal.shape.diff_dt_ns.dtype))
    return dataclasses.replace(cal, shape=shape, upbit_gap_ns=(cal.upbit_gap_ns * k).astype(cal.upbit_gap_ns.dtype))


def hour_table(rep: dict[str, Any], samples_rss: dict[int, dict[str, float]]) -> list[str]:
    roles = [r for r in MAIN_ROLES if any(r in v for v in samples_rss.values())]
    head = f"{'hour':>4} {'legs':>7} {'p50 ms':>8} {'p99 ms':>8} " + " ".join(f"{r[:12]:>12}" for r in roles)
    lines = [head + "   (private RSS MB, RssAnon, mean over the hour)", "-" * len(head)]
    lat = rep["latency_by_hour"]
    for h in sorted(set(lat) | set(samples_rss)):
        x = lat.get(h, {})
        lines.append(f"{h:>4} {x.get('legs', 0):>7} {x.get('p50_ms', float('nan')):>8.2f} "
                     f"{x.get('p99_ms', float('nan')):>8.2f} "
                     + " ".join(f"{samples_rss.get(h, {}).get(r, float('nan')):>12.1f}" for r in roles))
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--routes", type=int, default=50)
    ap.add_argument("--hours", type=float, default=24.0, help="market hours replayed (default 24)")
    ap.add_argument("--stretch", type=float, default=50.0, help="message gaps x this (default 50; 1 = real rate)")
    ap.add_argument("--kills", type=int, default=24, help="chaos kills over the run (default 24)")
    ap.add_argument("--window-s", type=float, default=5.0, help="feed window, market seconds (default 5)")
    ap.add_argument("--out", type=Path, default=None, help="run directory (default: a new temporary one)")
    ap.add_argument("--data-dir", type=Path, default=rt.SHARED)
    ap.add_argument("--seed", type=int, default=pl.SEED)
    ap.add_argument("--no-risk", action="store_true",
                    help="no RiskCoordinator (every open allowed; with it, questions are answered in market-time order "
                         "across routes: a route waiting for its turn lets its feed run on)")
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/0",
                    help="snapshots to this Redis, as deployed ('none': the file store only, every save fsync'd)")
    args = ap.parse_args(argv)
    if args.routes <= 0 or args.hours <= 0 or args.stretch <= 0 or args.window_s <= 0 or args.kills < 0:
        raise SystemExit("--routes, --hours, --stretch and --window-s must be positive, --kills >= 0")
    out = args.out or Path(tempfile.mkdtemp(prefix="soak_"))
    t0 = time.perf_counter()
    cal = stretched(pl.calibrate(args.data_dir), args.stretch)
    data = pl.build_routes(cal, args.routes, args.hours * 3600.0, args.seed)
    n = sum(len(d.events) for d in data.values())
    print(f"soak: {args.routes} routes x {args.hours:g} market hours, message gaps x {args.stretch:g}: {n:,} events "
          f"({n / args.routes / args.hours / 3600:.1f} per route per market second), built in "
          f"{time.perf_counter() - t0:.1f} s; {args.kills} kills; out {out}", flush=True)
    pl.start_ray()
    try:
        limits = None if args.no_risk else pl.bench_limits()
        rep = run_soak(data, SoakPlan(out, pl.latency_config(), limits, int(args.window_s * 1e9),
                                      args.kills, seed=args.seed, progress_s=30.0,
                                      run_id=f"s{int(time.time()) % 10**7}",  # Ray names, snapshot keys: fresh
                                      redis_url=None if args.redis == "none" else args.redis))
    finally:
        import ray

        ray.shutdown()
    print_report(rep, args)
    (out / "soak.json").write_text(json.dumps(rep, indent=1, default=str))
    return 0 if rep["crashes"] == 0 and rep["nothing_lost"] else 1


def print_report(rep: dict[str, Any], args: argparse.Namespace) -> None:
    print(f"\nreplayed {rep['market_hours']:.2f} market hours in {rep['wall_s']:.0f} s wall "
          f"({rep['market_hours'] * 3600 / max(rep['wall_s'], 1e-9):.0f}x market time), {rep['events']:,} events")
    print(*hour_table(rep, rep["rss_by_hour"]), sep="\n")
    print(f"\n{'actor':<28} {'first h MB':>10} {'last h MB':>10} {'peak MB':>9} {'MB/h':>8} {'procs':>5}")
    for role, m in sorted(rep["memory"].items()):
        slope = m["mb_per_hour"]
        print(f"{role:<28} {m['first_hour_mb']:>10.1f} {m['last_hour_mb']:>10.1f} {m['peak_mb']:>9.1f} "
              f"{slope if slope is not None else float('nan'):>8.2f} {m['incarnations']:>5}")
    lost = rep["lost"]
    print(f"\ncrashes {rep['crashes']} (run error: {rep['error']}; supervisor halted: {rep['halted']})")
    print(f"chaos kills {rep['kills']}, recovered {rep['recovered']} (slowest {rep['recover_s_max']} s); restarts "
          f"(supervisor) {rep['restarts']}; pids changed: {rep['restarts_seen_by_pid']}")
    print(f"risk questions answered after waiting {ORDER_WAIT_S:g} s for slower routes: {rep['risk_order_timeouts']}")
    print(f"alerts raised {rep['alerts_raised']} {rep['alerts_by_rule']}, delivered to the webhook "
          f"{rep['alerts_delivered']}")
    print(f"nothing lost: {rep['nothing_lost']} (routes differing from the backtest: "
          f"{lost['routes_differing_from_backtest'] or 'none'}; {lost['round_trips']} round trips, {lost['fills']} "
          f"fills; journal {lost['journal_counts']} vs sent {lost['journal_expected']}, "
          f"{lost['journal_left_in_overflow']} left in overflow)")
    p99 = [h["p99_ms"] for h in rep["latency_by_hour"].values()]
    route_mem = rep["memory"].get("route:host0", {})
    print(json.dumps({"routes": rep["routes"], "market_hours": rep["market_hours"], "stretch": args.stretch,
                      "events": rep["events"], "wall_s": rep["wall_s"], "crashes": rep["crashes"],
                      "kills": rep["kills"], "restarts": rep["restarts"], "alerts_raised": rep["alerts_raised"],
                      "alerts_delivered": rep["alerts_delivered"], "nothing_lost": rep["nothing_lost"],
                      "route_host_mb_per_h": route_mem.get("mb_per_hour"),
                      "max_mb_per_h": max((m["mb_per_hour"] or 0.0 for m in rep["memory"].values()), default=None),
                      "p99_ms_first_h": p99[0] if p99 else None, "p99_ms_last_h": p99[-1] if p99 else None,
                      "p99_ms_max_h": max(p99) if p99 else None}))


if __name__ == "__main__":
    raise SystemExit(main())
