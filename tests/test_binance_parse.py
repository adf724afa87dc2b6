"""Binance parsers on recorded payloads: streams, REST bodies, errors, user data, exchangeInfo rules."""

from __future__ import annotations

import json
from decimal import Decimal

from binance_payloads import SAMPLE_L2, cryptofeed_ws, l2_lines, rest

from arbitrage_lite.core.domain import Side
from arbitrage_lite.core.venue import (
    BestBidAsk,
    BookDelta,
    BookSnapshot,
    MarketState,
    OrderEvent,
    OrderState,
    Rejected,
    RejectReason,
    Trade,
)
from arbitrage_lite.infra.exchange_rules import binance_usdt_rules
from arbitrage_lite.infra.venues.binance import parse as p
from arbitrage_lite.infra.venues.binance.rules import ExchangeInfo, parse_exchange_info


def test_sample_stream_types_and_values() -> None:
    got = {}
    for ts, js in l2_lines(SAMPLE_L2)[:9]:
        if js.startswith('{"lastUpdateId"'):
            got["snap"] = p.parse_depth_snapshot(js, "BTCUSDT", ts)
        else:
            m = p.parse_stream(js, ts)
            got.setdefault(type(m).__name__, m)
    d = got["BookDelta"]
    assert isinstance(d, BookDelta) and (d.first_seq, d.last_seq) == (50093239189, 50093239202)
    assert d.bids[0].price == Decimal("61737.63") and d.bids[0].qty == 0 and d.ts_venue == 1723161255208 * p.MS
    t = got["Trade"]
    assert isinstance(t, Trade) and t.aggressor == Side.SELL and t.trade_id == "3735683259"  # m=true: seller took
    assert t.price == Decimal("61837.63") and t.qty == Decimal("0.02")
    b = got["BestBidAsk"]
    assert isinstance(b, BestBidAsk) and b.seq == 50093239212 and b.ask == Decimal("61837.64")
    s = got["snap"]
    assert isinstance(s, BookSnapshot) and s.seq == 50093239218 and s.bids[0].price > s.bids[-1].price


def test_cryptofeed_session_every_frame_parses_or_is_a_counted_unknown() -> None:
    kinds: dict[str, int] = {}
    for js in cryptofeed_ws():
        m = p.parse_stream(js, 1)
        k = m.reason if isinstance(m, Rejected) else type(m).__name__
        kinds[k] = kinds.get(k, 0) + 1
    # 177 depth, 84 bookTicker, 2 aggTrade; the 2 klines are a stream this adapter does not parse
    assert kinds == {"BookDelta": 177, "BestBidAsk": 84, "Trade": 2, "unknown_type": 2}


def test_numbers_as_strings_or_numbers() -> None:
    as_num = '{"e":"trade","E":1,"s":"BTCUSDT","t":5,"p":61837.63,"q":0.02,"T":2,"m":false}'
    as_str = '{"e":"trade","E":"1","s":"BTCUSDT","t":"5","p":"61837.63","q":"0.02","T":"2","m":false}'
    a, b = p.parse_stream(as_num, 0), p.parse_stream(as_str, 0)
    assert isinstance(a, Trade) and a == b and a.aggressor == Side.BUY


def test_bad_payloads_are_rejected_with_a_reason() -> None:
    cases = {
        '{"stream":"x@trade","data":{"e":"trade","s":"A","t":1,"p":"NaN","q":"1","T":1,"m":true}': "bad_json",
        '{"e":"trade","s":"A","t":1,"p":"NaN","q":"1","T":1,"m":true}': "nan",
        '{"e":"trade","s":"A","t":1,"p":NaN,"q":"1","T":1,"m":true}': "nan",
        '{"e":"trade","s":"A","t":1,"p":"1e400","q":"1","T":1,"m":true}': "bad_field",
        '{"e":"trade","s":"A","t":true,"p":"1","q":"1","T":1,"m":true}': "bad_field",
        '{"e":"trade","s":"A","p":"1","q":"1","T":1,"m":true}': "bad_field",
        '{"u":1,"s":"A","b":"10","B":"1","a":"9","A":"1"}': "crossed_book",
        '{"e":"depthUpdate","E":1,"s":"A","U":9,"u":3,"b":[],"a":[]}': "out_of_order",
        '{"e":"depthUpdate","E":1,"s":"A","U":1,"u":3,"b":[["1","-1"]],"a":[]}': "bad_field",
        '{"e":"kline"}': "unknown_type",
        "[1,2]": "bad_json",
        "[" * 100_000: "bad_json",
    }
    for raw, reason in cases.items():
        r = p.parse_stream(raw, 7)
        assert isinstance(r, Rejected) and r.reason == reason and r.ts_local == 7, (raw[:60], r)
    snap = p.parse_depth_snapshot('{"lastUpdateId":1,"bids":[["10","1"]],"asks":[["9","1"]]}', "A", 0)
    assert isinstance(snap, Rejected) and snap.reason == "crossed_book"


def test_subscription_ack_is_control() -> None:
    assert isinstance(p.parse_stream('{"result":null,"id":1}', 0), p.Control)


def test_order_bodies() -> None:
    new = p.parse_order(rest("binance_ccxt_POST_api_v3_order_SOLUSDT_limit_NEW_20250123.json"), 3)
    assert isinstance(new, OrderEvent) and new.state is OrderState.ACCEPTED and new.venue_order_id == "9780331417"
    assert new.client_id == "x-R4BD3S824d31be3228a348eaa0a303" and new.ts_venue == 1737635557417 * p.MS
    filled = p.parse_order(rest("binance_ccxt_GET_api_v3_order_LTCUSDT_market_FILLED_20230323.json"), 3)
    assert isinstance(filled, OrderEvent) and filled.state is OrderState.FILLED and filled.filled_qty == Decimal("0.1")
    opened = p.parse_orders(json.dumps(rest("binance_ccxt_GET_api_v3_openOrders_LTCUSDT_20231107.json")), 0)
    assert [o.state for o in opened if isinstance(o, OrderEvent)] == [OrderState.ACCEPTED]
    cancelled = p.parse_orders(rest("binance_ccxt_GET_api_v3_allOrders_LTCUSDT_CANCELED_20231206.json"), 0)
    assert [o.state for o in cancelled if isinstance(o, OrderEvent)] == [OrderState.CANCELLED]
    ack = p.parse_order('{"symbol":"BTCUSDT","orderId":28,"orderListId":-1,"clientOrderId":"c1","transactTime":5}', 0)
    assert isinstance(ack, OrderEvent) and ack.state is OrderState.ACCEPTED and ack.filled_qty == 0


def test_full_response_fills_and_cancel_response_client_id() -> None:
    full = {"symbol": "BTCUSDT", "orderId": 28, "clientOrderId": "c1", "transactTime": 5, "price": "0",
            "origQty": "0.002", "executedQty": "0.002", "cummulativeQuoteQty": "120.1", "status": "EXPIRED",
            "fills": [{"price": "60050.5", "qty": "0.002", "commission": "0.0000020", "commissionAsset": "BTC",
                       "tradeId": 56}], "expiryReason": "INSUFFICIENT_LIQUIDITY"}
    ev = p.parse_order(full, 0)
    assert isinstance(ev, OrderEvent) and ev.state is OrderState.EXPIRED and ev.filled_qty == Decimal("0.002")
    assert ev.fills[0].fee == Decimal("0.000002") and ev.fills[0].trade_id == "56"
    cancel = {"symbol": "LTCBTC", "origClientOrderId": "myOrder1", "orderId": 4, "clientOrderId": "cancelMyOrder1",
              "transactTime": 1, "price": "2", "origQty": "1", "executedQty": "0.4", "status": "CANCELED"}
    ev = p.parse_order(cancel, 0)
    assert isinstance(ev, OrderEvent) and ev.client_id == "myOrder1" and ev.filled_qty == Decimal("0.4")
    over = dict(full, executedQty="0.003")
    assert isinstance(p.parse_order(over, 0), Rejected)


def test_my_trades_and_account() -> None:
    (t,) = p.parse_my_trades(rest("binance_ccxt_GET_api_v3_myTrades_LTCUSDT_20231024.json"), 0)
    assert isinstance(t, p.MyTrade) and t.fill.fee == Decimal("0.013926") and not t.is_buyer
    bal = p.parse_account(rest("binance_ccxt_GET_api_v3_account_20231206.json"), 0)
    assert not isinstance(bal, Rejected) and bal[1].asset == "LTC" and bal[1].free == Decimal("0.919741")


def test_error_codes_map_to_reasons() -> None:
    cases = [((-2010, "Account has insufficient balance for requested action."), RejectReason.INSUFFICIENT_FUNDS),
             ((-2010, "Duplicate order sent."), RejectReason.DUPLICATE_ID),
             ((-2010, "Market is closed."), RejectReason.MARKET_CLOSED),
             ((-1013, "Filter failure: LOT_SIZE"), RejectReason.INVALID),
             ((-1021, "Timestamp for this request is outside of the recvWindow."), RejectReason.AUTH),
             ((-1022, "Signature for this request is not valid."), RejectReason.AUTH),
             ((-1003, "Too many requests."), RejectReason.RATE_LIMITED),
             ((-2011, "Unknown order sent."), RejectReason.NOT_FOUND),
             ((-2013, "Order does not exist."), RejectReason.NOT_FOUND),
             ((-9999, "?"), RejectReason.OTHER)]
    for (code, msg), reason in cases:
        assert p.parse_error(json.dumps({"code": code, "msg": msg})) == (code, msg)
        assert p.error_reason(code, msg) is reason
    assert p.parse_error("<html>502</html>") is None
    assert p.ban_until_ms("Way too many requests; IP(1.2.3.4) banned until 1663123456789.") == 1663123456789


def test_execution_reports() -> None:
    base = {"e": "executionReport", "E": 1499405658658, "s": "ETHBTC", "c": "mUvoqJxFIILMdfAW5iGSOW", "S": "BUY",
            "o": "LIMIT", "f": "GTC", "q": "1.00000000", "p": "0.10264410", "C": "", "x": "NEW", "X": "NEW",
            "r": "NONE", "i": 4293153, "l": "0.00000000", "z": "0.00000000", "L": "0.00000000", "n": "0",
            "N": None, "T": 1499405658657, "t": -1, "Z": "0.00000000"}
    ev = p.parse_user_event(json.dumps({"subscriptionId": 0, "event": base}), 9)
    assert isinstance(ev, OrderEvent) and ev.state is OrderState.ACCEPTED and ev.fills == ()
    trade = dict(base, x="TRADE", X="PARTIALLY_FILLED", l="0.4", z="0.4", L="0.1026", n="0.0004", N="ETH", t=77)
    ev = p.parse_user_event(trade, 9)
    assert isinstance(ev, OrderEvent) and ev.state is OrderState.PARTIALLY_FILLED and ev.fills[0].trade_id == "77"
    assert ev.filled_qty == Decimal("0.4") and ev.fills[0].fee_asset == "ETH"
    cancel = dict(base, x="CANCELED", X="CANCELED", c="cancel-id", C="mUvoqJxFIILMdfAW5iGSOW", z="0.4")
    ev = p.parse_user_event(cancel, 9)
    assert isinstance(ev, OrderEvent) and ev.client_id == "mUvoqJxFIILMdfAW5iGSOW" and ev.filled_qty == Decimal("0.4")
    pos = p.parse_user_event({"e": "outboundAccountPosition", "E": 1, "u": 1,
                              "B": [{"a": "ETH", "f": "10000.000000", "l": "0.000000"}]}, 0)
    assert isinstance(pos, tuple) and pos[0].free == Decimal(10000)
    bad = p.parse_user_event(dict(base, X="WHAT"), 0)
    assert isinstance(bad, Rejected) and bad.reason == "bad_field"


def test_exchange_info_rules_match_core_rules() -> None:
    info = parse_exchange_info(rest("binance_spot_exchangeInfo_20240908_davijr.json.gz"), 0)
    assert isinstance(info, ExchangeInfo) and not info.rejected and len(info.symbols) == 1248
    btc = info.symbols["BTCUSDT"]
    assert (btc.tick, btc.step, btc.min_notional, btc.max_notional) == (Decimal("0.01"), Decimal("0.00001"),
                                                                       Decimal(5), Decimal(9000000))
    assert btc.state is MarketState.TRADING and btc.quote_order_qty_market
    core, source = binance_usdt_rules("BTC")
    mine = btc.to_instrument_rules()
    assert source == "current"
    assert (mine.tick_units, mine.step_units, mine.min_notional) == (core.tick_units, core.step_units,
                                                                      core.min_notional)
    assert btc.check(Decimal("60000.01"), Decimal("0.0001")) is None
    assert btc.check(Decimal("60000.001"), Decimal("0.0001")) == "PRICE_FILTER"
    assert btc.check(Decimal("60000"), Decimal("0.000001")) == "LOT_SIZE"
    assert btc.check(Decimal("60000"), Decimal("0.00001")) == "NOTIONAL"  # 0.6 USDT < 5
    assert btc.check(Decimal("60000"), Decimal("200")) == "NOTIONAL"  # 12M > 9M max
    assert btc.check(None, Decimal("200"), market=True) == "MARKET_LOT_SIZE"  # > 129.8 market max
    assert [r.limit for r in info.rate_limits if r.kind == "REQUEST_WEIGHT"] == [6000]


def test_exchange_info_legacy_min_notional_and_bad_symbol() -> None:
    body = {"serverTime": 1, "rateLimits": [], "symbols": [
        {"symbol": "OLDUSDT", "status": "BREAK", "baseAsset": "OLD", "quoteAsset": "USDT", "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": "0.001", "maxPrice": "1000", "tickSize": "0.001"},
            {"filterType": "LOT_SIZE", "minQty": "0.1", "maxQty": "1000", "stepSize": "0.1"},
            {"filterType": "MIN_NOTIONAL", "minNotional": "10", "applyToMarket": True, "avgPriceMins": 5}]},
        {"symbol": "BADUSDT", "status": "TRADING", "filters": "x"}]}
    info = parse_exchange_info(body, 0)
    assert isinstance(info, ExchangeInfo) and len(info.rejected) == 1
    old = info.symbols["OLDUSDT"]
    assert old.min_notional == 10 and old.state is MarketState.HALTED
