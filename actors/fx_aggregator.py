"""FxAggregatorActor: USDT/KRW and USD/KRW from several sources, median with outlier rejection (core)."""

from __future__ import annotations

from typing import Any

from ..core.fx_aggregate import FxAggregator, FxQuote, FxReading


class FxAggregatorActor:
    def __init__(self, max_age_ns: int, outlier_bps: float = 100.0, min_sources: int = 1) -> None:
        self._agg = FxAggregator(max_age_ns=max_age_ns, outlier_bps=outlier_bps, min_sources=min_sources)
        self.rejected = 0

    def update_many(self, quotes: list[FxQuote]) -> int:
        """Apply quotes in order; returns how many were rejected (stale, outlier, NaN, ...)."""
        bad = sum(1 for q in quotes if self._agg.update(q) is not None)
        self.rejected += bad
        return bad

    def rate(self, pair: str, now_ns: int) -> FxReading:
        return self._agg.rate(pair, now_ns)

    def snapshot(self) -> dict[str, Any]:
        return self._agg.snapshot()
