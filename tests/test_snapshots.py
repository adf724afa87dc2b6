"""Actor snapshots in Redis (the real server on 127.0.0.1:6379) and in files: round trip, versions, retention,
fallback over corrupt and stale snapshots, keyspace, runs, TTL, and Redis going down and coming back."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import fields
from decimal import Decimal
from enum import IntEnum
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis

from arbitrage_lite.core.domain import Venue
from arbitrage_lite.core.fx_aggregate import FxAggregator, FxQuote
from arbitrage_lite.core.kernel import N_COUNTERS
from arbitrage_lite.core.risk import RiskCoordinator
from arbitrage_lite.core.route_state import F_FX, S_POS_QTY, RouteState
from arbitrage_lite.infra.snapshot_codec import CodecError, decode, encode, pack_blob
from arbitrage_lite.infra.snapshots import (
    DEFAULT_TTL_S,
    RUN_DOMAIN,
    FileSnapshotStore,
    RedisSnapshotStore,
    SnapshotCorrupt,
    SnapshotUnavailable,
    open_store,
    parse_key,
    snapshot_key,
)
from arbitrage_lite.infra.throwaway import ThrowawayRedis

REDIS_URL = "redis://127.0.0.1:6379/0"
NOW = 1_767_225_600_000_000_000  # 2026-01-01T00:00Z
SEC = 1_000_000_000
Store = RedisSnapshotStore | FileSnapshotStore
MakeStore = Callable[..., Store]


def _uid() -> str:
    return "t" + uuid.uuid4().hex[:12]


@pytest.fixture
def snap_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory for file stores: on tmpfs when there is one (the same code, without waiting on disk fsyncs)."""
    if not Path("/dev/shm").is_dir():
        yield tmp_path
        return
    path = Path(tempfile.mkdtemp(prefix="snapshots-test-", dir="/dev/shm"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(params=["redis", "file"])
def make_store(request: pytest.FixtureRequest, snap_dir: Path) -> Iterator[MakeStore]:
    """Stores of one fresh env (unique per test): ``make_store(run=None, **kw)``; the test's keys are deleted."""
    env = _uid()
    made: list[Store] = []

    def make(run: str | None = None, **kw: Any) -> Store:
        store: Store = (RedisSnapshotStore(REDIS_URL, env, run or _uid(), **kw) if request.param == "redis"
                        else FileSnapshotStore(snap_dir, env, run or _uid(), **kw))
        made.append(store)
        return store

    if request.param == "redis":
        try:
            redis.Redis.from_url(REDIS_URL).ping()
        except redis.RedisError as exc:
            pytest.fail(f"these tests need Redis on {REDIS_URL} (.ci/run starts it): {exc}")
    yield make
    for store in made:
        if isinstance(store, RedisSnapshotStore):
            keys = list(store.client.scan_iter(match=f"arbitrage:{env}:*"))
            if keys:
                store.client.delete(*keys)
            store.client.close()


def _overwrite(store: Store, domain: str, name: str, seq: int, blob: bytes) -> None:
    if isinstance(store, RedisSnapshotStore):
        key = snapshot_key(store.env, store.run, domain, name)
        assert store.client.hexists(key, str(seq))
        store.client.hset(key, str(seq), blob)
    else:
        path = store.root / store.run / domain / name / "snap" / f"{seq:012d}.snap"
        assert path.is_file()
        path.write_bytes(blob)


def _read(store: Store, domain: str, name: str, seq: int) -> bytes:
    if isinstance(store, RedisSnapshotStore):
        blob = store.client.hget(snapshot_key(store.env, store.run, domain, name), str(seq))
        assert isinstance(blob, bytes)
        return blob
    return (store.root / store.run / domain / name / "snap" / f"{seq:012d}.snap").read_bytes()


def engine_state() -> dict[str, Any]:
    """What the actors hold: a route's arrays (every dtype of RouteState, NaNs included), the risk and FX
    snapshots, exact Decimal money, nested containers."""
    rs = RouteState.new(N_COUNTERS, series_hint=64)
    rs.si[S_POS_QTY] = 2**62 + 12_345
    rs.si[0] = np.iinfo(np.int64).min
    rs.sf[F_FX] = 1380.123456789
    rs.sf[1] = -0.0
    rs.fills[:3] = np.arange(27, dtype=np.int64).reshape(3, 9) * 10**15
    rs.series_f[5] = [np.nan, np.inf, -np.inf]
    rs.trips_f[0, 2] = float.fromhex("0x1.fffffffffffffp+1023")
    risk = RiskCoordinator()
    risk.on_position_opened("BTC", "BTC", {Venue.UPBIT: Decimal("9876543.21"), Venue.BINANCE: Decimal("9875000")})
    risk.on_round_trip_closed("ETH", Decimal("-1234.5678"), NOW)
    risk.on_inventory("BTC", Decimal("0.12345678"), Decimal("0.1"))
    fx = FxAggregator(60 * SEC, 200.0, 1)
    fx.update(FxQuote("upbit", "USDT/KRW", 1401.5, NOW))
    fx.update(FxQuote("bithumb", "USDT/KRW", float("nan"), NOW))
    return {
        "route": {f.name: getattr(rs, f.name) for f in fields(rs)},
        "risk": risk.snapshot(),
        "fx": fx.snapshot(),
        "portfolio": {"BTC": {"net": Decimal("-0.000000000000000000000000000001"), "fees": Decimal("1E+3"),
                              "gross": Decimal("123456789012345678901234567890.123456789")}, "trips": {"BTC": 3}},
        "misc": [None, True, False, 0, -1, 2**64 + 1, 1.5, float("nan"), -0.0, "kimchi", b"\x00\xff",
                 (1, (2, 3)), {1: "int key"}, np.float64(0.1), np.int32(-7), np.array(True)],
    }


def assert_identical(a: Any, b: Any, path: str = "$") -> None:
    """Same types, same values, same bits (NaN-aware), same dict order."""
    assert type(a) is type(b), f"{path}: {type(a)} != {type(b)}"
    if isinstance(a, np.ndarray | np.generic):
        assert (a.dtype, a.shape, a.tobytes()) == (b.dtype, b.shape, b.tobytes()), path
    elif isinstance(a, dict):
        assert list(a) == list(b), path
        for k in a:
            assert_identical(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_identical(x, y, f"{path}[{i}]")
    elif isinstance(a, float):
        assert np.float64(a).tobytes() == np.float64(b).tobytes(), path
    else:
        assert a == b and str(a) == str(b), path


def test_codec_round_trip_is_exact() -> None:
    state = engine_state()
    data = encode(state)
    back = decode(data)
    assert_identical(back, state)
    assert encode(back) == data  # deterministic: byte-exact again
    assert {a.dtype for a in back["route"].values()} == {np.dtype(np.int64), np.dtype(np.float64)}
    back["route"]["si"][0] = 1  # restored arrays are writable (the kernel mutates them)
    assert back["risk"]["day_pnl_krw"] == "-1234.5678"


class _Side(IntEnum):
    BUY = 1


@pytest.mark.parametrize("value", [OrderedDict(a=1), {1, 2}, _Side.BUY, np.array([object()]), object(),
                                   np.zeros(2, dtype=[("a", "i4")]), np.ma.masked_array([1])])
def test_codec_refuses_what_it_cannot_round_trip(value: Any) -> None:
    with pytest.raises(TypeError):
        encode({"x": value})


@pytest.mark.parametrize("data", [b"", b"garbage", encode({"a": [1, 2, 3]})[:-1], encode({"a": 1}) + b"\x00",
                                  b"ALC\x01\xc7\x01\x63x"])
def test_codec_rejects_foreign_bytes(data: bytes) -> None:
    with pytest.raises(CodecError):
        decode(data)


def test_keys_build_and_parse() -> None:
    key = snapshot_key("paper", "run42", "route", "BTC", "snap")
    assert key == "arbitrage:paper:run42:route:BTC:snap"
    p = parse_key(key.encode())
    assert (p.env, p.run, p.domain, p.name, p.field) == ("paper", "run42", "route", "BTC", "snap")
    assert snapshot_key(*p) == key and parse_key(key) == p


@pytest.mark.parametrize("bad", ["", "a:b", "a b", " a", "a/b", "..", ".hidden", "a*", "a?", "rün", "x" * 65,
                                 "a\n", None, 7])
def test_keys_refuse_unsafe_parts(bad: Any, snap_dir: Path) -> None:
    for i in range(5):
        parts = ["paper", "run1", "route", "BTC", "snap"]
        parts[i] = bad
        with pytest.raises(ValueError):
            snapshot_key(*parts)
    with pytest.raises(ValueError):
        FileSnapshotStore(snap_dir, "paper", "run1").save("route", bad, {}, 1, now_ns=NOW)
    with pytest.raises(ValueError):
        FileSnapshotStore(snap_dir, "paper", bad)


@pytest.mark.parametrize("key", ["arbitrage:paper:run1:route:BTC", "arbitrage:paper:run1:route:BTC:snap:x",
                                 "other:paper:run1:route:BTC:snap", "arbitrage:paper::route:BTC:snap"])
def test_parse_refuses_foreign_keys(key: str) -> None:
    with pytest.raises(ValueError):
        parse_key(key)


def test_round_trip_of_engine_state(make_store: MakeStore) -> None:
    store = make_store()
    state = engine_state()
    meta = store.save("route", "BTC", state, 3, now_ns=NOW)
    assert (meta.seq, meta.version, meta.created_ns, meta.encoding) == (1, 3, NOW, "codec")
    assert meta.sha256 == hashlib.sha256(encode(state)).hexdigest() and meta.size == len(encode(state))
    raw = store.save("ids", "BTC", b"\x00opaque\xff", 1, now_ns=NOW + 1)
    snap = store.load("route", "BTC")
    assert snap is not None and snap.meta == meta and snap.skipped == []
    assert_identical(snap.payload, state)
    assert encode(snap.payload) == encode(state)
    assert isinstance(snap.payload, dict)
    route = RouteState(**snap.payload["route"])  # the actors restore from it
    route.grow()
    risk = RiskCoordinator()
    risk.restore(snap.payload["risk"])
    assert risk.snapshot() == state["risk"]
    other = store.load("ids", "BTC")
    assert other is not None and other.payload == b"\x00opaque\xff" and other.meta == raw
    assert store.load("route", "ETH") is None and store.history("route", "ETH") == []


def test_versions_increase_and_retention_keeps_k(make_store: MakeStore) -> None:
    store = make_store(keep=3)
    seqs = [store.save("risk", "coordinator", {"i": i}, 1, now_ns=NOW + i).seq for i in range(7)]
    assert seqs == list(range(1, 8))
    hist = store.history("risk", "coordinator")
    assert [(m.seq, m.created_ns, m.problem) for m in hist] == [(7, NOW + 6, None), (6, NOW + 5, None),
                                                                 (5, NOW + 4, None)]
    again = make_store(run=store.run, keep=3)  # a restarted actor continues the sequence
    assert again.save("risk", "coordinator", {"i": 7}, 2, now_ns=NOW + 7).seq == 8
    snap = again.load("risk", "coordinator")
    assert snap is not None and snap.payload == {"i": 7} and snap.meta.version == 2
    assert len(store.history("risk", "coordinator")) == 3


@pytest.mark.parametrize("damage", ["garbage", "truncated", "flipped", "undecodable"])
def test_corrupt_newest_falls_back_to_previous(make_store: MakeStore, damage: str) -> None:
    store = make_store()
    for i in range(3):
        store.save("route", "ETH", {"i": i, "a": np.arange(100, dtype=np.int64)}, 1, now_ns=NOW + i)
    good = _read(store, "route", "ETH", 3)
    bad, reason = {
        "garbage": (b"\xde\xad\xbe\xef" * 8, "undecodable"),
        "truncated": (good[: len(good) - 100], "truncated"),
        "flipped": (good[:-5] + bytes([good[-5] ^ 1]) + good[-4:], "corrupt"),
        "undecodable": (pack_blob(b"ALC\x01\xc1", 1, NOW + 2)[0].replace(b'"bytes"', b'"codec"'), "undecodable"),
    }[damage]
    _overwrite(store, "route", "ETH", 3, bad)
    snap = store.load("route", "ETH")
    assert snap is not None and snap.meta.seq == 2 and snap.payload["i"] == 1
    assert [s for s, _ in snap.skipped] == [3] and snap.skipped[0][1].startswith(reason)
    assert store.last_skipped == snap.skipped
    hist = store.history("route", "ETH")
    assert [(m.seq, (m.problem or "ok").split(":")[0]) for m in hist] == [(3, reason), (2, "ok"), (1, "ok")]


def test_stale_newest_falls_back_to_previous(make_store: MakeStore) -> None:
    store = make_store()
    store.save("fx", "agg", {"rate": 1400.0}, 1, now_ns=NOW - SEC)
    store.save("fx", "agg", {"rate": 1300.0}, 1, now_ns=NOW - 3600 * SEC)  # newest by seq, captured long ago
    assert store.load("fx", "agg").payload == {"rate": 1300.0}  # type: ignore[union-attr]
    snap = store.load("fx", "agg", now_ns=NOW, max_age_ns=600 * SEC)
    assert snap is not None and snap.meta.seq == 1 and snap.payload == {"rate": 1400.0}
    assert snap.skipped == [(2, f"stale: created {3600 * SEC} ns before now > {600 * SEC} ns")]
    assert store.load("fx", "agg", now_ns=NOW, max_age_ns=SEC // 2) is None
    assert [s for s, _ in store.last_skipped] == [2, 1]
    with pytest.raises(ValueError, match="together"):
        store.load("fx", "agg", max_age_ns=SEC)


def test_everything_corrupt_gives_none_and_reports_every_skip(make_store: MakeStore) -> None:
    store = make_store()
    for i in range(3):
        store.save("portfolio", "main", {"net": Decimal(i)}, 1, now_ns=NOW + i)
    _overwrite(store, "portfolio", "main", 3, b"")
    _overwrite(store, "portfolio", "main", 2, _read(store, "portfolio", "main", 2)[:-1])
    _overwrite(store, "portfolio", "main", 1, b"ALSNAP1\n{not json\n")
    assert store.load("portfolio", "main") is None
    assert [(s, r.split(":")[0]) for s, r in store.last_skipped] == [(3, "undecodable"), (2, "truncated"),
                                                                       (1, "undecodable")]
    assert store.save("portfolio", "main", {"net": Decimal(9)}, 1, now_ns=NOW + 9).seq == 4  # and it recovers
    assert store.load("portfolio", "main").payload == {"net": Decimal(9)}  # type: ignore[union-attr]


def test_runs_and_latest_run(make_store: MakeStore) -> None:
    first = make_store(run="r1")
    assert first.runs() == [] and first.latest_run() is None
    first.save("route", "BTC", {}, 1, now_ns=NOW + 100)
    make_store(run="r2").save("route", "BTC", {}, 1, now_ns=NOW + 300)
    make_store(run="r3").save("risk", "coordinator", {}, 1, now_ns=NOW + 200)
    assert first.runs() == ["r1", "r2", "r3"] and first.latest_run() == "r2"
    first.save("route", "ETH", {}, 1, now_ns=NOW + 400)
    first.save("route", "ETH", {}, 1, now_ns=NOW + 50)  # an older created_ns never moves a run back
    assert make_store(run="r9").latest_run() == "r1"
    with pytest.raises(ValueError, match="reserved"):
        first.save(RUN_DOMAIN, "marker", {}, 1, now_ns=NOW)


def test_save_validates_its_arguments(make_store: MakeStore) -> None:
    store = make_store()
    with pytest.raises(TypeError):
        store.save("route", "BTC", [1, 2], 1, now_ns=NOW)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        store.save("route", "BTC", {"s": {1}}, 1, now_ns=NOW)
    for version, now in ((-1, NOW), (1, -1), (True, NOW), (1, float(NOW))):
        with pytest.raises(ValueError):
            store.save("route", "BTC", {}, version, now_ns=now)  # type: ignore[arg-type]
    assert store.history("route", "BTC") == [] and store.runs() == []


def test_redis_keys_carry_the_ttl() -> None:
    env, run = _uid(), _uid()
    store = RedisSnapshotStore(REDIS_URL, env, run, ttl_s=3600)
    default = RedisSnapshotStore(REDIS_URL, env, run)
    try:
        store.save("route", "BTC", {"x": 1}, 1, now_ns=NOW)
        marker = snapshot_key(env, run, RUN_DOMAIN, "marker", "last_ns")
        assert 3590 <= store.client.ttl(snapshot_key(env, run, "route", "BTC")) <= 3600
        assert 3590 <= store.client.ttl(marker) <= 3600
        default.save("route", "BTC", {"x": 2}, 1, now_ns=NOW + 1)  # every save renews the TTL
        assert DEFAULT_TTL_S - 10 <= store.client.ttl(snapshot_key(env, run, "route", "BTC")) <= DEFAULT_TTL_S
        assert DEFAULT_TTL_S - 10 <= store.client.ttl(marker) <= DEFAULT_TTL_S
        assert sorted(store.client.scan_iter(match=f"arbitrage:{env}:*")) == sorted(
            [snapshot_key(env, run, "route", "BTC").encode(), marker.encode()])
    finally:
        store.client.delete(snapshot_key(env, run, "route", "BTC"), snapshot_key(env, run, RUN_DOMAIN, "marker",
                                                                                 "last_ns"))


def test_redis_down_is_unavailable_and_saves_work_after_restart() -> None:
    with ThrowawayRedis() as server:
        store = RedisSnapshotStore(server.url, "paper", "run42", timeout_s=0.5)
        assert store.save("route", "BTC", {"n": 1}, 1, now_ns=NOW).seq == 1
        server.stop()  # returns once the process is gone and the port refuses
        for call in (lambda: store.save("route", "BTC", {"n": 2}, 1, now_ns=NOW + 1),
                     lambda: store.load("route", "BTC"), lambda: store.history("route", "BTC"), store.runs,
                     store.latest_run):
            with pytest.raises(SnapshotUnavailable, match=f"127.0.0.1:{server.port}"):
                call()
        server.start()  # same port; no persistence: it comes back empty
        assert store.save("route", "BTC", {"n": 3}, 1, now_ns=NOW + 2).seq == 1
        assert store.load("route", "BTC").payload == {"n": 3}  # type: ignore[union-attr]
        assert store.latest_run() == "run42"


def test_file_store_writes_atomically_and_expires_old_runs(snap_dir: Path) -> None:
    old = FileSnapshotStore(snap_dir, "paper", "old", ttl_s=3600)
    old.save("route", "BTC", {"a": 1}, 1, now_ns=NOW)
    cur = FileSnapshotStore(snap_dir, "paper", "cur", ttl_s=3600)
    cur.save("route", "BTC", {"a": 2}, 1, now_ns=NOW + 2 * 3600 * SEC)
    files = sorted(p.name for p in snap_dir.rglob("*") if p.is_file())
    assert files == ["000000000001.snap", "000000000001.snap", "last_ns", "last_ns"]  # no temp files left
    assert cur.expire_runs(NOW + 3600 * SEC) == []  # not older than the TTL yet
    assert cur.expire_runs(NOW + 2 * 3600 * SEC) == ["old"]
    assert cur.runs() == ["cur"] and old.load("route", "BTC") is None
    assert FileSnapshotStore(snap_dir, "live", "cur").runs() == []  # envs are separate
    (snap_dir / "arbitrage" / "paper" / "cur" / "route" / "BTC" / "snap" / ".tmp-x").write_bytes(b"half")
    assert [m.seq for m in cur.history("route", "BTC")] == [1]  # a crash's leftover temp file is not a snapshot
    (snap_dir / "not-a-dir").write_bytes(b"")
    with pytest.raises(SnapshotUnavailable):
        FileSnapshotStore(snap_dir / "not-a-dir", "paper", "cur").save("route", "BTC", {}, 1, now_ns=NOW)
    assert isinstance(open_store("paper", "cur", dir=snap_dir), FileSnapshotStore)
    assert isinstance(open_store("paper", "cur", redis_url=REDIS_URL), RedisSnapshotStore)


# ---- corruption is not an outage (issue 11) -----------------------------------------------------------------

def test_skips_tell_corruption_from_staleness(make_store: MakeStore) -> None:
    store = make_store()
    for i in range(3):
        store.save("fx", "agg", {"i": i}, 1, now_ns=NOW - (3 - i) * 3600 * SEC)
    _overwrite(store, "fx", "agg", 3, b"ALSNAP1\ngarbage")
    assert store.load("fx", "agg", now_ns=NOW, max_age_ns=7200 * SEC).payload == {"i": 1}  # type: ignore[union-attr]
    assert [(s.seq, s.corrupt) for s in store.last_skipped] == [(3, True)]
    assert store.load("fx", "agg", now_ns=NOW, max_age_ns=SEC) is None
    assert [(s.seq, s.reason.split(":")[0], s.corrupt) for s in store.last_skipped] == [
        (3, "undecodable", True), (2, "stale", False), (1, "stale", False)]


def test_a_redis_key_of_the_wrong_type_is_corruption_not_an_outage() -> None:
    store = RedisSnapshotStore(REDIS_URL, _uid(), _uid())
    key = snapshot_key(store.env, store.run, "portfolio", "ledger")
    try:
        store.client.rpush(key, b"not", b"a", b"hash")
        assert store.load("portfolio", "ledger") is None
        assert store.last_skipped == [(0, f"corrupt: Redis key {key} holds a list, not a hash")]
        assert store.last_skipped[0].corrupt
        assert [m.problem for m in store.history("portfolio", "ledger")] == [store.last_skipped[0].reason]
        with pytest.raises(SnapshotCorrupt, match=f"corrupt: Redis key {key} holds a list, not a hash"):
            store.save("portfolio", "ledger", {"n": 1}, 1, now_ns=NOW)
        assert store.client.type(key) == b"list"  # the damage is reported, never overwritten
        store.client.delete(key)
        store.save("portfolio", "ledger", {"n": 1}, 1, now_ns=NOW)
        store.client.hset(key, "junk", b"x")
        assert store.load("portfolio", "ledger") is None
        assert store.last_skipped[0].seq == 0 and store.last_skipped[0].corrupt
        assert "not sequence numbers" in store.last_skipped[0].reason
    finally:
        store.client.delete(key, snapshot_key(store.env, store.run, RUN_DOMAIN, "marker", "last_ns"))


def test_a_file_where_the_snapshot_directory_belongs_is_corruption(snap_dir: Path) -> None:
    store = FileSnapshotStore(snap_dir, "paper", "r1")
    store.save("route", "BTC", {"n": 1}, 1, now_ns=NOW)
    d = snap_dir / "arbitrage" / "paper" / "r1" / "route" / "BTC" / "snap"
    shutil.rmtree(d)
    d.write_bytes(b"junk")
    assert store.load("route", "BTC") is None
    assert store.last_skipped == [(0, f"corrupt: {d} is a file, not the directory of snapshots")]


@pytest.mark.parametrize("junk", [b"junk", b"", b"123"])
def test_a_junk_run_marker_keeps_the_run_and_says_so(make_store: MakeStore, junk: bytes) -> None:
    store = make_store(run="r1")
    store.save("route", "BTC", {"n": 1}, 1, now_ns=NOW)
    make_store(run="r2").save("route", "BTC", {"n": 1}, 1, now_ns=NOW - SEC)
    marker = snapshot_key(store.env, "r1", RUN_DOMAIN, "marker", "last_ns")
    if isinstance(store, RedisSnapshotStore):
        store.client.set(marker, junk)
    else:
        (store.root / "r1" / RUN_DOMAIN / "marker" / "last_ns").write_bytes(junk)
    assert store.runs() == ["r1", "r2"]  # before: r1 vanished, and --resume r1 said it had no snapshots
    assert store.marker_problems["r1"].startswith("corrupt: run marker") and repr(junk) in store.marker_problems["r1"]
    assert store.latest_run() == "r2"  # r1 cannot be dated: it ranks last, and marker_problems says why
    assert store.load("route", "BTC").payload == {"n": 1}  # type: ignore[union-attr]
    store.save("route", "BTC", {"n": 2}, 1, now_ns=NOW + 1)  # the marker is derived data: a save rewrites it
    assert "rewritten" in store.marker_problems["r1"]
    assert make_store(run="r3").latest_run() == "r1"


def test_a_run_marker_of_the_wrong_type_is_corruption_not_an_outage() -> None:
    env = _uid()
    store = RedisSnapshotStore(REDIS_URL, env, "r1")
    marker = snapshot_key(env, "r1", RUN_DOMAIN, "marker", "last_ns")
    try:
        store.save("route", "BTC", {"n": 1}, 1, now_ns=NOW)
        store.client.delete(marker)
        store.client.rpush(marker, b"x")
        assert store.runs() == ["r1"] and store.latest_run() == "r1"
        assert store.marker_problems["r1"] == f"corrupt: Redis key {marker} holds a list, not a string"
        store.save("route", "BTC", {"n": 2}, 1, now_ns=NOW + 1)
        assert store.client.get(marker) == f"{NOW + 1:020d}".encode()
        assert store.marker_problems["r1"] == f"corrupt: run marker {marker} held b'a list', rewritten by a save"
    finally:
        store.client.delete(marker, snapshot_key(env, "r1", "route", "BTC"))


def test_a_redis_outage_names_the_service() -> None:
    with ThrowawayRedis() as server:
        store = RedisSnapshotStore(server.url, "paper", "run42", timeout_s=0.5)
        server.stop()
        with pytest.raises(SnapshotUnavailable) as err:
            store.load("route", "BTC")
        assert str(err.value) == f"Redis at redis://127.0.0.1:{server.port}/0: connection refused"


# ---- an actor's snapshots (actors/recovery.py): Redis with the file store beside it -------------------------

def test_a_restart_while_redis_is_down_finds_the_snapshot_redis_took(snap_dir: Path) -> None:
    """Redis goes down after the actor's last save; the actor is restarted before it saves again. Before,
    the file store held nothing and the actor came back empty (a portfolio without its ledgers)."""
    from arbitrage_lite.actors.recovery import RecoveryConfig, Snapshots

    with ThrowawayRedis() as server:
        cfg = RecoveryConfig("r1", redis_url=server.url, dir=str(snap_dir))
        assert Snapshots(cfg, "portfolio", "ledger").save({"ledgers": {"BTC": 1}})
        server.stop()
        again = Snapshots(cfg, "portfolio", "ledger")
        assert again.load() == {"ledgers": {"BTC": 1}}
        stats = again.stats()
        assert (stats["unavailable"], stats["corrupt"]) == (1, 0)
        assert stats["problems"] == [f"Redis at {server.url}: connection refused"]
        assert again.save({"ledgers": {"BTC": 2}}) and again.fallbacks == 1  # to the file store, fsync'ed
        assert Snapshots(cfg, "portfolio", "ledger").load() == {"ledgers": {"BTC": 2}}


def test_actor_snapshots_count_corruption_apart_from_outages(snap_dir: Path) -> None:
    from arbitrage_lite.actors.recovery import RecoveryConfig, Snapshots

    cfg = RecoveryConfig(_uid(), env=_uid(), redis_url=REDIS_URL, dir=str(snap_dir))
    snaps = Snapshots(cfg, "risk", "coordinator")
    store = RedisSnapshotStore(REDIS_URL, cfg.env, cfg.run_id)
    key = snapshot_key(cfg.env, cfg.run_id, "risk", "coordinator")
    try:
        assert snaps.save({"n": 1}) and snaps.save({"n": 2})
        store.client.hset(key, "2", b"ALSNAP1\ngarbage")
        assert snaps.load() == {"n": 2}  # the file store's copy of seq 2 is intact
        assert (snaps.corrupt, snaps.unavailable) == (1, 0)
        assert snaps.problems[-1].startswith("redis snapshot risk/coordinator seq 2: undecodable")
        store.client.delete(key)
        store.client.rpush(key, b"x")
        assert snaps.load() == {"n": 2} and (snaps.corrupt, snaps.unavailable) == (2, 0)
        assert snaps.save({"n": 3}) and snaps.fallbacks == 1  # Redis refused the key: the file store took it
        assert (snaps.corrupt, snaps.unavailable) == (3, 0)
        assert snaps.load() == {"n": 3}
    finally:
        store.client.delete(key, snapshot_key(cfg.env, cfg.run_id, RUN_DOMAIN, "marker", "last_ns"))


def test_a_run_can_be_found_to_resume_while_redis_is_down(snap_dir: Path) -> None:
    from arbitrage_lite.actors.recovery import RecoveryConfig, Snapshots, known_runs

    with ThrowawayRedis() as server:
        cfg = RecoveryConfig("r1", redis_url=server.url, dir=str(snap_dir))
        Snapshots(cfg, "route", "BTC").save({"n": 1})
        assert known_runs(cfg) == ["r1"]
        server.stop()
        assert known_runs(cfg) == ["r1"]  # the file store's copy says so (before: "snapshot store unavailable")
