"""Binance spot payloads -> core.venue types; every bad payload -> a counted ``Rejected``, never an exception.

Numbers arrive as decimal strings (prices, quantities) or JSON numbers (ids, times; ccxt's recorder stores
those as strings too): both are accepted, converted once to ``Decimal``/``int``, never through a binary float
for a string. NaN/Infinity, booleans, magnitudes beyond 1e20 and precisions below 1e-20 are refused.
Plain ``json`` + ``Decimal`` on purpose: this is the market-data hot path (benchmarks/venue_parse_cost.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

from ....core.domain import Side
from ....core.venue import (
    Balance,
    BestBidAsk,
    BookDelta,
    BookLevel,
    BookSnapshot,
    Fill,
    MarketData,
    OrderEvent,
    OrderState,
    Rejected,
    RejectReason,
    Trade,
)
from . import VENUE

T = TypeVar("T")

MS = 1_000_000  # ms -> ns
_MAX_ADJ = 20
_MAX_INT = 2**63 - 1
_ERRORS = (KeyError, TypeError, ValueError, ArithmeticError, IndexError, AttributeError, RecursionError)


class Bad(Exception):
    """Internal: a payload field is unusable; ``reason`` is a core.venue.Rejected reason."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


CATCH = (*_ERRORS, Bad)  # what a parser catches: it returns a Rejected instead


@dataclass(frozen=True, slots=True)
class Control:
    """A non-data message: subscription ack (``{"result":null,"id":1}``), serverShutdown, listenKeyExpired..."""

    kind: str
    detail: str


# ---- field helpers (raise Bad; callers catch)
def dec(v: Any, name: str = "") -> Decimal:
    t = type(v)
    if t is str or t is int:
        d = Decimal(v)
    elif t is float:
        d = Decimal(repr(v))
    else:
        raise Bad("bad_field", f"{name}: {t.__name__} is not a number")
    if not d.is_finite():
        raise Bad("nan", f"{name}: {v!r}")
    if d and not -_MAX_ADJ <= d.adjusted() <= _MAX_ADJ:
        raise Bad("bad_field", f"{name}: {v!r} out of range")
    return d


def pos(v: Any, name: str = "") -> Decimal:
    d = dec(v, name)
    if d <= 0:
        raise Bad("bad_field", f"{name}: {v!r} is not positive")
    return d


def nonneg(v: Any, name: str = "") -> Decimal:
    d = dec(v, name)
    if d < 0:
        raise Bad("bad_field", f"{name}: {v!r} is negative")
    return d


def integer(v: Any, name: str = "", lo: int = 0) -> int:
    t = type(v)
    if t is int:
        i = v
    elif t is str and v.lstrip("-").isdigit() and len(v) < 21:
        i = int(v)
    else:
        raise Bad("bad_field", f"{name}: {v!r} is not an integer")
    if not lo <= i <= _MAX_INT:
        raise Bad("bad_field", f"{name}: {v!r} out of range")
    return i


def text(v: Any, name: str = "") -> str:
    if type(v) is not str or not v or len(v) > 64:
        raise Bad("bad_field", f"{name}: {v!r} is not a non-empty string")
    return v


def boolean(v: Any, name: str = "") -> bool:
    if type(v) is not bool:
        raise Bad("bad_field", f"{name}: {v!r} is not a boolean")
    return v


def _mapping(v: Any, name: str) -> dict[str, Any]:
    if type(v) is not dict:
        raise Bad("bad_field", f"{name}: not an object")
    return v


def levels(raw: Any, name: str, allow_zero: bool) -> tuple[BookLevel, ...]:
    if type(raw) is not list:
        raise Bad("bad_field", f"{name}: not a list")
    out = []
    for lv in raw:
        if type(lv) is not list or len(lv) < 2:
            raise Bad("bad_field", f"{name}: level {lv!r}")
        ps, qs = lv[0], lv[1]
        if type(ps) is str and type(qs) is str:  # the wire's form: one fast check, the slow path names the fault
            price, qty = Decimal(ps), Decimal(qs)
            if (price.is_finite() and qty.is_finite() and price > 0 and (qty > 0 or (allow_zero and qty == 0))
                    and -_MAX_ADJ <= price.adjusted() <= _MAX_ADJ
                    and (not qty or -_MAX_ADJ <= qty.adjusted() <= _MAX_ADJ)):
                out.append(BookLevel(price, qty))
                continue
        q = nonneg(qs, name) if allow_zero else pos(qs, name)
        out.append(BookLevel(pos(ps, name), q))
    return tuple(out)


def _load(raw: str | bytes | Mapping[str, Any] | list[Any]) -> Any:
    if isinstance(raw, str | bytes | bytearray):
        try:
            return json.loads(raw)
        except (ValueError, RecursionError) as e:
            raise Bad("bad_json", str(e)[:80]) from None
    return raw


def _rejected(e: BaseException, ts_local: int) -> Rejected:
    if isinstance(e, Bad):
        return Rejected(VENUE, e.reason, e.detail[:200], ts_local)
    return Rejected(VENUE, "bad_field", f"{type(e).__name__}: {str(e)[:160]}", ts_local)


# ---- market data (WS combined streams)
def _depth(d: dict[str, Any], ts_local: int) -> BookDelta:
    first, last = integer(d["U"], "U"), integer(d["u"], "u")
    if first > last:
        raise Bad("out_of_order", f"U {first} > u {last}")
    return BookDelta(VENUE, text(d["s"], "s"), levels(d["b"], "b", True), levels(d["a"], "a", True),
                     first, last, integer(d["E"], "E") * MS, ts_local)


def _trade(d: dict[str, Any], ts_local: int, id_key: str) -> Trade:
    side = Side.SELL if boolean(d["m"], "m") else Side.BUY  # m: buyer is maker -> the seller took
    return Trade(VENUE, text(d["s"], "s"), pos(d["p"], "p"), pos(d["q"], "q"), side,
                 str(integer(d[id_key], id_key)), integer(d["T"], "T") * MS, ts_local)


def _book_ticker(d: dict[str, Any], ts_local: int) -> BestBidAsk:
    bid, ask = pos(d["b"], "b"), pos(d["a"], "a")
    if bid >= ask:
        raise Bad("crossed_book", f"bid {bid} >= ask {ask}")
    ts = integer(d["E"], "E") * MS if "E" in d else 0
    return BestBidAsk(VENUE, text(d["s"], "s"), bid, nonneg(d["B"], "B"), ask, nonneg(d["A"], "A"),
                      integer(d["u"], "u"), ts, ts_local)


def book_snapshot(body: Any, symbol: str, ts_local: int, ts_venue: int = 0) -> BookSnapshot:
    """REST ``/api/v3/depth`` or a ``@depthN`` partial stream; raises Bad (use parse_depth_snapshot)."""
    d = _mapping(body, "depth")
    bids = tuple(sorted(levels(d["bids"], "bids", False), key=lambda lv: lv.price, reverse=True))
    asks = tuple(sorted(levels(d["asks"], "asks", False), key=lambda lv: lv.price))
    if bids and asks and bids[0].price >= asks[0].price:
        raise Bad("crossed_book", f"bid {bids[0].price} >= ask {asks[0].price}")
    return BookSnapshot(VENUE, symbol, bids, asks, integer(d["lastUpdateId"], "lastUpdateId"), ts_venue, ts_local)


def parse_stream(raw: str | bytes | Mapping[str, Any], ts_local: int) -> MarketData | Control | Rejected:
    """One combined-stream frame ``{"stream":..,"data":..}`` (a bare event is accepted too)."""
    try:
        msg = _load(raw)
        if type(msg) is not dict:
            raise Bad("bad_json", "not an object")
        if "data" in msg:
            stream, d = msg.get("stream"), _mapping(msg["data"], "data")
        else:
            stream, d = None, msg
        if "id" in d and "result" in d:
            return Control("response", f"id={d['id']!r} result={str(d['result'])[:80]}")
        e = d.get("e")
        if e == "depthUpdate":
            return _depth(d, ts_local)
        if e == "trade":
            return _trade(d, ts_local, "t")
        if e == "aggTrade":
            return _trade(d, ts_local, "a")
        if e is None and "u" in d and "b" in d and "A" in d:
            return _book_ticker(d, ts_local)
        if e is None and "lastUpdateId" in d:
            if type(stream) is not str or "@" not in stream:
                raise Bad("bad_field", "partial depth without a stream name")
            return book_snapshot(d, stream.split("@", 1)[0].upper(), ts_local)
        if e == "serverShutdown":
            return Control("server_shutdown", str(d.get("E")))
        raise Bad("unknown_type", f"stream={str(stream)[:40]} e={str(e)[:40]}")
    except Bad as b:
        return _rejected(b, ts_local)
    except _ERRORS as x:
        return _rejected(x, ts_local)


def parse_depth_snapshot(raw: str | bytes | Mapping[str, Any], symbol: str, ts_local: int) -> BookSnapshot | Rejected:
    try:
        return book_snapshot(_load(raw), symbol, ts_local)
    except CATCH as x:
        return _rejected(x, ts_local)


# ---- errors
_INVALID = {-1013, -1100, -1101, -1102, -1103, -1104, -1105, -1106, -1111, -1112, -1114, -1115, -1116, -1117,
            -1118, -1119, -1120, -1121, -1125, -1127, -1128, -1130, -2016}
_AUTH = {-1002, -1021, -1022, -2014, -2015}
_RATE = {-1003, -1015}
_NOT_FOUND = {-2013, -2026}
UNKNOWN_CODES = {-1006, -1007}  # "execution status unknown": not a reject, query to settle


def error_reason(code: int, msg: str) -> RejectReason:
    """A Binance error code (and, for -2010/-2011, its message) -> what the caller should do."""
    low = msg.lower()
    if code == -2010:
        if "insufficient balance" in low:
            return RejectReason.INSUFFICIENT_FUNDS
        if "duplicate order" in low:
            return RejectReason.DUPLICATE_ID
        if "market is closed" in low or "trading is disabled" in low:
            return RejectReason.MARKET_CLOSED
        if "immediately match" in low:
            return RejectReason.INVALID
        return RejectReason.OTHER
    if code == -2011:
        return RejectReason.NOT_FOUND if "unknown order" in low else RejectReason.OTHER
    for codes, reason in ((_INVALID, RejectReason.INVALID), (_AUTH, RejectReason.AUTH),
                          (_RATE, RejectReason.RATE_LIMITED), (_NOT_FOUND, RejectReason.NOT_FOUND)):
        if code in codes:
            return reason
    return RejectReason.OTHER


def parse_error(raw: str | bytes | Mapping[str, Any]) -> tuple[int, str] | None:
    """``{"code":-2010,"msg":...}`` -> (code, msg); None if the body is not a Binance error."""
    try:
        d = _load(raw)
        if type(d) is dict and type(d.get("code")) is int and type(d.get("msg")) is str:
            return d["code"], d["msg"][:300]
    except CATCH:
        pass
    return None


# ---- orders (REST) and user data (executionReport)
_STATUS = {"NEW": OrderState.ACCEPTED, "PENDING_NEW": OrderState.ACCEPTED,
           "PARTIALLY_FILLED": OrderState.PARTIALLY_FILLED, "FILLED": OrderState.FILLED,
           "CANCELED": OrderState.CANCELLED, "PENDING_CANCEL": OrderState.ACCEPTED,
           "REJECTED": OrderState.REJECTED, "EXPIRED": OrderState.EXPIRED, "EXPIRED_IN_MATCH": OrderState.EXPIRED}


def _state(v: Any) -> OrderState:
    s = _STATUS.get(v) if type(v) is str else None
    if s is None:
        raise Bad("bad_field", f"status {v!r}")
    return s


def _fills(raw: Any, ts: int) -> tuple[Fill, ...]:
    if type(raw) is not list:
        raise Bad("bad_field", "fills: not a list")
    return tuple(Fill(str(integer(f["tradeId"], "tradeId")), pos(f["price"], "price"), pos(f["qty"], "qty"),
                      nonneg(f["commission"], "commission"), str(f["commissionAsset"]), ts) for f in raw)


def _order(d: dict[str, Any], ts_local: int) -> OrderEvent:
    # a cancel response names the cancelled order in origClientOrderId (clientOrderId is the cancel's own id)
    cid = text(d["origClientOrderId"] if "origClientOrderId" in d else d["clientOrderId"], "clientOrderId")
    ts = next((integer(d[k], k) * MS for k in ("transactTime", "updateTime", "time") if k in d), 0)
    oid = str(integer(d["orderId"], "orderId"))
    if "status" not in d:  # newOrderRespType=ACK: ids and transactTime only
        return OrderEvent(VENUE, cid, oid, text(d["symbol"], "symbol"), OrderState.ACCEPTED, Decimal(0),
                          ts_venue=ts, ts_local=ts_local, detail="ack")
    fills = _fills(d["fills"], ts) if "fills" in d else ()
    executed = nonneg(d["executedQty"], "executedQty")
    orig = nonneg(d["origQty"], "origQty")
    if orig and executed > orig:
        raise Bad("bad_field", f"executedQty {executed} > origQty {orig}")
    state = _state(d["status"])
    detail = str(d.get("expiryReason", ""))[:80]
    return OrderEvent(VENUE, cid, oid, text(d["symbol"], "symbol"), state, executed, fills,
                      RejectReason.OTHER if state is OrderState.REJECTED else RejectReason.NONE, detail, ts, ts_local)


def parse_order(raw: str | bytes | Mapping[str, Any], ts_local: int) -> OrderEvent | Rejected:
    """POST/DELETE/GET /api/v3/order bodies (ACK, RESULT, FULL; cancel responses)."""
    try:
        return _order(_mapping(_load(raw), "order"), ts_local)
    except CATCH as x:
        return _rejected(x, ts_local)


def parse_each(raw: str | bytes | list[Any], ts_local: int, what: str,
               item: Callable[[Any], T]) -> list[T | Rejected]:
    """A list body whose entries are read one by one: an entry that cannot be read is a Rejected, the others
    stand; a body that is not a list is one Rejected."""
    try:
        body = _load(raw)
        if type(body) is not list:
            raise Bad("bad_field", f"{what}: not a list")
    except CATCH as x:
        return [_rejected(x, ts_local)]
    out: list[T | Rejected] = []
    for entry in body:
        try:
            out.append(item(entry))
        except CATCH as x:
            out.append(_rejected(x, ts_local))
    return out


def parse_orders(raw: str | bytes | list[Any], ts_local: int) -> list[OrderEvent | Rejected]:
    """openOrders / allOrders: a list of order bodies, each parsed on its own."""
    return parse_each(raw, ts_local, "orders", lambda o: _order(_mapping(o, "order"), ts_local))


@dataclass(frozen=True, slots=True)
class MyTrade:
    """One own fill from GET /api/v3/myTrades (keyed by orderId, not client id: the venue does not echo it)."""

    symbol: str
    order_id: str
    fill: Fill
    is_buyer: bool
    is_maker: bool


def _my_trade(t: Any) -> MyTrade:
    f = Fill(str(integer(t["id"], "id")), pos(t["price"], "price"), pos(t["qty"], "qty"),
             nonneg(t["commission"], "commission"), text(t["commissionAsset"], "commissionAsset"),
             integer(t["time"], "time") * MS)
    return MyTrade(text(t["symbol"], "symbol"), str(integer(t["orderId"], "orderId")), f,
                   boolean(t["isBuyer"], "isBuyer"), boolean(t["isMaker"], "isMaker"))


def parse_my_trades(raw: str | bytes | list[Any], ts_local: int) -> list[MyTrade | Rejected]:
    return parse_each(raw, ts_local, "myTrades", _my_trade)


def _balances(raw: Any, asset: str, free: str, locked: str) -> tuple[Balance, ...]:
    if type(raw) is not list:
        raise Bad("bad_field", "balances: not a list")
    return tuple(Balance(text(b[asset], asset), nonneg(b[free], free), nonneg(b[locked], locked)) for b in raw)


def parse_account(raw: str | bytes | Mapping[str, Any], ts_local: int) -> tuple[Balance, ...] | Rejected:
    """GET /api/v3/account -> balances."""
    try:
        return _balances(_mapping(_load(raw), "account")["balances"], "asset", "free", "locked")
    except CATCH as x:
        return _rejected(x, ts_local)


def _execution_report(d: dict[str, Any], ts_local: int) -> OrderEvent:
    state = _state(d["X"])
    orig = d.get("C")
    cid = text(orig if state is OrderState.CANCELLED and type(orig) is str and orig else d["c"], "c")
    ts = integer(d["E"], "E") * MS
    fills: tuple[Fill, ...] = ()
    if d["x"] == "TRADE":
        fills = (Fill(str(integer(d["t"], "t")), pos(d["L"], "L"), pos(d["l"], "l"), nonneg(d["n"], "n"),
                      str(d["N"] or ""), integer(d["T"], "T") * MS),)
    filled = nonneg(d["z"], "z")
    q = nonneg(d["q"], "q")
    if q and filled > q:
        raise Bad("bad_field", f"z {filled} > q {q}")
    rejected = state is OrderState.REJECTED
    detail = str(d.get("r", "")) if rejected else str(d.get("eR", "") or "")
    return OrderEvent(VENUE, cid, str(integer(d["i"], "i")), text(d["s"], "s"), state, filled, fills,
                      RejectReason.OTHER if rejected else RejectReason.NONE, detail[:80], ts, ts_local)


def parse_user_event(raw: str | bytes | Mapping[str, Any],
                     ts_local: int) -> OrderEvent | tuple[Balance, ...] | Control | Rejected:
    """A user-data event: bare (listenKey stream) or ``{"subscriptionId":0,"event":{...}}`` (WS API)."""
    try:
        msg = _mapping(_load(raw), "event")
        d = _mapping(msg["event"], "event") if "event" in msg and "subscriptionId" in msg else msg
        e = d.get("e")
        if e == "executionReport":
            return _execution_report(d, ts_local)
        if e == "outboundAccountPosition":
            return _balances(d["B"], "a", "f", "l")
        if e in ("balanceUpdate", "listenKeyExpired", "eventStreamTerminated", "externalLockUpdate"):
            return Control(str(e), str(d.get("E")))
        raise Bad("unknown_type", f"e={str(e)[:40]}")
    except CATCH as x:
        return _rejected(x, ts_local)


_BAN_UNTIL = re.compile(r"banned until (\d{10,16})")


def ban_until_ms(msg: str) -> int | None:
    """-1003 "Way too many requests; IP(...) banned until 1663123456789." -> the epoch ms."""
    m = _BAN_UNTIL.search(msg)
    return int(m.group(1)) if m else None
