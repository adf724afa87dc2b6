"""Market-data loops: the sans-IO StreamLoop (backoff, idle, stale, backwards time) without sockets, then both
client shells against a tiny in-test aiohttp WS server on 127.0.0.1 that drops the connection, injects a
sequence gap, sends an older snapshot and goes silent."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from aiohttp import WSMsgType, web

from arbitrage_lite.core.domain import Side
from arbitrage_lite.core.venue import BookDelta, BookLevel, BookSnapshot, MarketState, MarketStatus, Rejected, Trade
from arbitrage_lite.infra.venues.binance.client import BinanceClient, stream_key
from arbitrage_lite.infra.venues.stream_loop import Backoff, Marker, S, StreamLoop
from arbitrage_lite.infra.venues.upbit.client import UpbitClient

# ---- sans-IO


def test_backoff_is_capped_jittered_and_seeded() -> None:
    a, b = Backoff(0.1, 2.0, seed=7), Backoff(0.1, 2.0, seed=7)
    da = [a.next() for _ in range(10)]
    assert da == [b.next() for _ in range(10)]  # deterministic per seed
    assert da != [Backoff(0.1, 2.0, seed=8).next() for _ in range(10)]  # spread across clients
    for n, d in enumerate(da):
        ceiling = min(2.0, 0.1 * 2**n)
        assert ceiling / 2 <= d <= ceiling  # exponential, capped, never 0
    a.reset()
    assert 0.05 <= a.next() <= 0.1


def _trade(ts: int, symbol: str = "BTCUSDT") -> Trade:
    return Trade("binance", symbol, Decimal("1"), Decimal("1"), Side.BUY, "1", ts, 0)


def test_loop_reconnect_gives_up_and_resets_backoff_only_after_data() -> None:
    loop = StreamLoop("binance", Backoff(1.0, 8.0, seed=1), max_reconnects=3)
    loop.on_connected(0, [], 0)
    _, d1 = loop.on_disconnected("dropped", 0)
    loop.on_connected(0, [], 0)
    _, d2 = loop.on_disconnected("dropped", 0)  # connected but no data: the backoff keeps growing
    assert d1 is not None and d2 is not None and 0.5 <= d1 <= 1.0 and 1.0 <= d2 <= 2.0
    loop.on_connected(0, [], 0)
    assert loop.on_data(_trade(5), 0) is None
    markers, d3 = loop.on_disconnected("dropped", 0)  # data came: back to the base delay
    assert d3 is not None and 0.5 <= d3 <= 1.0
    assert [m.kind for m in markers] == ["disconnected", "reconnect"] and markers[1].count == 3
    markers, d4 = loop.on_disconnected("dropped", 0)
    assert d4 is None and markers[-1].kind == "gave_up"


def test_loop_idle_stale_and_backwards_time() -> None:
    loop = StreamLoop("binance", idle_timeout_s=5.0, stale_after_s=2.0)
    loop.on_connected(0, [("Trade", "BTCUSDT"), ("Trade", "ETHUSDT")], 0)
    assert loop.on_data(_trade(100), 1 * S) is None
    loop.on_frame(1 * S)
    assert loop.stale(int(1.5 * S), 0) == []
    (quiet,) = loop.stale(2 * S, 0)  # ETHUSDT never spoke since the subscription
    assert quiet.reason == "stale" and "ETHUSDT" in quiet.detail
    assert loop.stale(int(2.5 * S), 0) == []  # once per quiet spell
    (btc,) = loop.stale(3 * S, 0)
    assert "BTCUSDT" in btc.detail
    back = loop.on_data(_trade(99), 3 * S)
    assert back is not None and back.reason == "out_of_order"
    assert loop.on_data(_trade(100), 3 * S) is None  # equal time is fine
    assert loop.rejects.counts == {"stale": 2, "out_of_order": 1}
    assert not loop.idle(int(5.9 * S)) and loop.idle(6 * S)  # last frame at 1 s
    assert 0.001 <= loop.receive_timeout_s(int(5.9 * S)) <= 0.1 + 1e-9


def test_stream_keys() -> None:
    assert stream_key("btcusdt@depth@100ms") == ("BookDelta", "BTCUSDT")
    assert stream_key("btcusdt@depth5") == ("BookSnapshot", "BTCUSDT")
    assert stream_key("ethusdt@aggTrade") == ("Trade", "ETHUSDT")
    assert stream_key("btcusdt@bookTicker") == ("BestBidAsk", "BTCUSDT")
    assert stream_key("btcusdt@kline_1m") is None


# ---- shells against a scripted 127.0.0.1 server
Script = list[list[Any]]  # per connection: frames (dict -> JSON text), "hold" = go silent, then close


async def _serve(routes: Callable[[web.Application], None]) -> tuple[web.AppRunner, str]:
    app = web.Application()
    routes(app)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


def _ws_handler(script: Script, state: dict[str, Any]) -> Callable[[web.Request], Any]:
    async def handler(req: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(req)
        n = state["connections"] = state.get("connections", 0) + 1
        frames = script[n - 1] if n <= len(script) else ["hold"]
        for f in frames:
            if f == "hold":
                try:  # silent until the client gives up on us (its close frame ends the wait)
                    while (await ws.receive(timeout=5)).type is WSMsgType.TEXT:
                        pass  # a subscription
                except TimeoutError:
                    pass
            elif isinstance(f, tuple):  # ("snapshot", id): what /api/v3/depth answers from now on
                state["snapshot"] = f[1]
            else:
                await ws.send_str(json.dumps(f))
                await asyncio.sleep(0.005)
        await ws.close()
        return ws
    return handler


def _diff(first: int, last: int, bid: str = "100", ask: str = "101", e: int = 1) -> dict[str, Any]:
    return {"stream": "btcusdt@depth@100ms", "data": {"e": "depthUpdate", "E": e, "s": "BTCUSDT", "U": first,
                                                      "u": last, "b": [[bid, "1"]], "a": [[ask, "2"]]}}


def _btrade(t: int, tid: int) -> dict[str, Any]:
    return {"stream": "btcusdt@trade", "data": {"e": "trade", "E": t, "s": "BTCUSDT", "t": tid, "p": "100.5",
                                                "q": "0.1", "T": t, "m": True}}


def _kinds(got: list[Any]) -> list[str]:
    return [g.kind if isinstance(g, Marker) else g.reason if isinstance(g, Rejected) else type(g).__name__
            for g in got]


def test_binance_drop_gap_idle_reconnect_and_resync() -> None:
    script: Script = [
        [("snapshot", 100), _diff(101, 102), _diff(103, 104), _btrade(1000, 1),
         ("snapshot", 111), _diff(110, 111), _diff(112, 113)],  # 105..109 never came: a gap -> resync at 111
        [("snapshot", 199), _diff(200, 201), _btrade(2000, 2), _btrade(1500, 3), "hold"],  # drop; old trade; silence
    ]
    state: dict[str, Any] = {}

    async def depth(req: web.Request) -> web.Response:
        state["depth_calls"] = state.get("depth_calls", 0) + 1
        snap = {"lastUpdateId": state["snapshot"], "bids": [["99", "5"]], "asks": [["102", "5"]]}
        return web.json_response(snap)

    def routes(app: web.Application) -> None:
        app.router.add_get("/stream", _ws_handler(script, state))
        app.router.add_get("/api/v3/depth", depth)

    async def run() -> list[Any]:
        runner, url = await _serve(routes)
        loop = StreamLoop("binance", Backoff(0.01, 0.05, seed=3), idle_timeout_s=0.4, stale_after_s=10.0,
                          max_reconnects=2)
        got: list[Any] = []
        try:
            async with BinanceClient(url, "k", "s", ws_url=url.replace("http", "ws")) as c:
                async for item in c.market_data(["btcusdt@depth@100ms", "btcusdt@trade"], loop=loop, depth_limit=5,
                                                resync_min_s=0.0):
                    got.append(item)
                book = c.books.get("BTCUSDT")
                assert book is None  # books are dropped on every reconnect
        finally:
            await runner.cleanup()
        return got

    got = asyncio.run(asyncio.wait_for(run(), 20))
    kinds = _kinds(got)
    conn2 = kinds.index("connected", 1)
    assert kinds[:conn2] == ["connected", "BookSnapshot", "BookDelta", "Trade", "sequence_gap", "resync",
                             "BookSnapshot", "BookDelta", "disconnected", "reconnect", "resync"]
    first_sync = got[1]
    assert isinstance(first_sync, BookSnapshot) and first_sync.seq == 102  # snapshot 100 + the buffered 101..102
    assert first_sync.bids == (BookLevel(Decimal("100"), Decimal("1")), BookLevel(Decimal("99"), Decimal("5")))
    resynced = got[6]
    assert isinstance(resynced, BookSnapshot) and resynced.seq == 111
    after = kinds[conn2:]
    assert after[:5] == ["connected", "BookSnapshot", "Trade", "out_of_order", "disconnected"]
    assert "idle" in next(g.detail for g in got[conn2:] if isinstance(g, Marker) and g.kind == "disconnected")
    reconnects = [g for g in got if isinstance(g, Marker) and g.kind == "reconnect"]
    expect = Backoff(0.01, 0.05, seed=3)
    first_delay = expect.next()
    expect.reset()  # every connection delivered data: each reconnect starts from the base delay again
    assert [m.delay_s for m in reconnects] == [first_delay, expect.next()]
    assert kinds[-1] == "gave_up" and state["connections"] == 3
    assert state["depth_calls"] == 3  # initial, gap, after the reconnect


T0 = 1_700_000_000_000  # ms: Upbit times must be plausible dates


def _ub(code: str, tms: int, bid: str = "100", ask: str = "101") -> dict[str, Any]:
    return {"ty": "orderbook", "cd": code, "tms": T0 + tms, "tas": 1, "tbs": 1,
            "obu": [{"ap": ask, "bp": bid, "as": 1.5, "bs": 2.5}], "st": "REALTIME"}


def _ut(code: str, ttms: int, sid: int) -> dict[str, Any]:
    return {"ty": "trade", "cd": code, "tp": 100, "tv": 0.5, "ab": "BID", "ttms": T0 + ttms, "tms": T0 + ttms,
            "sid": sid, "st": "REALTIME"}


def _uticker(code: str, tms: int) -> dict[str, Any]:
    return {"ty": "ticker", "cd": code, "tms": T0 + tms, "ms": "ACTIVE", "its": False, "mw": "NONE"}


def test_upbit_drop_resync_out_of_order_stale_and_idle() -> None:
    script: Script = [
        [_ub("KRW-BTC", 1000), _ub("KRW-BTC", 2000), _ub("KRW-BTC", 1500),  # an older book: out of order
         _ut("KRW-BTC", 1900, 2), _ut("KRW-BTC", 1800, 1),  # trades may step back (not ordered by Upbit)
         _uticker("KRW-BTC", 3000), _uticker("KRW-BTC", 2500)],  # a ticker must not
        [_ub("KRW-BTC", 1200)] + [_ub("KRW-BTC", 1300 + i) for i in range(12)] + ["hold"],
    ]
    state: dict[str, Any] = {}

    async def run() -> tuple[list[Any], StreamLoop]:
        runner, url = await _serve(lambda app: app.router.add_get("/websocket/v1", _ws_handler(script, state)))
        loop = StreamLoop("upbit", Backoff(0.01, 0.05, seed=5), idle_timeout_s=0.5, stale_after_s=0.04,
                          max_reconnects=1)
        c = UpbitClient(url + "/v1", "k", "s", ws_url=url.replace("http", "ws") + "/websocket/v1")
        got: list[Any] = []
        try:
            async for item in c.stream(["KRW-BTC"], types=("orderbook", "trade", "ticker"), loop=loop):
                got.append(item)
        finally:
            await c.close()
            await runner.cleanup()
        return got, loop

    got, loop = asyncio.run(asyncio.wait_for(run(), 20))
    kinds = _kinds(got)
    conn2 = kinds.index("connected", 1)
    first = [k for k in kinds[:conn2] if k != "stale"]
    assert first == ["connected", "BookSnapshot", "BookSnapshot", "out_of_order", "Trade", "Trade", "MarketStatus",
                     "out_of_order", "disconnected", "reconnect", "resync"]
    assert isinstance(got[kinds.index("MarketStatus")], MarketStatus)
    assert got[kinds.index("MarketStatus")].state is MarketState.TRADING
    reborn = got[conn2 + 1]  # 1200 < the 2000 held before the drop: accepted, the books were dropped
    assert isinstance(reborn, BookSnapshot) and reborn.ts_venue == (T0 + 1200) * 1_000_000
    stale = [g for g in got[conn2:] if isinstance(g, Rejected) and g.reason == "stale"]
    assert {s.detail.split(":")[0] for s in stale} >= {"Trade KRW-BTC", "MarketStatus KRW-BTC"}
    assert "idle" in next(g.detail for g in got[conn2:] if isinstance(g, Marker) and g.kind == "disconnected")
    assert kinds[-1] == "gave_up" and state["connections"] == 2
    assert loop.counts["reconnect"] == 1 and loop.counts["resync"] == 1
    assert loop.rejects.counts["out_of_order"] == 2 and loop.rejects.counts["stale"] >= 2
    assert not any(isinstance(g, BookDelta) for g in got)
