"""Long runs stay bounded: what a route keeps of its orders, client ids and latencies does not grow with the run."""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace

import pytest

from arbitrage_lite.actors import route as route_mod
from arbitrage_lite.core.domain import Side, Venue
from arbitrage_lite.core.order_fsm import EventKind, Order, OrderEvent
from arbitrage_lite.core.recent import Samples


def test_samples_keep_the_last_and_readers_take_what_is_new() -> None:
    s = Samples(3)
    for x in range(5):
        s.append(float(x))
    assert list(s) == [2.0, 3.0, 4.0] and s.total == 5 and len(s) == 3
    assert s.since(4) == [4.0] and s.since(5) == [] and s.since(0) == [2.0, 3.0, 4.0]  # a late reader: the kept
    with pytest.raises(ValueError):
        Samples(0)


def _order(cid: str, done: bool) -> Order:
    o = Order(cid, Venue.UPBIT, "BTC-KRW", Side.BUY, Decimal("0.1")).apply(OrderEvent(EventKind.SUBMIT, -1, 1))
    return o.apply(OrderEvent(EventKind.REJECT, 2, 3, reason="test")) if done else o


def test_a_route_forgets_its_oldest_finished_orders_and_counts_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(route_mod, "ORDERS_KEPT", 3)
    orders = {f"c{i}": _order(f"c{i}", done=i != 1) for i in range(6)}  # c1 still open
    r = SimpleNamespace(orders=orders, sent={0: ((), "c0", None)}, order_counts={"REJECTED": 10})
    route_mod.RouteActor._retire_orders(r)  # type: ignore[arg-type]
    # c0 is a slot's current order and c1 is open: both stay; the oldest finished others go, counted
    assert list(r.orders) == ["c0", "c1", "c5"] and r.order_counts == {"REJECTED": 13}


def test_a_trade_book_folds_its_oldest_finished_trades_into_the_totals(monkeypatch: pytest.MonkeyPatch) -> None:
    from test_unhedged_page import entry, fill

    from arbitrage_lite.actors import route_trades
    from arbitrage_lite.actors.route_trades import TradeBook

    monkeypatch.setattr(route_trades, "TRADES_KEPT", 2)
    book = TradeBook("run", "BTC", Decimal("0.00001"))
    s = 1_000_000_000
    for trip in range(5):
        t0 = trip * 100 * s
        entry(book, trip, t0)
        fill(book, f"u{trip}", t0 + s)
        fill(book, f"b{trip}", t0 + 3 * s)  # one-legged for 2 s
        if trip == 4:
            break  # the last one stays open
        sell = Order(f"cu{trip}", Venue.UPBIT, "BTC-KRW", Side.SELL, Decimal("0.5"))
        buy = Order(f"cb{trip}", Venue.BINANCE, "BTC-USDT", Side.BUY, Decimal("0.5"))
        book.on_sent(trip, "c", [sell, buy], Decimal("100000000"), t0 + 10 * s)
        for cid in (f"cu{trip}", f"cb{trip}"):
            book.on_event(cid, OrderEvent(EventKind.ACK, t0 + 11 * s, t0 + 11 * s))
            fill(book, cid, t0 + 12 * s)
    st = book.stats()
    assert sorted(book.trades) == [2, 3, 4]  # two finished kept and the open one; trips 0 and 1 folded
    assert st["trades"] == 5 and st["status"] == {"CLOSED": 4, "HEDGED_OPEN": 1}
    assert st["unhedged_ns_total"] == 5 * 2 * s and st["errors"] == 0
    assert not any(c.endswith(("0", "1")) for c in book._trip_of)  # their orders forgotten too
