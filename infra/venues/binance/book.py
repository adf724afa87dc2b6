"""Local Binance order book from a REST snapshot plus ``depth`` diffs (brief B6, the documented U/u procedure).

A pure state machine: feed it deltas and snapshots, it answers what happened (applied, buffered, stale,
needs_snapshot) and counts gaps, stale and crossed updates. It never fetches anything itself: on
``NEEDS_SNAPSHOT`` the I/O shell fetches ``/api/v3/depth`` and calls ``on_snapshot``; deltas keep arriving and
are buffered meanwhile.

Procedure: buffer diffs until a snapshot; drop buffered diffs with ``u <= lastUpdateId``; the first applied
diff must have ``U <= lastUpdateId + 1 <= u``; every next one ``U == previous u + 1``; anything else (a gap,
an overlap, a crossed result) discards the book and asks for a new snapshot. A snapshot older than the
buffered diffs (``lastUpdateId + 1 < first U``) is refused (fetch again).

``start_from_diffs`` is for recorded files with no snapshot (MANIFEST §2): the next diff seeds a *partial*
book (levels that never change are unknown); continuity is enforced from then on the same way.
"""

from __future__ import annotations

from collections import deque
from decimal import Decimal
from enum import StrEnum

from ....core.venue import BookDelta, BookLevel, BookSnapshot, RejectCounts, Rejected
from . import VENUE


class Sync(StrEnum):
    APPLIED = "applied"
    BUFFERED = "buffered"  # no book yet: kept until a snapshot arrives
    STALE = "stale"  # u <= book id: a duplicate or an old diff, ignored
    NEEDS_SNAPSHOT = "needs_snapshot"  # gap / overlap / crossed / snapshot too old: book discarded, fetch one


class _Side:
    """Price -> qty with a lazily recomputed best (the best level is removed often; a max() is then due)."""

    __slots__ = ("best", "is_bid", "levels")

    def __init__(self, is_bid: bool) -> None:
        self.levels: dict[Decimal, Decimal] = {}
        self.is_bid = is_bid
        self.best: Decimal | None = None

    def set(self, price: Decimal, qty: Decimal) -> None:
        if qty:
            self.levels[price] = qty
            b = self.best
            if b is not None and (price > b if self.is_bid else price < b):
                self.best = price
        elif self.levels.pop(price, None) is not None and price == self.best:
            self.best = None

    def top(self) -> Decimal | None:
        if self.best is None and self.levels:
            self.best = max(self.levels) if self.is_bid else min(self.levels)
        return self.best

    def sorted(self, depth: int) -> tuple[BookLevel, ...]:
        keys = sorted(self.levels, reverse=self.is_bid)[:depth]
        return tuple(BookLevel(p, self.levels[p]) for p in keys)


class LocalBook:
    """One symbol's book; ``book_id`` is the last applied update id (None while unsynced)."""

    def __init__(self, symbol: str, max_buffer: int = 10_000) -> None:
        self.symbol = symbol
        self.bids, self.asks = _Side(True), _Side(False)
        self.book_id: int | None = None
        self.partial = False
        self._seed_from_diff = False
        self._first_after_snapshot = False
        self.buffer: deque[BookDelta] = deque(maxlen=max_buffer)
        self.rejects = RejectCounts()
        self.applied = self.stale = self.gaps = self.snapshots = 0
        self.last_reject: Rejected | None = None
        self.ts_venue = self.ts_local = 0

    @property
    def synced(self) -> bool:
        return self.book_id is not None

    def best_bid(self) -> Decimal | None:
        return self.bids.top()

    def best_ask(self) -> Decimal | None:
        return self.asks.top()

    def snapshot(self, depth: int = 20) -> BookSnapshot:
        return BookSnapshot(VENUE, self.symbol, self.bids.sorted(depth), self.asks.sorted(depth), self.book_id,
                            self.ts_venue, self.ts_local)

    def start_from_diffs(self) -> None:
        """No snapshot will come (a recorded file): the next diff seeds a partial book."""
        self._discard()
        self._seed_from_diff = True

    def on_delta(self, d: BookDelta) -> Sync:
        if self.book_id is None:
            if not self._seed_from_diff:
                self.buffer.append(d)
                return Sync.BUFFERED
            self._seed_from_diff, self.partial = False, True
            self.book_id = d.first_seq - 1
            self._first_after_snapshot = True
        book_id = self.book_id
        if d.last_seq <= book_id:
            self.stale += 1
            return Sync.STALE
        # the first diff after a snapshot may straddle it; every later one must follow on exactly
        ok = d.first_seq <= book_id + 1 if self._first_after_snapshot else d.first_seq == book_id + 1
        if not ok:
            kind = "sequence_gap" if d.first_seq > book_id + 1 else "out_of_order"
            return self._fail(kind, f"U {d.first_seq} u {d.last_seq} after book id {book_id}", d)
        self._apply(d)
        bid, ask = self.bids.top(), self.asks.top()
        if bid is not None and ask is not None and bid >= ask:
            return self._fail("crossed_book", f"bid {bid} >= ask {ask} at u {d.last_seq}", None)
        return Sync.APPLIED

    def on_snapshot(self, s: BookSnapshot) -> Sync:
        """Install a REST snapshot, then replay the buffered diffs the procedure keeps."""
        if s.seq is None:
            return self._fail("bad_field", "snapshot without lastUpdateId", None)
        pending = [d for d in self.buffer if d.last_seq > s.seq]
        if pending and s.seq + 1 < pending[0].first_seq:
            self.last_reject = Rejected(VENUE, "stale", f"snapshot {s.seq} older than diff U {pending[0].first_seq}",
                                        s.ts_local)
            self.rejects.add(self.last_reject)
            return Sync.NEEDS_SNAPSHOT
        self._discard()
        self.snapshots += 1
        for lv in s.bids:
            self.bids.set(lv.price, lv.qty)
        for lv in s.asks:
            self.asks.set(lv.price, lv.qty)
        self.book_id, self._first_after_snapshot = s.seq, True
        self.ts_venue, self.ts_local = s.ts_venue, s.ts_local
        for d in pending:
            if self.on_delta(d) is Sync.NEEDS_SNAPSHOT:
                return Sync.NEEDS_SNAPSHOT
        return Sync.APPLIED

    def _apply(self, d: BookDelta) -> None:
        for lv in d.bids:
            self.bids.set(lv.price, lv.qty)
        for lv in d.asks:
            self.asks.set(lv.price, lv.qty)
        self.book_id = d.last_seq
        self._first_after_snapshot = False
        self.ts_venue, self.ts_local = d.ts_venue, d.ts_local
        self.applied += 1

    def _fail(self, reason: str, detail: str, keep: BookDelta | None) -> Sync:
        self.last_reject = Rejected(VENUE, reason, detail, keep.ts_local if keep else self.ts_local)
        self.rejects.add(self.last_reject)
        self.gaps += 1
        self._discard()
        if keep is not None:
            self.buffer.append(keep)  # the new run of diffs starts here
        return Sync.NEEDS_SNAPSHOT

    def _discard(self) -> None:
        self.bids, self.asks = _Side(True), _Side(False)
        self.book_id, self.partial = None, False
        self.buffer.clear()
