"""``one_leg_unhedged``: the route's trade book names each trade one-legged past the policy, once, while open."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from arbitrage_lite.actors.route_trades import TradeBook
from arbitrage_lite.core.domain import Side, Venue
from arbitrage_lite.core.order_fsm import EventKind, Order, OrderEvent
from arbitrage_lite.core.risk import RiskLimits

D = Decimal
S = 1_000_000_000


def entry(book: TradeBook, trip: int, ts: int) -> None:
    buy = Order(f"u{trip}", Venue.UPBIT, "BTC-KRW", Side.BUY, D("0.5"))
    sell = Order(f"b{trip}", Venue.BINANCE, "BTC-USDT", Side.SELL, D("0.5"))
    book.on_sent(trip, "o", [buy, sell], D("100000000"), ts)
    for cid in (f"u{trip}", f"b{trip}"):
        book.on_event(cid, OrderEvent(EventKind.ACK, ts + 10, ts + 20))


def fill(book: TradeBook, cid: str, ts: int) -> None:
    book.on_event(cid, OrderEvent.fill(f"t-{cid}", D("0.5"), D("100"), ts - 5, ts))


def test_a_trade_one_legged_past_the_policy_is_named_once() -> None:
    limit = int(RiskLimits().max_unhedged_s * S)
    book = TradeBook("run", "BTC", D("0.00001"))
    entry(book, 1, 0)
    entry(book, 2, 0)
    fill(book, "u1", 1 * S)  # trip 1: the Upbit leg filled, Binance not yet
    fill(book, "u2", 1 * S)
    fill(book, "b2", 2 * S)  # trip 2: hedged after 1 s
    assert book.unhedged == {1}
    assert book.overdue(1 * S + limit, limit) == []  # exactly at the limit: not past it
    late = book.overdue(1 * S + limit + 1, limit)
    assert [t.trade_id for t in late] == ["run-BTC-1"] and late[0].net_exposure == D("0.5")
    assert book.overdue(5 * S + limit, limit) == []  # paged once
    fill(book, "b1", 3 * S + limit)
    assert book.unhedged == set() and book.stats()["unhedged_paged"] == 1


def test_the_timer_pages_a_trade_whose_venue_stopped_answering() -> None:
    """No leg settles while a venue is silent, so the check on settling never runs: the book's timer pages the
    one-legged trade once it is past the policy, and returns once nothing is one-legged."""
    import asyncio

    limit = 10 * S
    book = TradeBook("run", "BTC", D("0.00001"))
    entry(book, 1, 0)
    fill(book, "u1", 1 * S)
    clock = [1 * S]
    paged: list[tuple[str, int]] = []

    def tick() -> int:
        clock[0] += 3 * S  # each timer turn is 3 s later on the clock
        if clock[0] > 20 * S:
            fill(book, "b1", clock[0])  # the Binance leg's answer at last
        return clock[0]

    asyncio.run(asyncio.wait_for(book.watch_unhedged(
        limit, lambda trade, now: paged.append((trade.trade_id, now)), tick, 0.001), 5))
    assert paged == [("run-BTC-1", 13 * S)]  # first turn past 1 s + 10 s, once
    assert book.unhedged == set()


@pytest.mark.ray
def test_a_replay_pages_a_leg_one_legged_in_market_time(sample_stores: dict[str, Path], tmp_path: Path,
                                                         ray_session: object) -> None:
    """Paper replays as fast as it can: a Binance outage leaves a 10M KRW leg alone for a market minute, a few
    milliseconds of wall time. The trade book runs on the market clock in a replay, so the P0 is raised, once
    per such trip, as the backtest's unhedged time says (on the wall clock it was never raised, and in a
    compressed soak it was raised for legs that waited on the replay, not on the market)."""
    import functools

    from arbitrage_lite.scenarios.backtest import BacktestRequest, _load_routes, replay_routes
    from arbitrage_lite.scenarios.paper import PaperRequest, run_paper
    from arbitrage_lite.scenarios.stress import StressParams, anchor_of, apply_route, catalogue, prepare

    store = sample_stores["btc"]
    req = BacktestRequest(store=store, routes="BTC", out=tmp_path, use_ray=False, progress=False, risk=False)
    datas = _load_routes(req, ["BTC"])
    base, _ = replay_routes(datas, req.config)
    sc = anchor_of(base).place(catalogue(StressParams())["venue_down"])
    runs, _ = replay_routes(*prepare(sc, datas, req.config))
    policy_ns = int(RiskLimits().max_unhedged_s * S)
    long_trips = [t for t in runs[0].real.trips if t.unhedged_ns > policy_ns]
    assert long_trips  # the outage made one
    paper = run_paper(PaperRequest(store=store, routes="BTC", out=tmp_path / "paper", risk=None,
                                   config=sc.apply_config(req.config), transform=functools.partial(apply_route, sc)))
    pages = [a for a in paper["paper"]["alerts"] if a["rule"] == "one_leg_unhedged"]
    assert len(pages) == len(long_trips) and all(a["severity"] == "P0" for a in pages)
