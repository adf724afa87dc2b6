"""A simulated exchange (sans-IO): one venue, many symbols, taker orders filled with the core fill model.

It keeps each symbol's market from the same events the routes see (``book.apply_market_event``) and fills
an order against the first quote it stamps at or after the order's arrival, expiring the order if none came
by the order's deadline (``book.leg_outcome`` then ``book.execute_leg``: the functions the backtest kernel
uses), so paper fills equal backtest fills for the same data. It answers like a venue:
an execution report with the venue's trade ids, fees, and a final status; it enforces the venue's rules
(lot step, minimum notional) and refuses a client order id it has seen before.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np

from .book import (
    LEG_EXPIRE,
    LEG_WAIT,
    MAX_LEVELS,
    Q_TS,
    apply_market_event,
    depth_cut,
    execute_leg,
    leg_outcome,
    new_books,
)
from .domain import Side, Venue
from .events import EventBatch
from .ledger import fee_for, units_to_dec
from .order_fsm import OrderStatus
from .rules import InstrumentRules

NO_MORE_EVENTS = np.iinfo(np.int64).max


@dataclass(frozen=True)
class VenueOrder:
    client_id: str
    symbol: str
    side: Side
    qty_units: int
    arrive_ns: int  # when the order reaches the venue (decision time + latency)
    expire_ns: int = NO_MORE_EVENTS  # it fills only against a quote stamped by then, else expires unfilled


@dataclass(frozen=True)
class ExecutionReport:
    client_id: str
    status: OrderStatus  # FILLED, EXPIRED (partial: IOC remainder; or no quote by its deadline), REJECTED
    fills: tuple[tuple[str, int, int, Decimal], ...]  # (venue trade id, price units, qty units, fee)
    ts_venue: int
    reason: str = ""

    @property
    def filled_units(self) -> int:
        return sum(q for _, _, q, _ in self.fills)


@dataclass
class _SymbolMarket:
    rules: InstrumentRules
    half_spread_bps: float
    impact_bps_per_m: float
    binance_tick_units: int
    books: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] = field(default_factory=new_books)
    pending: list[EventBatch] = field(default_factory=list)
    applied_until: int = -1
    watermark: int = -1  # every event before this time has been received


class PaperVenue:
    def __init__(self, venue: Venue, taker_fee: Decimal) -> None:
        self.venue = venue
        self.taker_fee = taker_fee
        self._markets: dict[str, _SymbolMarket] = {}
        self._seen_ids: set[str] = set()
        self._reports: dict[str, ExecutionReport] = {}  # the venue's record, by client order id
        self._orders: dict[str, VenueOrder] = {}
        self._trade_seq = 0
        self._tmp_px = np.zeros(MAX_LEVELS, np.int64)
        self._tmp_qty = np.zeros(MAX_LEVELS, np.int64)

    def list_symbol(self, symbol: str, rules: InstrumentRules, half_spread_bps: float, impact_bps_per_m: float,
                    binance_tick_units: int, levels: int = MAX_LEVELS) -> None:
        """``levels``: the depth a side of this symbol's book keeps, the route kernel's (``costs.book_levels``)."""
        self._markets[symbol] = _SymbolMarket(rules, half_spread_bps, impact_bps_per_m, binance_tick_units,
                                              new_books(levels))
        if levels > len(self._tmp_px):  # a leg's walk writes at most one fill per level
            self._tmp_px, self._tmp_qty = np.zeros(levels, np.int64), np.zeros(levels, np.int64)

    def on_events(self, symbol: str, upto_ns: int, events: EventBatch) -> None:
        """Market events of this venue for ``symbol``; none before ``upto_ns`` will follow."""
        m = self._market(symbol)
        if len(events):
            m.pending.append(events)
        m.watermark = max(m.watermark, upto_ns)

    def can_fill(self, order: VenueOrder) -> bool:
        """True once the order's outcome is known: the first quote stamped at or after its arrival has come,
        or its deadline has passed without one (the market is advanced to that point, never past it)."""
        if order.client_id in self._reports:
            return True
        return self._outcome(self._market(order.symbol), order) != LEG_WAIT

    def fill(self, order: VenueOrder) -> ExecutionReport:
        m = self._market(order.symbol)
        if not self.can_fill(order):
            raise RuntimeError(f"market for {order.symbol} is only known until {m.watermark}, order arrives "
                               f"{order.arrive_ns}")
        if order.client_id in self._seen_ids:
            # idempotent by client id: the same order again gets its first answer, another order is refused
            first = self._orders[order.client_id]
            recorded = self._reports.get(order.client_id)
            if first == order and recorded is not None:
                return recorded
            return ExecutionReport(order.client_id, OrderStatus.REJECTED, (), order.arrive_ns, "duplicate client id")
        self._seen_ids.add(order.client_id)
        self._orders[order.client_id] = order
        outcome = self._outcome(m, order)
        if order.qty_units <= 0 or order.qty_units % m.rules.step_units:
            rejected = ExecutionReport(order.client_id, OrderStatus.REJECTED, (), order.arrive_ns, "lot size")
            self._reports[order.client_id] = rejected
            return rejected
        v = int(self.venue)
        book_px, book_q, book_n, quotes = m.books
        if outcome == LEG_EXPIRE:
            expired = ExecutionReport(order.client_id, OrderStatus.EXPIRED, (), order.expire_ns,
                                      "no quote between arrival and deadline")
            self._reports[order.client_id] = expired
            return expired
        k = execute_leg(book_px, book_q, book_n, quotes, v, int(order.side), order.qty_units, order.arrive_ns,
                        m.half_spread_bps, m.impact_bps_per_m, m.binance_tick_units, self._tmp_px, self._tmp_qty)
        fills = []
        for j in range(k):
            self._trade_seq += 1
            px, qty = int(self._tmp_px[j]), int(self._tmp_qty[j])
            fee = fee_for(units_to_dec(px), units_to_dec(qty), self.taker_fee)
            # a trade id that depends on the order only: a replay (or a restarted paper venue) gives the
            # same ids, so every fill keeps one identity in the ledger and the journal
            fills.append((f"{order.client_id}.{j + 1}", px, qty, fee))
        filled = sum(q for _, _, q, _ in fills)
        status = OrderStatus.FILLED if filled == order.qty_units else (
            OrderStatus.EXPIRED if filled else OrderStatus.REJECTED)  # a taker remainder expires (IOC)
        reason = "" if status is OrderStatus.FILLED else ("no liquidity" if not filled else "partial: depth ran out")
        if status is not OrderStatus.FILLED and depth_cut(quotes, v, int(order.side)):
            reason += " (of the book's known depth: levels past its capacity are unknown)"
        report = ExecutionReport(order.client_id, status, tuple(fills), int(quotes[v, Q_TS]), reason)
        self._reports[order.client_id] = report
        return report

    def report(self, client_id: str) -> ExecutionReport | None:
        """The venue's record of an order it has filled, by client order id (None: it never got it) -- what a
        restarted route asks about an order whose outcome it did not see, instead of sending it again."""
        return self._reports.get(client_id)

    def _market(self, symbol: str) -> _SymbolMarket:
        try:
            return self._markets[symbol]
        except KeyError:
            raise ValueError(f"{self.venue.label} does not list {symbol}") from None

    def _outcome(self, m: _SymbolMarket, order: VenueOrder) -> int:
        """Advance the market through this venue's events until ``book.leg_outcome`` decides the order, the
        rule the replay kernel checks before each event: fill on the first quote stamped in [arrival,
        deadline], expire at an event past the deadline (or once all events to it are known without one)."""
        if m.watermark <= order.arrive_ns:
            return LEG_WAIT  # the market at arrival is not final yet
        batch = EventBatch.concat_sorted(m.pending) if len(m.pending) > 1 else (m.pending[0] if m.pending else None)
        quotes = m.books[3]
        v = int(self.venue)
        n = len(batch) if batch is not None else 0
        i = 0
        outcome = LEG_WAIT
        while True:
            if batch is not None and i < n and batch.ts[i] <= order.arrive_ns:  # the market up to arrival
                self._apply(batch, i, m)
                i += 1
                continue
            outcome = leg_outcome(float(quotes[v, Q_TS]), order.arrive_ns, order.expire_ns, -1, False)
            if outcome != LEG_WAIT:
                break
            if batch is None or i >= n:  # no event known yet: decided only once the deadline has passed
                if m.watermark > order.expire_ns:
                    outcome = LEG_EXPIRE
                break
            outcome = leg_outcome(float(quotes[v, Q_TS]), order.arrive_ns, order.expire_ns, int(batch.ts[i]), False)
            if outcome != LEG_WAIT:
                break
            self._apply(batch, i, m)
            i += 1
        if batch is not None:
            rest = EventBatch(*(getattr(batch, c)[i:] for c in _COLUMNS))
            m.pending = [rest] if len(rest) else []
        return outcome

    def _apply(self, batch: EventBatch, i: int, m: _SymbolMarket) -> None:
        """Apply event ``i`` of ``batch`` if it is this venue's (the market the routes see, as they see it)."""
        v = int(self.venue)
        if batch.venue[i] == v:
            book_px, book_q, book_n, quotes = m.books
            apply_market_event(int(batch.kind[i]), v, int(batch.side[i]), float(batch.px[i]), float(batch.qty[i]),
                               int(batch.ts[i]), int(batch.ts_venue[i]), book_px, book_q, book_n, quotes,
                               m.half_spread_bps)
        m.applied_until = int(batch.ts[i])


_COLUMNS = ("ts", "ts_venue", "venue", "kind", "side", "px", "qty")
