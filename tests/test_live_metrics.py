"""The live run's Prometheus page: the paper run's metric families, fed from the live host's status."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from test_live import EAGER, _wait_for
from test_metrics import parse, scrape

from arbitrage_lite.actors.live_host import LiveHostActor, LiveSpec
from arbitrage_lite.core.config import EngineConfig
from arbitrage_lite.infra.config_tree import apply_sets
from arbitrage_lite.infra.live.metrics_feed import LiveMetrics
from arbitrage_lite.infra.metrics import EngineMetrics, start_exporter
from arbitrage_lite.infra.venues.fake.server import FakeVenues
from arbitrage_lite.infra.venues.fake.synthetic import SyntheticSpec
from arbitrage_lite.scenarios.live import _binance_rules, _endpoints_from_fakes


def test_counters_follow_the_status_and_survive_a_restarted_host() -> None:
    lm = LiveMetrics()
    status: dict[str, Any] = {"uptime_s": 3600, "fx_age_s": 2.5,
                              "routes": {"BTC": {"trips": 4, "wins": 1, "net_krw": "-1234.5", "position": 1,
                                                 "premium_bps": 210.0}},
                              "feeds": {"upbit": {"books": 90, "deltas": 0, "restarts": 1}},
                              "risk": {"rejections_by_reason": {"loss_cooldown": 3}}}
    lm.update(status)
    status["routes"]["BTC"] |= {"trips": 6, "wins": 2, "premium_bps": float("nan")}
    status["feeds"]["upbit"]["books"] = 100
    lm.update(status)
    status["feeds"]["upbit"]["books"] = 30  # a new host process counts from 0: its 30 are added
    fams = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in lm.update(status) for s in f.samples}
    btc = (("route", "BTC"),)
    assert fams[("arb_round_trips_total", btc)] == 6 and fams[("arb_wins_total", btc)] == 2
    assert fams[("arb_win_rate", btc)] == 2 / 6 and fams[("arb_net_pnl_krw", btc)] == -1234.5
    assert fams[("arb_premium_bps", btc)] == 210.0  # NaN (no FX) keeps the last real one
    assert fams[("arb_feed_events_total", (("venue", "upbit"),))] == 130
    assert fams[("arb_risk_triggers_total", (("trigger", "loss_cooldown"),))] == 3
    assert fams[("arb_fx_staleness_seconds", (("pair", "USDT/KRW"),))] == 2.5
    assert fams[("arb_trades_per_hour", btc)] == 6.0


def test_a_live_host_on_the_fakes_feeds_the_page() -> None:
    async def run() -> tuple[str, LiveHostActor]:
        cfg = apply_sets(EngineConfig(), EAGER)
        fakes = FakeVenues(synthetic=SyntheticSpec(coins=("BTC", "ETH"), seed=1))
        info = await fakes.start()
        binance, upbit = _endpoints_from_fakes(info)
        rules = await _binance_rules(binance, ["BTC", "ETH"])
        host = LiveHostActor(LiveSpec({b: (cfg, rules[b]) for b in ("BTC", "ETH")}, binance, upbit, "livemtr",
                                      cfg.risk, Decimal(100_000_000)))
        exporter, lm = start_exporter(0), LiveMetrics()
        try:
            await host.start()
            await _wait_for(lambda: sum(len(r.feed.reported_closes) for r in host.routes.values()) >= 1, 25.0)
            exporter.update(lm.update(await host.status()))
            page = await asyncio.to_thread(scrape, exporter.port)
            await host.stop()
        finally:
            exporter.close()
            await fakes.stop()
        return page, host

    page, host = asyncio.run(run())
    got, per_family = parse(page)
    assert set(EngineMetrics().names()) <= set(per_family)
    for venue in ("upbit", "binance"):
        assert got[("arb_feed_events_total", (("venue", venue),))] > 0
    trips = {b: len(r.feed.reported_closes) for b, r in host.routes.items()}
    assert sum(trips.values()) >= 1
    for base, n in trips.items():
        assert got[("arb_round_trips_total", (("route", base),))] == n
        assert got[("arb_net_pnl_krw", (("route", base),))] == float(host.routes[base].net_krw)
        assert got[("arb_premium_bps", (("route", base),))] != 0.0
    assert 0 <= got[("arb_fx_staleness_seconds", (("pair", "USDT/KRW"),))] < 60
