"""The intent log: an order intent is durable, by ``write`` + ``fdatasync`` of one append-only file, before its
order is sent; the SQL journal gets the same record asynchronously (docs/journal.md, "Intent log").

Why: waiting for the backend's commit put a batch's worth of other records, the flusher's wake-up and the
SQLite thread's hand-offs in front of every order (2.2 ms at p50 on the 2-core machine, issue 13), where the
disk's own floor is one fdatasync (~0.16 ms here: benchmarks/fsync_cost.py). Group commit: intents that
arrive while a sync is running are written and synced together by the next one, right after it; nothing ever
waits for more intents to come (no batching window).

The log is only a safety copy. Every intent also goes to the writer's backend queue; once the writer is drained
(the backend has every record submitted so far) the log is cut to empty. A crash leaves in it the intents the
backend may lack: the next writer on the same file takes them over first (``JournalWriter.adopt``: into its
overflow file, then the backend; keys are idempotent, so the ones the backend had are skipped).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

INTENTS_SUFFIX = ".intents.jsonl"  # a run's intent log: ``{run_id}.intents.jsonl`` next to its overflow file


class IntentLog:
    """One append-only JSONL file, locked to one writer. ``append`` returns once the line is fdatasync'ed.
    Writes, syncs and the cut run in order on one worker thread; the event loop never waits on the disk."""

    def __init__(self, path: Path, *, inline: bool = False) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.inline = path, inline
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            raise RuntimeError(f"intent log {path} is used by another journal writer") from None
        dfd = os.open(path.parent, os.O_RDONLY)  # the file's name is durable before any intent relies on it
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
        self._lock = threading.Lock()
        self._queue: list[tuple[bytes, asyncio.Future[None]]] = []
        self._busy = False
        self._size = os.fstat(self._fd).st_size  # bytes written and synced (the worker's view)
        self.appended = 0  # lines ever appended (the loop thread's count; the cut compares it)
        self.syncs = self.lines_synced = self.cuts = 0
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="journal-intents")
        self._pool.submit(int)  # the thread starts now, not on the first order

    async def append(self, line: bytes) -> None:
        """Durable on return (OSError if the write or the sync failed: then the order must not be sent)."""
        if self.inline:  # on the caller's thread: no hand-off to the worker and back, but the loop waits on the disk
            with self._lock:
                self.appended += 1
                self._write_sync([line])
            return
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        with self._lock:
            self._queue.append((line, done))
            self.appended += 1
            start, self._busy = not self._busy, True
        if start:
            self._pool.submit(self._sync_all, loop)
        await done

    def _sync_all(self, loop: asyncio.AbstractEventLoop) -> None:
        """(worker) Write and sync what is queued, again while more came during the sync, then stop."""
        while True:
            with self._lock:
                batch, self._queue = self._queue, []
                if not batch:
                    self._busy = False
                    return
            error: OSError | None = None
            try:
                self._write_sync([line for line, _ in batch])
            except OSError as exc:
                error = exc
            loop.call_soon_threadsafe(_settle, [f for _, f in batch], error)

    def _write_sync(self, lines: list[bytes]) -> None:
        data = b"".join(lines)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view):]
            os.fdatasync(self._fd)
        except OSError:  # cut what got through: no torn line mid-file under the next intents
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._size)
            raise
        self._size += len(data)
        self.syncs += 1
        self.lines_synced += len(lines)

    def cut_if(self, appended: int) -> None:
        """Cut the log to empty if no line was appended since the count ``appended`` (whose lines the backend now
        has). Queued behind the writes, so every line counted is on disk before it is cut."""
        self._pool.submit(self._cut, appended)

    def _cut(self, appended: int) -> None:
        with self._lock:
            if self.appended != appended or self._queue:
                return
            os.ftruncate(self._fd, 0)  # a crash before this only replays (idempotent keys)
            self._size = 0
            self.cuts += 1

    def close(self) -> None:
        """Finish the queued work and close (the file stays: what is in it is replayed by the next writer)."""
        self._pool.shutdown(wait=True)
        os.close(self._fd)


def _settle(futures: list[asyncio.Future[None]], error: OSError | None) -> None:
    for f in futures:
        if not f.done():
            if error is None:
                f.set_result(None)
            else:
                f.set_exception(error)
