"""Recovery building blocks: idempotent inboxes, route-state snapshots, the venue's record by client id,
snapshot fallback, and the supervisor's escalation to a safe halt (real Ray actors, real Redis)."""

from __future__ import annotations

import time
from dataclasses import fields
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from arbitrage_lite.actors.inbox import SequencedInbox
from arbitrage_lite.actors.recovery import RESTARTABLE, RecoveryConfig, Snapshots
from arbitrage_lite.core.domain import Side, Venue
from arbitrage_lite.core.kernel import N_COUNTERS
from arbitrage_lite.core.order_fsm import OrderStatus
from arbitrage_lite.core.paper_venue import PaperVenue, VenueOrder
from arbitrage_lite.core.route_state import S_NF, RouteState
from arbitrage_lite.core.rules import binance_rules
from arbitrage_lite.infra.throwaway import ThrowawayRedis

pytestmark = pytest.mark.timeout(120)


def test_inbox_orders_drops_repeats_and_restores() -> None:
    box: SequencedInbox[str] = SequencedInbox()
    assert box.accept("f", 1, "b") == []
    assert box.accept("f", 0, "a") == ["a", "b"]
    assert box.accept("f", 1, "b again") == [] and box.accept("f", 0, "a again") == []
    assert box.duplicates == 2 and box.next_seq("f") == 2
    box.accept("f", 3, "held")
    box.restore({"f": 1})  # back to a snapshot: held messages go, they will be resent
    assert box.waiting() == 0 and box.next_seq("f") == 1
    assert box.accept("f", 1, "b") == ["b"]
    with pytest.raises(ValueError):
        box.accept("f", -1, "x")


def test_route_state_snapshot_round_trips_exactly_with_capacity() -> None:
    s = RouteState.new(N_COUNTERS)
    s.grow()
    s.si[S_NF] = 3
    s.fills[:3] = np.arange(3 * s.fills.shape[1]).reshape(3, -1)
    s.sf[0] = np.nan
    snap = s.to_snapshot()
    assert snap["fills"].shape[0] == 3  # only the used rows travel
    back = RouteState.from_snapshot(snap)
    for f in fields(s):
        a, b = getattr(s, f.name), getattr(back, f.name)
        assert a.dtype == b.dtype and a.shape == b.shape, f.name
        assert np.array_equal(a, b, equal_nan=True), f.name


def _venue() -> PaperVenue:
    from arbitrage_lite.core.events import EventBatch

    v = PaperVenue(Venue.BINANCE, Decimal("0.001"))
    rules = binance_rules("0.01", "0.00001", "5")
    v.list_symbol("BTC-USDT", rules, 0.5, 0.0, rules.tick_units)
    ts = np.array([510, 511], np.int64)  # quoted after the orders arrive (500): a leg fills on a later quote only
    ev = EventBatch(ts, ts, np.array([1, 1], np.int8), np.array([0, 0], np.int8), np.array([0, 1], np.int8),
                    np.array([100.0, 100.02]), np.array([5.0, 5.0]))
    v.on_events("BTC-USDT", 1_000, ev)
    return v


def test_venue_keeps_its_record_and_answers_a_repeat_with_the_first_report() -> None:
    v = _venue()
    order = VenueOrder("al-r1-1-BTC-ob", "BTC-USDT", Side.BUY, 100_000, 500)
    assert v.report(order.client_id) is None  # never received: the caller may send it
    first = v.fill(order)
    assert first.status is OrderStatus.FILLED and v.report(order.client_id) == first
    assert v.fill(order) == first  # the same order again: its first answer, no second fill
    other = VenueOrder(order.client_id, "BTC-USDT", Side.SELL, 100_000, 600)
    refused = v.fill(other)
    assert refused.status is OrderStatus.REJECTED and refused.reason == "duplicate client id"


def test_snapshots_fall_back_to_files_while_redis_is_down(tmp_path: Path) -> None:
    with ThrowawayRedis() as redis:
        cfg = RecoveryConfig("t1", env="test", redis_url=redis.url, dir=str(tmp_path))
        snaps = Snapshots(cfg, "route", "BTC")
        assert snaps.save({"n": 1}) and snaps.stats()["fallbacks"] == 0
        redis.stop()
        assert snaps.save({"n": 2})  # Redis refused: the file store took it
        assert snaps.stats()["fallbacks"] == 1
        assert Snapshots(cfg, "route", "BTC").load() == {"n": 2}
        redis.start()  # empty again (no persistence): the file snapshot is still the newest good one
        again = Snapshots(cfg, "route", "BTC")
        assert again.load() == {"n": 2} and again.loaded_from == "file"


def _wait(pred: Any, timeout: float = 60.0) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_supervisor_escalates_to_a_safe_halt(ray_session: Any) -> None:
    """One restart allowed in the child's group, none at the root: the first restart is a restart, the
    second escalates to the root, which halts trading -- the RiskCoordinator pauses, a P0 alert goes out."""
    import ray

    from arbitrage_lite.actors.alert import AlertActor
    from arbitrage_lite.actors.risk import RiskCoordinatorActor
    from arbitrage_lite.supervision.policy import Intensity, Strategy
    from arbitrage_lite.supervision.supervisor import SupervisorActor, TreeSpec

    child = ray.remote(AlertActor).options(**RESTARTABLE).remote("child")  # any restartable actor with a ping
    risk = ray.remote(RiskCoordinatorActor).remote()
    alerts = ray.remote(AlertActor).remote("sup1")
    tree = TreeSpec({"routes": (Strategy.ONE_FOR_ONE, ("route:X",), Intensity(1, 60 * 10**9))},
                    root_intensity=Intensity(0, 60 * 10**9))
    sup = ray.remote(SupervisorActor).remote(tree, {"route:X": child}, risk, alerts, 0.02)
    market_ns = 1_733_011_200 * 10**9  # 2024-12-01: a replay's market clock, far behind the wall clock
    ray.get(risk.on_equity.remote(Decimal(0), market_ns))
    ray.get(sup.check_once.remote())  # the supervisor knows the child's process before it dies
    sup.run.remote()
    try:
        pid0 = ray.get(child.ping.remote())["pid"]
        ray.kill(child, no_restart=False)
        _wait(lambda: len(ray.get(sup.report.remote())["events"]) >= 1)
        rep = ray.get(sup.report.remote())
        assert rep["events"][0]["action"] == "restart" and rep["halted"] is None
        assert ray.get(risk.mode.remote()) == "active"
        assert ray.get(child.ping.remote())["pid"] != pid0
        ray.kill(child, no_restart=False)  # the second within the window: over the group's limit -> root -> halt
        _wait(lambda: ray.get(sup.report.remote())["halted"] is not None)
        _wait(lambda: ray.get(risk.mode.remote()) == "paused")
        assert ray.get(risk.snapshot.remote())["last_ns"] == market_ns  # the halt did not move risk to today
        assert [e["action"] for e in ray.get(sup.report.remote())["events"]][1:] == ["escalate", "halt"]
        _wait(lambda: any(a["rule"] == "supervisor_halt" and a["severity"] == "P0"
                          for a in ray.get(alerts.alerts.remote())))
    finally:
        ray.get(sup.stop.remote())
        for h in (sup, child, risk, alerts):
            ray.kill(h)


def test_resume_continues_a_stopped_run(ray_session: Any, sample_stores: dict[str, Path], tmp_path: Path) -> None:
    """A run stopped halfway (every actor killed for good: only its snapshots remain) and started again with
    ``resume`` ends with the same trades, fills and ledger as a run that was never stopped."""
    from dataclasses import replace

    from arbitrage_lite.scenarios.chaos import ChaosPlan, ScriptStep, stop_run
    from arbitrage_lite.scenarios.paper import PaperRequest, run_paper

    store = sample_stores["btc"]
    base = run_paper(PaperRequest(store, "BTC", tmp_path / "base", window_events=100, run_id="rsbase"))
    rec = RecoveryConfig("rs1", env="test", dir=str(tmp_path / "snaps"))
    first = PaperRequest(store, "BTC", tmp_path / "first", window_events=100, run_id="rs1", recovery=rec,
                         chaos=ChaosPlan("route:BTC", 0, script=(ScriptStep(0.5, "call", lambda: stop_run("rs1")),)))
    with pytest.raises(Exception):  # noqa: B017 - whatever the dead actors raise: the run did not finish
        run_paper(first)
    resumed = run_paper(replace(first, out=tmp_path / "resumed", recovery=replace(rec, resume=True), chaos=None))
    assert (tmp_path / "resumed" / "trades.csv").read_bytes() == (tmp_path / "base" / "trades.csv").read_bytes()
    assert (tmp_path / "resumed" / "fills.csv").read_bytes() == (tmp_path / "base" / "fills.csv").read_bytes()
    paper: Any = resumed["paper"]
    base_paper: Any = base["paper"]
    assert paper["ledger"] == base_paper["ledger"] and paper["portfolio"]["net_pnl_krw"] == base_paper[
        "portfolio"]["net_pnl_krw"]
    assert paper["routes"][0]["recovery"]["restores"] >= 1  # it did come back from a snapshot


def test_paper_cli_resume_and_clean_refuse_the_wrong_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """--resume needs a run that has snapshots; a new run must not reuse one that has (its keys stay alone)."""
    import arbitrage_lite.scenarios.paper as paper_scenario
    from arbitrage_lite.cli import main

    monkeypatch.setattr(paper_scenario, "run_paper", lambda req: pytest.fail("must not run"))
    snaps = str(tmp_path / "snaps")
    Snapshots(RecoveryConfig("old1", env="paper", dir=snaps), "route", "BTC").save({"n": 1})
    base = ["paper", "--replay", str(tmp_path), "--routes", "BTC", "--out", str(tmp_path / "o"), "--snapshots", snaps]
    assert main([*base, "--run-id", "new1", "--resume"]) == 2
    assert "no snapshots of run 'new1' to resume" in capsys.readouterr().err
    assert main([*base, "--run-id", "old1", "--clean"]) == 2
    assert "already has snapshots" in capsys.readouterr().err
    assert main([*base, "--run-id", "old1", "--resume", "--clean"]) == 2
    assert "exclude each other" in capsys.readouterr().err


def test_process_gone_tells_a_dead_process_from_a_stopped_one() -> None:
    """The supervisor waits for a child whose process died (Ray is restarting it) instead of killing the new
    incarnation as hung; a stopped (SIGSTOP) process is still there and may be hung."""
    import os
    import signal
    import socket
    import subprocess
    import sys

    from arbitrage_lite.actors.recovery import process_gone

    here = socket.gethostname()
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert not process_gone(proc.pid, here)
        os.kill(proc.pid, signal.SIGSTOP)
        assert not process_gone(proc.pid, here)
        assert not process_gone(proc.pid, "another-machine")
        proc.kill()
        proc.wait()
        assert process_gone(proc.pid, here)
        assert not process_gone(proc.pid, "another-machine")  # nothing to tell from here
    finally:
        if proc.poll() is None:
            proc.kill()


class _Route:
    def __init__(self) -> None:
        self.flattened = 0

    def flatten(self, route: str) -> None:
        self.flattened += 1


def test_a_restarted_halted_portfolio_orders_the_flatten_again(tmp_path: Path) -> None:
    """The kill switch fires on a closed trip the routes reported; the coordinator tells the portfolio, whose
    flatten orders go out fire-and-forget. A portfolio that dies right after has them re-issued by its
    restored incarnation (the supervisor calls ``after_restart``) for the positions still open."""
    import asyncio

    from arbitrage_lite.actors.portfolio import PortfolioActor
    from arbitrage_lite.actors.risk import RiskCoordinatorActor
    from arbitrage_lite.actors.route_host import _Local  # an object behind the shape of an actor handle
    from arbitrage_lite.core.domain import Currency
    from arbitrage_lite.core.risk import RiskLimits
    from arbitrage_lite.core.risk_sequencer import RiskFact

    rec = RecoveryConfig("halt1", env="test", dir=str(tmp_path))
    risk = RiskCoordinatorActor(RiskLimits(max_drawdown_krw=Decimal(1000)))
    route = _Route()

    def opened(name: str, trip: int, ts: int) -> RiskFact:
        return RiskFact("open", name, trip, ts, ((0, "5000"),))

    async def run() -> tuple[int, int, int]:
        first = PortfolioActor(rec)
        first.connect(_Local(risk), {"BTC": _Local(route), "ETH": _Local(route)}, None, Decimal(10**6))
        first.fund("BTC", {(Venue.UPBIT, Currency.KRW): Decimal(10**6)})
        risk.configure(("BTC", "ETH"), Decimal(10**6), ordered=False, portfolio=_Local(first))
        await risk.progress("ETH", 1, [opened("ETH", 0, 1)])  # still open at the halt
        await risk.progress("BTC", 4, [opened("BTC", 0, 1), RiskFact("close", "BTC", 0, 4, net_krw="0")])
        assert route.flattened == 0 and not first.halted
        await risk.progress("BTC", 5, [opened("BTC", 1, 4), RiskFact("close", "BTC", 1, 5, net_krw="-2000")])
        told_at_halt = route.flattened  # BTC (closing then) and ETH
        clean = PortfolioActor(RecoveryConfig("halt2", env="test", dir=str(tmp_path)))
        assert await clean.after_restart() == 0  # not halted: nothing to re-issue
        again = PortfolioActor(RecoveryConfig("halt1", env="test", dir=str(tmp_path), resume=True))
        again.connect(_Local(risk), {"BTC": _Local(route), "ETH": _Local(route)}, None, Decimal(10**6))
        assert again.halted and again._last_now_ns == 5
        return told_at_halt, await again.after_restart(), route.flattened

    told_at_halt, told_again, flattened = asyncio.run(run())
    assert risk.mode() == "halted"
    assert (told_at_halt, told_again, flattened) == (2, 1, 3)  # again: only ETH is still open
