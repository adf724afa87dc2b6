"""Upbit parse cost per message on the recorded cryptofeed session (SIMPLE format, 15-level books).

benchmarks/venue_parse_cost.py (the per-venue table) did not exist when this was written; move the rows
there when it does. Prints a table, then one JSON line. Usage: python benchmarks/upbit_parse_cost.py [--rounds N]
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from decimal import Decimal

from arbitrage_lite.infra.data.sample import find_shared_data
from arbitrage_lite.infra.venues.upbit import book, parse


def frames() -> dict[str, list[bytes]]:
    shared = find_shared_data()
    if shared is None:
        raise SystemExit("shared data set not found")
    out: dict[str, list[bytes]] = {"orderbook": [], "trade": []}
    with gzip.open(shared / "fixtures" / "cryptofeed" / "UPBIT.ws.62.0.gz", "rt") as f:
        for line in f:
            _, sep, payload = line.rstrip("\n").partition(": b'")
            if sep:
                raw = payload[:-1].encode()
                out[json.loads(raw)["ty"]].append(raw)
    return out


def ns_per_msg(fn: object, msgs: list[bytes], rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter_ns()
        for m in msgs:
            fn(m)  # type: ignore[operator]
        best = min(best, (time.perf_counter_ns() - t0) / len(msgs))
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=20)
    args = ap.parse_args()
    by_type = frames()
    books = book.UpbitBooks()
    rows = {
        "upbit orderbook (15 levels) json.loads only": ns_per_msg(json.loads, by_type["orderbook"], args.rounds),
        "upbit orderbook (15 levels) json.loads Decimal": ns_per_msg(
            lambda m: json.loads(m, parse_float=Decimal), by_type["orderbook"], args.rounds),
        "upbit orderbook (15 levels) parse_ws": ns_per_msg(lambda m: parse.parse_ws(m, 0), by_type["orderbook"],
                                                           args.rounds),
        "upbit orderbook parse_ws + book.apply": ns_per_msg(
            lambda m: books.apply(parse.parse_ws(m, 0)), by_type["orderbook"], args.rounds),  # type: ignore[arg-type]
        "upbit trade parse_ws": ns_per_msg(lambda m: parse.parse_ws(m, 0), by_type["trade"], args.rounds),
    }
    for name, ns in rows.items():
        print(f"{name:50s} {ns / 1000:8.1f} us/msg")
    print(json.dumps({"benchmark": "upbit_parse_cost", "rounds": args.rounds,
                      "messages": {k: len(v) for k, v in by_type.items()},
                      "ns_per_msg": {k: round(v) for k, v in rows.items()}}))


if __name__ == "__main__":
    main()
