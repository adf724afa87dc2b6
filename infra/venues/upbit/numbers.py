"""Checked conversions of Upbit payload values: Decimal prices/quantities and epoch-ms timestamps.

Upbit sends JSON numbers on the wire; ccxt's recorder stores them as strings: both are accepted. Floats are
parsed by ``json.loads(parse_float=Decimal)`` so a price never passes through a binary float. Every bad value
raises :class:`Bad` (reason, detail), which the parsers turn into a ``Rejected``: it never leaves the module.
"""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from typing import Any

VENUE = "upbit"
_NAN = Decimal("NaN")
MIN_MS = 946_684_800_000  # 2000-01-01: anything earlier is not an Upbit timestamp
MAX_MS = 4_102_444_800_000  # 2100-01-01
MAX_VALUE = Decimal("1e15")  # above any KRW price or quantity Upbit quotes


class Bad(Exception):
    """A value the parser refuses; carries the Rejected reason. Internal to the upbit package."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _constant(_name: str) -> Decimal:
    return _NAN  # NaN / Infinity / -Infinity literals: rejected as "nan" where the value is used


def loads(raw: bytes | str) -> Any:
    """JSON with floats as Decimal and NaN/Infinity flagged; bad JSON or bad UTF-8 -> Bad('bad_json')."""
    try:
        return json.loads(raw, parse_float=Decimal, parse_constant=_constant)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise Bad("bad_json", f"{type(exc).__name__}: {str(exc)[:80]}") from None


def dec(obj: Any, key: str, *, positive: bool = False, optional: bool = False) -> Decimal:
    """obj[key] as a finite Decimal >= 0 (> 0 with ``positive``)."""
    if not isinstance(obj, dict):
        raise Bad("bad_field", f"expected an object holding {key}, got {type(obj).__name__}")
    v = obj.get(key)
    if v is None:
        if optional:
            return Decimal(0)
        raise Bad("bad_field", f"missing {key}")
    return to_dec(v, key, positive=positive)


def to_dec(v: Any, key: str, *, positive: bool = False) -> Decimal:
    if isinstance(v, Decimal):
        d = v
    elif isinstance(v, int) and not isinstance(v, bool):
        d = Decimal(v)
    elif isinstance(v, str) and 0 < len(v) <= 40:
        try:
            d = Decimal(v)
        except InvalidOperation:
            raise Bad("bad_field", f"{key} is not a number: {v[:20]!r}") from None
    else:
        raise Bad("bad_field", f"{key} has type {type(v).__name__}")
    if not d.is_finite():
        raise Bad("nan", f"{key} is {d}")
    if d < 0 or (positive and d == 0) or d > MAX_VALUE:
        raise Bad("bad_field", f"{key} out of range: {d}")
    return d


def ms_to_ns(obj: Any, key: str) -> int:
    """obj[key], epoch milliseconds (int or digit string), as int ns; implausible dates refused."""
    v = obj.get(key) if isinstance(obj, dict) else None
    if isinstance(v, str) and v.isdigit() and len(v) <= 16:
        v = int(v)
    if not isinstance(v, int) or isinstance(v, bool):
        raise Bad("bad_field", f"{key} is not an integer timestamp")
    if not MIN_MS <= v <= MAX_MS:
        raise Bad("bad_field", f"{key} out of range: {v}")
    return v * 1_000_000


def text(obj: Any, key: str, *, max_len: int = 64, optional: bool = False) -> str:
    v = obj.get(key) if isinstance(obj, dict) else None
    if v is None and optional:
        return ""
    if not isinstance(v, str) or not 0 < len(v) <= max_len:
        raise Bad("bad_field", f"{key} is not a short string")
    return v


def ident(obj: Any, key: str) -> str:
    """An id that may come as a number (wire) or a string (ccxt recording)."""
    v = obj.get(key) if isinstance(obj, dict) else None
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    if isinstance(v, str) and 0 < len(v) <= 64:
        return v
    raise Bad("bad_field", f"{key} is not an id")


def plain(d: Decimal) -> str:
    """A Decimal as Upbit expects it in a request: no exponent, no trailing zeros."""
    s = format(d, "f")
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return s or "0"
