"""Domain value types: venues, currencies, sides and instruments.

Small integer codes (``Venue.UPBIT == 0``) are used so the compiled replay kernel and Python code share
one vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class Venue(IntEnum):
    UPBIT = 0
    BINANCE = 1

    @property
    def label(self) -> str:
        return self.name.lower()

    @property
    def quote(self) -> Currency:
        return Currency.KRW if self is Venue.UPBIT else Currency.USDT

    @classmethod
    def parse(cls, text: str) -> Venue:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise ValueError(f"unknown venue {text!r}; expected one of: upbit, binance") from None


class Currency(IntEnum):
    KRW = 0
    USDT = 1
    USD = 2
    COIN = 3  # the route's base asset


class Side(IntEnum):
    BUY = 1
    SELL = -1


@dataclass(frozen=True, slots=True)
class Route:
    """A cross-venue route for one base asset: Upbit ``<BASE>-KRW`` against Binance ``<BASE>-USDT``."""

    base: str

    def __post_init__(self) -> None:
        if not self.base or not self.base.isalnum() or self.base.upper() != self.base:
            raise ValueError(f"route base must be an upper-case alphanumeric asset code, got {self.base!r}")

    @property
    def upbit_symbol(self) -> str:
        return f"{self.base}-KRW"

    @property
    def binance_symbol(self) -> str:
        return f"{self.base}-USDT"

    def symbol(self, venue: Venue) -> str:
        return self.upbit_symbol if venue is Venue.UPBIT else self.binance_symbol
