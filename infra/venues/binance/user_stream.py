"""I/O shell of the Binance user data stream (``BinanceClient.order_stream``): the WS API subscription, or the
legacy listenKey with its keep-alive; reading, reconnecting and the reconnect markers are ``ws_io.private_stream``'s.

All protocol decisions are ``userdata``'s (sans-IO); this file opens sockets, sends the subscription, waits for its
answer and PUTs the listenKey every 30 min. Keep-alive on the socket: aiohttp pings every 20 s (the venue pings
too and drops a client that does not pong); a private stream may be silent for hours, so it is never dropped as
idle.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING

import aiohttp
from loguru import logger

from ....core.venue import Rejected, RejectReason
from ..stream_loop import Refused, StreamLoop
from ..ws_io import PrivateItem, StreamRefused, private_stream
from . import VENUE
from .parse import error_reason, parse_error
from .userdata import KEEPALIVE_S, Subscribed, UserStream, listen_key_request, parse_listen_key, subscribe_request

if TYPE_CHECKING:
    from .client import BinanceClient

WS_API_PATH = "/ws-api/v3"
SUBSCRIBE_TIMEOUT_S = 10.0
HEARTBEAT_S = 20.0


def order_stream(client: BinanceClient, *, listen_key: bool = False, url: str | None = None,
                 loop: StreamLoop | None = None, keepalive_s: float = KEEPALIVE_S) -> AsyncIterator[PrivateItem]:
    """See ``BinanceClient.order_stream``."""
    reader = UserStream()
    loop = loop or StreamLoop(VENUE, idle_timeout_s=math.inf)
    base = url or (client.ws_url if listen_key else client.ws_url + WS_API_PATH)

    def connect() -> AbstractAsyncContextManager[aiohttp.ClientWebSocketResponse]:
        if listen_key:
            return _listen_key_ws(client, base, keepalive_s)
        return client._http().ws_connect(base, heartbeat=HEARTBEAT_S)

    async def subscribe(ws: aiohttp.ClientWebSocketResponse) -> None:
        if listen_key:
            return  # the stream is the listenKey's: nothing to ask
        rid = uuid.uuid4().hex
        await ws.send_str(subscribe_request(rid, client._key, client._secret.reveal(),
                                            client.time.timestamp(client.clock() // 1_000_000), client.recv_window_ms))
        async with asyncio.timeout(SUBSCRIBE_TIMEOUT_S):
            while True:
                msg = await ws.receive()
                if msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    raise aiohttp.ClientConnectionError(f"closed before the subscription answer ({msg.type.name})")
                got = reader.on_frame(msg.data, client.clock())
                if isinstance(got, Refused):
                    raise StreamRefused(got.reason, got.detail)
                if isinstance(got, Subscribed) and got.request_id == rid:
                    logger.info("binance user data subscribed: subscription {}", got.subscription_id)
                    return

    def parse(data: str | bytes, ts_local: int) -> object:
        got = reader.on_frame(data, ts_local)
        return None if isinstance(got, Subscribed) else got

    return private_stream(loop, VENUE, client.clock, connect, subscribe, parse)


@asynccontextmanager
async def _listen_key_ws(client: BinanceClient, base: str,
                         keepalive_s: float) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    """POST a listenKey (the active one comes back), stream ``/ws/<key>``, PUT it every ``keepalive_s``."""
    status, body = await client._send(listen_key_request("POST"), signed=False)
    key = parse_listen_key(body or "", client.clock()) if status == 200 else None
    if not isinstance(key, str):
        err = parse_error(body) if body else None
        reason = error_reason(*err) if err else RejectReason.OTHER
        if reason is RejectReason.AUTH:
            raise StreamRefused(reason, f"listenKey: http {status} {err}")
        raise aiohttp.ClientConnectionError(f"listenKey: http {status} {key if isinstance(key, Rejected) else ''}")
    async with client._http().ws_connect(f"{base}/ws/{key}", heartbeat=HEARTBEAT_S) as ws:
        keeper = asyncio.create_task(_keep_alive(client, key, keepalive_s))
        try:
            yield ws
        finally:
            keeper.cancel()


async def _keep_alive(client: BinanceClient, key: str, every_s: float) -> None:
    while True:
        await asyncio.sleep(every_s)
        status, _ = await client._send(listen_key_request("PUT", key), signed=False)
        if status != 200:  # an unknown key ends with listenKeyExpired on the stream: the loop resubscribes
            logger.warning("binance listenKey keep-alive: http {}", status)
