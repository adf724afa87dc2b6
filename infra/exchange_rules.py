"""Instrument rules per route from recorded exchange metadata (a live ``exchangeInfo`` replaces these)."""

from __future__ import annotations

from ..core.rules import InstrumentRules, binance_rules
from .binance_filters_2021 import BINANCE_USDT_FILTERS_2021

# Current values for the majors (Binance moved most symbols to NOTIONAL min 5 USDT).
_CURRENT = {"BTC": ("0.01", "0.00001", "5"), "ETH": ("0.01", "0.0001", "5")}
_FALLBACK = ("0.00000001", "0.00000001", "5")


def binance_usdt_rules(base: str) -> tuple[InstrumentRules, str]:
    """Rules for ``<base>USDT`` and where they came from (``current``, ``exchangeInfo 2021-10-12``, ``fallback``)."""
    if base in _CURRENT:
        return binance_rules(*_CURRENT[base]), "current"
    if base in BINANCE_USDT_FILTERS_2021:
        tick, step, min_notional = BINANCE_USDT_FILTERS_2021[base]
        return binance_rules(tick, step, min_notional), "exchangeInfo 2021-10-12"
    return binance_rules(*_FALLBACK), "fallback (finest grid, 5 USDT minimum)"
