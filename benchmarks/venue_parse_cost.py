"""Parse cost per message, per venue and message type, on recorded payloads (issue 12: keep the hot path cheap).

A venue is one entry of ``VENUES``: a function returning ``{message type: (payloads, parse function)}``.
Each row is the best of ``--rounds`` passes over the payloads, in ns per message; ``json.loads`` alone is
timed on the same payloads so the adapter's own share shows. Prints a table, then one JSON line.
The default (3 rounds, ~2,000 messages or ~2 MB a pass) takes ~15 s; ``--long``: 20 rounds of ~20,000 / ~20 MB.

Usage: python benchmarks/venue_parse_cost.py [--rounds N] [--long] [--venue binance] [--venue upbit]
Inputs: Binance streams from sample_data/binance_btcusdt_l2_sample.gz (ships, MIT); aggTrade and the REST/user
bodies from the shared data set's fixtures when found (else those rows are skipped). Upbit: the recorded
cryptofeed SIMPLE session (fixtures/cryptofeed/UPBIT.ws.62.0.gz, 15-level books) from the shared data set.
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from arbitrage_lite.infra.data.sample import find_shared_data

REPO = Path(__file__).resolve().parent.parent
Rows = dict[str, tuple[list[bytes], Callable[[bytes], Any]]]


def _binance() -> Rows:
    from arbitrage_lite.infra.venues.binance import parse as p
    from arbitrage_lite.infra.venues.binance.book import LocalBook
    from arbitrage_lite.infra.venues.binance.rules import parse_exchange_info

    by_kind: dict[str, list[bytes]] = {"depthUpdate": [], "trade": [], "bookTicker": [], "snapshot": []}
    with gzip.open(REPO / "sample_data" / "binance_btcusdt_l2_sample.gz", "rt") as f:
        for line in f:
            js = line.rstrip("\n").partition(" ")[2]
            kind = ("snapshot" if js.startswith('{"lastUpdateId"') else "depthUpdate" if "@depth" in js[:40]
                    else "trade" if "@trade" in js[:40] else "bookTicker")
            by_kind[kind].append(js.encode())
    book = LocalBook("BTCUSDT")
    seen = [0]

    def depth_into_book(m: bytes) -> Any:
        if seen[0] % len(by_kind["depthUpdate"]) == 0:  # every pass starts a fresh book (else all diffs are stale)
            book.start_from_diffs()
        seen[0] += 1
        d = p.parse_stream(m, 0)
        return book.on_delta(d) if hasattr(d, "first_seq") else d  # type: ignore[arg-type]

    rows: Rows = {
        "depthUpdate": (by_kind["depthUpdate"], lambda m: p.parse_stream(m, 0)),
        "depthUpdate + book": (by_kind["depthUpdate"], depth_into_book),
        "trade": (by_kind["trade"], lambda m: p.parse_stream(m, 0)),
        "bookTicker": (by_kind["bookTicker"], lambda m: p.parse_stream(m, 0)),
        "REST depth snapshot (1000+1000 levels)": (by_kind["snapshot"],
                                                   lambda m: p.parse_depth_snapshot(m, "BTCUSDT", 0)),
    }
    shared = find_shared_data()
    if shared is not None:
        with gzip.open(shared / "fixtures" / "cryptofeed" / "BINANCE.ws.1.0.gz", "rt") as f:
            agg = [ln.partition(": ")[2].strip().encode() for ln in f if "@aggTrade" in ln[:80]]
        rows["aggTrade"] = (agg, lambda m: p.parse_stream(m, 0))
        rest = shared / "fixtures" / "rest"
        order = (rest / "binance_ccxt_GET_api_v3_order_LTCUSDT_market_FILLED_20230323.json").read_bytes()
        rows["REST order"] = ([order], lambda m: p.parse_order(m, 0))
        info = json.loads(gzip.decompress((rest / "binance_spot_exchangeInfo_20240908_davijr.json.gz").read_bytes()))
        info["symbols"] = info["symbols"][:1]
        rows["REST exchangeInfo (1 symbol)"] = ([json.dumps(info).encode()], lambda m: parse_exchange_info(m, 0))
    report = {"e": "executionReport", "E": 1499405658658, "s": "ETHBTC", "c": "c1", "S": "BUY", "o": "LIMIT",
              "f": "GTC", "q": "1.00000000", "p": "0.10264410", "C": "", "x": "TRADE", "X": "PARTIALLY_FILLED",
              "r": "NONE", "i": 4293153, "l": "0.40000000", "z": "0.40000000", "L": "0.10264410", "n": "0.00040000",
              "N": "ETH", "T": 1499405658657, "t": 77, "Z": "0.04105764"}  # field layout of the docs' example
    rows["executionReport (docs layout)"] = ([json.dumps(report).encode()], lambda m: p.parse_user_event(m, 0))
    return rows


def _upbit() -> Rows:
    from decimal import Decimal

    from arbitrage_lite.infra.venues.upbit import parse as p
    from arbitrage_lite.infra.venues.upbit.book import UpbitBooks

    shared = find_shared_data()
    if shared is None:
        return {}
    by_type: dict[str, list[bytes]] = {"orderbook": [], "trade": []}
    with gzip.open(shared / "fixtures" / "cryptofeed" / "UPBIT.ws.62.0.gz", "rt") as f:
        for line in f:
            _, sep, payload = line.rstrip("\n").partition(": b'")
            if sep:
                raw = payload[:-1].encode()
                by_type[json.loads(raw)["ty"]].append(raw)
    books = UpbitBooks()

    def into_book(m: bytes) -> Any:
        snap = p.parse_ws(m, 0)
        if books.books and snap is not None and not isinstance(snap, p.Rejected):
            books.drop()  # a pass replays the same session: start every message from an empty book
        return books.apply(snap) if isinstance(snap, p.BookSnapshot) else snap

    return {
        "orderbook (15 levels)": (by_type["orderbook"], lambda m: p.parse_ws(m, 0)),
        "orderbook + book.apply": (by_type["orderbook"], into_book),
        "orderbook json.loads(parse_float=Decimal)": (by_type["orderbook"],
                                                      lambda m: json.loads(m, parse_float=Decimal)),
        "trade": (by_type["trade"], lambda m: p.parse_ws(m, 0)),
    }


VENUES: dict[str, Callable[[], Rows]] = {"binance": _binance, "upbit": _upbit}
TARGET = [2000]  # messages per timed pass (--long: 20,000)


def ns_per_msg(fn: Callable[[bytes], Any], msgs: list[bytes], rounds: int) -> float:
    size = sum(len(m) for m in msgs)  # short rows repeat to a measurable pass; big bodies (1000-level depth) fewer
    reps = max(1, min(TARGET[0] // len(msgs), TARGET[0] * 1000 // size))
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter_ns()
        for _ in range(reps):
            for m in msgs:
                fn(m)
        best = min(best, (time.perf_counter_ns() - t0) / (len(msgs) * reps))
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=None, help="passes per row, best taken (default 3; --long 20)")
    ap.add_argument("--long", action="store_true", help="20 rounds of ~20,000 messages a pass (a minute or more)")
    ap.add_argument("--venue", action="append", choices=sorted(VENUES))
    args = ap.parse_args()
    args.rounds = args.rounds or (20 if args.long else 3)
    TARGET[0] = 20_000 if args.long else 2000
    out: dict[str, dict[str, dict[str, int]]] = {}
    for venue in args.venue or sorted(VENUES):
        out[venue] = {}
        for kind, (msgs, fn) in VENUES[venue]().items():
            if not msgs:
                continue
            parse_ns = ns_per_msg(fn, msgs, args.rounds)
            json_ns = ns_per_msg(json.loads, msgs, args.rounds)
            out[venue][kind] = {"ns_per_msg": round(parse_ns), "json_loads_ns": round(json_ns), "messages": len(msgs)}
            print(f"{venue:8s} {kind:40s} {parse_ns:10.0f} ns/msg  (json.loads alone {json_ns:8.0f})  n={len(msgs)}")
    print(json.dumps({"benchmark": "venue_parse_cost", "rounds": args.rounds, "pass_messages": TARGET[0],
                      "venues": out}))


if __name__ == "__main__":
    main()
