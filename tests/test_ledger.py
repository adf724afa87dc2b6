from decimal import Decimal, localcontext

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arbitrage_lite.core.domain import Currency, Side, Venue
from arbitrage_lite.core.ledger import EXACT, Fill, Ledger, fee_for, units_to_dec

INITIAL = {
    (Venue.UPBIT, Currency.KRW): Decimal("30000000"),
    (Venue.UPBIT, Currency.COIN): Decimal("0.5"),
    (Venue.BINANCE, Currency.USDT): Decimal("20000.55"),
    (Venue.BINANCE, Currency.COIN): Decimal("0.5"),
}
RATE = {Venue.UPBIT: Decimal("0.0005"), Venue.BINANCE: Decimal("0.001")}

fill_args = st.tuples(
    st.sampled_from([Venue.UPBIT, Venue.BINANCE]),
    st.sampled_from([Side.BUY, Side.SELL]),
    st.integers(min_value=1, max_value=200_000_000 * 10**8),  # price units
    st.integers(min_value=1, max_value=10**8),  # qty units
)


def make_fill(venue: Venue, side: Side, px_units: int, qty_units: int) -> Fill:
    price, qty = units_to_dec(px_units), units_to_dec(qty_units)
    return Fill(trip=0, venue=venue, side=side, price=price, qty=qty, fee=fee_for(price, qty, RATE[venue]),
                ref_price=price, ts_decision=0, ts_venue=1, ts_local=2, action="open")


@settings(max_examples=200, deadline=None)
@given(st.lists(fill_args, min_size=0, max_size=60))
def test_final_balances_are_initial_plus_fills_minus_fees_exactly(args: list[tuple]) -> None:
    fills = [make_fill(*a) for a in args]
    ledger = Ledger.funded(INITIAL)
    ledger.apply_all(fills)
    with localcontext(EXACT):  # the expectation must be exact too (28 digits would round it)
        check_balances(ledger, fills)


def check_balances(ledger: Ledger, fills: list[Fill]) -> None:
    for venue in Venue:
        coin = INITIAL[(venue, Currency.COIN)] + sum(
            (f.qty * int(f.side) for f in fills if f.venue is venue), Decimal(0))
        cash = INITIAL[(venue, venue.quote)] + sum(
            (-int(f.side) * f.price * f.qty - f.fee for f in fills if f.venue is venue), Decimal(0))
        assert ledger.balance(venue, Currency.COIN) == coin
        assert ledger.balance(venue, venue.quote) == cash
        assert ledger.fees_paid.get((venue, venue.quote), Decimal(0)) == sum(
            (f.fee for f in fills if f.venue is venue), Decimal(0))
    assert ledger.applied == len(fills)


def test_fee_and_notional_are_exact_decimals() -> None:
    f = make_fill(Venue.BINANCE, Side.BUY, 6_375_601_000_000, 12_345)  # 0.00012345 BTC @ 63,756.01
    assert f.notional == Decimal("63756.01") * Decimal("0.00012345")
    assert f.notional == Decimal("7.8706794345")
    assert f.fee == Decimal("0.0078706794345")  # 0.1 % of it, not rounded
    ledger = Ledger.funded(INITIAL)
    ledger.apply(f)
    assert ledger.balance(Venue.BINANCE, Currency.USDT) == Decimal("20000.55") - f.notional - f.fee


def test_ledger_refuses_bad_fills_and_negative_funding() -> None:
    with pytest.raises(ValueError, match="negative"):
        Ledger.funded({(Venue.UPBIT, Currency.KRW): Decimal("-1")})
    bad = Fill(trip=0, venue=Venue.UPBIT, side=Side.BUY, price=Decimal("1"), qty=Decimal("0"), fee=Decimal(0),
               ref_price=Decimal("1"), ts_decision=0, ts_venue=0, ts_local=0, action="open")
    ledger = Ledger.funded(INITIAL)
    with pytest.raises(ValueError, match="non-positive"):
        ledger.apply(bad)
    assert ledger.balances == INITIAL and ledger.applied == 0
