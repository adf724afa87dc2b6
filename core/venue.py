"""The venue interface: what backtest, paper and live exchange with a venue, in one set of types.

Market data comes in (book snapshots and deltas with sequence ids, trades, best bid/ask, market status),
commands go out (place, cancel, query by client order id, open orders, balances), and order events come back
(accepted, partially filled, filled, cancelled, rejected with a reason class, and ``UNKNOWN`` -- a timeout, a
5xx or a dropped connection -- until a query resolves it). Every message carries the venue's timestamp and
the local receive time, both int ns UTC. Prices and quantities are ``Decimal`` (the venues send decimal
strings); adapters convert once, at the edge, and never through binary floats.

Adapters (``infra/venues/<venue>/``) are sans-IO: pure functions turn payloads into these types and commands
into requests; a thin I/O shell moves the bytes. The paper venue implements :class:`VenueClient` too, so one
contract suite runs against all of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import IntFlag, StrEnum
from typing import Protocol

from .domain import Side


# ---- market data in
@dataclass(frozen=True, slots=True)
class BookLevel:
    price: Decimal
    qty: Decimal  # 0 in a delta: remove the level


@dataclass(frozen=True, slots=True)
class BookSnapshot:
    venue: str
    symbol: str  # the venue's own symbol (KRW-BTC, BTCUSDT)
    bids: tuple[BookLevel, ...]  # best first
    asks: tuple[BookLevel, ...]  # best first
    seq: int | None  # Binance lastUpdateId; None where the venue has none (Upbit)
    ts_venue: int
    ts_local: int


@dataclass(frozen=True, slots=True)
class BookDelta:
    venue: str
    symbol: str
    bids: tuple[BookLevel, ...]
    asks: tuple[BookLevel, ...]
    first_seq: int  # Binance U
    last_seq: int  # Binance u
    ts_venue: int
    ts_local: int


@dataclass(frozen=True, slots=True)
class Trade:
    venue: str
    symbol: str
    price: Decimal
    qty: Decimal
    aggressor: Side  # the taker's side
    trade_id: str
    ts_venue: int
    ts_local: int


@dataclass(frozen=True, slots=True)
class BestBidAsk:
    venue: str
    symbol: str
    bid: Decimal
    bid_qty: Decimal
    ask: Decimal
    ask_qty: Decimal
    seq: int | None
    ts_venue: int
    ts_local: int


class MarketState(IntFlag):
    """What a venue says about a market; flags combine (a warning market may still trade)."""

    TRADING = 0
    HALTED = 1
    WARNING = 2  # Upbit market_event.warning (investment warning)
    CAUTION = 4  # Upbit market_event.caution flags
    DEPOSIT_SUSPENDED = 8
    WITHDRAW_SUSPENDED = 16
    DELISTING = 32


@dataclass(frozen=True, slots=True)
class MarketStatus:
    venue: str
    symbol: str
    state: MarketState
    detail: str
    ts_venue: int
    ts_local: int


MarketData = BookSnapshot | BookDelta | Trade | BestBidAsk | MarketStatus


# ---- commands out
class OrderType(StrEnum):
    LIMIT = "limit"  # rests until filled or cancelled
    IOC = "ioc"  # limit, immediate or cancel
    MARKET = "market"  # per the venue's own semantics (Upbit: a buy is by KRW amount, a sell by volume)


@dataclass(frozen=True, slots=True)
class PlaceOrder:
    client_id: str  # made before sending, never reused (core.client_ids)
    symbol: str
    side: Side
    type: OrderType
    qty: Decimal | None  # base quantity (None for an Upbit market buy)
    price: Decimal | None = None  # limit price (None for market)
    quote_amount: Decimal | None = None  # Upbit market buy: KRW to spend; Binance quoteOrderQty
    ts_local: int = 0  # when the command was made


@dataclass(frozen=True, slots=True)
class CancelOrder:
    client_id: str
    symbol: str
    ts_local: int = 0


@dataclass(frozen=True, slots=True)
class QueryOrder:
    client_id: str
    symbol: str
    ts_local: int = 0


# ---- events back
class OrderState(StrEnum):
    ACCEPTED = "accepted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"  # possibly after partial fills: see filled_qty
    REJECTED = "rejected"
    EXPIRED = "expired"  # IOC remainder, venue expiry
    UNKNOWN = "unknown"  # timeout / 5xx / dropped connection: only a query (or a later event) settles it


class RejectReason(StrEnum):
    """Why a venue refused a command, by what the caller should do about it."""

    NONE = ""
    INVALID = "invalid"  # malformed, below minimum, off tick/lot: do not retry as is
    INSUFFICIENT_FUNDS = "insufficient_funds"
    RATE_LIMITED = "rate_limited"  # back off (429), banned (418)
    AUTH = "auth"  # bad key/signature/permissions/clock skew
    DUPLICATE_ID = "duplicate_id"
    MARKET_CLOSED = "market_closed"  # halted, delisting, not trading
    NOT_FOUND = "not_found"  # cancel/query of an order the venue does not know
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class Fill:
    trade_id: str
    price: Decimal
    qty: Decimal
    fee: Decimal
    fee_asset: str
    ts_venue: int


@dataclass(frozen=True, slots=True)
class OrderEvent:
    venue: str
    client_id: str
    venue_order_id: str | None
    symbol: str
    state: OrderState
    filled_qty: Decimal  # cumulative, from the venue's executed quantity (never inferred from the state)
    fills: tuple[Fill, ...] = ()  # new fills carried by this event
    reason: RejectReason = RejectReason.NONE
    detail: str = ""  # the venue's own code and message
    ts_venue: int = 0
    ts_local: int = 0


@dataclass(frozen=True, slots=True)
class Balance:
    asset: str
    free: Decimal
    locked: Decimal


@dataclass(frozen=True, slots=True)
class Rejected:
    """A payload an adapter could not accept: counted by reason, never raised into the engine."""

    venue: str
    reason: str  # bad_json | bad_field | nan | crossed_book | stale | out_of_order | sequence_gap | unknown_type
    detail: str
    ts_local: int


@dataclass
class RejectCounts:
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, r: Rejected) -> None:
        self.counts[r.reason] = self.counts.get(r.reason, 0) + 1


class VenueClient(Protocol):
    """What every venue -- paper, an adapter over a real or fake venue -- offers the engine."""

    venue: str

    async def place(self, cmd: PlaceOrder) -> OrderEvent:
        """ACCEPTED/FILLED/... or REJECTED; UNKNOWN when the outcome is not known (timeout, 5xx)."""
        ...

    async def cancel(self, cmd: CancelOrder) -> OrderEvent: ...

    async def query(self, cmd: QueryOrder) -> OrderEvent:
        """The venue's record of an order by client id; REJECTED with NOT_FOUND if it never got it."""
        ...

    async def open_orders(self, symbol: str | None = None) -> Sequence[OrderEvent]: ...

    async def balances(self) -> Sequence[Balance]: ...
