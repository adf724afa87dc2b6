"""Exchange trading rules: Upbit KRW tick table (with its history), lot steps and minimum notionals.

Prices and quantities are integers in units of 1e-8 (both venues quote at most 8 decimals), so every
price on a venue's grid and every lot is exact. The compiled kernel and Python code call the same
functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Literal

import numpy as np
from numba import njit

from .domain import Side, Venue

SCALE = 100_000_000  # 1e-8 units for prices and quantities
SCALE_DEC = Decimal(SCALE)


def _units(text: str) -> int:
    value = Decimal(text) * SCALE
    if value != value.to_integral_value():
        raise ValueError(f"{text} is finer than 1e-8")
    return int(value)


# Upbit KRW-market tick tables: (lower bound of the price band, tick), bands are [lower, next lower).
# Source: ../shared/docs/exchange-protocols.md §A9 (docs.upbit.com KRW market info and change notices).
_UPBIT_TABLES: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    # original table, until 2024-01-28
    ("1970-01-01", (("2000000", "1000"), ("1000000", "500"), ("500000", "100"), ("100000", "50"),
                    ("10000", "10"), ("1000", "5"), ("100", "1"), ("10", "0.1"), ("1", "0.01"),
                    ("0.1", "0.001"), ("0", "0.0001"))),
    # 2024-01-29 .. 2025-07-30: finer ticks below 10,000 KRW
    ("2024-01-29", (("2000000", "1000"), ("1000000", "500"), ("500000", "100"), ("100000", "50"),
                    ("10000", "10"), ("1000", "1"), ("100", "0.1"), ("10", "0.01"), ("1", "0.001"),
                    ("0.1", "0.0001"), ("0.01", "0.00001"), ("0.001", "0.000001"), ("0.0001", "0.0000001"),
                    ("0", "0.00000001"))),
    # from 2025-07-31
    ("2025-07-31", (("1000000", "1000"), ("500000", "500"), ("100000", "100"), ("50000", "50"),
                    ("10000", "10"), ("5000", "5"), ("100", "1"), ("10", "0.1"), ("1", "0.01"),
                    ("0.1", "0.001"), ("0.01", "0.0001"), ("0.001", "0.00001"), ("0.0001", "0.000001"),
                    ("0.00001", "0.0000001"), ("0", "0.00000001"))),
)
_MAX_BANDS = max(len(t[1]) for t in _UPBIT_TABLES)


def _date_ns(day: str) -> int:
    y, m, d = (int(x) for x in day.split("-"))
    return int(np.datetime64(f"{y:04d}-{m:02d}-{d:02d}T00:00:00", "ns").astype(np.int64))


# Change times are taken as 00:00 UTC of the announced day (the notices give KST dates, hours not stated).
UPBIT_TABLE_START_NS = np.array([_date_ns(t[0]) for t in _UPBIT_TABLES], dtype=np.int64)
UPBIT_BAND_LOWER = np.full((len(_UPBIT_TABLES), _MAX_BANDS), -1, dtype=np.int64)
UPBIT_BAND_TICK = np.full((len(_UPBIT_TABLES), _MAX_BANDS), 1, dtype=np.int64)
for _i, (_, _bands) in enumerate(_UPBIT_TABLES):
    for _j, (_lo, _tick) in enumerate(_bands):
        UPBIT_BAND_LOWER[_i, _j] = _units(_lo)
        UPBIT_BAND_TICK[_i, _j] = _units(_tick)

UPBIT_MIN_ORDER_KRW = 5000
UPBIT_MAX_ORDER_KRW = 1_000_000_000
UPBIT_QTY_STEP_UNITS = 1  # 8 decimals


@njit(cache=True)
def upbit_krw_tick_units(price_units: int, ts_ns: int) -> int:
    """Upbit KRW-market tick (1e-8 units) for a price (1e-8 units) at a time."""
    version = 0
    for i in range(UPBIT_TABLE_START_NS.shape[0]):
        if ts_ns >= UPBIT_TABLE_START_NS[i]:
            version = i
    for j in range(UPBIT_BAND_LOWER.shape[1]):
        lower = UPBIT_BAND_LOWER[version, j]
        if lower >= 0 and price_units >= lower:
            return UPBIT_BAND_TICK[version, j]
    return 1


@njit(cache=True)
def price_to_grid(price: float, tick_units: int, side: int) -> int:
    """Round a model price onto the tick grid, against us: buys round up, sells round down."""
    raw = price * SCALE / tick_units
    ticks = np.ceil(raw - 1e-9) if side > 0 else np.floor(raw + 1e-9)
    return int(ticks) * tick_units


@njit(cache=True)
def floor_to_step(qty_units: int, step_units: int) -> int:
    return (qty_units // step_units) * step_units


# ---- exact Decimal grids: what the engine uses to put a price or quantity on a venue's grid before it sends.
# Adapters never round (an off-grid price or quantity is refused, RejectReason.INVALID): the order that leaves is
# the one the engine decided. Each venue's rules object (binance.rules.SymbolRules, upbit.rules.MarketRules)
# offers round_price / floor_qty on top of these.
Toward = Literal["aggressive", "passive"]
_ONE = Decimal(1)


def rounds_up(side: Side, toward: Toward) -> bool:
    """Whether a price moves up: aggressive = towards the other side (a buy pays more, a sell asks less)."""
    if toward not in ("aggressive", "passive"):
        raise ValueError(f"toward must be 'aggressive' or 'passive', not {toward!r}")
    return (side == Side.BUY) == (toward == "aggressive")


def to_grid(value: Decimal, grid: Decimal, up: bool) -> Decimal:
    """``value`` on the multiples of ``grid`` (0 = no grid), exactly, written with the grid's decimals."""
    if not grid:
        return value
    g = grid.normalize()
    steps = (value / g).to_integral_value(rounding=ROUND_CEILING if up else ROUND_FLOOR)
    exp = g.as_tuple().exponent
    return (steps * g).quantize(g if isinstance(exp, int) and exp < 0 else _ONE)  # never "1.59509E+8"


def on_grid(value: Decimal, grid: Decimal) -> bool:
    """True if ``value`` is a multiple of ``grid`` (0 = no grid), in exact Decimal arithmetic."""
    return not grid or value % grid == 0


@dataclass(frozen=True, slots=True)
class InstrumentRules:
    """Order rules of one instrument on one venue (prices/quantities in 1e-8 units).

    ``tick_units == 0`` means "Upbit KRW table" (the tick depends on price and date).
    """

    venue: Venue
    tick_units: int
    step_units: int
    min_notional: Decimal  # in the quote currency
    max_notional: Decimal | None = None

    def tick_at(self, price_units: int, ts_ns: int) -> int:
        if self.tick_units == 0:
            return int(upbit_krw_tick_units(price_units, ts_ns))
        return self.tick_units

    def check_order(self, price_units: int, qty_units: int, ts_ns: int) -> str | None:
        """Return why the venue would reject this order, or ``None`` if it passes."""
        if qty_units <= 0:
            return "quantity must be positive"
        if price_units <= 0:
            return "price must be positive"
        if qty_units % self.step_units:
            return f"quantity {Decimal(qty_units) / SCALE_DEC} is off the lot step"
        if price_units % self.tick_at(price_units, ts_ns):
            return f"price {Decimal(price_units) / SCALE_DEC} is off the tick grid"
        notional = Decimal(price_units) * Decimal(qty_units) / (SCALE_DEC * SCALE_DEC)
        if notional < self.min_notional:
            return f"notional {notional} is below the minimum {self.min_notional}"
        if self.max_notional is not None and notional > self.max_notional:
            return f"notional {notional} is above the maximum {self.max_notional}"
        return None


def upbit_krw_rules() -> InstrumentRules:
    return InstrumentRules(Venue.UPBIT, 0, UPBIT_QTY_STEP_UNITS, Decimal(UPBIT_MIN_ORDER_KRW),
                           Decimal(UPBIT_MAX_ORDER_KRW))


def binance_rules(tick: str, step: str, min_notional: str) -> InstrumentRules:
    return InstrumentRules(Venue.BINANCE, _units(tick), _units(step), Decimal(min_notional))
