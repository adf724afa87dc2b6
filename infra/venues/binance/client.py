"""The thin aiohttp shell over the sans-IO modules: core.venue.VenueClient for Binance spot at a base URL.

Point it at https://api.binance.com or at a local fake venue; it only signs, sends, times out and hands bodies
to the pure parsers. A timeout, a dropped connection or a 5xx on an order call is UNKNOWN (never retried
blindly); ``place`` settles an UNKNOWN with one query by client id. The secret is never logged or shown
(``repr`` hides it).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Sequence
from decimal import Decimal

import aiohttp

from ....core.venue import (
    Balance,
    BookSnapshot,
    CancelOrder,
    MarketData,
    OrderEvent,
    OrderState,
    PlaceOrder,
    QueryOrder,
    Rejected,
    RejectReason,
)
from . import VENUE
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
from .rules import ExchangeInfo, parse_exchange_info
from .sign import ClockSync, headers, signed_query


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

    def __init__(self, base_url: str, api_key: str, secret: str, *, ws_url: str | None = None,
                 timeout_s: float = 10.0, recv_window_ms: int = 5000, max_wait_ms: int = 2000,
                 clock: Callable[[], int] = time.time_ns) -> None:
        self.base_url = base_url.rstrip("/")
        self.ws_url = (ws_url or "").rstrip("/")
        self._key, self._secret = api_key, secret
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.recv_window_ms, self.max_wait_ms = recv_window_ms, max_wait_ms
        self.clock = clock
        self.time = ClockSync()
        self.limits = RateLimits()
        self.rules: ExchangeInfo | None = None
        self._session: aiohttp.ClientSession | None = None

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
            query = signed_query(req.params, self._secret, self.time.timestamp(_ms(self.clock)), self.recv_window_ms)
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
        req = place_request(cmd, rules)
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


def _reason(body: str | None) -> RejectReason:
    err = parse_error(body) if body else None
    return error_reason(*err) if err else RejectReason.OTHER
