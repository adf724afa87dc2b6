import itertools
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arbitrage_lite.core.domain import Side, Venue
from arbitrage_lite.core.order_fsm import (
    EXACT,
    RECONCILE_TRANSITIONS,
    TABLE_KINDS,
    TERMINAL,
    TRANSITIONS,
    VENUE_STATUSES,
    EventKind,
    InvalidTransition,
    Order,
    OrderEvent,
    OrderStatus,
    Overfill,
    from_binance_status,
    from_upbit_state,
)

D = Decimal
S, K = OrderStatus, EventKind
NEWER = 1_000  # venue time later than anything the fixtures apply


def new_order(qty: str = "1") -> Order:
    return Order("al-run1-1-BTC-b", Venue.BINANCE, "BTCUSDT", Side.BUY, D(qty), limit_price=D("60000"))


def ev(kind: EventKind, ts_venue: int = -1, ts_local: int = 0, **kw: object) -> OrderEvent:
    return OrderEvent(kind, ts_venue, ts_local, **kw)  # type: ignore[arg-type]


def fill(trade_id: str, qty: str, price: str = "60000", ts: int = 100, **kw: object) -> OrderEvent:
    return OrderEvent.fill(trade_id, D(qty), D(price), ts, ts + 7, **kw)  # type: ignore[arg-type]


def run(order: Order, *events: OrderEvent) -> Order:
    for e in events:
        order = order.apply(e)
    return order


def order_in(status: OrderStatus) -> Order:
    """An order brought to ``status`` by a real path; venue times stay below NEWER."""
    submit, ack = ev(K.SUBMIT, ts_local=1), ev(K.ACK, 10, 11)
    paths = {
        S.INITIALIZED: [],
        S.SUBMITTED: [submit],
        S.ACCEPTED: [submit, ack],
        S.PARTIALLY_FILLED: [submit, ack, fill("f1", "0.4", ts=20)],
        S.FILLED: [submit, ack, fill("f1", "1", ts=20)],
        S.CANCEL_PENDING: [submit, ack, ev(K.CANCEL_REQUEST, ts_local=21)],
        S.CANCELED: [submit, ack, fill("f1", "0.4", ts=20), ev(K.CANCEL_REQUEST, ts_local=21),
                     ev(K.CANCELED, 30, 31, cum_qty=D("0.4"))],
        S.REJECTED: [submit, ev(K.REJECT, 10, 11, reason="insufficient balance")],
        S.EXPIRED: [submit, ev(K.EXPIRE, 10, 11, cum_qty=D(0))],
        S.UNKNOWN: [submit, ev(K.TIMEOUT, ts_local=5_000_000_000)],
    }
    order = run(new_order(), *paths[status])
    assert order.status is status
    return order


def event_for(kind: EventKind, order: Order) -> OrderEvent:
    if kind is K.FILL_PARTIAL:
        return fill("new-partial", "0.1", ts=NEWER)
    if kind is K.FILL_FULL:
        return fill("new-full", str(order.remaining_qty or order.qty), ts=NEWER)
    return ev(kind, -1 if kind in (K.SUBMIT, K.CANCEL_REQUEST, K.TIMEOUT) else NEWER, NEWER + 1)


# ---- the tables themselves


@pytest.mark.parametrize(("status", "kind"), list(itertools.product(OrderStatus, TABLE_KINDS)))
def test_every_status_event_pair_follows_the_table(status: OrderStatus, kind: EventKind) -> None:
    order = order_in(status)
    snapshot = order_in(status)
    event = event_for(kind, order)
    if (status, kind) in TRANSITIONS:
        after = order.apply(event)
        assert after.status is TRANSITIONS[(status, kind)]
        assert after.events[-1] is event
    else:
        with pytest.raises(InvalidTransition):
            order.apply(event)
        assert order == snapshot


def reconcile_cum(venue_status: OrderStatus, order: Order) -> Decimal:
    if venue_status is S.PARTIALLY_FILLED:
        return max(D("0.5"), order.executed_qty)
    if venue_status is S.FILLED:
        return order.qty
    if venue_status in (S.CANCELED, S.EXPIRED):
        return order.executed_qty
    return D(0)


@pytest.mark.parametrize(("status", "venue_status"), list(itertools.product(OrderStatus, VENUE_STATUSES)))
def test_every_reconcile_answer_follows_the_reconcile_table(status: OrderStatus, venue_status: OrderStatus) -> None:
    order, snapshot = order_in(status), order_in(status)
    cum = reconcile_cum(venue_status, order)
    event = OrderEvent.reconcile(venue_status, cum, NEWER, NEWER + 1)
    if (status, venue_status) in RECONCILE_TRANSITIONS:
        after = order.apply(event)
        assert after.status is RECONCILE_TRANSITIONS[(status, venue_status)]
        assert after.venue_filled_qty == max(order.venue_filled_qty, cum)
    else:
        with pytest.raises(InvalidTransition):
            order.apply(event)
        assert order == snapshot


def test_table_shape() -> None:
    assert {k for _, k in TRANSITIONS} <= set(TABLE_KINDS)
    assert not [key for key in TRANSITIONS if key[0] in TERMINAL]  # terminal states change status on nothing
    assert all(target is status for (status, _), target in RECONCILE_TRANSITIONS.items() if status in TERMINAL)
    assert S.FILLED.is_terminal and not S.UNKNOWN.is_terminal


# ---- fills: dedupe, overfill, average


def test_duplicate_trade_id_is_ignored() -> None:
    order = run(order_in(S.ACCEPTED), fill("t1", "0.25", "100"))
    assert order.apply(fill("t1", "0.25", "100", ts=101)) is order
    assert order.filled_qty == D("0.25") and len(order.events) == 3
    full = order.apply(fill("t2", "0.75", "104", ts=102))
    assert full.status is S.FILLED and full.apply(fill("t2", "0.75", "104")) is full  # no overfill: a duplicate
    assert full.avg_price == D("103") and full.fees == 0


def test_overfill_is_refused_and_changes_nothing() -> None:
    order = run(order_in(S.ACCEPTED), fill("t1", "0.7"))
    with pytest.raises(Overfill):
        order.apply(fill("t2", "0.4", ts=200))
    with pytest.raises(Overfill):
        order.apply(OrderEvent.reconcile(S.PARTIALLY_FILLED, D("1.5"), 300, 301))
    with pytest.raises(Overfill):
        order.apply(fill("t3", "0.1", ts=200, cum_qty=D("1.2")))
    assert order.filled_qty == D("0.7") and order.status is S.PARTIALLY_FILLED and len(order.events) == 3


def test_fill_totals_and_fees_are_exact() -> None:
    order = run(order_in(S.ACCEPTED), fill("a", "0.1", "3", fee=D("0.0003")), fill("b", "0.2", "3.3", ts=101))
    assert order.filled_qty == D("0.3") and order.filled_notional == D("0.96") and order.fees == D("0.0003")
    assert order.avg_price == D("3.2") and order.remaining_qty == D("0.7")


# ---- REST/WebSocket races: stale reports


def test_stale_ack_after_fill_is_ignored_not_backwards() -> None:
    order = run(order_in(S.SUBMITTED), fill("t1", "0.5", ts=200))
    assert order.status is S.PARTIALLY_FILLED
    late_ack = order.apply(ev(K.ACK, 150, 300))  # a listed self-loop: recorded, moves nothing
    assert late_ack.status is S.PARTIALLY_FILLED and late_ack.last_ts_venue == 200
    stale_answer = OrderEvent.reconcile(S.ACCEPTED, D(0), 190, 310)
    assert order.apply(stale_answer) is order


def test_same_millisecond_ack_after_filled_is_ignored() -> None:
    order = run(order_in(S.SUBMITTED), fill("t1", "1", ts=200))
    assert order.status is S.FILLED and order.apply(ev(K.ACK, 200, 300)) is order


def test_newer_contradicting_report_raises() -> None:
    order = run(order_in(S.SUBMITTED), fill("t1", "0.5", ts=200))
    with pytest.raises(InvalidTransition):
        order.apply(OrderEvent.reconcile(S.ACCEPTED, D(0), 250, 260))
    with pytest.raises(InvalidTransition):
        run(order, fill("t2", "0.5", ts=201)).apply(ev(K.ACK, -1, 300))  # venue time unknown: cannot be stale


def test_stale_fill_still_counts() -> None:
    order = run(order_in(S.ACCEPTED), fill("t2", "0.3", ts=300), fill("t1", "0.2", ts=250))
    assert order.filled_qty == D("0.5") and order.last_ts_venue == 300


def test_late_fill_on_terminal_order_only_if_the_venue_counted_it() -> None:
    canceled = run(order_in(S.ACCEPTED), ev(K.CANCEL_REQUEST, ts_local=40), ev(K.CANCELED, 50, 51, cum_qty=D("0.4")))
    assert canceled.owed_qty == D("0.4") and canceled.executed_qty == D("0.4")
    settled = canceled.apply(fill("t1", "0.4", ts=45))
    assert settled.status is S.CANCELED and settled.owed_qty == 0 and settled.avg_price == D("60000")
    with pytest.raises(InvalidTransition):
        settled.apply(fill("t2", "0.1", ts=46))
    with pytest.raises(InvalidTransition):
        order_in(S.REJECTED).apply(fill("t3", "0.1", ts=5))


# ---- UNKNOWN and reconciliation


def test_timeout_then_reconcile_filled_then_trade_detail() -> None:
    unknown = order_in(S.UNKNOWN)
    filled = unknown.apply(OrderEvent.reconcile(S.FILLED, D("1"), 900, 6_000_000_000))
    assert filled.status is S.FILLED and filled.owed_qty == 1 and filled.avg_price is None
    done = run(filled, fill("t1", "0.6", "100", ts=800), fill("t2", "0.4", "110", ts=850))
    assert done.owed_qty == 0 and done.avg_price == D("104") and done.status is S.FILLED
    with pytest.raises(Overfill):
        done.apply(fill("t3", "0.1", ts=950))


@pytest.mark.parametrize(("venue_status", "cum"), [(S.ACCEPTED, "0"), (S.PARTIALLY_FILLED, "0.3"),
                                                   (S.CANCELED, "0"), (S.EXPIRED, "0.2")])
def test_timeout_then_reconcile_to_the_real_state(venue_status: OrderStatus, cum: str) -> None:
    order = order_in(S.UNKNOWN).apply(OrderEvent.reconcile(venue_status, D(cum), 900, 901))
    assert order.status is venue_status and order.executed_qty == D(cum)


def test_unknown_settled_by_a_websocket_fill() -> None:
    assert order_in(S.UNKNOWN).apply(fill("t1", "0.5", ts=900)).status is S.PARTIALLY_FILLED


def test_not_found_only_when_said_explicitly() -> None:
    unknown = order_in(S.UNKNOWN)
    assert unknown.apply(ev(K.TIMEOUT, ts_local=6)).status is S.UNKNOWN  # another timeout decides nothing
    rejected = unknown.apply(OrderEvent.not_found(7_000_000_000))
    assert rejected.status is S.REJECTED and rejected.events[-1].reason == "not found"
    assert new_order().apply(OrderEvent.not_found(1)).status is S.REJECTED  # crash before send: never sent
    with pytest.raises(InvalidTransition):
        order_in(S.ACCEPTED).apply(OrderEvent.not_found(8))


def test_cancel_timeout_keeps_fills_and_reconciles() -> None:
    order = run(order_in(S.PARTIALLY_FILLED), ev(K.CANCEL_REQUEST, ts_local=30), ev(K.TIMEOUT, ts_local=31))
    assert order.status is S.UNKNOWN and order.filled_qty == D("0.4")
    done = order.apply(OrderEvent.reconcile(S.CANCELED, D("0.4"), 40, 41))
    assert done.status is S.CANCELED and done.owed_qty == 0


# ---- venue status mapping


@pytest.mark.parametrize(("state", "executed", "volume", "expected"), [
    ("wait", "0", "1", S.ACCEPTED),
    ("wait", "0.3", "1", S.PARTIALLY_FILLED),
    ("watch", "0", "1", S.ACCEPTED),
    ("done", "1", "1", S.FILLED),
    ("cancel", "0", "1", S.CANCELED),
    ("cancel", "0.4", "1", S.CANCELED),  # partially filled, then cancelled: fills kept via cum_qty
    ("cancel", "1", "1", S.FILLED),
    ("cancel", "0.00993", None, S.FILLED),  # market buy by KRW amount: dust remainder cancelled
    ("cancel", "0", None, S.CANCELED),
])
def test_from_upbit_state(state: str, executed: str, volume: str | None, expected: OrderStatus) -> None:
    assert from_upbit_state(state, D(executed), None if volume is None else D(volume)) is expected


@pytest.mark.parametrize("state", ["trade", "prevented", "open", ""])
def test_from_upbit_state_refuses_events_and_unknown_states(state: str) -> None:
    with pytest.raises(ValueError):
        from_upbit_state(state, D(0), D(1))


@pytest.mark.parametrize(("status", "executed", "orig", "expected"), [
    ("NEW", "0", "1", S.ACCEPTED),
    ("PARTIALLY_FILLED", "0.2", "1", S.PARTIALLY_FILLED),
    ("FILLED", "1", "1", S.FILLED),
    ("CANCELED", "0", "1", S.CANCELED),
    ("CANCELED", "0.3", "1", S.CANCELED),
    ("EXPIRED", "0", "1", S.EXPIRED),
    ("EXPIRED", "0.3", "1", S.EXPIRED),  # IOC/market remainder expired: keeps its fills
    ("EXPIRED_IN_MATCH", "0", "1", S.EXPIRED),
    ("REJECTED", "0", "1", S.REJECTED),
])
def test_from_binance_status(status: str, executed: str, orig: str, expected: OrderStatus) -> None:
    assert from_binance_status(status, D(executed), D(orig)) is expected


@pytest.mark.parametrize(("status", "executed", "orig"), [("REJECTED", "0.1", "1"), ("NEW", "2", "1"),
                                                          ("PENDING", "0", "1"), ("FILLED", "-1", "1")])
def test_from_binance_status_refuses_nonsense(status: str, executed: str, orig: str) -> None:
    with pytest.raises(ValueError):
        from_binance_status(status, D(executed), D(orig))


def test_binance_expired_with_partial_fill_keeps_the_fills() -> None:
    order = run(order_in(S.SUBMITTED), fill("t1", "0.3", "60010", ts=50))
    status = from_binance_status("EXPIRED", D("0.3"), D("1"))
    done = order.apply(OrderEvent.reconcile(status, D("0.3"), 60, 61))
    assert done.status is S.EXPIRED and done.filled_qty == D("0.3") and done.avg_price == D("60010")


def test_upbit_market_buy_ending_cancel_is_filled() -> None:
    order = Order("al-run1-2-BTC-u", Venue.UPBIT, "BTC-KRW", Side.BUY, D("0.01"))  # budget / best ask
    order = run(order, ev(K.SUBMIT, ts_local=1), fill("u-1", "0.006", "100000000", ts=10),
                fill("u-2", "0.00393", "100100000", ts=11))
    status = from_upbit_state("cancel", D("0.00993"), None)
    done = order.apply(OrderEvent.reconcile(status, D("0.00993"), 12, 13))
    assert done.status is S.FILLED and done.filled_qty == D("0.00993") and done.owed_qty == 0


# ---- events and orders refuse bad values


@pytest.mark.parametrize("build", [
    lambda: OrderEvent.fill("", D(1), D(1), 1, 1),
    lambda: OrderEvent.fill("t", 0.5, D(1), 1, 1),  # a float
    lambda: OrderEvent.fill("t", D("NaN"), D(1), 1, 1),
    lambda: OrderEvent.fill("t", D(1), D(0), 1, 1),
    lambda: OrderEvent(K.FILL_FULL, 1, 1),
    lambda: OrderEvent(K.ACK, 1, 1, cum_qty=D(0)),
    lambda: OrderEvent(K.ACK, -2, 1),
    lambda: OrderEvent.reconcile(S.ACCEPTED, D("0.1"), 1, 1),
    lambda: OrderEvent.reconcile(S.FILLED, D(0), 1, 1),
    lambda: OrderEvent.reconcile(S.UNKNOWN, D(0), 1, 1),
    lambda: Order("c", Venue.UPBIT, "BTC-KRW", Side.BUY, D(0)),
])
def test_bad_values_are_refused(build: object) -> None:
    with pytest.raises(ValueError):
        build()  # type: ignore[operator]


def test_history_keeps_both_timestamps() -> None:
    order = run(order_in(S.ACCEPTED), fill("t1", "0.5", ts=200))
    assert [e.kind for e in order.events] == [K.SUBMIT, K.ACK, K.FILL]
    assert (order.events[-1].ts_venue, order.events[-1].ts_local) == (200, 207)


# ---- property: any shuffled / duplicated sequence of one order's fills gives the same result

fill_spec = st.tuples(st.integers(1, 10**8), st.integers(1, 10**13))  # qty, price in 1e-8 units


@settings(max_examples=200, deadline=None)
@given(st.lists(fill_spec, min_size=1, max_size=12), st.integers(0, 10**8), st.data())
def test_shuffled_duplicated_fills_give_the_same_result(specs: list[tuple[int, int]], spare: int,
                                                        data: st.DataObject) -> None:
    unit = D("1e-8")
    fills = [OrderEvent.fill(f"t{i}", q * unit, p * unit, 0, 0) for i, (q, p) in enumerate(specs)]
    total = sum((f.qty for f in fills), D(0))
    order_qty = total + spare * unit
    dups = data.draw(st.lists(st.sampled_from(fills), max_size=10))
    sequence = data.draw(st.permutations([*fills, *dups]))
    times = data.draw(st.lists(st.integers(0, 50), min_size=len(sequence), max_size=len(sequence)))
    order = run(Order("c1", Venue.UPBIT, "BTC-KRW", Side.SELL, order_qty), ev(K.SUBMIT, ts_local=1))
    for f, ts in zip(sequence, times, strict=True):
        order = order.apply(OrderEvent.fill(f.trade_id, f.qty, f.price, ts, ts + 1))
    notional = sum((EXACT.multiply(f.qty, f.price) for f in fills), D(0))
    assert order.filled_qty == total
    assert order.avg_price == EXACT.divide(notional, total)
    assert order.status is (S.FILLED if spare == 0 else S.PARTIALLY_FILLED)
    assert len(order.events) == 1 + len(fills)
