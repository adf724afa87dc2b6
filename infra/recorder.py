"""Market-data recorder, sans-IO part: venue messages -> store rows, and a bounded rolling segment writer.

Normalization (one object per venue symbol, fed parsed ``core.venue`` messages by the I/O shell,
``infra/recorder_io.py``): Binance books are synced with :class:`~.venues.binance.book.LocalBook`; every REST
snapshot it installs becomes a ``book`` row set and every diff it applies a ``depth_diff`` row set, so the
store replays into exactly the book the recorder held. Trades go to ``trades``, bookTicker to ``bbo``, Upbit
orderbook snapshots to ``book``. Gaps, stale diffs, snapshots and (re)connects go to the ``markers`` kind.
``ts_local`` is strictly increasing per venue symbol and is the time the recorder's book reached that state
(diffs buffered during a resync take the snapshot's arrival time): the replay order is the recorder's order.

Writer: rows are buffered per series and written as one Parquet *segment* per series per flush
(``STORE/_recording/<kind>/<venue>/<SYM>/<session>-<n>.parquet``, temp file + rename), when ``flush_s`` has
passed or ``max_rows`` rows are buffered, whichever comes first: memory holds at most ``max_rows`` rows and
a crash loses at most the rows since the last flush. :meth:`SegmentWriter.compact` merges segments into the
store's series (``Store.write``: sorted, duplicates dropped) and deletes them; the recorder compacts at its
end and compacts leftovers of a crashed run when it starts.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..core.venue import BestBidAsk, BookDelta, BookSnapshot, Trade
from .data.store import SCHEMAS, Store
from .venues.binance.book import LocalBook, Sync

SEGMENTS = "_recording"
# markers.event codes (docs/data.md "Recorded data")
CONNECT, DISCONNECT, GAP, SNAPSHOT, STALE = 1, 2, 3, 4, 5
MARKER_NAMES = {CONNECT: "connect", DISCONNECT: "disconnect", GAP: "gap", SNAPSHOT: "snapshot", STALE: "stale"}
Row = tuple[Any, ...]


@dataclass(slots=True)
class WriterStats:
    rows: dict[str, int] = field(default_factory=dict)  # kind -> rows flushed
    flushes: int = 0
    segments: int = 0
    max_buffered: int = 0
    compacted_segments: int = 0


class SegmentWriter:
    """Buffers rows per (kind, venue, symbol); flushes them as rolling segment files under the store."""

    def __init__(self, store_root: Path, flush_s: float = 2.0, max_rows: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.root = Path(store_root) / SEGMENTS
        self.flush_s, self.max_rows, self.clock = flush_s, max_rows, clock
        self.session = f"{time.time_ns():020d}"
        self._buf: dict[tuple[str, str, str], list[Row]] = {}
        self.buffered = 0
        self._n = 0
        self._last_flush = clock()
        self.stats = WriterStats()

    def add(self, kind: str, venue: str, symbol: str, rows: list[Row]) -> None:
        """Buffer rows (tuples in the kind's column order); flushes at once if the row bound is reached."""
        if not rows:
            return
        self._buf.setdefault((kind, venue, symbol), []).extend(rows)
        self.buffered += len(rows)
        self.stats.max_buffered = max(self.stats.max_buffered, self.buffered)
        if self.buffered >= self.max_rows:
            self.flush()

    def maybe_flush(self) -> bool:
        if self.clock() - self._last_flush >= self.flush_s:
            self.flush()
            return True
        return False

    def flush(self) -> int:
        """Write every buffered series as a new segment file (atomic); returns rows written."""
        written = 0
        for (kind, venue, symbol), rows in self._buf.items():
            schema = SCHEMAS[kind]
            cols = list(zip(*rows, strict=True))
            table = pa.table({f.name: pa.array(c, type=f.type) for f, c in zip(schema, cols, strict=True)},
                             schema=schema)
            folder = self.root / kind / venue / symbol
            folder.mkdir(parents=True, exist_ok=True)
            self._n += 1
            path = folder / f"{self.session}-{self._n:08d}.parquet"
            tmp = path.with_name(f".{path.name}.tmp")
            pq.write_table(table, tmp, compression="zstd")
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, path)
            self.stats.rows[kind] = self.stats.rows.get(kind, 0) + len(rows)
            self.stats.segments += 1
            written += len(rows)
        self._buf.clear()
        self.buffered = 0
        self._last_flush = self.clock()
        self.stats.flushes += 1
        return written

    def compact(self, store: Store, batch: int = 64) -> int:
        """Merge every segment into the store (``batch`` segments per store write), then delete them."""
        done = 0
        if not self.root.is_dir():
            return 0
        with store.batch():
            for folder in sorted(p for p in self.root.glob("*/*/*") if p.is_dir()):
                kind, venue, symbol = folder.relative_to(self.root).parts
                segs = sorted(folder.glob("*.parquet"))
                for i in range(0, len(segs), batch):
                    part = segs[i:i + batch]
                    table = pa.concat_tables([pq.read_table(p, schema=SCHEMAS[kind]) for p in part])
                    store.write(kind, venue, symbol, table, source="recorder")
                    for p in part:
                        p.unlink()
                    done += len(part)
        self.stats.compacted_segments += done
        return done


class _Series:
    """One venue symbol's strictly increasing local clock and its row sink."""

    def __init__(self, venue: str, store_symbol: str, out: SegmentWriter) -> None:
        self.venue, self.store_symbol, self.out = venue, store_symbol, out
        self._t = -1
        self.markers: dict[int, int] = {}

    def tick(self, ts_local: int) -> int:
        self._t = max(ts_local, self._t + 1)
        return self._t

    def marker(self, event: int, ts_local: int, seq: int = -1, prev: int = -1, ts: int = -1,
               same_time: bool = False) -> None:
        """A marker row; ``same_time``: at exactly ``ts_local`` (the instant of the rows it describes)."""
        self.markers[event] = self.markers.get(event, 0) + 1
        t = ts_local if same_time else self.tick(ts_local)
        self.out.add("markers", self.venue, self.store_symbol, [(ts, t, event, seq, prev)])

    def trade(self, t: Trade) -> None:
        self.out.add("trades", self.venue, self.store_symbol, [(
            t.ts_venue if t.ts_venue > 0 else -1, self.tick(t.ts_local), int(t.trade_id), float(t.price),
            float(t.qty), int(t.aggressor))])

    def snapshot_rows(self, s: BookSnapshot, ts_local: int, ts: int) -> int:
        t = self.tick(ts_local)
        rows = [(ts, t, 0, side, lvl, float(lv.price), float(lv.qty))
                for side, levels in ((0, s.bids), (1, s.asks)) for lvl, lv in enumerate(levels)]
        self.out.add("book", self.venue, self.store_symbol, rows)
        return t


class BinanceSymbol(_Series):
    """One Binance symbol: the U/u-synced book, its snapshots and applied diffs as rows, markers."""

    def __init__(self, symbol: str, store_symbol: str, out: SegmentWriter) -> None:
        super().__init__("binance", store_symbol, out)
        self.symbol = symbol
        self.book = LocalBook(symbol)
        self.last_diff_u = -1  # u of the last diff written: a diff at or below it is a duplicate / old one
        self.diffs = 0

    @property
    def wants_snapshot(self) -> bool:
        """The book is not synced and diffs are buffered: the shell should fetch ``/api/v3/depth``."""
        return not self.book.synced and bool(self.book.buffer)

    def on_connect(self, ts_local: int) -> None:
        self.book = LocalBook(self.symbol)  # a new connection: a full resync (diffs missed while away)
        self.marker(CONNECT, ts_local)

    def on_disconnect(self, ts_local: int) -> None:
        self.marker(DISCONNECT, ts_local, prev=self.book.book_id if self.book.book_id is not None else -1)

    def on_delta(self, d: BookDelta) -> Sync:
        before = self.book.book_id
        res = self.book.on_delta(d)
        if res is Sync.APPLIED:
            self._diff(d, self.tick(d.ts_local))
        elif res is Sync.STALE and d.last_seq <= self.last_diff_u:
            self.marker(STALE, d.ts_local, d.last_seq, self.last_diff_u, d.ts_venue)
        elif res is Sync.NEEDS_SNAPSHOT:
            self.marker(GAP, d.ts_local, d.first_seq, before if before is not None else -1, d.ts_venue)
        return res

    def on_snapshot(self, s: BookSnapshot) -> Sync:
        """Install a REST snapshot; write it, then the buffered diffs it let through, in order."""
        pending = [d for d in self.book.buffer if s.seq is not None and d.last_seq > s.seq]
        applied, snaps, gaps = self.book.applied, self.book.snapshots, self.book.gaps
        res = self.book.on_snapshot(s)
        if self.book.snapshots > snaps:
            t = self.book_rows(s)
            self.marker(SNAPSHOT, t, s.seq if s.seq is not None else -1, same_time=True)
            for d in pending[:self.book.applied - applied]:
                self._diff(d, self.tick(t))
        if self.book.gaps > gaps:
            self.marker(GAP, s.ts_local, -1, s.seq if s.seq is not None else -1)
        return res

    def book_rows(self, s: BookSnapshot) -> int:
        return self.snapshot_rows(s, s.ts_local, -1)  # REST depth has no venue time

    def _diff(self, d: BookDelta, t: int) -> None:
        rows = [(d.ts_venue, t, d.first_seq, d.last_seq, side, float(lv.price), float(lv.qty))
                for side, levels in ((0, d.bids), (1, d.asks)) for lv in levels]
        self.out.add("depth_diff", self.venue, self.store_symbol, rows)
        self.last_diff_u = d.last_seq
        self.diffs += 1

    def on_trade(self, t: Trade) -> None:
        self.trade(t)

    def on_bbo(self, b: BestBidAsk) -> None:
        self.out.add("bbo", self.venue, self.store_symbol, [(
            b.ts_venue if b.ts_venue > 0 else -1, self.tick(b.ts_local), b.seq if b.seq is not None else -1,
            float(b.bid), float(b.bid_qty), float(b.ask), float(b.ask_qty))])


class UpbitSymbol(_Series):
    """One Upbit market: every orderbook snapshot as a ``book`` row set, trades, (re)connect markers."""

    def __init__(self, code: str, store_symbol: str, out: SegmentWriter) -> None:
        super().__init__("upbit", store_symbol, out)
        self.code = code
        self.books = 0

    def on_connect(self, ts_local: int) -> None:
        self.marker(CONNECT, ts_local)

    def on_disconnect(self, ts_local: int) -> None:
        self.marker(DISCONNECT, ts_local)

    def on_book(self, s: BookSnapshot) -> None:
        self.snapshot_rows(s, s.ts_local, s.ts_venue if s.ts_venue > 0 else -1)
        self.books += 1

    def on_trade(self, t: Trade) -> None:
        self.trade(t)


def binance_symbol(base: str) -> tuple[str, str]:
    """``BTC`` -> (``BTCUSDT``, store ``BTC-USDT``)."""
    return f"{base}USDT", f"{base}-USDT"


def upbit_code(base: str) -> tuple[str, str]:
    """``BTC`` -> (``KRW-BTC``, store ``BTC-KRW``)."""
    return f"KRW-{base}", f"{base}-KRW"
