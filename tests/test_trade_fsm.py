import itertools
from decimal import Decimal

import pytest

from arbitrage_lite.core.domain import Side, Venue
from arbitrage_lite.core.order_fsm import EventKind, InvalidTransition, Order, OrderEvent, OrderStatus
from arbitrage_lite.core.trade_fsm import (
    TRANSITIONS,
    HedgeAction,
    HedgePolicy,
    LegFill,
    LegRole,
    Trade,
    TradeEventKind,
    TradeStatus,
    hedge_action,
    next_status,
)

D = Decimal
T, E, K = TradeStatus, TradeEventKind, EventKind
REF = D("100000000")  # KRW per BTC at the decision


def order(cid: str, venue: Venue, side: Side, qty: str = "0.5") -> Order:
    symbol = "BTC-KRW" if venue is Venue.UPBIT else "BTC-USDT"
    return Order(cid, venue, symbol, side, D(qty))


def planned() -> Trade:
    return Trade.plan("trip-1", order("u1", Venue.UPBIT, Side.BUY), order("b1", Venue.BINANCE, Side.SELL), REF)


def sent(ts: int = 1_000) -> Trade:
    return planned().send(ts)


def fill(cid: str, trade_id: str, qty: str, local: int, price: str = "100") -> tuple[str, OrderEvent]:
    return cid, OrderEvent.fill(trade_id, D(qty), D(price), local - 50, local)


def feed(trade: Trade, *events: tuple[str, OrderEvent]) -> Trade:
    for cid, event in events:
        trade = trade.apply_order_event(cid, event)
    return trade


def expire(cid: str, local: int, cum: str = "0") -> tuple[str, OrderEvent]:
    return cid, OrderEvent(K.EXPIRE, local - 50, local, cum_qty=D(cum))


# ---- the table itself


@pytest.mark.parametrize(("status", "kind"), list(itertools.product(TradeStatus, TradeEventKind)))
def test_every_pair_follows_the_table(status: TradeStatus, kind: TradeEventKind) -> None:
    if (status, kind) in TRANSITIONS:
        assert next_status(status, kind) is TRANSITIONS[(status, kind)]
    else:
        with pytest.raises(InvalidTransition):
            next_status(status, kind)


def test_terminal_states_accept_nothing() -> None:
    for status in (T.CLOSED, T.FAILED):
        assert status.is_terminal
        assert not [kind for (s, kind) in TRANSITIONS if s is status]
    assert all(not s.is_terminal for s, _ in TRANSITIONS)


def test_commands_in_the_wrong_state_raise_and_change_nothing() -> None:
    trade = sent()
    with pytest.raises(InvalidTransition):
        trade.send(2_000)
    with pytest.raises(InvalidTransition):
        trade.abandon(2_000)
    with pytest.raises(InvalidTransition):
        trade.close(order("u9", Venue.UPBIT, Side.SELL), order("b9", Venue.BINANCE, Side.BUY), 2_000)
    with pytest.raises(InvalidTransition):
        trade.hedge(order("u9", Venue.UPBIT, Side.SELL), 2_000)
    with pytest.raises(InvalidTransition):
        planned().apply_order_event("u1", OrderEvent(K.ACK, 1, 2))
    assert trade == sent()


# ---- paths


def test_happy_path_measures_the_gap_between_leg_fills() -> None:
    trade = sent(1_000)
    assert trade.status is T.LEGS_SENT and {leg.order.status for leg in trade.legs} == {OrderStatus.SUBMITTED}
    trade = feed(trade, ("u1", OrderEvent(K.ACK, 1_100, 1_200)), ("b1", OrderEvent(K.ACK, 1_150, 1_250)))
    trade = feed(trade, fill("u1", "u-t1", "0.5", 2_000))
    assert trade.status is T.ONE_LEG_FILLED and trade.unhedged_since_ns == 2_000
    assert trade.unhedged_notional == D("50000000")
    trade = feed(trade, fill("b1", "b-t1", "0.5", 2_500))
    assert trade.status is T.HEDGED_OPEN and trade.unhedged_since_ns == -1 and trade.unhedged_ns_total == 500
    assert trade.positions() == {Venue.UPBIT: D("0.5"), Venue.BINANCE: D("-0.5")} and trade.net_exposure == 0

    trade = trade.close(order("u2", Venue.UPBIT, Side.SELL), order("b2", Venue.BINANCE, Side.BUY), 3_000)
    assert trade.status is T.CLOSING
    trade = feed(trade, fill("u2", "u-t2", "0.5", 4_000))
    assert trade.status is T.CLOSING and trade.unhedged_since_ns == 4_000  # uneven exits are exposure too
    trade = feed(trade, fill("b2", "b-t2", "0.5", 4_100))
    assert trade.status is T.CLOSED and trade.unhedged_ns_total == 600
    assert trade.max_unhedged_notional == D("50000000") and trade.unhedged_notional == 0
    assert [s.kind for s in trade.history] == [E.SEND, E.UNHEDGED, E.HEDGED, E.CLOSE, E.UNHEDGED, E.FLAT]
    assert [leg.role for leg in trade.legs] == [LegRole.ENTRY] * 2 + [LegRole.EXIT] * 2


def test_one_leg_filled_then_unwound() -> None:
    trade = feed(sent(1_000), fill("u1", "u-t1", "0.5", 2_000), expire("b1", 2_300))
    assert trade.status is T.ONE_LEG_FILLED and trade.order("b1").status is OrderStatus.EXPIRED
    assert trade.hedge_plan(HedgePolicy.UNWIND) == HedgeAction(HedgePolicy.UNWIND, Venue.UPBIT, Side.SELL, D("0.5"))
    assert trade.hedge_plan(HedgePolicy.COMPLETE) == HedgeAction(HedgePolicy.COMPLETE, Venue.BINANCE, Side.SELL,
                                                                  D("0.5"))
    trade = trade.hedge(order("u2", Venue.UPBIT, Side.SELL), 2_400)
    assert trade.status is T.UNWINDING and trade.unhedged_ns(2_900) == 900
    trade = feed(trade, ("u2", OrderEvent(K.ACK, 2_500, 2_600)), fill("u2", "u-t2", "0.5", 3_000, price="99"))
    assert trade.status is T.CLOSED
    assert trade.unhedged_ns_total == 1_000 and trade.max_unhedged_notional == D("50000000")
    assert trade.positions() == {Venue.UPBIT: 0, Venue.BINANCE: 0}
    assert [s.kind for s in trade.history] == [E.SEND, E.UNHEDGED, E.HEDGE, E.FLAT]


def test_partial_fill_completed_on_the_lagging_leg() -> None:
    trade = feed(sent(), fill("b1", "b-t1", "0.2", 2_000), expire("b1", 2_100, cum="0.2"),
                 fill("u1", "u-t1", "0.5", 2_200))
    assert trade.status is T.ONE_LEG_FILLED and trade.unhedged_since_ns == 2_000
    action = trade.hedge_plan(HedgePolicy.COMPLETE)
    assert action == HedgeAction(HedgePolicy.COMPLETE, Venue.BINANCE, Side.SELL, D("0.3"))
    trade = feed(trade.hedge(order("b2", Venue.BINANCE, Side.SELL, "0.3"), 2_300), fill("b2", "b-t2", "0.3", 2_800))
    assert trade.status is T.HEDGED_OPEN and trade.unhedged_ns_total == 800
    assert trade.positions() == {Venue.UPBIT: D("0.5"), Venue.BINANCE: D("-0.5")}
    assert trade.max_unhedged_notional == D("30000000")  # |+0.3| at the largest (the short 0.2 came first)


def test_partial_fill_excess_unwound() -> None:
    trade = feed(sent(), fill("u1", "u-t1", "0.5", 2_000), fill("b1", "b-t1", "0.3", 2_100), expire("b1", 2_200, "0.3"))
    assert trade.hedge_plan(HedgePolicy.UNWIND) == HedgeAction(HedgePolicy.UNWIND, Venue.UPBIT, Side.SELL, D("0.2"))
    trade = feed(trade.hedge(order("u2", Venue.UPBIT, Side.SELL, "0.2"), 2_300), fill("u2", "u-t2", "0.2", 2_600))
    assert trade.status is T.HEDGED_OPEN and trade.positions() == {Venue.UPBIT: D("0.3"), Venue.BINANCE: D("-0.3")}
    assert trade.unhedged_ns_total == 600 and trade.hedge_plan(HedgePolicy.UNWIND) is None


def test_nothing_filled_fails_and_ioc_equal_partials_open() -> None:
    failed = feed(sent(), ("u1", OrderEvent(K.REJECT, 1_500, 1_600)), expire("b1", 1_700))
    assert failed.status is T.FAILED and failed.unhedged_ns_total == 0
    opened = feed(sent(), fill("u1", "u-t1", "0.2", 2_000), fill("b1", "b-t1", "0.2", 2_000),
                  expire("u1", 2_100, "0.2"), expire("b1", 2_100, "0.2"))
    assert opened.status is T.HEDGED_OPEN and opened.unhedged_ns_total == 0


def test_abandon_before_sending() -> None:
    trade = planned().abandon(500)
    assert trade.status is T.FAILED and {leg.order.status for leg in trade.legs} == {OrderStatus.REJECTED}


# ---- UNKNOWN legs hold the trade


def test_unknown_leg_blocks_failed_until_reconciled() -> None:
    trade = feed(sent(), ("u1", OrderEvent(K.REJECT, 1_500, 1_600)), ("b1", OrderEvent(K.TIMEOUT, -1, 1_700)))
    assert trade.status is T.LEGS_SENT and trade.unknown_legs == ("b1",)  # not FAILED: b1 may have filled
    gone = trade.apply_order_event("b1", OrderEvent.not_found(9_000))
    assert gone.status is T.FAILED
    filled = trade.apply_order_event("b1", OrderEvent.reconcile(OrderStatus.FILLED, D("0.5"), 1_650, 9_000))
    assert filled.status is T.ONE_LEG_FILLED and filled.unhedged_since_ns == 9_000
    assert filled.hedge_plan(HedgePolicy.UNWIND) == HedgeAction(HedgePolicy.UNWIND, Venue.BINANCE, Side.BUY, D("0.5"))


def test_unknown_leg_blocks_hedging() -> None:
    trade = feed(sent(), fill("u1", "u-t1", "0.5", 2_000), ("b1", OrderEvent(K.TIMEOUT, -1, 2_100)))
    assert trade.status is T.ONE_LEG_FILLED and trade.unhedged_since_ns == 2_000  # exposure still measured
    snapshot = trade
    with pytest.raises(InvalidTransition, match="UNKNOWN"):
        trade.hedge(order("u2", Venue.UPBIT, Side.SELL), 2_200)
    assert trade == snapshot
    back = trade.apply_order_event("b1", OrderEvent.reconcile(OrderStatus.ACCEPTED, D(0), 2_050, 2_300))
    assert back.status is T.ONE_LEG_FILLED and back.unknown_legs == ()


# ---- hedge orders are checked


def test_hedge_refuses_orders_that_do_not_cut_exposure_or_legs_still_working() -> None:
    working = feed(sent(), fill("u1", "u-t1", "0.5", 2_000))
    with pytest.raises(InvalidTransition, match="working"):
        working.hedge(order("u2", Venue.UPBIT, Side.SELL), 2_100)
    trade = feed(working, ("b1", OrderEvent(K.CANCEL_REQUEST, -1, 2_100)), ("b1", OrderEvent(K.CANCELED, 2_150, 2_200)))
    assert trade.status is T.ONE_LEG_FILLED
    with pytest.raises(ValueError):
        trade.hedge(order("u2", Venue.UPBIT, Side.BUY), 2_300)  # would add to the long
    with pytest.raises(ValueError):
        trade.hedge(order("u2", Venue.UPBIT, Side.SELL, "0.6"), 2_300)  # would flip it
    with pytest.raises(ValueError):
        trade.hedge(order("u1", Venue.UPBIT, Side.SELL), 2_300)  # client id already used
    assert trade.hedge(order("u2", Venue.UPBIT, Side.SELL), 2_300).status is T.UNWINDING


def test_exit_orders_must_reduce_positions() -> None:
    trade = feed(sent(), fill("u1", "u-t1", "0.5", 2_000), fill("b1", "b-t1", "0.5", 2_000))
    with pytest.raises(ValueError):
        trade.close(order("u2", Venue.UPBIT, Side.BUY), order("b2", Venue.BINANCE, Side.BUY), 3_000)
    with pytest.raises(ValueError):
        trade.close(order("u2", Venue.UPBIT, Side.SELL, "0.6"), order("b2", Venue.BINANCE, Side.BUY, "0.6"), 3_000)


def test_hedge_action_policy_and_tolerance() -> None:
    buy = LegFill(Venue.UPBIT, Side.BUY, D("1"), D("0.4"))
    sell = LegFill(Venue.BINANCE, Side.SELL, D("1"), D("1"))
    assert hedge_action(buy, sell, HedgePolicy.COMPLETE) == HedgeAction(HedgePolicy.COMPLETE, Venue.UPBIT, Side.BUY,
                                                                        D("0.6"))
    assert hedge_action(sell, buy, HedgePolicy.UNWIND) == HedgeAction(HedgePolicy.UNWIND, Venue.BINANCE, Side.BUY,
                                                                      D("0.6"))
    dust = LegFill(Venue.UPBIT, Side.BUY, D("1"), D("0.99999"))
    assert hedge_action(dust, sell, HedgePolicy.UNWIND, tolerance=D("0.00001")) is None
    with pytest.raises(ValueError):
        hedge_action(buy, LegFill(Venue.BINANCE, Side.BUY, D("1"), D(0)), HedgePolicy.UNWIND)


def test_local_time_out_of_order_never_counts_negative() -> None:
    trade = feed(sent(1_000), fill("u1", "u-t1", "0.5", 2_000))
    trade = feed(trade, ("b1", OrderEvent.fill("b-t1", D("0.5"), D("100"), 1_900, 1_950)))  # stamped earlier
    assert trade.status is T.HEDGED_OPEN and trade.unhedged_ns_total == 0 and trade.last_ts_local == 2_000


def test_plan_refuses_mismatched_legs() -> None:
    with pytest.raises(ValueError):
        Trade.plan("x", order("u1", Venue.UPBIT, Side.BUY), order("u2", Venue.UPBIT, Side.SELL), REF)
    with pytest.raises(ValueError):
        Trade.plan("x", order("u1", Venue.UPBIT, Side.BUY), order("b1", Venue.BINANCE, Side.SELL, "0.4"), REF)
