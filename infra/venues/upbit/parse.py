"""Upbit payloads -> core.venue types: quotation WS (DEFAULT and SIMPLE), quotation REST, order and error bodies.

Pure and total: every function returns a value or a :class:`Rejected` with a reason, never raises (the fuzz
test throws 10,000+ mutated real payloads at it). Field names per the brief §A2/A4/A7; SIMPLE abbreviations
for orderbook/trade are the brief's and the recorded cryptofeed session's; the ticker's SIMPLE keys
(``ms``, ``its``, ``dd``, ``mw``) are Upbit's documented abbreviations, not in any recorded payload.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from decimal import ROUND_DOWN, Decimal
from typing import Any

from ....core.domain import Side
from ....core.venue import (
    BookLevel,
    BookSnapshot,
    Fill,
    MarketData,
    MarketState,
    MarketStatus,
    OrderEvent,
    OrderState,
    Rejected,
    RejectReason,
    Trade,
)
from .numbers import VENUE, Bad, dec, ident, loads, ms_to_ns, text, to_dec

MAX_LEVELS = 30  # Upbit sends at most 30 levels per side (top-N snapshots)
_AGGRESSOR = {"BID": Side.BUY, "ASK": Side.SELL}

# DEFAULT name -> SIMPLE name, per message type
_OB_KEYS = {"code": "cd", "timestamp": "tms", "orderbook_units": "obu", "ask_price": "ap", "bid_price": "bp",
            "ask_size": "as", "bid_size": "bs"}
_TRADE_KEYS = {"code": "cd", "trade_price": "tp", "trade_volume": "tv", "ask_bid": "ab",
               "trade_timestamp": "ttms", "sequential_id": "sid"}
_TICKER_KEYS = {"code": "cd", "timestamp": "tms", "market_state": "ms", "is_trading_suspended": "its",
                "delisting_date": "dd", "market_warning": "mw"}
_DEFAULT_KEYS = {k: k for k in (*_OB_KEYS, *_TRADE_KEYS, *_TICKER_KEYS)}
_SIMPLE = {**_OB_KEYS, **_TRADE_KEYS, **_TICKER_KEYS}


def _rejected(bad: Bad, ts_local: int) -> Rejected:
    return Rejected(VENUE, bad.reason, bad.detail, ts_local)


# ---- quotation: order book, trade, ticker
def _levels(units: Any, k: dict[str, str]) -> tuple[tuple[BookLevel, ...], tuple[BookLevel, ...]]:
    if not isinstance(units, list) or not 0 < len(units) <= MAX_LEVELS:
        raise Bad("bad_field", "orderbook units must be a list of 1..30 levels")
    bids: list[BookLevel] = []
    asks: list[BookLevel] = []
    bp, ap, bs, as_ = k["bid_price"], k["ask_price"], k["bid_size"], k["ask_size"]
    for u in units:
        bid = BookLevel(dec(u, bp, positive=True), dec(u, bs))
        ask = BookLevel(dec(u, ap, positive=True), dec(u, as_))
        if bids and not (bid.price < bids[-1].price and ask.price > asks[-1].price):
            raise Bad("bad_field", f"levels out of order at {len(bids)}")
        bids.append(bid)
        asks.append(ask)
    if bids[0].price >= asks[0].price:
        raise Bad("crossed_book", f"best bid {bids[0].price} >= best ask {asks[0].price}")
    return tuple(bids), tuple(asks)


def _orderbook(msg: dict[str, Any], k: dict[str, str], ts_local: int) -> BookSnapshot:
    bids, asks = _levels(msg.get(k["orderbook_units"]), k)
    return BookSnapshot(VENUE, _code(msg, k), bids, asks, None, ms_to_ns(msg, k["timestamp"]), ts_local)


def _code(msg: dict[str, Any], k: dict[str, str]) -> str:
    code = text(msg, k["code"], max_len=24)
    quote, sep, base = code.partition("-")
    if not sep or not quote.isalnum() or not base.isalnum():
        raise Bad("bad_field", f"market code {code[:24]!r} is not QUOTE-BASE")
    return code


def _trade(msg: dict[str, Any], k: dict[str, str], ts_local: int, ts_key: str) -> Trade:
    ab = msg.get(k["ask_bid"])
    side = _AGGRESSOR.get(ab) if isinstance(ab, str) else None
    if side is None:
        raise Bad("bad_field", "ask_bid is not ASK/BID")
    return Trade(VENUE, _code(msg, k), dec(msg, k["trade_price"], positive=True),
                 dec(msg, k["trade_volume"], positive=True), side, ident(msg, k["sequential_id"]),
                 ms_to_ns(msg, ts_key), ts_local)


def ticker_state(market_state: Any, suspended: Any, delisting_date: Any, warning: Any) -> tuple[MarketState, str]:
    """The ticker's market flags as a MarketState (ACTIVE + no flags = TRADING)."""
    state = MarketState.TRADING
    if market_state not in (None, "ACTIVE", "PREVIEW", "DELISTED"):
        raise Bad("bad_field", "market_state is not ACTIVE/PREVIEW/DELISTED")
    if market_state in ("PREVIEW", "DELISTED") or suspended is True:
        state |= MarketState.HALTED
    if market_state == "DELISTED" or delisting_date not in (None, ""):
        state |= MarketState.DELISTING
    if warning == "CAUTION":  # deprecated field: CAUTION meant the investment warning (유의)
        state |= MarketState.WARNING
    detail = f"market_state={market_state} suspended={suspended} delisting_date={delisting_date} warning={warning}"
    return state, detail


def _ticker(msg: dict[str, Any], k: dict[str, str], ts_local: int) -> MarketStatus:
    state, detail = ticker_state(msg.get(k["market_state"]), msg.get(k["is_trading_suspended"]),
                                 msg.get(k["delisting_date"]), msg.get(k["market_warning"]))
    return MarketStatus(VENUE, _code(msg, k), state, detail, ms_to_ns(msg, k["timestamp"]), ts_local)


def parse_ws(raw: bytes | str, ts_local: int) -> MarketData | Rejected | None:
    """One quotation WS frame (text or binary UTF-8 JSON). None: a keep-alive ({"status":"UP"})."""
    try:
        msg = loads(raw)
        if not isinstance(msg, dict):
            raise Bad("bad_field", f"expected an object, got {type(msg).__name__}")
        if "error" in msg:
            return Rejected(VENUE, "venue_error", error_text(msg), ts_local)
        if "ty" in msg:
            kind, k = msg["ty"], _SIMPLE
        elif "type" in msg:
            kind, k = msg["type"], _DEFAULT_KEYS
        elif msg.get("status") == "UP":
            return None
        else:
            raise Bad("unknown_type", "no type field")
        if kind == "orderbook":
            return _orderbook(msg, k, ts_local)
        if kind == "trade":
            return _trade(msg, k, ts_local, k["trade_timestamp"])
        if kind == "ticker":
            return _ticker(msg, k, ts_local)
        raise Bad("unknown_type", f"type {str(kind)[:20]!r}")
    except Bad as bad:
        return _rejected(bad, ts_local)
    except Exception as exc:  # a parser bug: counted apart (the fuzz test requires none)
        return Rejected(VENUE, "parser_error", f"{type(exc).__name__}: {exc}"[:120], ts_local)


# ---- quotation REST bodies (DEFAULT names; lists of items)
def _each(raw: bytes | str, ts_local: int,
          one: Callable[[dict[str, Any]], Any]) -> list[Any]:
    try:
        body = loads(raw)
        if not isinstance(body, list):
            if isinstance(body, dict) and "error" in body:
                return [Rejected(VENUE, "venue_error", error_text(body), ts_local)]
            raise Bad("bad_field", "expected a list")
    except Bad as bad:
        return [_rejected(bad, ts_local)]
    out: list[Any] = []
    for item in body:
        try:
            if not isinstance(item, dict):
                raise Bad("bad_field", "item is not an object")
            out.append(one(item))
        except Bad as bad:
            out.append(_rejected(bad, ts_local))
        except Exception as exc:
            out.append(Rejected(VENUE, "parser_error", f"{type(exc).__name__}: {exc}"[:120], ts_local))
    return out


_REST_OB = {**_DEFAULT_KEYS, "code": "market"}
_REST_TRADE = {**_DEFAULT_KEYS, "code": "market"}


def parse_rest_orderbook(raw: bytes | str, ts_local: int) -> list[BookSnapshot | Rejected]:
    """GET /v1/orderbook: one snapshot per market (unit[0] is the best bid/ask)."""
    return _each(raw, ts_local, lambda m: _orderbook(m, _REST_OB, ts_local))


def parse_rest_trades(raw: bytes | str, ts_local: int) -> list[Trade | Rejected]:
    """GET /v1/trades/ticks (newest first; ``timestamp`` is the trade time)."""
    return _each(raw, ts_local, lambda m: _trade(m, _REST_TRADE, ts_local, "timestamp"))


def parse_rest_ticker(raw: bytes | str, ts_local: int) -> list[Trade | Rejected]:
    """GET /v1/ticker: the last trade of each market, as a Trade (the REST ticker has no bid/ask)."""
    def one(m: dict[str, Any]) -> Trade:
        side = Side.SELL if m.get("ask_bid") == "ASK" else Side.BUY  # the ticker has no aggressor: BUY if absent
        return Trade(VENUE, _code(m, _REST_TRADE), dec(m, "trade_price", positive=True),
                     dec(m, "trade_volume", positive=True), side, "", ms_to_ns(m, "trade_timestamp"), ts_local)
    return _each(raw, ts_local, one)


_CAUTIONS = ("PRICE_FLUCTUATIONS", "TRADING_VOLUME_SOARING", "DEPOSIT_AMOUNT_SOARING", "GLOBAL_PRICE_DIFFERENCES",
             "CONCENTRATION_OF_SMALL_ACCOUNTS")


def _market_status(m: dict[str, Any], ts_local: int) -> MarketStatus:
    code = _code(m, _REST_OB)
    state = MarketState.TRADING
    flags: list[str] = []
    event = m.get("market_event")
    if event is not None:
        if not isinstance(event, dict) or not isinstance(event.get("warning"), bool):
            raise Bad("bad_field", "market_event.warning is not a bool")
        if event["warning"]:
            state |= MarketState.WARNING
            flags.append("warning")
        caution = event.get("caution", {})
        if not isinstance(caution, dict) or not all(isinstance(v, bool) for v in caution.values()):
            raise Bad("bad_field", "market_event.caution is not an object of bools")
        on = [name for name, v in caution.items() if v]
        if on:
            state |= MarketState.CAUTION
            flags.extend(on)
    elif m.get("market_warning") == "CAUTION":  # the deprecated pre-2023 field
        state |= MarketState.WARNING
        flags.append("market_warning=CAUTION")
    elif "market_warning" not in m:
        flags.append("no details")
    # the body carries no time: the status is as of its receipt
    return MarketStatus(VENUE, code, state, ",".join(flags), ts_local, ts_local)


def parse_market_all(raw: bytes | str, ts_local: int) -> list[MarketStatus | Rejected]:
    """GET /v1/market/all?is_details=true: market_event.warning -> WARNING, any caution flag -> CAUTION."""
    return _each(raw, ts_local, lambda m: _market_status(m, ts_local))


# ---- errors
_REASONS: dict[str, RejectReason] = {
    **dict.fromkeys(("insufficient_funds_ask", "insufficient_funds_bid", "insufficient_funds"),
                    RejectReason.INSUFFICIENT_FUNDS),
    **dict.fromkeys(("create_ask_error", "create_bid_error", "under_min_total_ask", "under_min_total_bid",
                     "invalid_price_ask", "invalid_price_bid", "invalid_volume", "invalid_volume_ask",
                     "invalid_volume_bid", "validation_error", "invalid_parameter", "over_max_total_ask",
                     "over_max_total_bid"), RejectReason.INVALID),
    **dict.fromkeys(("invalid_query_payload", "jwt_verification", "expired_access_key", "nonce_used",
                     "no_authorization_ip", "no_authorization_i_p", "out_of_scope", "invalid_access_key"),
                    RejectReason.AUTH),
    "market_offline": RejectReason.MARKET_CLOSED,
    "order_not_found": RejectReason.NOT_FOUND,
}


def error_text(body: Any) -> str:
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        return "no error object"
    return f"{str(err.get('name'))[:48]}: {str(err.get('message'))[:120]}"


def error_reason(status: int, raw: bytes | str) -> tuple[RejectReason, str]:
    """An HTTP error response -> (reason class, "name: message"). Never raises."""
    try:
        body = loads(raw)
    except Bad:
        body = None
    err = body.get("error") if isinstance(body, dict) else None
    name = str(err.get("name")) if isinstance(err, dict) else ""
    detail = f"http {status} {error_text(body)}"
    if status in (418, 429):
        return RejectReason.RATE_LIMITED, detail
    message = str(err.get("message")).lower() if isinstance(err, dict) else ""
    if "identifier" in message and any(w in message for w in ("already", "used", "duplicate")):
        return RejectReason.DUPLICATE_ID, detail  # a reused identifier may come as a generic validation_error
    if name in _REASONS:
        return _REASONS[name], detail
    if "identifier" in name or "duplicate" in name:  # exact name unconfirmed (brief §A4): match by word
        return RejectReason.DUPLICATE_ID, detail
    if status in (401, 403) and name == "":
        return RejectReason.AUTH, detail
    if status == 404:
        return RejectReason.NOT_FOUND, detail
    return (RejectReason.INVALID if status == 400 else RejectReason.OTHER), detail


# ---- order bodies (POST /v1/orders, GET /v1/order, DELETE /v1/order)
_OPEN = ("wait", "watch")


def _fills(order: dict[str, Any], paid_fee: Decimal, fee_asset: str) -> tuple[Fill, ...]:
    trades = order.get("trades", [])
    if not isinstance(trades, list):
        raise Bad("bad_field", "trades is not a list")
    raw = [(ident(t, "uuid"), dec(t, "price", positive=True), dec(t, "volume", positive=True),
            dec(t, "funds", optional=True)) for t in trades]
    total = sum((f if f else p * v for _, p, v, f in raw), Decimal(0))
    fills: list[Fill] = []
    left = paid_fee
    for i, (tid, price, vol, funds) in enumerate(raw):
        share = funds if funds else price * vol
        # the fee is per order: split by funds, the last fill takes the rest so the sum is exact
        fee = left if i == len(raw) - 1 else (paid_fee * share / total).quantize(Decimal("1e-8"), ROUND_DOWN)
        left -= fee
        fills.append(Fill(tid, price, vol, fee, fee_asset, 0))
    return tuple(fills)


def order_state(state: Any, ord_type: Any, tif: Any, volume: Decimal | None, remaining: Decimal | None,
                executed: Decimal) -> OrderState:
    """The order's state from what was executed, never from ``state`` alone (brief §A4)."""
    if state in _OPEN:
        return OrderState.PARTIALLY_FILLED if executed > 0 else OrderState.ACCEPTED
    if state == "done":
        return OrderState.FILLED
    if state != "cancel":
        raise Bad("bad_field", f"order state {str(state)[:16]!r}")
    if executed > 0 and (ord_type == "price" or remaining == 0 or (volume is not None and executed >= volume)):
        return OrderState.FILLED  # a market buy's dust remainder is cancelled: it is filled
    if tif in ("ioc", "fok"):
        return OrderState.EXPIRED
    return OrderState.CANCELLED


def _order(order: Any, ts_local: int) -> OrderEvent:
    if not isinstance(order, dict):
        raise Bad("bad_field", "order body is not an object")
    market = _code(order, _REST_OB)
    if order.get("side") not in ("bid", "ask"):
        raise Bad("bad_field", "side is not bid/ask")
    ord_type = order.get("ord_type")
    if ord_type not in ("limit", "price", "market", "best"):
        raise Bad("bad_field", "ord_type is not limit/price/market/best")
    volume = dec(order, "volume") if order.get("volume") is not None else None
    remaining = dec(order, "remaining_volume") if order.get("remaining_volume") is not None else None
    executed = dec(order, "executed_volume", optional=True)
    if volume is not None and executed > volume:
        raise Bad("bad_field", f"executed_volume {executed} > volume {volume}")
    state = order_state(order.get("state"), ord_type, order.get("time_in_force"), volume, remaining, executed)
    fills = _fills(order, dec(order, "paid_fee", optional=True), market.partition("-")[0])
    return OrderEvent(VENUE, text(order, "identifier", optional=True), ident(order, "uuid"), market, state,
                      executed, fills, RejectReason.NONE, f"state={order.get('state')} ord_type={ord_type}",
                      _iso_ns(order.get("created_at")), ts_local)


def _iso_ns(v: Any) -> int:
    """created_at (ISO-8601 with +09:00) as ns UTC; 0 when absent or unreadable (it is informational)."""
    if not isinstance(v, str) or len(v) > 40:
        return 0
    try:
        dt = datetime.fromisoformat(v)
    except ValueError:
        return 0
    if dt.tzinfo is None:
        return 0
    return int(dt.timestamp()) * 1_000_000_000 + dt.microsecond * 1000


def parse_order(raw: bytes | str, ts_local: int, client_id: str = "") -> OrderEvent | Rejected:
    """An order body (201 from POST /orders, GET /order, DELETE /order). ``client_id`` fills in an absent
    ``identifier`` (orders before 2024-10-18 do not echo it)."""
    try:
        ev = _order(loads(raw), ts_local)
    except Bad as bad:
        return _rejected(bad, ts_local)
    except Exception as exc:
        return Rejected(VENUE, "parser_error", f"{type(exc).__name__}: {exc}"[:120], ts_local)
    if client_id and ev.client_id and ev.client_id != client_id:
        return Rejected(VENUE, "bad_field", f"identifier {ev.client_id} is not {client_id}", ts_local)
    if client_id and not ev.client_id:
        ev = replace(ev, client_id=client_id)
    return ev


def parse_orders(raw: bytes | str, ts_local: int) -> list[OrderEvent | Rejected]:
    """GET /v1/orders/open (a list of order bodies)."""
    return _each(raw, ts_local, lambda o: _order(o, ts_local))


def as_decimal(v: Any, key: str) -> Decimal | None:
    """A checked Decimal or None (for callers outside the package that must not see Bad)."""
    try:
        return to_dec(v, key)
    except Bad:
        return None
