"""Axis ticks and number formatting for the SVG charts (pure functions, deterministic)."""

from __future__ import annotations

import math
from datetime import UTC, datetime

NS = 1_000_000_000
_DAY = 86_400
# Candidate time steps in seconds (below one month); months are handled on the calendar.
_TIME_STEPS = (
    1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200,
    _DAY, 2 * _DAY, 3 * _DAY, 5 * _DAY, 7 * _DAY, 14 * _DAY,
)
_MONTH_STEPS = (1, 2, 3, 6, 12, 24, 60)
_MONDAY_OFFSET = 4 * _DAY  # 1970-01-05 was a Monday: weekly ticks fall on Mondays


def fnum(v: float, digits: int = 1) -> str:
    """Fixed-precision float for SVG coordinates, never ``-0.0``."""
    s = f"{v:.{digits}f}"
    return s[1:] if s.startswith("-") and float(s) == 0.0 else s


def nice_step(raw: float) -> float:
    """Smallest 1/2/2.5/5 x 10^k step that is >= ``raw``."""
    if not math.isfinite(raw) or raw <= 0:
        return 1.0
    mag = 10.0 ** math.floor(math.log10(raw))
    for m in (1.0, 2.0, 2.5, 5.0, 10.0):
        if m * mag >= raw * (1 - 1e-12):
            return m * mag
    return 10.0 * mag


def linear_ticks(lo: float, hi: float, target: int = 5) -> tuple[list[float], float]:
    """About ``target`` round tick values within [lo, hi], and the step."""
    base = nice_step((hi - lo) / max(target - 1, 1))
    best: tuple[int, float, float] | None = None
    for f in (0.1, 0.2, 0.25, 0.4, 0.5, 1.0):
        step = base * f if f < 1.0 else base
        step = nice_step(step)
        count = math.floor(hi / step + 1e-9) - math.ceil(lo / step - 1e-9) + 1
        score = (abs(count - target), -step, step)
        if best is None or score[:2] < best[:2]:
            best = (score[0], score[1], step)
    step = best[2] if best else base
    k0, k1 = math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9)
    return [round(k * step, 12) for k in range(k0, k1 + 1)], step


def _decimals(step: float) -> int:
    for d in range(0, 10):
        scaled = step * 10**d
        if abs(scaled - round(scaled)) < 1e-6 * max(1.0, scaled):
            return d
    return 10


def tick_formatter(lo: float, hi: float, step: float) -> tuple[float, str]:
    """(scale, suffix) for compact labels: k / M / B."""
    big = max(abs(lo), abs(hi))
    for threshold, scale, suffix in ((1e9, 1e9, "B"), (1e6, 1e6, "M"), (1e4, 1e3, "k")):
        if big >= threshold and step >= scale / 100:
            return scale, suffix
    return 1.0, ""


def format_tick(v: float, step: float, scale: float = 1.0, suffix: str = "") -> str:
    """Tick label with thousands separators and just enough decimals for ``step``."""
    d = _decimals(step / scale)
    s = f"{v / scale:,.{d}f}"
    if s.lstrip("-").strip("0.,") == "":
        return "0"
    return s + suffix


def utc(ns: int, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    """Format UTC epoch nanoseconds."""
    return datetime.fromtimestamp(ns // NS, tz=UTC).strftime(fmt)


def time_ticks(lo_ns: int, hi_ns: int, target: int = 5) -> list[tuple[int, str]]:
    """About ``target`` calendar-aligned UTC ticks within [lo_ns, hi_ns] with labels."""
    span_s = max((hi_ns - lo_ns) / NS, 1.0)
    best: tuple[int, list[tuple[int, str]]] | None = None
    candidates = [(s, 0) for s in _TIME_STEPS] + [(0, m) for m in _MONTH_STEPS]
    for step, months in reversed(candidates):  # larger steps first: ties keep the sparser axis
        approx = span_s / (step or months * 30.44 * _DAY)
        if approx > 3 * target:
            break
        ticks = _month_ticks(lo_ns, hi_ns, months) if months else _second_ticks(lo_ns, hi_ns, step, span_s)
        if best is None or abs(len(ticks) - target) < best[0]:
            best = (abs(len(ticks) - target), ticks)
    return best[1] if best else []


def _second_ticks(lo_ns: int, hi_ns: int, step: int, span_s: float) -> list[tuple[int, str]]:
    offset = _MONDAY_OFFSET if step >= 7 * _DAY else 0
    first = math.ceil((lo_ns / NS - offset) / step) * step + offset
    if step >= _DAY:
        fmt = "%Y-%m-%d"
    elif span_s > _DAY or utc(lo_ns, "%d") != utc(hi_ns, "%d"):
        fmt = "%m-%d %H:%M"
    else:
        fmt = "%H:%M:%S" if step < 60 else "%H:%M"
    out: list[tuple[int, str]] = []
    t = first
    while t * NS <= hi_ns:
        out.append((t * NS, utc(t * NS, fmt)))
        t += step
    return out


def _month_ticks(lo_ns: int, hi_ns: int, months: int) -> list[tuple[int, str]]:
    start = datetime.fromtimestamp(lo_ns // NS, tz=UTC)
    idx = start.year * 12 + start.month - 1
    if start.day != 1 or start.hour or start.minute or start.second:
        idx += 1
    idx = -(-idx // months) * months
    fmt = "%Y" if months >= 12 else "%Y-%m"
    out: list[tuple[int, str]] = []
    while True:
        dt = datetime(idx // 12, idx % 12 + 1, 1, tzinfo=UTC)
        ns = int(dt.timestamp()) * NS
        if ns > hi_ns:
            return out
        out.append((ns, dt.strftime(fmt)))
        idx += months
