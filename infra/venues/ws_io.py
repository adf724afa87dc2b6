"""The I/O both venues' shells share: reading one websocket under a :class:`StreamLoop`, and the private order
streams' connect / subscribe / read / reconnect loop (:func:`private_stream`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, aclosing

import aiohttp
from loguru import logger

from ...core.venue import Balance, OrderEvent, Rejected, RejectReason
from .stream_loop import Marker, Refused, Resubscribe, StreamLoop

PrivateItem = OrderEvent | tuple[Balance, ...] | Marker | Rejected


async def frames(ws: aiohttp.ClientWebSocketResponse, loop: StreamLoop, clock: Callable[[], int],
                 why: list[str]) -> AsyncGenerator[tuple[int, str | bytes] | Rejected, None]:
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


class StreamRefused(RuntimeError):
    """A private stream the venue refuses (bad key, signature, token): it ends; the caller fixes the cause."""

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


async def private_stream(loop: StreamLoop, venue: str, clock: Callable[[], int],
                         connect: Callable[[], AbstractAsyncContextManager[aiohttp.ClientWebSocketResponse]],
                         subscribe: Callable[[aiohttp.ClientWebSocketResponse], Awaitable[None]],
                         parse: Callable[[str | bytes, int], object]) -> AsyncIterator[PrivateItem]:
    """Own order events and balances for as long as the caller reads (or ``loop.max_reconnects`` allows).

    ``connected`` once subscribed; every later subscription is followed by a ``resync`` marker: the events
    between the drop (or the venue's ``Resubscribe``) and the new subscription were not streamed, so the caller
    queries its open orders then. ``parse`` turns a frame into an item, None, a ``Resubscribe`` or a
    ``Refused`` (raised as :class:`StreamRefused`, as is a handshake answered 401/403)."""
    subscribed = False
    while True:
        why = ["closed by the venue"]
        try:
            async with connect() as ws:
                await subscribe(ws)
                yield loop.on_connected(time.monotonic_ns(), [], clock())
                if subscribed:
                    yield loop.on_resync("resubscribed: events may have been missed, query open orders", clock())
                subscribed = True
                async with aclosing(frames(ws, loop, clock, why)) as stream:
                    async for frame in stream:
                        if isinstance(frame, Rejected):
                            yield frame
                            continue
                        item = parse(frame[1], clock())
                        if isinstance(item, Refused):
                            raise StreamRefused(item.reason, item.detail)
                        if isinstance(item, Resubscribe):
                            why.append(f"{item.kind} {item.detail}")
                            break
                        if isinstance(item, OrderEvent | tuple):
                            loop.on_event(frame[0])
                            yield item
                        elif isinstance(item, Rejected):
                            yield item
        except aiohttp.WSServerHandshakeError as e:
            if e.status in (401, 403):
                raise StreamRefused(RejectReason.AUTH, f"handshake http {e.status}") from None
            why.append(f"handshake http {e.status}")
        except (TimeoutError, aiohttp.ClientError) as e:
            why.append(f"{type(e).__name__}: {str(e)[:120]}")
        markers, delay = disconnected(loop, venue, why[-1], clock())
        for m in markers:
            yield m
        if delay is None:
            return
        await asyncio.sleep(delay)
