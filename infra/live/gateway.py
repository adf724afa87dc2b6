"""The live order gateway: a route's leg (core.paper_venue.VenueOrder) -> a real order through a VenueClient.

It has the paper venue's shape (``submit`` -> ExecutionReport, ``lookup`` by client id), so the route's one
driver loop sends live legs exactly as it sends paper ones, in-process (no Ray hop on the hot path). What it adds
is what a real venue needs:

* the leg leaves as an IOC limit at a protective price (core.live_orders) off the venue's current best price;
* hard notional caps are checked before sending (refused locally: a REJECTED report, nothing sent);
* an answer that is not final (Upbit answers ``wait``; a timeout or 5xx is UNKNOWN) is followed by queries by
  client id until the venue says what happened: the route waits, it never guesses. A leg still unknown after
  ``unknown_alert_s`` raises an alert once and keeps asking;
* ``shadow``: nothing is sent; the leg is filled against the venue's current book (the backtest's rule) so the
  decisions go on, and the report says it was a shadow fill.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ...core.client_ids import parse_client_id
from ...core.domain import Side
from ...core.live_orders import CapBook, dec, protective_price_units, units
from ...core.order_fsm import OrderStatus
from ...core.paper_venue import ExecutionReport, VenueOrder
from ...core.rules import InstrumentRules
from ...core.venue import (
    BookSnapshot,
    OrderEvent,
    OrderState,
    OrderType,
    PlaceOrder,
    QueryOrder,
    RejectReason,
    VenueClient,
)

FINAL = {OrderState.FILLED: OrderStatus.FILLED, OrderState.CANCELLED: OrderStatus.EXPIRED,
         OrderState.EXPIRED: OrderStatus.EXPIRED, OrderState.REJECTED: OrderStatus.REJECTED}


@dataclass
class GatewayStats:
    sent: int = 0
    filled: int = 0
    expired: int = 0
    rejected: int = 0
    queries: int = 0
    unknown_alerts: int = 0
    shadow_fills: int = 0
    estimated_fills: int = 0
    reject_reasons: dict[str, int] = field(default_factory=dict)  # by the first 60 characters of the reason
    send_ms: list[float] = field(default_factory=list)  # place() call to its answer, per order (bounded)


class LiveGateway:
    """One venue's orders for every route of a host. ``books`` gives the venue's current book by venue symbol;
    ``symbol_of`` maps the engine's ``BASE-KRW`` / ``BASE-USDT`` to the venue's own id; ``to_krw`` converts a
    notional in the venue's quote currency to KRW (1 for Upbit, the live USDT/KRW for Binance)."""

    def __init__(self, client: VenueClient, rules: Callable[[str], InstrumentRules],
                 books: Callable[[str], BookSnapshot | None], symbol_of: Callable[[str], str],
                 to_krw: Callable[[], Decimal], caps: CapBook, slippage_bps: Decimal, *, shadow: bool = False,
                 poll_s: float = 0.02, unknown_alert_s: float = 10.0, alert: Callable[[str, str], None] | None = None,
                 clock: Callable[[], int] = time.time_ns) -> None:
        self.client, self.rules, self.books, self.symbol_of = client, rules, books, symbol_of
        self.to_krw, self.caps, self.slippage_bps, self.shadow = to_krw, caps, slippage_bps, shadow
        self.poll_s, self.unknown_alert_s, self.alert, self.clock = poll_s, unknown_alert_s, alert, clock
        self.stats = GatewayStats()
        self._reports: dict[str, ExecutionReport] = {}
        self._symbols: dict[str, str] = {}  # client id -> venue symbol, for lookups
        self._limits: dict[str, int] = {}  # client id -> its limit price (units)
        self.tracer: Any = None  # infra.live.trace.LiveTracer (benchmarks only)

    async def submit(self, order: VenueOrder) -> ExecutionReport:
        symbol = self.symbol_of(order.symbol)
        self._symbols[order.client_id] = symbol
        if self.tracer is not None:
            self.tracer.stamp(order.client_id, "submit_ns")
        report = await self._submit(order, symbol)
        if self.tracer is not None:
            self.tracer.stamp(order.client_id, "answered_ns")
        self._reports[order.client_id] = report
        self.stats.filled += report.status is OrderStatus.FILLED
        self.stats.expired += report.status is OrderStatus.EXPIRED
        if report.status is OrderStatus.REJECTED:
            self.stats.rejected += 1
            why = report.reason[:60]
            self.stats.reject_reasons[why] = self.stats.reject_reasons.get(why, 0) + 1
        return report

    def settled(self, client_id: str) -> ExecutionReport | None:
        """The final answer this gateway got for an order (reconciliation: a leg its route has not booked yet)."""
        return self._reports.get(client_id)

    async def lookup(self, client_id: str) -> ExecutionReport | None:
        """The venue's record of an order this process may have sent (a restarted route asks before resending)."""
        if client_id in self._reports:
            return self._reports[client_id]
        symbol = self._symbols.get(client_id)
        if symbol is None:
            return None
        ev = await self._settled(QueryOrder(client_id, symbol))
        return None if ev.reason is RejectReason.NOT_FOUND else self._report(ev, client_id)

    async def _submit(self, order: VenueOrder, symbol: str) -> ExecutionReport:
        book = self.books(symbol)
        best = None if book is None else (book.asks if order.side is Side.BUY else book.bids)
        if book is None or not best:
            return self._refused(order, "no book on the side the leg takes")
        now = self.clock()
        rules = self.rules(order.symbol)
        limit = protective_price_units(units(best[0].price), order.side, self.slippage_bps, rules, now)
        self._limits[order.client_id] = limit
        why = self.caps.check(dec(order.qty_units) * dec(limit) * self.to_krw(), now, _reducing(order.client_id))
        if why is not None:
            return self._refused(order, f"local: {why} (core.live_orders.OrderCaps)")
        if self.shadow:
            return self._shadow_fill(order, book, limit)
        cmd = PlaceOrder(order.client_id, symbol, order.side, OrderType.IOC, dec(order.qty_units), dec(limit),
                         ts_local=now)
        t0 = time.perf_counter()
        self.stats.sent += 1
        if self.tracer is not None:
            self.tracer.stamp(order.client_id, "place_ns")
        ev = await self.client.place(cmd)
        if len(self.stats.send_ms) < 100_000:
            self.stats.send_ms.append((time.perf_counter() - t0) * 1e3)
        if ev.state not in FINAL:
            ev = await self._settled(QueryOrder(order.client_id, symbol), first=ev)
        elif sum((f.qty for f in ev.fills), Decimal(0)) < ev.filled_qty:  # final without fill detail (Upbit's
            # POST answer): the order's record lists its trades
            self.stats.queries += 1
            queried = await self.client.query(QueryOrder(order.client_id, symbol))
            ev = queried if queried.state in FINAL and queried.fills else ev
        return self._report(ev, order.client_id)

    async def _settled(self, q: QueryOrder, first: OrderEvent | None = None) -> OrderEvent:
        """Ask until the venue gives a final state (an IOC is final within its matching; UNKNOWN waits for the
        venue to answer at all). Fills seen before the final answer are kept (a query may not list them)."""
        started = time.monotonic()
        alerted = False
        seen = first
        while True:
            await asyncio.sleep(self.poll_s)
            self.stats.queries += 1
            ev = await self.client.query(q)
            if ev.state in FINAL or ev.reason is RejectReason.NOT_FOUND:
                if not ev.fills and seen is not None and seen.fills:
                    return OrderEvent(ev.venue, ev.client_id, ev.venue_order_id, ev.symbol, ev.state, ev.filled_qty,
                                      seen.fills, ev.reason, ev.detail, ev.ts_venue, ev.ts_local)
                return ev
            seen = ev if ev.fills else seen
            if not alerted and time.monotonic() - started > self.unknown_alert_s:
                alerted = True
                self.stats.unknown_alerts += 1
                if self.alert is not None:
                    self.alert("order_unknown", f"{q.client_id} on {q.symbol}: no final answer for "
                                                f"{self.unknown_alert_s:g} s, still asking")

    def _report(self, ev: OrderEvent, client_id: str) -> ExecutionReport:
        status = FINAL.get(ev.state, OrderStatus.REJECTED)
        fills = tuple((f.trade_id, units(f.price), units(f.qty), f.fee) for f in ev.fills)
        got = sum(q for _, _, q, _ in fills)
        want = units(ev.filled_qty)
        if want > got:  # the venue's executed quantity is the truth; a query without fill detail (Binance GET
            # /order lists none): priced at the fills' average if any, else at the order's limit (a bound, not a
            # measurement: counted, and the trade id says so, for reconciliation to replace with the venue's trades)
            avg = _average_price(ev)
            if avg is None:
                avg = self._limits.get(client_id, 0)
                self.stats.estimated_fills += 1
            fills += ((f"{client_id}:est", avg, want - got, Decimal(0)),)
        return ExecutionReport(client_id, status, fills, ev.ts_venue or ev.ts_local,
                               ev.detail if status is OrderStatus.REJECTED else "")

    def _refused(self, order: VenueOrder, why: str) -> ExecutionReport:
        return ExecutionReport(order.client_id, OrderStatus.REJECTED, (), self.clock(), why)

    def _shadow_fill(self, order: VenueOrder, book: BookSnapshot, limit: int) -> ExecutionReport:
        """Walk the current book up to the protective limit: what the IOC would have taken (no order sent)."""
        levels = book.asks if order.side is Side.BUY else book.bids
        left, fills = order.qty_units, []
        for n, lv in enumerate(levels, 1):
            px = units(lv.price)
            if left <= 0 or (px > limit if order.side is Side.BUY else px < limit):
                break
            take = min(left, units(lv.qty))
            fills.append((f"shadow-{order.client_id}-{n}", px, take, Decimal(0)))
            left -= take
        self.stats.shadow_fills += 1
        status = OrderStatus.FILLED if left == 0 else OrderStatus.EXPIRED
        return ExecutionReport(order.client_id, status, tuple(fills), book.ts_venue, "shadow")


def _reducing(client_id: str) -> bool:
    """A close (``c``) or unwind (``u``) leg of the engine's own (core.client_ids: the leg tag's action)."""
    parsed = parse_client_id(client_id)
    return parsed is not None and parsed.leg[:1] in ("c", "u")


def _average_price(ev: OrderEvent) -> int | None:
    paid = sum((f.price * f.qty for f in ev.fills), Decimal(0))
    qty = sum((f.qty for f in ev.fills), Decimal(0))
    return units((paid / qty).quantize(Decimal("1e-8"))) if qty > 0 else None
