"""Prometheus metrics (prometheus-client) of a paper run, served on 127.0.0.1 from the start of the run.

``EngineMetrics`` declares every metric; the MetricsActor (actors/metrics.py) holds one and feeds it from the
facts the actors report or answer. The HTTP page is served by the driver (``start_exporter``), bound when
the command starts (a busy port is an error before Ray starts, and a scrape answers at once): until the
first pull from the MetricsActor it shows every metric as declared, then what the actor last collected.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

LATENCY_BUCKETS_S = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
SNAPSHOT_OUTCOMES = ("ok", "fallback", "failed")  # fallback: Redis refused it, the file store took it


class EngineMetrics:
    """Every metric of a run. Fed by (see actors/metrics.py): the routes (PnL, trips, wins, open positions,
    feed-to-intent latency; the latest premium in their health ping), the feeds' health pings (events, stale
    stretches), the FX aggregator's (age of the rate in use), the RiskCoordinator's decisions (rejections by
    first trigger), and every actor's ping (its process's snapshot outcomes; a new process id is a restart)."""

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
        self.snapshots = Counter("arb_snapshots", "Snapshot saves by outcome (fallback: Redis refused, file store "
                                 "took it)", ["outcome"], registry=r)
        self.restarts = Counter("arb_actor_restarts", "Actor restarts (a new process answering)", ["actor"],
                                registry=r)
        self.fx_staleness = Gauge("arb_fx_staleness_seconds", "Market-time age of the newest FX quote at the "
                                  "latest feed window", ["pair"], registry=r)
        self.feed_gaps = Counter("arb_feed_gaps", "Stale stretches (no market data for 5 min) in the replayed feed",
                                 ["venue", "kind"], registry=r)
        self.events = Counter("arb_feed_events", "Market events delivered", ["venue"], registry=r)
        self.premium = Gauge("arb_premium_bps", "The route's latest premium: Upbit KRW price over Binance USDT "
                             "price x USDT/KRW, minus 1, in bps", ["route"], registry=r)

    def names(self) -> list[str]:
        """The declared metric family names."""
        return sorted(m.name for m in self.registry.collect())

    def families(self) -> list[Metric]:
        """Every family with its samples now (picklable: the driver's exporter serves what an actor collected)."""
        return list(self.registry.collect())


class Totals:
    """Counters fed from monotone totals that are reported again and again: each report adds what is new.
    ``resets``: a total below the last one is a source that started again from 0 (a restarted process), so
    all of it is new; otherwise such a report is ignored."""

    def __init__(self) -> None:
        self.seen: dict[tuple[str, str], float] = {}  # (source, what) -> the total counted so far

    def advance(self, counter: Any, key: tuple[str, str], total: float, resets: bool = False) -> None:
        last = self.seen.get(key, 0.0)
        if total < last and not resets:
            return
        new = total - last if total >= last else total
        if new > 0:
            counter.inc(new)
        self.seen[key] = total


class _Relay(Collector):
    def __init__(self, families: Sequence[Metric]) -> None:
        self._lock = threading.Lock()
        self._families = list(families)

    def set(self, families: Iterable[Metric]) -> None:
        with self._lock:
            self._families = list(families)

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            return list(self._families)


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No access log on stderr (a scrape every 5 s)."""


class Exporter:
    """The HTTP page on 127.0.0.1:``port``, serving the families it was last given; also ``/healthz`` and
    ``/readyz`` of the paper run (infra.health), judged from when the relay last handed it families and the
    actors' ping health it handed with them."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._relay = _Relay(EngineMetrics().families())
        self.registry.register(self._relay)
        self.updated_at: float | None = None  # monotonic time of the last update (None: none yet)
        self.health: dict[str, Any] | None = None
        metrics_app = make_wsgi_app(self.registry)

        def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
            path = environ.get("PATH_INFO", "")
            if path not in ("/healthz", "/readyz"):
                return list(metrics_app(environ, start_response))
            code, body = self.probe(path)
            start_response(f"{code} {'OK' if code == 200 else 'Service Unavailable'}",
                           [("Content-Type", "application/json")])
            return [json.dumps(body).encode()]

        self._server: Any = make_server(host, port, app, ThreadingWSGIServer, handler_class=_Quiet)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.port = int(self._server.server_port)

    def update(self, families: Iterable[Metric], health: dict[str, Any] | None = None) -> None:
        self._relay.set(families)
        self.updated_at = time.monotonic()
        if health is not None:
            self.health = health

    def probe(self, path: str) -> tuple[int, dict[str, Any]]:
        """(status, body) of ``/healthz`` or ``/readyz``."""
        from .health import paper_alive, paper_reasons, verdict

        age = None if self.updated_at is None else time.monotonic() - self.updated_at
        if path == "/healthz":
            return verdict(paper_alive(age))
        return verdict(paper_reasons(age, self.health))

    def scrape(self) -> str:
        """The page, fetched over HTTP like Prometheus would."""
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as resp:
            return str(resp.read().decode())

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def start_exporter(port: int) -> Exporter:
    """Serve the run's metrics on 127.0.0.1:``port`` now (0: any free port); OSError if it cannot bind."""
    return Exporter(port)
