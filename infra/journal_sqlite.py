"""Embedded journal backend: stdlib sqlite3 on one dedicated thread (aiosqlite is not a dependency).

The default when no database is configured (``journal.make_backend``). Same table, keys and query
semantics as PostgreSQL (``infra/migrations/NNNN_*.sqlite.sql``); WAL mode, ``synchronous=FULL``: a
committed batch survives a power loss, as a PostgreSQL commit does.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from .journal import JournalRecord, Kind
from .migrations import load, pending

T = TypeVar("T")
_COLS = "kind, key, run_id, route, ts_venue, ts_local, payload"
_INSERT = ("INSERT INTO journal (run_id, kind, key, route, client_id, ts_venue, ts_local, payload) "
           "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, kind, key) DO NOTHING")
# an intent stays while its order has no terminal event (the same rule as PostgreSQL's purge function)
_OPEN_INTENT = """i.kind = 'intent' AND NOT EXISTS (
    SELECT 1 FROM journal o
    WHERE o.client_id = i.client_id AND o.run_id = i.run_id AND o.kind = 'order_event'
      AND json_extract(o.payload, '$.terminal') = 1)"""


def _statements(sql: str) -> list[str]:
    """Split a script into complete statements (executescript would commit our transaction)."""
    out, buf = [], ""
    for line in sql.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    if buf.strip() and not all(s.strip().startswith("--") for s in buf.strip().splitlines()):
        raise ValueError(f"incomplete SQL statement at the end of a migration: {buf.strip()[:80]!r}")
    return out


def migrate(conn: sqlite3.Connection) -> list[int]:
    """Apply the pending SQLite migrations in one IMMEDIATE transaction (concurrent openers serialize)."""
    conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                 "checksum TEXT NOT NULL, applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))")
    conn.execute("BEGIN IMMEDIATE")
    try:
        applied = dict(conn.execute("SELECT version, checksum FROM schema_migrations").fetchall())
        done = []
        for m in pending(applied, load("sqlite")):
            for statement in _statements(m.sql):
                conn.execute(statement)
            conn.execute("INSERT INTO schema_migrations (version, name, checksum) VALUES (?, ?, ?)",
                         (m.version, m.name, m.checksum))
            done.append(m.version)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return done


def _record(row: tuple[Any, ...]) -> JournalRecord:
    kind, key, run_id, route, ts_venue, ts_local, payload = row
    return JournalRecord(Kind(kind), key, run_id, route, ts_venue, ts_local, json.loads(payload))


def _set_wal(conn: sqlite3.Connection, timeout_s: float) -> None:
    """Switch to WAL. Two processes opening a new file at once can get "database is locked" at once (the busy
    handler does not cover this switch): try again until the busy timeout."""
    deadline = time.monotonic() + timeout_s
    delay = 0.005
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)


class SqliteJournal:
    """The journal in one SQLite file (``":memory:"`` works too, for one process)."""

    def __init__(self, path: str | Path = "journal.sqlite3", *, busy_timeout: float = 10.0) -> None:
        self.path, self.busy_timeout = str(path), busy_timeout
        self.where = f"SQLite at {self.path}"
        self._conn: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None

    async def open(self) -> None:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="journal-sqlite")
        await self._call(self._open)

    def _open(self) -> None:
        if self._conn is not None:
            return
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
        _set_wal(conn, self.busy_timeout)
        conn.execute("PRAGMA synchronous=FULL")
        migrate(conn)
        self._conn = conn

    async def close(self) -> None:
        if self._executor is None:
            return
        await self._call(self._close)
        self._executor.shutdown(wait=True)
        self._executor = None

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run on the connection's own thread (sqlite3 connections stay on the thread that made them)."""
        if self._executor is None:
            await self.open()
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _db(self) -> sqlite3.Connection:
        self._open()
        assert self._conn is not None
        return self._conn

    async def write_batch(self, records: Sequence[JournalRecord]) -> int:
        rows = [(r.run_id, r.kind.value, r.key, r.route, r.client_id, r.ts_venue, r.ts_local, r.payload_json)
                for r in records]
        return await self._call(self._write, rows) if rows else 0

    def _write(self, rows: list[tuple[Any, ...]]) -> int:
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            inserted = db.executemany(_INSERT, rows).rowcount
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return inserted

    def _fetch(self, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        return self._db().execute(sql, args).fetchall()

    async def records(self, run_id: str, kind: Kind | str | None = None, route: str | None = None,
                      since_ns: int | None = None) -> list[JournalRecord]:
        sql, args = f"SELECT {_COLS} FROM journal WHERE run_id = ?", list[Any]([run_id])
        if since_ns is not None:
            sql, args = sql + " AND ts_local >= ?", [*args, since_ns]
        if kind is not None:
            sql, args = sql + " AND kind = ?", [*args, Kind(kind).value]
        if route is not None:
            sql, args = sql + " AND route = ?", [*args, route]
        rows = await self._call(self._fetch, sql + " ORDER BY ts_local, id", tuple(args))
        return [_record(r) for r in rows]

    async def counts(self, run_id: str) -> dict[Kind, int]:
        rows = await self._call(self._fetch, "SELECT kind, count(*) FROM journal WHERE run_id = ? GROUP BY kind",
                                (run_id,))
        return {Kind(k): n for k, n in rows}

    async def intents_without_outcome(self, run_id: str) -> list[JournalRecord]:
        rows = await self._call(self._fetch, f"SELECT {_COLS} FROM journal i WHERE i.run_id = ? AND {_OPEN_INTENT} "
                                "ORDER BY i.ts_local, i.id", (run_id,))
        return [_record(r) for r in rows]

    async def purge_older_than(self, run_id: str | None, before_ns: int) -> int:
        """Delete rows with ts_local < ``before_ns`` (one run, or all with None), keeping open intents."""
        return await self._call(self._purge, run_id, before_ns)

    def _purge(self, run_id: str | None, before_ns: int) -> int:
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            deleted = db.execute(f"DELETE FROM journal AS i WHERE i.ts_local < ? AND (? IS NULL OR i.run_id = ?) "
                                 f"AND NOT ({_OPEN_INTENT})", (before_ns, run_id, run_id)).rowcount
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return deleted

    async def applied_migrations(self) -> list[int]:
        rows = await self._call(self._fetch, "SELECT version FROM schema_migrations ORDER BY version", ())
        return [v for (v,) in rows]
