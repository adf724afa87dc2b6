"""CPU cost of the fake venues serving a SYNTHETIC market (fake-venues --synthetic top:N), at 50 and 180 coins.

The fakes run as their own process (the CLI, as the latency benchmark starts them); this process subscribes to
every Binance depth stream and every Upbit orderbook (one connection each, frames counted, not parsed) and reads
the fakes' CPU seconds from /proc over a window. Without --store the kimpai snapshots of the shared data set are
imported into a temporary store first (~10 s). Ends with one JSON line.

    python benchmarks/synthetic_fake_cost.py [--store S] [--coins 50,180] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def machine_busy_s() -> float:
    with open("/proc/stat", encoding="ascii") as fh:
        f = [int(x) for x in fh.readline().split()[1:]]
    return (sum(f) - f[3] - f[4]) / CLK_TCK


async def count(ws: aiohttp.ClientWebSocketResponse, counter: list[int]) -> None:
    async for _ in ws:
        counter[0] += 1


async def measure(info: dict[str, Any], pid: int, seconds: float) -> dict[str, Any]:
    b_streams = "/".join(f"{s.lower()}@depth@100ms" for s in info["binance"]["markets"])
    counts = {"binance": [0], "upbit": [0]}
    async with aiohttp.ClientSession() as session, \
            session.ws_connect(info["binance"]["ws"] + "/stream?streams=" + b_streams, max_msg_size=0) as bws, \
            session.ws_connect(info["upbit"]["ws"], max_msg_size=0) as uws:
        await uws.send_str(json.dumps([{"ticket": "bench"}, {"type": "orderbook", "codes": info["upbit"]["markets"]},
                                       {"format": "SIMPLE"}]))
        tasks = [asyncio.create_task(count(bws, counts["binance"])), asyncio.create_task(count(uws, counts["upbit"]))]
        await asyncio.sleep(2.0)  # warm up
        c0, m0, t0 = cpu_s(pid), machine_busy_s(), time.monotonic()
        n0 = {k: v[0] for k, v in counts.items()}
        await asyncio.sleep(seconds)
        c1, m1, t1 = cpu_s(pid), machine_busy_s(), time.monotonic()
        n1 = {k: v[0] for k, v in counts.items()}
        for t in tasks:
            t.cancel()
    wall = t1 - t0
    return {"coins": len(info["binance"]["markets"]), "upbit_markets": len(info["upbit"]["markets"]),
            "fake_cpu_pct_of_one_core": round(100 * (c1 - c0) / wall, 1),
            "machine_busy_pct_of_all_cores": round(100 * (m1 - m0) / wall / (os.cpu_count() or 1), 1),
            "binance_msgs_per_s": round((n1["binance"] - n0["binance"]) / wall),
            "upbit_msgs_per_s": round((n1["upbit"] - n0["upbit"]) / wall),
            "expected_binance_msgs_per_s": 10 * len(info["binance"]["markets"]),
            "expected_upbit_msgs_per_s": 5 * len(info["upbit"]["markets"]), "window_s": round(wall, 1)}


def run_one(store: Path, n: int, seconds: float) -> dict[str, Any]:
    proc = subprocess.Popen([sys.executable, "-m", "arbitrage_lite.cli", "fake-venues", "--synthetic", f"top:{n}",
                             "--store", str(store)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        return asyncio.run(measure(info, proc.pid, seconds))
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", help="a store with the kimpai snapshots imported (default: import them now)")
    ap.add_argument("--coins", default="50,180")
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(args.store) if args.store else Path(tmp) / "store"
        if not args.store:
            from arbitrage_lite.infra.data.importer import run_import
            from arbitrage_lite.infra.data.sample import find_shared_data

            shared = find_shared_data()
            if shared is None:
                raise SystemExit("no shared data set: give --store")
            k = shared / "snapshots_multi_symbol_kimpai"
            run_import(sorted(k.glob("*.csv.gz")), store)
        rows = [run_one(store, int(n), args.seconds) for n in args.coins.split(",")]
    for r in rows:
        print(f"{r['coins']:>4} coins: fake {r['fake_cpu_pct_of_one_core']:5.1f}% of a core, "
              f"{r['binance_msgs_per_s']}/{r['expected_binance_msgs_per_s']} Binance and "
              f"{r['upbit_msgs_per_s']}/{r['expected_upbit_msgs_per_s']} Upbit msgs/s, "
              f"machine {r['machine_busy_pct_of_all_cores']}% busy", file=sys.stderr)
    print(json.dumps({"benchmark": "synthetic_fake_cost", "cpu_count": os.cpu_count(), "runs": rows}))


if __name__ == "__main__":
    main()
