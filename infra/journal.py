"""The journal: order intents (written before the order is sent), order events, fills, two-leg trade
transitions, risk verdicts, PnL snapshots and alerts, as idempotent records (see docs/journal.md).

``JournalWriter.submit`` never waits: records go to a bounded buffer that a background task writes in batches.
Under pressure (buffer full, or an overflow file not yet drained) records are appended to an on-disk overflow
file (JSONL) and written after it, in order; nothing is dropped unless a caller marks a kind low priority. Every
row is keyed by (run_id, kind, key) and inserted with ``ON CONFLICT DO NOTHING``, so retrying or replaying
a batch never doubles a row. Backends: ``journal_pg.PostgresJournal`` and ``journal_sqlite.SqliteJournal``
(the embedded default, ``make_backend``).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

from .journal_intents import IntentLog
from .journal_records import (  # the records (infra/journal_records.py), re-exported: callers import them here
    JournalRecord as JournalRecord,
)
from .journal_records import Kind as Kind
from .journal_records import alert_record as alert_record
from .journal_records import fill_event_record as fill_event_record
from .journal_records import fill_record as fill_record
from .journal_records import intent_record as intent_record
from .journal_records import order_event_record as order_event_record
from .journal_records import plain as plain
from .journal_records import pnl_snapshot_record as pnl_snapshot_record
from .journal_records import risk_verdict_record as risk_verdict_record
from .journal_records import trade_transition_record as trade_transition_record

T = TypeVar("T")
# Kinds a writer may drop under backpressure instead of spilling them. None by default: every record the
# engine journals (PnL snapshots included) survives an outage; a caller with a high-rate kind can opt in.
LOW_PRIORITY: frozenset[Kind] = frozenset()


# backends -------------------------------------------------------------------------------------------------


class JournalBackend(Protocol):
    """What the writer and the reports need from a store. ``open`` connects and migrates (idempotent).
    ``where`` names the service in errors (``PostgreSQL at 127.0.0.1:5432/test``), without credentials."""

    where: str

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def write_batch(self, records: Sequence[JournalRecord]) -> int:
        """Insert in order, skipping (run_id, kind, key) already present; returns the rows inserted."""
        ...
    async def records(self, run_id: str, kind: Kind | str | None = None, route: str | None = None,
                      since_ns: int | None = None) -> list[JournalRecord]:
        """``since_ns``: only rows with ts_local >= it (a reader that comes back reads what is new)."""
        ...
    async def counts(self, run_id: str) -> dict[Kind, int]: ...
    async def intents_without_outcome(self, run_id: str) -> list[JournalRecord]: ...
    async def purge_older_than(self, run_id: str | None, before_ns: int) -> int: ...
    async def applied_migrations(self) -> list[int]: ...


def make_backend(dsn: str | None = None, *, sqlite_path: str | Path = "journal.sqlite3",
                 schema: str = "public") -> JournalBackend:
    """PostgreSQL when a DSN is given (or ``ARBITRAGE_LITE_JOURNAL_DSN`` is set), else embedded SQLite."""
    dsn = dsn or os.environ.get("ARBITRAGE_LITE_JOURNAL_DSN")
    if dsn:
        from .journal_pg import PostgresJournal
        return PostgresJournal(dsn, schema=schema)
    from .journal_sqlite import SqliteJournal
    return SqliteJournal(sqlite_path)


# the writer -----------------------------------------------------------------------------------------------


class JournalUnavailable(RuntimeError):
    """An intent could be written neither to the backend nor to the overflow file (do not send the order),
    or the backend cannot answer a query. The message names the service that failed."""


def where(backend: object) -> str:
    """The service a backend talks to, for error messages."""
    return str(getattr(backend, "where", type(backend).__name__))


def describe_error(exc: BaseException) -> str:
    """A short reason for a failed call: ``connection refused``, ``timed out``, else the error itself."""
    text = str(exc)
    if isinstance(exc, ConnectionRefusedError) or "connection refused" in text.lower() or "[errno 111]" in text.lower():
        return "connection refused"
    if isinstance(exc, TimeoutError) or "timed out" in text.lower():
        return "timed out"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@dataclass(frozen=True, slots=True)
class JournalStats:
    submitted: int
    written: int  # records the backend acknowledged (replays included)
    duplicates: int  # of those, rows already present (idempotent replays and retries)
    pending: int  # buffered + in the overflow file, not yet acknowledged
    buffered: int
    spilled: int  # records sent to the overflow file so far
    dropped: int  # low-priority records refused under backpressure
    retries: int  # failed backend writes (each is retried)
    intents_fsynced: int  # intents made durable in the overflow file
    intents_logged: int  # intents made durable in the intent log (``intent_log``)
    corrupt: int  # unreadable overflow lines skipped (a torn last line after a crash)
    adopted: int  # lines taken over from other writers' overflow files (``adopt``)
    backend_ok: bool
    last_error: str | None


class _Overflow:
    """The append-only JSONL overflow file. Writes, fsyncs and truncation run in order on one worker thread:
    the event loop never waits on the disk (an ext4 write can stall behind a journal commit for 100s of ms).
    ``lines`` counts the lines appended and not yet written to the backend (the loop thread's view)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        created = not path.exists()
        self.path, self._fd = path, os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            raise RuntimeError(f"overflow file {path} is used by another journal writer") from None
        if created:
            _fsync_dir(path.parent)
        self.lines, self.torn = _recover(path)
        self._size, self._rfd = os.fstat(self._fd).st_size, os.open(path, os.O_RDONLY)
        self._lock, self._queue, self._scheduled = threading.Lock(), list[bytes](), False
        self.error: OSError | None = None
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="journal-overflow")
        self._pool.submit(int)  # start the thread now, not on the first spill

    def append(self, line: bytes) -> None:
        with self._lock:
            self._queue.append(line)
            schedule, self._scheduled = not self._scheduled, True
        self.lines += 1
        if schedule:
            self._pool.submit(self.write_queued)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn`` on the worker, after every append made so far."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def write_queued(self) -> None:
        with self._lock:
            data, self._queue, self._scheduled = self._queue, [], False
        if not data:
            return
        try:
            view = memoryview(b"".join(data))
            while view:
                view = view[os.write(self._fd, view):]
            self._size, self.error = self._size + sum(map(len, data)), None
        except OSError as exc:  # cut what got through (no torn line mid-file), keep the lines for the next try
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._size)
            with self._lock:
                self._queue[:0] = data
            self.error = exc

    def sync(self) -> None:
        """(worker) Everything appended so far is on disk and fsync'ed, or OSError."""
        self.write_queued()
        if self._queue or self.error:
            raise self.error or OSError("overflow lines not written")
        os.fsync(self._fd)

    def truncate_if_drained(self, read_at: int) -> bool:
        """(worker) Empty the file if the backend has everything in it; lines appended meanwhile are queued
        behind this job, so they land after the cut."""
        with self._lock:
            if self._queue or self._size != read_at:
                return False
        os.ftruncate(self._fd, 0)  # a crash before this only replays (idempotent keys)
        self._size = 0
        return True

    def read(self, offset: int, max_lines: int) -> tuple[list[bytes], int]:
        """Complete lines from ``offset`` (up to ``max_lines``) and the offset after them."""
        size, data = 1 << 20, b""
        while True:  # grow the read for a line longer than the chunk
            data = os.pread(self._rfd, size, offset)
            if b"\n" in data or len(data) < size:
                break
            size *= 4
        lines = data.split(b"\n")[:-1][:max_lines]
        return lines, offset + sum(len(x) + 1 for x in lines)

    def close(self, first: Iterable[bytes], read_at: int) -> int:
        """Finish the queued writes; when ``first`` has lines, rewrite the file as ``first`` + the unread lines
        (fsync'ed, swapped in atomically). Returns the lines put first."""
        self._pool.shutdown(wait=True)
        self.write_queued()
        head = b"".join(first)
        if head:
            tmp = self.path.with_name(self.path.name + ".tmp")
            with open(tmp, "wb") as out:
                out.write(head)
                while chunk := os.pread(self._rfd, 1 << 20, read_at):
                    out.write(chunk)
                    read_at += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
            _fsync_dir(self.path.parent)
        os.close(self._rfd)
        os.close(self._fd)
        return head.count(b"\n")


_Entry = tuple[JournalRecord, "asyncio.Future[bool] | None"]


class JournalWriter:
    """Batched, non-blocking, durable journal writer. Use it from one event loop; ``start`` it first."""

    def __init__(self, backend: JournalBackend, overflow_path: str | Path, *, buffer_size: int = 10_000,
                 batch_size: int = 500, flush_interval: float = 0.05, intent_timeout: float = 0.5,
                 retry_initial: float = 0.05, retry_max: float = 1.0, open_timeout: float = 5.0,
                 low_priority: frozenset[Kind] = LOW_PRIORITY, owns_backend: bool = False,
                 intent_log: str | Path | None = None, intent_log_inline: bool = False) -> None:
        if buffer_size < 1 or batch_size < 1:
            raise ValueError("buffer_size and batch_size must be >= 1")
        self.backend, self.overflow_path = backend, Path(overflow_path)
        self.buffer_size, self.batch_size, self.flush_interval = buffer_size, batch_size, flush_interval
        self.intent_timeout, self.retry_initial, self.retry_max = intent_timeout, retry_initial, retry_max
        self.open_timeout, self.low_priority, self.owns_backend = open_timeout, low_priority, owns_backend
        self._buf: deque[_Entry] = deque()
        self._ovf: _Overflow | None = None
        self._read_at = 0  # overflow bytes already in the backend
        self._task: asyncio.Task[None] | None = None
        self._wake, self._drained = asyncio.Event(), asyncio.Event()
        self._closed, self._backend_ok = False, True
        self._last_error: str | None = None
        self.intent_log_path = None if intent_log is None else Path(intent_log)
        self.intent_log_inline = intent_log_inline  # synced on the loop's thread (journal_intents.IntentLog)
        self._log: IntentLog | None = None  # intents durable here before their order leaves (journal_intents)
        self._cut_at = 0  # the log's append count when its cut was last asked for
        self._n = dict.fromkeys(("submitted", "written", "duplicates", "spilled", "dropped", "retries",
                                 "intents_fsynced", "intents_logged", "corrupt", "adopted"), 0)

    async def __aenter__(self) -> JournalWriter:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Lock and recover the overflow file (what a crash left there is written first), open the backend if
        it answers (if not, records wait and the writer retries), start the flusher."""
        if self._task is not None or self._closed:
            raise RuntimeError("a JournalWriter starts once")
        self._ovf = _Overflow(self.overflow_path)
        self._n["corrupt"] += self._ovf.torn
        try:
            await asyncio.wait_for(self.backend.open(), self.open_timeout)
        except Exception as exc:  # the backend may come back later: the flusher retries
            self._failed(exc)
        self._task = asyncio.create_task(self._run(), name="journal-writer")
        if self.intent_log_path is not None:  # what a crash left in the log first (into the overflow file, fsync'ed)
            if self.intent_log_path.exists() and await self.adopt(self.intent_log_path) < 0:
                raise RuntimeError(f"intent log {self.intent_log_path} is used by another journal writer")
            self._log = IntentLog(self.intent_log_path, inline=self.intent_log_inline)

    def submit(self, record: JournalRecord) -> bool:
        """Queue a record without waiting. False only for a low-priority record dropped under backpressure."""
        ovf = self._running()
        self._n["submitted"] += 1
        if ovf.lines or len(self._buf) >= self.buffer_size:  # overflowing: keep the order, go to the file
            if record.kind in self.low_priority:
                self._n["dropped"] += 1
                return False
            self._drained.clear()
            ovf.append(record.to_json().encode() + b"\n")
            self._n["spilled"] += 1
            return True
        self._drained.clear()
        self._buf.append((record, None))
        if len(self._buf) >= self.batch_size:
            self._wake.set()
        return True

    async def write_intent_before_send(self, record: JournalRecord) -> Literal["backend", "overflow", "log"]:
        """Return once the intent is durable. With an intent log: fdatasync'ed there ("log"; the backend gets
        it asynchronously). Else: in the backend, or (backend down or slower than ``intent_timeout``, or the
        overflow file not drained) fsync'ed in the overflow file. Raises ``JournalUnavailable`` when it could
        not be made durable: then do not send the order."""
        ovf = self._running()
        if record.kind is not Kind.INTENT:
            raise ValueError(f"write_intent_before_send takes intents, not {record.kind}")
        if self._log is not None:
            self.submit(record)  # to the backend in its turn, like any record
            try:
                await self._log.append(record.to_json().encode() + b"\n")
            except OSError as exc:
                raise JournalUnavailable(f"intent {record.key} is not durable: intent log {self._log.path}: "
                                         f"{exc!r}") from exc
            self._n["intents_logged"] += 1
            return "log"
        self._n["submitted"] += 1
        self._drained.clear()
        if self._backend_ok and not ovf.lines and len(self._buf) < self.buffer_size:
            done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
            self._buf.append((record, done))
            self._wake.set()
            with contextlib.suppress(TimeoutError):
                if await asyncio.wait_for(asyncio.shield(done), self.intent_timeout):
                    return "backend"
            # not acknowledged: the queued copy stays (same key: one row at most); the file copy is durable
        ovf.append(record.to_json().encode() + b"\n")
        self._n["spilled"] += 1
        try:
            await ovf.run(ovf.sync)
        except OSError as exc:
            raise JournalUnavailable(f"intent {record.key} is not durable: {where(self.backend)} "
                                     f"({self._last_error or 'slow'}) and overflow file {ovf.path}: {exc!r}") from exc
        self._n["intents_fsynced"] += 1
        return "overflow"

    async def flush(self, timeout: float | None = None) -> None:
        """Wait until everything submitted so far is in the backend (TimeoutError after ``timeout`` s)."""
        self._running()
        assert self._task is not None
        if self._task.done():  # the flusher died of a bug: say so rather than wait forever
            self._task.result()
        if self._pending():
            self._drained.clear()
            self._wake.set()
            await asyncio.wait_for(self._drained.wait(), timeout)

    async def close(self, timeout: float | None = 10.0) -> None:
        """Flush (up to ``timeout``) and stop. Whatever is still buffered is persisted to the overflow file
        (fsync), ahead of its unwritten lines, for the next writer on that file to write first."""
        if self._closed:
            return
        if self._task is not None:
            with contextlib.suppress(TimeoutError):
                await self.flush(timeout)
            self._closed = True
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._closed = True
        if self._ovf is not None:
            head = [r.to_json().encode() + b"\n" for r, _ in self._buf]
            moved = await asyncio.to_thread(self._ovf.close, head, self._read_at)
            self._n["spilled"] += moved
            self._ovf.lines += moved
        for _, done in self._buf:
            if done is not None and not done.done():
                done.set_result(False)
        self._buf.clear()
        if self._log is not None:  # its intents are in the backend or the overflow file (both replayed) by now
            self._log.cut_if(self._log.appended)
            await asyncio.to_thread(self._log.close)
        if self.owns_backend:
            await self.backend.close()

    def stats(self) -> JournalStats:
        return JournalStats(pending=self._pending(), buffered=len(self._buf), backend_ok=self._backend_ok,
                            last_error=self._last_error, **self._n)

    # ---- internals
    def _running(self) -> _Overflow:
        if self._task is None or self._closed or self._ovf is None:
            raise RuntimeError("the JournalWriter is not running (start it; do not use it after close)")
        return self._ovf

    def _pending(self) -> int:
        return len(self._buf) + (self._ovf.lines if self._ovf else 0)

    def _failed(self, exc: BaseException) -> None:
        self._backend_ok, self._last_error = False, f"{where(self.backend)}: {describe_error(exc)}"

    async def adopt(self, path: str | Path) -> int:
        """Take over another writer's overflow file (a run that crashed, or closed while its backend was
        down, and will not start again): its lines are appended to this writer's overflow file (fsync'ed),
        written to the backend after what is there, and the file is deleted. Keys are idempotent, so lines
        already in the backend are skipped there. A file a live writer holds is left alone: returns -1;
        else the lines taken."""
        ovf = self._running()
        other = Path(path)
        if other.resolve() == ovf.path.resolve():
            return 0
        taken = await ovf.run(_take_lines, other)
        if taken is None:
            return -1
        fd, lines = taken
        try:
            if lines:
                self._drained.clear()
                for line in lines:
                    ovf.append(line + b"\n")
                await ovf.run(ovf.sync)
                self._n["adopted"] += len(lines)
                self._wake.set()
            other.unlink()  # our copy is durable: a crash before this only replays (idempotent keys)
            _fsync_dir(other.parent)
        finally:
            os.close(fd)  # releases its lock
        return len(lines)

    async def _run(self) -> None:
        """Buffered records first (the overflow file only ever holds newer ones), then the overflow file."""
        assert self._ovf is not None
        ovf, delay = self._ovf, self.retry_initial
        while True:
            if self._buf:
                entries = list(islice(self._buf, 0, self.batch_size))
                records, end, lines = [r for r, _ in entries], 0, 0
            elif ovf.lines:
                try:
                    raw, end = ovf.read(self._read_at, self.batch_size)
                except OSError as exc:
                    self._last_error = f"overflow read failed: {exc!r}"
                    await asyncio.sleep(self.retry_max)
                    continue
                if not raw:  # appended, not on disk yet: wait for the worker (retrying if the disk fails)
                    await ovf.run(ovf.write_queued)
                    if ovf.error:
                        self._last_error = f"overflow write failed: {ovf.error!r}"
                        await asyncio.sleep(self.retry_max)
                    elif not ovf.read(self._read_at, 1)[0]:
                        ovf.lines = 0  # the count disagrees with the file: trust the file
                    continue
                records, lines = self._parse(raw), len(raw)
            else:
                self._drained.set()
                self._wake.clear()
                if self._log is not None and self._log.appended != self._cut_at:  # the backend has every intent
                    self._cut_at = self._log.appended
                    self._log.cut_if(self._cut_at)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.flush_interval)
                continue
            try:
                inserted = await self.backend.write_batch(records) if records else 0
            except Exception as exc:  # down, restarting, timed out: keep everything, retry in order
                self._failed(exc)
                self._n["retries"] += 1
                for _, done in islice(self._buf, 0, 0 if lines else len(records)):
                    if done is not None and not done.done():
                        done.set_result(False)  # the intent's caller falls back to the overflow file
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max)
                continue
            delay, self._backend_ok = self.retry_initial, True
            self._n["written"] += len(records)
            self._n["duplicates"] += len(records) - inserted
            if not lines:
                for _ in records:
                    _, done = self._buf.popleft()
                    if done is not None and not done.done():
                        done.set_result(True)
                continue
            self._read_at, ovf.lines = end, ovf.lines - lines
            if not ovf.lines and await ovf.run(ovf.truncate_if_drained, self._read_at):
                self._read_at = 0  # no line was appended meanwhile (if one was, ovf.lines says so)

    def _parse(self, raw: list[bytes]) -> list[JournalRecord]:
        records = []
        for line in raw:
            try:
                records.append(JournalRecord.from_json(line))
            except (ValueError, KeyError, TypeError) as exc:
                self._n["corrupt"] += 1
                self._last_error = f"corrupt overflow line skipped: {exc!r}"
        return records


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _take_lines(path: Path) -> tuple[int, list[bytes]] | None:
    """(locked fd, complete lines) of another writer's overflow file; None when a live writer holds it. A
    torn last line (a crash mid-append) is not taken."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    data = bytearray()
    while chunk := os.read(fd, 1 << 20):
        data += chunk
    return fd, [line for line in bytes(data).split(b"\n")[:-1] if line]


def _recover(path: Path) -> tuple[int, int]:
    """Count the overflow file's complete lines; cut a torn last line (a crash mid-append). -> (lines, torn)."""
    lines, size, last_nl = 0, 0, -1
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            lines += chunk.count(b"\n")
            nl = chunk.rfind(b"\n")
            if nl >= 0:
                last_nl = size + nl
            size += len(chunk)
    if size > last_nl + 1:
        os.truncate(path, last_nl + 1)
        return lines, 1
    return lines, 0
