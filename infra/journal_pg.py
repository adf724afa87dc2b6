"""PostgreSQL journal backend (asyncpg pool). Schema: ``infra/migrations/NNNN_*.sql``, applied by ``migrate``.

A batch is one ``INSERT ... SELECT FROM unnest(...) ON CONFLICT DO NOTHING`` statement: one round trip
like COPY, but idempotent (COPY cannot skip conflicting rows) and it reports how many rows were new.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from .journal import JournalRecord, Kind
from .migrations import load, pending

_SCHEMA = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_COLS = "kind, key, run_id, route, ts_venue, ts_local, payload::text AS payload"
_INSERT = """
INSERT INTO journal (run_id, kind, key, route, client_id, ts_venue, ts_local, payload)
SELECT r, k, y, ro, c, tv, tl, p::jsonb
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int8[], $7::int8[], $8::text[])
     WITH ORDINALITY AS t(r, k, y, ro, c, tv, tl, p, n)
ORDER BY n
ON CONFLICT (run_id, kind, key) DO NOTHING
"""
_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""


def _ident(schema: str) -> str:
    if not _SCHEMA.fullmatch(schema):
        raise ValueError(f"schema name must match {_SCHEMA.pattern}, got {schema!r}")
    return f'"{schema}"'


async def migrate(conn: asyncpg.Connection, schema: str = "public") -> list[int]:
    """Apply the pending migrations to ``schema`` (created if missing) in one transaction; returns the versions
    applied now. Concurrent migrators serialize on an advisory lock, so each version is applied once."""
    quoted = _ident(schema)
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"arbitrage_lite.journal:{schema}")
        if not await conn.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", schema):
            await conn.execute(f"CREATE SCHEMA {quoted}")
        await conn.execute(f"SET LOCAL search_path TO {quoted}")
        await conn.execute(_MIGRATIONS_TABLE)
        rows = await conn.fetch("SELECT version, checksum FROM schema_migrations")
        applied = {r["version"]: r["checksum"] for r in rows}
        done = []
        for m in pending(applied, load("postgres")):
            await conn.execute(m.sql)
            await conn.execute("INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                               m.version, m.name, m.checksum)
            done.append(m.version)
    return done


def _server(dsn: str) -> str:
    """``host:port/database`` of a DSN, without credentials (for error messages)."""
    parts = urlsplit(dsn)
    if parts.scheme.startswith("postgres"):
        return f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path}"
    fields = dict(kv.split("=", 1) for kv in dsn.split() if "=" in kv)  # key=value form
    return f"{fields.get('host', 'localhost')}:{fields.get('port', '5432')}/{fields.get('dbname', '')}"


def _record(row: Any) -> JournalRecord:
    return JournalRecord(Kind(row["kind"]), row["key"], row["run_id"], row["route"], row["ts_venue"],
                         row["ts_local"], json.loads(row["payload"]))


class PostgresJournal:
    """The journal in PostgreSQL schema ``schema`` (one schema per deployment, or per test)."""

    def __init__(self, dsn: str, *, schema: str = "public", min_size: int = 1, max_size: int = 4,
                 timeout: float = 10.0, connect_timeout: float = 3.0) -> None:
        _ident(schema)
        self.dsn, self.schema = dsn, schema
        self.where = f"PostgreSQL at {_server(dsn)}"
        self.min_size, self.max_size, self.timeout, self.connect_timeout = min_size, max_size, timeout, connect_timeout
        self._pool: asyncpg.Pool | None = None
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        """Create the pool and migrate; safe to call again (the writer calls it lazily while the server is down)."""
        async with self._lock:
            if self._pool is not None:
                return
            pool = await asyncpg.create_pool(
                self.dsn, min_size=self.min_size, max_size=self.max_size, timeout=self.connect_timeout,
                command_timeout=self.timeout,
                server_settings={"search_path": self.schema, "application_name": "arbitrage-lite-journal"})
            try:
                async with pool.acquire() as conn:
                    await migrate(conn, self.schema)
            except BaseException:
                pool.terminate()
                raise
            self._pool = pool

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), self.timeout)
            except (TimeoutError, OSError, asyncpg.PostgresError):
                pool.terminate()

    async def _ready(self) -> asyncpg.Pool:
        if self._pool is None:
            await self.open()
        assert self._pool is not None
        return self._pool

    async def write_batch(self, records: Sequence[JournalRecord]) -> int:
        if not records:
            return 0
        pool = await self._ready()
        status = await pool.execute(
            _INSERT, [r.run_id for r in records], [r.kind.value for r in records], [r.key for r in records],
            [r.route for r in records], [r.client_id for r in records], [r.ts_venue for r in records],
            [r.ts_local for r in records], [r.payload_json for r in records], timeout=self.timeout)
        return int(status.rsplit(" ", 1)[1])  # "INSERT 0 <rows>"

    async def records(self, run_id: str, kind: Kind | str | None = None, route: str | None = None,
                      since_ns: int | None = None) -> list[JournalRecord]:
        """A run's records (optionally one kind / one route / from ``since_ns`` on) by (ts_local, insertion)."""
        where, args = ["run_id = $1"], list[Any]([run_id])
        if since_ns is not None:
            args.append(since_ns)
            where.append(f"ts_local >= ${len(args)}")
        for column, value in (("kind", None if kind is None else Kind(kind).value), ("route", route)):
            if value is not None:
                args.append(value)
                where.append(f"{column} = ${len(args)}")
        pool = await self._ready()
        rows = await pool.fetch(f"SELECT {_COLS} FROM journal WHERE {' AND '.join(where)} ORDER BY ts_local, id",
                                *args)
        return [_record(r) for r in rows]

    async def counts(self, run_id: str) -> dict[Kind, int]:
        pool = await self._ready()
        rows = await pool.fetch("SELECT kind, count(*) AS n FROM journal WHERE run_id = $1 GROUP BY kind", run_id)
        return {Kind(r["kind"]): r["n"] for r in rows}

    async def intents_without_outcome(self, run_id: str) -> list[JournalRecord]:
        """Intents whose client id has no terminal order event: resolve them against the venue, never resend."""
        pool = await self._ready()
        rows = await pool.fetch(f"""
            SELECT {_COLS} FROM journal i
            WHERE i.run_id = $1 AND i.kind = 'intent' AND NOT EXISTS (
                SELECT 1 FROM journal o
                WHERE o.client_id = i.client_id AND o.run_id = i.run_id AND o.kind = 'order_event'
                  AND (o.payload ->> 'terminal')::boolean)
            ORDER BY i.ts_local, i.id""", run_id)
        return [_record(r) for r in rows]

    async def purge_older_than(self, run_id: str | None, before_ns: int) -> int:
        """Retention (``journal_purge_older_than``, migration 0002): open intents are kept."""
        pool = await self._ready()
        return int(await pool.fetchval("SELECT journal_purge_older_than($1, $2)", run_id, before_ns))

    async def applied_migrations(self) -> list[int]:
        pool = await self._ready()
        return [r["version"] for r in await pool.fetch("SELECT version FROM schema_migrations ORDER BY version")]
