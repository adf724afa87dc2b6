"""MetricsActor: hosts the Prometheus exporter on 127.0.0.1 and takes reports from the other actors."""

from __future__ import annotations

from collections.abc import Iterable

from ..infra.metrics import EngineMetrics


class MetricsActor:
    def __init__(self, port: int = 0) -> None:
        self._m = EngineMetrics()
        self._port = self._m.serve(port)

    def port(self) -> int:
        return self._port

    def scrape(self) -> str:
        """The exporter's page, fetched over HTTP from 127.0.0.1 like Prometheus would."""
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self._port}/metrics", timeout=5) as resp:
            return str(resp.read().decode())

    def latencies(self, seconds: Iterable[float]) -> None:
        for s in seconds:
            self._m.latency.observe(s)

    def route_stats(self, route: str, net_pnl_krw: float, trades: int, wins: int, open_positions: int,
                    market_hours: float) -> None:
        self._m.pnl.labels(route).set(net_pnl_krw)
        counted = self._m.trades.labels(route)._value.get()
        if trades > counted:
            self._m.trades.labels(route).inc(trades - counted)
        won = self._m.wins.labels(route)._value.get()
        if wins > won:
            self._m.wins.labels(route).inc(wins - won)
        self._m.win_rate.labels(route).set(wins / trades if trades else 0.0)
        self._m.trades_per_hour.labels(route).set(trades / market_hours if market_hours > 0 else 0.0)
        self._m.open_positions.labels(route).set(open_positions)

    def risk_trigger(self, trigger: str) -> None:
        self._m.risk_triggers.labels(trigger).inc()

    def snapshot(self, ok: bool) -> None:
        self._m.snapshots.labels("ok" if ok else "failed").inc()

    def restart(self, actor: str) -> None:
        self._m.restarts.labels(actor).inc()

    def fx_staleness(self, pair: str, seconds: float) -> None:
        self._m.fx_staleness.labels(pair).set(seconds)

    def feed(self, venue: str, events: int, gaps: int) -> None:
        self._m.events.labels(venue).inc(events)
        if gaps:
            self._m.feed_gaps.labels(venue, "stale").inc(gaps)
