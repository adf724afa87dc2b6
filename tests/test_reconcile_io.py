"""infra.reconcile_io: the journal's records read into orders, venues asked with timeouts, one report; against an
in-memory VenueClient fake and the paper Upbit venue."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from decimal import Decimal

from arbitrage_lite.core.client_ids import format_client_id
from arbitrage_lite.core.domain import Side, Venue
from arbitrage_lite.core.order_fsm import EventKind, Order, OrderStatus
from arbitrage_lite.core.order_fsm import OrderEvent as FsmEvent
from arbitrage_lite.core.reconcile import ReconcileConfig, Resend, Resolution
from arbitrage_lite.core.venue import (
    Balance,
    CancelOrder,
    OrderEvent,
    OrderState,
    OrderType,
    PlaceOrder,
    QueryOrder,
    RejectReason,
)
from arbitrage_lite.infra.journal import (
    JournalRecord,
    Kind,
    fill_event_record,
    intent_record,
    order_event_record,
)
from arbitrage_lite.infra.reconcile_io import VenueAccess, journal_orders, reconcile
from arbitrage_lite.infra.venues.paper_client import PaperClient, PaperExchange

D = Decimal
SEC = 1_000_000_000
T0 = 1_750_000_000 * SEC
RUN = "run1"
CFG = ReconcileConfig(grace_ns=10 * SEC)


def cid(seq: int, route: str = "BTC") -> str:
    return format_client_id("al", RUN, seq, route, "ou")


class FakeReader:
    """The journal backend's ``records`` over a list (round-tripped through JSON, as a backend stores them)."""

    def __init__(self, records: Sequence[JournalRecord]) -> None:
        self.rows = [JournalRecord.from_json(r.to_json()) for r in records]
        self.asked: list[tuple[str, Kind | str | None]] = []

    async def records(self, run_id: str, kind: Kind | str | None = None) -> list[JournalRecord]:
        self.asked.append((run_id, kind))
        return [r for r in self.rows if r.run_id == run_id and (kind is None or r.kind == Kind(kind))]


class FakeVenue:
    """A VenueClient in memory: orders by client id, a list of open ones, balances; ``hang`` ids never answer,
    ``broken`` makes balances raise."""

    def __init__(self, venue: str, orders: Sequence[OrderEvent] = (), held: Sequence[Balance] = (),
                 hang: frozenset[str] = frozenset(), broken: bool = False) -> None:
        self.venue, self.orders, self.held = venue, {o.client_id: o for o in orders}, list(held)
        self.hang, self.broken = hang, broken
        self.queried: list[QueryOrder] = []

    async def place(self, cmd: PlaceOrder) -> OrderEvent:
        raise AssertionError("reconciliation never places orders")

    async def cancel(self, cmd: CancelOrder) -> OrderEvent:
        raise AssertionError("reconciliation never cancels orders")

    async def query(self, cmd: QueryOrder) -> OrderEvent:
        self.queried.append(cmd)
        if cmd.client_id in self.hang:
            await asyncio.Event().wait()
        found = self.orders.get(cmd.client_id)
        if found is None:
            return OrderEvent(self.venue, cmd.client_id, None, cmd.symbol, OrderState.REJECTED, D(0),
                              reason=RejectReason.NOT_FOUND)
        return found

    async def open_orders(self, symbol: str | None = None) -> Sequence[OrderEvent]:
        return [o for o in self.orders.values() if o.state in (OrderState.ACCEPTED, OrderState.PARTIALLY_FILLED)]

    async def balances(self) -> Sequence[Balance]:
        if self.broken:
            raise ConnectionError("connection reset")
        return self.held


def upbit_symbol(symbol: str) -> str:
    return f"KRW-{symbol.partition('-')[0]}"


def journaled(order: Order, ts: int, *events: FsmEvent) -> list[JournalRecord]:
    """The intent, then each event applied and journaled (a FILL also as its fill record)."""
    records = [intent_record(RUN, "BTC", order, ts)]
    for ev in events:
        order = order.apply(ev)
        records.append(order_event_record(RUN, "BTC", order))
        if ev.kind is EventKind.FILL:
            records.append(fill_event_record(RUN, "BTC", order, ev))
    return records


def submit(ts: int) -> FsmEvent:
    return FsmEvent(EventKind.SUBMIT, -1, ts)


def test_journal_records_read_back_into_orders() -> None:
    o = Order(cid(1), Venue.UPBIT, "BTC-KRW", Side.SELL, D("0.5"), D("100000000"))
    recs = journaled(o, T0, submit(T0), FsmEvent(EventKind.ACK, T0 + 5, T0 + 6),
                        FsmEvent.fill("t1", D("0.2"), D("100000000"), T0 + 7, T0 + 8, fee=D("10000")))
    never = Order(cid(2), Venue.BINANCE, "BTC-USDT", Side.BUY, D("0.1"))
    recs.append(intent_record(RUN, "BTC", never, T0 + 9))
    orders = journal_orders(FakeReader(recs).rows)
    got = orders[cid(1)]
    assert (got.venue, got.route, got.symbol, got.side, got.qty) == ("upbit", "BTC", "BTC-KRW", Side.SELL, D("0.5"))
    assert (got.status, got.filled_qty, got.trade_ids, got.last_ns) == (
        OrderStatus.PARTIALLY_FILLED, D("0.2"), frozenset({"t1"}), T0 + 8)
    assert (orders[cid(2)].status, orders[cid(2)].venue, orders[cid(2)].filled_qty) == (
        OrderStatus.INITIALIZED, "binance", D(0))


def test_estimated_fills_are_read_as_estimates() -> None:
    o = Order(cid(3), Venue.BINANCE, "BTC-USDT", Side.BUY, D("1"))
    est = FsmEvent.fill(f"{cid(3)}:est", D("1"), D("60000"), T0 + 1, T0 + 2)
    recs = journaled(o, T0, submit(T0), FsmEvent(EventKind.ACK, T0 + 1, T0 + 2), est)
    got = journal_orders(recs)[cid(3)]
    assert [(f.trade_id, f.qty, f.price, f.fee_asset) for f in got.estimated] == [
        (f"{cid(3)}:est", D(1), D(60000), "USDT")]


def test_reconcile_asks_what_is_open_or_recent_and_survives_a_silent_venue() -> None:
    now = T0 + 3600 * SEC

    def order(seq: int) -> Order:
        return Order(cid(seq), Venue.UPBIT, "BTC-KRW", Side.BUY, D("0.01"), D("100000000"))

    r1 = journaled(order(1), T0, submit(T0), FsmEvent(EventKind.ACK, T0 + 1, T0 + 1),
                             FsmEvent(EventKind.CANCELED, T0 + 2, T0 + 2))
    r2 = journaled(order(2), now - SEC, submit(now - SEC), FsmEvent(EventKind.ACK, now - SEC, now - SEC),
                                FsmEvent(EventKind.CANCELED, now - SEC + 1, now - SEC + 1))
    r3 = journaled(order(3), now - 2 * SEC, submit(now - 2 * SEC), FsmEvent(EventKind.TIMEOUT, -1, now - SEC))
    cancelled = [OrderEvent("upbit", c, "v", "KRW-BTC", OrderState.CANCELLED, D(0)) for c in (cid(1), cid(2))]
    venue = FakeVenue("upbit", cancelled, hang=frozenset({cid(3)}), broken=True)
    reader = FakeReader([*r1, *r2, *r3])
    report = asyncio.run(reconcile([VenueAccess(venue, upbit_symbol)], reader, [RUN], {}, CFG, lambda: now,
                                   routes=["BTC"], recent_ns=60 * SEC, timeout_s=0.05))
    assert sorted(q.client_id for q in venue.queried) == [cid(2), cid(3)]  # old and terminal: not asked
    assert {q.symbol for q in venue.queried} == {"KRW-BTC"}
    by_id = {c.client_id: c for c in report.orders}
    assert by_id[cid(2)].resolution is Resolution.MATCH
    assert by_id[cid(3)].resolution is Resolution.UNVERIFIED and "timed out" in by_id[cid(3)].detail
    assert [i.detail for i in report.issues] == [
        "balances unavailable: orders or balances not checked (balances: ConnectionError: connection reset)"]
    assert report.halt_venues == {"upbit"} and report.halt_routes == {"BTC"}
    assert {k for _, k in reader.asked} == {Kind.INTENT, Kind.ORDER_EVENT, Kind.FILL}


def _paper() -> tuple[PaperExchange, PaperClient]:
    ex = PaperExchange.upbit(["KRW-BTC"], {"KRW": D(100_000_000), "BTC": D(1)}, "paper-secret")
    ex.set_book("KRW-BTC", [(D("99000000"), D("1"))], [(D("100000000"), D("1"))], T0)
    return ex, PaperClient(ex, "paper-secret", clock=lambda: T0)


def test_reconcile_against_the_paper_upbit_venue() -> None:
    """An order whose answer was lost (UNKNOWN) is found filled; an order the journal never made rests on the
    venue (orphan); an order journaled, never sent, is not found after the grace (resend with a new id); the
    balances agree once the found fills are counted."""
    ex, client = _paper()
    lost = Order(cid(1), Venue.UPBIT, "BTC-KRW", Side.BUY, D("0.01"), D("100000000"))
    recs = journaled(lost, T0 - SEC, submit(T0 - SEC), FsmEvent(EventKind.TIMEOUT, -1, T0))
    ex.faults.error_after_accept = 1
    first = asyncio.run(client.place(PlaceOrder(cid(1), "KRW-BTC", Side.BUY, OrderType.IOC, D("0.01"),
                                                D("100000000"), ts_local=T0 - SEC)))
    assert first.state is OrderState.UNKNOWN
    resting = asyncio.run(client.place(PlaceOrder(cid(7, "ETH"), "KRW-BTC", Side.SELL, OrderType.LIMIT, D("0.02"),
                                                  D("101000000"), ts_local=T0)))
    assert resting.state is OrderState.ACCEPTED
    never = Order(cid(2), Venue.UPBIT, "BTC-KRW", Side.SELL, D("0.01"), D("99000000"))
    never_recs = journaled(never, T0 - 60 * SEC, submit(T0 - 60 * SEC))
    expected = {("upbit", "KRW"): D(100_000_000), ("upbit", "BTC"): D(1)}
    report = asyncio.run(reconcile([VenueAccess(client, upbit_symbol)], FakeReader([*recs, *never_recs]), [RUN],
                                   expected, CFG, lambda: T0 + SEC, routes=["BTC", "ETH"]))
    by_id = {c.client_id: c for c in report.orders}
    found = by_id[cid(1)]
    assert (found.resolution, found.venue_status, found.venue_filled_qty) == (
        Resolution.RESOLVED, OrderStatus.FILLED, D("0.01"))
    assert [(f.qty, f.price, f.fee_asset) for f in found.fills_to_book] == [(D("0.01"), D("100000000"), "KRW")]
    assert (by_id[cid(2)].resolution, by_id[cid(2)].resend) == (Resolution.NOT_FOUND, Resend.NEW_ID)
    assert (by_id[cid(7, "ETH")].resolution, by_id[cid(7, "ETH")].route) == (Resolution.ORPHAN, "ETH")
    assert all(b.severity is None for b in report.balances), report.balances
    assert report.halt_routes == {"ETH"} and not report.halt_venues
    assert len(report.mismatches) == 1


def test_a_fill_the_paper_venue_made_behind_the_journals_back_is_found() -> None:
    """A resting order the journal knows as ACCEPTED fills on the venue (a later book crosses it): missing fills,
    P0, and the balances agree once they are booked."""
    ex, client = _paper()
    resting = Order(cid(4), Venue.UPBIT, "BTC-KRW", Side.SELL, D("0.03"), D("100000000"))
    placed = asyncio.run(client.place(PlaceOrder(cid(4), "KRW-BTC", Side.SELL, OrderType.LIMIT, D("0.03"),
                                                 D("100000000"), ts_local=T0)))
    assert placed.state is OrderState.ACCEPTED
    recs = journaled(resting, T0, submit(T0), FsmEvent(EventKind.ACK, placed.ts_venue, T0 + 1))
    ex.set_book("KRW-BTC", [(D("100000000"), D("1"))], [(D("100100000"), D("1"))], T0 + 2 * SEC)
    expected = {("upbit", "KRW"): D(100_000_000), ("upbit", "BTC"): D(1)}
    report = asyncio.run(reconcile([VenueAccess(client, upbit_symbol)], FakeReader(recs), [RUN], expected, CFG,
                                   lambda: T0 + 3 * SEC, routes=["BTC"]))
    [check] = report.orders
    assert (check.resolution, check.venue_filled_qty) == (Resolution.MISSING_FILLS, D("0.03"))
    assert sum((f.qty for f in check.fills_to_book), D(0)) == D("0.03")
    assert all(b.severity is None for b in report.balances), report.balances
    assert report.halt_routes == {"BTC"}


