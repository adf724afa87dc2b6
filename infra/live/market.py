"""The live market feed of one host: both venues' streams, read in this process, to the routes' kernels.

Each venue message becomes the kernel's event rows (core.market_events) for the one route it concerns and is
handed over at once (``deliver``): no window, no Ray hop between the socket and the decision. The USDT/KRW rate
is the mid of Upbit's KRW-USDT book, handed to every route when it changes. The latest book of every venue
symbol stays here for the order gateways (their protective price) and the status line.

What does not become an event is counted: trades (liveness only), tickers, markers (connects, resyncs, gaps)
and rejected payloads by reason. A reconnect or resync needs nothing more here: the venue adapter drops its
books and the next full book replaces the kernel's.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from ...core.events import VENUE_BINANCE, VENUE_UPBIT, EventBatch
from ...core.market_events import book_events, book_mid, delta_events, fx_event
from ...core.venue import BookDelta, BookSnapshot, Rejected

FX_CODE = "KRW-USDT"
FX_REFRESH_NS = 10_000_000_000  # an unchanged rate is handed over again this often (else it would age out)
KERNEL_DEPTH = 40  # levels a side handed to the kernel from a full book (it walks them to fill and to size)

Deliver = Callable[[str, str, EventBatch, int], None]  # (route, source, events, received perf_counter_ns)


def upbit_code(base: str) -> str:
    return f"KRW-{base}"


def binance_symbol(base: str) -> str:
    return f"{base}USDT"


@dataclass
class FeedCounts:
    books: int = 0
    deltas: int = 0
    fx: int = 0
    skipped: Counter[str] = field(default_factory=Counter)  # by type: trades, tickers, markers, other symbols
    rejected: Counter[str] = field(default_factory=Counter)  # by reason
    last_local_ns: int = 0


class LiveMarket:
    """Routes by base (``BTC``); ``deliver(route, source, events, received_ns)`` runs the route's decision."""

    def __init__(self, bases: list[str], deliver: Deliver) -> None:
        self.deliver = deliver
        self.by_upbit = {upbit_code(b): b for b in bases}
        self.by_binance = {binance_symbol(b): b for b in bases}
        self.books: dict[tuple[str, str], BookSnapshot] = {}  # (venue, venue symbol) -> latest full book
        self.binance_client: Any = None  # the Binance adapter: its synced local books (``books``, remade per connect)
        self.fx_rate: float | None = None
        self.fx_ts_venue = -1
        self.counts = {"upbit": FeedCounts(), "binance": FeedCounts()}

    # ---- what the gateways read
    def book(self, venue: str, symbol: str) -> BookSnapshot | None:
        if venue == "binance" and self.binance_client is not None:
            local = self.binance_client.books.get(symbol)
            return local.snapshot(10) if local is not None and local.synced else None
        return self.books.get((venue, symbol))

    # ---- the streams
    async def run_upbit(self, stream: AsyncIterator[Any]) -> None:
        counts = self.counts["upbit"]
        async for item in stream:
            received = time.perf_counter_ns()
            if isinstance(item, BookSnapshot):
                self.books[("upbit", item.symbol)] = item
                counts.last_local_ns = item.ts_local
                if item.symbol == FX_CODE:
                    self._fx(item, received)
                    continue
                base = self.by_upbit.get(item.symbol)
                if base is None:
                    counts.skipped["other_symbol"] += 1
                    continue
                counts.books += 1
                self.deliver(base, "upbit", book_events(VENUE_UPBIT, item, KERNEL_DEPTH), received)
            else:
                self._other(counts, item)

    async def run_binance(self, stream: AsyncIterator[Any]) -> None:
        counts = self.counts["binance"]
        async for item in stream:
            received = time.perf_counter_ns()
            if isinstance(item, BookDelta | BookSnapshot):
                base = self.by_binance.get(item.symbol)
                counts.last_local_ns = item.ts_local
                if base is None:
                    counts.skipped["other_symbol"] += 1
                    continue
                if isinstance(item, BookSnapshot):
                    counts.books += 1
                    events = book_events(VENUE_BINANCE, item, KERNEL_DEPTH)
                else:
                    counts.deltas += 1
                    events = delta_events(VENUE_BINANCE, item)
                self.deliver(base, "binance", events, received)
            else:
                self._other(counts, item)

    def _fx(self, snap: BookSnapshot, received: int) -> None:
        mid = book_mid(snap)
        if mid is None:
            self.counts["upbit"].rejected["fx_book"] += 1
            return
        if mid == self.fx_rate and snap.ts_venue - self.fx_ts_venue < FX_REFRESH_NS:
            return  # unchanged and recent: the routes have it (its age is judged from the venue time it came with)
        self.fx_rate, self.fx_ts_venue = mid, snap.ts_venue
        self.counts["upbit"].fx += 1
        for base in self.by_upbit.values():
            self.deliver(base, "fx", fx_event(mid, snap.ts_local, snap.ts_venue), received)

    @staticmethod
    def _other(counts: FeedCounts, item: Any) -> None:
        if isinstance(item, Rejected):
            counts.rejected[item.reason] += 1
        else:
            counts.skipped[type(item).__name__] += 1
