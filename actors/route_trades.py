"""The two-leg trades of one route, followed through core.trade_fsm as the route's orders move.

The compiled kernel decides (open, close, the hedge policy's unwinds); this book mirrors each decision as a
``Trade``: an open plans and sends the entry pair, an unwind is a hedge order, a close sends the exit pair,
and every order event the venue reports is fed to its trade. The trade FSM then says, from its own table,
whether the trade is unhedged, hedged open, closed or failed, and measures time and notional unhedged. A
transition the table refuses is counted (``errors``) and never stops trading. Trades in flight across a
restart are not rebuilt (their orders come back UNKNOWN and are settled by the venue's record); trades the
route starts after it are followed again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal

from ..core.domain import Side
from ..core.order_fsm import InvalidTransition, Order, OrderEvent
from ..core.trade_fsm import Trade

TRADES_KEPT = 2048  # finished trades kept in the book; older ones are folded into the totals (long runs)


class TradeBook:
    def __init__(self, run_id: str, route: str, tolerance: Decimal,
                 on_step: Callable[[Trade, int], None] | None = None) -> None:
        self.run_id, self.route, self.tolerance = run_id, route, tolerance
        self.trades: dict[int, Trade] = {}
        self._trip_of: dict[str, int] = {}
        self.errors: list[str] = []
        self.untracked_events = 0
        self._on_step = on_step  # (trade, step number) for each new step: the journal
        self.unhedged: set[int] = set()  # trips with one leg's exposure open now (cheap to ask on every event)
        self._paged: set[int] = set()
        # finished trades folded out of ``trades`` (bounded): their statuses and figures, for ``stats``
        self.retired: dict[str, int] = {}
        self.retired_unhedged_ns = 0
        self.retired_max_notional = Decimal(0)
        self.retired_paged = 0

    def trade_id(self, trip: int) -> str:
        return f"{self.run_id}-{self.route}-{trip}"

    def on_sent(self, trip: int, action: str, orders: list[Order], ref_price: Decimal, ts_local: int) -> None:
        """New legs of one action (``o`` open, ``c`` close, ``u`` unwind), as fresh INITIALIZED orders."""
        try:
            if action == "o":
                buy = next(o for o in orders if o.side is Side.BUY)
                sell = next(o for o in orders if o.side is Side.SELL)
                trade = Trade.plan(self.trade_id(trip), buy, sell, ref_price, self.tolerance).send(ts_local)
            else:
                trade = self.trades[trip]
                if action == "c":
                    first, second = orders
                    trade = trade.close(first, second, ts_local)
                else:
                    for o in orders:
                        trade = trade.hedge(o, ts_local)
        except (InvalidTransition, ValueError, KeyError, StopIteration) as exc:
            self.errors.append(f"trip {trip} {action}: {type(exc).__name__}: {exc}")
            return
        for o in orders:
            self._trip_of[o.client_id] = trip
        self._store(trip, trade)

    def on_event(self, client_id: str, event: OrderEvent) -> None:
        trip = self._trip_of.get(client_id)
        if trip is None or trip not in self.trades:
            self.untracked_events += 1
            return
        try:
            trade = self.trades[trip].apply_order_event(client_id, event)
        except (InvalidTransition, ValueError, KeyError) as exc:
            self.errors.append(f"trip {trip} {client_id}: {type(exc).__name__}: {exc}")
            return
        self._store(trip, trade)

    def _store(self, trip: int, trade: Trade) -> None:
        before = len(self.trades[trip].history) if trip in self.trades else 0
        self.trades[trip] = trade
        if trade.status.is_terminal and len(self.trades) > TRADES_KEPT:
            self._retire()
        if trade.unhedged_since_ns >= 0:
            self.unhedged.add(trip)
        else:
            self.unhedged.discard(trip)
        if self._on_step is not None:
            for seq in range(before + 1, len(trade.history) + 1):
                self._on_step(trade, seq)

    def _retire(self) -> None:
        """Fold the oldest finished trades past TRADES_KEPT into the totals: a finished trade gets no more
        order events that matter (a late one is counted as untracked)."""
        done = [t for t, tr in self.trades.items() if tr.status.is_terminal and t not in self.unhedged]
        for trip in done[:len(self.trades) - TRADES_KEPT]:
            tr = self.trades.pop(trip)
            self.retired[tr.status.name] = self.retired.get(tr.status.name, 0) + 1
            self.retired_unhedged_ns += tr.unhedged_ns_total
            self.retired_max_notional = max(self.retired_max_notional, tr.max_unhedged_notional)
            if trip in self._paged:
                self._paged.discard(trip)
                self.retired_paged += 1
            for cid in [c for c, t in self._trip_of.items() if t == trip]:
                del self._trip_of[cid]

    def overdue(self, now_ns: int, limit_ns: int) -> list[Trade]:
        """Trades unhedged longer than ``limit_ns`` (the policy, risk.max_unhedged_s), each returned once: the
        route pages ``one_leg_unhedged`` (P0) for them while they are still open."""
        late = sorted(t for t in self.unhedged
                      if t not in self._paged and self.trades[t].unhedged_ns(now_ns) > limit_ns)
        self._paged.update(late)
        return [self.trades[t] for t in late]

    async def watch_unhedged(self, limit_ns: int, page: Callable[[Trade, int], None], clock: Callable[[], int],
                             period_s: float) -> None:
        """Page each trade one-legged past ``limit_ns`` on a timer while any is one-legged: the route also checks
        when it settles legs, but a route whose venue stopped answering settles nothing. Returns when no trade
        is one-legged (the route starts it again with its next legs)."""
        while self.unhedged:
            await asyncio.sleep(period_s)
            now = clock()
            for trade in self.overdue(now, limit_ns):
                page(trade, now)

    def stats(self) -> dict[str, object]:
        statuses: dict[str, int] = dict(self.retired)
        for t in self.trades.values():
            statuses[t.status.name] = statuses.get(t.status.name, 0) + 1
        return {"trades": len(self.trades) + sum(self.retired.values()), "status": statuses,
                "errors": len(self.errors), "first_errors": self.errors[:3], "untracked_events": self.untracked_events,
                "unhedged_paged": len(self._paged) + self.retired_paged,
                "unhedged_ns_total": self.retired_unhedged_ns + sum(t.unhedged_ns_total for t in self.trades.values()),
                "max_unhedged_notional_krw": format(max([self.retired_max_notional, *(
                    t.max_unhedged_notional for t in self.trades.values())]), "f")}
