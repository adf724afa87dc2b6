"""One contract for every VenueClient (issue 12 §1, §3): paper on each venue, and each adapter against its fake.

The harness (tests/venue_contract_harness.py) runs the fakes for the module; every test leaves no order open.
"""

from __future__ import annotations

import asyncio

import pytest
from order_stream_reader import Reader, closed
from venue_contract_harness import (
    ADAPTERS,
    MARKETS,
    NEEDS_DATA,
    VARIANTS,
    D,
    Market,
    Venues,
    by_asset,
    cid,
    client_for,
    count_requests,
    expected_after,
    fills_of,
    first_book,
    limit,
    market_buy,
    run,
    settled,
    venue_of,
    venues,
)

from arbitrage_lite.core.domain import Side
from arbitrage_lite.core.venue import (
    CancelOrder,
    OrderState,
    OrderType,
    PlaceOrder,
    QueryOrder,
    RejectReason,
    VenueClient,
)
from arbitrage_lite.infra.venues.binance.client import BinanceClient
from arbitrage_lite.infra.venues.fake.engine import Book
from arbitrage_lite.infra.venues.paper_client import PaperClient
from arbitrage_lite.infra.venues.upbit.client import UpbitClient

pytestmark = NEEDS_DATA
__all__ = ["venues"]  # the module-scoped fixture, used by name


@pytest.mark.parametrize("variant", VARIANTS)
def test_limit_rests_is_found_and_cancels(venues: Venues, variant: str) -> None:
    async def body(c: VenueClient, m: Market) -> None:
        before = by_asset(await c.balances())
        ident = cid()
        placed = await c.place(limit(m, ident))
        assert (placed.state, placed.client_id, placed.filled_qty) == (OrderState.ACCEPTED, ident, 0)
        assert placed.venue_order_id
        q = await c.query(QueryOrder(ident, m.symbol))
        assert (q.state, q.client_id, q.venue_order_id, q.filled_qty) == (OrderState.ACCEPTED, ident,
                                                                           placed.venue_order_id, 0)
        assert by_asset(await c.balances())[m.quote][1] > before[m.quote][1]  # the bid's value is locked
        cancelled = await c.cancel(CancelOrder(ident, m.symbol))
        assert cancelled.state in (OrderState.CANCELLED, OrderState.ACCEPTED)  # Upbit: the order as it was
        assert cancelled.client_id == ident
        done = await settled(c, ident, m.symbol, OrderState.CANCELLED)
        assert (done.state, done.filled_qty, done.fills) == (OrderState.CANCELLED, 0, ())
        assert by_asset(await c.balances()) == before  # the lock is released exactly
        again = await c.cancel(CancelOrder(ident, m.symbol))
        assert (again.state, again.reason) == (OrderState.REJECTED, RejectReason.NOT_FOUND)
    run(venues, variant, body)


@pytest.mark.parametrize("variant", VARIANTS)
def test_ioc_that_cannot_fill_expires_unfilled(venues: Venues, variant: str) -> None:
    async def body(c: VenueClient, m: Market) -> None:
        before = by_asset(await c.balances())
        ident = cid()
        ev = await c.place(limit(m, ident, kind=OrderType.IOC))
        assert ev.state in (OrderState.EXPIRED, OrderState.CANCELLED) and ev.filled_qty == 0 and not ev.fills
        assert (await c.query(QueryOrder(ident, m.symbol))).state is ev.state
        assert by_asset(await c.balances()) == before and not await c.open_orders(m.symbol)
    run(venues, variant, body)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("side", [Side.BUY, Side.SELL], ids=["buy", "sell"])
def test_market_order_fills_and_balances_move_by_fills_and_fees(venues: Venues, variant: str, side: Side) -> None:
    async def body(c: VenueClient, m: Market) -> None:
        before = by_asset(await c.balances())
        ident = cid()
        cmd = market_buy(m, ident) if side == Side.BUY else PlaceOrder(ident, m.symbol, side, OrderType.MARKET,
                                                                       D("0.01"))
        ev = await c.place(cmd)
        assert ev.state is OrderState.FILLED and ev.filled_qty > 0, ev
        full = await fills_of(c, ev)
        assert full.state is OrderState.FILLED and full.filled_qty == ev.filled_qty
        assert sum((f.qty for f in full.fills), D(0)) == ev.filled_qty
        fee_asset = m.quote if side == Side.SELL or venue_of(variant) == "upbit" else m.base
        assert all(f.fee > 0 and f.fee_asset == fee_asset for f in full.fills)
        if side == Side.SELL:
            assert ev.filled_qty == D("0.01") and all(f.price == m.best_bid for f in full.fills)
        after = by_asset(await c.balances())
        assert {a: f for a, (f, _) in after.items()} == expected_after(before, m, side, full)
        assert all(locked == before[a][1] for a, (_, locked) in after.items())
    run(venues, variant, body)


@pytest.mark.parametrize("variant", VARIANTS)
def test_partial_fill_rests_then_fills_as_maker_on_a_later_book(venues: Venues, variant: str) -> None:
    m = MARKETS[venue_of(variant)]
    thin = Book(first_book(m.venue).bids, ((m.best_ask, D("0.002")),), 1)
    deep = Book(first_book(m.venue).bids, ((m.best_ask, D("0.01")),), 2)
    ident = cid()

    async def body(c: VenueClient, m: Market) -> None:
        venues.set_book(variant, thin)
        ev = await c.place(limit(m, ident, price=m.best_ask, qty=D("0.005")))
        assert (ev.state, ev.filled_qty) == (OrderState.PARTIALLY_FILLED, D("0.002")), ev
        assert [o.client_id for o in await c.open_orders(m.symbol)] == [ident]
        venues.set_book(variant, deep)
        done = await settled(c, ident, m.symbol, OrderState.FILLED)
        assert (done.state, done.filled_qty) == (OrderState.FILLED, D("0.005"))
        assert not await c.open_orders(m.symbol)
    run(venues, variant, body)


@pytest.mark.parametrize("variant", VARIANTS)
def test_open_orders_lists_exactly_the_resting_ones(venues: Venues, variant: str) -> None:
    async def body(c: VenueClient, m: Market) -> None:
        resting = [cid(), cid()]
        for i, ident in enumerate(resting):
            assert (await c.place(limit(m, ident, price=m.rest_price - i * (m.best_ask - m.best_bid)))).state \
                is OrderState.ACCEPTED
        gone = cid()
        await c.place(limit(m, gone, price=m.rest_price))
        await c.cancel(CancelOrder(gone, m.symbol))
        await settled(c, gone, m.symbol, OrderState.CANCELLED)
        await c.place(limit(m, cid(), kind=OrderType.IOC))
        await c.place(market_buy(m, cid()))
        listed = await c.open_orders(m.symbol)
        assert sorted(o.client_id for o in listed) == sorted(resting)
        assert all(o.state is OrderState.ACCEPTED and o.filled_qty == 0 for o in listed)
        assert sorted(o.client_id for o in await c.open_orders()) == sorted(resting)
    run(venues, variant, body)


@pytest.mark.parametrize("variant", VARIANTS)
def test_duplicate_client_id_is_rejected(venues: Venues, variant: str) -> None:
    async def body(c: VenueClient, m: Market) -> None:
        ident = cid()
        assert (await c.place(limit(m, ident))).state is OrderState.ACCEPTED
        dup = await c.place(limit(m, ident))
        assert (dup.state, dup.reason, dup.client_id) == (OrderState.REJECTED, RejectReason.DUPLICATE_ID, ident)
        assert [o.client_id for o in await c.open_orders(m.symbol)] == [ident]
    run(venues, variant, body)


@pytest.mark.parametrize("variant", VARIANTS)
def test_duplicate_client_id_is_rejected_by_the_venue_itself(venues: Venues, variant: str) -> None:
    """A second client with no memory of the id (a restart before the journal seeded it): the venue refuses."""
    async def body(c: VenueClient, m: Market) -> None:
        ident = cid()
        assert (await c.place(limit(m, ident))).state is OrderState.ACCEPTED
        async with client_for(venues, variant) as fresh:
            dup = await fresh.place(limit(m, ident))
        assert (dup.state, dup.reason, dup.client_id) == (OrderState.REJECTED, RejectReason.DUPLICATE_ID, ident), dup
        assert [o.client_id for o in await c.open_orders(m.symbol)] == [ident]
    run(venues, variant, body)


@pytest.mark.parametrize("variant", VARIANTS)
def test_below_minimum_is_rejected_invalid(venues: Venues, variant: str) -> None:
    async def body(c: VenueClient, m: Market) -> None:
        before = by_asset(await c.balances())
        ev = await c.place(limit(m, cid(), qty=m.tiny_qty))
        assert (ev.state, ev.reason, ev.filled_qty) == (OrderState.REJECTED, RejectReason.INVALID, 0), ev
        assert by_asset(await c.balances()) == before and not await c.open_orders()
    run(venues, variant, body)


@pytest.mark.parametrize("variant", VARIANTS)
def test_off_tick_price_is_rejected_invalid(venues: Venues, variant: str) -> None:
    """Adapters never move the engine's price: off the tick it is refused as it stands (the engine rounds)."""
    async def body(c: VenueClient, m: Market) -> None:
        before = by_asset(await c.balances())
        sent = count_requests(c)
        ev = await c.place(limit(m, cid(), price=m.off_tick))
        assert (ev.state, ev.reason, ev.filled_qty) == (OrderState.REJECTED, RejectReason.INVALID, 0), ev
        assert sent == [0]  # refused before sending: no request, no rate-limit weight
        assert by_asset(await c.balances()) == before and not await c.open_orders()
    run(venues, variant, body)


@pytest.mark.parametrize("variant", VARIANTS)
def test_off_step_quantity_is_rejected_invalid(venues: Venues, variant: str) -> None:
    async def body(c: VenueClient, m: Market) -> None:
        sent = count_requests(c)
        ev = await c.place(limit(m, cid(), qty=m.off_step))
        assert (ev.state, ev.reason, ev.filled_qty) == (OrderState.REJECTED, RejectReason.INVALID, 0), ev
        assert sent == [0]
        assert not await c.open_orders()
    run(venues, variant, body)


@pytest.mark.parametrize("variant", ["paper-binance", "binance-client"])
def test_price_outside_the_percent_band_is_rejected_invalid(venues: Venues, variant: str) -> None:
    """PERCENT_PRICE_BY_SIDE (0.2 .. 5 x the average price; the fake's average is its book's mid here)."""
    async def body(c: VenueClient, m: Market) -> None:
        low = (m.best_bid + m.best_ask) / 2 * D("0.2") - D("0.01")
        ev = await c.place(limit(m, cid(), price=low.quantize(D("0.01"))))
        assert (ev.state, ev.reason) == (OrderState.REJECTED, RejectReason.INVALID), ev
        assert "Filter failure: PERCENT_PRICE_BY_SIDE" in ev.detail and not await c.open_orders()
    run(venues, variant, body)


@pytest.mark.parametrize("variant", VARIANTS)
def test_wrong_secret_is_rejected_auth(venues: Venues, variant: str) -> None:
    async def main() -> None:
        async with client_for(venues, variant, bad_secret=True) as c:
            m = MARKETS[venue_of(variant)]
            ident = cid()
            ev = await c.place(limit(m, ident))
            assert (ev.state, ev.reason) == (OrderState.REJECTED, RejectReason.AUTH), ev
            q = await c.query(QueryOrder(ident, m.symbol))
            assert (q.state, q.reason) == (OrderState.REJECTED, RejectReason.AUTH)
        async with client_for(venues, variant) as good:
            q = await good.query(QueryOrder(ident, m.symbol))
            assert (q.state, q.reason) == (OrderState.REJECTED, RejectReason.NOT_FOUND)  # it never got there
    asyncio.run(main())


@pytest.mark.parametrize("variant", VARIANTS)
def test_error_after_accept_is_unknown_until_a_query_finds_it(venues: Venues, variant: str) -> None:
    async def body(c: VenueClient, m: Market) -> None:
        ident = cid()
        venues.faults(variant).update({"error_after_accept": 1})
        ev = await c.place(limit(m, ident))
        # BinanceClient settles an UNKNOWN place with one query by client id itself; the others hand UNKNOWN up
        want = OrderState.ACCEPTED if variant == "binance-client" else OrderState.UNKNOWN
        assert (ev.state, ev.client_id) == (want, ident), ev
        assert venues.faults(variant).error_after_accept == 0
        q = await c.query(QueryOrder(ident, m.symbol))
        assert (q.state, q.client_id, q.filled_qty) == (OrderState.ACCEPTED, ident, 0)
        assert [o.client_id for o in await c.open_orders(m.symbol)] == [ident]
    run(venues, variant, body)


@pytest.mark.parametrize("variant", VARIANTS)
def test_unknown_order_is_not_found(venues: Venues, variant: str) -> None:
    async def body(c: VenueClient, m: Market) -> None:
        q = await c.query(QueryOrder(cid(), m.symbol))
        assert (q.state, q.reason, q.filled_qty) == (OrderState.REJECTED, RejectReason.NOT_FOUND, 0)
        x = await c.cancel(CancelOrder(cid(), m.symbol))
        assert (x.state, x.reason) == (OrderState.REJECTED, RejectReason.NOT_FOUND)
    run(venues, variant, body)


def test_paper_latency_stamps_the_events(venues: Venues) -> None:
    """Paper time is passed in: a command made at t reaches the venue at t + latency, its answer at t + 2 x."""
    ex = venues.paper["binance"]
    ex.set_book("BTCUSDT", first_book("binance").bids, first_book("binance").asks, 0)
    t0 = 1_756_000_000_000_000_000
    c = PaperClient(ex, venues.secrets["binance"], clock=lambda: t0, latency_ns=7_000_000)
    ev = asyncio.run(c.place(PlaceOrder(cid(), "BTCUSDT", Side.BUY, OrderType.MARKET, D("0.001"), ts_local=t0)))
    assert ev.state is OrderState.FILLED
    assert (ev.ts_venue, ev.ts_local) == (t0 + 7_000_000, t0 + 14_000_000)
    assert [f.ts_venue for f in ev.fills] == [t0 + 7_000_000]


@pytest.mark.parametrize("variant", ADAPTERS)
def test_order_stream_agrees_with_query(venues: Venues, variant: str) -> None:
    """The private stream (by push) tells a market buy as the REST query does: accepted first, the same final
    state and filled quantity, each fill once, adding up to it, with the fees REST reports."""
    async def body(c: VenueClient, m: Market) -> None:
        info = venues.fakes.info[m.venue]
        stream = (c.order_stream(url=info["ws"] + "/ws-api/v3") if isinstance(c, BinanceClient)
                  else c.order_stream(url=info["private_ws"]) if isinstance(c, UpbitClient) else None)
        assert stream is not None
        reader = Reader(stream)
        try:
            await reader.until(lambda _: "connected" in reader.markers())
            ident = cid()
            full = await fills_of(c, await c.place(market_buy(m, ident)))
            await reader.until(closed(ident, reader))
            events, q = reader.events(ident), await c.query(QueryOrder(ident, m.symbol))
            assert (events[0].state, events[-1].state, events[-1].filled_qty) == (
                OrderState.ACCEPTED, q.state, q.filled_qty) and q.state is OrderState.FILLED
            fills = [f for e in events for f in e.fills]
            assert len({f.trade_id for f in fills}) == len(fills)
            assert sum((f.qty for f in fills), D(0)) == q.filled_qty
            assert sum((f.fee for f in fills), D(0)) == sum((f.fee for f in full.fills), D(0)) > 0
        finally:
            await reader.close()
    run(venues, variant, body)


# ---- §3: the adapters and ccxt agree ---------------------------------------------------------------------
