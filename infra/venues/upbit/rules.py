"""Upbit per-market order rules (sans-IO): tick (``GET /orderbook/instruments`` or the KRW table), volume step,
minimum and maximum order totals (brief §A9), and the instruments parser.

The tick comes from ``tick_size`` of ``/orderbook/instruments`` when the adapter has loaded it -- the brief says
always prefer it: per-asset exceptions exist (USDT/KRW had 0.5 KRW) -- else from core.rules' KRW table of the
order's date. ``tick_size`` is the venue's tick *now*, i.e. for the market's current price band: reload it (the
adapter's ``load_rules``) when the price moves to another band. Non-KRW markets have no table: without
instruments their tick is not checked locally (the venue checks it).

``round_price`` / ``floor_qty`` are the engine's tools to put an order on the grid before it sends; the adapter
and the paper venue only check (an off-grid order is refused, never moved).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ....core.domain import Side
from ....core.rules import (
    SCALE,
    UPBIT_MAX_ORDER_KRW,
    UPBIT_MIN_ORDER_KRW,
    UPBIT_TABLE_START_NS,
    Toward,
    on_grid,
    rounds_up,
    to_grid,
    upbit_krw_tick_units,
)
from ....core.venue import Rejected
from .numbers import Bad, dec, plain, text
from .parse import _each

QTY_STEP = Decimal("1e-8")  # volume: 8 decimals on every market
MIN_TOTAL = {"KRW": Decimal(UPBIT_MIN_ORDER_KRW), "BTC": Decimal("0.00005"), "USDT": Decimal("0.5")}
MAX_TOTAL = {"KRW": Decimal(UPBIT_MAX_ORDER_KRW), "BTC": Decimal(10)}
CURRENT_TABLE_NS = int(UPBIT_TABLE_START_NS[-1])  # "now" for the KRW table when no date is given


@dataclass(frozen=True, slots=True)
class Instrument:
    """One item of ``GET /v1/orderbook/instruments``."""

    market: str
    quote: str
    tick_size: Decimal
    supported_levels: tuple[Decimal, ...]


@dataclass(frozen=True, slots=True)
class MarketRules:
    """One market's order rules; ``tick_size`` from the instruments endpoint when known (None: the table)."""

    market: str  # QUOTE-BASE, e.g. KRW-BTC
    tick_size: Decimal | None = None

    @property
    def quote(self) -> str:
        return self.market.partition("-")[0]

    def tick(self, price: Decimal, at_ns: int = CURRENT_TABLE_NS) -> Decimal | None:
        """The tick for ``price`` (None: unknown here, a non-KRW market without instruments)."""
        if self.tick_size is not None:
            return self.tick_size
        if self.quote != "KRW":
            return None
        units = int(price * SCALE) if price > 0 else 0
        return Decimal(int(upbit_krw_tick_units(units, at_ns))) / SCALE

    def round_price(self, price: Decimal, side: Side, toward: Toward = "passive",
                    at_ns: int = CURRENT_TABLE_NS) -> Decimal:
        """``price`` on the tick grid, exactly (``aggressive``: a buy up, a sell down; ``passive``: the other way).

        With the table, the band of ``price`` gives the tick: every band's lower bound is a multiple of the
        ticks on both sides of it, so rounding up into the next band still lands on its grid."""
        tick = self.tick(price, at_ns)
        if tick is None:
            return to_grid(price, QTY_STEP, rounds_up(side, toward))  # 8 decimals at least
        return to_grid(price, tick, rounds_up(side, toward))

    def floor_qty(self, qty: Decimal) -> Decimal:
        """``qty`` down to 8 decimals: never more than decided (the total may then fall below the minimum)."""
        return to_grid(qty, QTY_STEP, up=False)

    def price_problem(self, price: Decimal, at_ns: int) -> str | None:
        """Why Upbit would refuse this limit price (``invalid_price_*``), or None."""
        if price <= 0 or not on_grid(price, QTY_STEP):
            return f"price {price} is not a positive multiple of 1e-8"
        tick = self.tick(price, at_ns)
        if tick is not None and not on_grid(price, tick):
            source = "instruments tick_size" if self.tick_size is not None else f"{self.quote} tick table"
            return (f"price {price} is off the tick {plain(tick)} ({source}): round it with "
                    "MarketRules.round_price before sending")
        return None

    def qty_problem(self, qty: Decimal) -> str | None:
        if qty <= 0 or not on_grid(qty, QTY_STEP):
            return f"volume {qty} is not a positive multiple of 1e-8: floor it with MarketRules.floor_qty"
        return None

    @property
    def min_total(self) -> Decimal | None:
        return MIN_TOTAL.get(self.quote)

    @property
    def max_total(self) -> Decimal | None:
        return MAX_TOTAL.get(self.quote)

    def total_problem(self, total: Decimal) -> str | None:
        """Below ``min_total`` or above ``max_total`` of the quote currency (brief §A9), or None."""
        least, most = self.min_total, self.max_total
        if least is not None and total < least:
            return f"order total {total} {self.quote} is below the minimum {least}"
        if most is not None and total > most:
            return f"order total {total} {self.quote} is above the maximum {most}"
        return None


def _instrument(m: dict[str, Any]) -> Instrument:
    market = text(m, "market", max_len=32)
    quote = text(m, "quote_currency", max_len=16)
    if market.partition("-")[0] != quote:
        raise Bad("bad_field", f"quote_currency {quote} does not match {market}")
    levels = m.get("supported_levels", [])
    if not isinstance(levels, list):
        raise Bad("bad_field", "supported_levels is not a list")
    return Instrument(market, quote, dec(m, "tick_size", positive=True),
                      tuple(dec({"level": v}, "level") for v in levels))


def parse_instruments(raw: bytes | str, ts_local: int) -> list[Instrument | Rejected]:
    """GET /v1/orderbook/instruments: one item per market; a bad item is a Rejected, the others stand."""
    return _each(raw, ts_local, _instrument)


def rules_from(instruments: list[Instrument | Rejected]) -> dict[str, MarketRules]:
    """Per-market rules with the instruments' tick sizes (markets whose item was refused are left out)."""
    return {i.market: MarketRules(i.market, i.tick_size) for i in instruments if isinstance(i, Instrument)}
