import gzip
import json

import numpy as np
import pytest
from sample_files import SAMPLE  # built from the shared data by the sample_dir fixture

from arbitrage_lite.core.fill_model import (
    calibrate_cost_model,
    model_price_units,
    roll_half_spread_bps,
    walk_cost_bps,
    walk_levels,
)
from arbitrage_lite.core.rules import SCALE


def snapshots(name: str) -> list[tuple[np.ndarray, np.ndarray]]:
    with gzip.open(SAMPLE / name, "rt") as fh:
        return [(np.array(d["bids"]), np.array(d["asks"])) for d in map(json.loads, fh)]


def test_walk_levels_partial_fill_when_depth_runs_out() -> None:
    px = np.array([100.0, 101.0, 102.0])
    qty = np.array([0.5, 0.25, 0.1])
    out_px, out_qty = np.zeros(8, np.int64), np.zeros(8, np.int64)
    k = walk_levels(px, qty, 3, 70_000_000, out_px, out_qty)  # 0.7 of 0.85 available
    assert k == 2
    assert list(out_px[:k]) == [100 * SCALE, 101 * SCALE]
    assert list(out_qty[:k]) == [50_000_000, 20_000_000]
    k = walk_levels(px, qty, 3, 200_000_000, out_px, out_qty)  # asks for 2.0, gets 0.85
    assert k == 3 and int(out_qty[:k].sum()) == 85_000_000


def test_bar_model_price_moves_against_us_onto_the_grid() -> None:
    # 10 bps half spread + 1 bp per 1M quote at 2M quote: 12 bps; Upbit BTC tick 1,000 KRW
    buy = model_price_units(100_000_000.0, 1, 2_000_000.0, 10.0, 1.0, 1000 * SCALE)
    sell = model_price_units(100_000_000.0, -1, 2_000_000.0, 10.0, 1.0, 1000 * SCALE)
    assert buy == 100_120_000 * SCALE and sell == 99_880_000 * SCALE


@pytest.mark.usefixtures("sample_dir")
def test_calibration_on_real_upbit_books() -> None:
    snaps = snapshots("upbit_KRW-BTC_ob20_sample.jsonl.gz")
    half_spread, impact = calibrate_cost_model(snaps, [1e6, 5e6, 1e7, 2e7])
    assert half_spread == pytest.approx(0.3448, abs=1e-3)
    assert impact == pytest.approx(0.0038, abs=2e-4)
    hs, imp = walk_cost_bps(*snaps[0], 2e7)
    assert hs == pytest.approx(0.4702, abs=1e-3) and imp > 0


@pytest.mark.usefixtures("sample_dir")
def test_calibration_on_real_binance_books_and_refusals() -> None:
    half_spread, impact = calibrate_cost_model(snapshots("binance_BTCUSDT_ob20_sample.jsonl.gz"), [7000.0])
    assert 0 < half_spread < 0.001 and impact == 0.0
    with pytest.raises(ValueError, match="no book snapshots"):
        calibrate_cost_model([], [1.0])
    crossed = (np.array([[101.0, 1.0]]), np.array([[100.0, 1.0]]))
    with pytest.raises(ValueError, match="crossed"):
        calibrate_cost_model([crossed], [10.0])


def test_roll_spread_sees_bid_ask_bounce_only() -> None:
    side = np.random.default_rng(7).choice([-1.0, 1.0], size=20_000)  # trades at bid or ask, at random
    bounce = 100.0 + 0.05 * side  # a 10 bps spread around a constant mid
    assert roll_half_spread_bps(bounce) == pytest.approx(5.0, rel=0.05)
    trend = np.linspace(100.0, 110.0, 100)
    assert roll_half_spread_bps(trend) == 0.0
    assert roll_half_spread_bps(np.array([1.0, np.nan])) == 0.0
