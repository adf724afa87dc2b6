"""FeedActor: one per venue (plus one for FX). Replays recorded events from the store, in time windows.

The source is pluggable: replay now (as fast as possible or at N x real time, deterministic windows);
a live WebSocket source later behind the same ``run`` contract. Each window is pushed to every subscriber
with the promise "nothing before ``upto`` will follow". The feed counts stale stretches (no event for
longer than ``stale_after_ns``) and says so through the AlertActor.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np

from ..core.events import EventBatch
from ..core.paper_venue import NO_MORE_EVENTS


def windows(first_ns: int, last_ns: int, n_events: int, target_events: int, min_window_ns: int) -> np.ndarray:
    """Common window edges for every feed of a run (they must agree, see module docstring)."""
    span = max(last_ns - first_ns + 1, 1)
    n = max(1, n_events // max(target_events, 1))
    width = max(span // n, min_window_ns)
    return np.arange(first_ns + width, last_ns + width + 1, width, dtype=np.int64)


class FeedActor:
    def __init__(self, source: str, batches: dict[str, EventBatch], edges: np.ndarray, speed: float | None = None,
                 stale_after_ns: int = 300 * 1_000_000_000) -> None:
        self.source = source
        self.batches = batches
        self.edges = edges
        self.speed = speed
        self.stale_after_ns = stale_after_ns
        self.sent_events = 0
        self.stale = self._count_stale()

    def _count_stale(self) -> dict[str, int]:
        out = {}
        for route, b in self.batches.items():
            market = b.ts[b.venue < 2] if self.source != "fx" else b.ts
            out[route] = int((np.diff(market) > self.stale_after_ns).sum()) if market.size > 1 else 0
        return out

    async def run(self, routes: dict[str, Any], venue: Any | None = None, fx: Any | None = None,
                  alerts: Any | None = None, in_flight: int = 8) -> dict[str, Any]:
        """Push every window to the subscribers; returns what was sent and the stale stretches seen."""
        if alerts is not None:
            for route, n in self.stale.items():
                if n:
                    alerts.raise_alert.remote("feed_stale", f"{self.source}:{route}",
                                              f"{n} gaps longer than {self.stale_after_ns / 1e9:.0f} s", 0)
        cursors = dict.fromkeys(self.batches, 0)
        pending: list[list[Any]] = []
        lo = -(2**62)
        started = time.perf_counter()
        for k, hi in enumerate([*self.edges.tolist(), NO_MORE_EVENTS]):
            sends: list[Any] = []
            for route, b in self.batches.items():
                j = int(np.searchsorted(b.ts, hi, side="left")) if hi < NO_MORE_EVENTS else len(b)
                part = _rows(b, cursors[route], j)
                cursors[route] = j
                self.sent_events += len(part)
                symbol = f"{route}-{'KRW' if self.source == 'upbit' else 'USDT'}"
                if venue is not None:
                    await venue.on_events.remote(symbol, k, hi, part)  # the venue stays ahead of the routes
                if fx is not None:
                    sends.append(fx.forward.remote(route, k, hi, part))
                else:
                    sends.append(routes[route].on_events.remote(self.source, k, hi, part))
            pending.append(sends)
            if len(pending) > in_flight:  # backpressure: routes may lag this many windows, no more
                await asyncio.gather(*pending.pop(0))
            if self.speed and hi < NO_MORE_EVENTS and k + 1 < len(self.edges):
                market_s = (hi - (self.edges[0] if lo < 0 else lo)) / 1e9 / self.speed
                await asyncio.sleep(max(0.0, market_s - (time.perf_counter() - started)))
                started, lo = time.perf_counter(), hi
        for sends in pending:
            await asyncio.gather(*sends)
        return {"source": self.source, "events": self.sent_events, "windows": len(self.edges) + 1,
                "stale_stretches": self.stale}


def _rows(b: EventBatch, lo: int, hi: int) -> EventBatch:
    return EventBatch(b.ts[lo:hi], b.ts_venue[lo:hi], b.venue[lo:hi], b.kind[lo:hi], b.side[lo:hi], b.px[lo:hi],
                      b.qty[lo:hi])
