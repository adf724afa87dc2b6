"""The aiohttp shell against a tiny in-test server on 127.0.0.1 that answers with recorded payloads."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web
from binance_payloads import SAMPLE_L2, l2_lines, rest

from arbitrage_lite.core.domain import Side
from arbitrage_lite.core.venue import (
    BestBidAsk,
    BookDelta,
    CancelOrder,
    OrderState,
    OrderType,
    PlaceOrder,
    QueryOrder,
    RejectReason,
    Trade,
)
from arbitrage_lite.infra.venues.binance.client import BinanceClient
from arbitrage_lite.infra.venues.binance.limits import Action

KEY, SECRET = "test-key", "test-secret"
SERVER_MS = 1_800_000_000_000


def _app(state: dict[str, Any]) -> web.Application:
    filled = rest("binance_ccxt_GET_api_v3_order_LTCUSDT_market_FILLED_20230323.json")

    def signed(req: web.Request) -> dict[str, str] | web.Response:
        payload, _, sig = req.query_string.rpartition("&signature=")
        want = hmac.new(SECRET.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if req.headers.get("X-MBX-APIKEY") != KEY or sig != want:
            return web.json_response({"code": -1022, "msg": "Signature for this request is not valid."}, status=400)
        params = dict(parse_qsl(payload))
        state.setdefault("timestamps", []).append(int(params["timestamp"]))
        return params

    async def time_(req: web.Request) -> web.Response:
        return web.json_response({"serverTime": SERVER_MS})

    async def info(req: web.Request) -> web.Response:
        return web.json_response(rest("binance_spot_exchangeInfo_20240908_davijr.json.gz"),
                                 headers={"X-MBX-USED-WEIGHT-1M": "21"})

    async def order(req: web.Request) -> web.Response:
        p = signed(req)
        if isinstance(p, web.Response):
            return p
        if req.method == "POST":
            state.setdefault("placed", []).append(p)
            if p["newClientOrderId"] == "lost-1":
                return web.Response(status=503, text="<html>503</html>")
            if p["newClientOrderId"] == "slow-1":
                await asyncio.sleep(2)
            if p["newClientOrderId"] == "poor-1":
                return web.json_response({"code": -2010, "msg": "Account has insufficient balance for requested "
                                          "action."}, status=400)
            return web.json_response(dict(filled, clientOrderId=p["newClientOrderId"], symbol=p["symbol"]),
                                     headers={"X-MBX-ORDER-COUNT-10S": "1"})
        cid = p["origClientOrderId"]
        if req.method == "DELETE":
            return web.json_response({"code": -2011, "msg": "Unknown order sent."}, status=400)
        if cid == "lost-1":  # the 503'd order did reach the engine
            return web.json_response(dict(filled, clientOrderId=cid, symbol=p["symbol"]))
        return web.json_response({"code": -2013, "msg": "Order does not exist."}, status=400)

    async def open_orders(req: web.Request) -> web.Response:
        p = signed(req)
        return p if isinstance(p, web.Response) else web.json_response(
            rest("binance_ccxt_GET_api_v3_openOrders_LTCUSDT_20231107.json"))

    async def account(req: web.Request) -> web.Response:
        p = signed(req)
        if isinstance(p, web.Response):
            return p
        if state.get("throttle"):
            return web.json_response({"code": -1003, "msg": "Too many requests."}, status=429,
                                     headers={"Retry-After": "30"})
        return web.json_response(rest("binance_ccxt_GET_api_v3_account_20231206.json"))

    async def depth(req: web.Request) -> web.Response:
        line = next(js for _, js in l2_lines(SAMPLE_L2)[:20] if js.startswith('{"lastUpdateId"'))
        return web.Response(text=line, content_type="application/json")

    async def stream(req: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(req)
        state["streams"] = req.query["streams"]
        for _, js in l2_lines(SAMPLE_L2)[:12]:
            if not js.startswith('{"lastUpdateId"'):
                await ws.send_str(js)
        await ws.send_str('{"stream":"btcusdt@trade","data":{"e":"trade","p":"NaN"}}')
        await ws.close()
        return ws

    app = web.Application()
    app.router.add_get("/api/v3/time", time_)
    app.router.add_get("/api/v3/exchangeInfo", info)
    app.router.add_route("*", "/api/v3/order", order)
    app.router.add_get("/api/v3/openOrders", open_orders)
    app.router.add_get("/api/v3/account", account)
    app.router.add_get("/api/v3/depth", depth)
    app.router.add_get("/stream", stream)
    return app


async def _serve(state: dict[str, Any]) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(_app(state))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


def _place(cid: str, qty: str = "0.001", price: str = "61837.63") -> PlaceOrder:
    return PlaceOrder(cid, "BTCUSDT", Side.BUY, OrderType.IOC, Decimal(qty), Decimal(price))


def test_client_round_trips() -> None:
    async def run() -> None:
        state: dict[str, Any] = {}
        runner, url = await _serve(state)
        try:
            async with BinanceClient(url, KEY, SECRET, ws_url=url.replace("http", "ws"), timeout_s=0.5) as c:
                assert SECRET not in repr(c)
                await c.sync_time()
                assert abs(c.time.timestamp(c.clock() // 1_000_000) - SERVER_MS) < 1000
                info = await c.load_rules()
                assert "BTCUSDT" in info.symbols and c.limits.used_weight[60_000][1] == 21
                ok = await c.place(_place("al-1"))
                assert ok.state is OrderState.FILLED and ok.client_id == "al-1"
                assert state["placed"][-1]["quantity"] == "0.001" and state["timestamps"][-1] >= SERVER_MS
                lost = await c.place(_place("lost-1"))  # 503, then the query finds it
                assert lost.state is OrderState.FILLED and lost.client_id == "lost-1"
                slow = await c.place(_place("slow-1"))  # timeout, then the query says never got it
                assert slow.state is OrderState.REJECTED and slow.reason is RejectReason.NOT_FOUND
                poor = await c.place(_place("poor-1"))
                assert poor.reason is RejectReason.INSUFFICIENT_FUNDS
                tiny = await c.place(_place("tiny-1", qty="0.00001"))  # 0.6 USDT: refused locally, not sent
                assert tiny.reason is RejectReason.INVALID and state["placed"][-1]["newClientOrderId"] != "tiny-1"
                gone = await c.cancel(CancelOrder("al-1", "BTCUSDT"))
                assert gone.state is OrderState.REJECTED and gone.reason is RejectReason.NOT_FOUND
                q = await c.query(QueryOrder("nope", "BTCUSDT"))
                assert q.reason is RejectReason.NOT_FOUND
                assert [o.state for o in await c.open_orders("LTCUSDT")] == [OrderState.ACCEPTED]
                assert {b.asset for b in await c.balances()} == {"BTC", "LTC", "ETH"}
                snap = await c.depth_snapshot("BTCUSDT")
                assert not hasattr(snap, "reason") and snap.seq == 50093239218  # type: ignore[union-attr]
                got = [m async for m in c.stream(["btcusdt@depth@100ms", "btcusdt@trade", "btcusdt@bookTicker"])]
                kinds = {type(m).__name__ for m in got}
                assert {BookDelta.__name__, Trade.__name__, BestBidAsk.__name__, "Rejected"} == kinds
                assert state["streams"] == "btcusdt@depth@100ms/btcusdt@trade/btcusdt@bookTicker"
                state["throttle"] = True
                try:
                    await c.balances()
                    raise AssertionError("429 must raise for balances")
                except Exception as e:
                    assert getattr(e, "reason", None) is RejectReason.RATE_LIMITED
                d = c.limits.decide(c.clock() // 1_000_000, 1)
                assert d.action is Action.WAIT
                n = len(state["placed"])
                held = await c.place(_place("al-2"))  # inside the 30 s back-off: not sent
                assert held.reason is RejectReason.RATE_LIMITED and len(state["placed"]) == n
        finally:
            await runner.cleanup()

    asyncio.run(run())


def test_bad_signature_is_auth() -> None:
    async def run() -> None:
        runner, url = await _serve({})
        try:
            async with BinanceClient(url, KEY, "wrong") as c:
                await c.load_rules()
                ev = await c.place(_place("al-3"))
                assert ev.state is OrderState.REJECTED and ev.reason is RejectReason.AUTH and "-1022" in ev.detail
        finally:
            await runner.cleanup()

    asyncio.run(run())

