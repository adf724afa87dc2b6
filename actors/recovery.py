"""What every restartable actor shares: where its snapshots go, how it finds its peers after a restart,
and how it tells a first start from a restart.

Restarting a dead or hung actor's process is Ray's mechanism (``max_restarts``; the constructor runs again
with the same arguments); what is restarted, when, and when to give up is the supervisor's decision
(supervision/). What comes back is the actor's own job: it loads its newest good snapshot here and asks its
senders to resend what came after it. Every receiver drops a message it already has (SequencedInbox), every
side effect is keyed (client order ids, fill ids, trip ids, verdict keys), so a resend or a retried call
never counts twice.
"""

from __future__ import annotations

import os
import socket
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loguru import logger

from ..core.alerts import SNAPSHOT_CORRUPT
from ..infra.snapshot_codec import pack_blob
from ..infra.snapshots import (
    FileSnapshotStore,
    RedisSnapshotStore,
    SnapshotCorrupt,
    SnapshotError,
    SnapshotUnavailable,
)

SNAPSHOT_VERSION = 2  # 2: route snapshots keep their unapplied buffers (a version-1 one is skipped)
REDIS_RETRY_S = 1.0
# Ray options of every restartable actor: the supervisor bounds restarts (its intensity), so Ray's are
# unbounded; calls in flight when an actor dies are retried on its next incarnation (receivers dedupe).
RESTARTABLE: dict[str, Any] = {"max_restarts": -1, "max_task_retries": -1}


@dataclass(frozen=True)
class RecoveryConfig:
    """Where a run's snapshots live and whether its actors start from them.

    ``redis_url`` None: the embedded file store under ``dir`` only. With Redis, a save that Redis refuses
    (down, timeout) goes to the file store instead, so a snapshot is never skipped; a load takes the newest
    good snapshot of the two.
    """

    run_id: str
    env: str = "paper"
    redis_url: str | None = None
    dir: str = "snapshots"
    resume: bool = False  # restore at the first start too (``--resume``), not only after a restart

    def actor_name(self, role: str) -> str:
        """The Ray name of a run's actor (``{run}:{role}``): how a restarted actor finds its peers."""
        return f"{self.run_id}:{role}"


def restarted() -> bool:
    """True in an actor's second and later incarnations (False outside an actor: a test driving one as a
    plain object)."""
    import ray

    if not ray.is_initialized() or (actor := ray.get_runtime_context().get_actor_id()) is None:
        return False
    if actor not in _RESTARTED:  # asked once per incarnation: the answer is a query of the GCS's actor table,
        # and health pings ask it (the supervisor's, every 50 ms per child): uncached, a loaded machine's pings
        # kept a feed's event loop busy answering them, so it stopped feeding
        _RESTARTED[actor] = bool(ray.get_runtime_context().was_current_actor_reconstructed)
    return _RESTARTED[actor]


_RESTARTED: dict[str, bool] = {}  # actor id -> whether this incarnation is a restart


def _process_start() -> float | None:
    """When this process started (Linux /proc), to split a restart's time into its parts."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        btime = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                     if line.startswith("btime"))
        return btime + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


_PROCESS_START = _process_start()
_IMPORTED_AT = time.time()  # this module is among the first an actor's class brings in
_READY_AT: float | None = None


def mark_ready() -> None:
    """Called at the end of a restartable actor's constructor: restored, compiled code loaded, ready."""
    global _READY_AT
    _READY_AT = time.time()


def incarnation() -> dict[str, Any]:
    """What a health ping returns: who answers (pid), whether it is a restarted incarnation, and when its
    process started / imported the package / finished its constructor (time.time(), s)."""
    return {"pid": os.getpid(), "host": socket.gethostname(), "restarted": restarted(), "at": time.time(),
            "process_start": _PROCESS_START,
            "imported_at": _IMPORTED_AT, "ready_at": _READY_AT, "snapshot_outcomes": snapshot_outcomes()}


SENDERS = {"fx": "fx", "upbit": "feed:upbit", "binance": "feed:binance"}  # a subscriber's source -> its sender


def ask_for_resend(cfg: RecoveryConfig, subscriber: str, from_seqs: dict[str, int]) -> list[Any]:
    """A restored subscriber (a route, or a route host by its key) asks every sender of its windows -- both
    market feeds and the FX aggregator -- for everything from that source's own inbox position on (one
    position for all would ask a sender for windows the subscriber holds, which the FX aggregator may no
    longer keep). Returns the calls' refs: a sender that cannot resend raises there, and the subscriber must
    say so (it would wait forever)."""
    return [Named(cfg.actor_name(role)).resend.remote(subscriber, from_seqs[source])
            for source, role in SENDERS.items()]


def process_gone(pid: int, host: str | None) -> bool:
    """True when process ``pid`` of this machine has exited (or is a zombie); False when it runs, is stopped,
    or lives on another machine (nothing to tell from here)."""
    if host != socket.gethostname():
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


async def ping(handle: Any, timeout: float) -> dict[str, Any] | None:
    """A health ping; None when the actor does not answer in time (dead, restarting, hung or busy)."""
    import asyncio

    try:
        return await asyncio.wait_for(handle.ping.remote(), timeout)
    except Exception:  # not answering is the answer, whatever Ray raised
        return None


_LIVE: weakref.WeakSet[Snapshots] = weakref.WeakSet()  # this process's snapshot savers (health pings sum them)


def snapshot_outcomes() -> dict[str, int]:
    """This process's snapshot saves by outcome: ok, fallback (Redis refused, the file store took it), failed.
    A refused save goes to the file store, so every failed save is one of the fallbacks when Redis is on."""
    out = {"ok": 0, "fallback": 0, "failed": 0}
    for s in list(_LIVE):
        fell = s.fallbacks - s.failed if s._redis is not None else 0
        out["ok"] += s.saved - fell
        out["fallback"] += fell
        out["failed"] += s.failed
    return out


class Snapshots:
    """One actor's snapshots (``domain``/``name``), saved to Redis with a file fallback. Never raises on save:
    trading must not stop because Redis did; ``saved``/``fallbacks``/``failed`` count what happened.

    Every snapshot Redis takes is also written to the file store (not fsync'ed: it must outlive this process,
    not the machine), so a restart while Redis is down finds the newest state: before, an actor killed after
    Redis went down and before its next save came back empty (a portfolio without its ledgers: "route BTC was
    never funded"). While Redis refuses, saves go to the file store, fsync'ed. A load takes the newest good
    snapshot of the two. Damaged snapshots are corruption, not an outage: counted (``corrupt``), alerted
    (rule ``snapshot_corrupt``, once per damage) and passed over for the next older good one."""

    def __init__(self, cfg: RecoveryConfig, domain: str, name: str) -> None:
        self.cfg, self.domain, self.name = cfg, domain, name
        self._redis = (RedisSnapshotStore(cfg.redis_url, cfg.env, cfg.run_id, timeout_s=0.5, retries=1)
                       if cfg.redis_url else None)
        self._redis_down_until = 0.0  # after a failed save, skip Redis this long: no stall per message
        self._file = FileSnapshotStore(cfg.dir, cfg.env, cfg.run_id)
        self._mirror = FileSnapshotStore(cfg.dir, cfg.env, cfg.run_id, fsync=False)
        _LIVE.add(self)
        self.saved = self.fallbacks = self.failed = self.corrupt = self.unavailable = 0
        self.loaded_from: str | None = None
        self.skipped: list[tuple[int, str]] = []
        self.problems: list[str] = []  # the last few outages and corruptions, each naming its store
        self._alerted: set[str] = set()

    def save(self, payload: dict[str, Any]) -> bool:
        packed = pack_blob(payload, SNAPSHOT_VERSION, time.time_ns())
        return self._save_with(lambda store: store.save_packed(self.domain, self.name, packed))

    def save_part(self, part: str, payload: dict[str, Any]) -> bool:
        """A part of a history that later snapshots refer to (``part`` unique: never overwritten), stored like
        a snapshot: to Redis and the file mirror, or to the file store while Redis refuses. False when no
        store took it (a snapshot must not refer to it then)."""
        packed = pack_blob(payload, SNAPSHOT_VERSION, time.time_ns())
        return self._save_with(lambda store: store.save_part(self.domain, self.name, part, packed))

    def load_parts(self) -> dict[str, dict[str, Any]]:
        """Every good part in either store, by id (ids are unique: a part found in both is the same)."""
        out: dict[str, dict[str, Any]] = {}
        stores: list[tuple[str, Any]] = [("file", self._file)]
        if self._redis is not None:
            stores.insert(0, ("redis", self._redis))
        for label, store in stores:
            try:
                parts = store.load_parts(self.domain, self.name)
            except SnapshotError as exc:
                self._problem(exc)
                logger.warning("snapshot parts {}/{}: {} unreadable ({})", self.domain, self.name, label, exc)
                continue
            for skip in store.last_skipped:
                self._corrupt(label, skip.seq, skip.reason)
            out = parts | out
        return out

    def _save_with(self, put: Callable[[Any], Any]) -> bool:
        if self._redis is not None and time.monotonic() >= self._redis_down_until:
            try:
                put(self._redis)
            except SnapshotError as exc:
                self._redis_down_until = time.monotonic() + REDIS_RETRY_S
                self.fallbacks += 1
                self._problem(exc)
                logger.warning("snapshot {}/{} to Redis failed ({}); writing the file fallback", self.domain,
                               self.name, exc)
            else:
                self.saved += 1
                self._write(self._mirror, put)
                return True
        elif self._redis is not None:
            self.fallbacks += 1
        if self._write(self._file, put):
            self.saved += 1
            return True
        self.failed += 1
        return False

    def _write(self, store: FileSnapshotStore, put: Callable[[Any], Any]) -> bool:
        try:
            put(store)
        except (OSError, SnapshotError) as exc:
            self._problem(exc)
            logger.error("snapshot {}/{} not written to {}: {}", self.domain, self.name, store.root, exc)
            return False
        return True

    def load(self, accept: Callable[[Any], str | None] | None = None) -> dict[str, Any] | None:
        """The newest good snapshot in either store (damaged ones skipped and reported, see ``skipped``; with
        ``accept``, also those it finds a problem with)."""
        best: tuple[int, str, dict[str, Any]] | None = None
        self.skipped = []
        stores: list[tuple[str, Any]] = [("file", self._file)]
        if self._redis is not None:
            stores.insert(0, ("redis", self._redis))
        for label, store in stores:
            try:
                snap = store.load(self.domain, self.name, accept=accept)
            except SnapshotError as exc:
                self._problem(exc)
                logger.warning("snapshot {}/{}: {} unreadable ({})", self.domain, self.name, label, exc)
                continue
            skips = store.last_skipped if snap is None else snap.skipped
            for skip in skips:
                if skip.corrupt:
                    self._corrupt(label, skip.seq, skip.reason)
            self.skipped += skips
            if snap is None:
                continue
            if not isinstance(snap.payload, dict) or snap.meta.version != SNAPSHOT_VERSION:
                self.skipped.append((snap.meta.seq, f"version {snap.meta.version}, expected {SNAPSHOT_VERSION}"))
                continue
            if best is None or snap.meta.created_ns > best[0]:
                best = (snap.meta.created_ns, label, snap.payload)
        if best is None:
            return None
        self.loaded_from = best[1]
        return best[2]

    def _problem(self, exc: BaseException) -> None:
        if isinstance(exc, SnapshotCorrupt):
            self._corrupt("redis", 0, str(exc))
            return
        self.unavailable += 1
        self.problems = [*self.problems[-4:], str(exc)]

    def _corrupt(self, store: str, seq: int, reason: str) -> None:
        """Damage is counted every time it is met, and alerted once per damaged snapshot."""
        self.corrupt += 1
        what = f"{store} snapshot {self.domain}/{self.name} seq {seq}: {reason}"
        self.problems = [*self.problems[-4:], what]
        if what in self._alerted:
            return
        self._alerted.add(what)
        logger.error("corrupt {}", what)
        try:
            import ray

            if ray.is_initialized():
                ray.get_actor(self.cfg.actor_name("alert")).raise_alert.remote(
                    SNAPSHOT_CORRUPT, f"{self.domain}:{self.name}", what, time.time_ns())
        except Exception as exc:  # no alert actor (a plain object in a test, or not started yet): logged above
            logger.debug("snapshot corruption not alerted: {!r}", exc)

    def stats(self) -> dict[str, Any]:
        return {"saved": self.saved, "fallbacks": self.fallbacks, "failed": self.failed,
                "loaded_from": self.loaded_from, "skipped": len(self.skipped), "corrupt": self.corrupt,
                "unavailable": self.unavailable, "problems": list(self.problems)}


def known_runs(cfg: RecoveryConfig) -> list[str]:
    """The runs of ``cfg.env`` with snapshots in Redis or in the file store beside it (which holds a copy of
    every snapshot ``Snapshots`` saved), so a run can be resumed while Redis is down. ``SnapshotUnavailable``
    (naming each store) only when neither can be read."""
    stores: list[RedisSnapshotStore | FileSnapshotStore] = [FileSnapshotStore(cfg.dir, cfg.env, cfg.run_id)]
    if cfg.redis_url:
        stores.insert(0, RedisSnapshotStore(cfg.redis_url, cfg.env, cfg.run_id, timeout_s=0.5, retries=1))
    runs: set[str] = set()
    down: list[str] = []
    for store in stores:
        try:
            runs.update(store.runs())
        except SnapshotUnavailable as exc:
            down.append(str(exc))
            logger.warning("runs: {}", exc)
    if len(down) == len(stores):
        raise SnapshotUnavailable("; ".join(down))
    return sorted(runs)


class Named:
    """A peer actor by its Ray name, looked up when first used (and again after it fails): lets actors that
    refer to each other in a circle be created in any order, and survives the peer's restarts."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._handle: Any = None

    def handle(self) -> Any:
        if self._handle is None:
            import ray

            deadline = time.monotonic() + 30.0
            while True:
                try:
                    self._handle = ray.get_actor(self.name)
                    break
                except ValueError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.01)
        return self._handle

    def __getattr__(self, method: str) -> Any:
        if method.startswith("_"):
            raise AttributeError(method)
        return getattr(self.handle(), method)

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (Named, (self.name,))
