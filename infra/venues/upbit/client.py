"""The thin I/O shell: core.venue.VenueClient over Upbit REST (aiohttp) and the quotation WS stream.

All decisions live in the sans-IO modules; this file only moves bytes, waits what the limiter says and
measures local receive time. ``base_url`` is the REST root including ``/v1`` (``https://api.upbit.com/v1`` or a
local fake venue); secrets are passed in by the caller and never logged or put into an event.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence

import aiohttp
from yarl import URL

from ....core.venue import Balance, BookSnapshot, CancelOrder, MarketData, OrderEvent, PlaceOrder, QueryOrder, Rejected
from .auth import authorization, query_string
from .book import UpbitBooks
from .limits import RateLimiter
from .numbers import VENUE, Bad, dec, loads, text
from .orders import (
    IdentifierLedger,
    Request,
    body_text,
    cancel_request,
    interpret,
    open_orders_request,
    place_request,
    query_request,
)
from .parse import parse_orders, parse_ws


class UpbitClient:
    venue = VENUE

    def __init__(self, base_url: str, access_key: str, secret: str, *, ws_url: str | None = None,
                 timeout_s: float = 10.0, clock: Callable[[], int] = time.time_ns,
                 ledger: IdentifierLedger | None = None, limiter: RateLimiter | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.ws_url = ws_url
        self._access_key = access_key
        self._secret = secret
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._clock = clock
        self.ledger = ledger or IdentifierLedger()
        self.limiter = limiter or RateLimiter()
        self.books = UpbitBooks()
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:  # never the secret
        return f"UpbitClient({self.base_url!r})"

    async def _sess(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def call(self, req: Request) -> tuple[int | None, bytes]:
        """Send one signed request; (None, b"") when no response came (timeout, connection error)."""
        while (wait := self.limiter.wait_ns(req.group, self._clock())) > 0:
            await asyncio.sleep(wait / 1e9)
        self.limiter.on_send(req.group, self._clock())
        headers = authorization(self._access_key, self._secret, req.params)
        url = self.base_url + req.path
        data: str | None = None
        if req.method == "POST":
            headers["Content-Type"] = "application/json; charset=utf-8"
            data = body_text(req.params)
        elif req.params:
            url += "?" + query_string(req.params)
        session = await self._sess()
        try:
            async with session.request(req.method, URL(url, encoded=True), headers=headers, data=data) as resp:
                body = await resp.read()
                self.limiter.on_response(req.group, resp.status, self._clock(), resp.headers.get("Remaining-Req"),
                                         resp.headers.get("Retry-After"), body[:2000].decode("utf-8", "replace"))
                return resp.status, body
        except (TimeoutError, aiohttp.ClientError):
            return None, b""

    async def _order_call(self, made: Request | OrderEvent, symbol: str) -> OrderEvent:
        if isinstance(made, OrderEvent):
            return made
        status, body = await self.call(made)
        return interpret(made, symbol, status, body, self._clock())

    async def place(self, cmd: PlaceOrder) -> OrderEvent:
        return await self._order_call(place_request(cmd, self.ledger, self._clock()), cmd.symbol)

    async def cancel(self, cmd: CancelOrder) -> OrderEvent:
        """The venue's snapshot after the cancel was accepted (it may still read open: query to confirm)."""
        return await self._order_call(cancel_request(cmd), cmd.symbol)

    async def query(self, cmd: QueryOrder) -> OrderEvent:
        return await self._order_call(query_request(cmd), cmd.symbol)

    async def open_orders(self, symbol: str | None = None) -> Sequence[OrderEvent]:
        status, body = await self.call(open_orders_request(symbol))
        if status != 200:
            return []
        return [e for e in parse_orders(body, self._clock()) if isinstance(e, OrderEvent)]

    async def balances(self) -> Sequence[Balance]:
        status, body = await self.call(Request("GET", "/accounts", [], "default"))
        if status != 200:
            return []
        try:
            rows = loads(body)
            if not isinstance(rows, list):
                return []
            return [Balance(text(r, "currency", max_len=16), dec(r, "balance"), dec(r, "locked", optional=True))
                    for r in rows]
        except Bad:
            return []

    async def stream(self, codes: Sequence[str], types: Sequence[str] = ("orderbook", "trade"),
                     fmt: str = "SIMPLE", max_reconnects: int = 5) -> AsyncIterator[MarketData | Rejected]:
        """Quotation data; books go through UpbitBooks (out-of-order/stale/crossed come out as Rejected).

        Reconnects with exponential back-off; every reconnect drops the books and yields a ``reconnect``
        marker. Keep-alive: aiohttp ping frames every 30 s (Upbit closes after ~120 s idle)."""
        if not self.ws_url:
            raise ValueError("no ws_url")
        sub = [{"ticket": str(uuid.uuid4())}, *({"type": t, "codes": list(codes)} for t in types), {"format": fmt}]
        backoff = 0.1
        for attempt in range(max_reconnects + 1):
            if attempt:
                self.books.drop()
                yield Rejected(VENUE, "reconnect", f"attempt {attempt}", self._clock())
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
            session = await self._sess()
            try:
                async with session.ws_connect(self.ws_url, heartbeat=30.0) as ws:
                    await ws.send_str(json.dumps(sub))
                    async for msg in ws:
                        if msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                            break
                        item = parse_ws(msg.data, self._clock())
                        if item is None:
                            continue
                        if isinstance(item, BookSnapshot):
                            item = self.books.apply(item)
                        yield item
                        backoff = 0.1
            except (TimeoutError, aiohttp.ClientError):
                continue

