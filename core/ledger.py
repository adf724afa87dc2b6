"""The exact ledger: per-venue balances in Decimal, fills applied one by one, fees in the quote currency.

Integer 1e-8 units come in from the fill model; Decimal arithmetic here never rounds (a product of two
8-decimal numbers has at most 16 decimals, well inside the Decimal context below), so
``final = initial + sum(signed fills) - fees`` holds to the last digit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Context, Decimal

from .domain import Currency, Side, Venue
from .rules import SCALE_DEC

EXACT = Context(prec=60)  # no rounding for any amount this engine can hold


def units_to_dec(units: int) -> Decimal:
    return EXACT.divide(Decimal(units), SCALE_DEC)


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution: exact price/quantity, the decision's reference price, both timestamps."""

    trip: int
    venue: Venue
    side: Side
    price: Decimal
    qty: Decimal
    fee: Decimal  # quote currency
    ref_price: Decimal  # the mid the decision saw: fill vs ref is the slippage
    ts_decision: int
    ts_venue: int
    ts_local: int
    action: str  # open / close / unwind

    @property
    def notional(self) -> Decimal:
        return EXACT.multiply(self.price, self.qty)

    @property
    def slippage(self) -> Decimal:
        """Cost against the decision's mid, in the quote currency (positive = we paid for it)."""
        return EXACT.multiply(EXACT.multiply(Decimal(int(self.side)), self.price - self.ref_price), self.qty)


def fee_for(price: Decimal, qty: Decimal, rate: Decimal) -> Decimal:
    """Taker fee on a fill, exact (the default 28-digit context would round a large notional)."""
    return EXACT.multiply(EXACT.multiply(price, qty), rate)


@dataclass
class Ledger:
    balances: dict[tuple[Venue, Currency], Decimal] = field(default_factory=dict)
    fees_paid: dict[tuple[Venue, Currency], Decimal] = field(default_factory=dict)
    applied: int = 0

    @classmethod
    def funded(cls, initial: Mapping[tuple[Venue, Currency], Decimal]) -> Ledger:
        for key, value in initial.items():
            if value < 0:
                raise ValueError(f"initial balance {key} is negative: {value}")
        return cls(balances=dict(initial))

    def balance(self, venue: Venue, currency: Currency) -> Decimal:
        return self.balances.get((venue, currency), Decimal(0))

    def apply(self, fill: Fill) -> None:
        if fill.qty <= 0 or fill.price <= 0 or fill.fee < 0:
            raise ValueError(f"refusing a fill with non-positive price/qty or negative fee: {fill}")
        quote = fill.venue.quote
        coin_key, quote_key = (fill.venue, Currency.COIN), (fill.venue, quote)
        sign = Decimal(int(fill.side))
        self.balances[coin_key] = EXACT.add(self.balance(*coin_key), EXACT.multiply(sign, fill.qty))
        cash_change = EXACT.subtract(EXACT.multiply(-sign, fill.notional), fill.fee)
        self.balances[quote_key] = EXACT.add(self.balance(*quote_key), cash_change)
        self.fees_paid[quote_key] = EXACT.add(self.fees_paid.get(quote_key, Decimal(0)), fill.fee)
        self.applied += 1

    def apply_all(self, fills: Iterable[Fill]) -> None:
        for f in fills:
            self.apply(f)
