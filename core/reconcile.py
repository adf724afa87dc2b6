"""Reconciliation: the engine's view (journal orders and fills, ledger balances) against a venue's (answers to
queries by client id, open orders, balances), as a typed report. Pure: no I/O, the time is passed in.

Why each rule (the brief, PART C.1, and docs/recovery.md):

* An order the engine does not know the fate of (INITIALIZED, SUBMITTED, UNKNOWN) takes the venue's word:
  ``RESOLVED``, with the fills to book. That is the normal end of an unknown outcome, not a mismatch.
* "Not found" proves nothing until a grace period after the engine last acted on the order (the request may
  still be on its way): ``PENDING``, ask again. After it, ``NOT_FOUND``: the venue never got it, a resend is
  safe -- on Upbit with a NEW client id (an identifier is burnt even by a failed request), on Binance with the
  same id only when the venue is known not to hold it open.
* Anything that means money moved without the engine knowing is P0 and halts the route: fills the journal
  lacks, fills it has that the venue never made, a state the venue cannot have reached from the journal's
  (journal cancelled, venue filled; journal terminal, venue open), an order the venue once acknowledged and
  no longer knows, an open order the journal never made (orphan), a balance off beyond its tolerance.
* What is wrong but moved no money (a missed cancel/expire), or could not be checked (a query timed out, a
  call failed), is P1 and halts too: the route trades again once a later pass is clean.
* A route owns the ids it made (``core.client_ids``: the route tag is the id's fourth part). A mismatch that
  names no route (an external order, a quote-currency balance, a venue call that failed) halts the venue,
  hence every route (each trades on both venues).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

from .alerts import RECONCILE_MISMATCH, RECONCILE_UNVERIFIED, Severity
from .client_ids import parse_client_id
from .domain import Currency, Side
from .ledger import Ledger
from .order_fsm import EXACT, RECONCILE_TRANSITIONS, TERMINAL, OrderStatus
from .order_fsm import OrderEvent as FsmEvent
from .venue import Balance, Fill, OrderState, RejectReason
from .venue import OrderEvent as VenueEvent

ZERO = Decimal(0)
S = OrderStatus
UNSURE = frozenset({S.INITIALIZED, S.SUBMITTED, S.UNKNOWN})  # the engine does not know what the venue has
HALTING = Severity.P1  # this severity or worse halts the route (or the venue)

FSM_STATUS: dict[OrderState, OrderStatus] = {  # core.venue's states in the order machine's terms
    OrderState.ACCEPTED: S.ACCEPTED, OrderState.PARTIALLY_FILLED: S.PARTIALLY_FILLED, OrderState.FILLED: S.FILLED,
    OrderState.CANCELLED: S.CANCELED, OrderState.REJECTED: S.REJECTED, OrderState.EXPIRED: S.EXPIRED,
}


# ---- inputs
@dataclass(frozen=True, slots=True)
class JournalOrder:
    """One order as the journal knows it (its intent, its last order event, the fills booked for it)."""

    client_id: str
    venue: str  # the VenueClient's label: "upbit" / "binance"
    route: str  # the journal record's route
    symbol: str  # the engine's BASE-QUOTE symbol (BTC-KRW, BTC-USDT)
    side: Side
    qty: Decimal  # order quantity (a market buy by amount: the upper bound the engine used)
    status: OrderStatus
    filled_qty: Decimal  # the sum of the fills booked
    trade_ids: frozenset[str]  # the venue trade ids booked
    last_ns: int  # the last local time the engine acted on it (intent, send, timeout): the grace runs from here
    estimated: tuple[Fill, ...] = ()  # booked fills that were estimates (no venue detail yet): in the two above

    @property
    def assets(self) -> tuple[str, str]:
        base, _, quote = self.symbol.partition("-")
        return base, quote


@dataclass(frozen=True, slots=True)
class EngineView:
    orders: Mapping[str, JournalOrder]  # by client id; every order to check (non-terminal, and recent ones)
    balances: Mapping[tuple[str, str], Decimal]  # (venue, asset) -> total (free + locked) the ledger expects
    routes: frozenset[str] = frozenset()  # the live routes (all halted by a mismatch that names no route)


@dataclass(frozen=True, slots=True)
class VenueView:
    """What one venue said. ``answers``: the query answer per client id (REJECTED/NOT_FOUND when it does not
    know the id; UNKNOWN, or a REJECTED with another reason, when the query failed). ``None`` for a call that
    failed. ``fills``: trade history by client id, beyond the fills the answers carry."""

    venue: str
    ts_local: int  # when the view was taken
    answers: Mapping[str, VenueEvent]
    open_orders: Sequence[VenueEvent] | None
    balances: Sequence[Balance] | None
    fills: Mapping[str, Sequence[Fill]] = field(default_factory=dict)
    errors: tuple[str, ...] = ()  # why a call failed, for the report


@dataclass(frozen=True, slots=True)
class ReconcileConfig:
    grace_ns: int = 10_000_000_000  # "not found" is believed this long after the engine last acted on the order
    tolerance: Mapping[str, Decimal] = field(default_factory=dict)  # per asset, absolute (dust, rounding)
    default_tolerance: Decimal = ZERO  # exact unless told otherwise


# ---- outputs
class Resolution(StrEnum):
    MATCH = "match"  # journal and venue agree
    RESOLVED = "resolved"  # the engine did not know; the venue's answer is the state (book its fills)
    PENDING = "pending"  # not found, but within the grace period: ask again later
    NOT_FOUND = "not_found"  # not found after the grace period: never reached the venue, a resend is safe
    MISSED_EVENTS = "missed_events"  # journal says open, the venue moved on without new fills (apply it)
    MISSING_FILLS = "missing_fills"  # the venue executed more than the journal booked
    REPLACE_ESTIMATES = "replace_estimates"  # the venue's fills for what the engine booked as estimates
    CONTRADICTION = "contradiction"  # the venue's record cannot follow the journal's
    ORPHAN = "orphan"  # an open order on the venue that the journal never made
    UNVERIFIED = "unverified"  # the venue did not answer for it


class Resend(StrEnum):
    NONE = ""
    NEW_ID = "new_id"  # resend under a new client id (Upbit always; Binance when its openness is not known)
    SAME_ID = "same_id"  # Binance: the same id is accepted, the venue holds no open order with it


@dataclass(frozen=True, slots=True)
class OrderCheck:
    client_id: str
    venue: str
    route: str | None  # None: an id no route of ours made (external order)
    resolution: Resolution
    severity: Severity | None  # None: nothing wrong
    detail: str
    journal_status: OrderStatus | None = None  # None for an orphan
    venue_status: OrderStatus | None = None  # None when the venue gave no state
    journal_filled_qty: Decimal = ZERO
    venue_filled_qty: Decimal = ZERO
    fills_to_book: tuple[Fill, ...] = ()  # venue fills the journal lacks (RESOLVED, MISSING_FILLS)
    unlisted_qty: Decimal = ZERO  # executed per the venue but in no fill it listed: fetch the order's trades
    resend: Resend = Resend.NONE
    replaces: tuple[str, ...] = ()  # REPLACE_ESTIMATES: the estimated trade ids ``fills_to_book`` replace
    ts_venue: int = -1  # of the venue's answer

    def fsm_event(self, ts_local: int) -> FsmEvent | None:
        """The RECONCILE event that brings the engine's ``Order`` to the venue's state (fills go separately,
        one FILL per ``fills_to_book``); None when there is nothing to apply."""
        if self.resolution is Resolution.NOT_FOUND:
            return FsmEvent.not_found(ts_local)
        if self.venue_status is None or self.resolution not in _APPLY:
            return None
        return FsmEvent.reconcile(self.venue_status, self.venue_filled_qty, self.ts_venue, ts_local)


_APPLY = frozenset({Resolution.RESOLVED, Resolution.MISSED_EVENTS, Resolution.MISSING_FILLS,
                    Resolution.REPLACE_ESTIMATES})


@dataclass(frozen=True, slots=True)
class BalanceCheck:
    venue: str
    asset: str
    ledger: Decimal  # what the ledger expects
    unbooked: Decimal  # the change the fills to book will make
    venue_total: Decimal  # free + locked on the venue (0 if it lists no such asset)
    diff: Decimal  # venue_total - (ledger + unbooked)
    tolerance: Decimal
    severity: Severity | None
    route: str | None  # the route whose base asset this is; None for a quote currency
    inexact: bool = False  # ``unbooked`` includes executed quantity at an unknown price / fee (P1 at worst)


@dataclass(frozen=True, slots=True)
class VenueIssue:
    venue: str
    detail: str  # a call that failed: what was not checked
    severity: Severity = Severity.P1


Mismatch = OrderCheck | BalanceCheck | VenueIssue


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    ts_local: int
    orders: tuple[OrderCheck, ...]
    balances: tuple[BalanceCheck, ...]
    issues: tuple[VenueIssue, ...]
    halt_routes: frozenset[str]  # every route to halt (those of halted venues included)
    halt_venues: frozenset[str]  # venues with a mismatch that names no route

    @property
    def mismatches(self) -> tuple[Mismatch, ...]:
        checked: tuple[OrderCheck | BalanceCheck, ...] = (*self.orders, *self.balances)
        return (*(c for c in checked if c.severity is not None), *self.issues)

    @property
    def clean(self) -> bool:
        return not self.mismatches

    def checks(self, resolution: Resolution) -> tuple[OrderCheck, ...]:
        return tuple(c for c in self.orders if c.resolution is resolution)

    def alerts(self) -> list[tuple[str, str, str]]:
        """(rule, key, message) per halting mismatch, for ``AlertBook.raise_alert``: P0 -> RECONCILE_MISMATCH,
        P1 -> RECONCILE_UNVERIFIED; keyed by route, else venue. (P2, estimates to replace, is not paged.)"""
        out = []
        for m in self.mismatches:
            if m.severity is None or m.severity > HALTING:
                continue
            rule = RECONCILE_MISMATCH if m.severity is Severity.P0 else RECONCILE_UNVERIFIED
            key = getattr(m, "route", None) or m.venue
            out.append((rule, key, describe(m)))
        return out


def describe(m: Mismatch) -> str:
    """One line naming what is wrong (alerts, status and summaries)."""
    if isinstance(m, OrderCheck):
        return f"{m.venue} {m.client_id}: {m.resolution.value}: {m.detail}"
    if isinstance(m, BalanceCheck):
        return (f"{m.venue} {m.asset}: venue {m.venue_total}, expected {m.ledger} + unbooked {m.unbooked} "
                f"(diff {m.diff}, tolerance {m.tolerance})")
    return f"{m.venue}: {m.detail}"


# ---- one order
def route_of(client_id: str) -> str | None:
    """The route tag a client id carries (the route's first 8 characters), or None: not an id of ours."""
    parsed = parse_client_id(client_id)
    return parsed.route if parsed else None


def venue_status(ev: VenueEvent) -> OrderStatus | None:
    """The venue's state as the order machine has it, consistent with its executed quantity; None if the
    answer is not a state (UNKNOWN) or contradicts itself (FILLED, nothing executed)."""
    status = FSM_STATUS.get(ev.state)
    if status in (S.ACCEPTED, S.PARTIALLY_FILLED):
        return S.PARTIALLY_FILLED if ev.filled_qty > 0 else S.ACCEPTED
    if (status is S.FILLED and ev.filled_qty <= 0) or (status is S.REJECTED and ev.filled_qty > 0):
        return None
    return status


def _failed(ev: VenueEvent) -> bool:
    return ev.state is OrderState.UNKNOWN or (ev.state is OrderState.REJECTED
                                              and ev.reason not in (RejectReason.NONE, RejectReason.NOT_FOUND))


def _not_found(ev: VenueEvent) -> bool:
    return ev.state is OrderState.REJECTED and ev.reason is RejectReason.NOT_FOUND



def _about(order: JournalOrder, resolution: Resolution, severity: Severity | None, detail: str,
           **venue: Any) -> OrderCheck:
    return OrderCheck(order.client_id, order.venue, order.route, resolution, severity, detail,
                      journal_status=order.status, journal_filled_qty=order.filled_qty, **venue)


def check_order(order: JournalOrder, answer: VenueEvent | None, listed: VenueEvent | None, fills: Sequence[Fill],
                now_ns: int, cfg: ReconcileConfig, *, open_known: bool = True) -> OrderCheck | None:
    """One journal order against the venue: its query ``answer``, its entry in the open orders (``listed``),
    extra ``fills`` from trade history. ``open_known``: the open orders were fetched. None: nothing to say (a
    terminal order the venue was not asked about)."""
    ev = answer
    if listed is not None and (ev is None or _failed(ev) or _not_found(ev)):
        ev = listed  # open on the venue: that is an answer too
    if ev is None:
        return None if order.status in TERMINAL else _about(order, Resolution.UNVERIFIED, Severity.P1, "not queried")
    if _failed(ev):
        return _about(order, Resolution.UNVERIFIED, Severity.P1,
                      f"query failed: {ev.state.value} {ev.reason.value} {ev.detail}".rstrip())
    if _not_found(ev):
        return _check_not_found(order, now_ns, cfg, open_known)
    return _compare(order, ev, fills)


def _check_not_found(order: JournalOrder, now_ns: int, cfg: ReconcileConfig, open_known: bool) -> OrderCheck:
    if order.status is S.REJECTED:
        return _about(order, Resolution.MATCH, None, "rejected, and the venue has no such order")
    if order.status not in UNSURE:
        return _about(order, Resolution.CONTRADICTION, Severity.P0,
                      f"journal says {order.status.name}, the venue does not know the order")
    waited = now_ns - order.last_ns
    if waited < cfg.grace_ns:
        return _about(order, Resolution.PENDING, None,
                      f"not found {waited / 1e9:.3f} s after the last send (grace {cfg.grace_ns / 1e9} s)")
    resend = Resend.SAME_ID if order.venue == "binance" and open_known else Resend.NEW_ID
    return _about(order, Resolution.NOT_FOUND, None,
                  f"not found {waited / 1e9:.3f} s after the last send: it never reached the venue", resend=resend)


def _merge_fills(*groups: Iterable[Fill]) -> tuple[Fill, ...]:
    seen: dict[str, Fill] = {}
    for group in groups:
        for f in group:
            seen.setdefault(f.trade_id, f)
    return tuple(seen.values())


def _total(values: Iterable[Decimal]) -> Decimal:
    out = ZERO
    for v in values:
        out = EXACT.add(out, v)
    return out


def _compare(order: JournalOrder, ev: VenueEvent, extra: Sequence[Fill]) -> OrderCheck:
    """The venue knows the order: compare states and executed quantities (the fills decide, not the state)."""
    fills = _merge_fills(ev.fills, extra)
    listed = _total(f.qty for f in fills)
    cum = max(ev.filled_qty, listed)
    complete = bool(fills) and listed >= cum  # the venue listed every fill: trade ids can be compared
    missing = tuple(f for f in fills if f.trade_id not in order.trade_ids)
    estimated = {e.trade_id for e in order.estimated}
    replaces = complete and bool(missing) and bool(estimated)  # real fills for the engine's estimates
    booked = order.filled_qty - _total(e.qty for e in order.estimated) if replaces else order.filled_qty
    unlisted = max(ZERO, cum - booked - _total(f.qty for f in missing))
    status = venue_status(ev)
    venue = dict(venue_status=status, venue_filled_qty=cum, fills_to_book=missing, unlisted_qty=unlisted,
                 ts_venue=ev.ts_venue if ev.ts_venue > 0 else -1)
    phantom = sorted(order.trade_ids - estimated - {f.trade_id for f in fills}) if complete else []
    problem = (f"the venue says {ev.state.value} with {ev.filled_qty} executed" if status is None
               else f"the venue executed {cum} > order qty {order.qty}" if cum > order.qty
               else f"journal booked {order.filled_qty}, the venue executed {cum}" if order.filled_qty > cum
               else f"journal trade ids {phantom} are not the venue's" if phantom else "")
    if problem or status is None:
        return _about(order, Resolution.CONTRADICTION, Severity.P0, problem, **venue)
    if order.status in UNSURE:
        return _about(order, Resolution.RESOLVED, None, f"{order.status.name} -> {status.name}, {cum} executed",
                      **venue)
    target = RECONCILE_TRANSITIONS.get((order.status, status))
    if target is None:
        return _about(order, Resolution.CONTRADICTION, Severity.P0,
                      f"journal says {order.status.name}, the venue says {status.name}", **venue)
    if replaces and not unlisted and order.filled_qty == cum:
        return _about(order, Resolution.REPLACE_ESTIMATES, Severity.P2,
                      f"{len(missing)} venue fills stand for the estimated {sorted(estimated)}", **venue,
                      replaces=tuple(sorted(estimated)))
    if missing or unlisted:
        return _about(order, Resolution.MISSING_FILLS, Severity.P0,
                      f"journal booked {order.filled_qty}, the venue executed {cum} ({len(missing)} fills to book, "
                      f"{unlisted} unlisted)", **venue)
    if target is order.status:
        return _about(order, Resolution.MATCH, None, f"{status.name}, {cum} executed", **venue)
    return _about(order, Resolution.MISSED_EVENTS, Severity.P1,
                  f"journal says {order.status.name}, the venue says {status.name} (no new fills)", **venue)


def orphan(ev: VenueEvent) -> OrderCheck:
    """An open order the journal never made: money can move under the engine."""
    route = route_of(ev.client_id)
    who = f"route tag {route}" if route else "not an id of ours: external"
    return OrderCheck(ev.client_id, ev.venue, route, Resolution.ORPHAN, Severity.P0,
                      f"open on the venue, not in the journal ({who}), {ev.filled_qty} executed",
                      venue_status=venue_status(ev), venue_filled_qty=ev.filled_qty,
                      ts_venue=ev.ts_venue if ev.ts_venue > 0 else -1)


# ---- balances
def unbooked(checks: Iterable[OrderCheck], orders: Mapping[str, JournalOrder]
             ) -> tuple[dict[tuple[str, str], Decimal], frozenset[tuple[str, str]]]:
    """(venue, asset) -> the change booking ``fills_to_book`` will make: base +-qty, quote -+price x qty, fee
    in its own asset; the estimates a check replaces are taken back out. Balances are compared after it, so a
    resolved order is not also a balance mismatch. An ``unlisted_qty`` (executed, no fill detail: Binance's
    query) moves the base by its quantity, at a price and fee not known: its base and quote are returned as
    ``inexact`` (a difference there cannot be told from the unknown price: P1, until the trades are fetched)."""
    out: dict[tuple[str, str], Decimal] = {}
    inexact: set[tuple[str, str]] = set()

    def add(venue: str, asset: str, amount: Decimal) -> None:
        out[(venue, asset)] = EXACT.add(out.get((venue, asset), ZERO), amount)

    for check in checks:
        order = orders.get(check.client_id)
        if order is None:
            continue
        base, quote = order.assets
        sign = Decimal(int(order.side))
        gone = [(e, -sign) for e in order.estimated if e.trade_id in check.replaces]
        for f, way in (*((f, sign) for f in check.fills_to_book), *gone):
            add(order.venue, base, EXACT.multiply(way, f.qty))
            add(order.venue, quote, EXACT.multiply(-way, EXACT.multiply(f.price, f.qty)))
            if f.fee:
                add(order.venue, f.fee_asset, -f.fee if way == sign else f.fee)
        if check.unlisted_qty:
            add(order.venue, base, EXACT.multiply(sign, check.unlisted_qty))
            inexact |= {(order.venue, base), (order.venue, quote)}
    return out, frozenset(inexact)


def check_balances(venue: str, expected: Mapping[tuple[str, str], Decimal], pending: Mapping[tuple[str, str], Decimal],
                   actual: Sequence[Balance], routes: frozenset[str], cfg: ReconcileConfig,
                   inexact: frozenset[tuple[str, str]] = frozenset()) -> list[BalanceCheck]:
    """Every asset the ledger expects (or a fill to book touches) on ``venue``, exact: off by more than the
    asset's tolerance is P0 (money moved without the engine knowing), P1 where ``pending`` is ``inexact``.
    Assets the ledger does not hold are not checked (other holdings of the account)."""
    totals = {b.asset: EXACT.add(b.free, b.locked) for b in actual}
    out = []
    for asset in sorted({a for v, a in (*expected, *pending) if v == venue}):
        ledger, delta = expected.get((venue, asset), ZERO), pending.get((venue, asset), ZERO)
        have = totals.get(asset, ZERO)
        diff = EXACT.subtract(have, EXACT.add(ledger, delta))
        tol = cfg.tolerance.get(asset, cfg.default_tolerance)
        off = Severity.P1 if (venue, asset) in inexact else Severity.P0
        out.append(BalanceCheck(venue, asset, ledger, delta, have, diff, tol, off if abs(diff) > tol else None,
                                asset if asset in routes else None, (venue, asset) in inexact))
    return out


def ledger_balances(ledgers: Mapping[str, Ledger]) -> dict[tuple[str, str], Decimal]:
    """(venue, asset) -> the total the routes' ledgers hold: a route's COIN is its base asset (the route's
    name), its cash the venue's quote currency; routes sharing a venue's cash are summed."""
    out: dict[tuple[str, str], Decimal] = {}
    for route, ledger in ledgers.items():
        for (venue, currency), amount in ledger.balances.items():
            key = (venue.label, route if currency is Currency.COIN else currency.name)
            out[key] = EXACT.add(out.get(key, ZERO), amount)
    return out


# ---- the whole venue
def reconcile_venue(engine: EngineView, view: VenueView, cfg: ReconcileConfig, *,
                    with_balances: bool = True) -> ReconcileReport:
    """The engine's orders on ``view.venue`` and its balances there, against what the venue said.
    ``with_balances=False``: the orders only (a live run's first pass, whose balances become the baseline)."""
    listed = {ev.client_id: ev for ev in view.open_orders or ()}
    mine = {cid: o for cid, o in engine.orders.items() if o.venue == view.venue}
    checks = [c for cid, o in mine.items()
              if (c := check_order(o, view.answers.get(cid), listed.get(cid), view.fills.get(cid, ()), view.ts_local,
                                   cfg, open_known=view.open_orders is not None)) is not None]
    checks += [orphan(ev) for cid, ev in listed.items() if cid not in mine]
    routes = engine.routes | {o.route for o in engine.orders.values()}
    issues = [VenueIssue(view.venue, f"{what} unavailable: orders or balances not checked"
                         + (f" ({'; '.join(view.errors)})" if view.errors else ""))
              for what, got in (("open orders", view.open_orders), ("balances", view.balances)) if got is None]
    pending, inexact = unbooked(checks, mine)
    balances = [] if view.balances is None or not with_balances else check_balances(
        view.venue, engine.balances, pending, view.balances, routes, cfg, inexact)
    return build_report(view.ts_local, checks, balances, issues, routes)


def merge(reports: Sequence[ReconcileReport]) -> ReconcileReport:
    """One report for several venues (their halts united)."""
    return ReconcileReport(max((r.ts_local for r in reports), default=0),
                           tuple(c for r in reports for c in r.orders), tuple(b for r in reports for b in r.balances),
                           tuple(i for r in reports for i in r.issues),
                           frozenset().union(*(r.halt_routes for r in reports)),
                           frozenset().union(*(r.halt_venues for r in reports)))


def build_report(ts_local: int, checks: Sequence[OrderCheck], balances: Sequence[BalanceCheck],
                 issues: Sequence[VenueIssue], routes: frozenset[str]) -> ReconcileReport:
    """The report of these checks: what halts (a route named by a halting mismatch; every route of a venue
    with one that names no route)."""
    halt_routes: set[str] = set()
    halt_venues: set[str] = set()
    every: tuple[Mismatch, ...] = (*checks, *balances, *issues)
    for m in every:
        if m.severity is None or m.severity > HALTING:
            continue
        route = getattr(m, "route", None)
        if route:
            halt_routes.add(route)
        else:
            halt_venues.add(m.venue)
    if halt_venues:  # every route trades on both venues
        halt_routes |= routes
    return ReconcileReport(ts_local, tuple(checks), tuple(balances), tuple(issues), frozenset(halt_routes),
                           frozenset(halt_venues))
