"""Hand-made market data for kernel tests (real arithmetic, crafted prices)."""

from __future__ import annotations

import numpy as np

from arbitrage_lite.core.config import EngineConfig, StrategyConfig
from arbitrage_lite.core.event_builders import bars_to_events, book_snapshots_to_events, fx_to_events
from arbitrage_lite.core.events import EventBatch
from arbitrage_lite.core.rules import binance_rules

T0 = int(np.datetime64("2025-01-06T00:00:00", "ns").astype(np.int64))
MIN = 60_000_000_000
BTC_RULES = binance_rules("0.01", "0.00001", "5")
FX = 1400.0


def strategy(**kw: float) -> StrategyConfig:
    base = dict(entry_bps=40.0, exit_bps=5.0, take_profit_bps=500.0, stop_loss_bps=500.0, max_hold_s=86400.0,
                cooldown_s=0.0, min_edge_bps=0.0, ref_halflife_s=3600.0, warmup_s=1800.0, max_gap_s=600.0)
    base.update(kw)
    return StrategyConfig(**base)  # type: ignore[arg-type]


def config(**kw: float) -> EngineConfig:
    return EngineConfig(strategy=strategy(**kw))


def bar_market(upbit_close: np.ndarray, binance_close: float = 100_000.0,
               upbit_open: np.ndarray | None = None) -> EventBatch:
    """Minute bars: Upbit closes as given (opens = previous close unless given), Binance flat, FX flat."""
    n = upbit_close.shape[0]
    ts = T0 + np.arange(n, dtype=np.int64) * MIN
    u_open = np.r_[upbit_close[0], upbit_close[:-1]] if upbit_open is None else upbit_open
    b = np.full(n, binance_close)
    return EventBatch.concat_sorted([
        fx_to_events(np.array([T0 - MIN]), np.array([FX])),
        bars_to_events(ts, u_open, upbit_close, 0),
        bars_to_events(ts, b, b, 1),
    ])


def spike_prices(n: int = 120, at: int = 60, until: int = 80, bps: float = 60.0) -> np.ndarray:
    """Upbit at exactly zero premium, then rich by ``bps`` over [at, until)."""
    u = np.full(n, 100_000.0 * FX)
    u[at:until] *= 1 + bps / 1e4
    return np.round(u / 1000) * 1000  # on Upbit's 1,000 KRW grid


def book_rows(ts: int, bids: list[tuple[float, float]], asks: list[tuple[float, float]], snap: int
              ) -> tuple[list[int], list[int], list[int], list[float], list[float]]:
    rows_ts, rows_snap, rows_side, rows_px, rows_q = [], [], [], [], []
    for side, levels in ((0, bids), (1, asks)):
        for px, q in levels:
            rows_ts.append(ts)
            rows_snap.append(snap)
            rows_side.append(side)
            rows_px.append(px)
            rows_q.append(q)
    return rows_ts, rows_snap, rows_side, rows_px, rows_q


def book_market(snapshots: list[tuple[int, int, list[tuple[float, float]], list[tuple[float, float]]]]
                ) -> EventBatch:
    """``(ts, venue, bids, asks)`` snapshots → events (plus a flat FX)."""
    parts = [fx_to_events(np.array([T0 - MIN]), np.array([FX]))]
    for k, (ts, venue, bids, asks) in enumerate(snapshots):
        r = book_rows(ts, bids, asks, k)
        parts.append(book_snapshots_to_events(np.array(r[0], np.int64), np.array(r[1], np.int64),
                                              np.array(r[2], np.int8), np.array(r[3]), np.array(r[4]), venue))
    return EventBatch.concat_sorted(parts)
