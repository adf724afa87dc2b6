"""A route snapshot taken while a later window waits in its buffers keeps that window: restored, the route
applies it and goes on from its inbox position, and ends in exactly the state of a run never stopped."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np

from arbitrage_lite.actors.feed import FeedActor, windows
from arbitrage_lite.actors.recovery import RecoveryConfig
from arbitrage_lite.actors.route import SOURCES, RouteActor
from arbitrage_lite.core.config import EngineConfig, StrategyConfig
from arbitrage_lite.core.route_state import S_NS
from arbitrage_lite.scenarios.market_data import load_route
from arbitrage_lite.scenarios.paper import _split


def test_a_window_taken_in_but_not_applied_is_resent_after_a_restore(sample_stores: dict[str, Path],
                                                                     tmp_path: Path) -> None:
    cfg = EngineConfig(strategy=StrategyConfig(entry_bps=1e6, exit_bps=5.0))  # no trades: no venue needed
    data = load_route(sample_stores["btc"], "BTC", cfg.costs)
    cfg = cfg.model_copy(update={"costs": data.costs})
    parts = _split(data.events)
    edges = windows(int(data.events.ts.min()), int(data.events.ts.max()), len(data.events), 100, 1)
    feeds = {s: FeedActor(s, {"BTC": parts[s]}, edges) for s in SOURCES}
    n_windows = len(edges) + 1
    busy = [k for k in range(n_windows) if len(feeds["upbit"]._part("BTC", k))]
    assert len(busy) >= 2
    late = busy[1]  # the window taken in while the route is busy with the ones before it
    rec = RecoveryConfig("rr1", env="test", dir=str(tmp_path))

    def route(restore: bool) -> RouteActor:
        return RouteActor("BTC", cfg, data.binance, "rr1", {}, recovery=rec, in_host=True, restore=restore)

    def take(r: RouteActor, k: int) -> None:
        for s in SOURCES:
            r.accept(s, k, feeds[s]._upto(k), feeds[s]._part("BTC", k))

    async def drive() -> tuple[RouteActor, RouteActor]:
        straight = route(False)
        for k in range(n_windows):
            take(straight, k)
            await straight.process(0)
        stopped = route(False)
        for k in range(late):
            take(stopped, k)
            await stopped.process(0)
        take(stopped, late)  # taken in (Ray runs it while the route awaits a verdict or a fill): it waits in
        assert len(stopped.buffers["upbit"]) == 1  # the buffers ...
        await stopped._save()  # ... when the route snapshots the windows before it, and then dies
        restored = route(True)
        assert restored.applied_window == late  # not applied yet, but in the snapshot: not needed again
        assert restored.resume_seq() == late + 1 and len(restored.buffers["upbit"]) == 1
        await restored.apply_restored()  # what the restarted actor queues for itself
        assert restored.applied_window == late + 1
        for k in range(restored.resume_seq(), n_windows):
            take(restored, k)
            await restored.process(0)
        return straight, restored

    straight, restored = asyncio.run(drive())
    assert restored.finished.is_set() and straight.finished.is_set()
    series = straight.state.series_ts[: int(straight.state.si[S_NS])]
    assert (series >= feeds["upbit"]._part("BTC", late).ts[0]).sum() > 100  # the late window has decisions
    for name in ("si", "sf", "counters", "series_ts", "series_f", "quotes"):
        assert np.array_equal(getattr(straight.state, name), getattr(restored.state, name), equal_nan=True), name
    assert restored.events_in == straight.events_in


def test_a_sender_that_cannot_resend_fails_the_route_instead_of_leaving_it_waiting(
        sample_stores: dict[str, Path], tmp_path: Path) -> None:
    import pytest

    cfg = EngineConfig()
    data = load_route(sample_stores["btc"], "BTC", cfg.costs)
    route = RouteActor("BTC", cfg.model_copy(update={"costs": data.costs}), data.binance, "rr2", {},
                       recovery=RecoveryConfig("rr2", env="test", dir=str(tmp_path)), in_host=True, restore=True)

    async def drive() -> None:
        lost: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        lost.set_exception(RuntimeError("fx: cannot resend windows 3..5 to BTC: no longer kept"))
        route.resends = [lost]
        await route.apply_restored()
        with pytest.raises(RuntimeError, match="could not resend"):
            await route.result()

    asyncio.run(drive())
