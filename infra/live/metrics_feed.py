"""The live run's Prometheus page, fed from the host's status (read once a second by the driver anyway).

The same metric families as a paper run (infra.metrics.EngineMetrics), so deploy/prometheus's rules and the
Grafana dashboard apply to live too. Counters move by the difference to what the status said last time; the
host is never asked anything extra, and nothing here is on the hot path.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from prometheus_client.metrics_core import Metric

from ..metrics import EngineMetrics, Totals

FX_PAIR = "USDT/KRW"


class LiveMetrics:
    def __init__(self) -> None:
        self.m = EngineMetrics()
        self._totals = Totals()

    def _advance(self, counter: Any, key: tuple[str, str], total: float) -> None:
        """A counter to ``total`` (a restarted host counts from 0 again: its new counts are added)."""
        self._totals.advance(counter, key, total, resets=True)

    def update(self, status: dict[str, Any]) -> list[Metric]:
        """The families after one status (``LiveHostActor.status``)."""
        m = self.m
        hours = float(status.get("uptime_s") or 0.0) / 3600
        for route, r in status.get("routes", {}).items():
            trips, wins = int(r.get("trips", 0)), int(r.get("wins", 0))
            m.pnl.labels(route).set(float(Decimal(str(r.get("net_krw", "0")))))
            self._advance(m.trades.labels(route), ("trips", route), trips)
            self._advance(m.wins.labels(route), ("wins", route), wins)
            m.win_rate.labels(route).set(wins / trips if trips else 0.0)
            m.open_positions.labels(route).set(1 if r.get("position") else 0)
            m.trades_per_hour.labels(route).set(trips / hours if hours > 0 else 0.0)
            premium = r.get("premium_bps")
            if premium is not None and math.isfinite(float(premium)):
                m.premium.labels(route).set(float(premium))
        for venue, f in status.get("feeds", {}).items():
            self._advance(m.events.labels(venue), ("events", venue), f.get("books", 0) + f.get("deltas", 0))
            self._advance(m.restarts.labels(f"feed:{venue}"), ("restarts", venue), f.get("restarts", 0))
        if status.get("fx_age_s") is not None:
            m.fx_staleness.labels(FX_PAIR).set(float(status["fx_age_s"]))
        risk = status.get("risk") or {}
        for trigger, n in (risk.get("rejections_by_reason") or {}).items():
            self._advance(m.risk_triggers.labels(trigger), ("risk", trigger), n)
        for seconds in status.get("latencies_s", ()):
            m.latency.observe(seconds)
        return m.families()
