"""The paper venue as a core.venue.VenueClient: the fake venues' matching engine behind each venue's own rules.

One matching implementation: :class:`~.fake.engine.Engine` (exact Decimal books, balances, maker/taker fees,
resting orders filled by later books) is what the fake Binance and Upbit servers use, and what paper uses here,
without HTTP. On top of it, :class:`PaperExchange` applies the venue's order rules as the venue itself does:
Binance PRICE_FILTER / LOT_SIZE / MARKET_LOT_SIZE / PERCENT_PRICE_BY_SIDE (around fake.avg_price, as the fake) /
NOTIONAL from a recorded exchangeInfo (parsed by
``binance.rules``), Upbit's tick (``upbit.rules.MarketRules``: the KRW table of the order's date) and its order
totals. An order off the grid is refused, never moved: like the adapters, paper never rounds what the engine
sent. Client ids follow the venue: Binance refuses an id that is open, Upbit one it has ever seen (even on a
refused order). A wrong secret is refused (AUTH), and the fake's fault counters apply (``error_after_accept``:
the order exists, the caller gets UNKNOWN until it queries).

Time is passed in: ``clock`` (ns) stamps commands; an order reaches the venue ``latency_ns`` later and its
answer comes back ``latency_ns`` after that (``ts_venue`` / ``ts_local`` of the events).
"""

from __future__ import annotations

import gzip
import hmac
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Literal

from ...core.domain import Side
from ...core.venue import (
    Balance,
    CancelOrder,
    Fill,
    OrderEvent,
    OrderState,
    OrderType,
    PlaceOrder,
    QueryOrder,
    RejectReason,
)
from .binance.rules import ExchangeInfo, SymbolRules, parse_exchange_info
from .fake.avg_price import average_price
from .fake.engine import Book, Engine, EngineReject, MarketSpec, Order
from .fake.faults import Faults
from .upbit.rules import QTY_STEP, MarketRules

MS = 1_000_000
_STATE = {"new": OrderState.ACCEPTED, "partial": OrderState.PARTIALLY_FILLED, "filled": OrderState.FILLED,
          "cancelled": OrderState.CANCELLED, "expired": OrderState.EXPIRED}


class _Refused(Exception):
    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def load_binance_rules(path: Path) -> ExchangeInfo:
    """A recorded exchangeInfo (``.json`` or ``.json.gz``) through the adapter's own parser."""
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    info = parse_exchange_info(raw, 0)
    if not isinstance(info, ExchangeInfo):
        raise ValueError(f"unreadable exchangeInfo {path}: {info.reason} {info.detail}")
    return info


@dataclass
class PaperExchange:
    """The venue side of paper trading: one account on one venue (engine + the venue's rules + faults)."""

    venue: Literal["binance", "upbit"]
    engine: Engine
    secret: str
    binance_rules: dict[str, SymbolRules] = field(default_factory=dict)
    faults: Faults = field(default_factory=Faults)
    seen_ids: set[str] = field(default_factory=set)  # Upbit: every identifier ever sent

    @classmethod
    def binance(cls, info: ExchangeInfo, symbols: Iterable[str], balances: dict[str, Decimal], secret: str,
                fee: Decimal = Decimal("0.001")) -> PaperExchange:
        rules = {s: info.symbols[s] for s in symbols}
        specs = {s: MarketSpec(s, r.base, r.quote, r.step.normalize(), fee, fee, "received") for s, r in rules.items()}
        return cls("binance", Engine(specs, dict(balances)), secret, rules)

    @classmethod
    def upbit(cls, markets: Iterable[str], balances: dict[str, Decimal], secret: str,
              fee: Decimal = Decimal("0.0005")) -> PaperExchange:
        specs = {m: MarketSpec(m, m.split("-")[1], m.split("-")[0], QTY_STEP, fee, fee, "quote")
                 for m in markets}
        return cls("upbit", Engine(specs, dict(balances)), secret)

    def set_book(self, symbol: str, bids: Sequence[tuple[Decimal, Decimal]], asks: Sequence[tuple[Decimal, Decimal]],
                 now_ns: int) -> list[str]:
        """A new book (best first); resting orders it crosses fill as makers. Returns their client ids."""
        traded = self.engine.set_book(symbol, Book(tuple(bids), tuple(asks), now_ns // MS), now_ns // MS)
        return [o.client_id for o in traded]

    # -- the venue's checks ---------------------------------------------------------------------------
    def check_id(self, cmd: PlaceOrder) -> None:
        if self.venue == "upbit":
            if cmd.client_id in self.seen_ids:
                raise _Refused(RejectReason.DUPLICATE_ID, "validation_error: identifier is already used")
            self.seen_ids.add(cmd.client_id)  # burnt even if the order is refused below
        elif any(o.client_id == cmd.client_id for o in self.engine.open_orders()):
            raise _Refused(RejectReason.DUPLICATE_ID, "-2010 Duplicate order sent.")

    def check_rules(self, cmd: PlaceOrder, when_ns: int) -> None:
        if cmd.symbol not in self.engine.markets:
            raise _Refused(RejectReason.INVALID, f"unknown symbol {cmd.symbol}")
        if self.venue == "binance":
            self._binance_rules(cmd, when_ns)
        else:
            self._upbit_rules(cmd, when_ns)

    def _binance_rules(self, cmd: PlaceOrder, when_ns: int) -> None:
        r = self.binance_rules[cmd.symbol]
        if r.status != "TRADING":
            raise _Refused(RejectReason.MARKET_CLOSED, f"-2010 symbol status {r.status}")
        if cmd.type is OrderType.MARKET:
            if cmd.quote_amount is not None:
                enough = not r.min_notional_market or cmd.quote_amount >= r.min_notional
                bad = None if cmd.quote_amount > 0 and enough else "NOTIONAL"
            elif cmd.qty is not None:
                bids, asks = self.engine.depth(cmd.symbol)
                ref = (bids[0][0] + asks[0][0]) / 2 if bids and asks else None
                bad = r.check(ref, cmd.qty, market=True)
            else:
                bad = "quantity"
        else:
            bad = "price/quantity" if cmd.price is None or cmd.qty is None else r.check(
                cmd.price, cmd.qty, side=cmd.side,
                avg_price=average_price(self.engine, cmd.symbol, when_ns // MS, r.percent[0].avg_mins)
                if r.percent else None)
        if bad:
            raise _Refused(RejectReason.INVALID, f"-1013 Filter failure: {bad}")

    def _upbit_rules(self, cmd: PlaceOrder, when_ns: int) -> None:
        rules = MarketRules(cmd.symbol)
        if cmd.qty is not None and (why := rules.qty_problem(cmd.qty)):
            raise _Refused(RejectReason.INVALID, f"invalid_volume: {why}")
        side = "bid" if cmd.side == Side.BUY else "ask"
        if cmd.type is OrderType.MARKET:
            if cmd.side == Side.BUY:  # ord_type price: KRW to spend
                if cmd.quote_amount is None or cmd.qty is not None:
                    raise _Refused(RejectReason.INVALID, f"create_{side}_error: a market buy takes quote_amount")
                total = cmd.quote_amount
            else:  # ord_type market: volume
                if cmd.qty is None or cmd.quote_amount is not None:
                    raise _Refused(RejectReason.INVALID, f"create_{side}_error: a market sell takes qty")
                bids, _ = self.engine.depth(cmd.symbol)
                total = cmd.qty * (bids[0][0] if bids else Decimal(0))
        else:
            if cmd.price is None or cmd.qty is None or cmd.price <= 0:
                raise _Refused(RejectReason.INVALID, f"create_{side}_error: a limit needs price and volume")
            if why := rules.price_problem(cmd.price, when_ns):
                raise _Refused(RejectReason.INVALID, f"invalid_price_{side}: {why}")
            total = cmd.price * cmd.qty
        if why := rules.total_problem(total):
            least = rules.min_total
            name = "under_min_total" if least is not None and total < least else "over_max_total"
            raise _Refused(RejectReason.INVALID, f"{name}_{side}: {why}")

    def find(self, client_id: str, symbol: str) -> Order | None:
        """The latest order with this client id on ``symbol`` (Binance may reuse an id once it is closed)."""
        found = [o for o in self.engine.orders.values() if o.client_id == client_id and o.symbol == symbol]
        return found[-1] if found else None


class PaperClient:
    """core.venue.VenueClient over a :class:`PaperExchange`, with the given secret, clock and latency."""

    def __init__(self, exchange: PaperExchange, secret: str, *, clock: Callable[[], int] = time.time_ns,
                 latency_ns: int = 0) -> None:
        self.exchange = exchange
        self.venue = exchange.venue
        self._secret = secret
        self.clock = clock
        self.latency_ns = latency_ns

    def __repr__(self) -> str:
        return f"PaperClient({self.venue!r}, secret=<hidden>, latency_ns={self.latency_ns})"

    def _times(self, ts_local: int) -> tuple[int, int]:
        """(arrival at the venue, answer back) for a command made at ``ts_local`` (0: now)."""
        sent = ts_local or self.clock()
        return sent + self.latency_ns, sent + 2 * self.latency_ns

    def _refused(self, client_id: str, symbol: str, reason: RejectReason, detail: str, at: int,
                 back: int) -> OrderEvent:
        return OrderEvent(self.venue, client_id, None, symbol, OrderState.REJECTED, Decimal(0), reason=reason,
                          detail=detail, ts_venue=at, ts_local=back)

    def _authorised(self) -> bool:
        return hmac.compare_digest(self._secret.encode(), self.exchange.secret.encode())

    async def place(self, cmd: PlaceOrder) -> OrderEvent:
        at, back = self._times(cmd.ts_local)
        if not self._authorised():
            return self._refused(cmd.client_id, cmd.symbol, RejectReason.AUTH, "signature not valid", at, back)
        ex = self.exchange
        try:
            if ex.venue == "upbit":  # Upbit burns the identifier before it checks the order; Binance after
                ex.check_id(cmd)
            ex.check_rules(cmd, at)
            if ex.venue == "binance":
                ex.check_id(cmd)
            if ex.faults.take("reject_orders"):
                raise _Refused(RejectReason.MARKET_CLOSED, "market is closed")
            order = ex.engine.place(cmd.symbol, "buy" if cmd.side == Side.BUY else "sell",
                                    "market" if cmd.type is OrderType.MARKET else "limit", price=cmd.price,
                                    qty=cmd.qty, quote_qty=cmd.quote_amount,
                                    tif="IOC" if cmd.type is OrderType.IOC else "GTC", client_id=cmd.client_id,
                                    now_ms=at // MS)
        except _Refused as r:
            return self._refused(cmd.client_id, cmd.symbol, r.reason, r.detail, at, back)
        except EngineReject as e:
            return self._refused(cmd.client_id, cmd.symbol, RejectReason.INSUFFICIENT_FUNDS, e.reason, at, back)
        if ex.faults.take("error_after_accept") or ex.faults.take("drop_after_accept"):
            return OrderEvent(self.venue, cmd.client_id, None, cmd.symbol, OrderState.UNKNOWN, Decimal(0),
                              detail="paper fault: accepted, answer lost", ts_local=back)
        return self._event(order, back)

    async def cancel(self, cmd: CancelOrder) -> OrderEvent:
        at, back = self._times(cmd.ts_local)
        if not self._authorised():
            return self._refused(cmd.client_id, cmd.symbol, RejectReason.AUTH, "signature not valid", at, back)
        order = self.exchange.find(cmd.client_id, cmd.symbol)
        if order is None or not order.is_open:
            return self._refused(cmd.client_id, cmd.symbol, RejectReason.NOT_FOUND, "unknown order", at, back)
        self.exchange.engine.cancel(order.order_id, at // MS)
        return self._event(order, back)

    async def query(self, cmd: QueryOrder) -> OrderEvent:
        at, back = self._times(cmd.ts_local)
        if not self._authorised():
            return self._refused(cmd.client_id, cmd.symbol, RejectReason.AUTH, "signature not valid", at, back)
        order = self.exchange.find(cmd.client_id, cmd.symbol)
        if order is None:
            return self._refused(cmd.client_id, cmd.symbol, RejectReason.NOT_FOUND, "order does not exist", at, back)
        return self._event(order, back)

    async def open_orders(self, symbol: str | None = None) -> Sequence[OrderEvent]:
        _, back = self._times(0)
        if not self._authorised():
            raise PermissionError("paper venue: bad secret")
        return [self._event(o, back) for o in self.exchange.engine.open_orders(symbol)]

    async def balances(self) -> Sequence[Balance]:
        if not self._authorised():
            raise PermissionError("paper venue: bad secret")
        e = self.exchange.engine
        return [Balance(a, e.free[a], e.locked.get(a, Decimal(0))) for a in sorted(e.free)]

    def _event(self, o: Order, ts_local: int) -> OrderEvent:
        """The venue's record of an order, with every fill it has had (maker/taker fee in the fill)."""
        state = _STATE[o.status]
        if state is OrderState.CANCELLED and o.kind == "market" and o.filled > 0:
            state = OrderState.FILLED  # Upbit cancels a market buy's unspendable dust: it is filled
        fills = tuple(Fill(str(f.trade_id), f.price, f.qty, f.fee, f.fee_asset, f.ts_ms * MS) for f in o.fills)
        return OrderEvent(self.venue, o.client_id, o.uid if self.venue == "upbit" else str(o.order_id), o.symbol,
                          state, o.filled, fills, ts_venue=o.updated_ms * MS, ts_local=ts_local)
