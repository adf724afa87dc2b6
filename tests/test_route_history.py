"""A route's history (fills, trips, premium series) is saved once, in segments beside its snapshots: a
window's snapshot stays the same size however long the run (issue 15 §5), and a restore is still exact."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from arbitrage_lite.actors import route_snapshot
from arbitrage_lite.actors.feed import FeedActor, windows
from arbitrage_lite.actors.recovery import RecoveryConfig, Snapshots
from arbitrage_lite.actors.route import SOURCES, RouteActor
from arbitrage_lite.actors.route_snapshot import History, HistoryBroken
from arbitrage_lite.core.config import EngineConfig, StrategyConfig
from arbitrage_lite.core.kernel import N_COUNTERS
from arbitrage_lite.core.route_state import (
    S_NF,
    S_NS,
    S_NTR,
    S_POS_TRIP,
    S_PTRIP,
    TI_TS3,
    RouteState,
)
from arbitrage_lite.infra.snapshot_codec import encode
from arbitrage_lite.scenarios.market_data import load_route
from arbitrage_lite.scenarios.paper import _split


def _append(s: RouteState, k: int) -> None:
    """What a window of a busy route adds: 40 fills, a trip closed and a new one open, 200 series rows."""
    nf, ntr, ns = int(s.si[S_NF]), int(s.si[S_NTR]), int(s.si[S_NS])
    while nf + 40 >= s.fills.shape[0] or ntr + 2 >= s.trips_i.shape[0] or ns + 200 >= s.series_ts.shape[0]:
        s.grow()
    s.fills[nf:nf + 40] = k
    if ntr:
        s.trips_i[ntr - 1, TI_TS3] = k  # the open trip closes (its row changes after it was written)
    s.trips_i[ntr, :TI_TS3] = k
    s.trips_f[ntr] = k + 0.5
    s.series_ts[ns:ns + 200] = np.arange(ns, ns + 200)
    s.series_f[ns:ns + 200] = k / 7
    s.si[S_NF], s.si[S_NTR], s.si[S_NS] = nf + 40, ntr + 1, ns + 200
    s.si[S_PTRIP] = s.si[S_POS_TRIP] = ntr  # the newest trip is open


def _payload(s: RouteState, h: History, snaps: Snapshots) -> int:
    h.save(s, snaps)
    return len(encode({"state": s.to_snapshot(h.counts), "history": h.manifest()}))


def _same(a: RouteState, b: RouteState) -> None:
    for f in fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        assert x.dtype == y.dtype and x.shape == y.shape, f.name
        assert np.array_equal(x, y, equal_nan=True), f.name


def test_a_snapshot_does_not_grow_with_the_run_and_restores_exactly(tmp_path: Path) -> None:
    snaps = Snapshots(RecoveryConfig("rh1", env="test", dir=str(tmp_path)), "route", "BTC")
    s, h = RouteState.new(N_COUNTERS), History()
    sizes = []
    for k in range(1000):
        _append(s, k)
        sizes.append(_payload(s, h, snaps))
    n = 100
    # after N windows and after 10 N: the same per-save payload (the whole history was ~10x: 2.2 MB at 10 N)
    assert max(sizes[10 * n - 100:]) <= max(sizes[n - 100:n]) + 1024, (sizes[n - 1], sizes[-1])
    assert max(sizes) < route_snapshot.SEGMENT_BYTES + 2 * 14_000  # a segment's worth + a window + the rest
    assert len(encode({"state": s.to_snapshot()})) > 20 * sizes[-1]  # what every window saved before
    saved = snaps.save({"state": s.to_snapshot(h.counts), "history": h.manifest()})
    assert saved and h.counts["trips"] == int(s.si[S_NTR]) - 1  # the open trip stays in the snapshot
    snap = snaps.load()
    assert snap is not None
    back = RouteState.from_snapshot(snap["state"], History().restore(snap["history"], snaps))
    _same(s, back)


def test_a_segment_written_by_a_route_that_died_before_its_snapshot_is_ignored(tmp_path: Path) -> None:
    rec = RecoveryConfig("rh2", env="test", dir=str(tmp_path))
    snaps = Snapshots(rec, "route", "BTC")
    s, h = RouteState.new(N_COUNTERS), History()
    for k in range(30):
        _append(s, k)
        _payload(s, h, snaps)
    snaps.save({"state": s.to_snapshot(h.counts), "history": h.manifest()})
    kept = s.copy()
    for k in range(30, 40):
        _append(s, k)
    h.save(s, snaps)  # a segment of rows no snapshot holds, then the route dies
    assert h.head != snaps.load()["history"]["head"]  # type: ignore[index]
    h2 = History()
    snap = Snapshots(rec, "route", "BTC").load()
    assert snap is not None
    back = RouteState.from_snapshot(snap["state"], h2.restore(snap["history"], snaps))
    _same(kept, back)
    for k in range(30, 60):  # the next incarnation goes on and writes its own segments
        _append(back, k)
        _payload(back, h2, snaps)
    snaps.save({"state": back.to_snapshot(h2.counts), "history": h2.manifest()})
    snap = snaps.load()
    assert snap is not None
    _same(back, RouteState.from_snapshot(snap["state"], History().restore(snap["history"], snaps)))
    gone = {**snap["history"], "head": "nosuchpart-1"}
    with pytest.raises(HistoryBroken):
        History().restore(gone, snaps)


def test_a_route_restored_from_segments_ends_like_one_never_stopped(
        sample_stores: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real actor on the sample (premium series only: no trades without venues), killed mid-run: the
    restore rebuilds the history from the segments (Redis down: the file store), and it ends exactly as a
    route never stopped."""
    monkeypatch.setattr(route_snapshot, "SEGMENT_BYTES", 1)  # a segment at every window that adds rows
    route, feed, n_windows, rec = _sample_route(sample_stores["btc"], tmp_path, "rh3")

    async def drive() -> tuple[RouteActor, RouteActor, RouteActor]:
        straight = route(False, None)
        await feed(straight, range(n_windows))
        stopped = route(False)
        await feed(stopped, range(n_windows // 2))
        restored = route(True)
        await feed(restored, range(restored.resume_seq(), n_windows))
        return straight, stopped, restored

    straight, stopped, restored = asyncio.run(drive())
    # one segment by each incarnation (the sample's decisions come in two bursts), the second chained on the first
    assert stopped.history.segments >= 1 and restored.history.segments >= 1
    assert restored.finished.is_set() and restored.restore_sources == ["file"]
    _same(straight.state, restored.state)
    snap: Any = Snapshots(rec, "route", "BTC").load()
    assert snap["state"]["base"][2] == int(straight.state.si[S_NS]) and len(snap["state"]["series_ts"]) == 0
    assert snap is not None and restored.snaps is not None
    _same(straight.state, RouteState.from_snapshot(snap["state"], History().restore(snap["history"], restored.snaps)))


def test_segments_in_redis_and_in_the_file_store_join_up_across_an_outage(tmp_path: Path) -> None:
    """Segments go where snapshots go: Redis (mirrored to files), or the file store while Redis refuses; a
    restore finds each in either store, whichever took it."""
    from arbitrage_lite.infra.snapshots import RedisSnapshotStore
    from arbitrage_lite.infra.throwaway import ThrowawayRedis

    with ThrowawayRedis() as redis:
        rec = RecoveryConfig("rh4", env="test", redis_url=redis.url, dir=str(tmp_path))
        snaps = Snapshots(rec, "route", "BTC")
        s, h = RouteState.new(N_COUNTERS), History()
        for k in range(10):
            _append(s, k)
            _payload(s, h, snaps)
        in_redis = RedisSnapshotStore(redis.url, "test", "rh4").load_parts("route", "BTC")
        assert h.head in in_redis and len(in_redis) == h.segments >= 2
        redis.stop()
        for k in range(10, 20):  # while Redis is down: segments and snapshots in the file store only
            _append(s, k)
            _payload(s, h, snaps)
        assert h.head not in in_redis and snaps.fallbacks > 0
        snaps.save({"state": s.to_snapshot(h.counts), "history": h.manifest()})
        redis.start()  # empty again (no persistence): only the files know the first segments now
        snaps._redis_down_until = 0.0  # retry Redis at once (not after REDIS_RETRY_S)
        for k in range(20, 30):
            _append(s, k)
            _payload(s, h, snaps)
        assert snaps.save({"state": s.to_snapshot(h.counts), "history": h.manifest()})
        again = Snapshots(rec, "route", "BTC")
        snap = again.load()
        assert snap is not None and again.loaded_from == "redis"
        _same(s, RouteState.from_snapshot(snap["state"], History().restore(snap["history"], again)))


def test_a_lost_segment_falls_back_to_an_older_snapshot_and_ends_the_same(
        sample_stores: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The newest snapshot's last segment is gone from every store: the restore takes the newest snapshot
    whose chain is whole (the feed resends the windows after it) instead of failing at every restart."""
    monkeypatch.setattr(route_snapshot, "SEGMENT_BYTES", 1)
    route, feed, n_windows, rec = _sample_route(sample_stores["btc"], tmp_path, "rh5")

    async def drive() -> tuple[RouteActor, RouteActor, int, int]:
        straight = route(False, None)
        await feed(straight, range(n_windows))
        stopped = route(False)
        for k in range(n_windows):  # stopped at the window that wrote its second segment
            await feed(stopped, range(k, k + 1))
            if stopped.history.segments == 2:
                break
        assert stopped.history.segments == 2 and not stopped.finished.is_set()
        newest: Any = Snapshots(rec, "route", "BTC").load()
        lost = [p for p in tmp_path.rglob(f"{newest['history']['head']}.part")]
        assert len(lost) == 1
        lost[0].unlink()
        restored = route(True)
        resumed_at = restored.resume_seq()
        await feed(restored, range(resumed_at, n_windows))
        return straight, restored, resumed_at, stopped.resume_seq()

    straight, restored, resumed_at, stopped_at = asyncio.run(drive())
    assert restored.history.fallbacks == 1 and resumed_at < stopped_at  # an older snapshot: windows resent
    assert restored.snaps is not None
    assert [why for _, why in restored.snaps.skipped if "unusable" in why]  # the newest one, skipped: why
    assert restored.finished.is_set()
    _same(straight.state, restored.state)


def _sample_route(store: Path, tmp_path: Path, run_id: str) -> tuple[
        Callable[..., RouteActor], Callable[[RouteActor, range], Awaitable[None]], int, RecoveryConfig]:
    """The sample's BTC route as a RouteActor fed window by window (no venues: premium series only):
    ``route(restore, run=rec)``, ``feed(route, windows)``, the number of windows and the recovery config."""
    cfg = EngineConfig(strategy=StrategyConfig(entry_bps=1e6, exit_bps=5.0))
    data = load_route(store, "BTC", cfg.costs)
    cfg = cfg.model_copy(update={"costs": data.costs})
    parts = _split(data.events)
    edges = windows(int(data.events.ts.min()), int(data.events.ts.max()), len(data.events), 100, 1)
    feeds = {s: FeedActor(s, {"BTC": parts[s]}, edges) for s in SOURCES}
    rec = RecoveryConfig(run_id, env="test", dir=str(tmp_path))

    def route(restore: bool, run: RecoveryConfig | None = rec) -> RouteActor:
        return RouteActor("BTC", cfg, data.binance, run_id, {}, recovery=run, in_host=True, restore=restore)

    async def feed(r: RouteActor, ks: range) -> None:
        for k in ks:
            for s in SOURCES:
                r.accept(s, k, feeds[s]._upto(k), feeds[s]._part("BTC", k))
            await r.process(0)

    return route, feed, len(edges) + 1, rec
