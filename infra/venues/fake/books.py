"""Market data the fakes serve: recorded books from the project's Parquet store or a snapshot file.

Store books (kind ``book``, one row per level, ``side`` 0 = bid / 1 = ask) become a time-ordered list of
:class:`Book` per market; the server replays them at real or accelerated speed. For tests, a static book is
read from a recorded snapshot file (``orderbook_snapshots/*.jsonl.gz``, ccxt-normalised
``{"timestamp", "bids": [[px, qty]], "asks": ...}``). Floats from the store become Decimals through their
shortest repr, which is the price as recorded.
"""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from ...data.sample import find_shared_data
from ...data.store import Store
from .engine import Book

# the shared data set (--data / $ARBITRAGE_LITE_DATA / ../shared/data): recorded fixtures and book snapshots
SHARED = find_shared_data() or Path("../shared/data")


def _dec(x: object) -> Decimal:
    return Decimal(repr(x)) if isinstance(x, float) else Decimal(str(x))


def _book(bids: list[tuple[Decimal, Decimal]], asks: list[tuple[Decimal, Decimal]], ts_ms: int, uid: int) -> Book:
    bids = sorted((lv for lv in bids if lv[1] > 0), key=lambda lv: -lv[0])
    asks = sorted((lv for lv in asks if lv[1] > 0), key=lambda lv: lv[0])
    return Book(tuple(bids), tuple(asks), ts_ms, uid)


def books_from_snapshot_file(path: Path) -> list[Book]:
    """Every snapshot of a ccxt-normalised ``*.jsonl.gz`` book file, in file order."""
    out: list[Book] = []
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            msg = json.loads(line)
            ts = datetime.fromisoformat(msg["timestamp"])
            ts = ts if ts.tzinfo else ts.replace(tzinfo=UTC)
            bids = [(_dec(p), _dec(q)) for p, q in msg["bids"]]
            asks = [(_dec(p), _dec(q)) for p, q in msg["asks"]]
            out.append(_book(bids, asks, int(ts.timestamp() * 1000), n))
    return out


def books_from_store(store: Store, venue: str, symbol: str) -> list[Book]:
    """The recorded book snapshots of ``venue`` / ``symbol`` (``BTC-KRW``), oldest first."""
    t = store.read("book", venue, symbol).to_pydict()
    snaps: dict[int, tuple[int, list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]] = {}
    for ts, ts_local, snap, side, px, qty in zip(t["ts"], t["ts_local"], t["snapshot"], t["side"], t["price"],
                                                  t["qty"], strict=True):
        when = ts if ts >= 0 else ts_local
        entry = snaps.setdefault(snap, (when // 1_000_000, [], []))
        (entry[1] if side == 0 else entry[2]).append((_dec(px), _dec(qty)))
    ordered = sorted(snaps.items(), key=lambda kv: (kv[1][0], kv[0]))
    return [_book(b, a, ts, i) for i, (_, (ts, b, a)) in enumerate(ordered, 1)]


def store_markets(store: Store, venue: str) -> list[str]:
    """Symbols (``BASE-QUOTE``) with recorded books for ``venue`` in the store."""
    return sorted(s.symbol for s in store.series() if s.kind == "book" and s.venue == venue)
