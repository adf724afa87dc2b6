"""WebSocket plumbing shared by both fakes: subscribers with bounded queues, paced replay, WS faults.

Each connection gets a bounded queue and a sender task; the replay puts frames into every subscribed queue
(a consumer that falls 10,000 frames behind is disconnected, as a venue does to a slow client). Faults come
from :class:`~.faults.Faults` (``ws_*`` counters, set by ``--fault`` or ``POST /fake/faults``) and act on the
book stream: ``ws_gap`` skips a diff (never sent, still applied to the served book), ``ws_duplicate`` sends one
twice, ``ws_reorder`` holds one back behind the next, ``ws_drop`` closes every connection of the venue,
``ws_delay_ms`` delays every frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

from .faults import Faults

QUEUE_MAX = 10_000


@dataclass(slots=True)
class Sub:
    """One WS connection: what it subscribed to and its outgoing queue (``None`` closes it)."""

    ws: web.WebSocketResponse
    topics: set[str] = field(default_factory=set)
    binary: bool = False
    combined: bool = True  # Binance: the {"stream","data"} envelope (/stream) or the raw payload (/ws/<stream>)
    queue: asyncio.Queue[str | None] = field(default_factory=lambda: asyncio.Queue(QUEUE_MAX))
    sent: int = 0
    transport: asyncio.Transport | None = None

    def push(self, frame: str) -> bool:
        """Queue a frame; False if the client is too slow (the caller closes it)."""
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            return False
        return True


class Hub:
    """The connections of one venue's WS endpoint and the fault logic applied to its book frames."""

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self.subs: list[Sub] = []
        self._held: dict[str, list[tuple[str, Callable[[Sub], str | None]]]] = {}
        self.stats = {"frames": 0, "gaps": 0, "duplicates": 0, "reordered": 0, "drops": 0}
        self.on_sent: Callable[[str, int], None] | None = None  # (frame, wall ns) as each send starts (tracing)

    def publish(self, topic: str, render: Callable[[Sub], str | None], book: bool = False) -> None:
        """Send a frame (rendered per subscriber: format/combined differ) to every subscriber of ``topic``.

        ``book`` frames are the ones sequence faults act on."""
        if self.faults.take("ws_drop"):
            self.stats["drops"] += 1
            self.close_all()
        if book:
            if self.faults.take("ws_gap"):
                self.stats["gaps"] += 1
                return
            if self.faults.take("ws_reorder"):
                self.stats["reordered"] += 1
                self._held.setdefault(topic, []).append((topic, render))
                return
        self._send(topic, render)
        if book and self.faults.take("ws_duplicate"):
            self.stats["duplicates"] += 1
            self._send(topic, render)
        for held_topic, held in self._held.pop(topic, []) if book else []:
            self._send(held_topic, held)

    def _send(self, topic: str, render: Callable[[Sub], str | None]) -> None:
        self.stats["frames"] += 1
        for sub in list(self.subs):
            if topic in sub.topics:
                frame = render(sub)
                if frame is not None and not sub.push(frame):
                    self.close(sub)

    def close(self, sub: Sub) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            sub.queue.put_nowait(None)
        if sub in self.subs:
            self.subs.remove(sub)

    def close_all(self) -> None:
        for sub in list(self.subs):
            # abort: the client sees the TCP connection go, not a clean close (what a dropped link looks like)
            if sub.transport is not None:
                sub.transport.abort()
            self.close(sub)

    async def serve(self, request: web.Request, on_text: Callable[[Sub, str], Awaitable[None]],
                    sub: Sub | None = None, on_open: Callable[[Sub], None] | None = None) -> web.WebSocketResponse:
        """Run one connection: a sender task drains the queue; incoming text goes to ``on_text``."""
        ws = web.WebSocketResponse(heartbeat=None, max_msg_size=1 << 20)
        await ws.prepare(request)
        sub = sub or Sub(ws)
        sub.ws, sub.transport = ws, request.transport
        self.subs.append(sub)
        if on_open is not None:
            on_open(sub)
        sender = asyncio.create_task(self._sender(sub))
        try:
            async for msg in ws:
                if msg.type == web.WSMsgType.TEXT:
                    await on_text(sub, msg.data)
                elif msg.type == web.WSMsgType.BINARY:
                    await on_text(sub, msg.data.decode("utf-8", "replace"))
        finally:
            self.close(sub)
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await sender
        return ws

    async def _sender(self, sub: Sub) -> None:
        while True:
            frame = await sub.queue.get()
            if frame is None:
                await sub.ws.close()
                return
            if self.faults.ws_delay_ms > 0:
                await asyncio.sleep(self.faults.ws_delay_ms / 1000)
            if self.on_sent is not None:
                self.on_sent(frame, time.time_ns())
            try:
                if sub.binary:
                    await sub.ws.send_bytes(frame.encode())
                else:
                    await sub.ws.send_str(frame)
            except (ConnectionError, RuntimeError):
                return
            sub.sent += 1


async def paced(times_ns: list[int], speed: float, step: Callable[[int], None]) -> None:
    """Call ``step(i)`` for each recorded time, spaced by the recorded gaps divided by ``speed``."""
    if not times_ns:
        return
    start_wall, start_rec = time.monotonic(), times_ns[0]
    for i, t in enumerate(times_ns):
        due = start_wall + (t - start_rec) / 1e9 / speed
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        elif i % 64 == 0:
            await asyncio.sleep(0)  # let the senders run when replaying faster than real time
        step(i)
