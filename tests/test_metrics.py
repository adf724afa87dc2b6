"""The Prometheus exporter serves the engine's KPIs on 127.0.0.1 (scraped over HTTP, parsed)."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from arbitrage_lite.actors.metrics import MetricsActor


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for fam in text_string_to_metric_families(text)
            for s in fam.samples}


def test_exporter_serves_kpis_on_loopback() -> None:
    m = MetricsActor(0)
    m.route_stats("BTC", -210632.95, trades=4, wins=1, open_positions=0, market_hours=2.0)
    m.route_stats("BTC", -150000.0, trades=5, wins=2, open_positions=1, market_hours=2.5)
    m.latencies([0.0002, 0.0004, 0.003])
    m.risk_trigger("daily_loss_limit")
    m.snapshot(ok=True)
    m.restart("route:BTC")
    m.fx_staleness("USDT/KRW", 12.5)
    m.feed("upbit", events=2400, gaps=5)
    got = scrape(m.port())
    btc = (("route", "BTC"),)
    assert got[("arb_net_pnl_krw", btc)] == -150000.0
    assert got[("arb_round_trips_total", btc)] == 5.0 and got[("arb_wins_total", btc)] == 2.0
    assert got[("arb_win_rate", btc)] == 0.4 and got[("arb_trades_per_hour", btc)] == 2.0
    assert got[("arb_open_positions", btc)] == 1.0
    assert got[("arb_feed_to_intent_seconds_count", ())] == 3.0
    assert got[("arb_feed_to_intent_seconds_bucket", (("le", "0.0005"),))] == 2.0
    assert got[("arb_risk_triggers_total", (("trigger", "daily_loss_limit"),))] == 1.0
    assert got[("arb_actor_restarts_total", (("actor", "route:BTC"),))] == 1.0
    assert got[("arb_fx_staleness_seconds", (("pair", "USDT/KRW"),))] == 12.5
    assert got[("arb_feed_gaps_total", (("kind", "stale"), ("venue", "upbit")))] == 5.0
    assert "arb_net_pnl_krw" in m.scrape()
