"""Time to recover from a kill, per restartable role, with the zero-loss check of every drill.

Runs one undisturbed paper replay of the bundled BTC sample, then a kill drill per target (``ray.kill`` and
SIGKILL alternating), and prints per target: kills, recovery p50/max (kill -> first health ping answered by
the restored incarnation), where the time went (new process, imports, constructor, first ping; medians),
and whether the drill lost or doubled anything. Target: < 2 s per actor restart.

    python benchmarks/restart_time.py                       # every target, 3 kills each
    python benchmarks/restart_time.py --targets route:BTC fx --times 5 --redis redis://127.0.0.1:6379/0
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TARGETS = ("route:BTC", "feed:upbit", "feed:binance", "feed:fx", "fx", "portfolio", "risk", "alert")
PARTS = ("to_new_process", "imports", "constructor", "to_first_ping")


def _row(target: str, result: dict[str, Any]) -> str:
    kills = [k for k in result["chaos"].get("kills", []) if k.get("recover_s") is not None]
    parts = {p: statistics.median(k["recover_parts_s"][p] for k in kills if k.get("recover_parts_s"))
             for p in PARTS} if any(k.get("recover_parts_s") for k in kills) else {}
    split = " ".join(f"{parts[p]:6.2f}" for p in PARTS) if parts else "   (no split)"
    p50, mx = result.get("recover_s_p50"), result.get("recover_s_max")
    fig = f"{p50:6.2f} {mx:6.2f}" if p50 is not None and mx is not None else "     -      -"
    return (f"{target:<13} {result['kills']:>5} {fig}   {split}   {result['lost_fills']:>4} "
            f"{result['duplicated_fills']:>4}  {'yes' if result['passed'] else 'NO'}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--targets", nargs="+", default=list(TARGETS))
    ap.add_argument("--times", type=int, default=3)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--redis", default=None, help="snapshots in Redis at this URL (default: the file store)")
    ap.add_argument("--store", type=Path, default=None, help="a store with BTC (default: the built sample)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)

    from arbitrage_lite.infra.data.importer import run_import
    from arbitrage_lite.infra.ray_runtime import ensure_ray
    from arbitrage_lite.scenarios.drills import DrillRequest, run_drill
    from arbitrage_lite.scenarios.paper import PaperRequest, run_paper

    out = args.out or Path(tempfile.mkdtemp(prefix="restart_time_"))
    store = args.store
    if store is None:
        from arbitrage_lite.infra.data.sample import ensure_sample, find_shared_data, not_found_message

        shared = find_shared_data()
        if shared is None:
            raise SystemExit(not_found_message())
        store, sample = out / "store", ensure_sample(out / "sample_data", shared)  # only its MIT file ships
        run_import([sample / "btc_1m_joined_sample.csv.gz", sample / "usdkrw_daily_sample.csv"], store, symbol="BTC")
    ensure_ray(num_cpus=2)
    base = out / "baseline"
    run_paper(PaperRequest(store, "BTC", base, window_events=100, run_id=f"rtb{int(time.time()) % 10**5}"))
    print(f"restart time: {args.times} kills per target (ray.kill / SIGKILL alternating), seed {args.seed}, "
          f"snapshots in {args.redis or 'files'}; out {out}")
    print(f"{'target':<13} {'kills':>5} {'p50_s':>6} {'max_s':>6}   {'proc':>6} {'import':>6} {'ctor':>6} "
          f"{'ping':>6}   {'lost':>4} {'dup':>4}  passed")
    ok = True
    for target in args.targets:
        result = run_drill(DrillRequest("kill", store, "BTC", out / target.replace(":", "_"), target=target,
                                        times=args.times, seed=args.seed, window_events=100,
                                        redis_url=args.redis, baseline=base))
        ok &= bool(result["passed"])
        print(_row(target, result), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
