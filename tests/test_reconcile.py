"""core.reconcile: every mismatch class found, nothing flagged on a clean state, halts by route / venue."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from decimal import Decimal

from arbitrage_lite.core.alerts import Severity
from arbitrage_lite.core.client_ids import format_client_id
from arbitrage_lite.core.domain import Currency, Side, Venue
from arbitrage_lite.core.ledger import Ledger
from arbitrage_lite.core.order_fsm import EventKind, Order, OrderStatus
from arbitrage_lite.core.order_fsm import OrderEvent as FsmEvent
from arbitrage_lite.core.reconcile import (
    RECONCILE_MISMATCH,
    RECONCILE_UNVERIFIED,
    EngineView,
    JournalOrder,
    ReconcileConfig,
    ReconcileReport,
    Resend,
    Resolution,
    VenueView,
    ledger_balances,
    merge,
    reconcile_venue,
    route_of,
)
from arbitrage_lite.core.venue import Balance, Fill, OrderEvent, OrderState, RejectReason

D = Decimal
S = OrderStatus
SEC = 1_000_000_000
T0 = 1_700_000_000 * SEC
CFG = ReconcileConfig(grace_ns=10 * SEC)
PRICE = D("100000000")  # KRW per BTC


def cid(seq: int, route: str = "BTC", leg: str = "ou") -> str:
    return format_client_id("al", "run1", seq, route, leg)


def fill(tid: str, qty: str, price: Decimal = PRICE, fee: str = "0") -> Fill:
    return Fill(tid, price, D(qty), D(fee), "KRW", T0)


def jorder(seq: int, status: OrderStatus, fills: Sequence[Fill] = (), *, qty: str = "1", route: str = "BTC",
           venue: str = "upbit", side: Side = Side.BUY, last_ns: int = T0,
           estimated: Sequence[Fill] = ()) -> JournalOrder:
    symbol = f"{route}-KRW" if venue == "upbit" else f"{route}-USDT"
    booked = (*fills, *estimated)
    return JournalOrder(cid(seq, route), venue, route, symbol, side, D(qty), status,
                        sum((f.qty for f in booked), D(0)), frozenset(f.trade_id for f in booked), last_ns,
                        tuple(estimated))


def answer(o: JournalOrder, state: OrderState, fills: Sequence[Fill] = (), filled: str | None = None,
           reason: RejectReason = RejectReason.NONE) -> OrderEvent:
    qty = D(filled) if filled is not None else sum((f.qty for f in fills), D(0))
    return OrderEvent(o.venue, o.client_id, "v1", o.symbol, state, qty, tuple(fills), reason, ts_venue=T0 + SEC)


def not_found(o: JournalOrder) -> OrderEvent:
    return answer(o, OrderState.REJECTED, reason=RejectReason.NOT_FOUND)


def run(orders: Sequence[JournalOrder], answers: Sequence[OrderEvent] = (), listed: Sequence[OrderEvent] | None = (),
        held: Sequence[Balance] | None = (), expected: dict[tuple[str, str], Decimal] | None = None,
        now: int = T0 + 60 * SEC, cfg: ReconcileConfig = CFG, venue: str = "upbit",
        routes: frozenset[str] = frozenset({"BTC", "ETH"})) -> ReconcileReport:
    engine = EngineView({o.client_id: o for o in orders}, expected or {}, routes)
    view = VenueView(venue, now, {a.client_id: a for a in answers}, None if listed is None else list(listed),
                     None if held is None else list(held))
    return reconcile_venue(engine, view, cfg)


def only(report: ReconcileReport) -> tuple[Resolution, Severity | None]:
    assert len(report.orders) == 1, report.orders
    return report.orders[0].resolution, report.orders[0].severity


# ---- clean
def test_a_clean_state_flags_nothing() -> None:
    filled = jorder(1, S.FILLED, [fill("t1", "0.4"), fill("t2", "0.6")])
    resting = jorder(2, S.ACCEPTED)
    partly = jorder(3, S.PARTIALLY_FILLED, [fill("t3", "0.25")])
    refused = jorder(4, S.REJECTED)
    cancelling = jorder(5, S.CANCEL_PENDING)
    listed = [answer(resting, OrderState.ACCEPTED), answer(partly, OrderState.PARTIALLY_FILLED, [fill("t3", "0.25")]),
              answer(cancelling, OrderState.ACCEPTED)]
    answers = [answer(filled, OrderState.FILLED, [fill("t1", "0.4"), fill("t2", "0.6")]), *listed, not_found(refused)]
    held = [Balance("KRW", D("1000"), D("5")), Balance("BTC", D("2"), D(0)), Balance("DOGE", D(7), D(0))]
    report = run([filled, resting, partly, refused, cancelling], answers, listed, held,
                 {("upbit", "KRW"): D("1005"), ("upbit", "BTC"): D("2")})
    assert report.clean and not report.halt_routes and not report.halt_venues
    assert {c.resolution for c in report.orders} == {Resolution.MATCH}
    assert [b.asset for b in report.balances] == ["BTC", "KRW"]  # DOGE: not the ledger's, not checked
    assert report.alerts() == []


def test_a_terminal_order_nobody_asked_about_is_not_reported() -> None:
    assert run([jorder(1, S.FILLED, [fill("t1", "1")])]).orders == ()


# ---- unknown outcomes
def test_unknown_is_resolved_by_the_query_with_its_fills_to_book() -> None:
    lost = jorder(1, S.UNKNOWN)
    fills = [fill("t1", "0.5", fee="25"), fill("t2", "0.5", fee="25")]
    report = run([lost], [answer(lost, OrderState.FILLED, fills)],
                 held=[Balance("KRW", D("900000000") - 50, D(0)), Balance("BTC", D("1"), D(0))],
                 expected={("upbit", "KRW"): D("1000000000"), ("upbit", "BTC"): D(0)})
    check = report.orders[0]
    assert (check.resolution, check.severity, check.venue_status) == (Resolution.RESOLVED, None, S.FILLED)
    assert check.fills_to_book == tuple(fills)
    assert report.clean  # the balances are compared after the fills to book: no mismatch from them
    assert {b.asset: b.unbooked for b in report.balances} == {"BTC": D(1), "KRW": D("-100000050")}
    # what the caller applies brings the engine's order to the venue's state
    order = Order(lost.client_id, Venue.UPBIT, lost.symbol, Side.BUY, D(1)).apply(
        FsmEvent(EventKind.SUBMIT, -1, T0)).apply(FsmEvent(EventKind.TIMEOUT, -1, T0))
    event = check.fsm_event(T0 + 2 * SEC)
    assert event is not None
    order = order.apply(event)
    for f in check.fills_to_book:
        order = order.apply(FsmEvent.fill(f.trade_id, f.qty, f.price, f.ts_venue, T0 + 2 * SEC, fee=f.fee))
    assert (order.status, order.filled_qty, order.owed_qty) == (S.FILLED, D(1), D(0))


def test_unknown_that_the_venue_lists_open_is_resolved_by_the_listing() -> None:
    lost = jorder(1, S.SUBMITTED)
    listed = answer(lost, OrderState.ACCEPTED)
    report = run([lost], [not_found(lost)], [listed])
    assert only(report) == (Resolution.RESOLVED, None)
    assert report.orders[0].venue_status is S.ACCEPTED


def test_not_found_within_the_grace_period_is_pending_and_after_it_a_resend() -> None:
    lost = jorder(1, S.UNKNOWN, last_ns=T0)
    within = run([lost], [not_found(lost)], now=T0 + CFG.grace_ns - 1)
    assert only(within) == (Resolution.PENDING, None) and within.clean and not within.halt_routes
    after = run([lost], [not_found(lost)], now=T0 + CFG.grace_ns)
    assert only(after) == (Resolution.NOT_FOUND, None) and after.clean
    assert after.orders[0].resend is Resend.NEW_ID  # Upbit: the identifier is burnt
    event = after.orders[0].fsm_event(T0 + CFG.grace_ns)
    assert event is not None and event.venue_status is S.REJECTED


def test_binance_may_resend_the_same_id_only_when_it_is_known_not_to_be_open() -> None:
    lost = jorder(1, S.UNKNOWN, venue="binance")
    known = run([lost], [not_found(lost)], listed=[], venue="binance")
    assert known.orders[0].resend is Resend.SAME_ID
    unknown_open = run([lost], [not_found(lost)], listed=None, venue="binance")
    assert unknown_open.orders[0].resend is Resend.NEW_ID
    assert unknown_open.halt_venues == {"binance"}  # and the failed open-orders call halts the venue


def test_a_failed_query_leaves_the_order_unverified_and_halts_its_route() -> None:
    lost = jorder(1, S.UNKNOWN)
    for ev in (answer(lost, OrderState.UNKNOWN), answer(lost, OrderState.REJECTED, reason=RejectReason.RATE_LIMITED)):
        report = run([lost], [ev])
        assert only(report) == (Resolution.UNVERIFIED, Severity.P1)
        assert report.halt_routes == {"BTC"} and not report.halt_venues
        assert report.alerts()[0][:2] == (RECONCILE_UNVERIFIED, "BTC")
    resting = jorder(2, S.ACCEPTED)
    assert only(run([resting])) == (Resolution.UNVERIFIED, Severity.P1)  # open, and never asked


# ---- mismatches
def test_venue_fills_the_journal_lacks_are_p0_with_the_fills_to_book() -> None:
    partly = jorder(1, S.PARTIALLY_FILLED, [fill("t1", "0.3")], route="ETH")
    venue_fills = [fill("t1", "0.3"), fill("t2", "0.7")]
    held = [Balance("ETH", D(1), D(0)), Balance("KRW", D(0), D(0))]  # consistent once the missing fill is booked
    report = run([partly], [answer(partly, OrderState.FILLED, venue_fills)], held=held,
                 expected={("upbit", "ETH"): D("0.3"), ("upbit", "KRW"): D("70000000")})
    assert only(report) == (Resolution.MISSING_FILLS, Severity.P0)
    assert report.orders[0].fills_to_book == (venue_fills[1],)
    assert report.halt_routes == {"ETH"}
    assert report.alerts()[0][:2] == (RECONCILE_MISMATCH, "ETH")


def test_executed_quantity_without_fill_detail_is_missing_too() -> None:
    resting = jorder(1, S.ACCEPTED)
    report = run([resting], [answer(resting, OrderState.CANCELLED, filled="0.2")])  # Binance-style: no detail
    assert only(report) == (Resolution.MISSING_FILLS, Severity.P0)
    assert report.orders[0].unlisted_qty == D("0.2")


def test_a_resolved_order_without_fill_detail_moves_the_base_exactly_and_leaves_the_cash_to_p1() -> None:
    lost = jorder(1, S.UNKNOWN, venue="binance", side=Side.SELL)
    expected = {("binance", "BTC"): D(1), ("binance", "USDT"): D(0)}
    held = [Balance("BTC", D("0.75"), D(0)), Balance("USDT", D("15000"), D(0))]  # Binance GET /order: no fills
    report = run([lost], [answer(lost, OrderState.FILLED, filled="0.25")], held=held, expected=expected,
                 venue="binance")
    check = report.orders[0]
    assert (check.resolution, check.unlisted_qty, check.fills_to_book) == (Resolution.RESOLVED, D("0.25"), ())
    btc, usdt = report.balances
    assert (btc.unbooked, btc.diff, btc.inexact, btc.severity) == (D("-0.25"), D(0), True, None)
    assert (usdt.diff, usdt.inexact, usdt.severity) == (D(15000), True, Severity.P1)  # price unknown: not P0
    assert report.halt_venues == {"binance"}


def test_journal_open_venue_cancelled_without_fills_is_a_missed_event() -> None:
    resting = jorder(1, S.ACCEPTED)
    report = run([resting], [answer(resting, OrderState.CANCELLED)])
    assert only(report) == (Resolution.MISSED_EVENTS, Severity.P1)
    assert report.orders[0].venue_status is S.CANCELED and report.halt_routes == {"BTC"}


def test_states_the_venue_cannot_reach_from_the_journals_are_contradictions() -> None:
    cancelled = jorder(1, S.CANCELED)
    report = run([cancelled], [answer(cancelled, OrderState.FILLED, [fill("t1", "1")])])
    assert only(report) == (Resolution.CONTRADICTION, Severity.P0)
    done = jorder(2, S.FILLED, [fill("t2", "1")])
    still_open = answer(done, OrderState.PARTIALLY_FILLED, [fill("t2", "0.5")], filled="0.5")
    assert only(run([done], listed=[still_open]))[0] is Resolution.CONTRADICTION  # listed, though not asked


def test_fills_the_venue_never_made_are_contradictions() -> None:
    booked = jorder(1, S.FILLED, [fill("t1", "0.5"), fill("ghost", "0.5")])
    listed_all = run([booked], [answer(booked, OrderState.FILLED, [fill("t1", "0.5"), fill("t2", "0.5")])])
    assert only(listed_all) == (Resolution.CONTRADICTION, Severity.P0)
    assert "ghost" in listed_all.orders[0].detail
    more = jorder(2, S.PARTIALLY_FILLED, [fill("t3", "0.5")])
    assert only(run([more], [answer(more, OrderState.ACCEPTED, filled="0")]))[0] is Resolution.CONTRADICTION
    over = jorder(3, S.ACCEPTED, qty="1")
    assert only(run([over], [answer(over, OrderState.FILLED, [fill("t4", "1.5")])]))[0] is Resolution.CONTRADICTION


def test_an_acknowledged_order_the_venue_no_longer_knows_is_p0() -> None:
    resting = jorder(1, S.ACCEPTED)
    assert only(run([resting], [not_found(resting)])) == (Resolution.CONTRADICTION, Severity.P0)


def test_orphans_halt_the_route_their_id_names_or_the_whole_venue() -> None:
    ours = OrderEvent("upbit", cid(9, "ETH"), "v9", "KRW-ETH", OrderState.ACCEPTED, D(0))
    report = run([], listed=[ours])
    assert only(report) == (Resolution.ORPHAN, Severity.P0)
    assert report.orders[0].route == "ETH" and report.halt_routes == {"ETH"} and not report.halt_venues
    external = OrderEvent("upbit", "manual-order-1", "v8", "KRW-BTC", OrderState.PARTIALLY_FILLED, D("0.1"))
    report = run([], listed=[external])
    assert report.orders[0].route is None
    assert report.halt_venues == {"upbit"} and report.halt_routes == {"BTC", "ETH"}


def test_an_estimated_fill_replaced_by_the_venues_own_is_not_a_halt() -> None:
    est = fill(f"{cid(1)}:est", "1", price=D("100100000"))
    done = jorder(1, S.FILLED, estimated=[est])
    real = [fill("t1", "0.4", price=D("100000000")), fill("t2", "0.6", price=D("100050000"))]
    report = run([done], [answer(done, OrderState.FILLED, real)],
                 held=[Balance("KRW", D("1000000000") - D("100030000"), D(0)), Balance("BTC", D(1), D(0))],
                 expected={("upbit", "KRW"): D("1000000000") - D("100100000"), ("upbit", "BTC"): D(1)})
    check = report.orders[0]
    assert (check.resolution, check.severity) == (Resolution.REPLACE_ESTIMATES, Severity.P2)
    assert check.replaces == (est.trade_id,) and check.fills_to_book == tuple(real)
    assert not report.halt_routes and not report.halt_venues and report.alerts() == []
    assert all(b.severity is None for b in report.balances)  # the estimate's cash is taken back out
    assert {b.asset: b.unbooked for b in report.balances} == {"BTC": D(0), "KRW": D("70000")}


# ---- balances
def test_balances_are_exact_and_held_to_each_assets_tolerance() -> None:
    expected = {("upbit", "KRW"): D("1000"), ("upbit", "BTC"): D("1.5")}
    one_sat = [Balance("KRW", D("1000"), D(0)), Balance("BTC", D("1.49999999"), D(0))]
    exact = run([], held=one_sat, expected=expected)
    btc = next(b for b in exact.balances if b.asset == "BTC")
    assert (btc.diff, btc.severity, btc.route) == (D("-0.00000001"), Severity.P0, "BTC")
    assert exact.halt_routes == {"BTC"} and not exact.halt_venues
    tolerant = run([], held=one_sat, expected=expected,
                   cfg=replace(CFG, tolerance={"BTC": D("0.00000001")}))
    assert tolerant.clean
    krw_off = run([], held=[Balance("KRW", D("999"), D("0.5")), Balance("BTC", D("1.5"), D(0))], expected=expected)
    assert krw_off.halt_venues == {"upbit"} and krw_off.halt_routes == {"BTC", "ETH"}  # cash is every route's


def test_a_ledger_asset_the_venue_does_not_list_counts_as_zero() -> None:
    report = run([], held=[], expected={("upbit", "ETH"): D("2")})
    assert [(b.asset, b.venue_total, b.diff, b.severity) for b in report.balances] == [
        ("ETH", D(0), D(-2), Severity.P0)]


def test_failed_calls_are_issues_that_halt_the_venue() -> None:
    report = run([], listed=None, held=None)
    assert len(report.issues) == 2 and not report.balances and report.halt_venues == {"upbit"}
    assert [r for r, *_ in report.alerts()] == [RECONCILE_UNVERIFIED] * 2


def test_ledger_balances_name_the_routes_base_and_sum_shared_cash() -> None:
    btc = Ledger.funded({(Venue.UPBIT, Currency.KRW): D("100"), (Venue.UPBIT, Currency.COIN): D("0.5"),
                         (Venue.BINANCE, Currency.USDT): D("10")})
    eth = Ledger.funded({(Venue.UPBIT, Currency.KRW): D("50"), (Venue.UPBIT, Currency.COIN): D("3")})
    assert ledger_balances({"BTC": btc, "ETH": eth}) == {
        ("upbit", "KRW"): D("150"), ("upbit", "BTC"): D("0.5"), ("binance", "USDT"): D("10"), ("upbit", "ETH"): D("3")}


def test_reports_merge_and_ids_name_their_route() -> None:
    assert route_of(cid(5, "ETH", "cb")) == "ETH" and route_of("x-1") is None
    a = run([], listed=[OrderEvent("upbit", cid(9, "ETH"), None, "KRW-ETH", OrderState.ACCEPTED, D(0))])
    b = run([], listed=None, venue="binance")
    both = merge([a, b])
    assert both.halt_routes == {"BTC", "ETH"} and both.halt_venues == {"binance"} and len(both.mismatches) == 2
