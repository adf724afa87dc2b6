"""The fill-model score on the bundled real Binance L2 sample (scenarios.fill_score)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from arbitrage_lite.scenarios.fill_score import load_binance_l2, replay_books, score

SAMPLE = Path(__file__).resolve().parent.parent / "sample_data" / "binance_btcusdt_l2_sample.gz"


def test_fill_model_error_on_the_real_l2_sample() -> None:
    books = replay_books(load_binance_l2([SAMPLE]), warmup_ns=10_000_000_000)
    assert len(books.ts) > 1000 and np.all(np.diff(books.ts) > 0)
    assert np.all(books.px[:, 0, 0] < books.px[:, 1, 0])  # never a crossed book scored
    rows = {(r.model, r.size_usdt, r.latency_ms): r for r in score(books, (1_000.0, 50_000.0), (0.0, 150.0, 1000.0),
                                                                    max_decisions=150)}
    for r in rows.values():
        assert r.n == 300 and math.isfinite(r.mean_bps) and r.p95_abs_bps >= 0.0
    for size in (1_000.0, 50_000.0):
        # the walk of the decision's own book is exact at zero latency; the market moves after it
        assert rows[("walk", size, 0.0)].mean_abs_bps == 0.0
        assert 0.0 < rows[("walk", size, 150.0)].mean_abs_bps < rows[("walk", size, 1000.0)].mean_abs_bps
    # the bar model prices no depth (impact 0 by default): a 50,000 USDT order walks past the touch
    assert rows[("bar", 50_000.0, 0.0)].mean_bps > rows[("bar", 1_000.0, 0.0)].mean_bps
