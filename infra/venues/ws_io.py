"""The I/O both venues' market-data shells share: reading one websocket under a :class:`StreamLoop`."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable

import aiohttp
from loguru import logger

from ...core.venue import Rejected
from .stream_loop import Marker, StreamLoop


async def frames(ws: aiohttp.ClientWebSocketResponse, loop: StreamLoop, clock: Callable[[], int],
                 why: list[str]) -> AsyncIterator[tuple[int, str | bytes] | Rejected]:
    """A connection's data frames with their monotonic receive time, and the stale-stream reports due between
    them, until the connection closes or goes idle; the reason is appended to ``why``."""
    while True:
        try:
            msg: aiohttp.WSMessage | None = await ws.receive(timeout=loop.receive_timeout_s(time.monotonic_ns()))
        except TimeoutError:
            msg = None
        now = time.monotonic_ns()
        for r in loop.stale(now, clock()):
            yield r
        if msg is None:
            if loop.idle(now):
                why.append(f"idle for {loop.idle_timeout_s} s")
                return
            continue
        if msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
            why.append(f"websocket {msg.type.name.lower()}")
            return
        loop.on_frame(now)
        yield now, msg.data


def disconnected(loop: StreamLoop, venue: str, why: str, ts_local: int) -> tuple[list[Marker], float | None]:
    """Count a lost connection: its markers and the wait before the next attempt (None: give up)."""
    markers, delay = loop.on_disconnected(why, ts_local)
    logger.warning("{} market data disconnected ({}); reconnect in {}", venue, why,
                   "never" if delay is None else f"{delay:.3f} s")
    return markers, delay
