"""The live host trading the local fake venues (synthetic market, real protocols) end to end, in-process."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any

from arbitrage_lite.actors.live_host import LiveHostActor, LiveSpec
from arbitrage_lite.core.config import EngineConfig
from arbitrage_lite.infra.config_tree import apply_sets
from arbitrage_lite.infra.venues.fake.server import FakeVenues
from arbitrage_lite.infra.venues.fake.synthetic import SyntheticSpec
from arbitrage_lite.scenarios.live import _binance_rules, _endpoints_from_fakes

EAGER = ["strategy.entry_bps=0.5", "strategy.exit_bps=0.1", "strategy.warmup_s=1", "strategy.min_edge_bps=-1000",
         "strategy.cooldown_s=0.5", "strategy.order_notional_krw=1000000", "strategy.position_limit_krw=1000000"]


async def _wait_for(cond: Any, timeout_s: float) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if cond():
            return True
        await asyncio.sleep(0.1)
    return False


async def _run(cfg: EngineConfig, shadow: bool) -> tuple[LiveHostActor, FakeVenues, dict[str, Any]]:
    fakes = FakeVenues(synthetic=SyntheticSpec(coins=("BTC", "ETH"), seed=1))
    info = await fakes.start()
    binance, upbit = _endpoints_from_fakes(info)
    rules = await _binance_rules(binance, ["BTC", "ETH"])
    spec = LiveSpec({b: (cfg, rules[b]) for b in ("BTC", "ETH")}, binance, upbit, "livetest", cfg.risk,
                    Decimal(100_000_000), shadow)
    host = LiveHostActor(spec)
    await host.start()
    try:
        await _wait_for(lambda: sum(len(r.feed.reported_closes) for r in host.routes.values()) >= 2, 25.0)
        stopped = await host.stop()
    finally:
        await fakes.stop()
    return host, fakes, stopped


def test_live_host_trades_the_fakes_with_venue_fills() -> None:
    cfg = apply_sets(EngineConfig(), EAGER)
    host, fakes, stopped = asyncio.run(_run(cfg, shadow=False))
    assert not host.errors
    trips = [t for r in host.routes.values() for t in r.feed.reported_closes]
    assert len(trips) >= 2, "eager thresholds on a moving synthetic market must close trips within 25 s"
    issued = [cid for r in host.routes.values() for cid in r.issued]
    assert len(issued) == len(set(issued))  # client ids never reused
    gw = stopped["gateways"]
    sent = gw[0]["sent"] + gw[1]["sent"]
    assert sent == len(issued) and gw[0]["estimated_fills"] == gw[1]["estimated_fills"] == 0
    # every order the gateways sent reached a fake, and the route booked the venue's fills, not its own model's
    assert fakes.upbit is not None and fakes.binance is not None
    venue_ids = {o.client_id for o in fakes.upbit.engine.orders.values()} | {
        o.client_id for o in fakes.binance.engine.orders.values()}
    assert set(issued) <= venue_ids
    for route in host.routes.values():
        for cid, order in route.orders.items():
            assert order.status.is_terminal, cid


def test_shadow_sends_nothing() -> None:
    cfg = apply_sets(EngineConfig(), EAGER)
    _host, fakes, stopped = asyncio.run(_run(cfg, shadow=True))
    gw = stopped["gateways"]
    assert gw[0]["sent"] == gw[1]["sent"] == 0
    assert gw[0]["shadow_fills"] + gw[1]["shadow_fills"] > 0
    assert fakes.upbit is not None and not fakes.upbit.engine.orders
