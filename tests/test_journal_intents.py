"""The intent log (infra/journal_intents.py): an intent is fdatasync'ed there before ``write_intent_before_send``
returns, the SQL journal gets it later; a process killed in between loses nothing (the next writer replays the
log), and reconciliation's incremental read sees the intent. Real SQLite, a real SIGKILL."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest

from arbitrage_lite.actors.journal import JournalActor
from arbitrage_lite.actors.route_host import _Local
from arbitrage_lite.core.domain import Side, Venue
from arbitrage_lite.core.order_fsm import Order
from arbitrage_lite.infra.journal import JournalWriter, intent_record
from arbitrage_lite.infra.journal_intents import IntentLog
from arbitrage_lite.infra.journal_sqlite import SqliteJournal
from arbitrage_lite.infra.live.reconcile_loop import JournalState

CID = "al-crash-1-BTC-ou"

# The SQL journal never commits (a stuck disk, a long checkpoint): the intent is durable only in the log when
# the process is killed, right where the order would be sent.
KILLED_WRITER = """
import asyncio, os, signal, sys
from decimal import Decimal
from arbitrage_lite.core.domain import Side, Venue
from arbitrage_lite.core.order_fsm import Order
from arbitrage_lite.infra.journal import JournalWriter, intent_record
from arbitrage_lite.infra.journal_intents import IntentLog
from arbitrage_lite.infra.journal_sqlite import SqliteJournal

class Stuck(SqliteJournal):
    async def write_batch(self, records):
        await asyncio.Event().wait()

async def main() -> None:
    d = sys.argv[1]
    writer = JournalWriter(Stuck(d + "/journal.sqlite3"), d + "/run1.overflow.jsonl",
                           intent_log=d + "/run1.intents.jsonl")
    await writer.start()
    order = Order(sys.argv[2], Venue.UPBIT, "BTC-KRW", Side.BUY, Decimal("0.5"), Decimal("95000000"))
    where = await writer.write_intent_before_send(intent_record("run1", "BTC", order, 42))
    print(where, writer.stats().intents_logged, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)

asyncio.run(main())
"""


async def poll(pred: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def sql_intents(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [k for (k,) in conn.execute("SELECT key FROM journal WHERE kind = 'intent'")]


@pytest.mark.parametrize("next_run", ["run1", "run2"])
def test_an_intent_in_the_log_survives_a_kill_before_sql_has_it(tmp_path: Path, next_run: str) -> None:
    """Killed after the intent was durable and before SQL had it; the next writer (the same run restarted, or
    another run in the same journal directory) replays the log: SQL has it, reconciliation's incremental read
    and the open-intent query see it, and the log is cut once SQL has it."""
    out = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(tmp_path), CID], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == -signal.SIGKILL, out.stderr
    assert out.stdout.split() == ["log", "1"]
    log = tmp_path / "run1.intents.jsonl"
    assert CID.encode() in log.read_bytes()
    assert sql_intents(tmp_path / "journal.sqlite3") == []  # only the log had it

    async def restart() -> None:
        actor = JournalActor(tmp_path / f"{next_run}.overflow.jsonl", sqlite_path=tmp_path / "journal.sqlite3",
                             intent_log=tmp_path / f"{next_run}.intents.jsonl")
        await actor.start()
        assert await actor.flush(10.0)
        state = JournalState("run1", ["run1"], {})
        await state.read(_Local(actor), time.time_ns(), 0)  # what a reconciliation pass reads
        assert CID in state.fold.intents
        assert [r.key for r in await actor._backend.intents_without_outcome("run1")] == [CID]
        assert (await actor.stats())["pending"] == 0
        await actor.close()

    asyncio.run(restart())
    assert sql_intents(tmp_path / "journal.sqlite3") == [CID]
    assert not log.exists() or log.stat().st_size == 0  # taken over: removed (other run) or cut (same run)


def test_intents_group_commit_and_the_log_is_cut_once_sql_has_them(tmp_path: Path) -> None:
    """50 intents at once: each durable on return, fewer syncs than intents (the ones that came during a sync
    share the next), SQL gets them all, then the log is empty."""
    log = tmp_path / "r.intents.jsonl"

    async def body() -> None:
        writer = JournalWriter(SqliteJournal(tmp_path / "j.sqlite3"), tmp_path / "r.overflow.jsonl", intent_log=log,
                               owns_backend=True)
        await writer.start()
        orders = [Order(f"al-r-{i}-ETH-ob", Venue.BINANCE, "ETH-USDT", Side.SELL, Decimal("0.1"), Decimal(3000))
                  for i in range(50)]
        where = await asyncio.gather(*(writer.write_intent_before_send(intent_record("r", "ETH", o, 1 + i))
                                       for i, o in enumerate(orders)))
        assert set(where) == {"log"} and writer.stats().intents_logged == 50
        assert writer._log is not None and writer._log.lines_synced == 50 and writer._log.syncs < 50
        await writer.flush(10.0)
        await poll(lambda: log.stat().st_size == 0, "the log's cut")
        await writer.close()

    asyncio.run(body())
    assert len(sql_intents(tmp_path / "j.sqlite3")) == 50


def test_a_second_writer_on_a_live_intent_log_is_refused(tmp_path: Path) -> None:
    async def body() -> None:
        a = JournalWriter(SqliteJournal(":memory:"), tmp_path / "a.overflow.jsonl", intent_log=tmp_path / "x.jsonl")
        await a.start()
        b = JournalWriter(SqliteJournal(":memory:"), tmp_path / "b.overflow.jsonl", intent_log=tmp_path / "x.jsonl")
        with pytest.raises(RuntimeError, match="used by another journal writer"):
            await b.start()
        await a.close()

    asyncio.run(body())


def test_inline_appends_are_durable_on_return_without_the_worker(tmp_path: Path) -> None:
    """``inline``: written and synced on the caller's thread, one sync per intent; the cut still applies."""
    async def body() -> None:
        log = IntentLog(tmp_path / "i.jsonl", inline=True)
        await log.append(b'{"a":1}\n')
        await log.append(b'{"a":2}\n')
        assert (tmp_path / "i.jsonl").read_bytes() == b'{"a":1}\n{"a":2}\n' and log.syncs == 2
        log.cut_if(log.appended - 1)  # a line came after the count: not cut
        log.cut_if(log.appended)
        log.close()
        assert log.cuts == 1 and (tmp_path / "i.jsonl").stat().st_size == 0

    asyncio.run(body())
