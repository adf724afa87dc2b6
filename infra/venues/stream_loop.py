"""Market-data stream loop decisions, sans-IO: when to (re)connect, how long to back off, when a connection or one
subscribed stream has gone quiet, when a stream's venue time or sequence runs backwards.

The I/O shells (``binance/client.py``, ``upbit/client.py``) own the sockets and ask this module; it never touches
one, so every rule is tested without a network. Time is passed in (int ns, a monotonic clock in the shells).
Backoff is exponential, capped, with "equal jitter" drawn from a seeded ``random.Random``: the same seed gives the
same delays (deterministic tests), different seeds spread many clients reconnecting after one venue outage.
The backoff resets only once a connection delivered data, so a venue that accepts and drops at once is not
hammered. Reconnects, resyncs, idle drops and stale streams are counted and handed out as :class:`Marker`s
(the recorder writes them); bad data comes out as ``core.venue.Rejected`` counted in ``rejects``.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field

from ...core.venue import BestBidAsk, MarketData, RejectCounts, Rejected, RejectReason

S = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Marker:
    """Something that happened to the feed, not in it: a consumer must not read a book across a reconnect/resync."""

    venue: str
    kind: str  # connected | disconnected | reconnect | resync | gave_up
    detail: str
    count: int  # how many of this kind so far on this loop (1 = the first)
    ts_local: int
    delay_s: float = 0.0  # reconnect: the backoff waited before it


@dataclass(frozen=True, slots=True)
class Resubscribe:
    """A private stream ended on the venue's side (Binance ``eventStreamTerminated`` / ``listenKeyExpired``):
    open a new one, then reconcile (what happened in between was not streamed)."""

    kind: str
    detail: str


@dataclass(frozen=True, slots=True)
class Refused:
    """The venue refused a private stream (bad key, signature, token, timestamp): retrying as is will not help."""

    reason: RejectReason
    detail: str


class Backoff:
    """``min(cap, base * 2**n)``, half of it fixed and half drawn uniformly: never 0, never above the cap."""

    def __init__(self, base_s: float = 0.1, cap_s: float = 30.0, seed: int = 0) -> None:
        if not 0 < base_s <= cap_s:
            raise ValueError("backoff needs 0 < base_s <= cap_s")
        self.base_s, self.cap_s = base_s, cap_s
        self.attempt = 0
        self._rng = random.Random(seed)

    def next(self) -> float:
        ceiling = min(self.cap_s, self.base_s * 2 ** min(self.attempt, 60))
        self.attempt += 1
        return ceiling / 2 + self._rng.random() * ceiling / 2

    def reset(self) -> None:
        self.attempt = 0


Key = tuple[str, str]  # (message type name, venue symbol): one subscribed stream


def key_of(item: MarketData) -> Key:
    return type(item).__name__, item.symbol


@dataclass
class _Seen:
    last_local: int  # monotonic ns of the last message (or of the subscription)
    ts_venue: int = 0
    seq: int | None = None
    stale: bool = False  # reported once per quiet spell


@dataclass
class StreamLoop:
    """One venue's market-data loop state; the shell calls ``on_*`` and does what the answers say."""

    venue: str
    backoff: Backoff = field(default_factory=Backoff)
    idle_timeout_s: float = 30.0  # no message at all on the connection: drop it and reconnect
    stale_after_s: float = 60.0  # no message on one subscribed stream: report it (a quiet market is not a fault)
    max_reconnects: int | None = None  # None: forever
    counts: dict[str, int] = field(default_factory=dict)
    rejects: RejectCounts = field(default_factory=RejectCounts)
    connected: bool = False
    _got_data: bool = False
    _last_msg: int = 0
    _streams: dict[Key, _Seen] = field(default_factory=dict)

    def _marker(self, kind: str, detail: str, ts_local: int, delay_s: float = 0.0) -> Marker:
        self.counts[kind] = n = self.counts.get(kind, 0) + 1
        return Marker(self.venue, kind, detail, n, ts_local, delay_s)

    def reject(self, reason: str, detail: str, ts_local: int) -> Rejected:
        r = Rejected(self.venue, reason, detail, ts_local)
        self.rejects.add(r)
        return r

    # ---- connection
    def on_connected(self, now: int, keys: Iterable[Key], ts_local: int) -> Marker:
        """Subscribed: every expected stream starts its quiet clock now; venue-time memory starts afresh."""
        self.connected, self._got_data, self._last_msg = True, False, now
        self._streams = {k: _Seen(now) for k in keys}
        return self._marker("connected", f"{len(self._streams)} streams", ts_local)

    def on_disconnected(self, why: str, ts_local: int) -> tuple[list[Marker], float | None]:
        """Markers to emit and the delay before reconnecting, or None: give up (max_reconnects spent)."""
        self.connected = False
        out = [self._marker("disconnected", why, ts_local)]
        if self._got_data:
            self.backoff.reset()
        if self.max_reconnects is not None and self.counts.get("reconnect", 0) >= self.max_reconnects:
            out.append(self._marker("gave_up", f"after {self.counts.get('reconnect', 0)} reconnects", ts_local))
            return out, None
        delay = self.backoff.next()
        out.append(self._marker("reconnect", why, ts_local, delay))
        return out, delay

    def on_resync(self, detail: str, ts_local: int) -> Marker:
        return self._marker("resync", detail, ts_local)

    def receive_timeout_s(self, now: int) -> float:
        """How long the shell may wait for the next frame before calling ``idle``/``stale`` again."""
        left = self.idle_timeout_s - (now - self._last_msg) / S
        return max(0.001, min(left, self.stale_after_s / 2))

    def idle(self, now: int) -> bool:
        """True: nothing at all for ``idle_timeout_s`` -- the connection is presumed dead (drop, reconnect)."""
        return self.connected and now - self._last_msg >= self.idle_timeout_s * S

    def stale(self, now: int, ts_local: int) -> list[Rejected]:
        """Subscribed streams quiet for ``stale_after_s`` (once per quiet spell): ``stale`` rejects."""
        out = []
        for (kind, symbol), seen in self._streams.items():
            if not seen.stale and now - seen.last_local >= self.stale_after_s * S:
                seen.stale = True
                quiet = (now - seen.last_local) / S
                out.append(self.reject("stale", f"{kind} {symbol}: no message for {quiet:.3f} s", ts_local))
        return out

    # ---- data
    def on_frame(self, now: int) -> None:
        """Any frame (data or control) proves the connection alive."""
        self._last_msg = now

    def on_event(self, now: int) -> None:
        """A private-stream event (own order or balance): the connection delivered data."""
        self._got_data, self._last_msg = True, now

    def on_data(self, item: MarketData, now: int, ordered: bool = True) -> Rejected | None:
        """Record one parsed item; an ``out_of_order`` reject if its venue time or sequence went backwards
        (``ordered=False``: liveness only, where a book's own sequence rules decide, as for Binance diffs)."""
        self._got_data = True
        seen = self._streams.get(k := key_of(item))
        if seen is None:
            seen = self._streams[k] = _Seen(now)
        seen.last_local, seen.stale = now, False
        if not ordered:
            return None
        ts = item.ts_venue
        if ts and ts < seen.ts_venue:
            return self.reject("out_of_order", f"{k[0]} {k[1]}: venue time {ts} < {seen.ts_venue}", item.ts_local)
        seq = item.seq if isinstance(item, BestBidAsk) else None
        if seq is not None and seen.seq is not None and seq < seen.seq:
            return self.reject("out_of_order", f"{k[0]} {k[1]}: update id {seq} < {seen.seq}", item.ts_local)
        seen.ts_venue = max(ts, seen.ts_venue)
        seen.seq = seq if seq is not None else seen.seq
        return None
