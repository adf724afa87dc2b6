"""Plausibility ranges for imported market data, in one place: the importer drops what falls outside
them (counted per reason) and the same ``violations`` check is the store's invariant (the fuzz test
re-reads the store and asserts it finds none).

Pure: no clock. The upper time bound is ``now_ns + FUTURE_SLACK_NS``, with ``now_ns`` passed in.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

NS_PER_S = 1_000_000_000
INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)

# Times (ts, ts_local; -1 = unknown). No Upbit/Binance data exists before 2010 (Binance opened 2017, Upbit
# 2017); a 1970 or 20xx-in-1970 time is a unit mix-up (s read as ms, ms as ns) or a zeroed field.
MIN_TIME_NS = 1_262_304_000 * NS_PER_S  # 2010-01-01T00:00:00Z
# Up to one day ahead of the caller's clock: covers clock skew and a mislabelled time zone (KST is UTC+9),
# while a year-9999 date or an ms value read as s lands far beyond it.
FUTURE_SLACK_NS = 86_400 * NS_PER_S
UNKNOWN_TIME = -1
# What a parser stores for a time it cannot represent (int64 ns overflow, a year outside 1..9999): the
# range check rejects it as bad_time instead of letting it wrap.
OUT_OF_RANGE_TIME = -2

# Prices, in quote-currency units. Lower bound: below any tick size on either venue (1 satoshi is 1e-8 BTC).
MIN_PRICE = 1e-12
# Upper bound per quote currency: BTC, the dearest coin, trades near 1.5e8 KRW / 1e5 USDT; 1e11 KRW and
# 1e8 USDT leave a thousandfold margin yet refuse 1e308 and int64-overflow artefacts.
MAX_PRICE: dict[str, float] = {
    "KRW": 1e11, "USDT": 1e8, "USDC": 1e8, "FDUSD": 1e8, "BUSD": 1e8, "USD": 1e8, "BTC": 1e4, "ETH": 1e5,
}
DEFAULT_MAX_PRICE = 1e8  # an unlisted quote is taken as a dollar-like one
# KRW per USD (fx series, and the KRW price of USD stablecoins): the record high is ~1,960 (1997) and the
# rate has never been near 500; outside [500, 5000] is an inverted rate (USD per KRW), a scaled value or junk.
FX_MIN, FX_MAX = 500.0, 5000.0
FX_BASES = frozenset({"USD", "USDT", "USDC"})

# Sizes, in base-currency units (bar volume, book/depth/trade quantity): finite, >= 0 and below the total
# supply of the most plentiful listed coin (SHIB, ~5.9e14 units).
MAX_QTY = 1e15
# 24 h KRW turnover of one market: Upbit's whole-exchange record day is ~3e13 KRW.
MAX_VOLUME_KRW = 1e16
# Book levels per side: Binance's REST depth goes to 5,000; the store keeps the level in an int16.
MAX_BOOK_LEVEL = 5000

_PRICE_COLS: dict[str, tuple[str, ...]] = {
    "bars_1m": ("open", "high", "low", "close"), "last": ("price",), "fx": ("rate",), "book": ("price",),
    "depth_diff": ("price",), "trades": ("price",), "bbo": ("bid", "ask"),
}
# (column, zero allowed): bar volume 0 = no trades that minute; depth qty 0 = delete the level.
_QTY_COLS: dict[str, tuple[tuple[str, bool], ...]] = {
    "bars_1m": (("volume", True),), "last": (), "fx": (), "book": (("qty", False),),
    "depth_diff": (("qty", True),), "trades": (("qty", False),), "bbo": (("bid_qty", False), ("ask_qty", False)),
}
_ID_COLS = ("trade_id", "update_id", "first_update_id", "last_update_id", "snapshot")

# Reason -> what it means; checked in this order, a row counts under the first reason that catches it.
REASONS: dict[str, str] = {
    "bad_time": "time before 2010-01-01, after now + 1 day, or neither ts nor ts_local known",
    "bad_field": "id negative, side/level/aggressor out of their sets",
    "bad_price": "price NaN, infinite, zero or negative",
    "price_out_of_range": "price below MIN_PRICE or above the quote currency's MAX_PRICE",
    "fx_out_of_range": "KRW per USD/USDT outside [FX_MIN, FX_MAX]",
    "negative_qty": "size below zero",
    "bad_qty": "size NaN, or zero where a positive one is required",
    "qty_out_of_range": "size infinite or above MAX_QTY (MAX_VOLUME_KRW for 24 h KRW volume)",
}


def quote_of(symbol: str) -> str:
    return symbol.rpartition("-")[2]


def is_fx_symbol(kind: str, symbol: str) -> bool:
    """FX rates: the fx series, and any KRW price of a USD coin (Upbit's USDT-KRW is the live rate)."""
    base, _, quote = symbol.partition("-")
    return kind == "fx" or (quote == "KRW" and base in FX_BASES)


def _col(t: pa.Table, name: str) -> np.ndarray[Any, Any]:
    return np.asarray(t[name].to_numpy(zero_copy_only=False))


def _time_bad(t: pa.Table, now_ns: int) -> np.ndarray[Any, Any]:
    hi = now_ns + FUTURE_SLACK_NS
    known = np.zeros(t.num_rows, dtype=bool)
    bad = np.zeros(t.num_rows, dtype=bool)
    for c in ("ts", "ts_local"):
        x = _col(t, c)
        unknown = x == UNKNOWN_TIME
        bad |= ~unknown & ((x < MIN_TIME_NS) | (x > hi))
        known |= ~unknown
    out: np.ndarray[Any, Any] = bad | ~known
    return out


def _field_bad(t: pa.Table) -> np.ndarray[Any, Any]:
    bad = np.zeros(t.num_rows, dtype=bool)
    names = set(t.column_names)
    for c in _ID_COLS:
        if c in names:
            bad |= _col(t, c) < 0
    if "side" in names:
        bad |= ~np.isin(_col(t, "side"), (0, 1))
    if "level" in names:
        lv = _col(t, "level")
        bad |= (lv < 0) | (lv >= MAX_BOOK_LEVEL)
    if "aggressor" in names:
        bad |= ~np.isin(_col(t, "aggressor"), (-1, 1))
    return bad


def violations(kind: str, symbol: str, t: pa.Table, now_ns: int) -> dict[str, np.ndarray[Any, Any]]:
    """Reason -> mask of the rows it rejects (each row flagged under its first reason only)."""
    n = t.num_rows
    masks: dict[str, np.ndarray[Any, Any]] = {r: np.zeros(n, dtype=bool) for r in REASONS}
    masks["bad_time"] = _time_bad(t, now_ns)
    masks["bad_field"] = _field_bad(t)
    fx = is_fx_symbol(kind, symbol)
    hi = MAX_PRICE.get(quote_of(symbol), DEFAULT_MAX_PRICE)
    with np.errstate(invalid="ignore"):
        for c in _PRICE_COLS[kind]:
            p = _col(t, c).astype(np.float64)
            masks["bad_price"] |= ~(np.isfinite(p) & (p > 0))
            if fx:
                masks["fx_out_of_range"] |= (p < FX_MIN) | (p > FX_MAX)
            else:
                masks["price_out_of_range"] |= (p < MIN_PRICE) | (p > hi)
        for c, zero_ok in _QTY_COLS[kind]:
            q = _col(t, c).astype(np.float64)
            masks["negative_qty"] |= q < 0
            masks["bad_qty"] |= np.isnan(q) | ((q == 0) & (not zero_ok))
            masks["qty_out_of_range"] |= q > MAX_QTY  # inf included
        if kind == "last":  # 24 h KRW volume: optional, NaN = not given by the source
            v = _col(t, "volume24h_krw").astype(np.float64)
            masks["negative_qty"] |= v < 0
            masks["qty_out_of_range"] |= v > MAX_VOLUME_KRW
    seen = np.zeros(n, dtype=bool)
    for r in REASONS:
        masks[r] = masks[r] & ~seen
        seen |= masks[r]
    return masks


def count_violations(kind: str, symbol: str, t: pa.Table, now_ns: int) -> dict[str, int]:
    """Reason -> rows outside the ranges (only reasons with rows): the store invariant is ``{}``."""
    return {r: int(m.sum()) for r, m in violations(kind, symbol, t, now_ns).items() if m.any()}
