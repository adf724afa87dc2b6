"""PlaceOrder -> params on the symbol's grid; HTTP outcomes -> events (5xx/timeout UNKNOWN, settled by a query)."""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal

import pytest
from binance_payloads import rest

from arbitrage_lite.core.domain import Side
from arbitrage_lite.core.venue import (
    CancelOrder,
    OrderEvent,
    OrderState,
    OrderType,
    PlaceOrder,
    QueryOrder,
    RejectReason,
)
from arbitrage_lite.infra.venues.binance import orders as o
from arbitrage_lite.infra.venues.binance.rules import ExchangeInfo, SymbolRules, parse_exchange_info


def _btc() -> SymbolRules:
    info = parse_exchange_info(rest("binance_spot_exchangeInfo_20240908_davijr.json.gz"), 0)
    assert isinstance(info, ExchangeInfo)
    return info.symbols["BTCUSDT"]


def test_limit_ioc_params_are_the_decided_numbers() -> None:
    btc = _btc()
    buy = PlaceOrder("al-1", "BTCUSDT", Side.BUY, OrderType.IOC, Decimal("0.00123"), Decimal("61837.63"))
    req = o.place_request(buy, btc)
    assert isinstance(req, o.Request) and req.method == "POST" and req.path == "/api/v3/order" and req.orders == 1
    assert dict(req.params) == {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "IOC",
                                "quantity": "0.00123", "price": "61837.63", "newClientOrderId": "al-1",
                                "newOrderRespType": "FULL"}
    sell = replace(buy, side=Side.SELL, type=OrderType.LIMIT, price=Decimal("6.183764E+4"), qty=Decimal("1E-3"))
    req = o.place_request(sell, btc)
    assert isinstance(req, o.Request)
    p = dict(req.params)
    assert (p["side"], p["timeInForce"], p["price"], p["quantity"]) == ("SELL", "GTC", "61837.64", "0.001")


def test_off_tick_price_and_off_step_quantity_are_refused_not_moved() -> None:
    btc = _btc()
    base = PlaceOrder("al-1", "BTCUSDT", Side.BUY, OrderType.LIMIT, Decimal("0.001"), Decimal("61837.63"))
    for cmd, what in ((replace(base, price=Decimal("61837.639")), "price 61837.639 is off the tick 0.01"),
                      (replace(base, qty=Decimal("0.0012345")), "quantity 0.0012345 is off the step 0.00001"),
                      (replace(base, type=OrderType.MARKET, price=None, qty=Decimal("0.0012345")),
                       "quantity 0.0012345 is off the step 0.00001")):
        ev = o.place_request(cmd, btc, ref_price=Decimal(60000))
        assert isinstance(ev, OrderEvent), cmd  # no request at all: nothing is sent, no weight spent
        assert (ev.state, ev.reason) == (OrderState.REJECTED, RejectReason.INVALID)
        assert what in ev.detail and "Filter failure: " in ev.detail


def test_round_price_by_side_and_floor_qty_are_exact() -> None:
    btc = _btc()
    p = Decimal("61837.631")
    assert btc.round_price(p, Side.BUY, "aggressive") == Decimal("61837.64")
    assert btc.round_price(p, Side.BUY, "passive") == Decimal("61837.63")
    assert btc.round_price(p, Side.SELL, "aggressive") == Decimal("61837.63")
    assert btc.round_price(p, Side.SELL, "passive") == Decimal("61837.64")
    on = Decimal("61837.63")
    assert {btc.round_price(on, s, "aggressive") for s in Side} | {btc.round_price(on, s) for s in Side} == {on}
    assert str(btc.round_price(Decimal("61837.6"), Side.BUY)) == "61837.60"
    assert btc.floor_qty(Decimal("0.0012399")) == Decimal("0.00123")
    assert btc.floor_qty(Decimal("0.0012399"), market=True) == Decimal("0.00123")  # MARKET_LOT_SIZE step 0: LOT_SIZE
    for s in Side:
        buy = PlaceOrder("r", "BTCUSDT", s, OrderType.LIMIT, btc.floor_qty(Decimal("0.0012399")),
                         btc.round_price(p, s, "aggressive"))
        assert isinstance(o.place_request(buy, btc), o.Request)  # rounded by the engine: the adapter sends it
    with pytest.raises(ValueError):
        btc.round_price(p, Side.BUY, "up")  # type: ignore[arg-type]


def test_market_by_quote_and_by_qty_and_local_rejects() -> None:
    btc = _btc()
    mb = PlaceOrder("al-2", "BTCUSDT", Side.BUY, OrderType.MARKET, None, quote_amount=Decimal("25.5"))
    req = o.place_request(mb, btc)
    assert isinstance(req, o.Request) and dict(req.params)["quoteOrderQty"] == "25.5"
    ms = PlaceOrder("al-3", "BTCUSDT", Side.SELL, OrderType.MARKET, Decimal("0.01"))
    req = o.place_request(ms, btc, ref_price=Decimal(60000))
    assert isinstance(req, o.Request) and dict(req.params)["quantity"] == "0.01"
    tiny = PlaceOrder("al-4", "BTCUSDT", Side.BUY, OrderType.LIMIT, Decimal("0.00001"), Decimal(60000))
    ev = o.place_request(tiny, btc)
    assert isinstance(ev, OrderEvent) and ev.state is OrderState.REJECTED and ev.reason is RejectReason.INVALID
    assert "NOTIONAL" in ev.detail
    halted = o.place_request(replace(tiny, qty=Decimal(1)), replace(btc, status="HALT"))
    assert isinstance(halted, OrderEvent) and halted.reason is RejectReason.MARKET_CLOSED


def test_cancel_and_query_by_client_id() -> None:
    c = o.cancel_request(CancelOrder("al-1", "BTCUSDT"))
    q = o.query_request(QueryOrder("al-1", "BTCUSDT"))
    assert (c.method, dict(c.params)) == ("DELETE", {"symbol": "BTCUSDT", "origClientOrderId": "al-1"})
    assert (q.method, q.weight, dict(q.params)["origClientOrderId"]) == ("GET", 4, "al-1")


def test_outcomes() -> None:
    ok = o.outcome("x", "SOLUSDT", 200, json_body("binance_ccxt_POST_api_v3_order_SOLUSDT_limit_NEW_20250123.json"), 1)
    assert ok.state is OrderState.ACCEPTED
    for status, body in ((None, None), (502, "<html>Bad Gateway</html>"), (503, '{"code":-1007,"msg":"Timeout"}'),
                         (400, '{"code":-1006,"msg":"Unexpected response"}'), (200, '{"orderId":')):
        ev = o.outcome("al-9", "BTCUSDT", status, body, 1)
        assert ev.state is OrderState.UNKNOWN and ev.client_id == "al-9", (status, body)
    body = '{"code":-2010,"msg":"Account has insufficient balance for requested action."}'
    rej = o.outcome("al-9", "BTCUSDT", 400, body, 1)
    assert rej.state is OrderState.REJECTED and rej.reason is RejectReason.INSUFFICIENT_FUNDS and "-2010" in rej.detail
    limited = o.outcome("al-9", "BTCUSDT", 429, '{"code":-1003,"msg":"Too many requests."}', 1)
    assert limited.reason is RejectReason.RATE_LIMITED


def test_unknown_settled_by_query() -> None:
    unknown = o.outcome("al-9", "BTCUSDT", 504, None, 1)
    missing = o.outcome("al-9", "BTCUSDT", 400, '{"code":-2013,"msg":"Order does not exist."}', 2)
    settled = o.settle(unknown, missing)
    assert settled.state is OrderState.REJECTED and settled.reason is RejectReason.NOT_FOUND
    body = json_body("binance_ccxt_GET_api_v3_order_LTCUSDT_market_FILLED_20230323.json")
    found = o.outcome("al-9", "LTCUSDT", 200, body, 3)
    assert o.settle(unknown, found).state is OrderState.FILLED


def json_body(name: str) -> str:
    return json.dumps(rest(name))
