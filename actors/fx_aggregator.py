"""FxAggregatorActor: USDT/KRW and USD/KRW from several sources, median with outlier rejection (core)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.events import EventBatch, fx_to_events_like
from ..core.fx_aggregate import FxAggregator, FxQuote, FxReading
from .feed import Batches
from .inbox import SequencedInbox


class FxAggregatorActor:
    def __init__(self, max_age_ns: int, outlier_bps: float = 100.0, min_sources: int = 1,
                 pair: str = "USDT/KRW", source: str = "store", routes: dict[str, Any] | None = None,
                 hosts: list[tuple[Any, list[str]]] | None = None) -> None:
        self._agg = FxAggregator(max_age_ns=max_age_ns, outlier_bps=outlier_bps, min_sources=min_sources)
        self._settings = (max_age_ns, outlier_bps, min_sources)
        self._per_route: dict[str, FxAggregator] = {}  # each route's own view (its data may start earlier)
        self.rejected = 0
        self.stale_readings = 0
        self._pair, self._source = pair, source
        self._routes = routes or {}
        self._inbox: SequencedInbox[tuple[int, EventBatch]] = SequencedInbox()
        self._sent: dict[str, int] = {}
        self._hosts = hosts  # co-located routes: (RouteHostActor, its routes), one message per host
        self._inbox_many: SequencedInbox[tuple[int, Batches]] = SequencedInbox()
        self._sent_hosts: dict[int, int] = {}

    def subscribe(self, routes: dict[str, Any]) -> None:
        self._routes = routes

    async def forward(self, route: str, seq: int, upto_ns: int, quotes: EventBatch) -> None:
        """Aggregate a source's quotes and pass the resulting rate on to a route, as FX events (in order)."""
        for upto, batch in self._inbox.accept(route, seq, (upto_ns, quotes)):
            self._forward_one(route, upto, batch)

    async def forward_many(self, seq: int, upto_ns: int, parts: Batches) -> None:
        """One feed window for every route at once; passed on per route, or per host with co-located routes."""
        for upto, batches in self._inbox_many.accept("feed", seq, (upto_ns, parts)):
            if self._hosts is None:
                for route, quotes in batches.items():
                    self._forward_one(route, upto, quotes)
                continue
            rates = {route: self._aggregate(route, quotes) for route, quotes in batches.items()}
            for j, (host, names) in enumerate(self._hosts):
                n = self._sent_hosts.get(j, 0)
                self._sent_hosts[j] = n + 1
                host.on_events_many.remote("fx", n, upto, Batches.of((r, rates[r]) for r in names))

    def _forward_one(self, route: str, upto_ns: int, quotes: EventBatch) -> None:
        events = self._aggregate(route, quotes)
        seq = self._sent.get(route, 0)
        self._sent[route] = seq + 1
        self._routes[route].on_events.remote("fx", seq, upto_ns, events)

    def _aggregate(self, route: str, quotes: EventBatch) -> EventBatch:
        """The route's own view of the aggregated rate at each quote, as FX events (stale readings dropped)."""
        max_age_ns, outlier_bps, min_sources = self._settings
        agg = self._per_route.setdefault(route, FxAggregator(max_age_ns, outlier_bps, min_sources))
        keep = np.zeros(len(quotes), dtype=bool)
        rates = np.zeros(len(quotes))
        for i in range(len(quotes)):
            ts = int(quotes.ts[i])
            if agg.update(FxQuote(self._source, self._pair, float(quotes.px[i]), ts)) is not None:
                self.rejected += 1
            reading = agg.rate(self._pair, ts)
            if reading.rate is not None and not reading.stale:
                keep[i], rates[i] = True, reading.rate
            else:
                self.stale_readings += 1
        return fx_to_events_like(quotes, keep, rates)

    def update_many(self, quotes: list[FxQuote]) -> int:
        """Apply quotes in order; returns how many were rejected (stale, outlier, NaN, ...)."""
        bad = sum(1 for q in quotes if self._agg.update(q) is not None)
        self.rejected += bad
        return bad

    def rate(self, pair: str, now_ns: int) -> FxReading:
        return self._agg.rate(pair, now_ns)

    def snapshot(self) -> dict[str, Any]:
        return self._agg.snapshot()
