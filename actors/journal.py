"""JournalActor: one per run, an async Ray actor over ``infra.journal.JournalWriter`` (docs/journal.md).

The writer does the work: records are buffered and written in batches; with the backend down they wait (and
spill to the overflow file) and are written once it is back, each exactly once (keys are idempotent).

```python
journal = ray.remote(JournalActor).remote("out/run42/journal.overflow.jsonl", dsn)  # no DSN: embedded SQLite
await journal.start.remote()
where = await journal.write_intent.remote(intent)   # durable before the order leaves: "backend" / "overflow"
journal.submit.remote([fill, event])                # fire-and-forget
```

From inside another actor, ``JournalClient(handle)`` batches records locally and sends one ``submit`` call
per ``batch_size`` records (or per ``flush()``), never waiting on the journal.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path
from typing import Any

from loguru import logger

from ..infra.journal import (
    JournalRecord,
    JournalUnavailable,
    JournalWriter,
    Kind,
    describe_error,
    make_backend,
    where,
)
from ..infra.journal_intents import INTENTS_SUFFIX

OVERFLOW_SUFFIX = ".overflow.jsonl"  # a run's overflow file is ``{run_id}.overflow.jsonl`` in the journal directory


class JournalActor:
    """The run's journal. Methods are async: everything runs on the actor's one event loop, as the writer
    requires. ``writer_options`` go to ``JournalWriter`` (buffer_size, batch_size, intent_timeout, retry_max...)."""

    def __init__(self, overflow_path: str | Path, dsn: str | None = None, *,
                 sqlite_path: str | Path = "journal.sqlite3", schema: str = "public", **writer_options: Any) -> None:
        self._backend = make_backend(dsn, sqlite_path=sqlite_path, schema=schema)
        self._writer = JournalWriter(self._backend, overflow_path, owns_backend=True, **writer_options)
        self._overflow = Path(overflow_path)
        self._started = False
        self._watch: asyncio.Task[None] | None = None

    async def start(self) -> int:
        """Recover the overflow file and open the backend (if it is down, the writer retries in the background
        and writes everything the moment it answers). Other runs' overflow files in the same directory that no
        live writer holds (a run that died, or ended while the backend was down) are taken over and written
        too: nothing is left in a file that no one replays. Idempotent; returns the lines taken over."""
        if self._started:
            return 0
        await self._writer.start()
        self._started = True
        taken = 0
        if self._overflow.name.endswith(OVERFLOW_SUFFIX):  # other runs' overflow files and intent logs
            here = self._overflow.parent
            for other in sorted([*here.glob(f"*{OVERFLOW_SUFFIX}"), *here.glob(f"*{INTENTS_SUFFIX}")]):
                if other.name != self._overflow.name and (n := await self._writer.adopt(other)) > 0:
                    logger.info("journal: {} lines of {} taken over", n, other.name)
                    taken += n
        return taken

    async def write_intent(self, record: JournalRecord) -> str:
        """Return once the intent is durable: ``"backend"`` or ``"overflow"`` (fsync'ed). Raises
        ``JournalUnavailable`` when neither worked: then the order must not be sent."""
        return await self._writer.write_intent_before_send(record)

    async def submit(self, records: list[JournalRecord]) -> int:
        """Queue a batch without waiting on the backend; returns how many were accepted (low-priority records
        may be dropped under backpressure)."""
        return sum(self._writer.submit(r) for r in records)

    async def flush(self, timeout: float | None = None) -> bool:
        """True once everything submitted so far is in the backend; False after ``timeout`` seconds."""
        try:
            await self._writer.flush(timeout)
        except TimeoutError:
            return False
        return True

    async def stats(self) -> dict[str, Any]:
        """The writer's ``JournalStats`` as a dict (submitted, written, duplicates, pending, spilled, ...)."""
        return dataclasses.asdict(self._writer.stats())

    async def counts(self, run_id: str) -> dict[str, int]:
        """Rows per kind of ``run_id`` in the backend (``JournalUnavailable``, naming it, while it is down)."""
        try:
            return {kind.value: n for kind, n in (await self._backend.counts(run_id)).items()}
        except Exception as exc:
            raise JournalUnavailable(f"{where(self._backend)}: {describe_error(exc)}") from None

    async def records(self, run_id: str, kind: Kind | str | None = None,
                      since_ns: int | None = None) -> list[JournalRecord]:
        """The run's rows (optionally one kind, from ``since_ns`` on) in (ts_local, insertion) order; for
        tests, drills and reconciliation (which reads only what is new since its last pass)."""
        kind = None if kind is None else Kind(kind)  # a bad kind is the caller's error, not an outage
        try:
            return await self._backend.records(run_id, kind, since_ns=since_ns)
        except Exception as exc:
            raise JournalUnavailable(f"{where(self._backend)}: {describe_error(exc)}") from None

    async def watch_backend(self, alerts: Any, down_after_s: float = 5.0, every_s: float = 1.0) -> None:
        """Raise ``journal_down`` (P0) through ``alerts`` (an AlertActor handle) once the backend has failed
        for ``down_after_s``: records then only reach the overflow file, and nobody would know. Once per
        outage; a later outage raises again. Returns at once; the watch runs until ``close``."""
        if self._watch is None:
            self._watch = asyncio.create_task(self._watch_loop(alerts, down_after_s, every_s))

    async def _watch_loop(self, alerts: Any, down_after_s: float, every_s: float) -> None:
        down_since: float | None = None
        raised = False
        while True:
            st = self._writer.stats()
            now = time.monotonic()
            if st.backend_ok:
                down_since, raised = None, False
            elif down_since is None:
                down_since = now
            elif not raised and now - down_since >= down_after_s:
                raised = True
                alerts.raise_alert.remote("journal_down", "journal", f"journal backend failing for "
                                          f"{now - down_since:.0f} s, {st.pending} records waiting in the "
                                          f"overflow file: {st.last_error}", time.time_ns())
            await asyncio.sleep(every_s)

    async def close(self, timeout: float | None = 10.0) -> dict[str, Any]:
        """Flush up to ``timeout``, stop; what is still buffered goes to the overflow file. Final stats."""
        if self._watch is not None:
            self._watch.cancel()
        await self._writer.close(timeout)  # closes the backend too
        return dataclasses.asdict(self._writer.stats())


class JournalClient:
    """Journal from inside another actor without waiting: ``submit`` batches records here and sends one
    fire-and-forget ``JournalActor.submit`` call per ``batch_size`` records or per ``flush()``. Calls from one
    caller reach the actor in order, so ``write_intent`` (which sends the batch first) keeps the order."""

    def __init__(self, handle: Any, batch_size: int = 100) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.handle, self.batch_size = handle, batch_size
        self._batch: list[JournalRecord] = []
        self.sent_records = self.sent_calls = 0

    @property
    def pending(self) -> int:
        """Records batched here, not sent yet."""
        return len(self._batch)

    def submit(self, record: JournalRecord) -> None:
        self._batch.append(record)
        if len(self._batch) >= self.batch_size:
            self.flush()

    def flush(self) -> Any:
        """Send the batched records now (one call, not awaited). Returns the call's ref (None if nothing was
        batched): await it to learn how many the actor accepted."""
        if not self._batch:
            return None
        batch, self._batch = self._batch, []
        self.sent_records += len(batch)
        self.sent_calls += 1
        return self.handle.submit.remote(batch)

    async def write_intent(self, record: JournalRecord) -> str:
        """Send what is batched, then wait until the intent is durable (see ``JournalActor.write_intent``)."""
        self.flush()
        return str(await self.handle.write_intent.remote(record))
