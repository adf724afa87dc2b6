"""The disk's floor for a durable intent (issue 13): one intent-sized line appended and made durable, by each way
the journal could do it, timed one at a time (no group commit), in the given directory (the journal's disk).

    python benchmarks/fsync_cost.py [DIR] [--n 400]

fsync / fdatasync after a write, an O_DSYNC write, and a one-row SQLite commit (WAL, synchronous=FULL: the SQL
journal's own setting). Prints p50 / p99 / max per way and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import tempfile
import time
from collections.abc import Callable

LINE = (b'{"r":["intent","al-latbench-17-BTC-ou","latbench","BTC",-1,1765000000000000000],"p":{"client_id":'
        b'"al-latbench-17-BTC-ou","venue":"UPBIT","symbol":"BTC-KRW","side":"BUY","qty":"0.00729",'
        b'"limit_price":null,"trade_id":"","role":"open","arrive_ns":1765000000000000000}}\n')


def _timed(n: int, step: Callable[[int], None]) -> list[int]:
    out = []
    for i in range(n):
        t = time.perf_counter_ns()
        step(i)
        out.append(time.perf_counter_ns() - t)
    return sorted(out)


def _file(directory: str, n: int, mode: str) -> list[int]:
    path = os.path.join(directory, "fsync_probe.log")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | (os.O_DSYNC if mode == "O_DSYNC" else 0), 0o644)
    sync = {"fsync": os.fsync, "fdatasync": os.fdatasync, "O_DSYNC": lambda _fd: None}[mode]

    def step(_i: int) -> None:
        os.write(fd, LINE)
        sync(fd)
    try:
        return _timed(n, step)
    finally:
        os.close(fd)
        os.unlink(path)


def _sqlite(directory: str, n: int) -> list[int]:
    path = os.path.join(directory, "fsync_probe.sqlite3")
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE j (k TEXT PRIMARY KEY, p TEXT)")

    def step(i: int) -> None:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO j VALUES (?, ?) ON CONFLICT DO NOTHING", (str(i), LINE.decode()))
        conn.execute("COMMIT")
    try:
        return _timed(n, step)
    finally:
        conn.close()
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.unlink(path + suffix)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir", nargs="?", default=None, help="a directory on the journal's disk (default: the temp dir)")
    ap.add_argument("--n", type=int, default=400)
    args = ap.parse_args()
    directory = args.dir or tempfile.gettempdir()
    if not os.path.isdir(directory):
        raise SystemExit(f"not a directory: {directory}")
    row: dict[str, object] = {"benchmark": "fsync_cost", "dir": directory, "n": args.n}
    ways = {m: (lambda m=m: _file(directory, args.n, m)) for m in ("fsync", "fdatasync", "O_DSYNC")}
    ways["sqlite_full_commit"] = lambda: _sqlite(directory, args.n)
    for name, run in ways.items():
        xs = run()
        p50, p99, top = xs[len(xs) // 2] / 1e3, xs[min(len(xs) - 1, int(0.99 * len(xs)))] / 1e3, xs[-1] / 1e3
        print(f"{name:19} p50 {p50:6.0f} us  p99 {p99:6.0f} us  max {top:6.0f} us")
        row[f"{name}_p50_us"], row[f"{name}_p99_us"] = round(p50), round(p99)
    print(json.dumps(row))


if __name__ == "__main__":
    main()
