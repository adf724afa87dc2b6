"""The journal against real stores: PostgreSQL on 127.0.0.1 (database ``test``, one schema per test) and the
embedded SQLite. Tests that take PostgreSQL down run a throwaway cluster of their own (``throwaway_pg``:
infra/throwaway.py, initdb + pg_ctl on a free port) and stop only that one.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from conftest import PG_DSN

from arbitrage_lite.core.alerts import AlertBook
from arbitrage_lite.core.domain import Side, Venue
from arbitrage_lite.core.ledger import Fill
from arbitrage_lite.core.order_fsm import EventKind, Order, OrderEvent, OrderStatus
from arbitrage_lite.core.risk import RiskVerdict
from arbitrage_lite.core.trade_fsm import Trade
from arbitrage_lite.infra import journal_sqlite
from arbitrage_lite.infra.journal import (
    JournalBackend,
    JournalRecord,
    JournalWriter,
    Kind,
    alert_record,
    fill_event_record,
    fill_record,
    intent_record,
    make_backend,
    order_event_record,
    pnl_snapshot_record,
    risk_verdict_record,
    trade_transition_record,
)
from arbitrage_lite.infra.journal_pg import PostgresJournal, migrate
from arbitrage_lite.infra.journal_sqlite import SqliteJournal
from arbitrage_lite.infra.migrations import MigrationError, load
from arbitrage_lite.infra.throwaway import ThrowawayPostgres

D = Decimal
MakeBackend = Callable[[], JournalBackend]


# ---- helpers -----------------------------------------------------------------------------------------------

async def wait_until(pred: Callable[[], Awaitable[bool] | bool], what: str, timeout: float = 20.0) -> None:
    """Poll ``pred`` (sync or async) until true; no fixed sleeps."""
    deadline = time.monotonic() + timeout
    while True:
        got = pred()
        if isinstance(got, Awaitable):
            got = await got
        if got:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


def fill_rec(run: str, i: int, ts: int | None = None, route: str = "BTC") -> JournalRecord:
    return JournalRecord(Kind.FILL, f"upbit:t{i}", run, route, 1_000 + i, i if ts is None else ts,
                         {"client_id": f"al-{run[:8]}-{i}-BTC-u", "price": D("95000000.5"), "qty": D("0.00012345")})


def order(cid: str, venue: Venue = Venue.UPBIT, side: Side = Side.BUY, qty: str = "0.00012345") -> Order:
    symbol = "BTC-KRW" if venue is Venue.UPBIT else "BTCUSDT"
    price = D("95000000") if venue is Venue.UPBIT else D("68000.12")
    return Order(cid, venue, symbol, side, D(qty), limit_price=price)


def every_kind(run: str) -> list[JournalRecord]:
    """One record or more of each kind, built from the core's own objects, with awkward exact decimals."""
    buy, sell = order("al-r1-1-BTC-u"), order("al-r1-2-BTC-b", Venue.BINANCE, Side.SELL)
    trade = Trade.plan("tr1", buy, sell, ref_price=D("95000000.5")).send(10)
    fill_ev = OrderEvent.fill("u-77", D("0.00012345"), D("95000000.12345678"), 20, 21, fee=D("0.0000000000000001"))
    trade = trade.apply_order_event(buy.client_id, fill_ev)
    filled = trade.order(buy.client_id)
    ledger_fill = Fill(1, Venue.BINANCE, Side.SELL, D("68000.12"), D("0.00012345"), D("0.00419661741"),
                       D("68000.10"), 9, 30, 31, "open")
    verdict = RiskVerdict(False, "halted", "global", ("global.halted: drawdown 5000000 from equity peak",), "reject")
    alert = AlertBook.default().raise_alert("one_leg_unhedged", "BTC", "binance leg unfilled", 40)
    assert alert is not None
    return [
        intent_record(run, "BTC", buy, 1, trade_id="tr1"),
        intent_record(run, "BTC", sell, 2, trade_id="tr1"),
        order_event_record(run, "BTC", trade.order(sell.client_id)),  # SUBMIT
        order_event_record(run, "BTC", filled),  # the fill: FILLED, terminal
        fill_event_record(run, "BTC", filled, fill_ev),
        fill_record(run, "BTC", ledger_fill, trade_id="b-9", client_id=sell.client_id),
        trade_transition_record(run, "BTC", trade, 1),
        trade_transition_record(run, "BTC", trade),
        risk_verdict_record(run, "BTC", verdict, seq=7, action="open", ts_local=35, symbol="BTC"),
        pnl_snapshot_record(run, "BTC", 38, {"net_pnl_krw": D("-123456789.123456789012345678"), "fees": D("1E-8")}),
        alert_record(run, alert, route="BTC"),
    ]


# ---- fixtures ----------------------------------------------------------------------------------------------

def drop_schema(dsn: str, schema: str) -> None:
    async def drop() -> None:
        conn = await asyncpg.connect(dsn)
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()
    asyncio.run(drop())


@pytest.fixture(params=["sqlite", "postgres"])
def new_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MakeBackend]:
    """A factory of backends on one fresh store (a new SQLite file, or a new PostgreSQL schema)."""
    if request.param == "sqlite":
        yield lambda: SqliteJournal(tmp_path / "journal.sqlite3")
        return
    dsn, schema = request.getfixturevalue("pg_dsn"), f"jt_{uuid.uuid4().hex[:12]}"
    yield lambda: PostgresJournal(dsn, schema=schema)
    drop_schema(dsn, schema)


# ---- schema and migrations ---------------------------------------------------------------------------------

def test_migrations_apply_once_and_are_idempotent(new_backend: MakeBackend) -> None:
    async def body() -> None:
        first, second = new_backend(), new_backend()
        await asyncio.gather(first.open(), second.open())  # two openers race: each version applied once
        await first.open()
        versions = [m.version for m in load("sqlite" if isinstance(first, SqliteJournal) else "postgres")]
        assert versions and await first.applied_migrations() == versions == await second.applied_migrations()
        await asyncio.gather(first.close(), second.close())
        third = new_backend()
        await third.open()  # a restart: nothing new
        assert await third.applied_migrations() == versions
        await third.close()
    asyncio.run(body())


def test_migrators_report_what_they_applied(pg_dsn: str, tmp_path: Path) -> None:
    schema = f"jt_{uuid.uuid4().hex[:12]}"

    async def body() -> None:
        conns = [await asyncpg.connect(pg_dsn) for _ in range(3)]
        applied = await asyncio.gather(*(migrate(c, schema) for c in conns))
        assert sorted(v for vs in applied for v in vs) == [m.version for m in load("postgres")]  # once each
        await conns[0].execute(f'UPDATE "{schema}".schema_migrations SET checksum = $1 WHERE version = 1', "x")
        with pytest.raises(MigrationError, match="changed after it was applied"):
            await migrate(conns[1], schema)
        for c in conns:
            await c.close()
    try:
        asyncio.run(body())
    finally:
        drop_schema(pg_dsn, schema)
    conn = sqlite3.connect(tmp_path / "j.sqlite3", isolation_level=None)
    assert journal_sqlite.migrate(conn) == [m.version for m in load("sqlite")]
    assert journal_sqlite.migrate(conn) == []
    conn.close()


# ---- records -----------------------------------------------------------------------------------------------

def test_every_kind_round_trips_exactly(new_backend: MakeBackend, tmp_path: Path) -> None:
    async def body() -> None:
        backend = new_backend()
        written = every_kind("rt")
        assert {r.kind for r in written} == set(Kind)
        async with JournalWriter(backend, tmp_path / "overflow.jsonl", owns_backend=True) as writer:
            assert all(writer.submit(r) for r in written)
            await writer.flush(timeout=10)
            back = await backend.records("rt")
            assert back == sorted(written, key=lambda r: r.ts_local)  # every field; (ts_local, insertion) order
            assert [r.payload_json for r in back] != [] and [JournalRecord.from_json(r.to_json()) for r in back] == back
            pnl = (await backend.records("rt", kind=Kind.PNL_SNAPSHOT))[0].payload
            assert pnl["net_pnl_krw"] == "-123456789.123456789012345678" and pnl["fees"] == "0.00000001"
            fill = (await backend.records("rt", kind="fill", route="BTC"))[0].payload
            assert D(fill["price"]) == D("95000000.12345678") and fill["fee"] == "0.0000000000000001"
            assert await backend.counts("rt") == {Kind.INTENT: 2, Kind.ORDER_EVENT: 2, Kind.FILL: 2,
                                                  Kind.TRADE_TRANSITION: 2, Kind.RISK_VERDICT: 1,
                                                  Kind.PNL_SNAPSHOT: 1, Kind.ALERT: 1}
            assert await backend.records("rt", route="ETH") == [] and await backend.counts("other") == {}
    asyncio.run(body())


def test_payloads_are_normalised_and_checked() -> None:
    rec = JournalRecord(Kind.FILL, "k", "r", "BTC", -1, 0, {"venue": Venue.BINANCE, "side": Side.SELL,
                        "status": OrderStatus.FILLED, "ids": {"b", "a"}, "legs": ("x", 1), "ratio": 0.25,
                        "px": D("1E-8"), "nested": {"q": D("10.50")}})
    assert rec.kind is Kind.FILL and rec.payload == {"venue": "binance", "side": "SELL", "status": "filled",
                                                     "ids": ["a", "b"], "legs": ["x", 1], "ratio": 0.25,
                                                     "px": "0.00000001", "nested": {"q": "10.50"}}
    assert JournalRecord.from_json(rec.to_json()) == rec and rec.client_id is None
    bads: list[dict[Any, Any]] = [{"x": D("NaN")}, {"x": float("inf")}, {1: "int key"}, {"x": object()}, {"x": "\x00"}]
    for bad in bads:
        with pytest.raises((ValueError, TypeError)):
            JournalRecord(Kind.FILL, "k", "r", "BTC", -1, 0, bad)
    for fields in (("", "r", "BTC", -1, 0), ("k", "r", "BTC", -2, 0), ("k", "r", "BTC", -1, 2**63),
                   ("k", "r", "", 0, 0)):
        with pytest.raises(ValueError):
            JournalRecord(Kind.FILL, *fields, {})
    with pytest.raises(ValueError):
        JournalRecord("nope", "k", "r", "BTC", -1, 0, {})  # type: ignore[arg-type]


def test_make_backend_defaults_to_embedded_sqlite(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("ARBITRAGE_LITE_JOURNAL_DSN", raising=False)
    assert isinstance(make_backend(sqlite_path=tmp_path / "j.sqlite3"), SqliteJournal)
    monkeypatch.setenv("ARBITRAGE_LITE_JOURNAL_DSN", PG_DSN)
    backend = make_backend(schema="elsewhere")
    assert isinstance(backend, PostgresJournal) and backend.schema == "elsewhere"


def test_replaying_records_never_doubles_a_row(new_backend: MakeBackend, tmp_path: Path) -> None:
    async def body() -> None:
        backend = new_backend()
        recs = every_kind("rp") + [fill_rec("rp", i) for i in range(200)]
        assert await backend.write_batch(recs) == len(recs)
        assert await backend.write_batch(recs) == 0
        assert await backend.write_batch(recs[::-1] + recs) == 0  # one batch holding each key twice
        async with JournalWriter(backend, tmp_path / "o.jsonl", batch_size=64, owns_backend=True) as writer:
            for r in recs + recs:
                assert writer.submit(r)
            await writer.flush(timeout=10)
            stats = writer.stats()
            assert (stats.written, stats.duplicates, stats.pending) == (2 * len(recs), 2 * len(recs), 0)
            assert sum((await backend.counts("rp")).values()) == len(recs)
            assert await backend.records("rp") == sorted(recs, key=lambda r: r.ts_local)
    asyncio.run(body())


def test_intents_without_outcome(new_backend: MakeBackend) -> None:
    async def body() -> None:
        backend = new_backend()
        filled, working, silent, refused = (order(f"al-io-{i}-BTC-u") for i in range(1, 5))
        recs = [intent_record("io", "BTC", o, i) for i, o in enumerate((filled, working, silent, refused))]
        sent = filled.apply(OrderEvent(EventKind.SUBMIT, -1, 10))
        done = sent.apply(OrderEvent.fill("x1", filled.qty, D("95000000"), 11, 12))
        acked = working.apply(OrderEvent(EventKind.SUBMIT, -1, 10)).apply(OrderEvent(EventKind.ACK, 13, 14))
        gone = refused.apply(OrderEvent(EventKind.SUBMIT, -1, 10)).apply(OrderEvent.not_found(15))
        assert done.status is OrderStatus.FILLED and gone.status is OrderStatus.REJECTED
        recs += [order_event_record("io", "BTC", o, s) for o in (done, acked, gone) for s in (1, 2)]
        recs.append(order_event_record("other", "BTC", acked.apply(OrderEvent(EventKind.CANCELED, 20, 21))))
        await backend.write_batch(recs)
        open_intents = await backend.intents_without_outcome("io")
        assert [r.key for r in open_intents] == [working.client_id, silent.client_id]
        assert open_intents == [recs[1], recs[2]]  # a terminal event in another run does not count
        await backend.close()
    asyncio.run(body())


def test_retention_purge_keeps_open_intents(new_backend: MakeBackend) -> None:
    async def body() -> None:
        backend = new_backend()
        closed, still_open = order("al-rt-1-BTC-u"), order("al-rt-2-BTC-u")
        done = closed.apply(OrderEvent(EventKind.SUBMIT, -1, 1)).apply(OrderEvent(EventKind.REJECT, 2, 3))
        recs = [intent_record("a", "BTC", closed, 0), intent_record("a", "BTC", still_open, 0),
                order_event_record("a", "BTC", done)] + [fill_rec(run, i) for run in ("a", "b") for i in range(100)]
        await backend.write_batch(recs)
        assert await backend.purge_older_than("a", 50) == 2 + 50  # closed intent + its event + 50 fills
        assert [r.key for r in await backend.records("a", kind=Kind.INTENT)] == [still_open.client_id]
        assert (await backend.counts("a"))[Kind.FILL] == 50 and (await backend.counts("b"))[Kind.FILL] == 100
        assert await backend.purge_older_than(None, 10**18) == 150
        assert await backend.counts("a") == {Kind.INTENT: 1} and await backend.counts("b") == {}
        assert await backend.intents_without_outcome("a") == [recs[1]]
        await backend.close()
    asyncio.run(body())


# ---- the writer --------------------------------------------------------------------------------------------

def test_intent_is_in_the_backend_when_the_call_returns(new_backend: MakeBackend, tmp_path: Path) -> None:
    async def body() -> None:
        backend = new_backend()
        async with JournalWriter(backend, tmp_path / "o.jsonl", owns_backend=True) as writer:
            intent = intent_record("wi", "BTC", order("al-wi-1-BTC-u"), 5)
            assert await writer.write_intent_before_send(intent) == "backend"
            assert await backend.records("wi") == [intent]  # no flush needed
            with pytest.raises(ValueError, match="intents"):
                await writer.write_intent_before_send(fill_rec("wi", 1))
    asyncio.run(body())


def test_slow_intent_falls_back_to_the_overflow_file(new_backend: MakeBackend, tmp_path: Path) -> None:
    """An intent not acknowledged within ``intent_timeout`` is fsync'ed to the overflow file; both copies reach
    the backend later as one row."""
    async def body() -> None:
        backend = new_backend()
        async with JournalWriter(backend, tmp_path / "o.jsonl", intent_timeout=0, owns_backend=True) as writer:
            intent = intent_record("slow", "BTC", order("al-slow-1-BTC-u"), 5)
            assert await writer.write_intent_before_send(intent) == "overflow"
            assert writer.stats().intents_fsynced == 1
            await writer.flush(timeout=10)
            assert await backend.records("slow") == [intent] and writer.stats().duplicates == 1
    asyncio.run(body())


def test_backpressure_drops_only_low_priority_and_spills_the_rest(new_backend: MakeBackend, tmp_path: Path) -> None:
    """A writer told that PnL snapshots are low priority drops them under backpressure (by default nothing is
    dropped: see test_pnl_snapshots_are_spilled_not_dropped_by_default)."""
    async def body() -> None:
        backend, overflow = new_backend(), tmp_path / "o.jsonl"
        async with JournalWriter(backend, overflow, buffer_size=4, batch_size=4, owns_backend=True,
                                 low_priority=frozenset({Kind.PNL_SNAPSHOT})) as writer:
            # no await between the submits: the flusher cannot run, the buffer of 4 fills up
            kept: list[JournalRecord] = []
            for i in range(12):
                rec = pnl_snapshot_record("bp", "BTC", 7, {"pnl": D(i)}) if i % 3 == 2 else fill_rec("bp", i, ts=7)
                rec = JournalRecord(rec.kind, f"{rec.key}:{i}", rec.run_id, rec.route, -1, 7, rec.payload)
                accepted = writer.submit(rec)
                assert accepted == (i < 4 or rec.kind is not Kind.PNL_SNAPSHOT)
                kept += [rec] if accepted else []
            stats = writer.stats()
            assert (stats.dropped, stats.spilled, stats.buffered, stats.pending) == (3, 5, 4, 9)
            assert writer._ovf is not None  # read the file on its worker thread, behind the 5 appends
            assert (await writer._ovf.run(overflow.read_bytes)).count(b"\n") == 5
            await writer.flush(timeout=10)
            assert await backend.records("bp") == kept  # one ts_local: insertion order = submission order
            assert writer.stats().pending == 0 and overflow.stat().st_size == 0  # drained, then truncated
    asyncio.run(body())


def test_pnl_snapshots_are_spilled_not_dropped_by_default(new_backend: MakeBackend, tmp_path: Path) -> None:
    async def body() -> None:
        backend, overflow = new_backend(), tmp_path / "o.jsonl"
        async with JournalWriter(backend, overflow, buffer_size=2, batch_size=2, owns_backend=True) as writer:
            recs = [pnl_snapshot_record("nd", "BTC", 7 + i, {"pnl": D(i)}) for i in range(6)]
            assert all(writer.submit(r) for r in recs)
            assert (writer.stats().dropped, writer.stats().spilled) == (0, 4)
            await writer.flush(timeout=10)
            assert await backend.records("nd") == recs
    asyncio.run(body())


def test_torn_and_corrupt_overflow_lines_are_skipped(tmp_path: Path) -> None:
    async def body() -> None:
        overflow, recs = tmp_path / "o.jsonl", [fill_rec("torn", i) for i in range(3)]
        lines = [r.to_json().encode() + b"\n" for r in recs]
        overflow.write_bytes(lines[0] + b'{"r": "garbage"}\n' + lines[1] + lines[2][:9])  # a crash mid-append
        backend = SqliteJournal(tmp_path / "j.sqlite3")
        async with JournalWriter(backend, overflow, owns_backend=True) as writer:
            assert writer.stats().pending == 3 and writer.stats().corrupt == 1
            await writer.flush(timeout=10)
            assert await backend.records("torn") == recs[:2] and writer.stats().corrupt == 2
            with pytest.raises(RuntimeError, match="another journal writer"):
                await JournalWriter(backend, overflow).start()
    asyncio.run(body())


def test_buffering_across_a_postgres_restart(throwaway_pg: ThrowawayPostgres, tmp_path: Path) -> None:
    """Submit N records; the server stops a third of the way in and stays down for the last third; submit never
    waits or raises; once the server is back, flush() -> exactly N rows, in submission order."""
    n, run = 3_000, "restart"

    async def body() -> None:
        backend = PostgresJournal(throwaway_pg.dsn, schema="restart", timeout=5, connect_timeout=1)
        writer = JournalWriter(backend, tmp_path / "o.jsonl", buffer_size=500, batch_size=200, retry_max=0.1,
                               owns_backend=True)
        await writer.start()
        recs, slowest = [fill_rec(run, i) for i in range(n)], 0.0

        def submit(part: range) -> None:
            nonlocal slowest
            for i in part:
                t = time.perf_counter()
                assert writer.submit(recs[i])
                slowest = max(slowest, time.perf_counter() - t)

        submit(range(n // 3))
        await wait_until(lambda: writer.stats().written > 0, "first writes")
        stopping = asyncio.ensure_future(asyncio.to_thread(throwaway_pg.stop))
        i = n // 3
        while not stopping.done() and i < 2 * n // 3:  # keep submitting while the server shuts down
            submit(range(i, i + 10))
            i += 10
            await asyncio.sleep(0)
        await stopping
        submit(range(i, n))  # down: buffered, then spilled
        await wait_until(lambda: writer.stats().retries > 0, "a failed write")
        down = writer.stats()
        assert not down.backend_ok and down.spilled > 0 and down.pending > 0 and down.last_error
        t0 = time.perf_counter()
        await asyncio.to_thread(throwaway_pg.start)
        await writer.flush(timeout=30)
        drain = time.perf_counter() - t0
        assert await backend.counts(run) == {Kind.FILL: n}
        assert await backend.records(run) == recs
        print(f"\nrestart: {n} records, {down.pending} pending at restart ({down.spilled} spilled), "
              f"drained {drain:.2f}s after pg_ctl start returned; slowest submit {slowest * 1e3:.2f} ms")
        assert slowest < 0.1  # never waits on the backend (measured: < 5 ms; generous for a loaded CI box)
        await writer.close()
    if not throwaway_pg.running:
        throwaway_pg.start()
    asyncio.run(body())


CRASHING_WRITER = """
import asyncio, os, signal, sys
from decimal import Decimal
from arbitrage_lite.core.domain import Side, Venue
from arbitrage_lite.core.order_fsm import Order
from arbitrage_lite.infra.journal import JournalWriter, intent_record
from arbitrage_lite.infra.journal_pg import PostgresJournal

async def main() -> None:
    dsn, overflow = sys.argv[1:]
    writer = JournalWriter(PostgresJournal(dsn, schema="crash", connect_timeout=1), overflow, open_timeout=2)
    await writer.start()
    order = Order("al-crash-1-BTC-u", Venue.UPBIT, "BTC-KRW", Side.BUY, Decimal("0.5"), Decimal("95000000"))
    where = await writer.write_intent_before_send(intent_record("crash", "BTC", order, 42))
    print(where, writer.stats().intents_fsynced, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # no close(): the process dies right after the order would be sent

asyncio.run(main())
"""


def test_intent_is_durable_with_the_backend_down(throwaway_pg: ThrowawayPostgres, tmp_path: Path) -> None:
    """Server down: a writer closed while waiting persists its buffer to the overflow file; a second writer
    fsyncs an intent there before the call returns and is killed; once the server is back, a third writer on
    that file writes everything, once, and recovery finds the intent still open."""
    overflow, later = tmp_path / "o.jsonl", [fill_rec("crash", i) for i in range(5)]
    if throwaway_pg.running:
        throwaway_pg.stop()

    async def closed_while_down() -> None:
        backend = PostgresJournal(throwaway_pg.dsn, schema="crash", connect_timeout=1)
        async with JournalWriter(backend, overflow, retry_max=0.1, open_timeout=2, owns_backend=True) as writer:
            assert all(writer.submit(r) for r in later) and writer.stats().buffered == 5
            await writer.close(timeout=0.2)  # gives up waiting: the buffer goes to the overflow file (fsync)
        assert overflow.read_bytes().count(b"\n") == 5
    asyncio.run(closed_while_down())

    proc = subprocess.run([sys.executable, "-c", CRASHING_WRITER, throwaway_pg.dsn, str(overflow)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert proc.stdout.split() == ["overflow", "1"]
    lines = overflow.read_bytes().splitlines()
    intent = JournalRecord.from_json(lines[-1])
    assert len(lines) == 6 and [JournalRecord.from_json(x) for x in lines[:5]] == later
    assert (intent.kind, intent.key, intent.payload["qty"]) == (Kind.INTENT, "al-crash-1-BTC-u", "0.5")

    async def recovered() -> None:
        await asyncio.to_thread(throwaway_pg.start)
        backend = PostgresJournal(throwaway_pg.dsn, schema="crash")
        async with JournalWriter(backend, overflow, owns_backend=True) as writer:
            assert writer.stats().pending == 6
            await writer.flush(timeout=30)
            assert await backend.intents_without_outcome("crash") == [intent]
            assert await backend.counts("crash") == {Kind.INTENT: 1, Kind.FILL: 5}
            assert await backend.records("crash", kind=Kind.FILL) == later
        assert overflow.stat().st_size == 0
    asyncio.run(recovered())


def test_pg_batch_throughput(pg_dsn: str, tmp_path: Path) -> None:
    """Records/s through the writer into the shared PostgreSQL (batches of 500), and intent latency."""
    schema, n = f"jt_{uuid.uuid4().hex[:12]}", 20_000

    async def body() -> dict[str, Any]:
        backend = PostgresJournal(pg_dsn, schema=schema)
        async with JournalWriter(backend, tmp_path / "o.jsonl", buffer_size=n, owns_backend=True) as writer:
            recs = [fill_rec("tp", i) for i in range(n)]
            t0 = time.perf_counter()
            for r in recs:
                writer.submit(r)
            submit_s = time.perf_counter() - t0
            await writer.flush(timeout=50)
            total_s = time.perf_counter() - t0
            lat = []
            for i in range(50):
                t = time.perf_counter()
                await writer.write_intent_before_send(intent_record("tp", "BTC", order(f"al-tp-{i}-BTC-u"), i))
                lat.append(time.perf_counter() - t)
            assert (await backend.counts("tp"))[Kind.FILL] == n
        return {"submit_us": submit_s / n * 1e6, "rate": n / total_s, "intent_ms": sorted(lat)[len(lat) // 2] * 1e3}
    try:
        got = asyncio.run(body())
    finally:
        drop_schema(pg_dsn, schema)
    print(f"\npostgres: {n} records in batches of 500 at {got['rate']:,.0f} records/s; "
          f"submit {got['submit_us']:.1f} us/record; intent durable in {got['intent_ms']:.2f} ms (median)")
    assert got["rate"] > 1_000


# ---- issue 11: errors name the service; an overflow file no one replays is taken over -------------------------

def test_backend_errors_name_the_service(throwaway_pg: ThrowawayPostgres, tmp_path: Path) -> None:
    from arbitrage_lite.actors.journal import JournalActor
    from arbitrage_lite.infra.journal import JournalUnavailable

    if throwaway_pg.running:
        throwaway_pg.stop()
    named = f"PostgreSQL at 127.0.0.1:{throwaway_pg.port}/postgres: connection refused"

    async def body() -> None:
        actor = JournalActor(tmp_path / "r1.overflow.jsonl", throwaway_pg.dsn, schema="named", retry_max=0.05,
                             open_timeout=2)
        await actor.start()
        assert actor._writer.submit(fill_rec("named", 1))
        await wait_until(lambda: actor._writer.stats().retries > 0, "a failed write")
        assert actor._writer.stats().last_error == named
        with pytest.raises(JournalUnavailable) as err:
            await actor.counts("named")
        assert str(err.value) == named
        await actor.close(timeout=0.1)
    asyncio.run(body())
    assert SqliteJournal(tmp_path / "x.sqlite3").where == f"SQLite at {tmp_path / 'x.sqlite3'}"


def test_an_overflow_file_no_one_replays_is_taken_over_at_the_next_start(throwaway_pg: ThrowawayPostgres,
                                                                         tmp_path: Path) -> None:
    """Run A ends (or dies) while PostgreSQL is down: its records, intents included, are in A's overflow file.
    The next run on that journal directory (B, a new run id) writes them once PostgreSQL answers, each once
    (two were in already), and deletes A's file; a file a live writer holds is left to it."""
    from arbitrage_lite.actors.journal import JournalActor

    if throwaway_pg.running:
        throwaway_pg.stop()
    recs = [fill_rec("runA", i) for i in range(6)]
    intent = intent_record("runA", "BTC", order("al-runA-1-BTC-u"), 7)

    async def run_a() -> None:
        backend = PostgresJournal(throwaway_pg.dsn, schema="adopt", connect_timeout=1)
        async with JournalWriter(backend, tmp_path / "runA.overflow.jsonl", retry_max=0.05, open_timeout=2,
                                 owns_backend=True) as writer:
            assert all(writer.submit(r) for r in recs)
            assert await writer.write_intent_before_send(intent) == "overflow"
            await writer.close(timeout=0.1)
    asyncio.run(run_a())
    assert (tmp_path / "runA.overflow.jsonl").read_bytes().count(b"\n") == 7

    async def run_b() -> None:
        await asyncio.to_thread(throwaway_pg.start)
        early = PostgresJournal(throwaway_pg.dsn, schema="adopt")
        assert await early.write_batch(recs[:2]) == 2  # some were in before (a crash after a commit)
        await early.close()
        live = JournalWriter(SqliteJournal(tmp_path / "c.sqlite3"), tmp_path / "runC.overflow.jsonl",
                             owns_backend=True)
        await live.start()  # a run still going: its file is locked
        actor = JournalActor(tmp_path / "runB.overflow.jsonl", throwaway_pg.dsn, schema="adopt")
        assert await actor.start() == 7
        assert await actor.flush(30)
        assert await actor.counts("runA") == {"fill": 6, "intent": 1}
        assert await actor._backend.records("runA", Kind.FILL) == recs
        stats = await actor.stats()
        assert (stats["adopted"], stats["duplicates"], stats["pending"]) == (7, 2, 0)
        await actor.close()
        await live.close()
    asyncio.run(run_b())
    assert not (tmp_path / "runA.overflow.jsonl").exists()
    assert (tmp_path / "runB.overflow.jsonl").stat().st_size == 0
    assert (tmp_path / "runC.overflow.jsonl").exists()
