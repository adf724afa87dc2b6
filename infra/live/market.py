"""The live market feed of one host: both venues' streams, read in this process, to the routes' kernels.

Each venue message becomes the kernel's event rows (core.market_events) for the one route it concerns and is
handed over at once (``deliver``): no window, no Ray hop between the socket and the decision. The USDT/KRW rate
is the mid of Upbit's KRW-USDT book, handed to every route when it changes. The latest book of every venue
symbol stays here for the order gateways (their protective price) and the status line.

What does not become an event is counted: trades (liveness only), tickers, markers (connects, resyncs, gaps)
and rejected payloads by reason. A book the venue's stream can no longer vouch for (a sequence gap, a
disconnect, a feed that stopped) is *broken*: its routes get an empty book of that venue at once (the kernel
decides nothing on a one-sided book, so no order is triggered), the gateways get none (they refuse a leg), and
nothing of it is delivered until the adapter's next full book repairs it (``breaks`` logs both moments).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from ...core.events import VENUE_BINANCE, VENUE_UPBIT, EventBatch
from ...core.market_events import book_events, book_mid, delta_events, fx_event, fx_keep
from ...core.venue import BookDelta, BookSnapshot, Rejected
from ..venues.stream_loop import Marker

FX_CODE = "KRW-USDT"
BREAKS_KEPT = 10_000  # break / repair records kept (drills and the status read them)
VENUE_WIDE = {"disconnected", "reconnect", "gave_up"}  # markers after which none of the venue's books holds
FX_REFRESH_NS = 10_000_000_000  # an unchanged rate is handed over again this often (else it would age out)
KERNEL_DEPTH = 40  # levels a side handed to the kernel from a full book (it walks them to fill and to size)

Deliver = Callable[[str, str, EventBatch, int], None]  # (route, source, events, received perf_counter_ns)


def upbit_code(base: str) -> str:
    return f"KRW-{base}"


def binance_symbol(base: str) -> str:
    return f"{base}USDT"


@dataclass(frozen=True)
class BookBreak:
    """A route's book of a venue broken (``kind="broken"``, why) or repaired by a full book (``"repaired"``).
    ``ts``: the wall clock of the feed's stamps (time.time_ns); ``at``: perf_counter_ns, to order against
    deliveries."""

    venue: str
    base: str
    kind: str
    why: str
    ts: int
    at: int


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
        self.tracer: Any = None  # infra.live.trace.LiveTracer: each delivered message's key (benchmarks only)
        self.recorder: Any = None  # infra.live.venue_record.VenueRecorder: every venue item (recorded runs)
        self.broken: dict[tuple[str, str], int] = {}  # (venue, base) -> when its book broke (time_ns)
        self.breaks: list[BookBreak] = []

    # ---- what the gateways read
    def book(self, venue: str, symbol: str) -> BookSnapshot | None:
        base = (self.by_binance if venue == "binance" else self.by_upbit).get(symbol)
        if base is not None and (venue, base) in self.broken:
            return None
        if venue == "binance" and self.binance_client is not None:
            local = self.binance_client.books.get(symbol)
            return local.snapshot(10) if local is not None and local.synced else None
        return self.books.get((venue, symbol))

    # ---- the streams
    async def run_upbit(self, stream: AsyncIterator[Any]) -> None:
        counts = self.counts["upbit"]
        async for item in stream:
            received = time.perf_counter_ns()
            if self.recorder is not None:
                self.recorder.items.append(("upbit", item))
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
                self._repaired("upbit", base, item.ts_local, received)
                if self.tracer is not None:
                    self.tracer.message(base, ("upbit", item.symbol, item.ts_venue // 1_000_000), item.ts_local)
                self.deliver(base, "upbit", book_events(VENUE_UPBIT, item, KERNEL_DEPTH), received)
            else:
                self._other(counts, item)

    async def run_binance(self, stream: AsyncIterator[Any]) -> None:
        counts = self.counts["binance"]
        async for item in stream:
            received = time.perf_counter_ns()
            if self.recorder is not None:
                self.recorder.items.append(("binance", item))
            if isinstance(item, BookDelta | BookSnapshot):
                base = self.by_binance.get(item.symbol)
                counts.last_local_ns = item.ts_local
                if base is None:
                    counts.skipped["other_symbol"] += 1
                    continue
                if isinstance(item, BookSnapshot):
                    counts.books += 1
                    self._repaired("binance", base, item.ts_local, received)
                    events = book_events(VENUE_BINANCE, item, KERNEL_DEPTH)
                elif ("binance", base) in self.broken:  # only a full book repairs it (the adapter sends one first)
                    counts.skipped["delta_on_broken_book"] += 1
                    continue
                else:
                    counts.deltas += 1
                    events = delta_events(VENUE_BINANCE, item)
                if self.tracer is not None:
                    seq = item.seq if isinstance(item, BookSnapshot) else item.last_seq
                    self.tracer.message(base, ("binance", item.symbol, seq or 0), item.ts_local)
                self.deliver(base, "binance", events, received)
            else:
                self._other(counts, item)

    def _fx(self, snap: BookSnapshot, received: int) -> None:
        mid = book_mid(snap)
        if mid is None:
            self.counts["upbit"].rejected["fx_book"] += 1
            return
        if not fx_keep(mid, snap.ts_venue, self.fx_rate, self.fx_ts_venue, FX_REFRESH_NS):
            return  # unchanged and recent: the routes have it (its age is judged from the venue time it came with)
        self.fx_rate, self.fx_ts_venue = mid, snap.ts_venue
        self.counts["upbit"].fx += 1
        for base in self.by_upbit.values():
            if self.tracer is not None:
                self.tracer.message(base, ("upbit", FX_CODE, snap.ts_venue // 1_000_000), snap.ts_local)
            self.deliver(base, "fx", fx_event(mid, snap.ts_local, snap.ts_venue), received)

    def _other(self, counts: FeedCounts, item: Any) -> None:
        if isinstance(item, Rejected):
            counts.rejected[item.reason] += 1
        else:
            counts.skipped[type(item).__name__] += 1
        venue = "binance" if counts is self.counts["binance"] else "upbit"
        if isinstance(item, Marker) and (item.kind in VENUE_WIDE or item.detail.startswith("reconnect")):
            self.mark_broken(venue, f"{item.kind}: {item.detail}"[:120])
        elif venue == "binance" and isinstance(item, Rejected | Marker) and self.binance_client is not None:
            books = self.binance_client.books  # a sequence gap unsyncs the symbol's book before it is reported
            lost = [b for s, b in self.by_binance.items() if (local := books.get(s)) is not None and not local.synced]
            if lost:
                self.mark_broken(venue, f"{type(item).__name__.lower()}: {getattr(item, 'reason', '')} "
                                        f"{item.detail}"[:120], lost)

    # ---- broken books
    def mark_broken(self, venue: str, why: str, bases: list[str] | None = None) -> None:
        """The venue's books of these routes (all: None) are no longer known: each route gets an empty book of
        the venue now (no decision, so no order, until the adapter's next full book); the gateways get none."""
        now, received = time.time_ns(), time.perf_counter_ns()
        code, vid = (binance_symbol, VENUE_BINANCE) if venue == "binance" else (upbit_code, VENUE_UPBIT)
        for base in bases if bases is not None else list(self.by_upbit.values()):
            if (venue, base) in self.broken:
                continue
            self.broken[(venue, base)] = now
            self.books.pop((venue, code(base)), None)
            self._log(BookBreak(venue, base, "broken", why, now, received))
            self.deliver(base, venue, book_events(vid, BookSnapshot(venue, code(base), (), (), None, now, now)),
                         received)

    def _repaired(self, venue: str, base: str, ts: int, received: int) -> None:
        if self.broken.pop((venue, base), None) is not None:
            self._log(BookBreak(venue, base, "repaired", "full book", ts, received))

    def _log(self, rec: BookBreak) -> None:
        if len(self.breaks) < BREAKS_KEPT:
            self.breaks.append(rec)
