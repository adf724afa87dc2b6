"""A store shipped to nodes that do not share the disk (infra.data.ship): packed once, unpacked once per node,
checked against its digest; recordings and event caches stay behind; too large a store is refused."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import Any

import pytest

from arbitrage_lite.errors import UserError
from arbitrage_lite.infra.data.ship import COMPLETE, local_store, pack_store, should_ship, unpack


def _store(root: Path) -> Path:
    (root / "bars" / "upbit").mkdir(parents=True)
    (root / "bars" / "upbit" / "BTC-KRW.parquet").write_bytes(b"PAR1" + bytes(range(256)) * 40)
    (root / "manifest.json").write_text('{"series": 1}')
    (root / "_recording" / "x").mkdir(parents=True)
    (root / "_recording" / "x" / "seg.parquet").write_bytes(b"partial")
    (root / "_event_cache").mkdir()
    (root / "_event_cache" / "BTC.arrow").write_bytes(b"cache")
    return root


def test_a_store_unpacks_to_the_same_files_without_recordings_or_caches(tmp_path: Path) -> None:
    src = _store(tmp_path / "src")
    data, digest = pack_store(src)
    assert pack_store(src) == (data, digest)  # the same store, the same package (mtimes and owners left out)
    dest = unpack(data, digest, tmp_path / "node")
    assert dest == tmp_path / "node" / digest and (dest / COMPLETE).exists()
    got = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file() and p.name != COMPLETE)
    assert got == ["bars/upbit/BTC-KRW.parquet", "manifest.json"]
    assert (dest / "bars/upbit/BTC-KRW.parquet").read_bytes() == (src / "bars/upbit/BTC-KRW.parquet").read_bytes()


def test_trials_starting_together_on_a_node_unpack_once(tmp_path: Path) -> None:
    data, digest = pack_store(_store(tmp_path / "src"))
    results: list[Path] = []
    threads = [threading.Thread(target=lambda: results.append(unpack(data, digest, tmp_path / "node")))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1 and sorted(p.name for p in (tmp_path / "node").iterdir()) == \
        sorted([digest, f"{digest}.lock"])


def test_a_damaged_package_and_an_oversized_store_are_refused(tmp_path: Path) -> None:
    src = _store(tmp_path / "src")
    data, digest = pack_store(src)
    with pytest.raises(RuntimeError, match="damaged"):
        unpack(data[:-1] + b"x", digest, tmp_path / "node")
    assert not (tmp_path / "node" / digest).exists()
    with pytest.raises(UserError, match="shared storage"):
        pack_store(src, limit=100)
    with pytest.raises(UserError, match="no files"):
        pack_store(tmp_path / "empty")


def test_auto_ships_only_to_a_cluster_of_several_nodes() -> None:
    assert not should_ship("auto", 1) and should_ship("auto", 2)
    assert should_ship("always", 1) and not should_ship("never", 3)
    with pytest.raises(UserError):
        should_ship("sometimes", 2)


@pytest.mark.ray
def test_a_task_off_the_drivers_node_replays_its_shipped_copy_the_same(ray_session: Any, sample_stores: dict[str, Path],
                                                                      tmp_path: Path) -> None:
    """The task side under Ray: a shipped store whose driver node is another one is unpacked and read, and a
    route replayed from the copy trades exactly as from the original."""
    from arbitrage_lite.core.config import EngineConfig
    from arbitrage_lite.infra.data.ship import ship_store
    from arbitrage_lite.scenarios.backtest import _run_one_route_task, run_one_route

    ray = ray_session
    shipped = dataclasses.replace(ship_store(sample_stores["btc"]), driver_node="another-node")
    env = {"env_vars": {"ARBITRAGE_LITE_SHIPPED_STORES": str(tmp_path / "node")}}
    where = ray.get(ray.remote(local_store).options(runtime_env=env).remote(shipped))
    assert where == tmp_path / "node" / shipped.digest
    cfg = EngineConfig()
    got = ray.get(ray.remote(_run_one_route_task).options(runtime_env=env).remote(shipped, "BTC", cfg, None, None))
    want = run_one_route(sample_stores["btc"], "BTC", cfg, None, None)
    assert got.real.fills == want.real.fills and len(want.real.fills) > 0
    assert got.real.trips == want.real.trips and got.real.counters == want.real.counters
