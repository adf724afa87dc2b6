import math

import pytest

from arbitrage_lite.core.fx import premium_bps, split_premium


def test_premium_arithmetic() -> None:
    # 140,000,000 KRW vs 95,000 USDT at 1,450 KRW/USDT → 140e6 / 137.75e6 - 1 = 163.34 bps
    assert premium_bps(140_000_000.0, 95_000.0, 1450.0) == pytest.approx(163.339382940109, rel=1e-12)
    assert premium_bps(137_750_000.0, 95_000.0, 1450.0) == pytest.approx(0.0, abs=1e-9)
    assert math.isnan(premium_bps(140_000_000.0, 0.0, 1450.0))
    assert math.isnan(premium_bps(float("nan"), 95_000.0, 1450.0))


def test_premium_split_multiplies_back() -> None:
    s = split_premium(140_000_000.0, 92_000.0, 1488.0, 1465.36)
    assert s.tether_bps == pytest.approx((1488.0 / 1465.36 - 1) * 1e4)
    assert (1 + s.coin_bps / 1e4) * (1 + s.tether_bps / 1e4) == pytest.approx(1 + s.total_bps / 1e4, rel=1e-14)


def test_premium_split_refuses_bad_rates() -> None:
    with pytest.raises(ValueError, match="usd_krw must be a positive finite number"):
        split_premium(140_000_000.0, 92_000.0, 1488.0, float("nan"))
    with pytest.raises(ValueError, match="binance_usdt"):
        split_premium(140_000_000.0, -1.0, 1488.0, 1465.0)


def test_split_series_uses_the_latest_rates_known_at_each_time() -> None:
    import numpy as np

    from arbitrage_lite.core.fx import split_premium_series

    ts = np.array([5, 15, 25], dtype=np.int64)
    coin = np.array([10.0, 20.0, 30.0])
    tether, total = split_premium_series(ts, coin, np.array([0, 20]), np.array([1480.0, 1490.0]),
                                         np.array([10]), np.array([1460.0]))
    assert np.isnan(tether[0]) and np.isnan(total[0])  # no USD/KRW known yet at t=5
    assert tether[1] == pytest.approx((1480 / 1460 - 1) * 1e4) and tether[2] == pytest.approx((1490 / 1460 - 1) * 1e4)
    assert total[2] == pytest.approx(((1 + 30e-4) * (1490 / 1460) - 1) * 1e4)
