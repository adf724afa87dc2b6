"""Overflow-checked parsing of the numbers and times in source files: nothing wraps around int64, nothing
loose (``1_000``, non-ASCII digits, ``true`` as a price, a 2-char string as a book level) gets through.

A time that cannot be represented becomes ``OUT_OF_RANGE_TIME``, which validation rejects as ``bad_time``.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from arbitrage_lite.infra.data.plausible import INT64_MAX, INT64_MIN, OUT_OF_RANGE_TIME

NS_PER_MS = 1_000_000

# ASCII only: Python's float()/int() also take "1_000" and non-ASCII digits, which no source writes.
_FLOAT_RE = re.compile(r"[+-]?(([0-9]+\.?[0-9]*)|(\.[0-9]+))([eE][+-]?[0-9]+)?|[+-]?([Nn]a[Nn]|[Ii]nf(inity)?)")
_INT_RE = re.compile(r"[+-]?[0-9]{1,19}")


def strict_number(text: str | None, floating: bool) -> float | int | None:
    """One cell by hand: ASCII number syntax only, integers within int64; None if not a number."""
    if text is None:
        return None
    if floating:
        return float(text) if _FLOAT_RE.fullmatch(text) else None
    if not _INT_RE.fullmatch(text):
        return None
    v = int(text)
    return v if INT64_MIN <= v <= INT64_MAX else None


def scale_time(x: np.ndarray[Any, Any], factor: int) -> np.ndarray[Any, Any]:
    """``x * factor`` checked before multiplying: values that would leave int64 (or are negative, i.e. before
    1970) become OUT_OF_RANGE_TIME instead of wrapping around."""
    x = np.asarray(x, dtype=np.int64)
    ok = (x >= 0) & (x <= INT64_MAX // factor)
    return np.where(ok, x * np.where(ok, factor, 0), OUT_OF_RANGE_TIME).astype(np.int64)


def checked_int(x: Any, lo: int = 0, hi: int = INT64_MAX) -> int:
    """A JSON integer field (number or digit string, as recorders write both) within [lo, hi]."""
    if isinstance(x, bool) or not isinstance(x, int | str | float):
        raise ValueError(f"not an integer: {x!r:.40}")
    if isinstance(x, float):
        if not x.is_integer():
            raise ValueError(f"not an integer: {x!r}")
        v = int(x)
    elif isinstance(x, str):
        if not _INT_RE.fullmatch(x):
            raise ValueError(f"not an integer: {x!r:.40}")
        v = int(x)
    else:
        v = x
    if not lo <= v <= hi:
        raise ValueError(f"integer out of range: {v!r:.40}")
    return v


def checked_ms(x: Any) -> int:
    """A JSON ms time -> ns, overflow-checked (an out-of-range time becomes OUT_OF_RANGE_TIME)."""
    v = checked_int(x, INT64_MIN, INT64_MAX)
    return v * NS_PER_MS if 0 <= v <= INT64_MAX // NS_PER_MS else OUT_OF_RANGE_TIME


def checked_float(x: Any) -> float:
    """A JSON price/size (number or decimal string); booleans and other types are malformed."""
    if isinstance(x, bool) or not isinstance(x, int | float | str):
        raise ValueError(f"not a number: {x!r:.40}")
    if isinstance(x, str) and not _FLOAT_RE.fullmatch(x):
        raise ValueError(f"not a number: {x!r:.40}")
    return float(x)


def levels(side: Any) -> list[tuple[float, float]]:
    """A book side ``[[px, qty], ...]``: each level exactly two numbers (a 2-char string is not a level)."""
    if not isinstance(side, list):
        raise ValueError(f"book side is not a list: {side!r:.40}")
    out = []
    for lvl in side:
        if not isinstance(lvl, list) or len(lvl) != 2:
            raise ValueError(f"book level is not [price, qty]: {lvl!r:.40}")
        out.append((checked_float(lvl[0]), checked_float(lvl[1])))
    return out


def checked_ns(text: str) -> int:
    """An ns time written as an integer; out of int64 -> OUT_OF_RANGE_TIME (rejected as bad_time)."""
    if not re.fullmatch(r"[+-]?[0-9]{1,30}", text):
        raise ValueError(f"not an integer time: {text[:40]!r}")
    v = int(text)
    return v if 0 <= v <= INT64_MAX else OUT_OF_RANGE_TIME
