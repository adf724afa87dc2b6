"""Snapshots of stateful actors, kept in Redis (or in files when no Redis is configured).

Keyspace ``arbitrage:{env}:{run}:{domain}:{name}:{field}``; every save is versioned (a sequence per key),
checksummed (sha256 of the encoded payload) and stamped with the caller's ``now_ns`` (the store reads no
clock). ``load`` returns the newest good snapshot and reports what it skipped. See docs/snapshots.md.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Protocol, cast
from urllib.parse import urlsplit

import redis
from loguru import logger
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from . import snapshot_codec
from .snapshot_codec import BlobError, pack_blob, unpack_blob

PREFIX = "arbitrage"
DEFAULT_TTL_S = 7 * 86_400
DEFAULT_KEEP = 5
SNAP_FIELD = "snap"  # per (domain, name): seq -> blob
PART_FIELD = "hist"  # per (domain, name): part id -> blob (parts of a history that later snapshots refer to)
RUN_DOMAIN, RUN_NAME, RUN_FIELD = "_run", "marker", "last_ns"  # per run: the newest created_ns saved in it
_PART = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}")

# reasons (the text before the first colon) that mean the stored data is damaged, not unreachable or old
CORRUPTION = ("undecodable", "truncated", "corrupt")


class Skip(NamedTuple):
    """A snapshot ``load`` passed over. ``seq`` 0: the key as a whole (e.g. a Redis key of the wrong type)."""

    seq: int
    reason: str

    @property
    def corrupt(self) -> bool:
        """Damaged data (to count and alert on), as opposed to ``stale``/``unreadable`` (gone, old)."""
        return self.reason.split(":", 1)[0] in CORRUPTION


class SnapshotError(Exception):
    """Base class of the snapshot store's errors."""


class SnapshotUnavailable(SnapshotError):
    """The backing store cannot be reached or written (Redis down, disk error): buffer and retry later."""


class SnapshotCorrupt(SnapshotError):
    """What the store holds is damaged (a Redis key of the wrong type, a file where a directory belongs):
    not an outage. The message starts with ``corrupt:`` and names the key."""


def check_part(kind: str, value: str) -> str:
    """``value`` if it is a safe key part (ASCII letters, digits, ``_ - .``; no colon, space, slash, leading dot)."""
    if not isinstance(value, str) or _PART.fullmatch(value) is None:
        raise ValueError(f"{kind} must match {_PART.pattern}, got {value!r}")
    return value


class SnapshotKey(NamedTuple):
    env: str
    run: str
    domain: str
    name: str
    field: str


def snapshot_key(env: str, run: str, domain: str, name: str, field: str = SNAP_FIELD) -> str:
    """``arbitrage:{env}:{run}:{domain}:{name}:{field}``; ``ValueError`` on an unsafe part."""
    parts = SnapshotKey(env, run, domain, name, field)
    for kind, value in zip(SnapshotKey._fields, parts, strict=True):
        check_part(kind, value)
    return ":".join((PREFIX, *parts))


def parse_key(key: str | bytes) -> SnapshotKey:
    """The parts of a key ``snapshot_key`` built; ``ValueError`` on anything else."""
    text = key.decode() if isinstance(key, bytes) else key
    parts = text.split(":")
    if len(parts) != 6 or parts[0] != PREFIX:
        raise ValueError(f"not a {PREFIX}:{{env}}:{{run}}:{{domain}}:{{name}}:{{field}} key: {text!r}")
    snapshot_key(*parts[1:])  # validates every part
    return SnapshotKey(*parts[1:])


@dataclass(frozen=True, slots=True)
class SnapshotMeta:
    """One stored snapshot. When ``problem`` is set (``history`` of a bad one) only ``seq`` holds."""

    env: str
    run: str
    domain: str
    name: str
    seq: int
    version: int  # the payload's schema version, given by the caller
    created_ns: int  # given by the caller
    sha256: str  # hex digest of the encoded payload
    size: int  # encoded payload bytes
    encoding: str  # "bytes" | "codec"
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class Snapshot:
    meta: SnapshotMeta
    payload: bytes | dict[str, Any]
    skipped: list[Skip] = field(default_factory=list)  # newer snapshots passed over, newest first


class SnapshotStore(Protocol):
    env: str
    run: str
    last_skipped: list[Skip]

    def save(self, domain: str, name: str, payload: bytes | dict[str, Any], version: int, *,
             now_ns: int) -> SnapshotMeta: ...
    def load(self, domain: str, name: str, *, now_ns: int | None = None, max_age_ns: int | None = None,
             accept: Callable[[Any], str | None] | None = None) -> Snapshot | None: ...
    def history(self, domain: str, name: str) -> list[SnapshotMeta]: ...
    def runs(self) -> list[str]: ...
    def latest_run(self) -> str | None: ...


class _BaseStore(ABC):
    """Save/load/fallback logic over a backend that stores blobs by (domain, name, seq)."""

    def __init__(self, env: str, run: str, keep: int, ttl_s: int) -> None:
        self.env, self.run = check_part("env", env), check_part("run", run)
        if keep < 1 or ttl_s < 1:
            raise ValueError(f"keep and ttl_s must be >= 1, got {keep}, {ttl_s}")
        self.keep, self.ttl_s = keep, ttl_s
        self.last_skipped: list[Skip] = []
        self.marker_problems: dict[str, str] = {}  # run -> why its marker is corrupt (see ``runs``)

    def save(self, domain: str, name: str, payload: bytes | dict[str, Any], version: int, *,
             now_ns: int) -> SnapshotMeta:
        """Store a new snapshot; older ones beyond ``keep`` are dropped. ``SnapshotUnavailable`` if unreachable."""
        self._key(domain, name)
        for kind, n in (("version", version), ("now_ns", now_ns)):
            if type(n) is not int or n < 0:
                raise ValueError(f"{kind} must be an int >= 0, got {n!r}")
        return self.save_packed(domain, name, pack_blob(payload, version, now_ns))

    def save_packed(self, domain: str, name: str, packed: tuple[bytes, dict[str, Any]]) -> SnapshotMeta:
        """``save`` of a blob ``pack_blob`` made: one encoding for several stores (actors/recovery.py)."""
        blob, head = packed
        seq = self._put(domain, name, blob, head["created_ns"])
        return self._meta(domain, name, seq, head)

    def load(self, domain: str, name: str, *, now_ns: int | None = None, max_age_ns: int | None = None,
             accept: Callable[[Any], str | None] | None = None) -> Snapshot | None:
        """The newest good snapshot, or None. Corrupt ones, with ``max_age_ns`` those created more than that
        before ``now_ns``, and those ``accept`` finds a problem with (it returns why) are skipped; the skips are
        in ``Snapshot.skipped`` and ``self.last_skipped``."""
        if (now_ns is None) != (max_age_ns is None):
            raise ValueError("now_ns and max_age_ns go together")
        self._key(domain, name)
        skipped: list[Skip] = []
        self.last_skipped = skipped
        try:
            seqs = self._seqs(domain, name)
        except SnapshotCorrupt as bad:
            skipped.append(Skip(0, str(bad)))
            logger.warning("snapshot {} unusable: {}", self._key(domain, name), bad)
            return None
        for seq in seqs:
            try:
                head, payload = self._read(domain, name, seq)
                if now_ns is not None and max_age_ns is not None and now_ns - head["created_ns"] > max_age_ns:
                    raise BlobError(f"stale: created {now_ns - head['created_ns']} ns before now > {max_age_ns} ns")
                why = accept(payload) if accept is not None else None
                if why is not None:
                    raise BlobError(f"unusable: {why}")
            except BlobError as bad:
                skipped.append(Skip(seq, str(bad)))
                logger.warning("snapshot {} seq {} skipped: {}", self._key(domain, name), seq, bad)
                continue
            return Snapshot(self._meta(domain, name, seq, head), payload, list(skipped))
        return None

    def history(self, domain: str, name: str) -> list[SnapshotMeta]:
        """Every retained snapshot, newest first; those ``load`` would skip as unusable have ``problem`` set."""
        out = []
        try:
            seqs = self._seqs(domain, name)
        except SnapshotCorrupt as bad:
            return [SnapshotMeta(self.env, self.run, domain, name, 0, 0, 0, "", 0, "", str(bad))]
        for seq in seqs:
            try:
                out.append(self._meta(domain, name, seq, self._read(domain, name, seq)[0]))
            except BlobError as bad:
                out.append(SnapshotMeta(self.env, self.run, domain, name, seq, 0, 0, "", 0, "", str(bad)))
        return out

    def latest_run(self) -> str | None:
        """The run (of this env) holding the newest ``created_ns``; ties go to the greater run id. A run whose
        marker is corrupt cannot be dated: it ranks below every other (see ``marker_problems``)."""
        marks = self._markers()
        return max(marks, key=lambda r: (marks[r], r)) if marks else None

    def runs(self) -> list[str]:
        """The runs of this env that still have snapshots, sorted. A run whose marker is corrupt is listed
        all the same (its snapshots are intact), and ``marker_problems[run]`` says what is wrong."""
        return sorted(self._markers())

    def _marker_value(self, run: str, key: str, value: bytes | None) -> int:
        """The created_ns a marker holds; -1 (and the problem recorded, logged) when it is not 20 digits."""
        if value is not None and len(value) == 20 and value.isdigit():
            return int(value)
        self._marker_problem(run, f"corrupt: run marker {key} holds {value!r}, not a 20-digit created_ns")
        return -1

    def _marker_problem(self, run: str, problem: str) -> None:
        self.marker_problems[run] = problem
        logger.warning("snapshot run {}: {}", run, problem)

    def _key(self, domain: str, name: str, field: str = SNAP_FIELD) -> str:
        if domain == RUN_DOMAIN:
            raise ValueError(f"domain {RUN_DOMAIN!r} is reserved")
        return snapshot_key(self.env, self.run, domain, name, field)

    def _meta(self, domain: str, name: str, seq: int, head: dict[str, Any]) -> SnapshotMeta:
        return SnapshotMeta(self.env, self.run, domain, name, seq, head["version"], head["created_ns"],
                            head["sha256"], head["size"], head["encoding"])

    def save_part(self, domain: str, name: str, part: str, packed: tuple[bytes, dict[str, Any]]) -> None:
        """Store a part (a blob ``pack_blob`` made) under its own id, beside the snapshots: never trimmed by
        ``keep`` (snapshots that refer to it may be kept for long), gone with the run (TTL, ``expire_runs``).
        The caller makes ids unique, so a part is never overwritten. ``SnapshotUnavailable`` if unreachable."""
        self._key(domain, name, PART_FIELD)
        self._put_part(domain, name, check_part("part", part), packed[0])

    def load_parts(self, domain: str, name: str) -> dict[str, dict[str, Any]]:
        """Every good part of (domain, name) by id (bytes payloads too); damaged ones are left out and listed
        in ``last_skipped`` (seq 0). ``SnapshotUnavailable``/``SnapshotCorrupt`` when they cannot be listed."""
        self._key(domain, name, PART_FIELD)
        out: dict[str, Any] = {}
        self.last_skipped = []
        for part, blob in self._parts(domain, name).items():
            try:
                out[part] = self._decoded(blob)[1]
            except BlobError as bad:
                self.last_skipped.append(Skip(0, f"{bad} (part {part})"))
        return out

    def _read(self, domain: str, name: str, seq: int) -> tuple[dict[str, Any], bytes | dict[str, Any]]:
        """(header, payload) of a usable snapshot; ``BlobError`` (the reason) otherwise."""
        return self._decoded(self._get(domain, name, seq))

    @staticmethod
    def _decoded(blob: bytes) -> tuple[dict[str, Any], bytes | dict[str, Any]]:
        head, data = unpack_blob(blob)
        if head["encoding"] == "bytes":
            return head, data
        try:
            obj = snapshot_codec.decode(data)
        except snapshot_codec.CodecError as exc:
            raise BlobError(f"undecodable: {exc}") from exc
        if not isinstance(obj, dict):
            raise BlobError(f"undecodable: payload is a {type(obj).__name__}, not a dict")
        return head, obj

    # the backend: blobs by (domain, name, seq), and the run markers
    @abstractmethod
    def _put(self, domain: str, name: str, blob: bytes, created_ns: int) -> int: ...  # the new seq
    @abstractmethod
    def _seqs(self, domain: str, name: str) -> list[int]: ...  # retained, newest first
    @abstractmethod
    def _get(self, domain: str, name: str, seq: int) -> bytes: ...  # BlobError when it cannot be read
    @abstractmethod
    def _markers(self) -> dict[str, int]: ...  # run -> newest created_ns, for every run of this env
    @abstractmethod
    def _put_part(self, domain: str, name: str, part: str, blob: bytes) -> None: ...
    @abstractmethod
    def _parts(self, domain: str, name: str) -> dict[str, bytes]: ...  # part id -> blob


# KEYS: snap hash, run marker. ARGV: blob, keep, ttl_s, created_ns zero-padded to 20 digits (compared as text).
# Returns {seq, 1 if the marker was corrupt else 0, what a corrupt marker held}: the marker is derived data (the newest
# created_ns), so a save rewrites a corrupt one; a snap key of the wrong type is refused (WRONGTYPE).
_SAVE_LUA = """
local t = redis.call('TYPE', KEYS[1])['ok']
if t ~= 'hash' and t ~= 'none' then
  return redis.error_reply('WRONGTYPE ' .. KEYS[1] .. ' holds a ' .. t .. ', not a hash')
end
local seqs = {}
for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
  local n = tonumber(f)
  if n then seqs[#seqs + 1] = n end
end
table.sort(seqs)
local seq = (seqs[#seqs] or 0) + 1
redis.call('HSET', KEYS[1], string.format('%d', seq), ARGV[1])
for i = 1, #seqs + 1 - tonumber(ARGV[2]) do redis.call('HDEL', KEYS[1], string.format('%d', seqs[i])) end
local mt = redis.call('TYPE', KEYS[2])['ok']
local cur = false
local fixed, bad = 0, ''
if mt == 'string' then cur = redis.call('GET', KEYS[2]) end
if mt ~= 'none' and not (cur and #cur == 20 and string.match(cur, '^%d+$')) then
  fixed, bad = 1, cur or ('a ' .. mt)
  redis.call('DEL', KEYS[2])
  cur = false
end
if (not cur) or cur < ARGV[4] then redis.call('SET', KEYS[2], ARGV[4]) end
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[3])
return {seq, fixed, bad}
"""


class RedisSnapshotStore(_BaseStore):
    """Snapshots in a Redis hash per (domain, name): field = seq, value = blob. A save is one atomic script."""

    def __init__(self, url: str, env: str, run: str, *, keep: int = DEFAULT_KEEP, ttl_s: int = DEFAULT_TTL_S,
                 timeout_s: float = 2.0, retries: int = 2) -> None:
        super().__init__(env, run, keep, ttl_s)
        parts = urlsplit(url)
        self._where = f"{parts.scheme}://{parts.hostname}:{parts.port or 6379}{parts.path}"  # no credentials
        self.client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
                                           retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries))
        self._save_script = self.client.register_script(_SAVE_LUA)

    @contextmanager
    def _errors(self, key: str = "", expected: str = "hash") -> Iterator[None]:
        """Redis errors as the store's: a key of the wrong type is corruption (``SnapshotCorrupt``, naming the
        key and what it holds), anything else an outage (``SnapshotUnavailable``, naming the server)."""
        try:
            yield
        except redis.ResponseError as exc:
            if not str(exc).startswith("WRONGTYPE"):
                raise SnapshotUnavailable(f"Redis at {self._where}: {_describe(exc)}") from exc
            raise SnapshotCorrupt(self._wrong_type(key, expected, exc)) from exc
        except redis.RedisError as exc:
            raise SnapshotUnavailable(f"Redis at {self._where}: {_describe(exc)}") from exc

    def _wrong_type(self, key: str, expected: str, exc: redis.ResponseError) -> str:
        text = str(exc)
        if " holds a " in text:  # the save script named key and type itself
            return f"corrupt: Redis key {text.split(' ', 1)[1].split(' script:')[0]}"
        try:
            held = cast(bytes, self.client.type(key)).decode()
        except redis.RedisError:
            held = "value of another type"
        return f"corrupt: Redis key {key} holds a {held}, not a {expected}"

    def _put(self, domain: str, name: str, blob: bytes, created_ns: int) -> int:
        keys = [self._key(domain, name), snapshot_key(self.env, self.run, RUN_DOMAIN, RUN_NAME, RUN_FIELD)]
        with self._errors(keys[0]):
            seq, fixed, bad = self._save_script(keys=keys, args=[blob, self.keep, self.ttl_s, f"{created_ns:020d}"])
        if fixed:
            self._marker_problem(self.run, f"corrupt: run marker {keys[1]} held {bad!r}, rewritten by a save")
        return int(seq)

    def _seqs(self, domain: str, name: str) -> list[int]:
        key = self._key(domain, name)
        with self._errors(key):
            fields = cast(list[bytes], self.client.hkeys(key))
        junk = [f for f in fields if not f.isdigit()]
        if junk:  # only this store writes these hashes: a field that is no sequence number is damage
            raise SnapshotCorrupt(f"corrupt: Redis key {key} has fields that are not sequence numbers: {junk[:3]!r}")
        return sorted((int(f) for f in fields), reverse=True)

    def _get(self, domain: str, name: str, seq: int) -> bytes:
        key = self._key(domain, name)
        try:
            with self._errors(key):
                blob = cast(bytes | None, self.client.hget(key, str(seq)))
        except SnapshotCorrupt as exc:  # the key changed type while loading
            raise BlobError(str(exc)) from exc
        if blob is None:
            raise BlobError("unreadable: gone (trimmed or expired while loading)")
        return blob

    def _put_part(self, domain: str, name: str, part: str, blob: bytes) -> None:
        key = self._key(domain, name, PART_FIELD)
        with self._errors(key):
            pipe = self.client.pipeline(transaction=True)
            pipe.hset(key, part, blob)
            pipe.expire(key, self.ttl_s)
            pipe.execute()

    def _parts(self, domain: str, name: str) -> dict[str, bytes]:
        key = self._key(domain, name, PART_FIELD)
        with self._errors(key):
            got = cast(dict[bytes, bytes], self.client.hgetall(key))  # one round trip for the whole history
        return {k.decode(): v for k, v in got.items()}

    def _markers(self) -> dict[str, int]:
        pattern = f"{PREFIX}:{self.env}:*:{RUN_DOMAIN}:{RUN_NAME}:{RUN_FIELD}"  # parts hold no glob characters
        out = {}
        with self._errors():
            keys = list(cast(Iterator[bytes], self.client.scan_iter(match=pattern, count=1000)))
        for key in keys:
            try:
                run = parse_key(key).run
            except ValueError:  # a key the glob matched that is not ours (e.g. an extra colon)
                continue
            text = key.decode()
            try:
                with self._errors(text, "string"):
                    value = cast(bytes | None, self.client.get(key))
            except SnapshotCorrupt as exc:
                self._marker_problem(run, str(exc))
                out[run] = -1
                continue
            out[run] = self._marker_value(run, text, value)
        return out


class FileSnapshotStore(_BaseStore):
    """Snapshots as files: the key's parts are directories, each snapshot ``{seq:012d}.snap``, written
    atomically (temp file, fsync, rename). One writer per (domain, name). No automatic TTL: call
    ``expire_runs(now_ns)`` (e.g. at start-up) to delete runs idle for longer than ``ttl_s``."""

    def __init__(self, dir: str | os.PathLike[str], env: str, run: str, *, keep: int = DEFAULT_KEEP,
                 ttl_s: int = DEFAULT_TTL_S, fsync: bool = True) -> None:
        """``fsync`` False: a save survives this process dying, not the machine (a mirror of Redis)."""
        super().__init__(env, run, keep, ttl_s)
        self.root = Path(dir) / PREFIX / self.env
        self.fsync = fsync

    def _dir(self, domain: str, name: str) -> Path:
        self._key(domain, name)  # validates the parts
        return self.root / self.run / domain / name / SNAP_FIELD

    def _marker(self, run: str) -> Path:
        return self.root / run / RUN_DOMAIN / RUN_NAME / RUN_FIELD

    def _put(self, domain: str, name: str, blob: bytes, created_ns: int) -> int:
        d = self._dir(domain, name)
        try:
            d.mkdir(parents=True, exist_ok=True)
            seqs = self._seqs(domain, name)
            seq = (seqs[0] if seqs else 0) + 1
            _atomic_write(d / f"{seq:012d}.snap", blob, self.fsync)
            for old in [seq, *seqs][self.keep:]:
                (d / f"{old:012d}.snap").unlink(missing_ok=True)
            marker = self._marker(self.run)
            marker.parent.mkdir(parents=True, exist_ok=True)
            last = marker.read_bytes() if marker.is_file() else None
            if last is not None and not (len(last) == 20 and last.isdigit()):
                self._marker_problem(self.run, f"corrupt: run marker {marker} held {last!r}, rewritten by a save")
            if last is None or not last.isdigit() or int(last) < created_ns:
                _atomic_write(marker, f"{created_ns:020d}".encode(), self.fsync)
        except OSError as exc:
            raise SnapshotUnavailable(f"snapshot directory {self.root} unusable: {exc}") from exc
        return seq

    def _seqs(self, domain: str, name: str) -> list[int]:
        d = self._dir(domain, name)
        try:
            names = os.listdir(d)
        except FileNotFoundError:
            return []
        except NotADirectoryError as exc:
            if d.is_file():
                raise SnapshotCorrupt(f"corrupt: {d} is a file, not the directory of snapshots") from exc
            raise SnapshotUnavailable(f"cannot list {d}: {exc}") from exc
        except OSError as exc:
            raise SnapshotUnavailable(f"cannot list {d}: {exc}") from exc
        return sorted((int(n[:-5]) for n in names if n.endswith(".snap") and n[:-5].isdigit()), reverse=True)

    def _put_part(self, domain: str, name: str, part: str, blob: bytes) -> None:
        d = self._dir(domain, name).parent / PART_FIELD
        try:
            d.mkdir(parents=True, exist_ok=True)
            _atomic_write(d / f"{part}.part", blob, self.fsync)
        except OSError as exc:
            raise SnapshotUnavailable(f"snapshot directory {self.root} unusable: {exc}") from exc

    def _parts(self, domain: str, name: str) -> dict[str, bytes]:
        d = self._dir(domain, name).parent / PART_FIELD
        out = {}
        try:
            names = os.listdir(d) if d.is_dir() else []
            for n in names:
                if n.endswith(".part") and not n.startswith("."):
                    out[n[:-5]] = (d / n).read_bytes()
        except OSError as exc:
            raise SnapshotUnavailable(f"cannot read the parts in {d}: {exc}") from exc
        return out

    def _get(self, domain: str, name: str, seq: int) -> bytes:
        path = self._dir(domain, name) / f"{seq:012d}.snap"
        try:
            return path.read_bytes()
        except IsADirectoryError as exc:
            raise BlobError(f"corrupt: {path} is a directory, not a snapshot") from exc
        except OSError as exc:
            raise BlobError(f"unreadable: {exc}") from exc

    def _markers(self) -> dict[str, int]:
        out = {}
        try:
            for run in os.listdir(self.root) if self.root.is_dir() else []:
                marker = self._marker(run)
                if not _PART.fullmatch(run) or not marker.exists():
                    continue
                if marker.is_dir():
                    self._marker_problem(run, f"corrupt: run marker {marker} is a directory")
                    out[run] = -1
                else:
                    out[run] = self._marker_value(run, str(marker), marker.read_bytes())
        except OSError as exc:
            raise SnapshotUnavailable(f"cannot read runs under {self.root}: {exc}") from exc
        return out

    def expire_runs(self, now_ns: int) -> list[str]:
        """Delete the runs (never this one) whose newest snapshot was created more than ``ttl_s`` before
        ``now_ns``; returns them."""
        cutoff = now_ns - self.ttl_s * 1_000_000_000
        old = sorted(r for r, last in self._markers().items() if r != self.run and 0 <= last < cutoff)
        for run in old:
            shutil.rmtree(self.root / run, ignore_errors=True)
        return old


def _describe(exc: BaseException) -> str:
    """A short reason for an outage: ``connection refused``, ``timed out``, else the error itself."""
    text = str(exc)
    if "refused" in text.lower() or isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, redis.TimeoutError | TimeoutError) or "timed out" in text.lower():
        return "timed out"
    return f"{type(exc).__name__}: {text}"


def _atomic_write(path: Path, data: bytes, fsync: bool = True) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if not fsync:
        return
    dir_fd = os.open(path.parent, os.O_RDONLY)  # make the rename itself durable
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def open_store(env: str, run: str, *, redis_url: str | None = None, dir: str | os.PathLike[str] = "snapshots",
               keep: int = DEFAULT_KEEP, ttl_s: int = DEFAULT_TTL_S) -> RedisSnapshotStore | FileSnapshotStore:
    """Redis when a URL is configured, else the embedded file store under ``dir``."""
    if redis_url:
        return RedisSnapshotStore(redis_url, env, run, keep=keep, ttl_s=ttl_s)
    return FileSnapshotStore(dir, env, run, keep=keep, ttl_s=ttl_s)
