"""The life of one order on one venue, as transition tables (sans-IO, in the style of h11 and nautilus_trader).

Nothing here sends, sleeps or reads a clock: the caller feeds ``OrderEvent``s, each stamped with the venue's
time and the local time (int ns), and reads the state back. ``Order.apply`` returns a new frozen ``Order``;
an illegal event raises ``InvalidTransition`` and changes nothing. Rules beyond the tables:

* FILL is decided by the machine into FILL_PARTIAL or FILL_FULL (the keys of ``TRANSITIONS``): FULL when the
  executed quantity (own fills, or the venue's cumulative figure if larger) reaches the order quantity.
* A FILL whose trade id was already applied is ignored: ``apply`` returns the very same object.
* Stale reports (REST and WebSocket race): a venue event not newer than the last applied venue event
  (``ts_venue <=``; venue clocks tick in ms, so two reports of one match can share a time) is ignored when
  the table has no move for it or the move would go backwards. Fills are never dropped for staleness.
* Terminal orders change status on nothing, but FILLED, CANCELED and EXPIRED orders accept the fills the
  venue already counted in a cumulative figure (``owed_qty``): trade detail arriving after the summary.
* RECONCILE (the venue's answer to a query) has its own table, keyed by (our status, venue's status). "Not
  found" is a REJECTED answer the caller gives explicitly (``OrderEvent.not_found``) after its grace period;
  the machine never infers absence.
* Overfill (own fills, or the venue's cumulative figure, above the order quantity) raises ``Overfill``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Context, Decimal
from enum import Enum
from typing import Any

from .domain import Side, Venue

EXACT = Context(prec=60)  # as core.ledger: no rounding for any amount this engine can hold
ZERO = Decimal(0)


class OrderStatus(Enum):
    INITIALIZED = "initialized"  # intent made, client id assigned, recorded; not sent
    SUBMITTED = "submitted"  # sent, no answer yet
    ACCEPTED = "accepted"  # venue acked: resting or working
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCEL_PENDING = "cancel_pending"
    CANCELED = "canceled"  # may carry fills (partially filled, then cancelled)
    REJECTED = "rejected"
    EXPIRED = "expired"  # IOC/FOK/market remainder expired: may carry fills
    UNKNOWN = "unknown"  # the order call timed out / 5xx / disconnect / 429: unknown until the venue says

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL


class EventKind(Enum):
    SUBMIT = "submit"
    ACK = "ack"
    REJECT = "reject"
    FILL = "fill"  # what callers send; the machine decides FILL_PARTIAL or FILL_FULL
    FILL_PARTIAL = "fill_partial"  # table key only
    FILL_FULL = "fill_full"  # table key only
    CANCEL_REQUEST = "cancel_request"
    CANCELED = "canceled"
    EXPIRE = "expire"
    TIMEOUT = "timeout"  # the outcome of an order call is unknown
    RECONCILE = "reconcile"  # the venue's answer to a query: see RECONCILE_TRANSITIONS


S, K = OrderStatus, EventKind
TERMINAL = frozenset({S.FILLED, S.CANCELED, S.REJECTED, S.EXPIRED})
SETTLING = frozenset({S.FILLED, S.CANCELED, S.EXPIRED})  # terminal, yet accept fills the venue already counted
VENUE_STATUSES = (S.ACCEPTED, S.PARTIALLY_FILLED, S.FILLED, S.CANCELED, S.REJECTED, S.EXPIRED)  # a query's answers
LOCAL_KINDS = frozenset({K.SUBMIT, K.CANCEL_REQUEST, K.TIMEOUT})  # our own acts: never stale
TABLE_KINDS = tuple(k for k in EventKind if k not in (K.FILL, K.RECONCILE))
_CUM_KINDS = frozenset({K.FILL, K.CANCELED, K.EXPIRE, K.RECONCILE})  # may carry the venue's cumulative qty

TRANSITIONS: dict[tuple[OrderStatus, EventKind], OrderStatus] = {
    (S.INITIALIZED, K.SUBMIT): S.SUBMITTED,
    (S.INITIALIZED, K.REJECT): S.REJECTED,  # refused before sending (local check); the id stays burnt
    # sent, no answer yet: any first word from the venue, or the call's outcome is unknown
    (S.SUBMITTED, K.ACK): S.ACCEPTED,
    (S.SUBMITTED, K.REJECT): S.REJECTED,
    (S.SUBMITTED, K.FILL_PARTIAL): S.PARTIALLY_FILLED,  # a WebSocket fill can beat the REST answer
    (S.SUBMITTED, K.FILL_FULL): S.FILLED,
    (S.SUBMITTED, K.CANCEL_REQUEST): S.CANCEL_PENDING,
    (S.SUBMITTED, K.CANCELED): S.CANCELED,  # Upbit IOC/FOK with nothing to take ends `cancel`
    (S.SUBMITTED, K.EXPIRE): S.EXPIRED,
    (S.SUBMITTED, K.TIMEOUT): S.UNKNOWN,
    # unknown: any word from the venue settles it (and RECONCILE, below)
    (S.UNKNOWN, K.ACK): S.ACCEPTED,
    (S.UNKNOWN, K.REJECT): S.REJECTED,
    (S.UNKNOWN, K.FILL_PARTIAL): S.PARTIALLY_FILLED,
    (S.UNKNOWN, K.FILL_FULL): S.FILLED,
    (S.UNKNOWN, K.CANCELED): S.CANCELED,
    (S.UNKNOWN, K.EXPIRE): S.EXPIRED,
    (S.UNKNOWN, K.TIMEOUT): S.UNKNOWN,  # a further call timed out too
    # working. A repeated ACK is harmless (REST answer and WebSocket both say it): it only says "we have it"
    (S.ACCEPTED, K.ACK): S.ACCEPTED,
    (S.ACCEPTED, K.FILL_PARTIAL): S.PARTIALLY_FILLED,
    (S.ACCEPTED, K.FILL_FULL): S.FILLED,
    (S.ACCEPTED, K.CANCEL_REQUEST): S.CANCEL_PENDING,
    (S.ACCEPTED, K.CANCELED): S.CANCELED,  # venue-side cancels too (self-trade prevention, maintenance)
    (S.ACCEPTED, K.EXPIRE): S.EXPIRED,
    (S.PARTIALLY_FILLED, K.ACK): S.PARTIALLY_FILLED,
    (S.PARTIALLY_FILLED, K.FILL_PARTIAL): S.PARTIALLY_FILLED,
    (S.PARTIALLY_FILLED, K.FILL_FULL): S.FILLED,
    (S.PARTIALLY_FILLED, K.CANCEL_REQUEST): S.CANCEL_PENDING,
    (S.PARTIALLY_FILLED, K.CANCELED): S.CANCELED,
    (S.PARTIALLY_FILLED, K.EXPIRE): S.EXPIRED,
    # a cancel is in flight: the order can still fill, be acked late, or die another way
    (S.CANCEL_PENDING, K.ACK): S.CANCEL_PENDING,
    (S.CANCEL_PENDING, K.REJECT): S.REJECTED,  # cancelled before the venue had even accepted it
    (S.CANCEL_PENDING, K.FILL_PARTIAL): S.CANCEL_PENDING,
    (S.CANCEL_PENDING, K.FILL_FULL): S.FILLED,
    (S.CANCEL_PENDING, K.CANCEL_REQUEST): S.CANCEL_PENDING,  # a cancel re-sent
    (S.CANCEL_PENDING, K.CANCELED): S.CANCELED,
    (S.CANCEL_PENDING, K.EXPIRE): S.EXPIRED,
    (S.CANCEL_PENDING, K.TIMEOUT): S.UNKNOWN,  # the cancel call's outcome is unknown
}


def _reconcile_table() -> dict[tuple[OrderStatus, OrderStatus], OrderStatus]:
    table: dict[tuple[OrderStatus, OrderStatus], OrderStatus] = {}
    for ours in (S.INITIALIZED, S.SUBMITTED, S.UNKNOWN):  # we do not know: the venue's word is the state
        table.update({(ours, v): v for v in VENUE_STATUSES})
    working = (S.PARTIALLY_FILLED, S.FILLED, S.CANCELED, S.EXPIRED)
    table.update({(S.ACCEPTED, v): v for v in (S.ACCEPTED, *working)})
    table.update({(S.PARTIALLY_FILLED, v): v for v in working})
    table.update({(S.CANCEL_PENDING, v): v for v in (S.FILLED, S.CANCELED, S.EXPIRED, S.REJECTED)})
    table.update({(S.CANCEL_PENDING, v): S.CANCEL_PENDING for v in (S.ACCEPTED, S.PARTIALLY_FILLED)})  # not yet
    table.update({(t, t): t for t in TERMINAL})  # a terminal state can only be confirmed
    return table


RECONCILE_TRANSITIONS: dict[tuple[OrderStatus, OrderStatus], OrderStatus] = _reconcile_table()

# Only to tell a late report that would move the status backwards; UNKNOWN sits with SUBMITTED.
_RANK = {S.INITIALIZED: 0, S.SUBMITTED: 1, S.UNKNOWN: 1, S.ACCEPTED: 2, S.PARTIALLY_FILLED: 3,
         S.CANCEL_PENDING: 4, **{t: 5 for t in TERMINAL}}


class InvalidTransition(Exception):
    """An event the current state does not allow; the object it was applied to is unchanged."""

    def __init__(self, state: Enum, event: Enum, detail: str = "") -> None:
        self.state, self.event = state, event
        super().__init__(f"{event.name} is not allowed in {state.name}" + (f": {detail}" if detail else ""))


class Overfill(InvalidTransition):
    """Fills (or the venue's cumulative figure) above the order quantity."""


def _dec(name: str, value: object, *, positive: bool = False) -> None:
    if not isinstance(value, Decimal) or not value.is_finite() or value < 0 or (positive and value == 0):
        raise ValueError(f"{name} must be a finite {'positive' if positive else 'non-negative'} Decimal, got {value!r}")


@dataclass(frozen=True, slots=True)
class OrderEvent:
    """One event of one order. Build FILL and RECONCILE events with the class methods below."""

    kind: EventKind
    ts_venue: int  # when the venue says it happened, ns; -1 when unknown (and for our own acts)
    ts_local: int  # when we sent or received it, ns
    trade_id: str = ""  # FILL: the venue's trade id (Upbit trade_uuid, Binance t), the dedupe key
    qty: Decimal = ZERO  # FILL: this fill's quantity
    price: Decimal = ZERO  # FILL: this fill's price
    fee: Decimal = ZERO  # FILL: fee in the quote currency (the ledger's convention)
    cum_qty: Decimal | None = None  # the venue's cumulative filled qty (RECONCILE: required)
    venue_status: OrderStatus | None = None  # RECONCILE: the venue's status, mapped (from_upbit_state, ...)
    reason: str = ""

    def __post_init__(self) -> None:
        if self.kind in (K.FILL_PARTIAL, K.FILL_FULL):
            raise ValueError(f"{self.kind.name} is decided by the machine: send a FILL")
        if self.ts_venue < -1 or self.ts_local < 0:
            raise ValueError(f"timestamps must be ns (ts_venue -1 if unknown): {self.ts_venue}, {self.ts_local}")
        if self.kind is K.FILL:
            if not self.trade_id:
                raise ValueError("a FILL needs the venue's trade id")
            _dec("fill qty", self.qty, positive=True)
            _dec("fill price", self.price, positive=True)
            _dec("fee", self.fee)
        elif self.trade_id or self.qty or self.price or self.fee:
            raise ValueError(f"only a FILL carries trade id, qty, price and fee, not {self.kind.name}")
        if self.cum_qty is not None:
            if self.kind not in _CUM_KINDS:
                raise ValueError(f"{self.kind.name} carries no cumulative quantity")
            _dec("cum_qty", self.cum_qty)
        if (self.kind is K.RECONCILE) != (self.venue_status is not None):
            raise ValueError("a RECONCILE, and only a RECONCILE, carries the venue's status")
        if self.kind is K.RECONCILE:
            if self.venue_status not in VENUE_STATUSES or self.cum_qty is None:
                raise ValueError(f"RECONCILE needs one of {[s.name for s in VENUE_STATUSES]} and the cumulative qty")
            says_filled = self.venue_status in (S.PARTIALLY_FILLED, S.FILLED)  # CANCELED/EXPIRED: either way
            if self.venue_status not in (S.CANCELED, S.EXPIRED) and (self.cum_qty > 0) != says_filled:
                raise ValueError(f"venue status {self.venue_status.name} contradicts cumulative qty {self.cum_qty}")

    @classmethod
    def fill(cls, trade_id: str, qty: Decimal, price: Decimal, ts_venue: int, ts_local: int, *,
             fee: Decimal = ZERO, cum_qty: Decimal | None = None) -> OrderEvent:
        return cls(K.FILL, ts_venue, ts_local, trade_id=trade_id, qty=qty, price=price, fee=fee, cum_qty=cum_qty)

    @classmethod
    def reconcile(cls, venue_status: OrderStatus, cum_qty: Decimal, ts_venue: int, ts_local: int) -> OrderEvent:
        return cls(K.RECONCILE, ts_venue, ts_local, cum_qty=cum_qty, venue_status=venue_status)

    @classmethod
    def not_found(cls, ts_local: int) -> OrderEvent:
        """The venue does not know the order (said after the caller's grace period): rejected by absence."""
        return cls(K.RECONCILE, -1, ts_local, cum_qty=ZERO, venue_status=S.REJECTED, reason="not found")


@dataclass(frozen=True, slots=True)
class Order:
    """One order's state; ``apply`` is the only way to move it. ``events`` is the applied history."""

    client_id: str
    venue: Venue
    symbol: str
    side: Side
    qty: Decimal  # base quantity; for a market buy by quote amount, an upper bound (budget / best ask)
    limit_price: Decimal | None = None
    status: OrderStatus = OrderStatus.INITIALIZED
    filled_qty: Decimal = ZERO  # sum of the applied fills
    filled_notional: Decimal = ZERO  # sum of price x qty of the applied fills
    fees: Decimal = ZERO
    venue_filled_qty: Decimal = ZERO  # the largest cumulative figure the venue reported
    last_ts_venue: int = -1  # the newest venue time applied
    trade_ids: frozenset[str] = frozenset()
    events: tuple[OrderEvent, ...] = ()

    def __post_init__(self) -> None:
        if not self.client_id or not self.symbol:
            raise ValueError("an order needs a client id and a symbol")
        _dec("order qty", self.qty, positive=True)
        if self.limit_price is not None:
            _dec("limit price", self.limit_price, positive=True)

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def executed_qty(self) -> Decimal:
        """Best knowledge of the executed quantity: own fills, or the venue's figure when it is ahead."""
        return max(self.filled_qty, self.venue_filled_qty)

    @property
    def owed_qty(self) -> Decimal:
        """Executed per the venue but not yet seen as fills (fetch the order's trades)."""
        return max(ZERO, self.venue_filled_qty - self.filled_qty)

    @property
    def remaining_qty(self) -> Decimal:
        return self.qty - self.executed_qty

    @property
    def avg_price(self) -> Decimal | None:
        return EXACT.divide(self.filled_notional, self.filled_qty) if self.filled_qty else None

    def apply(self, event: OrderEvent) -> Order:
        if event.kind is K.FILL:
            return self._apply_fill(event)
        if event.kind is K.RECONCILE:
            assert event.venue_status is not None  # checked when the event was built
            target = RECONCILE_TRANSITIONS.get((self.status, event.venue_status))
        else:
            target = TRANSITIONS.get((self.status, event.kind))
        if (target is None or _RANK[target] < _RANK[self.status]) and self._stale(event):
            return self  # a late report: the status has already moved past it
        if target is None:
            raise InvalidTransition(self.status, event.kind, self._detail(event))
        return self._moved(event, target, venue_filled_qty=self._venue_cum(event))

    def _apply_fill(self, event: OrderEvent) -> Order:
        if event.trade_id in self.trade_ids:
            return self  # duplicate (REST and WebSocket both reported it)
        filled = EXACT.add(self.filled_qty, event.qty)
        venue_filled = self._venue_cum(event)
        if filled > self.qty:
            raise Overfill(self.status, event.kind, f"fills {filled} > order qty {self.qty}; {self._detail(event)}")
        if self.status in SETTLING:
            if filled > venue_filled:
                raise InvalidTransition(self.status, event.kind,
                                        f"terminal, and the venue counted {venue_filled}; {self._detail(event)}")
            target = self.status
        else:
            kind = K.FILL_FULL if max(filled, venue_filled) >= self.qty else K.FILL_PARTIAL
            found = TRANSITIONS.get((self.status, kind))
            if found is None:
                raise InvalidTransition(self.status, kind, self._detail(event))
            target = found
        return self._moved(event, target, filled_qty=filled, venue_filled_qty=venue_filled,
                           filled_notional=EXACT.add(self.filled_notional, EXACT.multiply(event.price, event.qty)),
                           fees=EXACT.add(self.fees, event.fee), trade_ids=self.trade_ids | {event.trade_id})

    def _stale(self, event: OrderEvent) -> bool:
        return (event.kind not in LOCAL_KINDS and event.ts_venue >= 0 and self.last_ts_venue >= 0
                and event.ts_venue <= self.last_ts_venue)

    def _venue_cum(self, event: OrderEvent) -> Decimal:
        if event.cum_qty is None:
            return self.venue_filled_qty
        if event.cum_qty > self.qty:
            raise Overfill(self.status, event.kind, f"venue cumulative {event.cum_qty} > order qty {self.qty}")
        return max(self.venue_filled_qty, event.cum_qty)

    def _moved(self, event: OrderEvent, target: OrderStatus, **changes: Any) -> Order:
        ts = self.last_ts_venue
        if event.kind not in LOCAL_KINDS and event.ts_venue >= 0:
            ts = max(ts, event.ts_venue)
        return replace(self, status=target, last_ts_venue=ts, events=(*self.events, event), **changes)

    def _detail(self, event: OrderEvent) -> str:
        extra = f" venue says {event.venue_status.name}" if event.venue_status else ""
        return f"order {self.client_id} ({self.venue.label} {self.symbol}){extra}"


def _check_executed(executed: Decimal, total: Decimal | None, venue: str) -> None:
    _dec(f"{venue} executed quantity", executed)
    if total is not None:
        _dec(f"{venue} order quantity", total)
        if 0 < total < executed:
            raise ValueError(f"{venue} executed {executed} > order quantity {total}")


def from_upbit_state(state: str, executed_volume: Decimal, volume: Decimal | None) -> OrderStatus:
    """Upbit ``state`` + ``executed_volume`` -> status; decide fills by the volume, never the state alone.

    ``volume`` is None for a market buy by KRW amount (``ord_type=price``): such an order ends ``cancel`` once
    the unspendable dust is cancelled, though it filled, so any executed volume means FILLED. A ``cancel`` with
    0 < executed < volume is a partially filled, then cancelled order: CANCELED, and the fills stay (pass
    ``executed_volume`` as the event's ``cum_qty``).
    """
    _check_executed(executed_volume, volume, "Upbit")
    match state.strip().lower():
        case "wait" | "watch":
            return S.PARTIALLY_FILLED if executed_volume > 0 else S.ACCEPTED
        case "done":
            return S.FILLED
        case "cancel":
            if executed_volume > 0 and (volume is None or executed_volume >= volume):
                return S.FILLED
            return S.CANCELED
        case "trade" | "prevented":
            raise ValueError(f"Upbit {state!r} is a myOrder event, not an order state: apply a trade as a FILL")
    raise ValueError(f"unknown Upbit order state {state!r}")


_BINANCE_ENDS = {"CANCELED": S.CANCELED, "EXPIRED": S.EXPIRED, "EXPIRED_IN_MATCH": S.EXPIRED, "REJECTED": S.REJECTED}


def from_binance_status(status: str, executed_qty: Decimal, orig_qty: Decimal) -> OrderStatus:
    """Binance ``status`` + ``executedQty`` -> status. EXPIRED / CANCELED with executedQty > 0 keep their fills
    (pass ``executedQty`` as the event's ``cum_qty``); if the whole quantity executed, it is FILLED."""
    _check_executed(executed_qty, orig_qty, "Binance")
    name = status.strip().upper()
    if name in ("NEW", "PENDING_NEW", "PARTIALLY_FILLED", "PENDING_CANCEL"):
        return S.PARTIALLY_FILLED if executed_qty > 0 else S.ACCEPTED
    if name == "FILLED":
        return S.FILLED
    if name not in _BINANCE_ENDS:
        raise ValueError(f"unknown Binance order status {status!r}")
    if name == "REJECTED" and executed_qty > 0:
        raise ValueError(f"a REJECTED Binance order cannot have executed {executed_qty}")
    return S.FILLED if executed_qty > 0 and executed_qty >= orig_qty else _BINANCE_ENDS[name]
