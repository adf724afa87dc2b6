"""PERCENT_PRICE_BY_SIDE / PERCENT_PRICE: parsed from the recorded exchangeInfo, checked locally against the
average price, enforced by the fake with the real error, around the fake's average price (fake.avg_price)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from decimal import Decimal
from typing import Any

import aiohttp
from binance_payloads import rest

from arbitrage_lite.core.domain import Side
from arbitrage_lite.core.venue import OrderEvent, OrderState, OrderType, PlaceOrder, RejectReason
from arbitrage_lite.infra.venues.binance import orders as o
from arbitrage_lite.infra.venues.binance.client import BinanceClient
from arbitrage_lite.infra.venues.binance.rules import (
    ExchangeInfo,
    PercentPrice,
    parse_avg_price,
    parse_exchange_info,
)
from arbitrage_lite.infra.venues.fake.avg_price import average_price
from arbitrage_lite.infra.venues.fake.engine import Book, Engine, MarketSpec
from arbitrage_lite.infra.venues.fake.server import FakeVenues

D = Decimal
EXCHANGE_INFO = "binance_spot_exchangeInfo_20240908_davijr.json.gz"


def _info() -> ExchangeInfo:
    info = parse_exchange_info(rest(EXCHANGE_INFO), 0)
    assert isinstance(info, ExchangeInfo) and not info.rejected
    return info


def test_parsed_from_the_recorded_exchange_info() -> None:
    info = _info()
    want = PercentPrice("PERCENT_PRICE_BY_SIDE", D(5), D("0.2"), D(5), D("0.2"), 5)
    assert info.symbols["BTCUSDT"].percent == (want,)
    usdc = info.symbols["USDCUSDT"].percent[0]
    assert (usdc.bid_up, usdc.bid_down, usdc.ask_up, usdc.ask_down) == (D("1.2"), D("0.8"), D("1.2"), D("0.8"))
    assert all(len(r.percent) == 1 for r in info.symbols.values())  # every symbol of 2024-09 has the by-side band


def test_legacy_percent_price_is_one_band_for_both_sides() -> None:
    raw = rest(EXCHANGE_INFO)
    sym = next(s for s in raw["symbols"] if s["symbol"] == "BTCUSDT")
    filters = [f for f in sym["filters"] if f["filterType"] != "PERCENT_PRICE_BY_SIDE"]
    filters.append({"filterType": "PERCENT_PRICE", "multiplierUp": "1.3", "multiplierDown": "0.7", "avgPriceMins": 0})
    info = parse_exchange_info({**raw, "symbols": [{**sym, "filters": filters}]}, 0)
    assert isinstance(info, ExchangeInfo)
    btc = info.symbols["BTCUSDT"]
    assert btc.percent == (PercentPrice("PERCENT_PRICE", D("1.3"), D("0.7"), D("1.3"), D("0.7"), 0),)
    assert btc.check(D(131), D(1), side=Side.SELL, avg_price=D(100)) == "PERCENT_PRICE"
    assert btc.check(D(130), D(1), side=Side.SELL, avg_price=D(100)) is None


def test_local_check_by_side() -> None:
    btc = _info().symbols["BTCUSDT"]
    avg = D(60000)
    for side in Side:  # bounds are inclusive: avg x 0.2 .. avg x 5
        assert btc.check(D(12000), D("0.001"), side=side, avg_price=avg) is None
        assert btc.check(D("11999.99"), D("0.001"), side=side, avg_price=avg) == "PERCENT_PRICE_BY_SIDE"
        assert btc.check(D("300000.01"), D("0.001"), side=side, avg_price=avg) == "PERCENT_PRICE_BY_SIDE"
    assert btc.check(D("11999.99"), D("0.001"), side=Side.BUY) is None  # no average: left to the venue
    asym = replace(btc, percent=(PercentPrice("PERCENT_PRICE_BY_SIDE", D("1.1"), D("0.5"), D(2), D("0.9"), 5),))
    assert asym.check(D(70000), D("0.001"), side=Side.BUY, avg_price=avg) == "PERCENT_PRICE_BY_SIDE"
    assert asym.check(D(70000), D("0.001"), side=Side.SELL, avg_price=avg) is None
    cmd = PlaceOrder("pp-1", "BTCUSDT", Side.BUY, OrderType.LIMIT, D("0.001"), D("11999.99"))
    ev = o.place_request(cmd, btc, avg_price=avg)
    assert isinstance(ev, OrderEvent) and ev.reason is RejectReason.INVALID and "PERCENT_PRICE_BY_SIDE" in ev.detail
    assert isinstance(o.place_request(cmd, btc), o.Request)  # without an average the venue decides
    assert parse_avg_price('{"mins":5,"price":"9.35751834","closeTime":1694061154503}') == D("9.35751834")
    assert parse_avg_price('{"mins":5,"price":"0.00000000"}') is None and parse_avg_price("{") is None


def test_fake_average_price_is_own_fills_vwap_else_the_mid() -> None:
    e = Engine({"BTCUSDT": MarketSpec("BTCUSDT", "BTC", "USDT", D("0.00001"), D(0), D(0), "received")},
               {"USDT": D(10**6), "BTC": D(10)})
    assert average_price(e, "BTCUSDT", 0, 5) is None  # no book, no trade
    e.set_book("BTCUSDT", Book(((D(99), D(1)),), ((D(101), D(1)), (D(103), D(1)))), 0)
    assert average_price(e, "BTCUSDT", 0, 5) == D(100)
    e.place("BTCUSDT", "buy", "market", qty=D("1.5"), now_ms=1_000)  # 1 @ 101, 0.5 @ 103
    assert average_price(e, "BTCUSDT", 1_000, 5) == D("101.66666667")
    assert average_price(e, "BTCUSDT", 1_000, 0) == D(103)  # avgPriceMins 0: the last trade
    assert average_price(e, "BTCUSDT", 1_000 + 5 * 60_000, 5) == D(101)  # window passed: mid of what is left


def test_the_fake_refuses_with_the_real_error_and_the_client_checks_first() -> None:
    async def main() -> None:
        fv = FakeVenues(speed=0)
        info = (await fv.start())["binance"]
        try:
            async with aiohttp.ClientSession() as s, s.get(info["rest"] + "/api/v3/avgPrice",
                                                           params={"symbol": "BTCUSDT"}) as r:
                body: dict[str, Any] = await r.json()
            assert body["mins"] == 5 and D(body["price"]) == D("115279.255")  # the recorded book's mid
            low = D("23055.85")  # 0.2 x 115,279.255 = 23,055.851: one tick below the band
            async with BinanceClient(info["rest"], info["api_key"], info["secret"]) as c:
                await c.sync_time()
                await c.load_rules()
                venue = await c.place(PlaceOrder("pp-venue", "BTCUSDT", Side.BUY, OrderType.LIMIT, D("0.001"), low))
                assert (venue.state, venue.reason) == (OrderState.REJECTED, RejectReason.INVALID)
                assert venue.detail == "-1013 Filter failure: PERCENT_PRICE_BY_SIDE"  # the venue's own answer
                assert await c.avg_price("BTCUSDT") == D("115279.255")
                local = await c.place(PlaceOrder("pp-local", "BTCUSDT", Side.BUY, OrderType.LIMIT, D("0.001"), low))
                assert local.reason is RejectReason.INVALID and local.detail.startswith("local: Filter failure: "
                                                                                       "PERCENT_PRICE_BY_SIDE")
                high = await c.place(PlaceOrder("pp-hi", "BTCUSDT", Side.SELL, OrderType.LIMIT, D("0.001"), D(580000)))
                assert (high.state, high.reason) == (OrderState.REJECTED, RejectReason.INVALID)  # 5 x avg = 576,396
                assert "PERCENT_PRICE_BY_SIDE" in high.detail
                fine = await c.place(PlaceOrder("pp-in", "BTCUSDT", Side.SELL, OrderType.LIMIT, D("0.001"), D(570000)))
                assert fine.state is OrderState.ACCEPTED
        finally:
            await fv.stop()
    asyncio.run(main())
