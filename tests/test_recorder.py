"""Recorder round trip: record the fake venues' WS session into the store, replay the store through the
backtest's event builder and book (scenarios.market_data._venue_events + core.book.apply_market_event), and
get back every book the fakes served, event for event -- across an injected gap, a duplicate, an
out-of-order diff and a dropped connection, each written as a marker and followed by a resync."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from decimal import Decimal
from itertools import groupby
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from arbitrage_lite.core.book import MAX_LEVELS, apply_market_event, new_books
from arbitrage_lite.core.events import K_BOOK_END, VENUE_BINANCE, VENUE_UPBIT
from arbitrage_lite.infra.data.store import Store
from arbitrage_lite.infra.recorder import CONNECT, DISCONNECT, GAP, SNAPSHOT, STALE, SegmentWriter
from arbitrage_lite.infra.recorder_io import RecordConfig, record
from arbitrage_lite.infra.venues.fake.server import STATIC_BOOKS, FakeVenues
from arbitrage_lite.scenarios.market_data import _venue_events

ROOT = Path(__file__).resolve().parents[1]
L2 = ROOT / "sample_data" / "binance_btcusdt_l2_sample.gz"
DEPTH = 10
pytestmark = pytest.mark.skipif(not all(p.is_file() for v in STATIC_BOOKS.values() for p in v.values()),
                                reason="shared data set (recorded exchangeInfo / books) not found")

Top = tuple[tuple[float, float], ...]


async def _until(cond: Callable[[], bool], timeout: float = 15.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "condition not reached in time"
        await asyncio.sleep(0.01)


async def _session(store: Path) -> tuple[FakeVenues, Any]:
    """Fakes at 20x real time; record 5 s; inject one fault of each kind along the way."""
    fv = FakeVenues(binance_l2=L2, speed=20, ws_log=DEPTH)
    info = await fv.start()
    try:
        cfg = RecordConfig(store, 5.0, ("BTC",), info["binance"]["ws"], info["binance"]["rest"],
                           info["upbit"]["ws"], flush_s=0.5)
        task = asyncio.create_task(record(cfg))
        assert fv.binance_ws is not None
        hub = fv.binance_ws.hub
        for name, at in (("ws_gap", 800), ("ws_duplicate", 1400), ("ws_reorder", 2000), ("ws_drop", 2600)):
            await _until(lambda at=at: hub.stats["frames"] > at)
            setattr(fv.binance_faults, name, 1)
        stats = await task
    finally:
        await fv.stop()
    return fv, stats


def _tops(book_px: np.ndarray, book_q: np.ndarray, book_n: np.ndarray, v: int, n: int) -> tuple[Top, Top]:
    return tuple(tuple((float(book_px[v, s, i]), float(book_q[v, s, i])) for i in range(min(n, book_n[v, s])))
                 for s in (0, 1))  # type: ignore[return-value]


def _replay(store: Store, venue: str, symbol: str, code: int, depth: int,
            levels: int = MAX_LEVELS) -> list[tuple[int, Top, Top]]:
    """The backtest's events for one venue symbol, applied to the backtest's book (``levels`` per side:
    set_level keeps as many as its arrays hold): (ts_local, bids, asks) at every BOOK_END."""
    ev = _venue_events(store, "book", venue, symbol, code, None, None)
    book_px, book_q, book_n, quotes = new_books()
    book_px, book_q = np.zeros((2, 2, levels)), np.zeros((2, 2, levels))
    out = []
    for i in range(len(ev)):
        kd = int(ev.kind[i])
        apply_market_event(kd, code, int(ev.side[i]), float(ev.px[i]), float(ev.qty[i]), int(ev.ts[i]),
                           int(ev.ts_venue[i]), book_px, book_q, book_n, quotes, 0.0)
        if kd == K_BOOK_END:
            out.append((int(ev.ts[i]), *_tops(book_px, book_q, book_n, code, depth)))
    return out


def _f(levels: tuple[tuple[Decimal, Decimal], ...]) -> Top:
    return tuple((float(p), float(q)) for p, q in levels)


def _binance_states(store: Store) -> list[tuple[int, str, list[dict[str, Any]]]]:
    """The recorded book states in replay order: (update id, "snapshot"/"diff", rows); a snapshot's id is its
    marker's lastUpdateId, a diff's its u."""
    m = store.read("markers", "binance", "BTC-USDT").to_pydict()
    snap_id = {t: s for t, e, s in zip(m["ts_local"], m["event"], m["seq"], strict=True) if e == SNAPSHOT}
    states: list[tuple[int, int, str, list[dict[str, Any]]]] = []
    for kind in ("book", "depth_diff"):
        for t, rows in groupby(store.read(kind, "binance", "BTC-USDT").to_pylist(), key=lambda r: r["ts_local"]):
            got = list(rows)
            states.append((t, snap_id[t] if kind == "book" else got[0]["last_update_id"], kind, got))
    return [(u, kind, rows) for _, u, kind, rows in sorted(states, key=lambda x: x[0])]


def _full_replay(states: list[tuple[int, str, list[dict[str, Any]]]]) -> list[tuple[Top, Top]]:
    """The store read back with no depth limit: the top levels after each recorded state."""
    book: list[dict[float, float]] = [{}, {}]
    out = []
    for _, kind, rows in states:
        if kind == "book":
            book = [{}, {}]
        for r in rows:
            if r["qty"]:
                book[r["side"]][r["price"]] = r["qty"]
            else:
                book[r["side"]].pop(r["price"], None)
        out.append((tuple(sorted(book[0].items(), reverse=True)[:DEPTH]), tuple(sorted(book[1].items())[:DEPTH])))
    return out


def test_recorded_session_replays_to_the_served_books_across_faults(tmp_path: Path) -> None:
    fv, stats = asyncio.run(_session(tmp_path / "rec"))
    store = Store(tmp_path / "rec")
    assert fv.binance_ws is not None and fv.upbit_ws is not None
    assert fv.binance_ws.hub.stats["gaps"] == fv.binance_ws.hub.stats["duplicates"] == 1
    assert fv.binance_ws.hub.stats["reordered"] == fv.binance_ws.hub.stats["drops"] == 1

    # markers: the gap, the duplicate and the reordered diff are seen; the drop is a disconnect + reconnect;
    # every break is followed by a new snapshot
    ev = store.read("markers", "binance", "BTC-USDT")["event"].to_pylist()
    count = {k: ev.count(k) for k in (CONNECT, DISCONNECT, GAP, SNAPSHOT, STALE)}
    assert count[CONNECT] == 2 and count[DISCONNECT] == 2  # the dropped connection and the end
    # the skipped diff and the reorder are gaps; the reordered late diff is marked stale when it comes after the
    # resync's snapshot, and buffered then dropped by that snapshot when it comes during the resync (timing: it
    # went either way on this machine, about one run in two)
    assert count[GAP] >= 2 and count[STALE] <= 1
    # the first sync, a resync after the gaps (one per gap, or one for two gaps close together), one after the
    # reconnect
    assert 3 <= count[SNAPSHOT] <= 1 + count[GAP] + 1
    assert stats.connects["binance"] == 2 and stats.rejected == 0

    # Binance: every recorded state, read back from the store, equals what the fake served at that update id
    states = _binance_states(store)
    served = fv.binance_ws.served["BTCUSDT"]
    want = [(_f(served[u][0]), _f(served[u][1])) for u, _, _ in states]
    # (how many states 5 s of recording holds depends on the machine: 192 at load average 28, 455 to 600+ on a
    # quiet one; the faults came by frame 2,600)
    assert len(states) > 100 and len({u for u, _, _ in states}) == len(states)  # the duplicate: recorded once
    assert [k for k, got in enumerate(_full_replay(states)) if got != want[k]] == []
    # ... and through the backtest's event builder and book code: one BOOK_END per recorded state, the same
    # levels at each. With the kernel's default 64 levels a side, a level set beyond the 64th is dropped and
    # shows up missing once a sweep reaches it (counted, not asserted: core/book.py's depth limit)
    replayed = _replay(store, "binance", "BTC-USDT", VENUE_BINANCE, DEPTH, levels=2048)
    assert len(replayed) == len(states)
    assert [k for k, (_, bids, asks) in enumerate(replayed) if (bids, asks) != want[k]] == []
    capped = _replay(store, "binance", "BTC-USDT", VENUE_BINANCE, DEPTH)
    assert len(capped) == len(states)
    print(f"binance states {len(states)}; default 64-level book differs at best level on "
          f"{sum(1 for k, (_, b, a) in enumerate(capped) if (b[:1], a[:1]) != (want[k][0][:1], want[k][1][:1]))}"
          f", within top {DEPTH} on {sum(1 for k, (_, b, a) in enumerate(capped) if (b, a) != want[k])}")

    # Upbit: every recorded orderbook equals the served book with the same venue time
    up = _replay(store, "upbit", "BTC-KRW", VENUE_UPBIT, 30)
    by_ts = {b.ts_ms: b for b in fv.upbit_ws.served["KRW-BTC"]}
    tv = store.read("book", "upbit", "BTC-KRW").to_pydict()
    snap_ts = sorted({(tl, t) for tl, t in zip(tv["ts_local"], tv["ts"], strict=True)})
    assert len(up) == len(snap_ts) >= 3
    served_ts = [b.ts_ms * 1_000_000 for b in fv.upbit_ws.served["KRW-BTC"]]
    assert [t for _, t in snap_ts] == served_ts[served_ts.index(snap_ts[0][1]):]  # none lost after the first
    for (_, bids, asks), (_, ts) in zip(up, snap_ts, strict=True):
        book = by_ts[ts // 1_000_000]
        n = len(bids)
        assert n == len(asks) == min(len(book.bids), len(book.asks), 30)
        assert (bids, asks) == (_f(book.bids[:n]), _f(book.asks[:n]))


def _rows(n: int, start: int) -> list[tuple[int, ...]]:
    return [(start + i, start + i, i % 5, -1, -1) for i in range(n)]


def test_writer_bounds_memory_and_a_crash_loses_only_the_unflushed_rows(tmp_path: Path) -> None:
    now = [0.0]
    w = SegmentWriter(tmp_path, flush_s=2.0, max_rows=100, clock=lambda: now[0])
    for k in range(10):
        w.add("markers", "binance", "BTC-USDT", _rows(30, 1000 * k))
        assert w.buffered < 100
    assert w.stats.max_buffered == 120 and w.stats.flushes == 2  # at 120 rows (4 adds of 30), twice
    now[0] = 2.0
    assert w.maybe_flush() and w.buffered == 0  # on time: 300 rows flushed in all
    w.add("markers", "binance", "BTC-USDT", _rows(7, 99_000))  # never flushed: the "crash" loses these
    del w
    store = Store(tmp_path)
    assert SegmentWriter(tmp_path).compact(store) == 3
    t = store.read("markers", "binance", "BTC-USDT")
    assert t.num_rows == 300
    assert not list((tmp_path / "_recording").rglob("*.parquet"))
    assert pa.compute.max(t["ts_local"]).as_py() == 9029


def test_record_command_against_the_fakes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The CLI: fakes on their own loop in a thread, ``arbitrage-lite record`` in this one; one JSON line."""
    import json
    import threading

    from arbitrage_lite.cli import main

    loop = asyncio.new_event_loop()
    fv = FakeVenues(binance_l2=L2, speed=20)
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    info = asyncio.run_coroutine_threadsafe(fv.start(), loop).result(10)
    try:
        assert main(["record", "--store", str(tmp_path / "s"), "--seconds", "0"]) == 2
        assert main(["record", "--binance-ws", info["binance"]["ws"], "--binance-rest", info["binance"]["rest"],
                     "--upbit-ws", info["upbit"]["ws"], "--symbols", "btc", "--store", str(tmp_path / "s"),
                     "--seconds", "1.5", "--flush-s", "0.5"]) == 0
    finally:
        asyncio.run_coroutine_threadsafe(fv.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["connects"] == {"binance": 1, "upbit": 1} and summary["errors"] == {}
    assert summary["markers"]["binance BTC-USDT"] == {"connect": 1, "disconnect": 1, "snapshot": 1}
    assert summary["writer"]["flushes"] >= 2  # a 0.5 s flush before the final one (connecting takes part of 1.5 s)
    store = Store(tmp_path / "s")
    assert store.read("depth_diff", "binance", "BTC-USDT").num_rows == summary["writer"]["rows"]["depth_diff"] > 0
    assert store.has("book", "upbit", "BTC-KRW") and not list((tmp_path / "s" / "_recording").rglob("*.parquet"))
