"""core.live_orders (protective IOC price, caps) and core.market_events (venue messages -> kernel rows)."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from arbitrage_lite.core.book import Q_CROSSED, Q_MID, apply_market_event, new_books
from arbitrage_lite.core.domain import Side
from arbitrage_lite.core.events import K_BOOK_END, K_CLEAR, K_FX, K_LEVEL, VENUE_BINANCE, VENUE_UPBIT
from arbitrage_lite.core.live_orders import HARD_ORDER_KRW, CapBook, OrderCaps, protective_price_units, units
from arbitrage_lite.core.market_events import book_events, book_mid, delta_events, fx_event
from arbitrage_lite.core.rules import binance_rules, upbit_krw_rules
from arbitrage_lite.core.venue import BookDelta, BookLevel, BookSnapshot

NOW = 1_764_900_000_000_000_000  # 2025-12 (Upbit's 2025-07-31 tick table)


def test_protective_price_is_on_the_grid_and_never_tighter_than_the_band() -> None:
    upbit = upbit_krw_rules()
    best = units(Decimal(138_865_000))
    buy = protective_price_units(best, Side.BUY, Decimal(30), upbit, NOW)
    sell = protective_price_units(best, Side.SELL, Decimal(30), upbit, NOW)
    tick = units(Decimal(1000))  # >= 1,000,000 KRW
    assert buy % tick == 0 and sell % tick == 0
    assert Decimal(buy) >= Decimal(best) * Decimal("1.003") > Decimal(buy - tick)
    assert Decimal(sell) <= Decimal(best) * Decimal("0.997") < Decimal(sell + tick)
    binance = binance_rules("0.01", "0.00001", "5")
    b = protective_price_units(units(Decimal("97000.01")), Side.BUY, Decimal(10), binance, NOW)
    assert b % units(Decimal("0.01")) == 0 and b >= units(Decimal("97000.01")) * Decimal("1.001")


def test_protective_price_snaps_to_the_band_it_lands_in() -> None:
    # 99,990 KRW * 1.003 crosses into the 100,000+ band (tick 100): the limit must be on that band's grid
    p = protective_price_units(units(Decimal(99_990)), Side.BUY, Decimal(30), upbit_krw_rules(), NOW)
    assert p % units(Decimal(100)) == 0 and p >= units(Decimal(99_990)) * Decimal("1.003")
    with pytest.raises(ValueError):
        protective_price_units(0, Side.BUY, Decimal(30), upbit_krw_rules(), NOW)


def test_caps_refuse_before_sending_and_reset_each_day() -> None:
    book = CapBook(OrderCaps(Decimal(1_000_000), Decimal(2_500_000)))
    assert book.check(Decimal(1_000_001), NOW) == "order_cap"
    assert book.check(Decimal(1_000_000), NOW) is None
    assert book.check(Decimal(1_000_000), NOW) is None
    assert book.check(Decimal(600_000), NOW) == "daily_cap"
    assert book.check(Decimal(600_000), NOW + 86_400 * 10**9) is None  # a new UTC day
    assert book.refused == {"order_cap": 1, "daily_cap": 1}
    with pytest.raises(ValueError, match="override"):
        OrderCaps(HARD_ORDER_KRW + 1)
    assert OrderCaps(HARD_ORDER_KRW + 1, override=True).order_krw == HARD_ORDER_KRW + 1


def _snap(bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> BookSnapshot:
    lv = lambda xs: tuple(BookLevel(Decimal(p), Decimal(q)) for p, q in xs)  # noqa: E731
    return BookSnapshot("upbit", "KRW-BTC", lv(bids), lv(asks), None, NOW - 5_000_000, NOW)


def test_book_events_replace_the_kernel_book_and_give_its_mid() -> None:
    snap = _snap([("100", "1"), ("99", "2")], [("101", "1"), ("102", "3")])
    ev = book_events(VENUE_UPBIT, snap)
    assert list(ev.kind) == [K_CLEAR, K_LEVEL, K_LEVEL, K_LEVEL, K_LEVEL, K_BOOK_END]
    assert (ev.ts == NOW).all() and (ev.ts_venue == NOW - 5_000_000).all()
    book_px, book_q, book_n, quotes = new_books()
    for i in range(len(ev)):
        apply_market_event(int(ev.kind[i]), 0, int(ev.side[i]), float(ev.px[i]), float(ev.qty[i]), int(ev.ts[i]),
                           int(ev.ts_venue[i]), book_px, book_q, book_n, quotes, 0.0)
    assert quotes[0, Q_MID] == pytest.approx(100.5) and quotes[0, Q_CROSSED] == 0.0
    assert book_mid(snap) == pytest.approx(100.5)
    assert book_mid(_snap([("101", "1")], [("101", "1")])) is None  # crossed: no FX from it
    assert book_mid(_snap([], [("101", "1")])) is None


def test_delta_and_fx_rows() -> None:
    d = BookDelta("binance", "BTCUSDT", (BookLevel(Decimal("10"), Decimal(0)),), (BookLevel(Decimal("11"),
                  Decimal("2")),), 5, 7, NOW - 1, NOW)
    ev = delta_events(VENUE_BINANCE, d)
    assert list(ev.kind) == [K_LEVEL, K_LEVEL, K_BOOK_END] and list(ev.side) == [0, 1, 0]
    assert list(ev.qty[:2]) == [0.0, 2.0]
    fx = fx_event(1450.5, NOW, NOW - 3)
    assert fx.kind[0] == K_FX and fx.px[0] == 1450.5 and fx.qty[0] > 0 and np.all(fx.ts_venue == NOW - 3)


def test_closes_and_unwinds_pass_the_caps_and_are_counted() -> None:
    """A reducing leg is never refused (a kill switch at the daily cap must still flatten), but it is booked."""
    book = CapBook(OrderCaps(Decimal(1_000_000), Decimal(2_000_000)))
    assert book.check(Decimal(1_000_000), NOW) is None and book.check(Decimal(1_000_000), NOW) is None
    assert book.check(Decimal(1_000_000), NOW) == "daily_cap"  # a new open at the cap: refused
    assert book.check(Decimal(1_000_000), NOW, reducing=True) is None  # its close: leaves
    assert book.check(Decimal(1_200_000), NOW, reducing=True) is None  # over the order cap too (prices moved)
    assert book.refused == {"daily_cap": 1} and book.overridden == {"daily_cap": 1, "order_cap": 1}
    assert book.sent_krw == Decimal(4_200_000)
