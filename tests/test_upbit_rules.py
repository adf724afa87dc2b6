"""Upbit market rules: exact side-aware rounding on the KRW table or the instruments tick, and refusals."""

from __future__ import annotations

import itertools
import json
from decimal import Decimal

import numpy as np

from arbitrage_lite.core.domain import Side
from arbitrage_lite.core.rules import SCALE, UPBIT_BAND_LOWER, UPBIT_BAND_TICK
from arbitrage_lite.core.venue import OrderEvent, OrderState, OrderType, PlaceOrder, Rejected, RejectReason
from arbitrage_lite.infra.venues.upbit.orders import IdentifierLedger, Request, place_request
from arbitrage_lite.infra.venues.upbit.rules import Instrument, MarketRules, parse_instruments, rules_from

D = Decimal
SEP_2025 = int(np.datetime64("2025-09-01", "ns").astype(np.int64))


def test_round_price_by_side_on_the_krw_table() -> None:
    btc = MarketRules("KRW-BTC")
    assert btc.round_price(D(159_508_400), Side.BUY, "aggressive") == D(159_509_000)
    assert btc.round_price(D(159_508_400), Side.BUY, "passive") == D(159_508_000)
    assert btc.round_price(D(159_508_400), Side.SELL, "aggressive") == D(159_508_000)
    assert btc.round_price(D(159_508_400), Side.SELL, "passive") == D(159_509_000)
    assert btc.round_price(D("4.473"), Side.BUY, "aggressive") == D("4.48")  # 0.01 band
    assert btc.round_price(D(99_990), Side.BUY, "aggressive") == D(100_000)  # up into the next band, on its grid
    assert btc.round_price(D(100_050), Side.SELL, "aggressive") == D(100_000)
    assert btc.floor_qty(D("0.123456789")) == D("0.12345678")


def test_every_band_boundary_is_on_both_neighbours_grids() -> None:
    """Why rounding with the band's own tick is safe: it never lands between grids at a band edge."""
    for lowers, ticks in zip(UPBIT_BAND_LOWER, UPBIT_BAND_TICK, strict=True):
        bands = [(int(lo), int(t)) for lo, t in zip(lowers, ticks, strict=True) if lo >= 0]
        for (lo, tick), (_, below) in itertools.pairwise(bands):
            assert lo % tick == 0 and lo % below == 0, (lo, tick, below)


def test_rounded_prices_pass_the_adapter_and_raw_ones_are_refused() -> None:
    btc, ledger = MarketRules("KRW-BTC"), IdentifierLedger()
    raw = D("159508400.5")
    for side in Side:
        for i, price in enumerate((btc.round_price(raw, side, "aggressive"), btc.round_price(raw, side, "passive"))):
            assert str(price) in ("159509000", "159508000")
            cmd = PlaceOrder(f"r-{side.name}-{i}", "KRW-BTC", side, OrderType.LIMIT, D("0.001"), price)
            assert isinstance(place_request(cmd, ledger, SEP_2025, btc), Request), cmd
    off = place_request(PlaceOrder("off-1", "KRW-BTC", Side.BUY, OrderType.LIMIT, D("0.001"), raw), ledger, SEP_2025)
    assert isinstance(off, OrderEvent) and (off.state, off.reason) == (OrderState.REJECTED, RejectReason.INVALID)
    assert "off the tick 1000 (KRW tick table)" in off.detail and "off-1" not in ledger.burnt  # not sent: not burnt
    step = place_request(PlaceOrder("off-2", "KRW-BTC", Side.BUY, OrderType.LIMIT, D("0.0010000001"), D(150_000_000)),
                         ledger, SEP_2025)
    assert isinstance(step, OrderEvent) and step.reason is RejectReason.INVALID and "1e-8" in step.detail


def test_instruments_tick_wins_over_the_table() -> None:
    """USDT/KRW had a 0.5 KRW tick in the 1 KRW band (brief §A9): the instruments tick_size says so."""
    usdt = MarketRules("KRW-USDT", D("0.5"))
    assert usdt.round_price(D("1375.3"), Side.BUY, "aggressive") == D("1375.5")
    assert usdt.price_problem(D("1375.5"), SEP_2025) is None
    assert MarketRules("KRW-USDT").price_problem(D("1375.5"), SEP_2025) is not None  # the table: 1 KRW
    assert "instruments tick_size" in (usdt.price_problem(D("1375.2"), SEP_2025) or "")
    assert MarketRules("BTC-ETH").tick(D("0.03"), SEP_2025) is None  # no table outside KRW: the venue checks


def test_parse_instruments() -> None:
    body = json.dumps([{"market": "KRW-BTC", "quote_currency": "KRW", "tick_size": "1000",
                        "supported_levels": ["0", "10000", "100000"]},
                       {"market": "KRW-USDT", "quote_currency": "KRW", "tick_size": 0.5, "supported_levels": []},
                       {"market": "KRW-ETH", "quote_currency": "KRW", "tick_size": "0"},
                       {"market": "KRW-XRP", "quote_currency": "BTC", "tick_size": "1"}])
    got = parse_instruments(body, 7)
    assert got[:2] == [Instrument("KRW-BTC", "KRW", D(1000), (D(0), D(10000), D(100000))),
                       Instrument("KRW-USDT", "KRW", D("0.5"), ())]
    assert [type(g) for g in got[2:]] == [Rejected, Rejected]
    assert rules_from(got) == {"KRW-BTC": MarketRules("KRW-BTC", D(1000)), "KRW-USDT": MarketRules("KRW-USDT",
                                                                                                  D("0.5"))}
    assert isinstance(parse_instruments(b'{"error":{"name":"x","message":"y"}}', 1)[0], Rejected)
    assert isinstance(parse_instruments(b"[", 1)[0], Rejected)
    assert SCALE == 100_000_000
