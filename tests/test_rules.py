from decimal import Decimal

import numpy as np

from arbitrage_lite.core.rules import (
    SCALE,
    binance_rules,
    floor_to_step,
    price_to_grid,
    upbit_krw_rules,
    upbit_krw_tick_units,
)


def ns(day: str) -> int:
    return int(np.datetime64(day, "ns").astype(np.int64))


def tick(price: float, day: str) -> float:
    return upbit_krw_tick_units(round(price * SCALE), ns(day)) / SCALE


def test_upbit_tick_table_current_bands() -> None:
    day = "2025-09-01"
    assert tick(160_000_000, day) == 1000
    assert tick(1_500_000, day) == 1000
    assert tick(750_000, day) == 500
    assert tick(150_000, day) == 100
    assert tick(75_000, day) == 50
    assert tick(20_000, day) == 10
    assert tick(7_000, day) == 5
    assert tick(1_793, day) == 1
    assert tick(150, day) == 1
    assert tick(50, day) == 0.1
    assert tick(4.47, day) == 0.01
    assert tick(0.5, day) == 0.001


def test_upbit_tick_table_history() -> None:
    # 2024-01-29 .. 2025-07-30 table: 500 KRW from 1M, 1 KRW from 1,000, 0.1 KRW from 100
    assert tick(1_500_000, "2024-09-01") == 500
    assert tick(7_000, "2024-09-01") == 1
    assert tick(150, "2024-09-01") == 0.1
    # original table before 2024-01-29: 5 KRW between 1,000 and 10,000
    assert tick(7_000, "2023-06-01") == 5
    # band edges are [lower, upper)
    assert tick(999_999, "2025-09-01") == 500
    assert tick(1_000_000, "2025-09-01") == 1000


def test_upbit_minimum_order_and_grid() -> None:
    rules = upbit_krw_rules()
    t = ns("2025-09-01")
    price = 160_000_000 * SCALE
    assert rules.check_order(price, 3_000, t) == "notional 4800 is below the minimum 5000"
    assert rules.check_order(price, 3_125, t) is None  # exactly 5,000 KRW
    assert "off the tick grid" in (rules.check_order(price + 500 * SCALE, 10_000, t) or "")
    assert rules.check_order(price, 0, t) == "quantity must be positive"


def test_binance_lot_tick_and_min_notional() -> None:
    rules = binance_rules("0.01", "0.00001", "5")
    t = ns("2025-09-01")
    assert rules.check_order(6_375_601_000_000, 100_000, t) is None  # 0.001 BTC at 63,756.01
    assert "lot step" in (rules.check_order(6_375_601_000_000, 100_001, t) or "")
    assert "tick grid" in (rules.check_order(6_375_601_500_000, 100_000, t) or "")
    assert "below the minimum 5" in (rules.check_order(6_375_601_000_000, 1_000, t) or "")
    assert rules.min_notional == Decimal("5")


def test_price_to_grid_rounds_against_us() -> None:
    assert price_to_grid(63756.013, 1_000_000, 1) == 6_375_602_000_000  # a buy pays up
    assert price_to_grid(63756.013, 1_000_000, -1) == 6_375_601_000_000  # a sell receives less
    assert price_to_grid(63756.01, 1_000_000, 1) == 6_375_601_000_000  # already on the grid
    assert floor_to_step(123_456, 1_000) == 123_000
