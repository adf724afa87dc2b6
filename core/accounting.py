"""Round-trip accounting in KRW from exact fills.

Per trip and venue: gross = flows valued at the decision's mid, slippage = fills against that mid,
fees; net = actual cash flows. USDT amounts convert to KRW at the FX of the trip's exit (entry for a trip
still open). All Decimal without rounding, so ``net == gross - fees - slippage`` exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, localcontext

from .domain import Currency, Side, Venue
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


@dataclass(frozen=True, slots=True)
class TripAttribution:
    """Where one round trip's net PnL came from, in KRW, exact: ``net = edge + fx - fees - slippage``.

    ``edge`` values every leg at its decision's mid and every USDT flow at the FX of its own decision (entry
    legs at the entry FX, exit legs at the exit FX): the premium captured, about notional x (entry premium -
    exit premium). ``fx`` is what valuing the entry's USDT at the exit FX (the trip's PnL convention) adds.
    ``fees`` and ``slippage`` are the trip's costs as in :class:`TripPnl`; ``notional`` (the entry's Upbit leg
    in KRW) is the base of the bps figures.
    """

    notional_krw: Decimal
    edge_krw: Decimal
    fx_krw: Decimal
    fees_krw: Decimal
    slippage_krw: Decimal
    net_krw: Decimal

    @property
    def gross_krw(self) -> Decimal:
        """Before fees and slippage: what the same trip would have made at zero cost."""
        return EXACT.add(self.edge_krw, self.fx_krw)

    def bps(self, amount: Decimal) -> float | None:
        """An amount in bps of the entry notional (a float: for reading, not for sums)."""
        return None if self.notional_krw <= 0 else float(amount / self.notional_krw * 10_000)


def _entry_phase(f: Fill, exit_decision_ns: int) -> bool:
    if f.action == "open":
        return True
    return f.action == "unwind" and (exit_decision_ns < 0 or f.ts_decision < exit_decision_ns)


def attribute_trip(fills: Sequence[Fill], pnl: TripPnl, fx_entry: Decimal, fx_exit: Decimal,
                   exit_decision_ns: int) -> TripAttribution:
    """Split a trip's PnL (``pnl`` from :func:`trip_pnl` at ``fx_exit``) into edge, FX effect and costs."""
    with localcontext(EXACT):
        entry_usdt = Decimal(0)  # the entry's Binance flow at the decision's mid, in USDT
        notional_upbit = notional_binance = Decimal(0)
        for f in fills:
            if not _entry_phase(f, exit_decision_ns):
                continue
            if f.venue is Venue.BINANCE:
                entry_usdt -= Decimal(int(f.side)) * f.ref_price * f.qty
                notional_binance += f.notional
            else:
                notional_upbit += f.notional
        fx = entry_usdt * (fx_exit - fx_entry)
        notional = notional_upbit if notional_upbit > 0 else notional_binance * fx_entry
        return TripAttribution(notional, pnl.gross_krw - fx, fx, pnl.fees_krw, pnl.slippage_krw, pnl.net_krw)


def reconcile(initial: Mapping[tuple[Venue, Currency], Decimal], fills: Sequence[Fill],
              final: Mapping[tuple[Venue, Currency], Decimal]) -> dict[str, dict[str, str | bool]]:
    """Every balance recomputed from the fills alone: ``initial + bought - sold - fees == final``, exactly.

    Independent of :class:`~.ledger.Ledger` (which ``final`` comes from): a fill the ledger missed, applied
    twice or rounded shows as a non-zero ``diff``. Keys are ``venue/currency``.
    """
    with localcontext(EXACT):
        flows: dict[tuple[Venue, Currency], Decimal] = {}
        fees: dict[tuple[Venue, Currency], Decimal] = {}
        for f in fills:
            sign = Decimal(int(f.side))
            coin, quote = (f.venue, Currency.COIN), (f.venue, f.venue.quote)
            flows[coin] = flows.get(coin, Decimal(0)) + sign * f.qty
            flows[quote] = flows.get(quote, Decimal(0)) - sign * f.notional
            fees[quote] = fees.get(quote, Decimal(0)) + f.fee
        out: dict[str, dict[str, str | bool]] = {}
        for key in sorted({*initial, *flows, *final}):
            start, flow, fee = initial.get(key, Decimal(0)), flows.get(key, Decimal(0)), fees.get(key, Decimal(0))
            end = final.get(key, Decimal(0))
            diff = end - (start + flow - fee)
            out[f"{key[0].label}/{key[1].name}"] = {
                "initial": format(start, "f"), "fills": format(flow, "f"), "fees": format(fee, "f"),
                "final": format(end, "f"), "diff": format(diff, "f"), "ok": diff == 0}
        return out


def signed_notional_krw(fills: Sequence[Fill], fx_krw_per_usdt: Decimal) -> Decimal:
    """Traded notional (absolute) in KRW, for turnover."""
    total = Decimal(0)
    for f in fills:
        n = f.notional if f.venue is Venue.UPBIT else EXACT.multiply(f.notional, fx_krw_per_usdt)
        total = EXACT.add(total, n)
    return total


__all__ = ["LegSummary", "Side", "TripAttribution", "TripPnl", "attribute_trip", "fx_to_dec", "reconcile",
           "signed_notional_krw", "trip_pnl"]
