"""An execution report (core.paper_venue.ExecutionReport: paper venue or live gateway) as order state machine
events: what a route's order becomes once the venue has answered. Pure; time passed in."""

from __future__ import annotations

from .ledger import units_to_dec
from .order_fsm import EventKind, Order, OrderEvent, OrderStatus
from .paper_venue import ExecutionReport


def apply_execution_report(order: Order, report: ExecutionReport, now_ns: int) -> Order:
    """``order`` after the venue's ``report`` (its fills, then its final status), stamped ``now_ns`` locally."""
    if order.status is OrderStatus.UNKNOWN:  # restored in flight: the venue's record settles it
        order = order.apply(OrderEvent.reconcile(report.status, units_to_dec(report.filled_units),
                                                 report.ts_venue, now_ns))
        for trade_id, px, qty, fee in report.fills:
            order = order.apply(OrderEvent.fill(trade_id, units_to_dec(qty), units_to_dec(px), report.ts_venue,
                                                now_ns, fee=fee))
        return order
    if report.status is OrderStatus.REJECTED and not report.fills:  # refused (locally or by the venue): it was
        # never accepted, and an ACK first would leave the journal saying ACCEPTED (REJECT after ACK is not a
        # transition), an order the venue never had
        return order.apply(OrderEvent(EventKind.REJECT, report.ts_venue, now_ns, reason=report.reason))
    order = order.apply(OrderEvent(EventKind.ACK, report.ts_venue, now_ns))
    for trade_id, px, qty, fee in report.fills:
        order = order.apply(OrderEvent.fill(trade_id, units_to_dec(qty), units_to_dec(px), report.ts_venue, now_ns,
                                            fee=fee))
    if report.status is OrderStatus.EXPIRED:
        order = order.apply(OrderEvent(EventKind.EXPIRE, report.ts_venue, now_ns, cum_qty=order.filled_qty))
    elif report.status is OrderStatus.REJECTED:
        order = order.apply(OrderEvent(EventKind.REJECT, report.ts_venue, now_ns, reason=report.reason))
    return order
