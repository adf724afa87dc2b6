from decimal import Decimal
from pathlib import Path

import pytest

from arbitrage_lite.core.config import EngineConfig
from arbitrage_lite.scenarios.market_data import DataError
from arbitrage_lite.scenarios.sweep import grid_points, parse_grid, run_sweep


def test_sweep_picks_in_sample_and_reports_out_of_sample(sample_stores: dict[str, Path], tmp_path: Path,
                                                         ray_session: object) -> None:
    grid = parse_grid(["strategy.entry_bps=30,60", "costs.binance.taker_fee=0.001,0"])
    report = run_sweep(sample_stores["btc"], "BTC", grid, EngineConfig(), tmp_path, split=0.5, progress=False)
    rows = report["rows"]
    assert len(rows) == 4 and report["points"] == 4
    best = max(rows, key=lambda r: Decimal(r["in_sample.net_pnl_krw"]))
    assert report["best_in_sample"]["point"] == best["point"]
    assert report["best_in_sample_out_of_sample"]["net_pnl_krw"] == best["out_of_sample.net_pnl_krw"]
    for r in rows:  # each window keeps the identity
        for w in ("in_sample", "out_of_sample"):
            assert Decimal(r[f"{w}.net_pnl_krw"]) == (Decimal(r[f"{w}.gross_pnl_krw"]) - Decimal(r[f"{w}.fees_krw"])
                                                      - Decimal(r[f"{w}.slippage_krw"]))
        if r["costs.binance.taker_fee"] == 0:
            fees_zero_binance = Decimal(r["in_sample.fees_krw"])
            twin = next(x for x in rows if x["strategy.entry_bps"] == r["strategy.entry_bps"] and x is not r)
            assert fees_zero_binance <= Decimal(twin["in_sample.fees_krw"])
    assert (tmp_path / "sweep.csv").read_text().count("\n") == 5


def test_grid_refuses_unknown_fields_and_invalid_points() -> None:
    with pytest.raises(DataError, match="unknown config field"):
        grid_points(EngineConfig(), parse_grid(["strategy.nope=1"]))
    with pytest.raises(DataError, match="not a valid config"):
        grid_points(EngineConfig(), parse_grid(["strategy.exit_bps=50,60"]))  # exit above entry (40)
    with pytest.raises(DataError, match=r"expected section\.field"):
        parse_grid(["entry_bps=1"])
