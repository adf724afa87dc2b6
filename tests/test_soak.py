"""The soak's machinery on a few seconds of compressed time (benchmarks/soak.py runs it for 24 h): chaos kills
counted, restarts counted, alerts counted, nothing lost; its accounting can fail; what the soak found."""

from __future__ import annotations

import asyncio
import dataclasses
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from arbitrage_lite.actors.risk import RiskCoordinatorActor
from arbitrage_lite.core.config import EngineConfig
from arbitrage_lite.core.domain import Venue
from arbitrage_lite.core.events import VENUE_FX
from arbitrage_lite.core.risk import RiskLimits
from arbitrage_lite.scenarios.soak import SoakPlan, Watch, account, chaos_schedule, memory_slopes, run_soak

pytestmark = pytest.mark.timeout(300)
LEGS = {Venue.UPBIT: Decimal(1_000_000), Venue.BINANCE: Decimal(1_000_000)}


@pytest.fixture(scope="module")
def btc(sample_stores: dict[str, Path]) -> dict[str, Any]:
    from arbitrage_lite.scenarios.market_data import load_route

    return {"BTC": load_route(sample_stores["btc"], "BTC", EngineConfig().costs)}


def test_soak_counts_kills_restarts_alerts_and_loses_nothing(ray_session: Any, btc: dict[str, Any],
                                                             tmp_path: Path) -> None:
    ts = btc["BTC"].events.ts
    plan = SoakPlan(tmp_path, window_ns=int(ts[-1] - ts[0]) // 200, kills=2, targets=("route:host0", "portfolio"),
                    sample_s=0.1, run_id="soaktest")
    rep = run_soak(btc, plan)
    assert rep["crashes"] == 0 and rep["error"] is None and rep["halted"] is None, rep
    assert rep["kills"] == rep["recovered"] == 2, rep["chaos_errors"]
    assert rep["restarts"] == 2  # the supervisor saw each kill's restart, and nothing else
    assert rep["restarts_seen_by_pid"] == {"route:host0": 1, "portfolio": 1}
    assert rep["memory"]["route:host0"]["incarnations"] == 2
    assert rep["alerts_by_rule"].get("restart") == 2 and rep["alerts_raised"] == sum(rep["alerts_by_rule"].values())
    assert rep["alerts_delivered"] >= 1  # through the file outbox to the webhook (bursts are folded into one)
    assert (tmp_path / "alerts" / "outbox.jsonl").exists()
    lost = rep["lost"]
    assert rep["nothing_lost"] and lost["fills"] > 0 and not lost["routes_differing_from_backtest"], lost
    assert lost["journal_counts"]["fill"] == lost["fills"]
    assert sum(h["legs"] for h in rep["latency_by_hour"].values()) > 0


def test_the_accounting_sees_a_lost_fill_and_an_unplanned_restart(btc: dict[str, Any], tmp_path: Path) -> None:
    from arbitrage_lite.core.replay import run_route

    cfg = EngineConfig()
    clean = run_route("BTC", btc["BTC"].events, cfg, btc["BTC"].binance)
    assert len(clean.fills) > 1
    lossy = dataclasses.replace(clean, fills=clean.fills[:-1])
    n = len(clean.fills)
    extras = {"journal": {"expected": {"fill": n}, "counts": {"fill": n}},
              "supervisor": {"events": [{"action": "restart"}], "halted": None}}
    plan = SoakPlan(tmp_path, cfg)

    def report(results: dict[str, Any]) -> dict[str, Any]:
        return account(btc, plan, _req(cfg), results, extras, [], None, Watch(), 0, 1.0)

    ok = report({"BTC": clean})
    assert ok["nothing_lost"] and ok["crashes"] == 1  # a restart nobody planned is a crash
    bad = report({"BTC": lossy})
    assert not bad["nothing_lost"] and bad["lost"]["routes_differing_from_backtest"] == ["BTC"]


def _req(cfg: EngineConfig) -> Any:
    from arbitrage_lite.scenarios.paper import PaperRequest

    return PaperRequest(Path("."), "BTC", Path("."), config=cfg)


def test_memory_slope_is_fitted_within_each_incarnation() -> None:
    """A leak of 10 MB per market hour in an actor restarted every 2 hours: each new process starts low again,
    so one line through all samples looks flat; the fit within incarnations does not."""
    samples = [(0.0, h / 10, {"x": (1000 + int(h // 20), 100.0 + (h % 20) / 10 * 10.0), "y": (7, 50.0)})
               for h in range(240)]
    mem = memory_slopes(samples)
    assert mem["x"]["mb_per_hour"] == pytest.approx(10.0) and mem["x"]["incarnations"] == 12
    assert mem["y"]["mb_per_hour"] == 0.0


def test_chaos_is_spread_over_the_run_and_the_targets() -> None:
    plans = chaos_schedule(SoakPlan(Path("."), kills=4, targets=("a", "b", "gone")), ["a", "b"])
    assert [p.target for p in plans] == ["a", "b", "a", "b"]
    assert [p.mode for p in plans] == ["ray_kill", "sigkill", "ray_kill", "sigkill"]
    at = [p.script[0].at for p in plans]
    assert at == sorted(at) and at[0] > 0 and at[-1] < 0.8


def test_a_question_asked_again_while_it_waits_gets_the_same_answer() -> None:
    """Found by the soak: a route host killed while its route waited for its risk turn asks the same question
    again from its snapshot; the coordinator then held two waiters for one route, and the second one's turn
    check failed (KeyError in the sequencer), which failed the feed and the run."""
    async def go() -> None:
        risk = RiskCoordinatorActor(RiskLimits())
        risk.configure(["A", "B"], Decimal(100_000_000))
        first = asyncio.ensure_future(risk.check_open("A", "A", LEGS, 10, key="A:1"))
        await asyncio.sleep(0)
        again = asyncio.ensure_future(risk.check_open("A", "A", LEGS, 10, key="A:1"))
        await asyncio.sleep(0)
        assert not first.done() and not again.done()  # both wait for B, which has not reported up to 10 yet
        await risk.progress("B", 20)
        assert (await first) == (await again) and (await first).allowed
        assert risk.repeated_calls == 1

    asyncio.run(go())



def _two_hours(d: Any, name: str, shift_ns: int) -> Any:
    """The sample's 2 h around its round trips (the FX rate in force at the start moved to the start), as route
    ``name``, ``shift_ns`` later: routes whose 1-minute bars do not come at the same instants."""
    e = d.events
    first, hour = int(e.ts[0]), 3_600_000_000_000
    start, end = first + int(2416.8 * hour), first + int(2418.5 * hour)
    keep = (e.ts >= start) & (e.ts < end)
    fx = np.flatnonzero((e.venue == VENUE_FX) & (e.ts < start))[-1]
    keep[fx] = True
    ts = np.where(np.arange(len(e.ts)) == fx, start, e.ts)[keep] + shift_ns
    tv = e.ts_venue[keep]
    events = dataclasses.replace(e, ts=ts, ts_venue=np.where(tv >= 0, tv + shift_ns, -1), venue=e.venue[keep],
                                 kind=e.kind[keep], side=e.side[keep], px=e.px[keep], qty=e.qty[keep])
    return dataclasses.replace(d, base=name, events=events, status_periods=())


def test_a_compressed_replay_with_risk_does_not_wait_out_its_questions(ray_session: Any, btc: dict[str, Any],
                                                                      tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 15 soak: routes in one host, the RiskCoordinator answering in market-time order, feeds as fast as
    the routes take windows. A route's question held the feed message whose processing asked it, so the feed
    could not send the windows the route it waited for needed (the bar that fills its legs): the question waited
    out ORDER_WAIT_S (60 s) and was answered out of turn. Here feeds run one window ahead at most, in 20 s
    windows: B0 asks 20 s after B1 sent its legs, and the bar that fills them comes two windows later (the old
    code: 5 questions answered after 60 s, 362 s wall; now none, ~55 s)."""
    from arbitrage_lite.scenarios import paper as paper_scenario

    monkeypatch.setattr(paper_scenario, "FEED_LAG", 1)
    data = {f"B{j}": _two_hours(btc["BTC"], f"B{j}", (1 - j) * 20_000_000_000) for j in range(2)}
    big = Decimal(10**12)
    loose = RiskLimits(daily_loss_limit_krw=big, max_drawdown_krw=big, max_venue_exposure_krw=big,
                       max_route_position_krw=big, max_symbol_position_krw=big, max_order_notional_krw=big,
                       max_inventory_imbalance=1.0, loss_cooldown_s=0.0, circuit_breaker_losses=10**6,
                       global_circuit_breaker_losses=None, max_trip_loss_krw=None)
    rep = run_soak(data, SoakPlan(tmp_path, risk=loose, window_ns=20_000_000_000, kills=0, sample_s=0.2,
                                  run_id="soakrisk"))
    assert rep["crashes"] == 0 and rep["error"] is None, rep
    assert rep["risk_order_timeouts"] == 0  # every question answered in its turn
    lost = rep["lost"]
    assert rep["nothing_lost"] and lost["fills"] > 0 and not lost["routes_differing_from_backtest"], lost
