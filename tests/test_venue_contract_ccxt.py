"""The adapters' results against ccxt 4.5.90 (its own signing and parsing) on the same fake venues.

ccxt is the independent client: where our adapters and ccxt agree on status, filled amount, fee and balances,
the fakes and our parsing are not just agreeing with themselves.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from venue_contract_harness import (
    ADAPTERS,
    MARKETS,
    NEEDS_DATA,
    D,
    Market,
    Venues,
    by_asset,
    cid,
    client_for,
    fills_of,
    first_book,
    limit,
    market_buy,
    settled,
    venue_of,
    venues,
)

from arbitrage_lite.core.domain import Side
from arbitrage_lite.core.venue import (
    CancelOrder,
    OrderEvent,
    OrderState,
    OrderType,
    PlaceOrder,
    VenueClient,
)

pytestmark = NEEDS_DATA
__all__ = ["venues"]  # the module-scoped fixture, used by name


SCENARIOS = ["market_buy", "market_sell", "ioc_unfillable", "rest_then_cancel"]
CCXT_STATUS = {OrderState.FILLED: "closed", OrderState.CANCELLED: "canceled", OrderState.EXPIRED: "expired",
               OrderState.ACCEPTED: "open", OrderState.PARTIALLY_FILLED: "open"}


@dataclass(frozen=True)
class Outcome:
    """One scenario's result in ccxt's vocabulary, with the exact free-balance changes it caused."""

    status: str
    filled: Decimal
    average: Decimal | None
    fee: Decimal
    deltas: tuple[tuple[str, Decimal], ...]


def _ccxt(ccxt: Any, venues: Venues, venue: str) -> Any:
    info = venues.fakes.info[venue]
    if venue == "binance":
        ex = ccxt.binance({"apiKey": info["api_key"], "secret": info["secret"],
                           "options": {"fetchMarkets": {"types": ["spot"]}, "fetchMargins": False,
                                       "fetchCurrencies": False, "adjustForTimeDifference": False}})
        ex.urls["api"]["public"] = ex.urls["api"]["private"] = info["rest"] + "/api/v3"
    else:
        ex = ccxt.upbit({"apiKey": info["access_key"], "secret": info["secret"]})
        ex.urls["api"]["public"] = ex.urls["api"]["private"] = info["rest"]
    return ex


def _dec(x: Any) -> Decimal:
    return D(repr(x)) if isinstance(x, float) else D(str(x))


def _ccxt_status(m: Market, order: dict[str, Any]) -> str:
    """ccxt's status, with the two Upbit distinctions ccxt folds into 'canceled' put back (brief §A4): a market
    buy whose dust was cancelled is filled, and an IOC remainder cancelled is expired."""
    status = str(order["status"])
    if m.venue == "upbit" and status == "canceled":
        if order["info"].get("ord_type") == "price" and (order.get("filled") or 0) > 0:
            return "closed"
        if order["info"].get("time_in_force") in ("ioc", "fok"):
            return "expired"
    return status


def _ccxt_fee(order: dict[str, Any]) -> Decimal:
    fees = order.get("fees") or ([order["fee"]] if order.get("fee") else [])
    return sum((_dec(f["cost"]) for f in fees if f and f.get("cost") is not None), D(0))


def _vwap(ev: OrderEvent) -> Decimal | None:
    qty = sum((f.qty for f in ev.fills), D(0))
    return sum((f.price * f.qty for f in ev.fills), D(0)) / qty if qty else None


def _deltas(before: dict[str, tuple[Decimal, Decimal]], after: dict[str, tuple[Decimal, Decimal]]
            ) -> tuple[tuple[str, Decimal], ...]:
    return tuple((a, after[a][0] - before.get(a, (D(0), D(0)))[0]) for a in sorted(after))


async def _balances_agree(c: VenueClient, ex: Any) -> dict[str, tuple[Decimal, Decimal]]:
    """Our exact balances, after checking ccxt reads the same numbers (as floats: ccxt's own type)."""
    ours = by_asset(await c.balances())
    theirs = await ex.fetch_balance()
    for asset, (free, locked) in ours.items():
        assert (theirs[asset]["free"], theirs[asset]["used"]) == (float(free), float(locked)), asset
    return ours


async def _ours(c: VenueClient, m: Market, scenario: str) -> OrderEvent:
    ident = cid()
    if scenario == "market_buy":
        return await fills_of(c, await c.place(market_buy(m, ident)))
    if scenario == "market_sell":
        return await fills_of(c, await c.place(PlaceOrder(ident, m.symbol, Side.SELL, OrderType.MARKET, D("0.01"))))
    if scenario == "ioc_unfillable":
        return await c.place(limit(m, ident, kind=OrderType.IOC))
    await c.place(limit(m, ident))
    await c.cancel(CancelOrder(ident, m.symbol))
    return await settled(c, ident, m.symbol, OrderState.CANCELLED)


async def _theirs(ex: Any, m: Market, scenario: str) -> dict[str, Any]:
    sym, params = f"{m.base}/{m.quote}", {"clientOrderId": cid()}
    if scenario == "market_buy":
        qty, quote = m.market_buy
        order = await (ex.create_order(sym, "market", "buy", float(qty), None, params) if qty is not None else
                       ex.create_order(sym, "market", "buy", None, None, {**params, "cost": float(quote or 0)}))
    elif scenario == "market_sell":
        order = await ex.create_order(sym, "market", "sell", 0.01, None, params)
    elif scenario == "ioc_unfillable":
        order = await ex.create_order(sym, "limit", "buy", float(m.qty), float(m.rest_price),
                                      {**params, "timeInForce": "IOC"})
    else:
        order = await ex.create_order(sym, "limit", "buy", float(m.qty), float(m.rest_price), params)
        await ex.cancel_order(order["id"], sym)
    if m.venue == "upbit" or scenario == "rest_then_cancel":  # Upbit's POST answer has no trades; re-read it
        fetched = await ex.fetch_order(order["id"], sym)
        order = fetched if m.venue == "upbit" else {**order, "status": fetched["status"]}
    return dict(order)


@pytest.mark.parametrize("variant", ADAPTERS)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_adapter_and_ccxt_agree(venues: Venues, variant: str, scenario: str) -> None:
    ccxt = pytest.importorskip("ccxt.async_support")
    m = MARKETS[venue_of(variant)]
    sym = f"{m.base}/{m.quote}"

    async def main() -> None:
        ex = _ccxt(ccxt, venues, m.venue)
        ex.enableRateLimit = False
        try:
            await ex.load_markets()
            async with client_for(venues, variant) as c:
                # 1. our adapter runs the scenario; ccxt reads the very same order and balances
                venues.set_book(variant, first_book(m.venue))
                before = await _balances_agree(c, ex)
                ev = await _ours(c, m, scenario)
                ours = Outcome(CCXT_STATUS[ev.state], ev.filled_qty, _vwap(ev), sum((f.fee for f in ev.fills), D(0)),
                               _deltas(before, await _balances_agree(c, ex)))
                seen = await ex.fetch_order(ev.venue_order_id, sym)
                assert (_ccxt_status(m, seen), _dec(seen["filled"])) == (ours.status, ours.filled), seen
                # 2. ccxt runs the same scenario from the same book: the same results
                venues.set_book(variant, first_book(m.venue))
                before = await _balances_agree(c, ex)
                order = await _theirs(ex, m, scenario)
                after = await _balances_agree(c, ex)
                average = _dec(order["average"]) if order.get("average") else None
                theirs = Outcome(_ccxt_status(m, order), _dec(order["filled"] or 0), average, _ccxt_fee(order),
                                 _deltas(before, after))
                assert (theirs.status, theirs.filled, theirs.fee, theirs.deltas) == (
                    ours.status, ours.filled, ours.fee, ours.deltas), (theirs, ours)
                if ours.average is None or theirs.average is None:
                    assert ours.average == theirs.average or ours.filled == 0
                else:  # ccxt divides in floats: equal to 12 significant digits
                    assert abs(theirs.average - ours.average) <= ours.average * D("1e-12"), (theirs, ours)
        finally:
            await ex.close()
    asyncio.run(main())
