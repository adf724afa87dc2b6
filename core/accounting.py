"""Round-trip accounting in KRW from exact fills.

Per trip and venue: gross = flows valued at the decision's mid, slippage = fills against that mid,
fees; net = actual cash flows. USDT amounts convert to KRW at the FX of the trip's exit (entry for a trip
still open). All Decimal without rounding, so ``net == gross - fees - slippage`` exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, localcontext

from .domain import Side, Venue
from .ledger import EXACT, Fill


def fx_to_dec(rate: float) -> Decimal:
    """FX as a Decimal with 4 decimals (more than any KRW quote carries)."""
    if not (rate > 0.0):
        raise ValueError(f"FX rate must be positive, got {rate!r}")
    return Decimal(f"{rate:.4f}")


@dataclass(frozen=True, slots=True)
class LegSummary:
    side: int  # +1 buy, -1 sell, 0 no fill
    qty: Decimal
    vwap: Decimal
    fee: Decimal  # quote currency
    slippage: Decimal  # quote currency

    @staticmethod
    def of(fills: Sequence[Fill]) -> LegSummary:
        if not fills:
            return LegSummary(0, Decimal(0), Decimal(0), Decimal(0), Decimal(0))
        with localcontext(EXACT):
            return LegSummary._of(fills)

    @staticmethod
    def _of(fills: Sequence[Fill]) -> LegSummary:
        signed = sum((EXACT.multiply(Decimal(int(f.side)), f.qty) for f in fills), Decimal(0))
        qty = sum((f.qty for f in fills), Decimal(0))
        vwap = EXACT.divide(sum((f.notional for f in fills), Decimal(0)), qty)
        return LegSummary(1 if signed > 0 else -1 if signed < 0 else 0, qty, vwap,
                          sum((f.fee for f in fills), Decimal(0)), sum((f.slippage for f in fills), Decimal(0)))


@dataclass(frozen=True, slots=True)
class TripPnl:
    gross_krw: Decimal
    fees_krw: Decimal
    slippage_krw: Decimal
    net_krw: Decimal
    residual_coin: tuple[Decimal, Decimal]  # per venue; zero for a fully closed, hedged trip


def trip_pnl(fills: Sequence[Fill], fx_krw_per_usdt: Decimal, marks: tuple[Decimal, Decimal]) -> TripPnl:
    """PnL of one round trip. ``marks`` value any coin left on a venue (an open trip) at its mid."""
    gross = {Venue.UPBIT: Decimal(0), Venue.BINANCE: Decimal(0)}
    fees = dict.fromkeys(gross, Decimal(0))
    slip = dict.fromkeys(gross, Decimal(0))
    coin = dict.fromkeys(gross, Decimal(0))
    for f in fills:
        sign = Decimal(int(f.side))
        gross[f.venue] = EXACT.subtract(gross[f.venue], EXACT.multiply(EXACT.multiply(sign, f.ref_price), f.qty))
        fees[f.venue] = EXACT.add(fees[f.venue], f.fee)
        slip[f.venue] = EXACT.add(slip[f.venue], f.slippage)
        coin[f.venue] = EXACT.add(coin[f.venue], EXACT.multiply(sign, f.qty))
    for v, mark in zip((Venue.UPBIT, Venue.BINANCE), marks, strict=True):
        gross[v] = EXACT.add(gross[v], EXACT.multiply(coin[v], mark))

    def krw(per_venue: dict[Venue, Decimal]) -> Decimal:
        return EXACT.add(per_venue[Venue.UPBIT], EXACT.multiply(per_venue[Venue.BINANCE], fx_krw_per_usdt))

    g, fe, sl = krw(gross), krw(fees), krw(slip)
    return TripPnl(g, fe, sl, EXACT.subtract(EXACT.subtract(g, fe), sl), (coin[Venue.UPBIT], coin[Venue.BINANCE]))


def signed_notional_krw(fills: Sequence[Fill], fx_krw_per_usdt: Decimal) -> Decimal:
    """Traded notional (absolute) in KRW, for turnover."""
    total = Decimal(0)
    for f in fills:
        n = f.notional if f.venue is Venue.UPBIT else EXACT.multiply(f.notional, fx_krw_per_usdt)
        total = EXACT.add(total, n)
    return total


__all__ = ["LegSummary", "Side", "TripPnl", "fx_to_dec", "signed_notional_krw", "trip_pnl"]
