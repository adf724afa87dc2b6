"""Wire-to-wire tracing (infra.live.trace): the live host on two routes against the fakes, the orders joined to the
frames that triggered them and to their arrival at the venue (the benchmark's join, benchmarks/live_latency.py)."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from arbitrage_lite.actors.live_host import LiveHostActor, LiveSpec
from arbitrage_lite.core.config import EngineConfig
from arbitrage_lite.infra.config_tree import apply_sets
from arbitrage_lite.infra.live.trace import STAGES, WireLog, join, split
from arbitrage_lite.infra.venues.fake.server import FakeVenues
from arbitrage_lite.infra.venues.fake.synthetic import SyntheticSpec
from arbitrage_lite.scenarios.live import _binance_rules, _endpoints_from_fakes

EAGER = ["strategy.entry_bps=0.5", "strategy.exit_bps=0.1", "strategy.warmup_s=1", "strategy.min_edge_bps=-1000",
         "strategy.cooldown_s=0.5", "strategy.order_notional_krw=1000000", "strategy.position_limit_krw=1000000"]
BASES = ("BTC", "ETH")


async def _traced_run(journal: Path) -> tuple[list[dict[str, Any]], WireLog]:
    cfg = apply_sets(EngineConfig(), EAGER)
    fakes = FakeVenues(synthetic=SyntheticSpec(coins=BASES, seed=3))
    info = await fakes.start()
    log = WireLog()
    log.attach(fakes)
    binance, upbit = _endpoints_from_fakes(info)
    rules = await _binance_rules(binance, list(BASES))
    spec = LiveSpec({b: (cfg, rules[b]) for b in BASES}, binance, upbit, "lattest", cfg.risk, Decimal(100_000_000),
                    journal_dir=str(journal), trace=True)
    host = LiveHostActor(spec)
    await host.start()
    try:
        end = time.monotonic() + 15.0
        while time.monotonic() < end and sum(1 for cid in log.received if "-o" in cid) < 4:
            await asyncio.sleep(0.1)
        await host.stop()
        traces = await host.trace()
    finally:
        await fakes.stop()
    assert not host.errors
    return traces, log


def test_orders_join_to_the_frames_that_triggered_them(tmp_path: Path) -> None:
    traces, log = asyncio.run(_traced_run(tmp_path))
    joined = join(traces, log)
    opens = [t for t in joined.orders if t["cid"].rsplit("-", 1)[-1].startswith("o")]
    assert len(opens) >= 2, (len(traces), dict(joined.dropped))
    for t in joined.orders:
        venue, symbol, _ = t["key"]
        assert symbol in (f"{t['route']}USDT", f"KRW-{t['route']}", "KRW-USDT")  # its own route's market (or FX)
        assert venue == ("upbit" if symbol.startswith("KRW-") else "binance")
        assert tuple(t["key"]) in log.sent and t["cid"] in log.received
        # the stamps follow the path: sent, read, parsed, the route's turn, the order made, journaled, at the venue
        path = [t["sent_ns"], t["frame_ns"], t["deliver_ns"], t["turn_ns"], t["emit_ns"], t["journaled_ns"],
                t["recv_ns"]]
        assert path == sorted(path), t
        parts = split(t, t["sent_ns"], t["recv_ns"])
        assert sum(parts[s] for s in STAGES) == t["recv_ns"] - t["sent_ns"]
        assert all(parts[s] >= 0 for s in STAGES), parts
    # an open waits for a risk verdict within its turn; a close is not asked about
    assert all(t["turn_ns"] <= t["risk_ask_ns"] <= t["risk_done_ns"] <= t["emit_ns"] for t in opens)
    closes = [t for t in joined.orders if t["cid"].rsplit("-", 1)[-1].startswith("c")]
    assert all(t["risk_ask_ns"] == 0 for t in closes)
    assert len(joined.total) == len(joined.orders) and min(joined.total) > 0


def test_the_fake_log_reads_both_venues_frames_and_order_ids() -> None:
    log = WireLog()
    log.binance_frame('{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":7,'
                      '"u":9,"b":[],"a":[]}}', 100)
    log.binance_frame('{"result":null,"id":1}', 101)
    log.upbit_frame('{"ty":"orderbook","cd":"KRW-BTC","tms":1733400000123,"tas":1,"obu":[]}', 102)
    log.upbit_frame('{"ty":"orderbook","cd":"KRW-BTC","tms":1733400000123,"tas":1,"obu":[]}', 103)  # re-sent
    log.order("x-1-ou", 104)
    back = WireLog.load(log.dump())
    assert back.sent == {("binance", "BTCUSDT", 9): 100, ("upbit", "KRW-BTC", 1733400000123): 102}
    assert back.received == {"x-1-ou": 104} and back.counts["repeated_keys"] == 1
