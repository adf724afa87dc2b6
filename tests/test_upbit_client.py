"""The aiohttp shell against a tiny in-test Upbit-shaped server on 127.0.0.1 (no internet).

The server checks every JWT and its query_hash the way Upbit does (auth.verify_token), answers with the
brief's order bodies (no recorded ones exist), and streams the recorded SIMPLE session as binary frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal

import pytest
from aiohttp import WSMsgType, web

from arbitrage_lite.core.domain import Side
from arbitrage_lite.core.venue import (
    BookSnapshot,
    CancelOrder,
    OrderState,
    OrderType,
    PlaceOrder,
    QueryOrder,
    Rejected,
    RejectReason,
    Trade,
)
from arbitrage_lite.infra.data.sample import find_shared_data
from arbitrage_lite.infra.venues.upbit import auth
from arbitrage_lite.infra.venues.upbit.client import UpbitClient

KEY, SECRET = "test-access", "test-secret"


def _order(identifier: str, state: str = "wait", executed: str = "0") -> dict[str, object]:
    return {"uuid": "u-" + identifier, "side": "bid", "ord_type": "limit", "price": "160000000", "state": state,
            "market": "KRW-BTC", "created_at": "2025-08-24T15:03:18+09:00", "volume": "0.01",
            "remaining_volume": str(Decimal("0.01") - Decimal(executed)), "executed_volume": executed,
            "paid_fee": "0", "identifier": identifier, "trades_count": 0}


class FakeUpbit:
    """Brief-shaped answers; ``mode`` per identifier: ok, 500, slow, 429."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.orders: dict[str, dict[str, object]] = {}
        self.mode: dict[str, str] = {}
        self.subscriptions: list[object] = []

    def _auth(self, request: web.Request, query: str) -> web.Response | None:
        try:
            payload = auth.verify_token(request.headers.get("Authorization", ""), SECRET, query)
        except auth.AuthError as exc:
            return web.json_response({"error": {"name": str(exc).split(":")[0], "message": str(exc)}}, status=401)
        assert payload["access_key"] == KEY
        return None

    def _headers(self, group: str) -> dict[str, str]:
        return {"Remaining-Req": f"group={group}; min=1800; sec=7"}

    async def post_orders(self, request: web.Request) -> web.StreamResponse:
        raw = await request.text()
        body = json.loads(raw)
        bad = self._auth(request, auth.query_string(auth.flatten(body)))
        if bad:
            return bad
        ident = body["identifier"]
        self.calls.append(("POST", ident))
        if ident in self.orders or ident in self.mode.get("_burnt", ""):
            return web.json_response({"error": {"name": "duplicate_identifier", "message": "x"}}, status=400)
        mode = self.mode.get(ident, "ok")
        if mode == "429":
            return web.json_response({"error": {"name": "too_many_requests", "message": "x"}}, status=429)
        self.orders[ident] = _order(ident)
        if mode == "500":
            self.orders[ident] = _order(ident, "done", "0.01")
            return web.Response(status=502, text="bad gateway")  # accepted, then the gateway failed
        if mode == "slow":
            await asyncio.sleep(2)
        return web.json_response(self.orders[ident], status=201, headers=self._headers("order"))

    async def one_order(self, request: web.Request) -> web.Response:
        bad = self._auth(request, request.query_string)
        if bad:
            return bad
        ident = request.query["identifier"]
        self.calls.append((request.method, ident))
        if ident not in self.orders:
            return web.json_response({"error": {"name": "order_not_found", "message": "no order"}}, status=404)
        if request.method == "DELETE":
            return web.json_response(self.orders[ident], headers=self._headers("default"))  # still reads wait
        return web.json_response(self.orders[ident], headers=self._headers("default"))

    async def accounts(self, request: web.Request) -> web.Response:
        bad = self._auth(request, "")
        return bad or web.json_response([{"currency": "KRW", "balance": "1000000.0", "locked": "0",
                                          "avg_buy_price": "0", "avg_buy_price_modified": False,
                                          "unit_currency": "KRW"}])

    async def open_orders(self, request: web.Request) -> web.Response:
        bad = self._auth(request, request.query_string)
        assert "states[]=wait&states[]=watch" in request.query_string
        return bad or web.json_response([o for o in self.orders.values() if o["state"] == "wait"])

    async def ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        msg = await ws.receive()
        assert msg.type == WSMsgType.TEXT
        self.subscriptions.append(json.loads(msg.data))
        shared = find_shared_data()
        assert shared is not None
        with gzip.open(shared / "fixtures" / "cryptofeed" / "UPBIT.ws.62.0.gz", "rt") as f:
            for line in f:
                _, sep, payload = line.rstrip("\n").partition(": b'")
                if sep:
                    await ws.send_bytes(payload[:-1].encode())
        await ws.send_bytes(b'{"status":"UP"}')
        await ws.close()
        return ws


@contextlib.asynccontextmanager
async def serve() -> AsyncIterator[tuple[FakeUpbit, str]]:
    """The fake on a free 127.0.0.1 port, stopped on exit."""
    fake = FakeUpbit()
    app = web.Application()
    app.router.add_post("/v1/orders", fake.post_orders)
    app.router.add_route("*", "/v1/order", fake.one_order)
    app.router.add_get("/v1/accounts", fake.accounts)
    app.router.add_get("/v1/orders/open", fake.open_orders)
    app.router.add_get("/websocket/v1", fake.ws)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield fake, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def _with_server(body: Callable[[FakeUpbit, str], Awaitable[None]]) -> None:
    async with serve() as (fake, url):
        await asyncio.wait_for(body(fake, url), 20)


def _cmd(cid: str) -> PlaceOrder:
    return PlaceOrder(cid, "KRW-BTC", Side.BUY, OrderType.LIMIT, Decimal("0.01"), Decimal("160000000"))


def test_place_query_cancel_over_http() -> None:
    async def run(fake: FakeUpbit, url: str) -> None:
        c = UpbitClient(url + "/v1", KEY, SECRET, timeout_s=0.5)
        ev = await c.place(_cmd("al-r1-1-a-u"))
        assert ev.state == OrderState.ACCEPTED and ev.venue_order_id == "u-al-r1-1-a-u"
        assert c.limiter.groups["order"].venue_left == 7  # Remaining-Req read
        assert (await c.query(QueryOrder("al-r1-1-a-u", "KRW-BTC"))).state == OrderState.ACCEPTED
        assert len(await c.open_orders("KRW-BTC")) == 1
        cancel = await c.cancel(CancelOrder("al-r1-1-a-u", "KRW-BTC"))
        assert cancel.state == OrderState.ACCEPTED  # accepted cancel: the snapshot may still read wait
        nf = await c.query(QueryOrder("al-r1-nope-a-u", "KRW-BTC"))
        assert nf.state == OrderState.REJECTED and nf.reason == RejectReason.NOT_FOUND
        (krw,) = await c.balances()
        assert krw.asset == "KRW" and krw.free == Decimal("1000000.0")
        bad = UpbitClient(url + "/v1", KEY, "wrong-secret")
        refused = await bad.place(_cmd("al-r1-2-a-u"))
        assert refused.state == OrderState.REJECTED and refused.reason == RejectReason.AUTH
        await c.close()
        await bad.close()
    asyncio.run(_with_server(run))


def test_5xx_and_timeout_are_unknown_until_a_query() -> None:
    async def run(fake: FakeUpbit, url: str) -> None:
        fake.mode.update({"al-r1-5-a-u": "500", "al-r1-6-a-u": "slow", "al-r1-7-a-u": "429"})
        c = UpbitClient(url + "/v1", KEY, SECRET, timeout_s=0.3)
        ev = await c.place(_cmd("al-r1-5-a-u"))
        assert ev.state == OrderState.UNKNOWN
        settled = await c.query(QueryOrder("al-r1-5-a-u", "KRW-BTC"))
        assert settled.state == OrderState.FILLED and settled.filled_qty == Decimal("0.01")
        assert (await c.place(_cmd("al-r1-6-a-u"))).state == OrderState.UNKNOWN  # timed out
        again = await c.place(_cmd("al-r1-6-a-u"))  # never resent under the same identifier
        assert again.reason == RejectReason.DUPLICATE_ID
        assert fake.calls.count(("POST", "al-r1-6-a-u")) == 1
        limited = await c.place(_cmd("al-r1-7-a-u"))
        assert limited.reason == RejectReason.RATE_LIMITED
        assert c.limiter.wait_ns("order", c._clock()) > 0  # the group is closed after a 429
        await c.close()
    asyncio.run(_with_server(run))


@pytest.mark.skipif(find_shared_data() is None, reason="shared data set not found")
def test_ws_stream_of_the_recorded_session() -> None:
    async def run(fake: FakeUpbit, url: str) -> None:
        c = UpbitClient(url + "/v1", KEY, SECRET, ws_url=url.replace("http", "ws") + "/websocket/v1")
        got: list[object] = []
        async for item in c.stream(["KRW-LAMB"], max_reconnects=0):
            got.append(item)
        assert sum(isinstance(x, Trade) for x in got) == 304
        assert sum(isinstance(x, BookSnapshot) for x in got) == 145
        assert not any(isinstance(x, Rejected) for x in got)
        sub = fake.subscriptions[0]
        assert isinstance(sub, list) and sub[-1] == {"format": "SIMPLE"} and "ticket" in sub[0]
        await c.close()
    asyncio.run(_with_server(run))
