"""What a live leg becomes at the venue: an IOC limit order at a protective price, within hard notional caps.

The kernel decides a leg as a side and an exact quantity taken at the market (the backtest fills it by walking
the book). Live, the same leg leaves as a limit IOC: it takes what the book offers up to a price no worse than
the best opposite price by ``slippage_bps`` (rounded onto the venue's grid away from the book, so the cap is
never tighter than asked), and the rest expires. A market order would have no bound at all, and an Upbit
market buy is by KRW amount, which would not give the exact quantity the hedge needs.

Caps are the last line against a wrong size: every order's notional and the day's total are checked here,
in the quote currency converted to KRW, before anything is sent. The config may lower them; raising one past
``HARD_*`` needs the explicit override the CLI asks for separately.

Pure and exact (integer 1e-8 units and Decimal); time is passed in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from .domain import Side
from .rules import SCALE, SCALE_DEC, InstrumentRules

HARD_ORDER_KRW = Decimal(5_000_000)  # no single live order above this without the override flag
HARD_DAILY_KRW = Decimal(100_000_000)  # no day's live notional above this without the override flag
DAY_NS = 86_400 * 1_000_000_000


def protective_price_units(best_units: int, side: Side, slippage_bps: Decimal, rules: InstrumentRules,
                           ts_ns: int) -> int:
    """The limit of an IOC leg: the best opposite price moved ``slippage_bps`` against us, on the venue's grid
    (a buy rounds up, a sell rounds down: the order may take exactly the band, never less)."""
    if best_units <= 0:
        raise ValueError("no opposite price to protect against")
    factor = 1 + slippage_bps / 10_000 if side is Side.BUY else 1 - slippage_bps / 10_000
    raw = Decimal(best_units) * factor
    tick = rules.tick_at(int(raw), ts_ns)
    ticks = (raw / tick).to_integral_value(ROUND_CEILING if side is Side.BUY else ROUND_FLOOR)
    price = int(ticks) * tick
    tick_at_price = rules.tick_at(price, ts_ns)  # a band edge crossed by the rounding: snap to that band's grid
    if price % tick_at_price:
        mode = ROUND_CEILING if side is Side.BUY else ROUND_FLOOR
        price = int((Decimal(price) / tick_at_price).to_integral_value(mode)) * tick_at_price
    return max(price, tick_at_price)


def units(x: Decimal) -> int:
    """A Decimal price or quantity as exact 1e-8 units (refuses finer values: they would be off any grid)."""
    v = x * SCALE
    if v != v.to_integral_value():
        raise ValueError(f"{x} is finer than 1e-8")
    return int(v)


def dec(units_: int) -> Decimal:
    return Decimal(units_) / SCALE_DEC


@dataclass(frozen=True, slots=True)
class OrderCaps:
    """Per-order and per-day notional caps in KRW (a USDT leg is converted at the live USDT/KRW rate)."""

    order_krw: Decimal = Decimal(2_000_000)
    daily_krw: Decimal = Decimal(50_000_000)
    override: bool = False  # set only by the CLI's explicit second flag

    def __post_init__(self) -> None:
        if not self.override and (self.order_krw > HARD_ORDER_KRW or self.daily_krw > HARD_DAILY_KRW):
            raise ValueError(f"live caps above the hard ceilings ({HARD_ORDER_KRW} KRW per order, {HARD_DAILY_KRW} "
                             "KRW per day) need the explicit override flag")


@dataclass
class CapBook:
    """The notional sent today (UTC day of the local clock) against the caps; refuses before sending."""

    caps: OrderCaps
    day: int = -1
    sent_krw: Decimal = Decimal(0)
    refused: dict[str, int] = field(default_factory=dict)
    overridden: dict[str, int] = field(default_factory=dict)  # caps a reducing order was let past

    def check(self, notional_krw: Decimal, now_ns: int, reducing: bool = False) -> str | None:
        """None if the order may leave (and it is booked against the day), else why not (counted).

        ``reducing``: a close or an unwind of a position the caps already let open. It always leaves: a cap
        that refused it would leave the position open with nobody to close it (a kill switch at the daily cap
        could not flatten). It is booked against the day, and a cap it passed over is counted in ``overridden``.
        """
        day = now_ns // DAY_NS
        if day != self.day:
            self.day, self.sent_krw = day, Decimal(0)
        why = None
        if notional_krw > self.caps.order_krw:
            why = "order_cap"
        elif self.sent_krw + notional_krw > self.caps.daily_krw:
            why = "daily_cap"
        if why is not None and not reducing:
            self.refused[why] = self.refused.get(why, 0) + 1
            return why
        if why is not None:
            self.overridden[why] = self.overridden.get(why, 0) + 1
        self.sent_krw += notional_krw
        return None
