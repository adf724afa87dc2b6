"""Commands -> Binance request params, and HTTP outcomes -> OrderEvents (brief B3, B5, C1).

Pure. A place is refused locally (REJECTED, INVALID, "local: Filter failure: X") when it would fail a filter,
rather than sent to earn a -1013: nothing leaves, no weight is spent. A price off the tick or a quantity off the
step is refused too, never moved: the order sent is the one the engine decided (it rounds first, with
``SymbolRules.round_price`` / ``floor_qty``). A 5xx, a timeout, -1006 or -1007 is UNKNOWN: the order may exist;
``query_request`` by ``origClientOrderId`` settles it (-2013 "Order does not exist" -> REJECTED NOT_FOUND).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from ....core.domain import Side
from ....core.venue import (
    CancelOrder,
    OrderEvent,
    OrderState,
    OrderType,
    PlaceOrder,
    QueryOrder,
    Rejected,
    RejectReason,
)
from . import VENUE
from .parse import UNKNOWN_CODES, error_reason, parse_error, parse_order
from .rules import SymbolRules

ORDER_PATH = "/api/v3/order"


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    params: tuple[tuple[str, str], ...]  # signed by the shell (timestamp, recvWindow, signature)
    weight: int
    orders: int = 0  # counts against the ORDERS limits


def fmt(d: Decimal) -> str:
    """Plain decimal text, no exponent ("0.00001", never "1E-5")."""
    return format(d, "f")


def _local_reject(cmd: PlaceOrder, detail: str, reason: RejectReason = RejectReason.INVALID) -> OrderEvent:
    return OrderEvent(VENUE, cmd.client_id, None, cmd.symbol, OrderState.REJECTED, Decimal(0), reason=reason,
                      detail=f"local: {detail}", ts_local=cmd.ts_local)


def place_request(cmd: PlaceOrder, rules: SymbolRules, ref_price: Decimal | None = None,
                  avg_price: Decimal | None = None) -> Request | OrderEvent:
    """POST /api/v3/order params, or a local REJECTED event when the venue would refuse it anyway.

    ``ref_price``: a market order's reference price for NOTIONAL; ``avg_price``: the symbol's average price
    for PERCENT_PRICE_BY_SIDE (None: left to the venue)."""
    if rules.status != "TRADING":
        return _local_reject(cmd, f"symbol status {rules.status}", RejectReason.MARKET_CLOSED)
    side = "BUY" if cmd.side == Side.BUY else "SELL"
    p: list[tuple[str, str]] = [("symbol", cmd.symbol), ("side", side)]
    if cmd.type is OrderType.MARKET:
        p.append(("type", "MARKET"))
        if cmd.quote_amount is not None:
            if not rules.quote_order_qty_market:
                return _local_reject(cmd, "quoteOrderQty not allowed")
            if cmd.quote_amount <= 0:
                return _local_reject(cmd, "quoteOrderQty must be positive")
            p.append(("quoteOrderQty", fmt(cmd.quote_amount)))
        elif cmd.qty is not None:
            why = rules.check(ref_price, cmd.qty, market=True)
            if why:
                return _local_reject(cmd, f"Filter failure: {why}{_off_grid(cmd, rules)}")
            p.append(("quantity", fmt(cmd.qty)))
        else:
            return _local_reject(cmd, "market order without quantity or quoteOrderQty")
    else:
        if cmd.price is None or cmd.qty is None:
            return _local_reject(cmd, "limit order without price or quantity")
        why = rules.check(cmd.price, cmd.qty, side=cmd.side, avg_price=avg_price)
        if why:
            return _local_reject(cmd, f"Filter failure: {why}{_off_grid(cmd, rules)}")
        tif = "IOC" if cmd.type is OrderType.IOC else "GTC"
        p += [("type", "LIMIT"), ("timeInForce", tif), ("quantity", fmt(cmd.qty)), ("price", fmt(cmd.price))]
    p += [("newClientOrderId", cmd.client_id), ("newOrderRespType", "FULL")]
    return Request("POST", ORDER_PATH, tuple(p), 1, 1)


def _off_grid(cmd: PlaceOrder, rules: SymbolRules) -> str:
    """The clear part of an off-grid refusal: which number, which grid (the engine rounds, not the adapter)."""
    step = (rules.market_step or rules.step) if cmd.type is OrderType.MARKET else rules.step
    if cmd.price is not None and cmd.type is not OrderType.MARKET and rules.tick and cmd.price % rules.tick:
        return f" (price {cmd.price} is off the tick {fmt(rules.tick.normalize())}: round it before sending)"
    if cmd.qty is not None and step and cmd.qty % step:
        return f" (quantity {cmd.qty} is off the step {fmt(step.normalize())}: floor it before sending)"
    return ""


def cancel_request(cmd: CancelOrder) -> Request:
    return Request("DELETE", ORDER_PATH, (("symbol", cmd.symbol), ("origClientOrderId", cmd.client_id)), 1)


def query_request(cmd: QueryOrder) -> Request:
    return Request("GET", ORDER_PATH, (("symbol", cmd.symbol), ("origClientOrderId", cmd.client_id)), 4)


def open_orders_request(symbol: str | None) -> Request:
    return Request("GET", "/api/v3/openOrders", (("symbol", symbol),) if symbol else (), 6 if symbol else 80)


def unknown(client_id: str, symbol: str, detail: str, ts_local: int) -> OrderEvent:
    return OrderEvent(VENUE, client_id, None, symbol, OrderState.UNKNOWN, Decimal(0), detail=detail, ts_local=ts_local)


def outcome(client_id: str, symbol: str, status: int | None, body: bytes | str | None, ts_local: int) -> OrderEvent:
    """An order call's HTTP outcome -> an event. ``status None`` = timeout / dropped connection.

    2xx: the order body (a body that does not parse is UNKNOWN too: the venue did act). 5xx, timeout,
    -1006/-1007: UNKNOWN. Other 4xx with a Binance error: REJECTED with the reason class.
    """
    if status is None:
        return unknown(client_id, symbol, "timeout", ts_local)
    if 200 <= status < 300 and body is not None:
        ev = parse_order(body, ts_local)
        if isinstance(ev, Rejected):
            return unknown(client_id, symbol, f"unreadable {status} body: {ev.reason} {ev.detail}"[:200], ts_local)
        return ev
    err = parse_error(body) if body is not None else None
    if status >= 500 or (err is not None and err[0] in UNKNOWN_CODES):
        return unknown(client_id, symbol, f"http {status} {err or ''}"[:200], ts_local)
    if err is None:
        return unknown(client_id, symbol, f"http {status} without a Binance error body", ts_local)
    code, msg = err
    reason = RejectReason.RATE_LIMITED if status in (418, 429) else error_reason(code, msg)
    return OrderEvent(VENUE, client_id, None, symbol, OrderState.REJECTED, Decimal(0), reason=reason,
                      detail=f"{code} {msg}", ts_local=ts_local)


def settle(previous: OrderEvent, query: OrderEvent) -> OrderEvent:
    """An UNKNOWN place settled by its query: the venue's record, or 'never got it' (REJECTED NOT_FOUND)."""
    if query.state is OrderState.REJECTED and query.reason is RejectReason.NOT_FOUND:
        return OrderEvent(VENUE, previous.client_id, None, previous.symbol, OrderState.REJECTED, Decimal(0),
                          reason=RejectReason.NOT_FOUND, detail=query.detail, ts_local=query.ts_local)
    return query
