"""core.venue commands -> Upbit requests, and Upbit responses -> OrderEvents (sans-IO).

Order types (brief §A4): LIMIT -> ``limit``; IOC -> ``limit`` + ``time_in_force=ioc``; MARKET buy -> ``price``
(``price`` = KRW to spend, no volume); MARKET sell -> ``market`` (``volume``, no price). Prices must already be
on the market's tick (``rules.MarketRules``: the instruments ``tick_size``, else the KRW table of the order's
date); off-grid prices and volumes are refused here (INVALID, nothing sent), never rounded: rounding would change
the order the caller decided on. Minimum / maximum order totals per quote currency (brief §A9).
``identifier`` = the client id; an id is burnt once a request carrying it was attempted, whatever happened.
A 5xx, a timeout or a dropped connection gives UNKNOWN: only a query by identifier settles it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal

from ....core.client_ids import ID_PATTERN
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
from .auth import Params, flatten
from .numbers import VENUE
from .parse import error_reason, parse_order
from .rules import MarketRules


@dataclass(frozen=True, slots=True)
class Request:
    """One REST call: ``params`` are the query (GET/DELETE) or the JSON body (POST), in the order hashed."""

    method: str
    path: str  # under /v1
    params: Params
    group: str  # rate-limit group
    client_id: str = ""


def _refuse(cmd: PlaceOrder | CancelOrder | QueryOrder, reason: RejectReason, detail: str) -> OrderEvent:
    return OrderEvent(VENUE, cmd.client_id, None, cmd.symbol, OrderState.REJECTED, Decimal(0), (), reason,
                      detail, 0, cmd.ts_local)


def _place_params(cmd: PlaceOrder, ts_ns: int, rules: MarketRules) -> dict[str, object] | str:
    """The body fields for a place command, or why it cannot be sent."""
    side = "bid" if cmd.side == Side.BUY else "ask"
    if cmd.qty is not None and (why := rules.qty_problem(cmd.qty)):
        return why
    if cmd.type in (OrderType.LIMIT, OrderType.IOC):
        if cmd.qty is None or cmd.price is None or cmd.price <= 0:
            return "a limit order needs a positive price and volume"
        if why := rules.price_problem(cmd.price, ts_ns):
            return why
        why = rules.total_problem(cmd.price * cmd.qty)
        if why:
            return why
        body: dict[str, object] = {"market": cmd.symbol, "side": side, "ord_type": "limit", "volume": cmd.qty,
                                   "price": cmd.price}
        if cmd.type == OrderType.IOC:
            body["time_in_force"] = "ioc"
    elif cmd.side == Side.BUY:  # market buy: by quote amount, ord_type "price", no volume
        if cmd.quote_amount is None or cmd.qty is not None or cmd.price is not None:
            return "an Upbit market buy takes quote_amount only (ord_type price)"
        why = rules.total_problem(cmd.quote_amount)
        if why:
            return why
        body = {"market": cmd.symbol, "side": side, "ord_type": "price", "price": cmd.quote_amount}
    else:  # market sell: by volume, ord_type "market", no price
        if cmd.qty is None or cmd.price is not None or cmd.quote_amount is not None:
            return "an Upbit market sell takes qty only (ord_type market)"
        body = {"market": cmd.symbol, "side": side, "ord_type": "market", "volume": cmd.qty}
    body["identifier"] = cmd.client_id
    return body


def _valid_id(client_id: str) -> bool:
    return isinstance(client_id, str) and ID_PATTERN.fullmatch(client_id) is not None


@dataclass
class IdentifierLedger:
    """Every identifier ever attempted: Upbit refuses a reuse even after a failed request (brief §A4).

    Seed it from the journal on start (``burnt``) so a restart cannot send an old id again."""

    burnt: set[str] = field(default_factory=set)

    def claim(self, client_id: str) -> bool:
        """True (and burns the id) if it was never used; False if it was."""
        if client_id in self.burnt:
            return False
        self.burnt.add(client_id)
        return True


def place_request(cmd: PlaceOrder, ledger: IdentifierLedger, ts_ns: int,
                  rules: MarketRules | None = None) -> Request | OrderEvent:
    """POST /orders for a command, or a REJECTED event (bad id, reused id, below minimum, off tick...).

    ``rules``: the market's (instruments tick_size); None = the KRW tick table of ``ts_ns``."""
    if not _valid_id(cmd.client_id):
        return _refuse(cmd, RejectReason.INVALID, f"identifier {cmd.client_id!r} is not [A-Za-z0-9_-]{{1,36}}")
    body = _place_params(cmd, ts_ns, rules or MarketRules(cmd.symbol))
    if isinstance(body, str):
        return _refuse(cmd, RejectReason.INVALID, body)  # the id was not sent: not burnt
    if not ledger.claim(cmd.client_id):
        return _refuse(cmd, RejectReason.DUPLICATE_ID, f"identifier {cmd.client_id} was used before")
    return Request("POST", "/orders", flatten(body), "order", cmd.client_id)


def query_request(cmd: QueryOrder) -> Request | OrderEvent:
    if not _valid_id(cmd.client_id):
        return _refuse(cmd, RejectReason.INVALID, "bad identifier")
    return Request("GET", "/order", [("identifier", cmd.client_id)], "default", cmd.client_id)


def cancel_request(cmd: CancelOrder) -> Request | OrderEvent:
    if not _valid_id(cmd.client_id):
        return _refuse(cmd, RejectReason.INVALID, "bad identifier")
    return Request("DELETE", "/order", [("identifier", cmd.client_id)], "default", cmd.client_id)


def open_orders_request(symbol: str | None) -> Request:
    params: list[tuple[str, str]] = [("market", symbol)] if symbol else []
    params += [("states[]", "wait"), ("states[]", "watch")]
    return Request("GET", "/orders/open", params, "default")


def unknown(req: Request, symbol: str, detail: str, ts_local: int) -> OrderEvent:
    """The outcome is not known (timeout, 5xx, dropped connection): a query by identifier settles it."""
    return OrderEvent(VENUE, req.client_id, None, symbol, OrderState.UNKNOWN, Decimal(0), (), RejectReason.NONE,
                      detail, 0, ts_local)


def interpret(req: Request, symbol: str, status: int | None, body: bytes | str, ts_local: int) -> OrderEvent:
    """The response to an order request (status None: no response) -> an OrderEvent. Never raises."""
    if status is None or status >= 500:
        return unknown(req, symbol, f"http {status}: outcome unknown until a query", ts_local)
    if status >= 400:
        reason, detail = error_reason(status, body)
        return OrderEvent(VENUE, req.client_id, None, symbol, OrderState.REJECTED, Decimal(0), (), reason,
                          detail, 0, ts_local)
    ev = parse_order(body, ts_local, req.client_id)
    if isinstance(ev, Rejected):  # a 2xx we cannot read: the order may exist
        return unknown(req, symbol, f"unreadable {status} body: {ev.reason} {ev.detail}", ts_local)
    return ev


def body_text(params: Params) -> str:
    """The JSON body for a POST, keys in the hashed order, values as strings (as Upbit's examples send)."""
    return json.dumps(dict(params), separators=(",", ":"))

