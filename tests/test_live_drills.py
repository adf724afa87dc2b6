"""Chaos drills on the live path (issue 13 §4): the live host on the local fake venues while the feed is
killed, orders are answered 5xx after being accepted, the Binance stream skips a diff; plus the broken-book
guard and the feed supervisor they rely on, alone and deterministic."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from arbitrage_lite.actors.live_host import LiveHostActor, LiveSpec, VenueEndpoint
from arbitrage_lite.core.events import K_CLEAR, EventBatch
from arbitrage_lite.core.venue import BookDelta, BookLevel, BookSnapshot, Rejected
from arbitrage_lite.infra.live.market import BookBreak, LiveMarket
from arbitrage_lite.infra.venues.stream_loop import Marker
from arbitrage_lite.scenarios.live_drills import LiveDrillRequest, Probe, run_live_drill, trades_on_broken_books

pytestmark = pytest.mark.timeout(120)


def _drill(kind: str, out: Path, **kw: Any) -> dict[str, Any]:
    result = run_live_drill(LiveDrillRequest(kind, out, **kw))
    assert json.loads((out / "drill.json").read_text())["passed"] == result["passed"]
    return result


def _common(result: dict[str, Any]) -> None:
    orders = result["orders"]
    assert orders["sent"] > 0 and orders["sent"] == orders["unique_client_ids_sent"] == orders["issued_by_routes"]
    assert result["duplicated_orders"] == 0 and orders["duplicated_at_fakes"] == 0
    assert orders["orders_at_fakes"] >= orders["sent"] - len(orders["sent_not_at_fakes"])
    assert result["trades_on_broken_book"] == 0
    assert result["passed"], result["checks"]


def test_feed_kill_drill_reconnects_resyncs_and_sends_nothing_twice(tmp_path: Path) -> None:
    result = _drill("live-feed-kill", tmp_path, times=2)
    _common(result)
    assert result["kills"] == result["recovered"] == 2
    assert [k["how"] for k in result["kill_log"]] == ["ws_drop", "feed_task_cancel"]
    assert all(k["books_broken"] == k["books_repaired"] == 4 for k in result["kill_log"])  # 2 routes x 2 venues
    assert result["feed_restarts"] == {"upbit": 1, "binance": 1}  # the cancelled tasks, started again
    assert 0 < result["recover_s_max"] < 5
    breaks = result["broken_books"]
    assert len(breaks) == 8 and all(b["empty_books_delivered"] == 1 and b["book_events_delivered"] == 0
                                    for b in breaks)


def test_5xx_after_accept_is_resolved_by_client_id_never_resent(tmp_path: Path) -> None:
    result = _drill("live-5xx", tmp_path, times=2)
    _common(result)
    unknowns = result["unknown_outcomes"]
    assert sorted(u["venue"] for u in unknowns) == ["binance", "binance", "upbit", "upbit"]
    for u in unknowns:
        assert u["sent"] == 1 and u["orders_at_venue"] == 1, u
        assert u["resolved"] and u["matches_venue"] and u["resolved_as"] in ("FILLED", "EXPIRED"), u
        assert Decimal(u["route_booked"]) == Decimal(u["venue_filled"])
    assert result["recovered"] == 4


def test_ws_gap_resyncs_and_nothing_is_decided_on_the_broken_book(tmp_path: Path) -> None:
    result = _drill("live-ws-gap", tmp_path, times=2)
    _common(result)
    assert result["gaps"] == result["recovered"] == 2
    gapped = [b for b in result["broken_books"] if "sequence_gap" in b["why"]]
    assert len(gapped) == 2
    for b in gapped:
        assert b["venue"] == "binance" and b["repaired"] and b["broken_for_ms"] >= 1000  # the slow REST resync
        assert b["book_events_delivered"] == 0 and not b["legs_decided_on_it"] and not b["orders_sent_on_it"]
    assert sum(b["upbit_messages_meanwhile"] for b in gapped) > 0  # decision points did come, and were refused


# ---- the guard and the supervisor alone
def _snap(symbol: str, venue: str = "binance", seq: int | None = 1) -> BookSnapshot:
    lv = (BookLevel(Decimal(100), Decimal(1)),)
    ask = (BookLevel(Decimal(101), Decimal(1)),)
    return BookSnapshot(venue, symbol, lv, ask, seq, time.time_ns(), time.time_ns())


class _Books:
    """The Binance adapter's books as the market reads them: synced or not, per symbol."""

    def __init__(self) -> None:
        self.books: dict[str, Any] = {}

    def set(self, symbol: str, synced: bool) -> None:
        self.books[symbol] = type("B", (), {"synced": synced, "snapshot": lambda _self, n: _snap(symbol)})()


async def _stream(items: list[Any], books: _Books, unsync: dict[int, str]) -> Any:
    for i, item in enumerate(items):
        if i in unsync:
            books.set(unsync[i], False)  # what the adapter does before it reports a gap
        if isinstance(item, BookSnapshot):
            books.set(item.symbol, True)
        yield item


def test_a_gap_clears_the_routes_book_until_a_full_book_repairs_it() -> None:
    got: list[tuple[str, str, str]] = []

    def deliver(base: str, source: str, ev: EventBatch, _received: int) -> None:
        got.append((base, source, ("empty" if len(ev) == 2 else "book") if ev.kind[0] == K_CLEAR else "delta"))

    market = LiveMarket(["BTC", "ETH"], deliver)
    books = _Books()
    market.binance_client = books
    delta = BookDelta("binance", "BTCUSDT", (BookLevel(Decimal(100), Decimal(2)),), (), 5, 5, 1, 1)
    gap = Rejected("binance", "sequence_gap", "U 9 after 5", 1)
    items = [_snap("BTCUSDT"), _snap("ETHUSDT"), delta, gap, delta, _snap("BTCUSDT", seq=9), delta]
    asyncio.run(market.run_binance(_stream(items, books, {3: "BTCUSDT"})))
    btc = [k for b, _, k in got if b == "BTC"]
    assert btc == ["book", "delta", "empty", "book", "delta"]  # the delta inside the gap never reached the route
    assert [k for b, _, k in got if b == "ETH"] == ["book"]  # the other symbol's book was never touched
    assert [(b.base, b.kind) for b in market.breaks] == [("BTC", "broken"), ("BTC", "repaired")]
    assert market.counts["binance"].skipped["delta_on_broken_book"] == 1 and not market.broken


def test_a_disconnect_breaks_every_book_of_the_venue_and_the_gateways_see_none() -> None:
    got: list[tuple[str, str]] = []
    market = LiveMarket(["BTC", "ETH"], lambda b, s, ev, _r: got.append((b, s)))
    market.books[("upbit", "KRW-BTC")] = _snap("KRW-BTC", "upbit", None)
    market._other(market.counts["upbit"], Marker("upbit", "disconnected", "websocket closed", 1, 1))
    assert sorted(got) == [("BTC", "upbit"), ("ETH", "upbit")]
    assert market.book("upbit", "KRW-BTC") is None and set(market.broken) == {("upbit", "BTC"), ("upbit", "ETH")}
    market._other(market.counts["upbit"], Marker("upbit", "connected", "2 streams", 1, 1))
    assert len(got) == 2  # a connect is not a break (the next books repair)


def test_the_breach_check_counts_a_leg_decided_on_a_broken_book() -> None:
    """The drills' pass condition can fail: a leg whose kernel decision time falls inside a broken interval."""
    from arbitrage_lite.scenarios.live_drills import _interval

    p = Probe(t0=0)
    b = BookBreak("binance", "BTC", "broken", "gap", ts=1_000, at=10)
    p.legs = [{"base": "BTC", "client_id": "in", "decision_ts": 1_500}, {"base": "BTC", "client_id": "after",
                                                                         "decision_ts": 2_000},
              {"base": "ETH", "client_id": "other", "decision_ts": 1_500}]
    p.deliveries[("BTC", "binance")] = [(11, "empty"), (15, "delta"), (30, "book")]
    got = _interval(p, b, 20, 2_000)
    assert got["legs_decided_on_it"] == ["in"] and got["book_events_delivered"] == 1
    assert trades_on_broken_books([got]) == 2


def test_the_host_restarts_a_feed_that_ends_with_backoff() -> None:
    ep = VenueEndpoint("http://127.0.0.1:9", "ws://127.0.0.1:9", "k", "s")
    host = LiveHostActor(LiveSpec({}, ep, ep))
    starts: list[float] = []

    async def feed() -> None:  # ends at once: an Upbit stream that gave up after its reconnects
        starts.append(time.monotonic())

    async def go() -> None:
        sup = asyncio.create_task(host._supervise("upbit", feed))
        end = time.monotonic() + 5
        while len(starts) < 4 and time.monotonic() < end:
            await asyncio.sleep(0.02)
        sup.cancel()

    asyncio.run(go())
    assert len(starts) >= 4 and host.feed_restarts["upbit"] >= 3
    waits = [b - a for a, b in itertools.pairwise(starts)]
    assert waits[0] >= 0.09 and waits[1] > 1.5 * waits[0] and waits[2] > 1.5 * waits[1]  # 0.1, 0.2, 0.4 s


@pytest.mark.ray
def test_route_kill_with_an_order_in_flight_is_reconciled_by_client_id(ray_session: Any, tmp_path: Path) -> None:
    """The host's process is killed while the fakes hold its orders; a new host (new run id, same journal)
    finds each one that reached a venue by client id, with the venue's filled quantity, and resends none."""
    result = _drill("live-route-kill", tmp_path)
    assert result["passed"], result["checks"]
    rows = result["in_flight_at_kill"]
    assert rows and all(r["resolution"] == "resolved" and r["orders_at_venue"] == 1 for r in rows)
    for r in rows:  # executed quantity known exactly: as fills to book, or flagged as unlisted (Binance)
        assert Decimal(r["reconciled_filled"]) == Decimal(r["venue_filled"]) > 0
    assert result["duplicated_orders"] == 0 and result["orders"]["unique_client_ids"] == result["orders"]["at_fakes"]
    assert all(o["resolution"] in ("not_found", "match") for o in result["other_orders_of_the_killed_run"].values())
