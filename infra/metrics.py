"""Prometheus exporter (prometheus-client) on 127.0.0.1 with the engine's KPIs.

One ``EngineMetrics`` registry per process that serves it; actors report to it (through the MetricsActor)
rather than each opening a port.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

LATENCY_BUCKETS_S = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class EngineMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.pnl = Gauge("arb_net_pnl_krw", "Realized net PnL (KRW)", ["route"], registry=r)
        self.trades = Counter("arb_round_trips", "Closed round trips", ["route"], registry=r)
        self.wins = Counter("arb_wins", "Winning round trips", ["route"], registry=r)
        self.win_rate = Gauge("arb_win_rate", "Win rate of closed round trips", ["route"], registry=r)
        self.trades_per_hour = Gauge("arb_trades_per_hour", "Round trips per hour of market time", ["route"],
                                     registry=r)
        self.latency = Histogram("arb_feed_to_intent_seconds", "Feed message received -> order intent sent",
                                 buckets=LATENCY_BUCKETS_S, registry=r)
        self.open_positions = Gauge("arb_open_positions", "Open round trips", ["route"], registry=r)
        self.risk_triggers = Counter("arb_risk_triggers", "Risk rejections by first trigger", ["trigger"], registry=r)
        self.snapshots = Counter("arb_snapshots", "Snapshot attempts by outcome", ["outcome"], registry=r)
        self.restarts = Counter("arb_actor_restarts", "Actor restarts", ["actor"], registry=r)
        self.fx_staleness = Gauge("arb_fx_staleness_seconds", "Age of the FX rate in use", ["pair"], registry=r)
        self.feed_gaps = Counter("arb_feed_gaps", "Stale data / sequence gaps seen by feeds", ["venue", "kind"],
                                 registry=r)
        self.events = Counter("arb_feed_events", "Market events delivered", ["venue"], registry=r)

    def serve(self, port: int, host: str = "127.0.0.1") -> int:
        """Start the HTTP exporter on loopback; returns the port it bound (0 picks a free one)."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        return int(server.server_port)
