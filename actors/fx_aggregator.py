"""FxAggregatorActor: USDT/KRW and USD/KRW from several sources, median with outlier rejection (core).

It sits between the FX feed and the routes: each feed window is aggregated per route (each route's own view)
and passed on with the window's sequence number. It keeps what it passed on (``LOG_KEEP`` windows) so that a
restarted route can ask for it again; with a RecoveryConfig it snapshots after every window (its per-route
state, how far it got, the last windows it sent) and after a restart asks the FX feed to resend from there.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Any

import numpy as np

from ..core.events import EventBatch, fx_to_events_like
from ..core.fx_aggregate import FxAggregator, FxQuote, FxReading
from ..core.paper_venue import NO_MORE_EVENTS
from .feed import Batches
from .inbox import SequencedInbox
from .recovery import Named, RecoveryConfig, Snapshots, incarnation, mark_ready, restarted

LOG_KEEP = 4096  # windows kept per subscriber for resends
SNAP_LOG_KEEP = 16  # of which the newest go into the snapshot too, and every one not known delivered
ACK_LAG = 8  # a snapshot waits until every window this far back was delivered: what a crash may have left
# undelivered is always in the snapshot's log, and is sent again after a restart


class FxAggregatorActor:
    def __init__(self, max_age_ns: int, outlier_bps: float = 100.0, min_sources: int = 1,
                 pair: str = "USDT/KRW", source: str = "store", routes: dict[str, Any] | None = None,
                 hosts: list[tuple[Any, list[str]]] | None = None, recovery: RecoveryConfig | None = None) -> None:
        self._agg = FxAggregator(max_age_ns=max_age_ns, outlier_bps=outlier_bps, min_sources=min_sources)
        self._settings = (max_age_ns, outlier_bps, min_sources)
        self._per_route: dict[str, FxAggregator] = {}  # each route's own view (its data may start earlier)
        self.rejected = 0
        self.stale_readings = 0
        self._pair, self._source = pair, source
        self._routes = routes or {}
        self._inbox: SequencedInbox[tuple[int, EventBatch]] = SequencedInbox()
        self._sent: dict[str, int] = {}  # subscriber key (route, or "host{j}") -> next sequence number
        self._hosts = hosts  # co-located routes: (RouteHostActor, its routes), one message per host
        self._inbox_many: SequencedInbox[tuple[int, Batches]] = SequencedInbox()
        self._log: dict[str, OrderedDict[int, tuple[int, Batches]]] = {}  # key -> seq -> (upto, message)
        self.resent = 0
        self._unacked: list[tuple[int, list[tuple[str, Any]]]] = []  # (window, [(key, send)]) not known delivered
        self._durable: dict[str, int] = {}  # subscriber key -> first window its newest snapshot does not hold
        self._fx_ts = -1  # newest FX quote passed on, and its market-time age at its window's end (metrics)
        self._fx_age_ns: int | None = None
        self.snaps = Snapshots(recovery, "fx", pair.replace("/", "")) if recovery is not None else None
        if recovery is not None and (restarted() or recovery.resume):
            self._restore()
            for key, log in self._log.items():  # what the last incarnation sent may be lost with it: again
                for s, (upto, message) in log.items():
                    self._send(key, upto, message, seq=s)
            Named(recovery.actor_name("feed:fx")).resend.remote("fx", self._inbox_many.next_seq("feed"))
        mark_ready()

    def subscribe(self, routes: dict[str, Any]) -> None:
        self._routes = routes

    async def forward(self, route: str, seq: int, upto_ns: int, quotes: EventBatch) -> None:
        """Aggregate a source's quotes and pass the resulting rate on to a route, as FX events (in order)."""
        for upto, batch in self._inbox.accept(route, seq, (upto_ns, quotes)):
            self._send(route, upto, Batches.of([(route, self._aggregate(route, batch))]))

    async def forward_many(self, seq: int, upto_ns: int, parts: Batches) -> None:
        """One feed window for every route at once; passed on per route, or per host with co-located routes.

        Every window this message makes ready is passed on before anything is awaited: a call that awaits
        between two sends lets a later call send its window in between, and the windows would reach the
        routes under swapped sequence numbers."""
        base = self._inbox_many.next_seq("feed")
        ready = self._inbox_many.accept("feed", seq, (upto_ns, parts))
        for j, (upto, batches) in enumerate(ready):
            rates = {route: self._aggregate(route, quotes) for route, quotes in batches.items()}
            newest = max((int(e.ts[-1]) for e in rates.values() if e.ts.size), default=self._fx_ts)
            if upto < NO_MORE_EVENTS:  # the closing window ("nothing more") has no market time of its own
                self._fx_ts, self._fx_age_ns = newest, (upto - newest if newest >= 0 else None)
            if self._hosts is None:
                sent = [(route, self._send(route, upto, Batches.of([(route, events)])))
                        for route, events in rates.items()]
            else:
                sent = [(f"host{h}", self._send(f"host{h}", upto, Batches.of((r, rates[r]) for r in names)))
                        for h, (_, names) in enumerate(self._hosts)]
            if self.snaps is not None:
                self._unacked.append((base + j, sent))
        if self.snaps is None or not ready:
            return
        newest = base + len(ready) - 1
        while self._unacked and self._unacked[0][0] <= newest - ACK_LAG:
            sent = self._unacked.pop(0)[1]
            answers = await asyncio.gather(*[ref for _, ref in sent])
            for (key, _), durable in zip(sent, answers, strict=True):
                if isinstance(durable, int):
                    self._durable[key] = max(self._durable.get(key, 0), durable)
        self._save()

    def _send(self, key: str, upto_ns: int, message: Batches, seq: int | None = None) -> Any:
        if seq is None:
            seq = self._sent.get(key, 0)
            self._sent[key] = seq + 1
            log = self._log.setdefault(key, OrderedDict())
            log[seq] = (upto_ns, message)
            while len(log) > LOG_KEEP:
                log.popitem(last=False)
        if key.startswith("host"):
            assert self._hosts is not None
            return self._hosts[int(key[4:])][0].on_events_many.remote("fx", seq, upto_ns, message)
        return self._routes[key].on_events.remote("fx", seq, upto_ns, message.items()[0][1])

    async def resend(self, key: str, from_seq: int) -> int:
        """What this aggregator passed on to ``key`` from ``from_seq`` on, again (a route or host restarted)."""
        log = self._log.get(key, OrderedDict())
        upto = self._sent.get(key, 0)
        missing = [s for s in range(from_seq, upto) if s not in log]
        if missing:
            raise RuntimeError(f"fx: cannot resend windows {missing[0]}..{missing[-1]} to {key}: no longer kept")
        for s in range(from_seq, upto):
            self._send(key, log[s][0], log[s][1], seq=s)
        self.resent += max(upto - from_seq, 0)
        return max(upto - from_seq, 0)

    def next_seq(self) -> int:
        return self._inbox_many.next_seq("feed")

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

    def ping(self) -> dict[str, Any]:
        return incarnation() | {"next_seq": self.next_seq(),
                                "fx_age_s": None if self._fx_age_ns is None else self._fx_age_ns / 1e9}

    # ---- snapshots
    def _save(self) -> None:
        if self.snaps is None:
            return
        # One message per key and window, so a key's sequence numbers are window numbers. Kept: every window not
        # known delivered, and every one a subscriber's newest snapshot does not hold (delivered is not enough:
        # a route that took a window in and died before its snapshot needs it again).
        keep_from = min(self._unacked[0][0] if self._unacked else self.next_seq(), self.next_seq() - SNAP_LOG_KEEP)
        log = {key: [[s, upto, list(m.keys), m.offsets, *m.columns] for s, (upto, m) in entries.items()
                     if s >= min(keep_from, self._durable.get(key, 0))] for key, entries in self._log.items()}
        self.snaps.save({"next_seq": self.next_seq(), "sent": dict(self._sent), "durable": dict(self._durable),
                         "rejected": self.rejected,
                         "stale_readings": self.stale_readings, "log": log,
                         "per_route": {r: a.snapshot() for r, a in self._per_route.items()}})

    def _restore(self) -> None:
        assert self.snaps is not None
        snap = self.snaps.load()
        if snap is None:
            return
        self._inbox_many.restore({"feed": int(snap["next_seq"])})
        self._sent = {str(k): int(v) for k, v in snap["sent"].items()}
        self._durable = {str(k): int(v) for k, v in snap.get("durable", {}).items()}
        self.rejected, self.stale_readings = int(snap["rejected"]), int(snap["stale_readings"])
        max_age_ns, outlier_bps, min_sources = self._settings
        for route, state in snap["per_route"].items():
            agg = FxAggregator(max_age_ns, outlier_bps, min_sources)
            agg.restore(state)
            self._per_route[route] = agg
        for key, entries in snap["log"].items():
            log = self._log.setdefault(key, OrderedDict())
            for s, upto, keys, offsets, *columns in entries:
                log[int(s)] = (int(upto), Batches(tuple(keys), offsets, tuple(columns)))
