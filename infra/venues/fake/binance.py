"""Fake Binance spot REST (``/api/v3``): the real paths, parameters, signing, filters, errors and headers.

exchangeInfo is the recorded file (2024-09-08, probably the spot testnet: filter shapes match production)
trimmed to the symbols served. Error codes and messages are Binance's (brief §B5); the weight limit is
configurable so tests reach 429 / 418 quickly.
"""

from __future__ import annotations

import gzip
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from .auth import binance_check
from .avg_price import average_price
from .books import SHARED
from .common import (
    FAULTS_KEY,
    drop_connection,
    fault_middleware,
    faults_get,
    faults_post,
    fmt8,
    now_ms,
    parse_decimal,
    reply,
)
from .engine import Engine, EngineReject, MarketSpec, Order
from .faults import Faults
from .limits import WindowLimiter
from .wallet import WALLET_KEY, WalletFlags, binance_coins, binance_system, wallet_get, wallet_post

EXCHANGE_INFO = SHARED / "fixtures/rest/binance_spot_exchangeInfo_20240908_davijr.json.gz"
CLIENT_ID_RE = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")
STATUS = {"new": "NEW", "partial": "PARTIALLY_FILLED", "filled": "FILLED", "cancelled": "CANCELED",
          "expired": "EXPIRED"}
WEIGHTS = {("GET", "/api/v3/ping"): 1, ("GET", "/api/v3/time"): 1, ("GET", "/api/v3/exchangeInfo"): 20,
           ("GET", "/api/v3/ticker/bookTicker"): 2, ("GET", "/api/v3/ticker/price"): 2,
           ("POST", "/api/v3/order"): 1, ("GET", "/api/v3/order"): 4, ("DELETE", "/api/v3/order"): 1,
           ("GET", "/api/v3/openOrders"): 6, ("GET", "/api/v3/account"): 20, ("GET", "/api/v3/avgPrice"): 2,
           ("GET", "/sapi/v1/system/status"): 1, ("GET", "/sapi/v1/capital/config/getall"): 10}


class BinanceError(Exception):
    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.code, self.msg, self.status = code, msg, status


def _mandatory(name: str) -> BinanceError:
    return BinanceError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


@dataclass(slots=True)
class BinanceConfig:
    api_key: str
    secret: str
    weight_limit: int = 6000
    weight_window_ms: int = 60_000  # tests stretch it so a window cannot turn mid-test
    ban_after: int = 3  # requests refused with 429 before the 418 ban
    ban_s: int = 120
    fee: Decimal = Decimal("0.001")
    exchange_info: Path = EXCHANGE_INFO
    extra_symbols: tuple[dict[str, Any], ...] = ()  # synthetic market: symbols added to / replacing recorded ones
    faults: Faults = field(default_factory=Faults)


def load_exchange_info(path: Path, symbols: list[str], extra: tuple[dict[str, Any], ...] = ()) -> dict[str, Any]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        info: dict[str, Any] = json.load(fh)
    known = {s["symbol"]: s for s in info["symbols"]}
    known.update({s["symbol"]: s for s in extra})
    missing = [s for s in symbols if s not in known]
    if missing:
        raise ValueError(f"symbols not in the recorded exchangeInfo: {', '.join(missing)}")
    info["symbols"] = [known[s] for s in symbols]
    return info


class BinanceFake:
    """State and handlers of one fake Binance account."""

    def __init__(self, cfg: BinanceConfig, symbols: list[str], balances: dict[str, Decimal]) -> None:
        self.cfg = cfg
        self.info = load_exchange_info(cfg.exchange_info, symbols, cfg.extra_symbols)
        for rl in self.info["rateLimits"]:
            if rl["rateLimitType"] == "REQUEST_WEIGHT":
                rl["limit"] = cfg.weight_limit
        self.filters = {s["symbol"]: {f["filterType"]: f for f in s["filters"]} for s in self.info["symbols"]}
        specs = {s["symbol"]: MarketSpec(s["symbol"], s["baseAsset"], s["quoteAsset"],
                                         Decimal(self.filters[s["symbol"]]["LOT_SIZE"]["stepSize"]).normalize(),
                                         cfg.fee, cfg.fee, "received") for s in self.info["symbols"]}
        self.engine = Engine(specs, balances)
        self.wallet = WalletFlags()
        self.weights = WindowLimiter(cfg.weight_limit, cfg.weight_window_ms, cfg.ban_after, cfg.ban_s * 1000)
        self.order_seen: Callable[[str | None, int], None] | None = None  # (client id, wall ns): tracing

    def app(self) -> web.Application:
        app = web.Application(middlewares=[fault_middleware, self._middleware])
        app[FAULTS_KEY] = self.cfg.faults
        app[WALLET_KEY] = self.wallet
        r = app.router
        r.add_get("/api/v3/ping", self.ping)
        r.add_get("/api/v3/time", self.server_time)
        r.add_get("/api/v3/exchangeInfo", self.exchange_info)
        r.add_get("/api/v3/depth", self.depth)
        r.add_get("/api/v3/ticker/bookTicker", self.book_ticker)
        r.add_get("/api/v3/ticker/price", self.ticker_price)
        r.add_get("/api/v3/avgPrice", self.avg_price)
        r.add_post("/api/v3/order", self.new_order)
        r.add_get("/api/v3/order", self.query_order)
        r.add_delete("/api/v3/order", self.cancel_order)
        r.add_get("/api/v3/openOrders", self.open_orders)
        r.add_get("/api/v3/account", self.account)
        r.add_get("/sapi/v1/system/status", self.system_status)
        r.add_get("/sapi/v1/capital/config/getall", self.coin_config)
        r.add_get("/fake/faults", faults_get)
        r.add_post("/fake/faults", faults_post)
        r.add_get("/fake/wallet", wallet_get)
        r.add_post("/fake/wallet", wallet_post)
        return app

    # -- middleware: weight, errors, headers ---------------------------------------------------------
    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if self.order_seen is not None and request.method == "POST" and request.path == "/api/v3/order":
            t = time.time_ns()  # as the request reaches the venue, before limits and checks
            body = dict(parse_qsl(await request.text())) if request.can_read_body else {}
            self.order_seen(request.query.get("newClientOrderId") or body.get("newClientOrderId"), t)
        if request.path.startswith("/fake/"):
            return await handler(request)
        now = now_ms()
        verdict, used = self.weights.charge("ip", self._weight(request), now)
        headers = {"X-MBX-USED-WEIGHT-1M": str(used)}
        if verdict != "ok":
            headers["Retry-After"] = str(self.weights.retry_after_s(now))
            if verdict == "banned":
                msg = (f"Way too much request weight used; IP banned until {self.weights.banned_until_ms()}. "
                       "Please use WebSocket Streams for live updates to avoid bans.")
                return reply({"code": -1003, "msg": msg}, 418, headers)
            msg = (f"Too many requests; current limit of IP(127.0.0.1) request weight is {self.cfg.weight_limit} "
                   "per 1 MINUTE. Please use WebSocket Streams for live updates to avoid bans.")
            return reply({"code": -1003, "msg": msg}, 429, headers)
        try:
            resp: web.StreamResponse = await handler(request)
        except BinanceError as e:
            resp = reply({"code": e.code, "msg": e.msg}, e.status)
        resp.headers.update(headers)
        return resp

    def _weight(self, request: web.Request) -> int:
        if request.path == "/api/v3/depth":
            limit = int(request.query.get("limit", "100")) if request.query.get("limit", "").isdigit() else 100
            return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250
        if request.path == "/api/v3/openOrders" and "symbol" not in request.query:
            return 80
        return WEIGHTS.get((request.method, request.path), 1)

    async def ping(self, request: web.Request) -> web.Response:
        return reply({})

    async def server_time(self, request: web.Request) -> web.Response:
        return reply({"serverTime": now_ms()})

    # -- public --------------------------------------------------------------------------------------
    async def exchange_info(self, request: web.Request) -> web.Response:
        info = dict(self.info, serverTime=now_ms())
        wanted = request.query.get("symbol")
        if "symbols" in request.query:
            try:
                names = json.loads(request.query["symbols"])
            except ValueError as e:
                raise BinanceError(-1100, "Illegal characters found in parameter 'symbols'.") from e
            info["symbols"] = [s for s in self.info["symbols"] if s["symbol"] in names]
        elif wanted is not None:
            self._market(wanted)
            info["symbols"] = [s for s in self.info["symbols"] if s["symbol"] == wanted]
        return reply(info)

    def _market(self, symbol: str | None) -> MarketSpec:
        if not symbol:
            raise _mandatory("symbol")
        m = self.engine.markets.get(symbol)
        if m is None:
            raise BinanceError(-1121, "Invalid symbol.")
        return m

    async def depth(self, request: web.Request) -> web.Response:
        m = self._market(request.query.get("symbol"))
        limit = min(int(request.query.get("limit", "100") or 100), 5000)
        bids, asks = self.engine.depth(m.symbol)
        book = self.engine.books.get(m.symbol)
        return reply({"lastUpdateId": book.update_id if book else 0,
                      "bids": [[fmt8(p), fmt8(q)] for p, q in bids[:limit]],
                      "asks": [[fmt8(p), fmt8(q)] for p, q in asks[:limit]]})

    def _top(self, m: MarketSpec) -> dict[str, str]:
        bids, asks = self.engine.depth(m.symbol)
        zero = (Decimal(0), Decimal(0))
        (bp, bq), (ap, aq) = (bids[0] if bids else zero), (asks[0] if asks else zero)
        return {"symbol": m.symbol, "bidPrice": fmt8(bp), "bidQty": fmt8(bq), "askPrice": fmt8(ap), "askQty": fmt8(aq)}

    async def book_ticker(self, request: web.Request) -> web.Response:
        if "symbol" in request.query:
            return reply(self._top(self._market(request.query["symbol"])))
        return reply([self._top(m) for m in self.engine.markets.values()])

    def _avg_mins(self, symbol: str) -> int:
        band = self.filters[symbol].get("PERCENT_PRICE_BY_SIDE") or self.filters[symbol].get("PERCENT_PRICE") or {}
        return int(band.get("avgPriceMins", 5))

    async def avg_price(self, request: web.Request) -> web.Response:
        """``GET /api/v3/avgPrice``: the fake's average price (fake.avg_price: own fills, else the book's mid)."""
        m = self._market(request.query.get("symbol"))
        mins, now = self._avg_mins(m.symbol), now_ms()
        price = average_price(self.engine, m.symbol, now, mins)
        return reply({"mins": mins, "price": fmt8(price or Decimal(0)), "closeTime": now})

    async def ticker_price(self, request: web.Request) -> web.Response:
        def one(m: MarketSpec) -> dict[str, str]:
            top = self._top(m)
            return {"symbol": m.symbol, "price": fmt8((Decimal(top["bidPrice"]) + Decimal(top["askPrice"])) / 2)}
        if "symbol" in request.query:
            return reply(one(self._market(request.query["symbol"])))
        return reply([one(m) for m in self.engine.markets.values()])

    # -- signed --------------------------------------------------------------------------------------
    async def _signed(self, request: web.Request) -> dict[str, str]:
        """Check key, signature and timestamp; returns the parameters (the query wins over the body)."""
        key = request.headers.get("X-MBX-APIKEY")
        if not key:
            raise BinanceError(-2014, "API-key format invalid.", 401)
        if key != self.cfg.api_key:
            raise BinanceError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        body = (await request.text()) if request.can_read_body else ""
        if not binance_check(self.cfg.secret, request.query_string, body):
            raise BinanceError(-1022, "Signature for this request is not valid.")
        params = dict(parse_qsl(body, keep_blank_values=True))
        params.update(request.query)
        ts, window = params.get("timestamp", ""), params.get("recvWindow", "5000")
        if not ts.isdigit():
            raise _mandatory("timestamp")
        recv = parse_decimal(window)
        if recv is None or recv > 60000:
            raise BinanceError(-1131, "recvWindow must be less than 60000")
        server = now_ms()
        if int(ts) >= server + 1000:
            raise BinanceError(-1021, "Timestamp for this request was 1000ms ahead of the server's time.")
        if server - int(ts) > recv:
            raise BinanceError(-1021, "Timestamp for this request is outside of the recvWindow.")
        return params

    async def new_order(self, request: web.Request) -> web.Response:
        p = await self._signed(request)
        m = self._market(p.get("symbol"))
        side, kind = p.get("side", ""), p.get("type", "")
        if side not in ("BUY", "SELL"):
            raise _mandatory("side")
        if kind not in ("LIMIT", "MARKET"):
            raise BinanceError(-1116, "Invalid orderType.") if kind else _mandatory("type")
        cid = p.get("newClientOrderId") or f"fake-{now_ms()}-{len(self.engine.orders) + 1}"
        if not CLIENT_ID_RE.match(cid):
            raise BinanceError(-1100, "Illegal characters found in parameter 'newClientOrderId'; legal range is "
                               "'^[\\.A-Z\\:/a-z0-9_-]{1,36}$'.")
        price, qty, quote_qty, tif = self._order_params(m, p, kind)
        if any(o.client_id == cid for o in self.engine.open_orders()):
            raise BinanceError(-2010, "Duplicate order sent.")
        if self.cfg.faults.take("reject_orders"):
            raise BinanceError(-2010, "Market is closed.")
        try:
            order = self.engine.place(m.symbol, "buy" if side == "BUY" else "sell",
                                      "limit" if kind == "LIMIT" else "market", price=price, qty=qty,
                                      quote_qty=quote_qty, tif=tif, client_id=cid, now_ms=now_ms())
        except EngineReject as e:
            raise BinanceError(-2010, "Account has insufficient balance for requested action.") from e
        if self.cfg.faults.take("drop_after_accept"):
            return drop_connection(request)
        if self.cfg.faults.take("error_after_accept"):
            return reply({"code": -1007, "msg": "Timeout waiting for response from backend server. Send status "
                          "unknown; execution status unknown."}, 503)
        return reply(self._order_json(order, p.get("newOrderRespType", "FULL"), new=True))

    def _order_params(self, m: MarketSpec, p: dict[str, str], kind: str
                      ) -> tuple[Decimal | None, Decimal | None, Decimal | None, Any]:
        """Parse and filter-check price / quantity (PRICE_FILTER, LOT_SIZE, MARKET_LOT_SIZE,
        PERCENT_PRICE_BY_SIDE / PERCENT_PRICE, NOTIONAL)."""
        f = self.filters[m.symbol]
        nums: dict[str, Decimal | None] = {}
        for name in ("price", "quantity", "quoteOrderQty"):
            nums[name] = parse_decimal(p[name]) if name in p else None
            if name in p and nums[name] is None:
                raise BinanceError(-1100, f"Illegal characters found in parameter '{name}'; legal range is "
                                   "'^([0-9]{1,20})(\\.[0-9]{1,20})?$'.")
        price, qty, quote_qty = nums["price"], nums["quantity"], nums["quoteOrderQty"]
        tif = p.get("timeInForce", "GTC")
        if kind == "LIMIT":
            if "timeInForce" not in p:
                raise _mandatory("timeInForce")
            if tif not in ("GTC", "IOC", "FOK"):
                raise BinanceError(-1115, "Invalid timeInForce.")
            if price is None:
                raise _mandatory("price")
            if qty is None:
                raise _mandatory("quantity")
            _check_range(f["PRICE_FILTER"], price, "minPrice", "maxPrice", "tickSize", "PRICE_FILTER")
            _check_range(f["LOT_SIZE"], qty, "minQty", "maxQty", "stepSize", "LOT_SIZE")
            avg = average_price(self.engine, m.symbol, now_ms(), self._avg_mins(m.symbol))
            _check_percent(f, price, p.get("side") == "BUY", avg)
            _check_notional(f.get("NOTIONAL"), price * qty, market=False)
            return price, qty, None, tif
        if (qty is None) == (quote_qty is None):
            if qty is None:
                raise BinanceError(-1102, "Param 'quantity' or 'quoteOrderQty' must be sent, but both were "
                                   "empty/null!")
            raise BinanceError(-1106, "Parameter 'quoteOrderQty' sent when not required.")
        if qty is not None:
            _check_range(f.get("MARKET_LOT_SIZE") or f["LOT_SIZE"], qty, "minQty", "maxQty", "stepSize",
                         "MARKET_LOT_SIZE")
            _check_range(f["LOT_SIZE"], qty, "minQty", "maxQty", "stepSize", "LOT_SIZE")
            top = self._top(m)
            ref = (Decimal(top["bidPrice"]) + Decimal(top["askPrice"])) / 2
            _check_notional(f.get("NOTIONAL"), ref * qty, market=True)
        else:
            assert quote_qty is not None
            _check_notional(f.get("NOTIONAL"), quote_qty, market=True)
        return None, qty, quote_qty, "GTC"

    def _find(self, p: dict[str, str]) -> Order:
        m = self._market(p.get("symbol"))
        oid, cid = p.get("orderId"), p.get("origClientOrderId")
        if oid is None and cid is None:
            raise BinanceError(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were "
                               "empty/null!")
        found: Order | None = None
        if oid is not None:
            found = self.engine.orders.get(int(oid)) if oid.isdigit() else None
            if found is not None and cid is not None and found.client_id != cid:
                found = None
        else:
            matches = self.engine.by_client_id(cid) if cid else []
            found = matches[-1] if matches else None
        if found is None or found.symbol != m.symbol:
            raise BinanceError(-2013, "Order does not exist.")
        return found

    async def query_order(self, request: web.Request) -> web.Response:
        return reply(self._order_json(self._find(await self._signed(request)), "QUERY"))

    async def cancel_order(self, request: web.Request) -> web.Response:
        p = await self._signed(request)
        try:
            order = self._find(p)
            self.engine.cancel(order.order_id, now_ms())
        except (BinanceError, EngineReject) as e:
            raise BinanceError(-2011, "Unknown order sent.") from e
        body = self._order_json(order, "RESULT")
        body.pop("workingTime", None)
        body.pop("fills", None)
        body["origClientOrderId"] = order.client_id
        body["clientOrderId"] = p.get("newClientOrderId") or f"cancel-{order.order_id}"
        return reply(body)

    async def open_orders(self, request: web.Request) -> web.Response:
        p = await self._signed(request)
        symbol = self._market(p["symbol"]).symbol if "symbol" in p else None
        return reply([self._order_json(o, "QUERY") for o in self.engine.open_orders(symbol)])

    async def system_status(self, request: web.Request) -> web.Response:
        return reply(binance_system(self.wallet))

    async def coin_config(self, request: web.Request) -> web.Response:
        await self._signed(request)
        e = self.engine
        coins = sorted({a for m in e.markets.values() for a in (m.base, m.quote)} | set(e.free))
        return reply(binance_coins(self.wallet, coins, e.free, e.locked))

    async def account(self, request: web.Request) -> web.Response:
        await self._signed(request)
        e, fee = self.engine, fmt8(self.cfg.fee)
        bps = str(int(self.cfg.fee * 10000))
        return reply({"makerCommission": bps, "takerCommission": bps, "buyerCommission": 0, "sellerCommission": 0,
                      "commissionRates": {"maker": fee, "taker": fee, "buyer": fmt8(Decimal(0)),
                                          "seller": fmt8(Decimal(0))},
                      "canTrade": True, "canWithdraw": True, "canDeposit": True, "brokered": False,
                      "requireSelfTradePrevention": False, "preventSor": False, "updateTime": now_ms(),
                      "accountType": "SPOT",
                      "balances": [{"asset": a, "free": fmt8(e.free[a]), "locked": fmt8(e.locked.get(a, Decimal(0)))}
                                   for a in sorted(e.free)],
                      "permissions": ["SPOT"], "uid": 1})

    def _order_json(self, o: Order, view: str, new: bool = False) -> dict[str, Any]:
        """An order as POST (ACK/RESULT/FULL) or GET /api/v3/order returns it."""
        body: dict[str, Any] = {"symbol": o.symbol, "orderId": o.order_id, "orderListId": -1,
                                "clientOrderId": o.client_id}
        if new:
            body["transactTime"] = o.created_ms
        if view == "ACK":
            return body
        zero = Decimal(0)
        body.update({"price": fmt8(o.price or zero), "origQty": fmt8(o.qty or o.filled),
                     "executedQty": fmt8(o.filled), "cummulativeQuoteQty": fmt8(o.filled_quote),
                     "status": STATUS[o.status], "timeInForce": o.tif, "type": o.kind.upper(),
                     "side": o.side.upper()})
        if view == "QUERY":
            body.update({"stopPrice": fmt8(zero), "icebergQty": fmt8(zero), "time": o.created_ms,
                         "updateTime": o.updated_ms, "isWorking": True, "workingTime": o.created_ms,
                         "origQuoteOrderQty": fmt8(o.quote_qty or zero), "selfTradePreventionMode": "EXPIRE_MAKER"})
            return body
        body.update({"origQuoteOrderQty": fmt8(o.quote_qty or zero), "workingTime": o.created_ms,
                     "selfTradePreventionMode": "EXPIRE_MAKER"})
        if view == "FULL":
            body["fills"] = [{"price": fmt8(f.price), "qty": fmt8(f.qty), "commission": fmt8(f.fee),
                              "commissionAsset": f.fee_asset, "tradeId": f.trade_id} for f in o.fills]
        return body


def _check_range(f: dict[str, str], value: Decimal, lo: str, hi: str, step: str, name: str) -> None:
    """Binance filter rule: any field 0 is disabled; value in [lo, hi] and on the step grid."""
    lo_v, hi_v, step_v = Decimal(f[lo]), Decimal(f[hi]), Decimal(f[step])
    bad = (lo_v > 0 and value < lo_v) or (hi_v > 0 and value > hi_v) or (step_v > 0 and (value - lo_v) % step_v)
    if bad or value <= 0:
        raise BinanceError(-1013, f"Filter failure: {name}")


def _check_percent(f: dict[str, dict[str, Any]], price: Decimal, buy: bool, avg: Decimal | None) -> None:
    """PERCENT_PRICE_BY_SIDE (bid/ask multipliers) and the older PERCENT_PRICE, around the average price."""
    if avg is None:
        return
    if (band := f.get("PERCENT_PRICE_BY_SIDE")) is not None:
        up, down = (band["bidMultiplierUp"], band["bidMultiplierDown"]) if buy else (band["askMultiplierUp"],
                                                                                   band["askMultiplierDown"])
        if price > avg * Decimal(up) or price < avg * Decimal(down):
            raise BinanceError(-1013, "Filter failure: PERCENT_PRICE_BY_SIDE")
    old = f.get("PERCENT_PRICE")
    if old is not None and not avg * Decimal(old["multiplierDown"]) <= price <= avg * Decimal(old["multiplierUp"]):
        raise BinanceError(-1013, "Filter failure: PERCENT_PRICE")


def _check_notional(f: dict[str, Any] | None, notional: Decimal, *, market: bool) -> None:
    if f is None:
        return
    if (not market or f.get("applyMinToMarket")) and notional < Decimal(f["minNotional"]):
        raise BinanceError(-1013, "Filter failure: NOTIONAL")
    if (not market or f.get("applyMaxToMarket")) and notional > Decimal(f["maxNotional"]):
        raise BinanceError(-1013, "Filter failure: NOTIONAL")
