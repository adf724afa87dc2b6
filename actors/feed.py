"""FeedActor: one per venue (plus one for FX). Replays recorded events from the store, in time windows.

The source is pluggable: replay now (as fast as possible or at N x real time, deterministic windows);
a live WebSocket source later behind the same ``run`` contract. Each window is pushed to every subscriber
with the promise "nothing before ``upto`` will follow". The feed counts stale stretches (no event for
longer than ``stale_after_ns``) and says so through the AlertActor.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.events import EventBatch
from ..core.paper_venue import NO_MORE_EVENTS
from .recovery import RecoveryConfig, Snapshots, incarnation, mark_ready, restarted

COLUMNS = ("ts", "ts_venue", "venue", "kind", "side", "px", "qty")


@dataclass(frozen=True)
class Batches:
    """Event batches of several keys (routes or symbols) in one message: the seven columns once, cut by offsets.

    Ray serializes a message array by array, so a dict of 25 batches (175 arrays) costs about 15x more to send
    and receive than the same events as 8 arrays; with one message per window and venue, route host or FX
    aggregator, this is most of the feed's CPU.
    """

    keys: tuple[str, ...]
    offsets: np.ndarray  # int64, len(keys) + 1: key j's rows are offsets[j]:offsets[j + 1]
    columns: tuple[np.ndarray, ...]  # as EventBatch's, in COLUMNS order

    @staticmethod
    def of(parts: Iterable[tuple[str, EventBatch]]) -> Batches:
        items = list(parts)
        sizes = np.array([0] + [len(b) for _, b in items], np.int64)
        cols = tuple(np.concatenate([getattr(b, c) for _, b in items]) if items else getattr(_EMPTY, c)
                     for c in COLUMNS)
        return Batches(tuple(k for k, _ in items), np.cumsum(sizes), cols)

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def items(self) -> list[tuple[str, EventBatch]]:
        """(key, its events) in message order; each batch is a view of the message's columns."""
        out = []
        bounds = self.offsets.tolist()
        for j, key in enumerate(self.keys):
            lo, hi = bounds[j], bounds[j + 1]
            out.append((key, EventBatch(*(c[lo:hi] for c in self.columns)) if hi > lo else _EMPTY))
        return out


def windows(first_ns: int, last_ns: int, n_events: int, target_events: int, min_window_ns: int) -> np.ndarray:
    """Common window edges for every feed of a run (they must agree, see module docstring)."""
    span = max(last_ns - first_ns + 1, 1)
    n = max(1, n_events // max(target_events, 1))
    width = max(span // n, min_window_ns)
    return np.arange(first_ns + width, last_ns + width + 1, width, dtype=np.int64)


class FeedActor:
    def __init__(self, source: str, batches: dict[str, EventBatch], edges: np.ndarray, speed: float | None = None,
                 stale_after_ns: int = 300 * 1_000_000_000, recovery: RecoveryConfig | None = None) -> None:
        """``recovery``: remember (in a snapshot) how far every subscriber has acknowledged, and after a restart
        go on from there; the subscribers drop the windows they already have."""
        self.source = source
        self.batches = batches
        self.edges = edges
        self.speed = speed
        self.stale_after_ns = stale_after_ns
        self.sent_events = 0
        self.stale = self._count_stale()
        self.next_window = 0  # windows before this one have been sent to every subscriber
        self.acked = 0  # ... and acknowledged by all of them
        self.resent_windows = 0
        self._targets: dict[str, Any] | None = None
        self._early_resends: list[tuple[str, int]] = []
        self._venue_from_zero = False  # a resumed run: its paper venue is new and rebuilds its market from 0
        self.holds: set[int] = set()  # windows not to send until released (a drill's step runs meanwhile)
        self.snaps = Snapshots(recovery, "feed", source) if recovery is not None else None
        if recovery is not None and (restarted() or recovery.resume):
            snap = self.snaps.load() if self.snaps is not None else None
            if snap is not None:
                self.acked = self.next_window = int(snap["acked"])
                self._venue_from_zero = recovery.resume and not restarted()
        mark_ready()

    def _count_stale(self) -> dict[str, int]:
        out = {}
        for route, b in self.batches.items():
            market = b.ts[b.venue < 2] if self.source != "fx" else b.ts
            out[route] = int((np.diff(market) > self.stale_after_ns).sum()) if market.size > 1 else 0
        return out

    def _upto(self, k: int) -> int:
        return int(self.edges[k]) if k < len(self.edges) else int(NO_MORE_EVENTS)

    def _part(self, route: str, k: int) -> EventBatch:
        """Window ``k`` of one route: events in [edges[k-1], edges[k])."""
        b = self.batches[route]
        lo = int(np.searchsorted(b.ts, self.edges[k - 1], side="left")) if k > 0 else 0
        hi = int(np.searchsorted(b.ts, self.edges[k], side="left")) if k < len(self.edges) else len(b)
        return _rows(b, lo, hi)

    def _send(self, k: int, only: str | None = None) -> list[Any]:
        """Submit window ``k`` to every subscriber (or to ``only``: a route, a host key, "venue" or "fx")."""
        assert self._targets is not None
        t = self._targets
        hi = self._upto(k)
        parts = {route: self._part(route, k) for route in self.batches}
        if only is None:
            self.sent_events += sum(len(p) for p in parts.values())
        suffix = "KRW" if self.source == "upbit" else "USDT"
        sends = []
        if t["venue"] is not None and only in (None, "venue"):
            sends.append(t["venue"].on_events_many.remote(k, hi, Batches.of((f"{r}-{suffix}", p)
                                                                             for r, p in parts.items())))
        if t["fx"] is not None:
            if only in (None, "fx"):
                sends.append(t["fx"].forward_many.remote(k, hi, Batches.of(parts.items())))
        elif t["hosts"] is not None:
            sends += [host.on_events_many.remote(self.source, k, hi, Batches.of((r, parts[r]) for r in names))
                      for j, (host, names) in enumerate(t["hosts"]) if only in (None, f"host{j}")]
        else:
            sends += [t["routes"][r].on_events.remote(self.source, k, hi, part) for r, part in parts.items()
                      if only in (None, r)]
        return sends

    async def resend(self, target: str, from_seq: int) -> int:
        """Send windows ``from_seq`` .. (the last one sent) again to one subscriber that restarted; returns how
        many. Before ``run`` has started there is nothing to resend yet: the request waits for it."""
        if self._targets is None:
            self._early_resends.append((target, from_seq))
            return 0
        upto = self.next_window
        sends = [ref for k in range(max(from_seq, 0), upto) for ref in self._send(k, only=target)]
        self.resent_windows += max(upto - from_seq, 0)
        await asyncio.gather(*sends)
        return max(upto - from_seq, 0)

    async def run(self, routes: dict[str, Any], venue: Any | None = None, fx: Any | None = None,
                  alerts: Any | None = None, in_flight: int = 8, hosts: list[tuple[Any, list[str]]] | None = None,
                  start_at: float | None = None) -> dict[str, Any]:
        """Push every window to the subscribers; returns what was sent and the stale stretches seen.

        One message per window goes to the venue (all its symbols) and to the FX aggregator (all routes); the
        routes get one message each, or with ``hosts`` (co-located routes: a RouteHostActor and the routes it
        runs) one message per host. With ``speed``, a window is released once market time has passed its end,
        on an absolute schedule from ``start_at`` (``time.time()``; the feeds of a run share it). After a
        restart (Ray calls ``run`` again) it goes on from the last window every subscriber acknowledged.
        """
        if alerts is not None and self.next_window == 0:
            for route, n in self.stale.items():
                if n:
                    alerts.raise_alert.remote("feed_stale", f"{self.source}:{route}",
                                              f"{n} gaps longer than {self.stale_after_ns / 1e9:.0f} s", 0)
        self._targets = {"routes": routes, "venue": venue, "fx": fx, "hosts": hosts}
        if self._venue_from_zero and venue is not None:
            self._venue_from_zero = False
            await self.resend("venue", 0)
        for target, seq in self._early_resends:
            await self.resend(target, seq)
        self._early_resends = []
        pending: list[tuple[int, list[Any]]] = []
        edges = self.edges.tolist()
        origin = edges[0] - (edges[1] - edges[0]) if len(edges) > 1 else edges[0]  # market start of window 0
        start = time.time() if start_at is None else start_at
        for k in range(self.next_window, len(edges) + 1):
            while k in self.holds:
                await asyncio.sleep(0.002)
            hi = self._upto(k)
            if self.speed and hi < NO_MORE_EVENTS:
                await asyncio.sleep(max(0.0, start + (hi - origin) / 1e9 / self.speed - time.time()))
            pending.append((k, self._send(k)))
            self.next_window = k + 1
            if len(pending) > in_flight:  # backpressure: routes may lag this many windows, no more
                await self._ack(*pending.pop(0))
        for k, sends in pending:
            await self._ack(k, sends)
        return {"source": self.source, "events": self.sent_events, "windows": len(self.edges) + 1,
                "stale_stretches": self.stale, "resent_windows": self.resent_windows}

    async def _ack(self, k: int, sends: list[Any]) -> None:
        await asyncio.gather(*sends)
        self.acked = max(self.acked, k + 1)
        if self.snaps is not None:
            self.snaps.save({"acked": self.acked})

    def hold(self, windows: list[int]) -> int:
        """Stop before sending each of ``windows`` until ``release``: a drill's scripted step (a server
        stopped, ...) then lands at that point of the run however long it takes. Returns the next window."""
        self.holds.update(k for k in windows if k >= self.next_window)
        return self.next_window

    def release(self, window: int) -> None:
        self.holds.discard(window)

    def ping(self) -> dict[str, Any]:
        return incarnation() | {"next_window": self.next_window, "acked": self.acked, "windows": len(self.edges) + 1,
                                "events": self.sent_events, "stale_stretches": sum(self.stale.values())}


_EMPTY = EventBatch(*(np.zeros(0, t) for t in (np.int64, np.int64, np.int8, np.int8, np.int8, np.float64, np.float64)))


def _rows(b: EventBatch, lo: int, hi: int) -> EventBatch:
    return EventBatch(b.ts[lo:hi], b.ts_venue[lo:hi], b.venue[lo:hi], b.kind[lo:hi], b.side[lo:hi], b.px[lo:hi],
                      b.qty[lo:hi])
