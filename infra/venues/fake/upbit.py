"""Fake Upbit REST (``/v1``): quotation and exchange endpoints, JWT auth, KRW rules, ``Remaining-Req``.

Markets come from the recorded ``market/all?is_details=true`` (2025-07) trimmed to the markets served; only
KRW markets trade (tick table and 5,000 KRW minimum from core.rules). Error bodies are
``{"error":{"name":..,"message":..}}`` (brief §A6). Unconfirmed there, configurable here: the 429/418 bodies
and the error name of a reused identifier.
"""

from __future__ import annotations

import json
import time
import uuid as uuidlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

from aiohttp import web

from ....core.rules import SCALE, UPBIT_MAX_ORDER_KRW, UPBIT_MIN_ORDER_KRW, upbit_krw_tick_units
from ..upbit.limits import limit_for
from .auth import flatten_json_body, jwt_decode, upbit_hash_ok
from .books import SHARED
from .common import (
    FAULTS_KEY,
    drop_connection,
    fault_middleware,
    faults_get,
    faults_post,
    now_ms,
    parse_decimal,
    plain,
    reply,
)
from .engine import Engine, EngineReject, MarketSpec, Order
from .faults import Faults
from .limits import WindowLimiter
from .wallet import WALLET_KEY, WalletFlags, upbit_wallet, wallet_get, wallet_post

MARKET_ALL = SHARED / "fixtures/rest/upbit_market_all_isDetails_202507_helenhelen2025.json"
KST = timezone(timedelta(hours=9))
STATE = {"new": "wait", "partial": "wait", "filled": "done", "cancelled": "cancel", "expired": "cancel"}
GROUPS = {"/v1/market/all": "market", "/v1/orderbook": "orderbook", "/v1/orderbook/instruments": "orderbook",
          "/v1/ticker": "ticker",
          "/v1/trades/ticks": "trade"}


class UpbitError(Exception):
    def __init__(self, status: int, name: str, message: str) -> None:
        super().__init__(message)
        self.status, self.name, self.message = status, name, message


@dataclass(slots=True)
class UpbitConfig:
    access_key: str
    secret: str
    quotation_per_s: int = 10
    default_per_s: int = 30
    order_per_s: int = field(default_factory=lambda: limit_for("order", time.time_ns()))  # 8, 12 since 2026-08-21
    ban_after: int = 3
    ban_s: int = 60
    fee: Decimal = Decimal("0.0005")
    market_all: Path = MARKET_ALL
    extra_markets: tuple[dict[str, Any], ...] = ()  # synthetic market: markets the recorded list lacks
    faults: Faults = field(default_factory=Faults)


def _side_err(kind: str, side: str) -> str:
    return f"{kind}_{'bid' if side == 'bid' else 'ask'}"


class UpbitFake:
    """State and handlers of one fake Upbit account."""

    def __init__(self, cfg: UpbitConfig, markets: list[str], balances: dict[str, Decimal]) -> None:
        self.cfg = cfg
        known = {m["market"]: m for m in json.loads(cfg.market_all.read_text(encoding="utf-8"))}
        known.update({m["market"]: m for m in cfg.extra_markets})
        missing = [m for m in markets if m not in known or not m.startswith("KRW-")]
        if missing:
            raise ValueError(f"not a recorded Upbit KRW market: {', '.join(missing)}")
        self.market_all = [known[m] for m in markets]
        specs = {m: MarketSpec(m, m.split("-")[1], "KRW", Decimal("1e-8"), cfg.fee, cfg.fee, "quote") for m in markets}
        self.engine = Engine(specs, balances)
        self.wallet = WalletFlags()
        self.limiters = {g: WindowLimiter(n, 1000, cfg.ban_after, cfg.ban_s * 1000) for g, n in
                         (("market", cfg.quotation_per_s), ("orderbook", cfg.quotation_per_s),
                          ("ticker", cfg.quotation_per_s), ("trade", cfg.quotation_per_s),
                          ("default", cfg.default_per_s), ("order", cfg.order_per_s))}
        self.nonces: set[str] = set()
        self.identifiers: set[str] = set()  # every identifier ever sent, accepted or not: never reusable
        self.order_seen: Callable[[str | None, int], None] | None = None  # (client id, wall ns): tracing

    def app(self) -> web.Application:
        app = web.Application(middlewares=[fault_middleware, self._middleware])
        app[FAULTS_KEY] = self.cfg.faults
        app[WALLET_KEY] = self.wallet
        r = app.router
        r.add_get("/v1/market/all", self.market_all_handler)
        r.add_get("/v1/orderbook", self.orderbook)
        r.add_get("/v1/orderbook/instruments", self.instruments)
        r.add_get("/v1/ticker", self.ticker)
        r.add_get("/v1/trades/ticks", self.trades)
        r.add_get("/v1/accounts", self._private(self.accounts))
        r.add_get("/v1/orders/chance", self._private(self.chance))
        r.add_post("/v1/orders", self._private(self.new_order))
        r.add_get("/v1/order", self._private(self.get_order))
        r.add_delete("/v1/order", self._private(self.cancel_order))
        r.add_get("/v1/orders/open", self._private(self.open_orders))
        r.add_get("/v1/status/wallet", self._private(self.wallet_status))
        r.add_get("/fake/faults", faults_get)
        r.add_post("/fake/faults", faults_post)
        r.add_get("/fake/wallet", wallet_get)
        r.add_post("/fake/wallet", wallet_post)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if self.order_seen is not None and request.method == "POST" and request.path == "/v1/orders":
            t = time.time_ns()  # as the request reaches the venue, before limits and checks
            try:
                body = await request.json()
            except ValueError:
                body = None
            self.order_seen(body.get("identifier") if isinstance(body, dict) else None, t)
        if request.path.startswith("/fake/"):
            return await handler(request)
        group = GROUPS.get(request.path) or ("order" if (request.method, request.path) == ("POST", "/v1/orders")
                                             else "default")
        limiter, now = self.limiters[group], now_ms()
        verdict, used = limiter.charge("acct", 1, now)
        headers = {"Remaining-Req": f"group={group}; min=1800; sec={max(0, limiter.limit - used)}"}
        if verdict != "ok":
            headers["Retry-After"] = str(limiter.retry_after_s(now))
            status = 418 if verdict == "banned" else 429
            return reply({"error": {"name": "too_many_requests", "message": "Too many API requests."}}, status,
                         headers)
        try:
            resp: web.StreamResponse = await handler(request)
        except UpbitError as e:
            resp = reply({"error": {"name": e.name, "message": e.message}}, e.status)
        resp.headers.update(headers)
        return resp

    def _private(self, handler: Callable[[web.Request, dict[str, str]], Any]) -> Any:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            return await handler(request, await self._auth(request))
        return wrapped

    async def _auth(self, request: web.Request) -> dict[str, str]:
        """Verify the JWT and its query_hash; returns the request's parameters (query, or the JSON body)."""
        pairs: list[tuple[str, str]] = list(request.query.items())
        if request.method == "POST":
            try:
                body = await request.json()
            except ValueError as e:
                raise UpbitError(400, "validation_error", "body is not JSON") from e
            if not isinstance(body, dict):
                raise UpbitError(400, "validation_error", "body is not a JSON object")
            pairs = flatten_json_body(body)
        head = request.headers.get("Authorization", "")
        claims = jwt_decode(head[7:], self.cfg.secret) if head.startswith("Bearer ") else None
        if claims is None:
            raise UpbitError(401, "jwt_verification", "Jwt 토큰 검증에 실패했습니다.")
        if claims.get("access_key") != self.cfg.access_key:
            raise UpbitError(401, "invalid_access_key", "잘못된 엑세스 키입니다.")
        if not upbit_hash_ok(claims, pairs):
            raise UpbitError(401, "invalid_query_payload", "Failed to verify query.")
        nonce = str(claims.get("nonce", ""))
        if not nonce or nonce in self.nonces:
            raise UpbitError(401, "nonce_used", "Used nonce.")
        self.nonces.add(nonce)
        return dict(pairs)

    # -- quotation ------------------------------------------------------------------------------------
    async def market_all_handler(self, request: web.Request) -> web.Response:
        detailed = request.query.get("is_details") == "true"
        return reply([m if detailed else {k: v for k, v in m.items() if k != "market_event"}
                      for m in self.market_all])

    def _markets(self, text: str | None) -> list[str]:
        codes = [c for c in (text or "").split(",") if c]
        if not codes:
            raise UpbitError(400, "validation_error", "markets is missing")
        bad = [c for c in codes if c not in self.engine.markets]
        if bad:
            raise UpbitError(404, "Code not found", "Code not found")
        return codes

    async def orderbook(self, request: web.Request) -> web.Response:
        count = min(int(request.query.get("count", "30")) if request.query.get("count", "").isdigit() else 30, 30)
        out = []
        for code in self._markets(request.query.get("markets")):
            bids, asks = self.engine.depth(code)
            units = [{"ask_price": float(a[0]), "bid_price": float(b[0]), "ask_size": float(a[1]),
                      "bid_size": float(b[1])} for a, b in zip(asks[:count], bids[:count], strict=False)]
            book = self.engine.books.get(code)
            out.append({"market": code, "timestamp": book.ts_ms if book else now_ms(),
                        "total_ask_size": float(sum((q for _, q in asks[:count]), Decimal(0))),
                        "total_bid_size": float(sum((q for _, q in bids[:count]), Decimal(0))),
                        "orderbook_units": units, "level": 0})
        return reply(out)

    async def instruments(self, request: web.Request) -> web.Response:
        """``GET /v1/orderbook/instruments``: the tick at each market's current price, from this fake's own table
        (core.rules, today's version: the one it enforces), and the only aggregation level it serves ("0")."""
        out = []
        for code in self._markets(request.query.get("markets")):
            bids, asks = self.engine.depth(code)
            mid = (bids[0][0] + asks[0][0]) / 2 if bids and asks else Decimal(0)
            tick = Decimal(int(upbit_krw_tick_units(int(mid * SCALE), now_ms() * 1_000_000))) / SCALE
            out.append({"market": code, "quote_currency": "KRW", "tick_size": plain(tick).removesuffix(".0"),
                        "supported_levels": ["0"]})
        return reply(out)

    async def ticker(self, request: web.Request) -> web.Response:
        out = []
        for code in self._markets(request.query.get("markets")):
            fills = [f for o in self.engine.orders.values() if o.symbol == code for f in o.fills]
            bids, asks = self.engine.depth(code)
            last = fills[-1].price if fills else ((bids[0][0] + asks[0][0]) / 2 if bids and asks else Decimal(0))
            ts = now_ms()
            day = datetime.fromtimestamp(ts / 1000, UTC)
            out.append({"market": code, "trade_date": day.strftime("%Y%m%d"), "trade_time": day.strftime("%H%M%S"),
                        "trade_timestamp": ts, "trade_price": float(last), "timestamp": ts,
                        "acc_trade_volume_24h": float(sum((f.qty for f in fills), Decimal(0))),
                        "acc_trade_price_24h": float(sum((f.quote for f in fills), Decimal(0))),
                        "market_state": "ACTIVE"})
        return reply(out)

    async def trades(self, request: web.Request) -> web.Response:
        """Recent trades of the market: this fake's own fills (the only trades it knows), newest first."""
        code = self._markets(request.query.get("market"))[0]
        count = int(request.query.get("count", "1")) if request.query.get("count", "").isdigit() else 1
        fills = sorted(((f, o.side) for o in self.engine.orders.values() if o.symbol == code for f in o.fills),
                       key=lambda fs: -fs[0].trade_id)[:min(count, 500)]
        out = []
        for f, side in fills:
            t = datetime.fromtimestamp(f.ts_ms / 1000, UTC)
            out.append({"market": code, "trade_date_utc": t.strftime("%Y-%m-%d"), "trade_time_utc":
                        t.strftime("%H:%M:%S"), "timestamp": f.ts_ms, "trade_price": float(f.price),
                        "trade_volume": float(f.qty), "prev_closing_price": float(f.price), "change_price": 0.0,
                        "ask_bid": "BID" if side == "buy" else "ASK", "sequential_id": f.trade_id})
        return reply(out)

    # -- exchange -------------------------------------------------------------------------------------
    async def wallet_status(self, request: web.Request, p: dict[str, str]) -> web.Response:
        """``/v1/status/wallet``: every coin this fake trades (KRW is fiat: no wallet entry)."""
        coins = sorted({m.base for m in self.engine.markets.values()})
        return reply(upbit_wallet(self.wallet, coins, now_ms()))

    async def accounts(self, request: web.Request, p: dict[str, str]) -> web.Response:
        e = self.engine
        return reply([{"currency": a, "balance": plain(e.free[a]), "locked": plain(e.locked.get(a, Decimal(0))),
                       "avg_buy_price": "0", "avg_buy_price_modified": False, "unit_currency": "KRW"}
                      for a in sorted(e.free)])

    def _account(self, currency: str) -> dict[str, Any]:
        e = self.engine
        return {"currency": currency, "balance": plain(e.free.get(currency, Decimal(0))),
                "locked": plain(e.locked.get(currency, Decimal(0))), "avg_buy_price": "0",
                "avg_buy_price_modified": False, "unit_currency": "KRW"}

    async def chance(self, request: web.Request, p: dict[str, str]) -> web.Response:
        code = self._markets(p.get("market"))[0]
        m, fee = self.engine.markets[code], plain(self.cfg.fee)
        return reply({"bid_fee": fee, "ask_fee": fee, "maker_bid_fee": fee, "maker_ask_fee": fee,
                      "market": {"id": code, "name": f"{m.base}/KRW", "order_types": ["limit"],
                                 "order_sides": ["ask", "bid"], "bid_types": ["limit", "price"],
                                 "ask_types": ["limit", "market"],
                                 "bid": {"currency": "KRW", "min_total": str(UPBIT_MIN_ORDER_KRW)},
                                 "ask": {"currency": m.base, "min_total": str(UPBIT_MIN_ORDER_KRW)},
                                 "max_total": f"{UPBIT_MAX_ORDER_KRW}.0", "state": "active"},
                      "bid_account": self._account("KRW"), "ask_account": self._account(m.base)})

    async def new_order(self, request: web.Request, p: dict[str, str]) -> web.Response:
        code = self._markets(p.get("market"))[0]
        side, ord_type = p.get("side"), p.get("ord_type")
        if side not in ("bid", "ask") or ord_type not in ("limit", "price", "market"):
            raise UpbitError(400, "validation_error", "side or ord_type does not have a valid value")
        ident = p.get("identifier")
        if ident is not None:
            if ident in self.identifiers:
                raise UpbitError(400, "validation_error", "identifier is already used")
            self.identifiers.add(ident)  # burnt even if this order is rejected below
        price, volume, quote = self._check_order(code, side, ord_type, p)
        if self.cfg.faults.take("reject_orders"):
            raise UpbitError(403, "market_offline", "Market is under maintenance.")
        try:
            order = self.engine.place(code, "buy" if side == "bid" else "sell",
                                      "limit" if ord_type == "limit" else "market", price=price, qty=volume,
                                      quote_qty=quote, tif=_tif(p.get("time_in_force")), client_id=ident or "",
                                      now_ms=now_ms())
        except EngineReject as e:
            raise UpbitError(400, _side_err("insufficient_funds", side), "주문가능한 금액이 부족합니다.") from e
        if self.cfg.faults.take("drop_after_accept"):
            return drop_connection(request)
        if self.cfg.faults.take("error_after_accept"):
            return reply({"error": {"name": "server_error", "message": "Internal server error"}}, 500)
        return reply(self._order_json(order, ord_type), 201)

    def _check_order(self, code: str, side: str, ord_type: str, p: dict[str, str]
                     ) -> tuple[Decimal | None, Decimal | None, Decimal | None]:
        """Upbit's order-type rules (brief §A4), tick table and 5,000 KRW minimum (§A9)."""
        price = parse_decimal(p["price"]) if p.get("price") is not None else None
        volume = parse_decimal(p["volume"]) if p.get("volume") is not None else None
        if (p.get("price") is not None and price is None) or (p.get("volume") is not None and volume is None):
            raise UpbitError(400, "validation_error", "price or volume is not a number")
        needs = {"limit": (True, True), "price": (True, False), "market": (False, True)}[ord_type]
        if (price is not None, volume is not None) != needs or (ord_type == "price" and side != "bid") or (
                ord_type == "market" and side != "ask"):
            raise UpbitError(400, _side_err("create", side), "주문 파라미터가 올바르지 않습니다.")
        if volume is not None and (volume <= 0 or volume != volume.quantize(Decimal("1e-8"))):
            raise UpbitError(400, "invalid_volume", "주문 수량 단위를 잘못 입력하셨습니다.")
        if ord_type == "limit":
            assert price is not None and volume is not None
            units = price * SCALE
            tick = upbit_krw_tick_units(int(units), time.time_ns())
            if price <= 0 or units != units.to_integral_value() or int(units) % tick:
                raise UpbitError(400, _side_err("invalid_price", side), "주문가격 단위를 잘못 입력하셨습니다.")
            total = price * volume
        elif ord_type == "price":
            assert price is not None
            total = price
        else:
            assert volume is not None
            bids, _ = self.engine.depth(code)
            total = volume * (bids[0][0] if bids else Decimal(0))
        if total < UPBIT_MIN_ORDER_KRW:
            raise UpbitError(400, _side_err("under_min_total", side), "최소주문금액 이상으로 주문해주세요")
        if total > UPBIT_MAX_ORDER_KRW:
            raise UpbitError(400, _side_err("over_max_total", side), "최대주문금액 이하로 주문해주세요")
        return (price if ord_type == "limit" else None), volume, (price if ord_type == "price" else None)

    def _find(self, p: dict[str, str]) -> Order:
        uid, ident = p.get("uuid"), p.get("identifier")
        if uid is None and ident is None:
            raise UpbitError(400, "validation_error", "uuid or identifier is required")
        found = self.engine.by_client_id(ident)[:1] if ident else []  # an identifier is never reused: the first
        oid = self.engine.by_uid.get(uid) if uid is not None else (found[0].order_id if found else None)
        if oid is None:
            raise UpbitError(404, "order_not_found", "주문을 찾지 못했습니다.")
        return self.engine.orders[oid]

    async def get_order(self, request: web.Request, p: dict[str, str]) -> web.Response:
        order = self._find(p)
        body = self._order_json(order, None)
        body["trades"] = [{"market": order.symbol, "uuid": str(uuidlib.UUID(int=f.trade_id)), "price": plain(f.price),
                           "volume": plain(f.qty), "funds": plain(f.quote), "trend": "up" if order.side == "buy"
                           else "down", "created_at": _kst(f.ts_ms), "side": "bid" if order.side == "buy" else "ask"}
                          for f in order.fills]
        return reply(body)

    async def cancel_order(self, request: web.Request, p: dict[str, str]) -> web.Response:
        order = self._find(p)
        if not order.is_open:
            raise UpbitError(404, "order_not_found", "주문을 찾지 못했습니다.")
        before = self._order_json(order, None)  # the reply is the order as it was: the cancel is accepted
        self.engine.cancel(order.order_id, now_ms())
        return reply(before)

    async def open_orders(self, request: web.Request, p: dict[str, str]) -> web.Response:
        code = p.get("market")
        return reply([self._order_json(o, None) for o in self.engine.open_orders(code)])

    def _order_json(self, o: Order, ord_type: str | None) -> dict[str, Any]:
        ord_type = ord_type or ("limit" if o.kind == "limit" else "price" if o.side == "buy" else "market")
        zero = Decimal(0)
        reserved = (o.price or o.quote_qty or zero) * (o.qty if o.kind == "limit" and o.qty else 1) * self.cfg.fee
        body: dict[str, Any] = {
            "uuid": o.uid, "side": "bid" if o.side == "buy" else "ask", "ord_type": ord_type,
            "price": plain(o.price or o.quote_qty or zero) if ord_type != "market" else None,
            "state": STATE[o.status], "market": o.symbol, "created_at": _kst(o.created_ms),
            "volume": plain(o.qty) if o.qty is not None else None,
            "remaining_volume": plain(o.remaining) if o.qty is not None else None,
            "reserved_fee": plain(reserved if o.side == "buy" else zero),
            "remaining_fee": plain(o.locked - (o.locked / (1 + self.cfg.fee)) if o.side == "buy" else zero),
            "paid_fee": plain(o.fee_paid), "locked": plain(o.locked), "executed_volume": plain(o.filled),
            "executed_funds": plain(o.filled_quote), "trades_count": len(o.fills),
            "prevented_volume": "0", "prevented_locked": "0"}
        if o.tif != "GTC":
            body["time_in_force"] = o.tif.lower()
        if o.client_id:
            body["identifier"] = o.client_id
        return {k: v for k, v in body.items() if v is not None}


def _tif(text: str | None) -> Any:
    return {"ioc": "IOC", "fok": "FOK"}.get(text or "", "GTC")


def _kst(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, KST).isoformat(timespec="seconds")
