"""Matching engine shared by the fake venues: pure (no I/O, no clock), exact Decimal arithmetic.

A market's book is replaced as a whole (a static book or the next replayed snapshot); our own taker fills
consume the displayed levels until the next replacement, so a second order walks further. Resting limit
orders fill as makers, at their own price, when a new book crosses them. The venue modules check the venue's
own order rules (filters, tick table, minimums) before calling :meth:`Engine.place`; the engine checks funds.

Fees: ``fee_in="received"`` is Binance's way (commission taken from the asset received);
``fee_in="quote"`` is Upbit's (fee in the quote currency, reserved on top of a bid's value).
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from decimal import ROUND_DOWN, ROUND_UP, Decimal
from typing import Literal

ZERO = Decimal(0)
FEE_QUANTUM = Decimal("1e-8")
Side = Literal["buy", "sell"]
Status = Literal["new", "partial", "filled", "cancelled", "expired"]
OPEN: frozenset[str] = frozenset({"new", "partial"})


class EngineReject(Exception):
    """The engine refuses an order: ``reason`` is ``insufficient_funds`` or ``unknown_order``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Book:
    """Top of book: bids best (highest) first, asks best (lowest) first; (price, qty) pairs."""

    bids: tuple[tuple[Decimal, Decimal], ...]
    asks: tuple[tuple[Decimal, Decimal], ...]
    ts_ms: int = 0
    update_id: int = 0


@dataclass(frozen=True, slots=True)
class MarketSpec:
    """One tradable pair on a venue as the engine needs it."""

    symbol: str  # the venue's id: BTCUSDT / KRW-BTC
    base: str
    quote: str
    step: Decimal  # quantity step (market-by-quote fills round down to it)
    maker_fee: Decimal
    taker_fee: Decimal
    fee_in: Literal["received", "quote"]


@dataclass(slots=True)
class Fill:
    trade_id: int
    price: Decimal
    qty: Decimal
    quote: Decimal
    fee: Decimal
    fee_asset: str
    maker: bool
    ts_ms: int


@dataclass(slots=True)
class Order:
    order_id: int
    uid: str  # a UUID, Upbit's order id
    client_id: str
    symbol: str
    side: Side
    kind: Literal["limit", "market"]
    tif: Literal["GTC", "IOC", "FOK"]
    price: Decimal | None
    qty: Decimal | None  # base quantity (None: market by quote amount)
    quote_qty: Decimal | None  # quote amount to spend/receive (market by quote)
    created_ms: int
    updated_ms: int
    status: Status = "new"
    filled: Decimal = ZERO
    filled_quote: Decimal = ZERO
    fee_paid: Decimal = ZERO
    locked: Decimal = ZERO  # what this order still holds of the asset it pays with
    fills: list[Fill] = field(default_factory=list)

    @property
    def is_open(self) -> bool:
        return self.status in OPEN

    @property
    def remaining(self) -> Decimal:
        return (self.qty - self.filled) if self.qty is not None else ZERO


@dataclass(frozen=True, slots=True)
class Change:
    """One order state change or fill, for the venues' private streams (``Engine.listeners``).

    ``kind``: ``new`` (accepted), ``trade`` (one fill; ``status`` is ``filled`` on the fill that completed the
    order, else ``partial``) or ``closed`` (cancelled / expired / filled without a fill of its own). The
    cumulative figures are as of this change, so a listener can render each event as the venue would."""

    kind: Literal["new", "trade", "closed"]
    order: Order
    status: Status
    filled: Decimal
    filled_quote: Decimal
    fee_paid: Decimal
    fill: Fill | None
    ts_ms: int


Listener = Callable[[list[Change]], None]


def _fee(amount: Decimal, rate: Decimal) -> Decimal:
    return (amount * rate).quantize(FEE_QUANTUM, rounding=ROUND_UP)


class Engine:
    """Balances, books and orders of one account on one venue."""

    def __init__(self, markets: dict[str, MarketSpec], balances: dict[str, Decimal]) -> None:
        self.markets = markets
        self.free: dict[str, Decimal] = dict(balances)
        self.locked: dict[str, Decimal] = {a: ZERO for a in balances}
        self.books: dict[str, Book] = {}
        self._depth: dict[str, dict[str, list[list[Decimal]]]] = {}  # consumable copy of each book
        self.orders: dict[int, Order] = {}
        # symbol -> ids of orders that may still be open (pruned as they close): a new book is matched against
        # these only, not against every order ever placed (a long run places hundreds of thousands)
        self._maybe_open: dict[str, dict[int, None]] = {}
        self._by_client: dict[str, list[int]] = {}  # client order id -> order ids, oldest first
        self.by_uid: dict[str, int] = {}
        self._ids = itertools.count(1)
        self._trade_ids = itertools.count(1)
        self.listeners: list[Listener] = []  # told of every operation's changes once it settled
        self._changes: list[Change] = []

    # -- books -------------------------------------------------------------------------------------
    def set_book(self, symbol: str, book: Book, now_ms: int) -> list[Order]:
        """Replace a market's book; resting orders it crosses fill as makers. Returns the orders that traded."""
        self.books[symbol] = book
        self._depth[symbol] = {"bids": [[p, q] for p, q in book.bids], "asks": [[p, q] for p, q in book.asks]}
        traded = []
        candidates = self._maybe_open.get(symbol, {})
        for order_id in list(candidates):
            order = self.orders[order_id]
            if not order.is_open:
                del candidates[order_id]
            elif self._match(order, now_ms, maker=True):
                traded.append(order)
        self._flush()
        return traded

    def depth(self, symbol: str) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
        """The book as it stands now (displayed levels minus our own fills), bids and asks."""
        d = self._depth.get(symbol, {"bids": [], "asks": []})
        return [(p, q) for p, q in d["bids"] if q > 0], [(p, q) for p, q in d["asks"] if q > 0]

    # -- orders ------------------------------------------------------------------------------------
    def place(self, symbol: str, side: Side, kind: Literal["limit", "market"], *, price: Decimal | None = None,
              qty: Decimal | None = None, quote_qty: Decimal | None = None, tif: Literal["GTC", "IOC", "FOK"] = "GTC",
              client_id: str = "", now_ms: int = 0) -> Order:
        """Accept an order (funds locked), take what crosses, rest or expire the remainder."""
        m = self.markets[symbol]
        order = Order(next(self._ids), str(uuid.uuid4()), client_id, symbol, side, kind, tif, price, qty, quote_qty,
                      now_ms, now_ms)
        pay_asset = m.quote if side == "buy" else m.base
        need = self._lock_needed(order, m)
        if self.free.get(pay_asset, ZERO) < need:
            raise EngineReject("insufficient_funds")
        if tif == "FOK" and not self._fillable(order):
            self._register(order)
            order.status = "expired"
            self._record("closed", order)
            self._flush()
            return order
        self.free[pay_asset] -= need
        self.locked[pay_asset] = self.locked.get(pay_asset, ZERO) + need
        order.locked = need
        self._register(order)
        self._match(order, now_ms, maker=False)
        if order.is_open and (kind == "market" or tif != "GTC"):
            self._close(order, "expired", now_ms)
        self._flush()
        return order

    def cancel(self, order_id: int, now_ms: int) -> Order:
        order = self.orders.get(order_id)
        if order is None or not order.is_open:
            raise EngineReject("unknown_order")
        self._close(order, "cancelled", now_ms)
        self._flush()
        return order

    def by_client_id(self, client_id: str) -> list[Order]:
        """Every order placed with ``client_id``, oldest first (the venues look up the newest)."""
        return [self.orders[i] for i in self._by_client.get(client_id, ())]

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        out = []
        for sym in (list(self._maybe_open) if symbol is None else [symbol]):
            candidates = self._maybe_open.get(sym, {})
            for order_id in list(candidates):
                if self.orders[order_id].is_open:
                    out.append(self.orders[order_id])
                else:
                    del candidates[order_id]  # closed: pruned here too (a market whose book never changes)
        return sorted(out, key=lambda o: o.order_id)

    # -- internals ---------------------------------------------------------------------------------
    def _register(self, order: Order) -> None:
        self.orders[order.order_id] = order
        self._maybe_open.setdefault(order.symbol, {})[order.order_id] = None
        if order.client_id:
            self._by_client.setdefault(order.client_id, []).append(order.order_id)
        self.by_uid[order.uid] = order.order_id
        self._record("new", order)

    def _record(self, kind: Literal["new", "trade", "closed"], o: Order, fill: Fill | None = None) -> None:
        if not self.listeners:
            return
        last = self._changes[-1] if self._changes else None
        if kind == "closed" and o.status == "filled" and last and last.order is o and last.kind == "trade":
            self._changes[-1] = replace(last, status="filled")  # the venues report it on the completing fill
            return
        status: Status = "partial" if kind == "trade" else o.status
        ts = o.created_ms if kind == "new" else o.updated_ms
        self._changes.append(Change(kind, o, status, o.filled, o.filled_quote, o.fee_paid, fill, ts))

    def _flush(self) -> None:
        changes, self._changes = self._changes, []
        for listener in self.listeners if changes else ():
            listener(changes)

    def _lock_needed(self, o: Order, m: MarketSpec) -> Decimal:
        """What the order holds of the asset it pays with (bids in quote mode reserve the fee on top)."""
        fee_on_top = m.taker_fee if m.fee_in == "quote" else ZERO
        if o.side == "sell":
            if o.qty is not None:
                return o.qty
            return self._walk_cost(o.symbol, "bids", quote=o.quote_qty)  # market sell to receive a quote amount
        if o.price is not None and o.qty is not None:
            return o.price * o.qty + _fee(o.price * o.qty, fee_on_top)
        if o.quote_qty is not None:
            return o.quote_qty + _fee(o.quote_qty, fee_on_top)
        cost = self._walk_cost(o.symbol, "asks", qty=o.qty)  # market buy of a base quantity
        return cost + _fee(cost, fee_on_top)

    def _walk_cost(self, symbol: str, side: str, *, qty: Decimal | None = None,
                   quote: Decimal | None = None) -> Decimal:
        """Quote cost of ``qty`` against the book, or base needed to receive ``quote`` (what the book holds of
        it if too thin: the remainder of a market order expires, as on Binance)."""
        left = qty if qty is not None else quote
        assert left is not None
        total = ZERO
        for p, q in self._depth.get(symbol, {}).get(side, []):
            if left <= 0:
                break
            if qty is not None:
                take = min(q, left)
                total += take * p
                left -= take
            else:
                take_quote = min(q * p, left)
                total += take_quote / p
                left -= take_quote
        return total

    def _fillable(self, o: Order) -> bool:
        levels = self._depth.get(o.symbol, {}).get("asks" if o.side == "buy" else "bids", [])
        avail = sum((q for p, q in levels if o.price is None or (p <= o.price if o.side == "buy" else p >= o.price)),
                    ZERO)
        return o.qty is None or avail >= o.qty

    def _match(self, o: Order, now_ms: int, *, maker: bool) -> bool:
        """Fill ``o`` against the opposite side; True if anything traded."""
        m = self.markets[o.symbol]
        levels = self._depth.get(o.symbol, {}).get("asks" if o.side == "buy" else "bids", [])
        traded = False
        for level in levels:
            p, q = level
            if q <= 0:
                continue
            if o.price is not None and (p > o.price if o.side == "buy" else p < o.price):
                break
            take = self._take_qty(o, m, p, q)
            if take <= 0:  # market by quote: what is left buys less than one step (dust)
                if o.filled > 0:  # Binance reports FILLED; Upbit cancels the dust (brief §A4)
                    self._close(o, "filled" if m.fee_in == "received" else "cancelled", now_ms)
                    return traded
                break
            level[1] = q - take
            self._book_fill(o, m, o.price if maker and o.price is not None else p, take, maker, now_ms)
            traded = True
            if self._done(o):
                break
        if self._done(o):
            self._close(o, "filled", now_ms)
        elif traded:
            o.status = "partial"
        return traded

    def _take_qty(self, o: Order, m: MarketSpec, p: Decimal, q: Decimal) -> Decimal:
        if o.qty is not None:
            return min(q, o.remaining)
        assert o.quote_qty is not None
        left_quote = o.quote_qty - o.filled_quote
        return min(q, (left_quote / p).quantize(m.step, rounding=ROUND_DOWN))

    def _done(self, o: Order) -> bool:
        if o.qty is not None:
            return o.filled >= o.qty
        assert o.quote_qty is not None
        return o.quote_qty - o.filled_quote <= 0

    def _book_fill(self, o: Order, m: MarketSpec, price: Decimal, qty: Decimal, maker: bool, now_ms: int) -> None:
        quote = price * qty
        rate = m.maker_fee if maker else m.taker_fee
        if o.side == "buy":
            fee_asset = m.base if m.fee_in == "received" else m.quote
            fee = _fee(qty if m.fee_in == "received" else quote, rate)
            spent = quote + (fee if m.fee_in == "quote" else ZERO)
            self._spend(o, m.quote, spent)
            self._credit(m.base, qty - (fee if m.fee_in == "received" else ZERO))
        else:
            fee_asset = m.quote
            fee = _fee(quote, rate)
            self._spend(o, m.base, qty)
            self._credit(m.quote, quote - fee)
        o.filled += qty
        o.filled_quote += quote
        o.fee_paid += fee
        o.updated_ms = now_ms
        o.fills.append(fill := Fill(next(self._trade_ids), price, qty, quote, fee, fee_asset, maker, now_ms))
        self._record("trade", o, fill)

    def _spend(self, o: Order, asset: str, amount: Decimal) -> None:
        from_lock = min(amount, o.locked)
        o.locked -= from_lock
        self.locked[asset] -= from_lock
        self.free[asset] -= amount - from_lock  # a maker fill below the reserve never gets here

    def _credit(self, asset: str, amount: Decimal) -> None:
        self.free[asset] = self.free.get(asset, ZERO) + amount
        self.locked.setdefault(asset, ZERO)

    def _close(self, o: Order, status: Status, now_ms: int) -> None:
        m = self.markets[o.symbol]
        asset = m.quote if o.side == "buy" else m.base
        self.locked[asset] -= o.locked
        self.free[asset] += o.locked
        o.locked = ZERO
        o.status = status
        o.updated_ms = now_ms
        self._record("closed", o)
