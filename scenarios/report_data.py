"""Shape a run's results for the HTML report."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.metrics import EquityCurve
from ..infra.report.html import PremiumSeries, ReportData

if TYPE_CHECKING:
    from .backtest import RouteRun


def build_report_data(summary: dict[str, Any], runs: Sequence[RouteRun], equity: EquityCurve,
                      trades: Sequence[dict[str, str]] = ()) -> ReportData:
    """``trades``: trades.csv's rows (scenarios.outputs.trade_rows), listed as they are in the report."""
    premium: dict[str, PremiumSeries] = {}
    net: list[float] = []
    for run in runs:
        r = run.real
        entries = [t for t in r.trips if t.ts[1] >= 0]
        exits = [t for t in r.trips if t.closed]
        net += [float(t.pnl.net_krw) for t in exits]
        premium[run.data.base] = PremiumSeries(
            ts_ns=r.series_ts, premium_bps=r.series_premium_bps, reference_bps=r.series_ref_premium_bps,
            entry_ts_ns=np.array([t.ts[0] for t in entries], dtype=np.int64),
            entry_bps=np.array([t.premium_entry_bps for t in entries], dtype=np.float64),
            exit_ts_ns=np.array([t.ts[2] for t in exits], dtype=np.int64),
            exit_bps=np.array([t.premium_exit_bps for t in exits], dtype=np.float64))
    title = f"arbitrage-lite {summary.get('mode', 'backtest')}: {', '.join(summary.get('routes', [])[:8])}"
    if runs and equity.ts.size:  # the curve starts at 0 when the data starts, not at the first exit's PnL
        start = min(run.real.first_ts for run in runs)
        eq_ts = np.concatenate([[min(start, int(equity.ts[0]))], equity.ts]).astype(np.int64)
        eq_pnl = np.concatenate([[0.0], equity.cum_net_krw])
    else:
        eq_ts, eq_pnl = equity.ts, equity.cum_net_krw
    return ReportData(summary=summary, equity=(eq_ts, eq_pnl), premium=premium,
                      trade_net_pnl_krw=np.asarray(net, dtype=np.float64), title=title, trades=list(trades))
