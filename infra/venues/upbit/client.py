"""The thin I/O shell: core.venue.VenueClient over Upbit REST (aiohttp) and the quotation WS stream.

All decisions live in the sans-IO modules; this file only moves bytes, waits what the limiter says and
measures local receive time. ``base_url`` is the REST root including ``/v1`` (``https://api.upbit.com/v1`` or a
local fake venue); secrets are passed in by the caller (held as a ``secrets.Secret``, revealed only into the
JWT signing call) and never logged or put into an event. ``stream`` reconnects with seeded, capped backoff and
resyncs fully (books dropped, rebuilt from the next snapshots), as ``..stream_loop.StreamLoop`` decides.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence

import aiohttp
from loguru import logger
from yarl import URL

from ....core.venue import (
    Balance,
    BookSnapshot,
    CancelOrder,
    MarketData,
    MarketStatus,
    OrderEvent,
    PlaceOrder,
    QueryOrder,
    Rejected,
    Trade,
)
from ..secrets import Secret, as_secret
from ..stream_loop import Marker, StreamLoop
from ..wallet_status import AssetStatus, market_status
from ..ws_io import PrivateItem, disconnected, frames
from . import order_stream as _order_stream
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
from .rules import MarketRules, parse_instruments, rules_from
from .wallet import WALLET_STATUS, parse_wallet_status


class VenueError(RuntimeError):
    """A non-order call (rules, wallet status) failed; the caller decides (orders never raise)."""


class UpbitClient:
    venue = VENUE

    def __init__(self, base_url: str, access_key: str, secret: str | Secret, *, ws_url: str | None = None,
                 timeout_s: float = 10.0, clock: Callable[[], int] = time.time_ns,
                 ledger: IdentifierLedger | None = None, limiter: RateLimiter | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.ws_url = ws_url
        self._access_key = access_key
        self._secret = as_secret(secret)
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._clock = clock
        self.ledger = ledger or IdentifierLedger()
        self.limiter = limiter or RateLimiter()
        self.books = UpbitBooks()
        self.rules: dict[str, MarketRules] = {}  # from GET /orderbook/instruments (load_rules); else the table
        self._session: aiohttp.ClientSession | None = None
        self.loop = StreamLoop(VENUE)
        self._why = ""

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
        headers = authorization(self._access_key, self._secret.reveal(), req.params)
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
        rules = self.rules.get(cmd.symbol)
        return await self._order_call(place_request(cmd, self.ledger, self._clock(), rules), cmd.symbol)

    async def load_rules(self, markets: Sequence[str]) -> dict[str, MarketRules]:
        """``GET /orderbook/instruments``: each market's ``tick_size`` for ``place``'s checks (brief §A9: always
        prefer it to the table). It is the tick at the current price: reload when the price changes band.
        Markets the venue did not describe keep the table; a failed call raises VenueError."""
        req = Request("GET", "/orderbook/instruments", [("markets", ",".join(markets))], "orderbook")
        status, body = await self.call(req)
        if status != 200:
            raise VenueError(f"orderbook/instruments: http {status} {body[:200]!r}")
        got = rules_from(parse_instruments(body, self._clock()))
        self.rules.update(got)
        return got

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

    async def wallet_status(self) -> dict[str, AssetStatus]:
        """``GET /status/wallet`` (JWT): each currency's deposit / withdrawal flags (minutes of lag)."""
        status, body = await self.call(WALLET_STATUS)
        if status != 200:
            raise VenueError(f"status/wallet: http {status} {body[:200]!r}")
        return {a.asset: a for a in parse_wallet_status(body, self._clock()) if isinstance(a, AssetStatus)}

    async def market_status(self, markets: Sequence[str]) -> list[MarketStatus]:
        """Each market's base-currency wallet flags (KRW-BTC: BTC), as MarketStatus."""
        assets, now = await self.wallet_status(), self._clock()
        return [market_status(VENUE, m, m.partition("-")[2], assets, ts_venue=now, ts_local=now) for m in markets]

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

    def order_stream(self, codes: Sequence[str] | None = None, *, url: str | None = None,
                     loop: StreamLoop | None = None) -> AsyncIterator[PrivateItem]:
        """Own order events (myOrder: each fill once, by trade_uuid; done/cancel close) and balances (myAsset),
        by push from ``<ws_url>/private`` (or ``url``). Reconnects forever (or per ``loop``); after every
        reconnect a ``resync`` Marker: events may have been missed (no snapshot), query open orders. A refused
        token raises ``ws_io.StreamRefused``."""
        return _order_stream.order_stream(self, codes, url=url, loop=loop)

    async def stream(self, codes: Sequence[str], types: Sequence[str] = ("orderbook", "trade"),
                     fmt: str = "SIMPLE", max_reconnects: int | None = 5,
                     loop: StreamLoop | None = None) -> AsyncIterator[MarketData | Rejected | Marker]:
        """Quotation data; books go through UpbitBooks (out-of-order/stale/crossed come out as Rejected).

        A dropped connection, an error or ``loop.idle_timeout_s`` without a frame reconnects after the loop's
        backoff (``max_reconnects`` then a ``gave_up`` marker ends the stream; ``loop`` overrides it); every
        reconnect drops the books (a ``resync`` marker): the next snapshots are the truth. Subscribed streams
        quiet for ``loop.stale_after_s`` and a ticker whose venue time runs backwards come out as Rejected
        (trades are not ordered by Upbit: the recorded session steps back 6 times in 304 trades).
        Keep-alive: aiohttp ping frames every 30 s (Upbit closes after ~120 s idle)."""
        if not self.ws_url:
            raise ValueError("no ws_url")
        self.loop = loop or StreamLoop(VENUE, max_reconnects=max_reconnects)
        names = {"orderbook": "BookSnapshot", "trade": "Trade", "ticker": "MarketStatus"}
        keys = [(names[t], c) for t in types if t in names for c in codes]
        sub = [{"ticket": str(uuid.uuid4())}, *({"type": t, "codes": list(codes)} for t in types), {"format": fmt}]
        while True:
            if self.books.books:
                self.books.drop()
                yield self.loop.on_resync("reconnect: books dropped", self._clock())
            self._why = "closed by the venue"
            session = await self._sess()
            try:
                async with session.ws_connect(self.ws_url, heartbeat=30.0) as ws:
                    await ws.send_str(json.dumps(sub))
                    logger.info("upbit market data connected: {} codes, {}", len(codes), ",".join(types))
                    yield self.loop.on_connected(time.monotonic_ns(), keys, self._clock())
                    async for item in self._read(ws):
                        yield item
            except (TimeoutError, aiohttp.ClientError) as e:
                self._why = f"{type(e).__name__}: {str(e)[:120]}"
            markers, delay = disconnected(self.loop, VENUE, self._why, self._clock())
            for m in markers:
                yield m
            if delay is None:
                return
            await asyncio.sleep(delay)

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> AsyncIterator[MarketData | Rejected]:
        """One connection's frames until it closes or goes idle (``self._why`` says which)."""
        loop, why = self.loop, [self._why]
        async for frame in frames(ws, loop, self._clock, why):
            if isinstance(frame, Rejected):
                yield frame
                continue
            now, data = frame
            item = parse_ws(data, self._clock())
            if item is None:
                continue
            if isinstance(item, Rejected):
                loop.rejects.add(item)
                yield item
                continue
            if isinstance(item, BookSnapshot):  # the book decides its own order (venue time, duplicates)
                loop.on_data(item, now, ordered=False)
                applied = self.books.apply(item)
                if isinstance(applied, Rejected):
                    loop.rejects.add(applied)
                yield applied
                continue
            # trades: liveness only -- Upbit does not order them (sid and trade time may step back, brief §A2/§A7)
            yield loop.on_data(item, now, ordered=not isinstance(item, Trade)) or item
        self._why = why[-1]
