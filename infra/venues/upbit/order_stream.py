"""I/O shell of the Upbit private WebSocket (``UpbitClient.order_stream``): the JWT handshake and the one subscription;
reading, reconnecting and the reconnect markers are ``ws_io.private_stream``'s, parsing is ``private``'s (sans-IO).

Keep-alive: aiohttp pings every 30 s (Upbit closes a connection idle for ~120 s); a private stream may be silent for
hours, so it is never dropped as idle. The token is made fresh per connection (a nonce is single-use).
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING

import aiohttp

from ..stream_loop import StreamLoop
from ..ws_io import PrivateItem, private_stream
from .auth import authorization
from .numbers import VENUE
from .private import PrivateStream, subscribe_message

if TYPE_CHECKING:
    from .client import UpbitClient

HEARTBEAT_S = 30.0


def order_stream(client: UpbitClient, codes: Sequence[str] | None = None, *, url: str | None = None,
                 loop: StreamLoop | None = None) -> AsyncIterator[PrivateItem]:
    """See ``UpbitClient.order_stream``."""
    if not url and not client.ws_url:
        raise ValueError("no ws_url (nor a private url)")
    target = url or f"{client.ws_url}/private"
    reader = PrivateStream()
    loop = loop or StreamLoop(VENUE, idle_timeout_s=math.inf)

    def connect() -> AbstractAsyncContextManager[aiohttp.ClientWebSocketResponse]:
        headers = authorization(client._access_key, client._secret.reveal(), [])
        return _connect(client, target, headers)

    async def subscribe(ws: aiohttp.ClientWebSocketResponse) -> None:
        await ws.send_str(subscribe_message(codes))

    return private_stream(loop, VENUE, client._clock, connect, subscribe, reader.on_frame)


@asynccontextmanager
async def _connect(client: UpbitClient, url: str,
                   headers: dict[str, str]) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    session = await client._sess()
    async with session.ws_connect(url, headers=headers, heartbeat=HEARTBEAT_S) as ws:
        yield ws
