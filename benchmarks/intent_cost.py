"""What making an intent durable costs the order, old way against new, in one run (issue 13): the journal stage of
benchmarks/live_latency.py without the rest of the engine around it.

    python benchmarks/intent_cost.py [--trips 300] [--every-ms 20] [--dir DIR]

Two JournalWriters over the embedded SQLite journal (WAL, synchronous=FULL), each in its own directory on the
same disk: ``sql`` waits for the SQLite commit of the batch holding the intent (the journal before issue 13),
``log`` for the fdatasync of the intent log (infra/journal_intents.py; SQLite filled after). A trip is what a
route sends at once: two intents (one per venue) and, as the route does, an order event per leg and a few other
records (fills, a trade transition) submitted without waiting. Trips alternate between the writers, so both
see the same disk at the same moments. Prints p50 / p99 / max per way and one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from arbitrage_lite.core.domain import Side, Venue
from arbitrage_lite.core.order_fsm import Order
from arbitrage_lite.infra.journal import JournalRecord, JournalWriter, Kind, intent_record
from arbitrage_lite.infra.journal_sqlite import SqliteJournal

MODES = ("sql", "log", "inline")


def _others(trip: int, now: int) -> list[JournalRecord]:
    return [JournalRecord(Kind.ORDER_EVENT, f"t{trip}-{i}:1", "bench", "BTC", -1, now, {"seq": 1, "event": "submit"})
            for i in range(2)] + [
        JournalRecord(Kind.FILL, f"UPBIT:{trip}-{i}", "bench", "BTC", now, now, {"price": "95000000", "qty": "0.01"})
        for i in range(2)] + [JournalRecord(Kind.TRADE_TRANSITION, f"t{trip}:1", "bench", "BTC", -1, now, {})]


async def _trip(writer: JournalWriter, trip: int) -> list[int]:
    now = time.time_ns()
    legs = [Order(f"al-bench-{trip}-BTC-o{v}", venue, sym, side, Decimal("0.01"), Decimal(95_000_000))
            for v, venue, sym, side in (("u", Venue.UPBIT, "BTC-KRW", Side.BUY),
                                        ("b", Venue.BINANCE, "BTC-USDT", Side.SELL))]

    async def one(order: Order) -> int:
        t = time.perf_counter_ns()
        await writer.write_intent_before_send(intent_record("bench", "BTC", order, now))
        return time.perf_counter_ns() - t

    for rec in _others(trip, now):
        writer.submit(rec)
    return list(await asyncio.gather(*(one(o) for o in legs)))


async def _run(trips: int, every_s: float, root: Path) -> dict[str, list[int]]:
    writers = {}
    for mode in MODES:
        d = root / mode
        writers[mode] = JournalWriter(SqliteJournal(d / "journal.sqlite3"), d / "bench.overflow.jsonl",
                                      owns_backend=True,
                                      intent_log=None if mode == "sql" else d / "bench.intents.jsonl",
                                      intent_log_inline=mode == "inline")
        await writers[mode].start()
    out: dict[str, list[int]] = {m: [] for m in writers}
    for trip in range(trips):
        mode = MODES[trip % len(MODES)]
        out[mode] += await _trip(writers[mode], trip)
        await asyncio.sleep(every_s)
    for w in writers.values():
        await w.close()
    return out


def _pct(xs: list[int], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))] / 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trips", type=int, default=300, help="trips in all (half per way)")
    ap.add_argument("--every-ms", type=float, default=20.0, help="pause between trips")
    ap.add_argument("--dir", help="a directory on the journal's disk (default: a temp dir)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as d:
        got = asyncio.run(_run(args.trips, args.every_ms / 1e3, Path(d)))
    row: dict[str, object] = {"benchmark": "intent_cost", "trips": args.trips}
    for mode, xs in got.items():
        what = {"sql": "SQLite commit (before)", "log": "intent log fdatasync", "inline": "... on the loop's thread"}[
            mode]
        print(f"intent durable, {what:23} n={len(xs)} p50 {_pct(xs, 0.5):7.0f} us  p99 {_pct(xs, 0.99):7.0f} us  "
              f"max {max(xs) / 1e3:7.0f} us")
        row[f"{mode}_p50_us"], row[f"{mode}_p99_us"] = round(_pct(xs, 0.5)), round(_pct(xs, 0.99))
    print(json.dumps(row))


if __name__ == "__main__":
    main()
