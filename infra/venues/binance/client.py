"""The thin aiohttp shell over the sans-IO modules: core.venue.VenueClient for Binance spot at a base URL.

Point it at https://api.binance.com or at a local fake venue; it only signs, sends, times out and hands bodies
to the pure parsers. A timeout, a dropped connection or a 5xx on an order call is UNKNOWN (never retried
blindly); ``place`` settles an UNKNOWN with one query by client id. The secret is never logged or shown
(held as a ``secrets.Secret``, revealed only into the signing call; ``repr`` hides it).

``market_data`` is the long-running feed: reconnect with seeded, capped backoff, a full resync (every depth book
dropped, a new REST snapshot and the U/u procedure of ``book.LocalBook``) after a reconnect or any gap, stale
streams and backwards venue time reported, all decided by ``..stream_loop.StreamLoop``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Sequence
from decimal import Decimal

import aiohttp
from loguru import logger

from ....core.venue import (
    Balance,
    BookDelta,
    BookSnapshot,
    CancelOrder,
    MarketData,
    MarketState,
    MarketStatus,
    OrderEvent,
    OrderState,
    PlaceOrder,
    QueryOrder,
    Rejected,
    RejectReason,
)
from ..secrets import Secret, as_secret
from ..stream_loop import Key, Marker, StreamLoop
from ..wallet_status import AssetStatus, market_status
from ..ws_io import PrivateItem, disconnected, frames
from . import VENUE, user_stream
from .book import LocalBook, Sync
from .limits import Action, RateLimits
from .orders import Request, cancel_request, open_orders_request, outcome, place_request, query_request, settle
from .parse import (
    Control,
    ban_until_ms,
    error_reason,
    parse_account,
    parse_depth_snapshot,
    parse_error,
    parse_orders,
    parse_stream,
)
from .rules import ExchangeInfo, parse_avg_price, parse_exchange_info
from .sign import ClockSync, headers, signed_query
from .wallet import COIN_CONFIG, SYSTEM_STATUS, parse_coin_config, parse_system_status


class VenueError(RuntimeError):
    """A non-order call (balances, open orders, rules) failed; the caller decides (orders never raise)."""

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def _ms(clock: Callable[[], int]) -> int:
    return clock() // 1_000_000


class BinanceClient:
    """Binance spot REST + combined-stream WS; implements core.venue.VenueClient."""

    venue = VENUE

    def __init__(self, base_url: str, api_key: str, secret: str | Secret, *, ws_url: str | None = None,
                 timeout_s: float = 10.0, recv_window_ms: int = 5000, max_wait_ms: int = 2000,
                 clock: Callable[[], int] = time.time_ns) -> None:
        self.base_url = base_url.rstrip("/")
        self.ws_url = (ws_url or "").rstrip("/")
        self._key, self._secret = api_key, as_secret(secret)
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.recv_window_ms, self.max_wait_ms = recv_window_ms, max_wait_ms
        self.clock = clock
        self.time = ClockSync()
        self.limits = RateLimits()
        self.rules: ExchangeInfo | None = None
        self.avg_prices: dict[str, tuple[Decimal, int]] = {}  # symbol -> (avgPrice, local ns when read)
        self.avg_price_max_age_ns = 60 * 1_000_000_000  # older: the percent-price band is left to the venue
        self._session: aiohttp.ClientSession | None = None
        self.loop = StreamLoop(VENUE)
        self.books: dict[str, LocalBook] = {}
        self._next_snapshot: dict[str, int] = {}
        self._why = ""

    def __repr__(self) -> str:
        return f"BinanceClient({self.base_url!r}, api_key=<{len(self._key)} chars>, secret=<hidden>)"

    async def __aenter__(self) -> BinanceClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        return self._session

    async def _send(self, req: Request, signed: bool) -> tuple[int | None, str | None]:
        """(status, body); (None, None) on a timeout or a dropped connection. Waits out short back-offs."""
        now = _ms(self.clock)
        d = self.limits.decide(now, req.weight, req.orders)
        if d.action is Action.WAIT and d.until_ms - now <= self.max_wait_ms:
            await asyncio.sleep((d.until_ms - now) / 1000)
        elif d.action is not Action.GO:
            return 429 if d.action is Action.WAIT else 418, f'{{"code":-1003,"msg":"local: {d.reason}"}}'
        self.limits.book(_ms(self.clock), req.weight, req.orders)
        if signed:
            query = signed_query(req.params, self._secret.reveal(), self.time.timestamp(_ms(self.clock)),
                                 self.recv_window_ms)
        else:
            query = "&".join(f"{k}={v}" for k, v in req.params)
        url = f"{self.base_url}{req.path}" + (f"?{query}" if query else "")
        try:
            async with self._http().request(req.method, url, headers=headers(self._key)) as resp:
                body = await resp.text()
                self.limits.on_response(resp.status, resp.headers, _ms(self.clock))
                if resp.status in (418, 429) and (err := parse_error(body)) and (until := ban_until_ms(err[1])):
                    self.limits.on_ban_until(until)
                return resp.status, body
        except (TimeoutError, aiohttp.ClientError):
            return None, None

    # ---- public REST
    async def sync_time(self) -> None:
        sent = _ms(self.clock)
        status, body = await self._send(Request("GET", "/api/v3/time", (), 1), signed=False)
        received = _ms(self.clock)
        if status == 200 and body:
            try:
                server = json.loads(body)["serverTime"]
            except (ValueError, KeyError, TypeError) as e:
                raise VenueError(RejectReason.OTHER, f"bad /api/v3/time body: {e}") from None
            if type(server) is int:
                self.time.observe(sent, server, received)
                return
        raise VenueError(RejectReason.OTHER, f"/api/v3/time: http {status}")

    async def load_rules(self) -> ExchangeInfo:
        status, body = await self._send(Request("GET", "/api/v3/exchangeInfo", (), 20), signed=False)
        info = parse_exchange_info(body or "", self.clock()) if status == 200 else None
        if not isinstance(info, ExchangeInfo):
            raise VenueError(RejectReason.OTHER, f"exchangeInfo: http {status} {info}")
        self.rules = info
        weight = {r.interval_ms: r.limit for r in info.rate_limits if r.kind == "REQUEST_WEIGHT"}
        orders = {r.interval_ms: r.limit for r in info.rate_limits if r.kind == "ORDERS"}
        self.limits.set_limits(weight, orders)
        return info

    async def avg_price(self, symbol: str) -> Decimal:
        """``GET /api/v3/avgPrice`` (weight 2): the PERCENT_PRICE_BY_SIDE reference, kept for ``place``'s
        local check for ``avg_price_max_age_ns`` (the band is wide and the average moves slowly)."""
        status, body = await self._send(Request("GET", "/api/v3/avgPrice", (("symbol", symbol),), 2), signed=False)
        price = parse_avg_price(body or "") if status == 200 else None
        if price is None:
            raise VenueError(_reason(body) if status != 200 else RejectReason.OTHER, f"avgPrice: http {status}")
        self.avg_prices[symbol] = (price, self.clock())
        return price

    def _fresh_avg(self, symbol: str) -> Decimal | None:
        got = self.avg_prices.get(symbol)
        return got[0] if got is not None and self.clock() - got[1] <= self.avg_price_max_age_ns else None

    async def system_status(self) -> str:
        """``GET /sapi/v1/system/status``: "" when normal, else the venue's message (maintenance: HALTED)."""
        status, body = await self._send(SYSTEM_STATUS, signed=False)
        got = parse_system_status(body or "", self.clock()) if status == 200 else None
        if not isinstance(got, str):
            raise VenueError(_reason(body), f"system/status: http {status} {got or ''}")
        return got

    async def wallet_status(self) -> dict[str, AssetStatus]:
        """``GET /sapi/v1/capital/config/getall`` (signed): each coin's deposit / withdrawal flags."""
        status, body = await self._send(COIN_CONFIG, signed=True)
        if status != 200 or body is None:
            raise VenueError(_reason(body), f"capital/config/getall: http {status}")
        return {a.asset: a for a in parse_coin_config(body, self.clock()) if isinstance(a, AssetStatus)}

    async def market_status(self, symbols: Sequence[str]) -> list[MarketStatus]:
        """Each symbol's state: exchangeInfo status, its base coin's wallet flags, HALTED in maintenance."""
        info = self.rules or await self.load_rules()
        halted, assets = await self.system_status(), await self.wallet_status()
        now, out = self.clock(), []
        for sym in symbols:
            r = info.symbols.get(sym)
            if r is None:
                out.append(MarketStatus(VENUE, sym, MarketState.HALTED, "not in exchangeInfo", now, now))
                continue
            out.append(market_status(VENUE, sym, r.base, assets, system_halted=halted, symbol_state=r.state,
                                     ts_venue=now, ts_local=now))
        return out

    async def depth_snapshot(self, symbol: str, limit: int = 1000) -> BookSnapshot | Rejected:
        weight = 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250
        status, body = await self._send(Request("GET", "/api/v3/depth", (("symbol", symbol), ("limit", str(limit))),
                                                weight), signed=False)
        if status != 200 or body is None:
            return Rejected(VENUE, "bad_json", f"depth: http {status}", self.clock())
        return parse_depth_snapshot(body, symbol, self.clock())

    # ---- VenueClient
    async def place(self, cmd: PlaceOrder) -> OrderEvent:
        rules = self.rules.symbols.get(cmd.symbol) if self.rules else None
        if rules is None:
            return OrderEvent(VENUE, cmd.client_id, None, cmd.symbol, OrderState.REJECTED, Decimal(0),
                              reason=RejectReason.INVALID, detail="local: no rules for the symbol (load_rules first)",
                              ts_local=self.clock())
        req = place_request(cmd, rules, avg_price=self._fresh_avg(cmd.symbol))
        if isinstance(req, OrderEvent):
            return req
        status, body = await self._send(req, signed=True)
        ev = outcome(cmd.client_id, cmd.symbol, status, body, self.clock())
        if ev.state is OrderState.UNKNOWN:
            q = await self.query(QueryOrder(cmd.client_id, cmd.symbol))
            return q if q.state is OrderState.UNKNOWN else settle(ev, q)
        return ev

    async def cancel(self, cmd: CancelOrder) -> OrderEvent:
        status, body = await self._send(cancel_request(cmd), signed=True)
        return outcome(cmd.client_id, cmd.symbol, status, body, self.clock())

    async def query(self, cmd: QueryOrder) -> OrderEvent:
        status, body = await self._send(query_request(cmd), signed=True)
        return outcome(cmd.client_id, cmd.symbol, status, body, self.clock())

    async def open_orders(self, symbol: str | None = None) -> Sequence[OrderEvent]:
        status, body = await self._send(open_orders_request(symbol), signed=True)
        if status != 200 or body is None:
            raise VenueError(_reason(body), f"openOrders: http {status}")
        out = parse_orders(body, self.clock())
        bad = [r for r in out if isinstance(r, Rejected)]
        if bad:
            raise VenueError(RejectReason.OTHER, f"openOrders: {bad[0].reason} {bad[0].detail}")
        return [e for e in out if isinstance(e, OrderEvent)]

    async def balances(self) -> Sequence[Balance]:
        status, body = await self._send(Request("GET", "/api/v3/account", (("omitZeroBalances", "true"),), 20),
                                        signed=True)
        if status != 200 or body is None:
            raise VenueError(_reason(body), f"account: http {status}")
        out = parse_account(body, self.clock())
        if isinstance(out, Rejected):
            raise VenueError(RejectReason.OTHER, f"account: {out.reason} {out.detail}")
        return out

    # ---- own orders (user data stream)
    def order_stream(self, *, listen_key: bool = False, url: str | None = None,
                     loop: StreamLoop | None = None) -> AsyncIterator[PrivateItem]:
        """Own order events (``executionReport`` as OrderEvent, each fill once) and changed balances, by push.

        The WS API (``<ws_url>/ws-api/v3``, ``userDataStream.subscribe.signature``) or, with ``listen_key``, the
        legacy listenKey stream (``<ws_url>/ws/<key>``, kept alive). Reconnects forever (or per ``loop``); after
        every reconnect or venue-side end a ``resync`` Marker: events may have been missed, query open orders.
        A refused key/signature raises ``ws_io.StreamRefused``. Call ``sync_time`` first (the timestamp)."""
        return user_stream.order_stream(self, listen_key=listen_key, url=url, loop=loop)

    # ---- market data
    async def stream(self, streams: Sequence[str]) -> AsyncIterator[MarketData | Control | Rejected]:
        """One combined-stream connection (``/stream?streams=a/b``); ends when the venue closes it."""
        url = f"{self.ws_url}/stream?streams={'/'.join(streams)}"
        async with self._http().ws_connect(url, heartbeat=None, autoping=True) as ws:
            async for msg in ws:
                if msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    yield parse_stream(msg.data, self.clock())
                elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.ERROR):
                    break

    async def market_data(self, streams: Sequence[str], *, loop: StreamLoop | None = None, depth_limit: int = 1000,
                          resync_min_s: float = 0.5) -> AsyncIterator[MarketData | Control | Rejected | Marker]:
        """The combined streams for as long as the caller reads (or ``loop.max_reconnects`` allows).

        Depth diffs come out only once applied to a synced book; a (re)synced book comes out whole as a
        ``BookSnapshot`` (its seq = the last applied update id) after a ``resync`` marker. A gap or a crossed
        book yields its ``Rejected``, then a REST snapshot is fetched (at most every ``resync_min_s`` per
        symbol); duplicates/old diffs are dropped (counted in the book). Stale streams, backwards trade/ticker
        time and bad frames come out as ``Rejected`` (counted in ``self.loop.rejects``)."""
        self.loop = loop or self.loop
        keys = [k for st in streams if (k := stream_key(st)) is not None]
        url = f"{self.ws_url}/stream?streams={'/'.join(streams)}"
        while True:
            if self.books:
                yield self.loop.on_resync(f"reconnect: {len(self.books)} books dropped", self.clock())
            self.books, self._next_snapshot, self._why = {}, {}, "closed by the venue"
            try:
                async with self._http().ws_connect(url, heartbeat=None, autoping=True) as ws:
                    logger.info("binance market data connected: {} streams", len(streams))
                    yield self.loop.on_connected(time.monotonic_ns(), keys, self.clock())
                    async for item in self._read(ws, depth_limit, int(resync_min_s * 1e9)):
                        yield item
            except (TimeoutError, aiohttp.ClientError) as e:
                self._why = f"{type(e).__name__}: {str(e)[:120]}"
            markers, delay = disconnected(self.loop, VENUE, self._why, self.clock())
            for m in markers:
                yield m
            if delay is None:
                return
            await asyncio.sleep(delay)

    async def _read(self, ws: aiohttp.ClientWebSocketResponse, depth_limit: int,
                    resync_min_ns: int) -> AsyncIterator[MarketData | Control | Rejected | Marker]:
        """One connection's frames until it closes or goes idle (``self._why`` says which)."""
        loop, why = self.loop, [self._why]
        async for frame in frames(ws, loop, self.clock, why):
            if isinstance(frame, Rejected):
                yield frame
                continue
            now, data = frame
            item = parse_stream(data, self.clock())
            if isinstance(item, Rejected):
                loop.rejects.add(item)
                yield item
            elif isinstance(item, Control):
                yield item
            elif isinstance(item, BookDelta):
                loop.on_data(item, now, ordered=False)
                async for out in self._on_delta(item, now, depth_limit, resync_min_ns):
                    yield out
            else:
                yield loop.on_data(item, now) or item
        self._why = why[-1]

    async def _on_delta(self, d: BookDelta, now: int, depth_limit: int,
                        resync_min_ns: int) -> AsyncIterator[BookDelta | BookSnapshot | Rejected | Marker]:
        book = self.books.get(d.symbol) or self.books.setdefault(d.symbol, LocalBook(d.symbol))
        r = book.on_delta(d)
        if r is Sync.APPLIED:
            yield d
            return
        if r is Sync.NEEDS_SNAPSHOT and book.last_reject is not None:
            self.loop.rejects.add(book.last_reject)
            yield book.last_reject
            yield self.loop.on_resync(f"{d.symbol}: {book.last_reject.reason}", self.clock())
            logger.warning("binance {} book resync: {}", d.symbol, book.last_reject.reason)
        if r is Sync.STALE or now < self._next_snapshot.get(d.symbol, 0):
            return
        self._next_snapshot[d.symbol] = now + resync_min_ns
        snap = await self.depth_snapshot(d.symbol, depth_limit)
        if isinstance(snap, Rejected):
            self.loop.rejects.add(snap)
            yield snap
        elif book.on_snapshot(snap) is Sync.APPLIED:
            yield book.snapshot(depth_limit)
        elif book.last_reject is not None:  # too old for the buffered diffs, or a gap among them: fetch again
            self.loop.rejects.add(book.last_reject)
            yield book.last_reject


def stream_key(stream: str) -> Key | None:
    """``btcusdt@depth@100ms`` -> ``("BookDelta", "BTCUSDT")``: what a subscribed stream yields, for staleness."""
    symbol, _, kind = stream.partition("@")
    name = kind.split("@", 1)[0]
    if name == "depth":
        return "BookDelta", symbol.upper()
    if name.startswith("depth"):
        return "BookSnapshot", symbol.upper()
    if name in ("trade", "aggTrade"):
        return "Trade", symbol.upper()
    if name == "bookTicker":
        return "BestBidAsk", symbol.upper()
    return None


def _reason(body: str | None) -> RejectReason:
    err = parse_error(body) if body else None
    return error_reason(*err) if err else RejectReason.OTHER
