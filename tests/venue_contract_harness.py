"""The venue contract's harness: the fake venues in a thread of their own, a client per variant, order helpers.

Variants: paper-binance, paper-upbit (infra.venues.paper_client over the fakes' matching engine), and the
Binance / Upbit aiohttp clients talking to the fake venues, which run in-process on free ports for the whole
module that uses the ``venues`` fixture. Every test starts from the recorded BTC book (2025-08-24).
"""


from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

import pytest

from arbitrage_lite.core.domain import Side
from arbitrage_lite.core.venue import (
    Balance,
    CancelOrder,
    OrderEvent,
    OrderState,
    OrderType,
    PlaceOrder,
    QueryOrder,
    VenueClient,
)
from arbitrage_lite.infra.venues.binance.client import BinanceClient
from arbitrage_lite.infra.venues.fake.binance import EXCHANGE_INFO
from arbitrage_lite.infra.venues.fake.books import books_from_snapshot_file
from arbitrage_lite.infra.venues.fake.engine import Book
from arbitrage_lite.infra.venues.fake.faults import Faults
from arbitrage_lite.infra.venues.fake.server import DEFAULT_BALANCES, STATIC_BOOKS, FakeVenues
from arbitrage_lite.infra.venues.paper_client import PaperClient, PaperExchange, load_binance_rules
from arbitrage_lite.infra.venues.upbit.client import UpbitClient

NEEDS_DATA = pytest.mark.skipif(
    not EXCHANGE_INFO.is_file() or not all(p.is_file() for v in STATIC_BOOKS.values() for p in v.values()),
    reason="the shared data set (exchangeInfo fixture, orderbook_snapshots) is not here")

T = TypeVar("T")
D = Decimal
VARIANTS = ["paper-binance", "paper-upbit", "binance-client", "upbit-client"]
ADAPTERS = ["binance-client", "upbit-client"]


@dataclass(frozen=True)
class Market:
    """What a scenario needs of one venue's BTC market (the recorded book's prices)."""

    venue: str
    symbol: str
    base: str
    quote: str
    best_bid: Decimal
    best_ask: Decimal
    rest_price: Decimal  # a buy here rests (far below the best ask), on the tick grid
    qty: Decimal  # a valid limit quantity at rest_price
    off_tick: Decimal  # rest_price plus less than one tick
    off_step: Decimal  # a valid limit quantity plus less than one lot step
    tiny_qty: Decimal  # on the step grid, but rest_price x tiny_qty is below the venue's minimum
    market_buy: tuple[Decimal | None, Decimal | None]  # (qty, quote_amount) of a market buy


MARKETS = {
    "binance": Market("binance", "BTCUSDT", "BTC", "USDT", D("115279.25"), D("115279.26"), D(100000), D("0.001"),
                      D("100000.001"), D("0.001001"), D("0.00004"), (D("0.01"), None)),
    "upbit": Market("upbit", "KRW-BTC", "BTC", "KRW", D(159508000), D(159523000), D(150000000), D("0.001"),
                    D(150000100), D("0.001000001"), D("0.00003"), (None, D(1000000))),
}


def first_book(venue: str) -> Book:
    (path,) = STATIC_BOOKS[venue].values()
    return books_from_snapshot_file(path)[0]


class FakeThread:
    """Both fake venues on their own event loop in a daemon thread, so each test can ``asyncio.run`` its client."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        # two clients (ours and ccxt) share one account: limits high enough that rate limiting, tested on its
        # own elsewhere, never decides a contract outcome
        self.fv = FakeVenues(speed=0, binance_faults=Faults(), upbit_faults=Faults(), upbit_order_per_s=1000,
                             upbit_default_per_s=1000)
        self.info = self.call(self.fv.start())

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=20)

    def set_book(self, venue: str, book: Book) -> None:
        async def put() -> None:
            fake = self.fv.binance if venue == "binance" else self.fv.upbit
            assert fake is not None
            fake.engine.set_book(MARKETS[venue].symbol, book, book.ts_ms)
        self.call(put())

    def stop(self) -> None:
        self.call(self.fv.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


@dataclass
class Venues:
    fakes: FakeThread
    paper: dict[str, PaperExchange]
    secrets: dict[str, str]

    def set_book(self, variant: str, book: Book) -> None:
        venue = MARKETS[venue_of(variant)]
        if variant.startswith("paper-"):
            self.paper[venue.venue].set_book(venue.symbol, book.bids, book.asks, book.ts_ms * 1_000_000)
        else:
            self.fakes.set_book(venue.venue, book)

    def faults(self, variant: str) -> Faults:
        venue = venue_of(variant)
        if variant.startswith("paper-"):
            return self.paper[venue].faults
        return self.fakes.fv.binance_faults if venue == "binance" else self.fakes.fv.upbit_faults


def venue_of(variant: str) -> str:
    return "binance" if "binance" in variant else "upbit"


@pytest.fixture(scope="module")
def venues() -> Iterator[Venues]:
    fakes = FakeThread()
    info = load_binance_rules(EXCHANGE_INFO)
    paper = {"binance": PaperExchange.binance(info, ["BTCUSDT"], DEFAULT_BALANCES["binance"], "paper-b-secret"),
             "upbit": PaperExchange.upbit(["KRW-BTC"], DEFAULT_BALANCES["upbit"], "paper-u-secret")}
    try:
        yield Venues(fakes, paper, {"binance": "paper-b-secret", "upbit": "paper-u-secret"})
    finally:
        fakes.stop()


@asynccontextmanager
async def client_for(venues: Venues, variant: str, bad_secret: bool = False) -> AsyncIterator[VenueClient]:
    """A fresh client of ``variant`` (its own session, its own Upbit identifier ledger)."""
    venue = venue_of(variant)
    if variant.startswith("paper-"):
        yield PaperClient(venues.paper[venue], "wrong" if bad_secret else venues.secrets[venue], latency_ns=1_000_000)
        return
    info = venues.fakes.info[venue]
    if venue == "binance":
        b = BinanceClient(info["rest"], info["api_key"], "0" * 64 if bad_secret else info["secret"])
        try:
            await b.sync_time()
            await b.load_rules()
            yield b
        finally:
            await b.close()
    else:
        u = UpbitClient(info["rest"] + "/v1", info["access_key"], "0" * 40 if bad_secret else info["secret"])
        try:
            yield u
        finally:
            await u.close()


def run(venues: Venues, variant: str, body: Callable[[VenueClient, Market], Awaitable[None]]) -> None:
    """From the recorded book, run ``body`` with a fresh client; afterwards cancel whatever it left open."""
    venues.set_book(variant, first_book(venue_of(variant)))

    async def main() -> None:
        async with client_for(venues, variant) as c:
            try:
                await body(c, MARKETS[venue_of(variant)])
            finally:
                for o in await c.open_orders():
                    await c.cancel(CancelOrder(o.client_id, o.symbol))
    asyncio.run(main())


def count_requests(c: VenueClient) -> list[int]:
    """A spy on an adapter's one send method (counts the HTTP requests it makes from now on); paper sends none."""
    sent = [0]
    name = "_send" if isinstance(c, BinanceClient) else "call" if isinstance(c, UpbitClient) else ""
    if name:
        inner = getattr(c, name)

        async def counted(*args: Any, **kw: Any) -> Any:
            sent[0] += 1
            return await inner(*args, **kw)
        setattr(c, name, counted)
    return sent


def cid() -> str:
    return "ct" + uuid.uuid4().hex[:24]


def limit(m: Market, client_id: str, *, price: Decimal | None = None, qty: Decimal | None = None,
          kind: OrderType = OrderType.LIMIT, side: Side = Side.BUY) -> PlaceOrder:
    return PlaceOrder(client_id, m.symbol, side, kind, qty or m.qty, price or m.rest_price)


def market_buy(m: Market, client_id: str) -> PlaceOrder:
    qty, quote = m.market_buy
    return PlaceOrder(client_id, m.symbol, Side.BUY, OrderType.MARKET, qty, quote_amount=quote)


async def settled(c: VenueClient, client_id: str, symbol: str, want: OrderState, tries: int = 50) -> OrderEvent:
    """Query until the order reads ``want`` (a venue may acknowledge a cancel before it applies it)."""
    ev = await c.query(QueryOrder(client_id, symbol))
    for _ in range(tries):
        if ev.state is want:
            break
        await asyncio.sleep(0)
        ev = await c.query(QueryOrder(client_id, symbol))
    return ev


def by_asset(rows: Sequence[Balance]) -> dict[str, tuple[Decimal, Decimal]]:
    return {b.asset: (b.free, b.locked) for b in rows}


async def fills_of(c: VenueClient, ev: OrderEvent) -> OrderEvent:
    """The event carrying the order's fills: the place answer (Binance FULL) or else the query (Upbit)."""
    return ev if ev.fills else await c.query(QueryOrder(ev.client_id, ev.symbol))


def expected_after(before: dict[str, tuple[Decimal, Decimal]], m: Market, side: Side,
                   ev: OrderEvent) -> dict[str, Decimal]:
    """Free balances implied by the fills: base and quote move by qty and price x qty, each fee off its asset."""
    free = {a: f for a, (f, _) in before.items()}
    sign = 1 if side == Side.BUY else -1
    for f in ev.fills:
        free[m.base] = free.get(m.base, D(0)) + sign * f.qty
        free[m.quote] = free.get(m.quote, D(0)) - sign * f.price * f.qty
        free[f.fee_asset] = free.get(f.fee_asset, D(0)) - f.fee
    return free


# ---- the contract ---------------------------------------------------------------------------------------
