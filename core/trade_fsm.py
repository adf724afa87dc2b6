"""The two-leg arbitrage trade: one order per venue, plus the hedge and exit orders it needs (sans-IO).

A ``Trade`` owns its orders (``Leg``s). It moves on two kinds of event, both looked up in ``TRANSITIONS``:

* commands from the caller: ``send``, ``abandon``, ``hedge`` (a hedge order: complete or unwind), ``close``;
* observations the trade makes of its legs after every order event it is fed (``apply_order_event``):
  UNHEDGED (the legs' fills do not offset), IN_FLIGHT (offset, some leg still working), HEDGED (offset, all
  done, position open), FLAT (all done, position gone), NOTHING_FILLED (all done, nothing ever filled).
  An observation is raised only when it differs from the one before the order event.

While any leg is UNKNOWN the trade makes no observation, so it cannot advance (above all it cannot call a
trade FAILED because one leg was rejected while the other's fate is unknown) until the leg is reconciled.

Unhedged exposure is measured from the legs' fills whatever the status (a leg in UNKNOWN counts what it is
known to have filled): ``unhedged_since_ns`` opens when net base exposure exceeds ``tolerance``, and the
episode is added to ``unhedged_ns_total`` when it closes; ``max_unhedged_notional`` is the largest
|net| x ``ref_price`` seen. Times are the events' local timestamps, never read from a clock.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from enum import Enum
from typing import Any

from .domain import Side, Venue
from .order_fsm import EXACT, ZERO, EventKind, InvalidTransition, Order, OrderEvent, OrderStatus


class TradeStatus(Enum):
    PLANNED = "planned"  # both intents recorded, nothing sent
    LEGS_SENT = "legs_sent"
    ONE_LEG_FILLED = "one_leg_filled"  # entry fills do not offset: unhedged
    HEDGED_OPEN = "hedged_open"  # position open, hedged, nothing working
    UNWINDING = "unwinding"  # a hedge order (complete the lagging leg, or unwind the excess) is out
    CLOSING = "closing"  # exit legs sent
    CLOSED = "closed"
    FAILED = "failed"  # nothing filled

    @property
    def is_terminal(self) -> bool:
        return self in (TradeStatus.CLOSED, TradeStatus.FAILED)


class TradeEventKind(Enum):
    SEND = "send"
    ABANDON = "abandon"  # give up before sending
    HEDGE = "hedge"
    CLOSE = "close"
    UNHEDGED = "unhedged"
    IN_FLIGHT = "in_flight"
    HEDGED = "hedged"
    FLAT = "flat"
    NOTHING_FILLED = "nothing_filled"


class LegRole(Enum):
    ENTRY = "entry"
    HEDGE = "hedge"
    EXIT = "exit"


T, E = TradeStatus, TradeEventKind
TRANSITIONS: dict[tuple[TradeStatus, TradeEventKind], TradeStatus] = {
    (T.PLANNED, E.SEND): T.LEGS_SENT,
    (T.PLANNED, E.ABANDON): T.FAILED,
    (T.LEGS_SENT, E.UNHEDGED): T.ONE_LEG_FILLED,
    (T.LEGS_SENT, E.IN_FLIGHT): T.LEGS_SENT,  # e.g. an UNKNOWN leg reconciled as working
    (T.LEGS_SENT, E.HEDGED): T.HEDGED_OPEN,  # both done with equal fills (whole or IOC-partial)
    (T.LEGS_SENT, E.NOTHING_FILLED): T.FAILED,
    (T.ONE_LEG_FILLED, E.UNHEDGED): T.ONE_LEG_FILLED,
    (T.ONE_LEG_FILLED, E.IN_FLIGHT): T.LEGS_SENT,  # the other leg caught up, some leg still working
    (T.ONE_LEG_FILLED, E.HEDGED): T.HEDGED_OPEN,
    (T.ONE_LEG_FILLED, E.HEDGE): T.UNWINDING,
    (T.UNWINDING, E.UNHEDGED): T.UNWINDING,
    (T.UNWINDING, E.IN_FLIGHT): T.UNWINDING,
    (T.UNWINDING, E.HEDGE): T.UNWINDING,  # the previous hedge order ended short
    (T.UNWINDING, E.HEDGED): T.HEDGED_OPEN,  # completed, or an excess traded back
    (T.UNWINDING, E.FLAT): T.CLOSED,  # the lone filled leg unwound
    (T.HEDGED_OPEN, E.CLOSE): T.CLOSING,
    (T.CLOSING, E.UNHEDGED): T.CLOSING,  # exit fills uneven: measured, then hedged
    (T.CLOSING, E.IN_FLIGHT): T.CLOSING,
    (T.CLOSING, E.HEDGE): T.UNWINDING,
    (T.CLOSING, E.HEDGED): T.HEDGED_OPEN,  # exits ended short but even: close the rest again
    (T.CLOSING, E.FLAT): T.CLOSED,
}


def next_status(status: TradeStatus, kind: TradeEventKind) -> TradeStatus:
    """One lookup in ``TRANSITIONS``; an unlisted pair raises ``InvalidTransition``."""
    target = TRANSITIONS.get((status, kind))
    if target is None:
        raise InvalidTransition(status, kind)
    return target


class HedgePolicy(Enum):
    COMPLETE = "complete"  # new order on the lagging leg's venue for the remainder
    UNWIND = "unwind"  # trade the excess back on the over-filled leg's venue


@dataclass(frozen=True, slots=True)
class LegFill:
    venue: Venue
    side: Side
    target: Decimal
    filled: Decimal


@dataclass(frozen=True, slots=True)
class HedgeAction:
    policy: HedgePolicy
    venue: Venue
    side: Side
    qty: Decimal


def hedge_action(a: LegFill, b: LegFill, policy: HedgePolicy, tolerance: Decimal = ZERO) -> HedgeAction | None:
    """What to do about two legs' uneven fills (None: they offset within ``tolerance``, e.g. a lot step).

    Either way the hedge order's side is the one that cuts the net exposure and its quantity is the excess;
    the policy picks the venue: COMPLETE the lagging leg (same side as it), or UNWIND on the leg ahead.
    """
    if a.side is b.side or a.venue is b.venue:
        raise ValueError("the two legs must be on different venues and opposite sides")
    for leg in (a, b):
        if leg.target <= 0 or leg.filled < 0:
            raise ValueError(f"leg target must be positive and fill non-negative: {leg}")
    buy, sell = (a, b) if a.side is Side.BUY else (b, a)
    excess = buy.filled - sell.filled
    if abs(excess) <= tolerance:
        return None
    ahead, lagging = (buy, sell) if excess > 0 else (sell, buy)
    venue = lagging.venue if policy is HedgePolicy.COMPLETE else ahead.venue
    return HedgeAction(policy, venue, lagging.side, abs(excess))


@dataclass(frozen=True, slots=True)
class Leg:
    role: LegRole
    order: Order


@dataclass(frozen=True, slots=True)
class TradeStep:
    kind: TradeEventKind
    ts_local: int
    status: TradeStatus  # after the step


def _signed(order: Order) -> Decimal:
    return order.executed_qty if order.side is Side.BUY else -order.executed_qty


@dataclass(frozen=True, slots=True)
class Trade:
    trade_id: str
    ref_price: Decimal  # the decision's reference price, values unhedged exposure (one currency, e.g. KRW)
    legs: tuple[Leg, ...]
    tolerance: Decimal = ZERO  # |net base exposure| at or below this counts as hedged (lot-step dust)
    status: TradeStatus = TradeStatus.PLANNED
    phase_start: int = 0  # index of the current pair (entry, or the latest exits) in legs
    last_ts_local: int = 0
    unhedged_since_ns: int = -1
    unhedged_notional: Decimal = ZERO
    max_unhedged_notional: Decimal = ZERO
    unhedged_ns_total: int = 0
    history: tuple[TradeStep, ...] = ()

    @classmethod
    def plan(cls, trade_id: str, buy: Order, sell: Order, ref_price: Decimal, tolerance: Decimal = ZERO) -> Trade:
        if buy.side is not Side.BUY or sell.side is not Side.SELL or buy.venue is sell.venue:
            raise ValueError("a trade buys on one venue and sells on the other")
        if buy.status is not OrderStatus.INITIALIZED or sell.status is not OrderStatus.INITIALIZED:
            raise ValueError("entry orders must be fresh intents (INITIALIZED)")
        if ref_price <= 0 or tolerance < 0 or abs(buy.qty - sell.qty) > tolerance:
            raise ValueError(f"bad trade: ref_price {ref_price}, tolerance {tolerance}, legs {buy.qty} / {sell.qty}")
        return cls(trade_id, ref_price, (Leg(LegRole.ENTRY, buy), Leg(LegRole.ENTRY, sell)), tolerance)

    # ---- reading
    def order(self, client_id: str) -> Order:
        return self.legs[self._index(client_id)].order

    def positions(self) -> dict[Venue, Decimal]:
        """Signed base position per venue from every leg's executed quantity."""
        out: dict[Venue, Decimal] = {}
        for leg in self.legs:
            out[leg.order.venue] = EXACT.add(out.get(leg.order.venue, ZERO), _signed(leg.order))
        return out

    @property
    def net_exposure(self) -> Decimal:
        return sum((_signed(leg.order) for leg in self.legs), ZERO)

    @property
    def unknown_legs(self) -> tuple[str, ...]:
        return tuple(leg.order.client_id for leg in self.legs if leg.order.status is OrderStatus.UNKNOWN)

    def unhedged_ns(self, now_ns: int) -> int:
        """Unhedged time so far, counting the open episode up to ``now_ns``."""
        running = max(0, now_ns - self.unhedged_since_ns) if self.unhedged_since_ns >= 0 else 0
        return self.unhedged_ns_total + running

    def hedge_plan(self, policy: HedgePolicy) -> HedgeAction | None:
        """The declared hedge policy applied to the current pair, counting the hedge orders already done."""
        pair = [self.legs[self.phase_start].order, self.legs[self.phase_start + 1].order]
        phase = [leg.order for leg in self.legs[self.phase_start:]]
        fills = []
        for o in pair:
            on_venue = sum((_signed(p) for p in phase if p.venue is o.venue), ZERO)
            fills.append(LegFill(o.venue, o.side, o.qty, on_venue if o.side is Side.BUY else -on_venue))
        return hedge_action(fills[0], fills[1], policy, self.tolerance)

    # ---- commands
    def send(self, ts_local: int) -> Trade:
        status = next_status(self.status, E.SEND)
        submit = OrderEvent(EventKind.SUBMIT, -1, ts_local)
        return self._moved(E.SEND, status, ts_local, tuple(Leg(g.role, g.order.apply(submit)) for g in self.legs))

    def abandon(self, ts_local: int) -> Trade:
        status = next_status(self.status, E.ABANDON)
        refuse = OrderEvent(EventKind.REJECT, -1, ts_local, reason="abandoned before sending")
        return self._moved(E.ABANDON, status, ts_local, tuple(Leg(g.role, g.order.apply(refuse)) for g in self.legs))

    def hedge(self, order: Order, ts_local: int) -> Trade:
        """Add and submit a hedge order (built from ``hedge_plan``). It must cut the net exposure, never flip it."""
        status = next_status(self.status, E.HEDGE)
        self._require_settled(E.HEDGE)
        net = self.net_exposure
        want = Side.SELL if net > 0 else Side.BUY
        self._check_new(order)
        if abs(net) <= self.tolerance or order.side is not want or order.qty > abs(net):
            raise ValueError(f"hedge order {order.side.name} {order.qty} does not cut net exposure {net}")
        if order.venue not in self.positions():
            raise ValueError(f"hedge order on {order.venue.label}, a venue this trade does not use")
        leg = Leg(LegRole.HEDGE, order.apply(OrderEvent(EventKind.SUBMIT, -1, ts_local)))
        return self._moved(E.HEDGE, status, ts_local, (*self.legs, leg))

    def close(self, first: Order, second: Order, ts_local: int) -> Trade:
        """Add and submit the two exit orders; each must reduce its venue's position."""
        status = next_status(self.status, E.CLOSE)
        self._require_settled(E.CLOSE)
        positions = self.positions()
        if first.venue is second.venue or abs(first.qty - second.qty) > self.tolerance:
            raise ValueError("exit orders go one per venue, with matching quantities")
        for o in (first, second):
            self._check_new(o)
            held = positions.get(o.venue, ZERO)
            if held == 0 or o.side is not (Side.SELL if held > 0 else Side.BUY) or o.qty > abs(held):
                raise ValueError(f"exit {o.side.name} {o.qty} on {o.venue.label} does not reduce position {held}")
        submit = OrderEvent(EventKind.SUBMIT, -1, ts_local)
        exits = (Leg(LegRole.EXIT, first.apply(submit)), Leg(LegRole.EXIT, second.apply(submit)))
        return self._moved(E.CLOSE, status, ts_local, (*self.legs, *exits), phase_start=len(self.legs))

    # ---- order events
    def apply_order_event(self, client_id: str, event: OrderEvent) -> Trade:
        """Feed one order event to its leg; the trade then observes its legs and moves if the view changed."""
        if self.status is T.PLANNED:
            raise InvalidTransition(self.status, event.kind, "send the legs before feeding their events")
        i = self._index(client_id)
        order = self.legs[i].order.apply(event)
        if order is self.legs[i].order:
            return self  # ignored by the order (duplicate fill, stale report)
        legs = (*self.legs[:i], Leg(self.legs[i].role, order), *self.legs[i + 1:])
        before, after = self._observe(self.legs), self._observe(legs)
        if after is None or after == before:
            return self._moved(None, self.status, event.ts_local, legs)
        return self._moved(after, next_status(self.status, after), event.ts_local, legs)

    # ---- internals
    def _observe(self, legs: tuple[Leg, ...]) -> TradeEventKind | None:
        orders = [leg.order for leg in legs]
        if any(o.status is OrderStatus.UNKNOWN for o in orders):
            return None
        if abs(sum((_signed(o) for o in orders), ZERO)) > self.tolerance:
            return E.UNHEDGED
        if not all(o.is_terminal for o in orders):
            return E.IN_FLIGHT
        held: dict[Venue, Decimal] = {}
        for o in orders:
            held[o.venue] = held.get(o.venue, ZERO) + _signed(o)
        if any(abs(q) > self.tolerance for q in held.values()):
            return E.HEDGED
        return E.FLAT if any(o.executed_qty > 0 for o in orders) else E.NOTHING_FILLED

    def _moved(self, kind: TradeEventKind | None, status: TradeStatus, ts_local: int, legs: tuple[Leg, ...],
               **changes: Any) -> Trade:
        ts = max(ts_local, self.last_ts_local)  # receive stamps can be applied slightly out of order
        net = abs(sum((_signed(leg.order) for leg in legs), ZERO))
        exposed = net > self.tolerance
        notional = EXACT.multiply(net, self.ref_price) if exposed else ZERO
        since, total = self.unhedged_since_ns, self.unhedged_ns_total
        if exposed and since < 0:
            since = ts
        elif not exposed and since >= 0:
            since, total = -1, total + ts - since
        history = self.history if kind is None else (*self.history, TradeStep(kind, ts, status))
        return replace(self, legs=legs, status=status, last_ts_local=ts, unhedged_since_ns=since,
                       unhedged_ns_total=total, unhedged_notional=notional,
                       max_unhedged_notional=max(self.max_unhedged_notional, notional), history=history, **changes)

    def _require_settled(self, kind: TradeEventKind) -> None:
        if self.unknown_legs:
            raise InvalidTransition(self.status, kind, f"legs {self.unknown_legs} are UNKNOWN: reconcile first")
        working = [leg.order.client_id for leg in self.legs if not leg.order.is_terminal]
        if working:
            raise InvalidTransition(self.status, kind, f"legs {working} still working: cancel them first")

    def _check_new(self, order: Order) -> None:
        if order.status is not OrderStatus.INITIALIZED:
            raise ValueError(f"order {order.client_id} must be a fresh intent (INITIALIZED)")
        if any(leg.order.client_id == order.client_id for leg in self.legs):
            raise ValueError(f"client id {order.client_id} is already a leg of trade {self.trade_id}")

    def _index(self, client_id: str) -> int:
        for i, leg in enumerate(self.legs):
            if leg.order.client_id == client_id:
                return i
        raise KeyError(f"trade {self.trade_id} has no order {client_id!r}")
