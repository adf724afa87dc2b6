"""Upbit order books: every message is a whole top-N snapshot without a sequence id (brief §A7), so a book is
replaced, never patched. What can go wrong is time: a snapshot older than the one held (out of order: dropped,
the newer book stays), the same snapshot again (a duplicate: stale), a feed that stops advancing (``stale``
after ``max_age_ns`` of local time without a newer venue timestamp), and a crossed book (refused).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ....core.venue import BookSnapshot, Rejected
from .numbers import VENUE


@dataclass
class UpbitBooks:
    """The latest accepted snapshot per market and when it arrived."""

    max_age_ns: int = 10_000_000_000  # Upbit pushes on every change; a quiet market may idle longer: tune
    books: dict[str, BookSnapshot] = field(default_factory=dict)

    def apply(self, snap: BookSnapshot) -> BookSnapshot | Rejected:
        """Accept a snapshot as the market's book, or say why not (the held book is kept)."""
        if snap.venue != VENUE:
            return Rejected(VENUE, "bad_field", f"snapshot of venue {snap.venue}", snap.ts_local)
        if not snap.bids or not snap.asks:
            return Rejected(VENUE, "bad_field", f"{snap.symbol}: empty side", snap.ts_local)
        if snap.bids[0].price >= snap.asks[0].price:
            return Rejected(VENUE, "crossed_book",
                            f"{snap.symbol}: bid {snap.bids[0].price} >= ask {snap.asks[0].price}", snap.ts_local)
        held = self.books.get(snap.symbol)
        if held is not None:
            if snap.ts_venue < held.ts_venue:
                return Rejected(VENUE, "out_of_order",
                                f"{snap.symbol}: venue time {snap.ts_venue} < held {held.ts_venue}", snap.ts_local)
            if snap.ts_venue == held.ts_venue and snap.bids == held.bids and snap.asks == held.asks:
                return Rejected(VENUE, "stale", f"{snap.symbol}: the same snapshot again", snap.ts_local)
        self.books[snap.symbol] = snap
        return snap

    def get(self, symbol: str, now_local_ns: int) -> BookSnapshot | Rejected:
        """The book to decide on now, or why there is none (never seen, or not advanced for max_age_ns)."""
        held = self.books.get(symbol)
        if held is None:
            return Rejected(VENUE, "stale", f"{symbol}: no book yet", now_local_ns)
        if now_local_ns - held.ts_local > self.max_age_ns:
            return Rejected(VENUE, "stale", f"{symbol}: no new snapshot for {now_local_ns - held.ts_local} ns",
                            now_local_ns)
        return held

    def drop(self, symbol: str | None = None) -> None:
        """Forget books (on reconnect: the next snapshot is the truth, an older one must not be refused)."""
        if symbol is None:
            self.books.clear()
        else:
            self.books.pop(symbol, None)
