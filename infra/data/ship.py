"""A store shipped to the nodes of a Ray cluster through its object store, for nodes that do not share the disk.

On a ``ray up`` cluster, a tune trial or a backtest task runs where the scheduler puts it, and reads the store
there. Either the store is on shared storage at the same path on every node, or the driver ships it: the store
is packed once (a tar of its Parquet series and manifest; no recordings, no event caches) and put in the object
store; a task on the driver's node reads the original path, a task on any other node unpacks the package once
per node into a folder named by its digest and reads that. Unpacking is guarded by a lock file, so the trials
that start together on a node unpack it once.

Large stores (the L2 universe is tens of GB) are not shipped: above ``SHIP_LIMIT_BYTES`` the driver refuses
and says to use shared storage.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import UserError

SHIP_LIMIT_BYTES = 2 * 1024**3
SKIPPED = ("_recording", "_event_cache")  # written by runs, not needed to read the store
MODES = ("auto", "always", "never")
COMPLETE = ".complete"


@dataclass(frozen=True)
class ShippedStore:
    """What a task needs to find the store on its node: the driver's path and node, the package's digest
    and its object ref."""

    path: str
    driver_node: str
    digest: str
    size: int
    ref: Any


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and not any(part in SKIPPED
                                                                          for part in p.relative_to(root).parts))


def pack_store(root: Path, limit: int = SHIP_LIMIT_BYTES) -> tuple[bytes, str]:
    """The store's files as an uncompressed tar (Parquet is compressed already) and its SHA-256."""
    root = Path(root)
    files = _files(root)
    if not files:
        raise UserError(f"store {root} has no files to ship")
    total = sum(p.stat().st_size for p in files)
    if total > limit:
        raise UserError(f"store {root} is {total / 1e9:.1f} GB, too large to ship through Ray's object store "
                        f"(limit {limit / 1e9:.1f} GB): put it on shared storage at the same path on every node "
                        "and run with --ship-store never")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for p in files:
            info = tar.gettarinfo(str(p), arcname=str(p.relative_to(root)))
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""  # same store, same digest
            with p.open("rb") as fh:
                tar.addfile(info, fh)
    data = buf.getvalue()
    return data, hashlib.sha256(data).hexdigest()


def ship_store(root: Path) -> ShippedStore:
    """Pack ``root`` and put it in the object store of the running Ray (the driver's side)."""
    import ray

    data, digest = pack_store(root)
    return ShippedStore(str(Path(root).resolve()), ray.get_runtime_context().get_node_id(), digest, len(data),
                        ray.put(data))


def should_ship(mode: str, nodes: int) -> bool:
    """``auto`` ships when the cluster has more than one node alive (a one-node cluster shares the disk)."""
    if mode not in MODES:
        raise UserError(f"--ship-store must be one of {MODES}, got {mode!r}")
    return mode == "always" or (mode == "auto" and nodes > 1)


def store_for_tasks(store: Path | str, mode: str) -> Path | ShippedStore:
    """The store as Ray tasks get it: its path, or shipped (``should_ship`` on the running cluster)."""
    from ..ray_runtime import ensure_ray

    ray = ensure_ray()
    alive = sum(1 for n in ray.nodes() if n.get("Alive"))
    return ship_store(Path(store)) if should_ship(mode, alive) else Path(store)


def ships_dir() -> Path:
    return Path(os.environ.get("ARBITRAGE_LITE_SHIPPED_STORES", Path(tempfile.gettempdir()) / "arbitrage-lite-stores"))


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def unpack(data: bytes, digest: str, into: Path) -> Path:
    """Unpack a package once into ``into/<digest>`` (checked against its digest); returns that folder."""
    dest = Path(into) / digest
    if (dest / COMPLETE).exists():
        return dest
    with _locked(Path(into) / f"{digest}.lock"):
        if (dest / COMPLETE).exists():  # another task on this node unpacked it meanwhile
            return dest
        if hashlib.sha256(data).hexdigest() != digest:
            raise RuntimeError(f"shipped store {digest[:12]} arrived damaged (digest differs)")
        tmp = Path(into) / f"{digest}.part"
        shutil.rmtree(tmp, ignore_errors=True)
        with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
            tar.extractall(tmp, filter="data")
        shutil.rmtree(dest, ignore_errors=True)
        tmp.rename(dest)
        (dest / COMPLETE).touch()
    return dest


def local_store(store: Path | str | ShippedStore) -> Path:
    """The store's folder on the node this task runs on (the task's side)."""
    if not isinstance(store, ShippedStore):
        return Path(store)
    import ray

    if ray.get_runtime_context().get_node_id() == store.driver_node and Path(store.path).is_dir():
        return Path(store.path)
    dest = ships_dir() / store.digest
    if (dest / COMPLETE).exists():
        return dest
    return unpack(ray.get(store.ref), store.digest, ships_dir())
