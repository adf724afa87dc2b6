"""Private order streams: the sans-IO readers on the brief's payload shapes (§A8, §B7), then both adapters'
``order_stream`` against the fake venues on 127.0.0.1 -- an order placed by REST is seen on the stream with the
filled quantity and fees REST reports, a bad signature/token is refused, a dropped or venue-ended stream comes
back with a ``resync`` marker."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from fake_session import with_fakes
from order_stream_reader import Reader, closed

from arbitrage_lite.core.domain import Side
from arbitrage_lite.core.venue import (
    Balance,
    CancelOrder,
    OrderEvent,
    OrderState,
    OrderType,
    PlaceOrder,
    QueryOrder,
    Rejected,
    RejectReason,
)
from arbitrage_lite.infra.venues.binance import userdata as ud
from arbitrage_lite.infra.venues.binance.client import BinanceClient
from arbitrage_lite.infra.venues.fake.auth import binance_ws_check
from arbitrage_lite.infra.venues.fake.binance import EXCHANGE_INFO
from arbitrage_lite.infra.venues.fake.engine import Book
from arbitrage_lite.infra.venues.fake.server import STATIC_BOOKS, FakeVenues
from arbitrage_lite.infra.venues.stream_loop import Refused, Resubscribe
from arbitrage_lite.infra.venues.upbit import private as up
from arbitrage_lite.infra.venues.upbit.client import UpbitClient
from arbitrage_lite.infra.venues.ws_io import StreamRefused

D = Decimal
SHARED_DATA = EXCHANGE_INFO.is_file() and all(p.is_file() for v in STATIC_BOOKS.values() for p in v.values())
needs_fakes = pytest.mark.skipif(not SHARED_DATA, reason="the shared data set (exchangeInfo, books) is not here")

# ---- Binance sans-IO (brief §B7)
EXEC_NEW = {"e": "executionReport", "E": 1499405658658, "s": "ETHBTC", "c": "mUvoqJxFIILMdfAW5iGSOW", "S": "BUY",
            "o": "LIMIT", "f": "GTC", "q": "1.00000000", "p": "0.10264410", "P": "0.00000000", "F": "0.00000000",
            "g": -1, "C": "", "x": "NEW", "X": "NEW", "r": "NONE", "i": 4293153, "l": "0.00000000",
            "z": "0.00000000", "L": "0.00000000", "n": "0", "N": None, "T": 1499405658657, "t": -1, "I": 8641984,
            "w": True, "m": False, "M": False, "O": 1499405658657, "Z": "0.00000000", "Y": "0.00000000",
            "Q": "0.00000000", "W": 1499405658657, "V": "NONE"}
EXEC_TRADE = dict(EXEC_NEW, x="TRADE", X="PARTIALLY_FILLED", l="0.40000000", z="0.40000000", L="0.10264410",
                  n="0.00040000", N="ETH", t=77, Z="0.04105764", Y="0.04105764", w=True)


def test_binance_subscribe_request_is_signed_like_the_ws_api() -> None:
    frame = json.loads(ud.subscribe_request("r1", "key123", "s3cr3t", 1_700_000_000_000, 5000))
    assert (frame["id"], frame["method"]) == ("r1", "userDataStream.subscribe.signature")
    p = frame["params"]
    payload = "apiKey=key123&recvWindow=5000&timestamp=1700000000000"  # every param but the signature, sorted
    assert p["signature"] == hmac.new(b"s3cr3t", payload.encode(), hashlib.sha256).hexdigest()
    assert binance_ws_check("s3cr3t", p) and not binance_ws_check("other", p)  # the fake's own check agrees
    assert json.loads(ud.unsubscribe_request("r2", 0)) == {"id": "r2", "method": "userDataStream.unsubscribe",
                                                           "params": {"subscriptionId": 0}}


def test_binance_listen_key_requests() -> None:
    post, put = ud.listen_key_request("POST"), ud.listen_key_request("PUT", "abc")
    assert (post.method, post.path, post.params) == ("POST", "/api/v3/userDataStream", ())
    assert (put.method, put.params) == ("PUT", (("listenKey", "abc"),))
    assert ud.listen_key_request("DELETE", "abc").method == "DELETE"
    with pytest.raises(ValueError):
        ud.listen_key_request("PUT")
    assert ud.parse_listen_key('{"listenKey":"pqia91ma19a5s61cv6a81va65sdf19v8a65a1a5s61cv6a81va65sdf19v8a65a1"}', 0) \
        == "pqia91ma19a5s61cv6a81va65sdf19v8a65a1a5s61cv6a81va65sdf19v8a65a1"
    assert isinstance(ud.parse_listen_key('{"listenKey":"a b"}', 0), Rejected)
    assert isinstance(ud.parse_listen_key("{", 0), Rejected)


def test_binance_user_stream_frames() -> None:
    s = ud.UserStream()
    ok = s.on_frame('{"id":"r1","status":200,"result":{"subscriptionId":0},"rateLimits":[]}', 1)
    assert ok == ud.Subscribed("r1", 0)
    bad = s.on_frame('{"id":"r1","status":400,"error":{"code":-1022,"msg":"Signature for this request is not '
                     'valid."}}', 1)
    assert isinstance(bad, Refused) and bad.reason is RejectReason.AUTH and "-1022" in bad.detail
    new = s.on_frame(json.dumps({"subscriptionId": 0, "event": EXEC_NEW}), 5)
    assert isinstance(new, OrderEvent) and (new.state, new.filled_qty, new.fills) == (OrderState.ACCEPTED, 0, ())
    trade = s.on_frame(json.dumps({"subscriptionId": 0, "event": EXEC_TRADE}), 6)
    assert isinstance(trade, OrderEvent) and trade.state is OrderState.PARTIALLY_FILLED
    assert [(f.trade_id, f.qty, f.price, f.fee, f.fee_asset) for f in trade.fills] == [
        ("77", D("0.4"), D("0.10264410"), D("0.0004"), "ETH")]
    again = s.on_frame(json.dumps(EXEC_TRADE), 7)  # the same fill, unwrapped (listenKey stream): dropped
    assert isinstance(again, Rejected) and again.reason == "duplicate"
    other_symbol = s.on_frame(json.dumps(dict(EXEC_TRADE, s="BTCUSDT")), 7)  # (symbol, tradeId) is the key
    assert isinstance(other_symbol, OrderEvent)
    pos = s.on_frame('{"e":"outboundAccountPosition","E":1,"u":1,"B":[{"a":"ETH","f":"10000.000000","l":"0"}]}', 8)
    assert pos == (Balance("ETH", D("10000"), D(0)),)
    assert isinstance(s.on_frame('{"subscriptionId":0,"event":{"e":"eventStreamTerminated","E":1}}', 9), Resubscribe)
    assert isinstance(s.on_frame('{"e":"listenKeyExpired","E":1,"listenKey":"k"}', 9), Resubscribe)
    assert s.on_frame('{"e":"balanceUpdate","E":1,"a":"BTC","d":"1","T":1}', 9) is None
    assert isinstance(s.on_frame("[1]", 9), Rejected) and isinstance(s.on_frame('{"e":"what"}', 9), Rejected)
    assert s.rejects.counts == {"duplicate": 1, "bad_json": 1, "unknown_type": 1}


# ---- Upbit sans-IO (brief §A8)
MY_ORDER = {"type": "myOrder", "code": "KRW-BTC", "uuid": "ac2dc2a3-fce9-40a2-a4f6-5987c25c438f",
            "ask_bid": "BID", "order_type": "limit", "state": "trade",
            "trade_uuid": "68315169-fba4-4175-ade3-aff14a616657", "price": 159523000, "avg_price": 159523000,
            "volume": 0.002, "remaining_volume": 0.003, "executed_volume": 0.002, "trades_count": 1,
            "reserved_fee": 398.8075, "remaining_fee": 239.2845, "paid_fee": 159.523, "locked": 478813.3,
            "executed_funds": 319046, "trade_fee": 159.523, "is_maker": False, "time_in_force": None,
            "identifier": "ct-1", "smp_type": None, "prevented_volume": 0, "prevented_locked": 0,
            "trade_timestamp": 1756000000100, "order_timestamp": 1756000000000, "timestamp": 1756000000120,
            "stream_type": "REALTIME"}


def test_upbit_subscribe_message() -> None:
    req = json.loads(up.subscribe_message(["krw-btc"], ticket="t"))
    assert req == [{"ticket": "t"}, {"type": "myOrder", "codes": ["KRW-BTC"]}, {"type": "myAsset"},
                   {"format": "DEFAULT"}]
    assert json.loads(up.subscribe_message(None, my_asset=False, ticket="t"))[1] == {"type": "myOrder"}


def test_upbit_my_order_and_my_asset() -> None:
    s = up.PrivateStream()
    trade = s.on_frame(json.dumps(MY_ORDER).encode(), 5)  # binary frames, like the venue
    assert isinstance(trade, OrderEvent) and (trade.client_id, trade.state, trade.filled_qty) == (
        "ct-1", OrderState.PARTIALLY_FILLED, D("0.002"))
    assert [(f.trade_id, f.price, f.qty, f.fee, f.fee_asset, f.ts_venue) for f in trade.fills] == [
        (MY_ORDER["trade_uuid"], D(159523000), D("0.002"), D("159.523"), "KRW", 1756000000100 * 1_000_000)]
    dup = s.on_frame(json.dumps(MY_ORDER), 6)
    assert isinstance(dup, Rejected) and dup.reason == "duplicate"
    done = s.on_frame(json.dumps(dict(MY_ORDER, state="done", trade_uuid=None, volume=0.005, price=159523000,
                                      remaining_volume=0, executed_volume=0.005)), 7)
    assert isinstance(done, OrderEvent) and (done.state, done.filled_qty, done.fills) == (
        OrderState.FILLED, D("0.005"), ())
    # a market buy ends 'cancel' with executions: filled (the dust was cancelled); quantity from executed_volume
    buy = dict(MY_ORDER, order_type="price", state="cancel", volume=None, remaining_volume=None, price=1000000,
               executed_volume=0.00626893)
    ev = s.on_frame(json.dumps(buy), 8)
    assert isinstance(ev, OrderEvent) and (ev.state, ev.filled_qty) == (OrderState.FILLED, D("0.00626893"))
    ioc = s.on_frame(json.dumps(dict(MY_ORDER, state="cancel", executed_volume=0, remaining_volume=0.005,
                                     volume=0.005, time_in_force="ioc")), 8)
    assert isinstance(ioc, OrderEvent) and (ioc.state, ioc.filled_qty) == (OrderState.EXPIRED, 0)
    wait = s.on_frame(json.dumps(dict(MY_ORDER, state="wait", executed_volume=0, volume=0.005)), 8)
    assert isinstance(wait, OrderEvent) and wait.state is OrderState.ACCEPTED
    asset = s.on_frame(json.dumps({"type": "myAsset", "asset_uuid": "e635f223", "assets": [
        {"currency": "KRW", "balance": 1386929.37231066, "locked": 10329.670127489}], "asset_timestamp": 1,
        "timestamp": 1, "stream_type": "REALTIME"}), 9)
    assert asset == (Balance("KRW", D("1386929.37231066"), D("10329.670127489")),)
    refused = s.on_frame('{"error":{"name":"INVALID_AUTH","message":"bad token"}}', 9)
    assert isinstance(refused, Refused) and refused.reason is RejectReason.AUTH
    wrong = s.on_frame('{"error":{"name":"WRONG_FORMAT","message":"x"}}', 9)
    assert isinstance(wrong, Rejected) and wrong.reason == "venue_error"
    assert s.on_frame('{"status":"UP"}', 9) is None
    assert s.rejects.counts == {"duplicate": 1, "venue_error": 1}


# ---- against the fakes


async def _binance(info: dict[str, Any], secret: str | None = None) -> BinanceClient:
    b = info["binance"]
    c = BinanceClient(b["rest"], b["api_key"], secret or b["secret"], ws_url=b["ws"])
    await c.sync_time()
    await c.load_rules()
    return c


def _connected(reader: Reader, n: int = 1) -> Callable[[list[Any]], bool]:
    return lambda _: reader.markers().count("connected") >= n


def _stream_agrees(events: list[OrderEvent], final: OrderEvent) -> None:
    """The stream's last word is the REST one; its fills add up to the filled quantity, each fill once."""
    assert (events[-1].state, events[-1].filled_qty) == (final.state, final.filled_qty)
    assert events[0].state is OrderState.ACCEPTED
    fills = [f for e in events for f in e.fills]
    assert len({f.trade_id for f in fills}) == len(fills)
    assert sum((f.qty for f in fills), D(0)) == final.filled_qty
    assert [e.filled_qty for e in events] == sorted(e.filled_qty for e in events)  # cumulative, never back


@needs_fakes
@pytest.mark.parametrize("listen_key", [False, True], ids=["ws_api", "listen_key"])
def test_binance_stream_reports_a_market_buy_as_rest_does(listen_key: bool) -> None:
    async def body(fv: FakeVenues, info: dict[str, Any]) -> None:
        assert fv.binance is not None
        asks = ((D("115279.26"), D("0.01")), (D("115279.27"), D("0.02")), (D("115280"), D(1)))
        fv.binance.engine.set_book("BTCUSDT", Book(((D("115279.25"), D(1)),), asks), 0)  # a buy walks 3 levels
        c = await _binance(info)
        reader = Reader(c.order_stream(listen_key=listen_key))
        try:
            await reader.until(_connected(reader))
            placed = await c.place(PlaceOrder("pb-1", "BTCUSDT", Side.BUY, OrderType.MARKET, D("0.05")))
            assert placed.state is OrderState.FILLED and len(placed.fills) > 1  # walks several levels
            await reader.until(closed("pb-1", reader))
            events = reader.events("pb-1")
            _stream_agrees(events, await c.query(QueryOrder("pb-1", "BTCUSDT")))
            streamed = {f.trade_id: (f.price, f.qty, f.fee, f.fee_asset) for e in events for f in e.fills}
            assert streamed == {f.trade_id: (f.price, f.qty, f.fee, f.fee_asset) for f in placed.fills}
            balances = [b for b in reader.items if isinstance(b, tuple)]
            rest = {b.asset: b for b in await c.balances()}
            assert {b.asset: b for b in balances[-1]} == {a: rest[a] for a in ("BTC", "USDT")}
        finally:
            await reader.close()
            await c.close()
    with_fakes(body)


@needs_fakes
def test_binance_stream_rest_then_cancel_and_expired_ioc() -> None:
    async def body(fv: FakeVenues, info: dict[str, Any]) -> None:
        c = await _binance(info)
        reader = Reader(c.order_stream())
        try:
            await reader.until(_connected(reader))
            await c.place(PlaceOrder("pb-2", "BTCUSDT", Side.BUY, OrderType.LIMIT, D("0.001"), D(100000)))
            await c.cancel(CancelOrder("pb-2", "BTCUSDT"))
            await c.place(PlaceOrder("pb-3", "BTCUSDT", Side.BUY, OrderType.IOC, D("0.001"), D(100000)))
            await reader.until(closed("pb-3", reader))
            assert [e.state for e in reader.events("pb-2")] == [OrderState.ACCEPTED, OrderState.CANCELLED]
            assert [e.state for e in reader.events("pb-3")] == [OrderState.ACCEPTED, OrderState.EXPIRED]
        finally:
            await reader.close()
            await c.close()
    with_fakes(body)


@needs_fakes
def test_binance_bad_signature_and_bad_key_are_refused() -> None:
    async def body(fv: FakeVenues, info: dict[str, Any]) -> None:
        c = await _binance(info, secret="0" * 64)
        b = info["binance"]
        wrong_key = BinanceClient(b["rest"], "nokey", b["secret"], ws_url=b["ws"])
        try:
            with pytest.raises(StreamRefused) as sig:
                await anext(aiter(c.order_stream()))
            assert sig.value.reason is RejectReason.AUTH and "-1022" in sig.value.detail
            with pytest.raises(StreamRefused) as key:
                await anext(aiter(wrong_key.order_stream(listen_key=True)))
            assert key.value.reason is RejectReason.AUTH and "-2015" in key.value.detail
        finally:
            await c.close()
            await wrong_key.close()
    with_fakes(body)


@needs_fakes
@pytest.mark.parametrize("how", ["drop", "terminated", "listen_key_expired"])
def test_binance_stream_comes_back_with_a_resync_marker(how: str) -> None:
    async def body(fv: FakeVenues, info: dict[str, Any]) -> None:
        assert fv.binance_private is not None
        c = await _binance(info)
        reader = Reader(c.order_stream(listen_key=how == "listen_key_expired"))
        try:
            await reader.until(_connected(reader))
            {"drop": fv.binance_private.hub.close_all, "terminated": fv.binance_private.terminate,
             "listen_key_expired": fv.binance_private.expire}[how]()
            await reader.until(_connected(reader, 2))
            await reader.until(lambda _: "resync" in reader.markers())
            assert reader.markers() == ["connected", "disconnected", "reconnect", "connected", "resync"]
            await c.place(PlaceOrder("pb-4", "BTCUSDT", Side.BUY, OrderType.MARKET, D("0.001")))
            await reader.until(closed("pb-4", reader))  # the new subscription streams
        finally:
            await reader.close()
            await c.close()
    with_fakes(body)


def _upbit(info: dict[str, Any], secret: str | None = None) -> UpbitClient:
    u = info["upbit"]
    return UpbitClient(u["rest"] + "/v1", u["access_key"], secret or u["secret"], ws_url=u["ws"])


@needs_fakes
def test_upbit_stream_reports_a_market_buy_and_a_limit_as_rest_does() -> None:
    async def body(fv: FakeVenues, info: dict[str, Any]) -> None:
        c = _upbit(info)
        reader = Reader(c.order_stream(["KRW-BTC"]))
        try:
            await reader.until(_connected(reader))
            buy = PlaceOrder("pu-1", "KRW-BTC", Side.BUY, OrderType.MARKET, None, quote_amount=D(5_000_000))
            assert (await c.place(buy)).state is not OrderState.REJECTED
            await reader.until(closed("pu-1", reader))
            q = await c.query(QueryOrder("pu-1", "KRW-BTC"))
            assert q.state is OrderState.FILLED and len(q.fills) > 1
            events = reader.events("pu-1")
            _stream_agrees(events, q)
            streamed = {f.trade_id: (f.price, f.qty) for e in events for f in e.fills}
            assert streamed == {f.trade_id: (f.price, f.qty) for f in q.fills}
            assert sum((f.fee for e in events for f in e.fills), D(0)) == sum((f.fee for f in q.fills), D(0)) > 0
            rest = {b.asset: b for b in await c.balances()}
            assets = [b for b in reader.items if isinstance(b, tuple)]
            assert {b.asset: b for b in assets[-1]} == {a: rest[a] for a in ("BTC", "KRW")}
            await c.place(PlaceOrder("pu-2", "KRW-BTC", Side.BUY, OrderType.LIMIT, D("0.001"), D(150000000)))
            await c.cancel(CancelOrder("pu-2", "KRW-BTC"))
            await reader.until(closed("pu-2", reader))
            assert [e.state for e in reader.events("pu-2")] == [OrderState.ACCEPTED, OrderState.CANCELLED]
        finally:
            await reader.close()
            await c.close()
    with_fakes(body)


@needs_fakes
def test_upbit_bad_token_is_refused_and_a_drop_resyncs() -> None:
    async def body(fv: FakeVenues, info: dict[str, Any]) -> None:
        assert fv.upbit_private is not None
        bad, c = _upbit(info, secret="0" * 40), _upbit(info)
        reader = Reader(c.order_stream())
        try:
            with pytest.raises(StreamRefused) as refused:
                await anext(aiter(bad.order_stream()))
            assert refused.value.reason is RejectReason.AUTH
            await reader.until(_connected(reader))
            fv.upbit_private.hub.close_all()
            await reader.until(lambda _: "resync" in reader.markers())
            assert reader.markers() == ["connected", "disconnected", "reconnect", "connected", "resync"]
            sell = PlaceOrder("pu-3", "KRW-BTC", Side.SELL, OrderType.MARKET, D("0.01"))
            assert (await c.place(sell)).state is not OrderState.REJECTED
            await reader.until(closed("pu-3", reader))  # all markets (no codes) on the new connection
            assert reader.events("pu-3")[-1].filled_qty == D("0.01")
        finally:
            await reader.close()
            await bad.close()
            await c.close()
    with_fakes(body)
