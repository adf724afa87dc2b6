"""The Prometheus page: every declared metric is fed where its fact exists, and the page answers from the start.

Unit tests drive the MetricsActor as a plain object over hand-written fake actors (their health pings and
the RiskCoordinator's decisions); the paper test scrapes a real run early and at its end.
"""

from __future__ import annotations

import asyncio
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from arbitrage_lite.actors.metrics import MetricsActor
from arbitrage_lite.infra.metrics import EngineMetrics, start_exporter

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> tuple[Samples, dict[str, int]]:
    """(sample -> value, family -> number of samples)."""
    samples: Samples = {}
    per_family: dict[str, int] = {}
    for fam in text_string_to_metric_families(text):
        per_family[fam.name] = len(fam.samples)
        for s in fam.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples, per_family


def scrape(port: int) -> str:
    return str(urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode())


class _Method:
    """``handle.method.remote()`` of a fake actor: an awaitable answer, like a Ray ObjectRef."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer

    def remote(self) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        fut.set_result(self.answer() if callable(self.answer) else self.answer)
        return fut


class _Actor:
    def __init__(self, ping: dict[str, Any], decisions: list[dict[str, Any]] | None = None) -> None:
        self.state = ping
        self.ping = _Method(lambda: dict(self.state))
        if decisions is not None:
            self.decisions = _Method(lambda: list(decisions))


def _ping(pid: int, ok: int = 0, fallback: int = 0, failed: int = 0, **extra: Any) -> dict[str, Any]:
    return {"pid": pid, "snapshot_outcomes": {"ok": ok, "fallback": fallback, "failed": failed}, **extra}


def test_every_metric_is_fed_from_where_its_fact_is() -> None:
    decisions = [{"verdict": "allow", "first_trigger": None},
                 {"verdict": "reject", "first_trigger": "daily_loss_limit"},
                 {"verdict": "reject", "first_trigger": "route_position"}]
    children = {"feed:upbit": _Actor(_ping(11, events=2400, stale_stretches=5)),
                "feed:binance": _Actor(_ping(12, events=2000, stale_stretches=0)),
                "fx": _Actor(_ping(13, ok=3, fx_age_s=12.5)),
                "risk": _Actor(_ping(14), decisions),
                "route:BTC": _Actor(_ping(15, ok=4, fallback=2, failed=1, premium_bps={"BTC": 231.5}))}
    m = MetricsActor()

    async def run() -> None:
        await m.watch(children, ["BTC"], period_s=3600)  # one round now; the test drives the rest
        await asyncio.sleep(0)
        await m.poll(children)
        children["route:BTC"].state = _ping(99, ok=1)  # Ray restarted it: a new process, counting from 0
        children["feed:upbit"].state = _ping(11, events=3000, stale_stretches=5)
        decisions.append({"verdict": "reject", "first_trigger": "daily_loss_limit"})
        await m.stop()  # a last round

    asyncio.run(run())
    m.route_stats("BTC", -210632.95, trades=4, wins=1, open_positions=0, market_hours=2.0)
    m.route_stats("BTC", -150000.0, trades=5, wins=2, open_positions=1, market_hours=2.5)
    m.latencies([0.0002, 0.0004, 0.003])
    exporter = start_exporter(0)
    try:
        exporter.update(m.families())
        got, per_family = parse(scrape(exporter.port))
    finally:
        exporter.close()
    btc = (("route", "BTC"),)
    assert got[("arb_net_pnl_krw", btc)] == -150000.0
    assert got[("arb_round_trips_total", btc)] == 5.0 and got[("arb_wins_total", btc)] == 2.0
    assert got[("arb_win_rate", btc)] == 0.4 and got[("arb_trades_per_hour", btc)] == 2.0
    assert got[("arb_open_positions", btc)] == 1.0
    assert got[("arb_premium_bps", btc)] == 231.5  # from the route's ping; its restarted process had none yet
    assert got[("arb_feed_to_intent_seconds_count", ())] == 3.0
    assert got[("arb_feed_to_intent_seconds_bucket", (("le", "0.0005"),))] == 2.0
    assert got[("arb_feed_events_total", (("venue", "upbit"),))] == 3000.0
    assert got[("arb_feed_events_total", (("venue", "binance"),))] == 2000.0
    assert got[("arb_feed_gaps_total", (("kind", "stale"), ("venue", "upbit")))] == 5.0
    assert got[("arb_fx_staleness_seconds", (("pair", "USDT/KRW"),))] == 12.5
    assert got[("arb_risk_triggers_total", (("trigger", "daily_loss_limit"),))] == 2.0
    assert got[("arb_risk_triggers_total", (("trigger", "route_position"),))] == 1.0
    assert got[("arb_actor_restarts_total", (("actor", "route:BTC"),))] == 1.0
    assert got[("arb_actor_restarts_total", (("actor", "fx"),))] == 0.0
    # snapshots: fx 3 ok; the route's first process 4 ok, 2 fallback, 1 failed; its second 1 ok
    assert got[("arb_snapshots_total", (("outcome", "ok"),))] == 8.0
    assert got[("arb_snapshots_total", (("outcome", "fallback"),))] == 2.0
    assert got[("arb_snapshots_total", (("outcome", "failed"),))] == 1.0
    assert all(per_family[name] > 0 for name in EngineMetrics().names()), per_family


def test_a_hung_or_dead_actor_is_skipped_not_waited_for() -> None:
    class Hung:
        class ping:
            @staticmethod
            def remote() -> asyncio.Future[Any]:
                return asyncio.get_running_loop().create_future()  # never answers

    m = MetricsActor()
    t0 = time.perf_counter()
    asyncio.run(m.poll({"fx": Hung(), "feed:fx": _Actor(_ping(5, events=7))}, timeout_s=0.2))
    assert time.perf_counter() - t0 < 2.0
    got, _ = parse(_text(m))
    assert got[("arb_feed_events_total", (("venue", "fx"),))] == 7.0


def _text(m: MetricsActor) -> str:
    exporter = start_exporter(0)
    try:
        exporter.update(m.families())
        return scrape(exporter.port)
    finally:
        exporter.close()


def test_the_page_answers_at_once_with_every_declared_metric() -> None:
    t0 = time.perf_counter()
    exporter = start_exporter(0)
    try:
        text = scrape(exporter.port)
    finally:
        exporter.close()
    assert time.perf_counter() - t0 < 2.0
    _, per_family = parse(text)
    assert set(EngineMetrics().names()) <= set(per_family)


def test_a_busy_port_is_refused_when_bound() -> None:
    exporter = start_exporter(0)
    try:
        with pytest.raises(OSError):
            start_exporter(exporter.port)
    finally:
        exporter.close()


@pytest.mark.ray
def test_paper_run_serves_from_the_start_and_feeds_every_metric(sample_stores: dict[str, Path], tmp_path: Path,
                                                                ray_session: object) -> None:
    import socket

    from arbitrage_lite.scenarios.paper import PaperRequest, run_paper

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    result: dict[str, Any] = {}
    req = PaperRequest(store=sample_stores["btc"], routes="BTC", out=tmp_path / "paper", window_events=150,
                       metrics_port=port)
    run = threading.Thread(target=lambda: result.update(summary=run_paper(req)))
    t0 = time.perf_counter()
    run.start()
    early = None
    while early is None and run.is_alive() and time.perf_counter() - t0 < 30:
        try:
            early = (time.perf_counter() - t0, scrape(port))
        except OSError:
            time.sleep(0.05)
    run.join(timeout=600)
    assert early is not None, "the page never answered during the run"
    assert early[0] < 5.0  # served from the start: before the store is loaded and the actors are up
    assert set(EngineMetrics().names()) <= set(parse(early[1])[1])
    got, per_family = parse(result["summary"]["paper"]["metrics_scrape"])
    empty = [name for name in EngineMetrics().names() if per_family.get(name, 0) == 0]
    assert not empty, f"declared but never fed: {empty}"
    assert got[("arb_feed_events_total", (("venue", "upbit"),))] > 0
    assert 0 <= got[("arb_fx_staleness_seconds", (("pair", "USDT/KRW"),))] < 3 * 86_400  # daily rates: < 3 days
    premium = got[("arb_premium_bps", (("route", "BTC"),))]
    assert premium != 0.0 and -2_000 < premium < 2_000  # a real premium of the BTC sample, not the declared 0
