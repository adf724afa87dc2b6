"""Number and value formatting for the HTML report (exact for Decimal strings, deterministic)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from html import escape

from .ticks import utc

_NS_LIKE = 10**17  # ints above this are taken as epoch nanoseconds (after 1973)


def to_decimal(v: object) -> Decimal | None:
    """Exact Decimal for int / float / numeric str / Decimal; None for anything else (or NaN/inf)."""
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, Decimal):
        d = v
    elif isinstance(v, int):
        d = Decimal(v)
    elif isinstance(v, float):
        if not math.isfinite(v):
            return None
        d = Decimal(repr(v))
    elif isinstance(v, str):
        try:
            d = Decimal(v.strip().replace(",", "").replace("_", ""))
        except InvalidOperation:
            return None
    else:
        try:  # numpy scalars
            d = Decimal(str(v.item())) if hasattr(v, "item") else Decimal(str(v))
        except (InvalidOperation, ValueError, TypeError):
            return None
    return d if d.is_finite() else None


def sign_class(v: object) -> str:
    """CSS class for a signed figure: ``neg`` / ``pos`` / ``""``."""
    d = to_decimal(v)
    if d is None or d == 0:
        return ""
    return "neg" if d < 0 else "pos"


def krw(v: object) -> str:
    """KRW without decimals, thousands separators, half-up rounding: ``-1,234,568``; ``—`` if missing."""
    d = to_decimal(v)
    if d is None:
        return "—" if v is None else escape(str(v))
    q = d.quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return "0" if q == 0 else f"{q:,f}"


def number(v: object) -> str:
    """Generic number with thousands separators, keeping the given (exact) decimals."""
    d = to_decimal(v)
    if d is None:
        return "—" if v is None else str(v)
    if d == d.to_integral_value() and abs(d) < Decimal(10) ** 30:
        return f"{d.quantize(Decimal(1)):,f}"
    return f"{d.normalize():,f}" if abs(d) >= 1 else f"{d:f}"


def count(v: object) -> str:
    """Integer count with thousands separators."""
    d = to_decimal(v)
    return "—" if d is None else f"{d.quantize(Decimal(1), rounding=ROUND_HALF_UP):,f}"


def pct(fraction: Decimal | None, digits: int = 1) -> str:
    """``0.5617`` -> ``56.2 %``."""
    if fraction is None:
        return "—"
    return f"{(fraction * 100).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP):f} %"


def win_fraction(figures: Mapping[str, object]) -> Decimal | None:
    """Win rate as a fraction: wins / trades when both present, else ``win_rate`` (<= 1 fraction, else %)."""
    wins, trades = to_decimal(figures.get("wins")), to_decimal(figures.get("trades"))
    if wins is not None and trades is not None and trades > 0:
        return wins / trades
    wr = to_decimal(figures.get("win_rate"))
    if wr is None or (trades is not None and trades == 0):
        return None
    return wr if abs(wr) <= 1 else wr / 100


def when(v: object) -> str:
    """A date-ish value: epoch ns ints become UTC timestamps, anything else is shown as given."""
    if isinstance(v, int) and not isinstance(v, bool) and v > _NS_LIKE:
        return utc(v) + " UTC"
    return "—" if v is None else str(v)


def value(v: object) -> str:
    """Any summary / assumption value as plain text (numbers with separators, containers flattened)."""
    if isinstance(v, Mapping):
        return ", ".join(f"{k}={value(x)}" for k, x in v.items())
    if isinstance(v, list | tuple | set | frozenset):
        items = sorted(v, key=str) if isinstance(v, set | frozenset) else list(v)
        return ", ".join(value(x) for x in items)
    if isinstance(v, bool) or v is None:
        return str(v).lower() if v is not None else "—"
    if isinstance(v, str) and to_decimal(v) is None:
        return v
    return number(v)
