"""PaperVenueActor: one simulated exchange per venue (core.paper_venue) behind an async Ray actor.

An order waits until the venue's feed has delivered every event up to the order's arrival time, then fills
against the market as it is at that instant — exactly the backtest's rule, so paper equals backtest.
The venue is the outside world in a chaos drill: it is never killed, and it keeps its record of every order
by client id (``lookup``), which is what a restarted route asks instead of sending an order again.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

from ..core.book import MAX_LEVELS
from ..core.domain import Venue
from ..core.events import EventBatch
from ..core.paper_venue import ExecutionReport, PaperVenue, VenueOrder
from ..core.rules import InstrumentRules
from .feed import Batches
from .inbox import SequencedInbox


class PaperVenueActor:
    def __init__(self, venue: int, taker_fee: str) -> None:
        self._venue = PaperVenue(Venue(venue), Decimal(taker_fee))
        self._progress = asyncio.Condition()
        self._inbox: SequencedInbox[tuple[int, EventBatch]] = SequencedInbox()
        self._inbox_many: SequencedInbox[tuple[int, Batches]] = SequencedInbox()
        self._pending: set[str] = set()  # client ids received, waiting for their market
        self.orders = 0
        self.lookups = 0
        self._lookups_waiting = 0

    async def list_symbol(self, symbol: str, rules: InstrumentRules, half_spread_bps: float,
                          impact_bps_per_m: float, binance_tick_units: int, levels: int = MAX_LEVELS) -> None:
        self._venue.list_symbol(symbol, rules, half_spread_bps, impact_bps_per_m, binance_tick_units, levels)

    async def on_events(self, symbol: str, seq: int, upto_ns: int, events: EventBatch) -> None:
        async with self._progress:
            for upto, batch in self._inbox.accept(symbol, seq, (upto_ns, events)):
                self._venue.on_events(symbol, upto, batch)
            self._progress.notify_all()

    async def on_events_many(self, seq: int, upto_ns: int, parts: Batches) -> None:
        """One feed window for every symbol at once: one message per window instead of one per symbol."""
        async with self._progress:
            for upto, batches in self._inbox_many.accept("feed", seq, (upto_ns, parts)):
                for symbol, batch in batches.items():
                    self._venue.on_events(symbol, upto, batch)
            self._progress.notify_all()

    def next_seq(self) -> int:
        return self._inbox_many.next_seq("feed")

    async def submit(self, order: VenueOrder) -> ExecutionReport:
        """Fill a taker order once the market at its arrival time is known."""
        self._pending.add(order.client_id)
        try:
            async with self._progress:
                await self._progress.wait_for(lambda: self._venue.can_fill(order))
                self.orders += 1
                return self._venue.fill(order)
        finally:
            self._pending.discard(order.client_id)
            if self._lookups_waiting:  # only a restarted route's lookup waits on this: no cost otherwise
                async with self._progress:
                    self._progress.notify_all()

    async def lookup(self, client_id: str) -> ExecutionReport | None:
        """The outcome of an order by client id (waits while it is still being filled); None if never received."""
        self.lookups += 1
        self._lookups_waiting += 1
        try:
            async with self._progress:
                await self._progress.wait_for(lambda: client_id not in self._pending)
                return self._venue.report(client_id)
        finally:
            self._lookups_waiting -= 1

    def stats(self) -> dict[str, int]:
        return {"orders": self.orders, "lookups": self.lookups, "duplicate_messages": self._inbox_many.duplicates}
