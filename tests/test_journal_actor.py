"""JournalActor (actors/journal.py) in Ray, against the shared PostgreSQL, the embedded SQLite, and a throwaway
PostgreSQL stopped in the middle of a run: nothing lost, nothing doubled, intents durable before they return."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import ray

from arbitrage_lite.actors.journal import JournalActor, JournalClient
from arbitrage_lite.core.domain import Side, Venue
from arbitrage_lite.core.order_fsm import Order
from arbitrage_lite.infra.journal import JournalRecord, Kind, intent_record
from arbitrage_lite.infra.throwaway import ThrowawayPostgres

pytestmark = [pytest.mark.ray, pytest.mark.timeout(120)]
D = Decimal
Spawn = Callable[..., Any]


def fill(run: str, i: int) -> JournalRecord:
    return JournalRecord(Kind.FILL, f"upbit:t{i}", run, "BTC", 1_000 + i, i,
                         {"client_id": f"al-{i}-BTC-u", "price": D("95000000.5"), "qty": D("0.00012345")})


def intent(run: str, i: int) -> JournalRecord:
    order = Order(f"al-ja-{i}-BTC-u", Venue.UPBIT, "BTC-KRW", Side.BUY, D("0.0001"), limit_price=D("95000000"))
    return intent_record(run, "BTC", order, 10_000 + i, trade_id=f"tr{i}")


async def wait_for(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        await asyncio.sleep(0.02)


async def rows_per_kind(dsn: str, schema: str, run: str) -> dict[str, tuple[int, int]]:
    """Straight from the table, not through the backend: kind -> (rows, distinct keys)."""
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        rows = await conn.fetch(f'SELECT kind, count(*) AS n, count(DISTINCT key) AS k FROM "{schema}".journal '
                                "WHERE run_id = $1 GROUP BY kind", run)
    finally:
        await conn.close()
    return {r["kind"]: (r["n"], r["k"]) for r in rows}


@pytest.fixture
def spawn(ray_session: object, tmp_path: Path) -> Iterator[Spawn]:
    """Start JournalActors (each with its own overflow file under tmp_path); killed after the test."""
    handles: list[Any] = []

    def make(dsn: str | None = None, **options: Any) -> Any:
        handle = ray.remote(JournalActor).remote(str(tmp_path / f"overflow-{len(handles)}.jsonl"), dsn,
                                                 sqlite_path=str(tmp_path / "journal.sqlite3"), **options)
        handles.append(handle)
        return handle
    yield make
    for handle in handles:
        ray.kill(handle)


@pytest.fixture
def pg(throwaway_pg: ThrowawayPostgres) -> Iterator[ThrowawayPostgres]:
    """The module's throwaway cluster, running at the start of the test and again after it."""
    if not throwaway_pg.running:
        throwaway_pg.start()
    yield throwaway_pg
    if not throwaway_pg.running:
        throwaway_pg.start()


@pytest.fixture(params=["postgres", "sqlite"])
def store(request: pytest.FixtureRequest) -> Iterator[tuple[str | None, str]]:
    """(dsn, schema): a fresh schema in the shared PostgreSQL, or the embedded SQLite (no DSN)."""
    if request.param == "sqlite":
        yield None, "public"
        return
    dsn, schema = request.getfixturevalue("pg_dsn"), f"ja_{uuid.uuid4().hex[:12]}"
    yield dsn, schema

    async def drop() -> None:
        conn = await asyncpg.connect(dsn)
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()
    asyncio.run(drop())


def test_actor_journals_intents_and_fills(spawn: Spawn, store: tuple[str | None, str]) -> None:
    """Intents are in the store when write_intent returns; fills batched by a JournalClient (and some sent twice)
    are all there once after flush, read back exactly."""
    dsn, schema = store
    run, fills, intents = "ja1", [fill("ja1", i) for i in range(120)], [intent("ja1", i) for i in range(3)]

    async def body() -> None:
        journal = spawn(dsn, schema=schema)
        await journal.start.remote()
        client = JournalClient(journal, batch_size=50)
        for i, rec in enumerate(intents):
            assert await client.write_intent(rec) == "backend"
            assert await journal.counts.remote(run) == {"intent": i + 1}  # no flush needed: already written
        for rec in fills:
            client.submit(rec)
        assert (client.sent_calls, client.sent_records, client.pending) == (2, 100, 20)
        assert await client.flush() == 20 and client.flush() is None
        assert await journal.submit.remote(fills[:10]) == 10  # again: skipped by key
        assert await journal.flush.remote(10)
        assert await journal.counts.remote(run) == {"intent": 3, "fill": 120}
        assert await journal.records.remote(run, "fill") == fills
        assert await journal.records.remote(run, Kind.INTENT) == intents
        if dsn is not None:
            assert await rows_per_kind(dsn, schema, run) == {"intent": (3, 3), "fill": (120, 120)}
        stats = await journal.close.remote()
        assert (stats["submitted"], stats["pending"], stats["duplicates"], stats["spilled"]) == (133, 0, 10, 0)
    asyncio.run(body())


def test_records_survive_a_postgres_outage_exactly_once(spawn: Spawn, pg: ThrowawayPostgres) -> None:
    """Server stopped after a first part; submits keep returning at once while it is down (the buffer spills to
    the overflow file); after the restart every record is in the table exactly once, resubmitted ones too."""
    run, schema, n = "outage", "outage", 800
    fills = [fill(run, i) for i in range(n)]

    async def body() -> None:
        journal = spawn(pg.dsn, schema=schema, buffer_size=100, batch_size=50, retry_max=0.1)
        await journal.start.remote()
        for i in range(0, 200, 50):
            assert await journal.submit.remote(fills[i:i + 50]) == 50
        assert await journal.submit.remote(fills[:20]) == 20  # twice on purpose, server up
        assert await journal.flush.remote(10)
        await asyncio.to_thread(pg.stop)

        slowest = 0.0
        for part in [*(fills[i:i + 50] for i in range(200, n, 50)), fills[150:250]]:  # 150..249 twice
            t = time.perf_counter()
            assert await journal.submit.remote(part) == len(part)
            slowest = max(slowest, time.perf_counter() - t)
        await wait_for(lambda: _down(journal), "the actor to notice the server is down")
        down = await journal.stats.remote()
        assert down["pending"] > 0 and down["spilled"] > 0  # the buffer (100) overflowed to the file
        assert not await journal.flush.remote(0.2)  # cannot drain while down
        assert slowest < 1.0  # a submit never waits on the backend (measured: a few ms)

        await asyncio.to_thread(pg.start)
        assert await journal.flush.remote(30)
        assert await journal.counts.remote(run) == {"fill": n}
        assert await rows_per_kind(pg.dsn, schema, run) == {"fill": (n, n)}
        assert await journal.records.remote(run) == fills
        stats = await journal.close.remote()
        assert stats["submitted"] == n + 20 + 100 and stats["pending"] == 0
        assert stats["written"] - stats["duplicates"] == n  # rows inserted: each record once
        assert stats["duplicates"] >= 120 and stats["retries"] > 0
    asyncio.run(body())


async def _down(journal: Any) -> bool:
    stats = await journal.stats.remote()
    return not stats["backend_ok"] and stats["retries"] > 0


def test_write_intent_falls_back_to_the_overflow_file_while_the_db_is_down(spawn: Spawn, pg: ThrowawayPostgres,
                                                                          tmp_path: Path) -> None:
    """Down: write_intent returns "overflow" with the intent fsync'ed in the overflow file; once the server is
    back it is in the table, once, even when written again."""
    run, schema = "intents", "intents"
    first, second = intent(run, 1), intent(run, 2)

    async def body() -> None:
        journal = spawn(pg.dsn, schema=schema, intent_timeout=0.3, retry_max=0.1)
        overflow = tmp_path / "overflow-0.jsonl"
        await journal.start.remote()
        assert await journal.write_intent.remote(first) == "backend"
        assert await journal.records.remote(run, "intent") == [first]
        await asyncio.to_thread(pg.stop)

        assert await journal.write_intent.remote(second) == "overflow"
        on_disk = [JournalRecord.from_json(x) for x in overflow.read_bytes().splitlines()]
        assert on_disk[-1] == second  # durable when the call returned
        assert (await journal.stats.remote())["intents_fsynced"] == 1

        await asyncio.to_thread(pg.start)
        assert await journal.flush.remote(30)
        assert await journal.records.remote(run, "intent") == [first, second]
        assert overflow.stat().st_size == 0  # drained, then truncated
        assert await journal.write_intent.remote(second) == "backend"  # again: the same row
        assert await rows_per_kind(pg.dsn, schema, run) == {"intent": (2, 2)}
        await journal.close.remote()
    asyncio.run(body())


# ---- JournalClient without Ray ------------------------------------------------------------------------------

class _FakeMethod:
    def __init__(self, name: str, calls: list[tuple[str, Any]]) -> None:
        self.name, self.calls = name, calls

    def remote(self, arg: Any) -> asyncio.Future[Any]:
        self.calls.append((self.name, arg))
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        fut.set_result(len(arg) if self.name == "submit" else "backend")
        return fut


class _FakeHandle:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.submit, self.write_intent = _FakeMethod("submit", self.calls), _FakeMethod("write_intent", self.calls)


def test_client_sends_one_call_per_batch_and_keeps_the_order() -> None:
    async def body() -> None:
        handle = _FakeHandle()
        client = JournalClient(handle, batch_size=3)
        recs = [fill("c", i) for i in range(7)]
        for rec in recs:
            client.submit(rec)
        assert handle.calls == [("submit", recs[:3]), ("submit", recs[3:6])] and client.pending == 1
        assert await client.write_intent(intent("c", 1)) == "backend"  # the batched fill goes first
        assert handle.calls[2:] == [("submit", recs[6:]), ("write_intent", intent("c", 1))]
        assert client.flush() is None and (client.sent_calls, client.sent_records) == (3, 7)
    asyncio.run(body())
    with pytest.raises(ValueError):
        JournalClient(_FakeHandle(), batch_size=0)
