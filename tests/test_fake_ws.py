"""The fakes' WS market data, seen by a client built from the project's own sans-IO parts.

Binance: the combined stream replays the recorded L2 with its real U/u ids and ``/api/v3/depth`` answers a
lastUpdateId consistent with it, so the documented sync procedure rebuilds every served book; each WS fault
shows up as the client would see it on the real venue. Upbit: ``/websocket/v1`` sends the current book, then
every replayed one, as binary frames in DEFAULT or SIMPLE names, parsed by infra/venues/upbit/parse.py.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from arbitrage_lite.core.venue import BestBidAsk, BookDelta, BookSnapshot, Trade
from arbitrage_lite.infra.data.store import Store
from arbitrage_lite.infra.venues.binance.book import LocalBook, Sync
from arbitrage_lite.infra.venues.binance.parse import parse_depth_snapshot, parse_stream
from arbitrage_lite.infra.venues.fake.server import STATIC_BOOKS, FakeVenues
from arbitrage_lite.infra.venues.fake.ws_binance import feed_from_store
from arbitrage_lite.infra.venues.upbit.parse import parse_ws

ROOT = Path(__file__).resolve().parents[1]
L2 = ROOT / "sample_data" / "binance_btcusdt_l2_sample.gz"
pytestmark = pytest.mark.skipif(not all(p.is_file() for v in STATIC_BOOKS.values() for p in v.values()),
                                reason="shared data set (recorded exchangeInfo / books) not found")
STREAMS = "btcusdt@depth@100ms/btcusdt@bookTicker/btcusdt@trade"


def run(body: Callable[[FakeVenues, dict[str, Any], aiohttp.ClientSession], Awaitable[None]],
        **kw: Any) -> None:
    async def main() -> None:
        fv = FakeVenues(**{"binance_l2": L2, "speed": 50, "ws_log": 20, **kw})
        info = await fv.start()
        try:
            async with aiohttp.ClientSession() as session:
                await body(fv, info, session)
        finally:
            await fv.stop()
    asyncio.run(main())


async def _snapshot(session: aiohttp.ClientSession, info: dict[str, Any]) -> BookSnapshot:
    async with session.get(info["binance"]["rest"] + "/api/v3/depth",
                           params={"symbol": "BTCUSDT", "limit": "1000"}) as r:
        snap = parse_depth_snapshot(await r.read(), "BTCUSDT", time.time_ns())
    assert isinstance(snap, BookSnapshot)
    return snap


def _levels(book: LocalBook) -> tuple[Any, Any]:
    s = book.snapshot(20)
    return tuple((lv.price, lv.qty) for lv in s.bids), tuple((lv.price, lv.qty) for lv in s.asks)


async def _sync_client(fv: FakeVenues, info: dict[str, Any], session: aiohttp.ClientSession, diffs: int,
                       fault: str | None = None) -> dict[str, Any]:
    """Follow the documented procedure for ``diffs`` diffs; check every applied state against the fake's.

    With a fault, it goes on until the fault has been seen and 40 more states checked: under load the client
    may read its 60th diff before the server has sent the faulty frame (it was set at the 20th).
    """
    assert fv.binance_ws is not None
    served = fv.binance_ws.served["BTCUSDT"]
    book, seen = LocalBook("BTCUSDT"), {"diffs": 0, "trades": 0, "bbo": 0, "checked": 0, "reasons": [],
                                        "closed": False, "after_fault": 0}
    last_diff = -1
    async with session.ws_connect(f"{info['binance']['ws']}/stream?streams={STREAMS}") as ws:
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                seen["closed"] = True
                break
            m = parse_stream(msg.data, time.time_ns())
            seen["trades"] += isinstance(m, Trade)
            seen["bbo"] += isinstance(m, BestBidAsk)
            if not isinstance(m, BookDelta):
                continue
            seen["diffs"] += 1
            if seen["diffs"] == 20 and fault:
                setattr(fv.binance_faults, fault, 1)
            res = book.on_delta(m)
            if res is Sync.NEEDS_SNAPSHOT and book.last_reject is not None:
                seen["reasons"].append(book.last_reject.reason)
            elif res is Sync.STALE and m.last_seq <= last_diff:  # not just a diff the snapshot already held
                seen["reasons"].append("stale")
            last_diff = m.last_seq if res is Sync.APPLIED else last_diff
            while not book.synced:
                assert book.on_snapshot(await _snapshot(session, info)) is not None
            if res is Sync.APPLIED or book.synced:
                want = tuple(tuple(lv) for lv in served[book.book_id or 0][0]), tuple(
                    tuple(lv) for lv in served[book.book_id or 0][1])
                assert _levels(book) == want
                seen["checked"] += 1
                seen["after_fault"] += bool(seen["reasons"])
            if seen["diffs"] >= diffs and (not fault or seen["after_fault"] >= 40 or seen["diffs"] >= 3_000):
                break
        else:
            seen["closed"] = True
    return seen


def test_binance_stream_syncs_to_every_served_book() -> None:
    async def body(fv: FakeVenues, info: dict[str, Any], session: aiohttp.ClientSession) -> None:
        seen = await _sync_client(fv, info, session, 200)
        assert seen["checked"] >= 190 and seen["trades"] > 0 and seen["bbo"] > 0 and seen["reasons"] == []
        # /ws/<stream>: the raw payload, no envelope; SUBSCRIBE is acknowledged like the venue does
        async with session.ws_connect(f"{info['binance']['ws']}/ws/btcusdt@trade") as ws:
            await ws.send_str(json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@bookTicker"], "id": 7}))
            kinds: set[str] = set()
            while len(kinds) < 3:
                data = json.loads((await ws.receive(timeout=10)).data)
                kinds.add("ack" if data == {"result": None, "id": 7} else data.get("e", "bookTicker"))
            assert kinds == {"ack", "trade", "bookTicker"}
    run(body)


@pytest.mark.parametrize(("fault", "seen_as"), [("ws_gap", "sequence_gap"), ("ws_duplicate", "stale"),
                                                ("ws_reorder", "sequence_gap")])
def test_binance_sequence_faults_are_seen_and_resynced(fault: str, seen_as: str) -> None:
    async def body(fv: FakeVenues, info: dict[str, Any], session: aiohttp.ClientSession) -> None:
        seen = await _sync_client(fv, info, session, 60, fault)
        assert seen["reasons"][:1] == [seen_as] and seen["after_fault"] >= 40  # and every book after it checked
    run(body)


def test_binance_drop_and_delay() -> None:
    async def body(fv: FakeVenues, info: dict[str, Any], session: aiohttp.ClientSession) -> None:
        seen = await _sync_client(fv, info, session, 10_000, "ws_drop")
        assert seen["closed"] and 20 <= seen["diffs"] < 100
        fv.binance_faults.ws_delay_ms = 300
        async with session.ws_connect(f"{info['binance']['ws']}/ws/btcusdt@bookTicker") as ws:
            t0 = time.monotonic()
            await ws.receive(timeout=10)
            assert time.monotonic() - t0 >= 0.3
    run(body)


@pytest.mark.parametrize("fmt", ["DEFAULT", "SIMPLE"])
def test_upbit_websocket_streams_the_served_books(fmt: str) -> None:
    async def body(fv: FakeVenues, info: dict[str, Any], session: aiohttp.ClientSession) -> None:
        assert fv.upbit_ws is not None
        async with session.ws_connect(info["upbit"]["ws"]) as ws:
            await ws.send_str(json.dumps([{"ticket": "t"}, {"type": "orderbook", "codes": ["KRW-BTC"]},
                                          {"format": fmt}]))
            books = []
            while len(books) < 4:
                msg = await ws.receive(timeout=10)
                assert msg.type == aiohttp.WSMsgType.BINARY  # as the venue sends them
                raw = json.loads(msg.data)
                assert ("ty" in raw) is (fmt == "SIMPLE")
                m = parse_ws(msg.data, time.time_ns())
                assert isinstance(m, BookSnapshot)
                books.append((m, raw.get("stream_type", raw.get("st"))))
        served = {b.ts_ms: b for b in fv.upbit_ws.served["KRW-BTC"]}
        assert [st for _, st in books] == ["SNAPSHOT", "REALTIME", "REALTIME", "REALTIME"]
        for m, _ in books:
            want = served[m.ts_venue // 1_000_000]
            n = len(m.bids)
            assert tuple((lv.price, lv.qty) for lv in m.bids) == tuple(want.bids[:n])
            assert tuple((lv.price, lv.qty) for lv in m.asks) == tuple(want.asks[:n])
    run(body, speed=10)


def test_store_replay_streams_both_venues(tmp_path: Path) -> None:
    """The importer's store (the raw L2 -> book + depth_diff, the Upbit snapshots -> book) drives both WS."""
    from arbitrage_lite.infra.data.importer import run_import

    run_import([L2, STATIC_BOOKS["upbit"]["KRW-BTC"]], tmp_path / "store")

    async def body(fv: FakeVenues, info: dict[str, Any], session: aiohttp.ClientSession) -> None:
        seen = await _sync_client(fv, info, session, 150)
        assert seen["checked"] >= 140 and seen["reasons"] == []
        top = fv.binance_ws.served["BTCUSDT"] if fv.binance_ws else {}
        assert all(not b or not a or b[0][0] < a[0][0] for b, a in top.values())  # never a crossed book
        assert Decimal(0) not in {q for b, a in top.values() for _, q in (*b, *a)}
    run(body, binance_l2=None, store=tmp_path / "store")
    # the whole recording: the store keeps no lastUpdateId, one straddling diff is missed; the level it would
    # have removed is removed (and sent) when it would cross, so no served book is ever crossed
    feed = feed_from_store(Store(tmp_path / "store"), "BTC-USDT")
    assert feed is not None
    crossed = removed = 0
    for _, stream, d in feed.msgs:
        if stream.startswith("depth") and d["u"] > feed.update_id:
            removed += feed.apply(d)
            bids, asks = feed.top(1)
            crossed += bool(bids and asks and bids[0][0] >= asks[0][0])
    assert crossed == 0 and removed == 1
