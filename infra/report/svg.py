"""Tiny dependency-free SVG charts: deterministic strings, min/max downsampling, gap-aware lines.

Public API: :class:`Series`, :class:`Markers`, :func:`line_chart`, :func:`histogram`.
x values are UTC epoch nanoseconds (``time_axis=True``, int64 or datetime64) or plain numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from itertools import pairwise
from typing import Literal

import numpy as np
import numpy.typing as npt

from .ticks import fnum, format_tick, linear_ticks, nice_step, tick_formatter, time_ticks, utc

Arr = npt.NDArray[np.float64]
WIDTH, HEIGHT = 960, 300
_ML, _MR, _MT, _MB = 74, 18, 30, 34  # plot margins: left, right, top, bottom
_FONT = "system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif"
ENTRY_COLOR, EXIT_COLOR = "#1b7f3b", "#c62828"
MAX_TITLED_MARKERS = 800  # above this, markers are drawn as one path per kind without per-marker tooltips
MAX_COMPACT_MARKERS = 3000  # ... snapped to a pixel grid coarse enough to keep at most this many triangles


@dataclass(frozen=True, eq=False)
class Series:
    """One line. ``fill`` shades the area between the line and y = 0; ``step`` draws a step function."""

    x: npt.ArrayLike
    y: npt.ArrayLike
    label: str = ""
    color: str = "#1f5fa8"
    width: float = 1.4
    dash: str = ""
    fill: bool = False
    step: bool = False


@dataclass(frozen=True, eq=False)
class Markers:
    """Trade markers: ``entry`` = green upward triangle, ``exit`` = red downward triangle."""

    x: npt.ArrayLike
    y: npt.ArrayLike
    kind: Literal["entry", "exit"] = "entry"
    label: str = ""
    unit: str = ""


class _Frame:
    """Data -> pixel mapping of the plot area."""

    def __init__(self, x0: float, x1: float, y0: float, y1: float, w: int, h: int) -> None:
        self.x0, self.x1, self.y0, self.y1, self.w, self.h = x0, x1, y0, y1, w, h
        self.left, self.right, self.top, self.bottom = _ML, w - _MR, _MT, h - _MB

    def px(self, x: Arr) -> Arr:
        span = self.x1 - self.x0
        if span <= 0:
            return np.full(x.shape, (self.left + self.right) / 2.0)
        return self.left + (x - self.x0) / span * (self.right - self.left)

    def py(self, y: Arr) -> Arr:
        return self.bottom - (y - self.y0) / (self.y1 - self.y0) * (self.bottom - self.top)


def _to_x(a: npt.ArrayLike) -> npt.NDArray[np.int64] | Arr:
    arr = np.asarray(a).ravel()
    if np.issubdtype(arr.dtype, np.datetime64):
        return arr.astype("datetime64[ns]").astype(np.int64)
    if np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_:
        return arr.astype(np.int64)
    return arr.astype(np.float64)


def _to_y(a: npt.ArrayLike) -> Arr:
    return np.asarray(a, dtype=np.float64).ravel()


def _pairs(
    xs: Sequence[npt.ArrayLike], ys: Sequence[npt.ArrayLike]
) -> tuple[list[Arr], list[Arr], int | float]:
    """x made relative to a common origin (exact for int64 ns), finite-y filtered range; returns origin."""
    raw = [_to_x(x) for x in xs]
    yv = [_to_y(y) for y in ys]
    for x, y in zip(raw, yv, strict=True):
        if x.shape != y.shape:
            raise ValueError(f"x and y lengths differ: {x.shape[0]} != {y.shape[0]}")
    all_int = all(x.dtype == np.int64 for x in raw if x.shape[0])
    mins = [x[np.isfinite(x)].min() for x in raw if np.isfinite(x).any()]
    origin: int | float = (int(min(mins)) if all_int else float(min(mins))) if mins else 0
    rel = [(x.astype(np.int64) - origin).astype(np.float64) if all_int else x.astype(np.float64) - origin
           for x in raw]
    return rel, yv, origin


def _m4(px: Arr, py: Arr, brk: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
    """Indices kept by min/max-per-pixel-column downsampling (first, last, min, max of each column)."""
    n = px.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    seg = np.cumsum(brk)
    key = seg * 100_000 + np.floor(px).astype(np.int64)
    start = np.concatenate(([True], key[1:] != key[:-1]))
    starts = np.flatnonzero(start)
    ends = np.concatenate((starts[1:] - 1, [n - 1]))
    group = np.cumsum(start) - 1
    order = np.lexsort((py, group))
    return np.unique(np.concatenate((starts, ends, order[starts], order[ends])))


def _segments(fr: _Frame, x: Arr, y: Arr, gap: float | None) -> list[tuple[list[str], list[str]]]:
    """Split at NaNs and x-gaps, downsample, return per segment formatted pixel coordinates."""
    order = np.argsort(x, kind="stable")
    if not np.array_equal(order, np.arange(x.shape[0])):
        x, y = x[order], y[order]
    idx = np.flatnonzero(np.isfinite(x) & np.isfinite(y))
    if idx.shape[0] == 0:
        return []
    xs, ys = x[idx], y[idx]
    brk = np.ones(idx.shape[0], dtype=bool)
    brk[1:] = np.diff(idx) > 1
    if gap is not None:
        brk[1:] |= np.diff(xs) > gap
    px, py = fr.px(xs), fr.py(ys)
    keep = _m4(px, py, brk)
    px, py, brk = px[keep], py[keep], brk[keep]
    bounds = [*np.flatnonzero(brk).tolist(), px.shape[0]]
    out: list[tuple[list[str], list[str]]] = []
    for a, b in pairwise(bounds):
        sx = [fnum(v) for v in px[a:b].tolist()]
        sy = [fnum(v) for v in py[a:b].tolist()]
        cx, cy = [sx[0]], [sy[0]]
        for u, v in zip(sx[1:], sy[1:], strict=True):
            if u != cx[-1] or v != cy[-1]:
                cx.append(u)
                cy.append(v)
        out.append((cx, cy))
    return out


def _line_d(segs: list[tuple[list[str], list[str]]], step: bool) -> str:
    parts: list[str] = []
    for sx, sy in segs:
        if step:
            rest = "".join(f"H{u}V{v}" for u, v in zip(sx[1:], sy[1:], strict=True))
        else:
            pts = " ".join(f"{u},{v}" for u, v in zip(sx[1:], sy[1:], strict=True))
            rest = f"L{pts}" if pts else "h0"
        parts.append(f"M{sx[0]},{sy[0]}{rest}")
    return "".join(parts)


def _fill_d(segs: list[tuple[list[str], list[str]]], step: bool, base: str) -> str:
    parts: list[str] = []
    for sx, sy in segs:
        if len(sx) < 2:
            continue
        if step:
            body = f"V{sy[0]}" + "".join(f"H{u}V{v}" for u, v in zip(sx[1:], sy[1:], strict=True))
        else:
            body = "L" + " ".join(f"{u},{v}" for u, v in zip(sx, sy, strict=True))
        parts.append(f"M{sx[0]},{base}{body}V{base}Z")
    return "".join(parts)


def _open(w: int, h: int, title: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" '
        f'role="img" aria-label="{escape(title)}" font-family="{_FONT}" font-size="11">',
        f'<rect x="0" y="0" width="{w}" height="{h}" fill="#ffffff"/>',
        f'<text x="{_ML}" y="18" font-size="13" font-weight="600" fill="#222">{escape(title)}</text>',
    ]


def empty_chart(title: str = "", width: int = WIDTH, height: int = HEIGHT, note: str = "no data") -> str:
    """A framed chart with a centered note (used for empty input)."""
    out = _open(width, height, title)
    out.append(f'<rect x="{_ML}" y="{_MT}" width="{width - _ML - _MR}" height="{height - _MT - _MB}" '
               'fill="#fafafa" stroke="#ccc"/>')
    out.append(f'<text x="{(width + _ML - _MR) // 2}" y="{(height + _MT - _MB) // 2}" text-anchor="middle" '
               f'fill="#888" font-size="14">{escape(note)}</text>')
    return "\n".join([*out, "</svg>"])


def _axes(fr: _Frame, time_axis: bool, origin: int | float, y_label: str, y_int: bool = False) -> list[str]:
    out = [f'<rect x="{fr.left}" y="{fr.top}" width="{fr.right - fr.left}" height="{fr.bottom - fr.top}" '
           'fill="#fcfcfc" stroke="#ccc"/>']
    yt, ystep = linear_ticks(fr.y0, fr.y1)
    if y_int and ystep < 1:
        yt, ystep = [float(v) for v in range(math.ceil(fr.y0), math.floor(fr.y1) + 1)], 1.0
    scale, suffix = tick_formatter(fr.y0, fr.y1, ystep)
    for v, p in zip(yt, fr.py(np.asarray(yt, dtype=np.float64)).tolist(), strict=True):
        out.append(f'<line x1="{fr.left}" x2="{fr.right}" y1="{fnum(p)}" y2="{fnum(p)}" stroke="#e6e6e6"/>')
        out.append(f'<text x="{fr.left - 6}" y="{fnum(p + 4)}" text-anchor="end" fill="#555">'
                   f"{escape(format_tick(v, ystep, scale, suffix))}</text>")
    if fr.y0 < 0 < fr.y1:
        z = fnum(float(fr.py(np.zeros(1))[0]))
        out.append(f'<line x1="{fr.left}" x2="{fr.right}" y1="{z}" y2="{z}" stroke="#777" stroke-width="1"/>')
    if time_axis:
        lo, hi = int(origin) + round(fr.x0), int(origin) + round(fr.x1)
        xt: list[tuple[float, str]] = [(float(t - int(origin)), lab) for t, lab in time_ticks(lo, hi)]
    else:
        vals, xstep = linear_ticks(fr.x0 + origin, fr.x1 + origin)
        sc, sf = tick_formatter(vals[0] if vals else 0, vals[-1] if vals else 0, xstep)
        xt = [(v - origin, format_tick(v, xstep, sc, sf)) for v in vals]
    for v, lab in xt:
        p = fnum(float(fr.px(np.asarray([v], dtype=np.float64))[0]))
        out.append(f'<line x1="{p}" x2="{p}" y1="{fr.bottom}" y2="{fr.bottom + 4}" stroke="#999"/>')
        half = len(lab) * 3.3  # keep labels inside the picture near the edges
        anchor = "end" if float(p) + half > fr.w - 2 else "start" if float(p) - half < 2 else "middle"
        out.append(f'<text x="{p}" y="{fr.bottom + 16}" text-anchor="{anchor}" fill="#555">'
                   f"{escape(lab)}</text>")
    if time_axis:
        out.append(f'<text x="4" y="{fr.bottom + 16}" fill="#999">UTC</text>')
    if y_label:
        out.append(f'<text x="4" y="{_MT - 6}" fill="#777">{escape(y_label)}</text>')
    return out


def _legend(w: int, items: list[tuple[str, str, str]]) -> list[str]:
    """Right-aligned legend on the title line; items are (label, color, shape: line|up|down)."""
    out: list[str] = []
    x = w - _MR
    for label, color, shape in reversed(items):
        x -= int(len(label) * 6.2) + 6
        out.append(f'<text x="{x}" y="18" fill="#444">{escape(label)}</text>')
        x -= 20
        if shape == "line":
            out.append(f'<line x1="{x}" x2="{x + 16}" y1="14" y2="14" stroke="{color}" stroke-width="2"/>')
        else:
            out.append(f'<path d="{_tri(x + 8, 14, shape == "up")}" fill="{color}"/>')
        x -= 12
    return out


def _tri(x: float, y: float, up: bool, digits: int = 1) -> str:
    if up:
        return f"M{fnum(x, digits)},{fnum(y - 5, digits)}l4.5,8h-9z"
    return f"M{fnum(x, digits)},{fnum(y + 5, digits)}l4.5,-8h-9z"


def _markers(fr: _Frame, m: Markers, x: Arr, y: Arr, time_axis: bool) -> list[str]:
    raw = _to_x(m.x)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y, raw = x[ok], y[ok], raw[ok]
    if x.shape[0] == 0:
        return []
    order = np.lexsort((y, x))
    x, y, raw = x[order], y[order], raw[order]
    px, py = np.round(fr.px(x)), np.round(fr.py(y))
    key = px.astype(np.int64) * 100_000 + py.astype(np.int64)
    _, first, counts = np.unique(key, return_index=True, return_counts=True)
    sel = np.argsort(first, kind="stable")
    first, counts = first[sel], counts[sel]
    up = m.kind == "entry"
    color = ENTRY_COLOR if up else EXIT_COLOR
    label = m.label or m.kind
    if first.shape[0] > MAX_TITLED_MARKERS:  # one compact path on a coarse pixel grid, one tooltip
        cell = 1
        while True:
            cell += 1
            gx, gy = px[first] // cell * cell, py[first] // cell * cell
            _, keep = np.unique(gx.astype(np.int64) * 100_000 + gy.astype(np.int64), return_index=True)
            if keep.shape[0] <= MAX_COMPACT_MARKERS:
                break
        d = "".join(_tri(gx[i], gy[i], up, 0) for i in np.sort(keep).tolist())
        return [f'<path d="{d}" fill="{color}" fill-opacity="0.85"><title>{escape(label)}: '
                f"{x.shape[0]} markers</title></path>"]
    out = [f'<g fill="{color}" fill-opacity="0.85" stroke="#fff" stroke-width="0.5">']
    for i, c in zip(first.tolist(), counts.tolist(), strict=True):
        where = utc(int(raw[i])) + " UTC" if time_axis else f"x={float(raw[i]):.6g}"
        tip = f"{label} {where} · {y[i]:,.1f} {m.unit}".rstrip() + (f" (+{c - 1} more here)" if c > 1 else "")
        out.append(f'<path d="{_tri(px[i], py[i], up)}"><title>{escape(tip)}</title></path>')
    return [*out, "</g>"]


def line_chart(
    series: Sequence[Series],
    *,
    markers: Sequence[Markers] = (),
    title: str = "",
    y_label: str = "",
    time_axis: bool = True,
    gap: float | None = None,
    include_zero: bool = False,
    width: int = WIDTH,
    height: int = HEIGHT,
) -> str:
    """Line / area chart of one or more series with optional trade markers.

    ``gap`` (in x units, i.e. ns for time axes) breaks a line where consecutive x differ by more.
    NaN y values break the line too. Each series is downsampled to first/last/min/max per pixel column.
    """
    xs, ys, origin = _pairs([s.x for s in series] + [m.x for m in markers],
                            [s.y for s in series] + [m.y for m in markers])
    fin = [np.isfinite(x) & np.isfinite(y) for x, y in zip(xs, ys, strict=True)]
    if not any(f.any() for f in fin):
        return empty_chart(title, width, height)
    xv = np.concatenate([x[f] for x, f in zip(xs, fin, strict=True)])
    yv = np.concatenate([y[f] for y, f in zip(ys, fin, strict=True)])
    y0, y1 = float(yv.min()), float(yv.max())
    if include_zero or any(s.fill for s in series):
        y0, y1 = min(y0, 0.0), max(y1, 0.0)
    pad = (y1 - y0) * 0.06 if y1 > y0 else max(abs(y0) * 0.1, 1.0)
    fr = _Frame(float(xv.min()), float(xv.max()), y0 - pad, y1 + pad, width, height)
    out = _open(width, height, title) + _axes(fr, time_axis, origin, y_label)
    base = fnum(float(fr.py(np.zeros(1))[0]))
    for s, x, y in zip(series, xs, ys, strict=False):
        segs = _segments(fr, x, y, gap)
        if not segs:
            continue
        if s.fill:
            out.append(f'<path d="{_fill_d(segs, s.step, base)}" fill="{s.color}" fill-opacity="0.25" '
                       'stroke="none"/>')
        dash = f' stroke-dasharray="{s.dash}"' if s.dash else ""
        out.append(f'<path d="{_line_d(segs, s.step)}" fill="none" stroke="{s.color}" '
                   f'stroke-width="{s.width}" stroke-linejoin="round" stroke-linecap="round"{dash}/>')
    for m, x, y in zip(markers, xs[len(series):], ys[len(series):], strict=True):
        out += _markers(fr, m, x, y, time_axis)
    items = [(s.label, s.color, "line") for s in series if s.label]
    items += [(m.label or m.kind, ENTRY_COLOR if m.kind == "entry" else EXIT_COLOR,
               "up" if m.kind == "entry" else "down") for m in markers]
    out += _legend(width, items)
    return "\n".join([*out, "</svg>"])


def histogram(
    values: npt.ArrayLike,
    *,
    title: str = "",
    unit: str = "",
    max_bins: int = 40,
    width: int = WIDTH,
    height: int = HEIGHT,
) -> str:
    """Histogram with round bin edges computed from the data (0 is always an edge) and a zero line.

    Bars left of 0 are red, right of 0 green. NaNs are ignored.
    """
    v = _to_y(values)
    v = v[np.isfinite(v)]
    if v.shape[0] == 0:
        return empty_chart(title, width, height)
    lo, hi = float(v.min()), float(v.max())
    target = min(max(math.ceil(math.sqrt(v.shape[0])), 5), max_bins)
    w = nice_step((hi - lo) / target) if hi > lo else nice_step(max(abs(lo), 1.0) / 5)
    e0 = math.floor(lo / w) * w
    nb = max(math.ceil((hi - e0) / w * (1 - 1e-12)), 1)
    if e0 + nb * w <= hi:
        nb += 1
    edges = e0 + np.arange(nb + 1, dtype=np.float64) * w
    counts, _ = np.histogram(v, bins=edges)
    top = float(counts.max())
    fr = _Frame(float(edges[0]), float(edges[-1]), 0.0, top * 1.08, width, height)
    out = _open(width, height, title) + _axes(fr, False, 0, "trades", y_int=True)
    ex = fr.px(edges).tolist()
    ybase = fr.bottom
    for i, c in enumerate(counts.tolist()):
        if c == 0:
            continue
        a, b = float(edges[i]), float(edges[i + 1])
        color = EXIT_COLOR if b <= 0 else ENTRY_COLOR if a >= 0 else "#888"
        yt = float(fr.py(np.asarray([float(c)]))[0])
        tip = f"[{a:,.6g}, {b:,.6g}) {unit}: {c} trade{'s' if c != 1 else ''}".replace(" :", ":")
        bw = fnum(max(ex[i + 1] - ex[i] - 1, 0.5))
        out.append(f'<rect x="{fnum(ex[i] + 0.5)}" y="{fnum(yt)}" width="{bw}" height="{fnum(ybase - yt)}" '
                   f'fill="{color}" fill-opacity="0.8"><title>{escape(tip)}</title></rect>')
    if edges[0] <= 0 <= edges[-1]:
        z = fnum(float(fr.px(np.zeros(1))[0]))
        out.append(f'<line x1="{z}" x2="{z}" y1="{fr.top}" y2="{fr.bottom}" stroke="#333" '
                   'stroke-dasharray="4 3"/>')
    if unit:
        out.append(f'<text x="{fr.right}" y="{fr.bottom + 30}" text-anchor="end" fill="#777">'
                   f"{escape(unit)}</text>")
    return "\n".join([*out, "</svg>"])


@dataclass(frozen=True)
class Span:
    """A stretch of time on one lane of a timeline (a halt, a tripped breaker, a guarded pair)."""

    lane: str
    start_ns: int
    end_ns: int
    color: str
    label: str


@dataclass(frozen=True)
class Point:
    """One instant on a lane (an event), drawn as a tick with its own tooltip."""

    lane: str
    ts_ns: int
    color: str
    label: str


_LANE_H, _LANE_LABEL_CHARS = 22, 11


def timeline(lanes: Sequence[str], spans: Sequence[Span], points: Sequence[Point], *, start_ns: int,
             end_ns: int, title: str = "", legend: Sequence[tuple[str, str]] = (), width: int = WIDTH) -> str:
    """A strip per lane over [start_ns, end_ns] (UTC): shaded spans and event ticks with tooltips.

    Ticks that land on the same pixel of a lane with the same colour are merged (the tooltip counts them).
    """
    if not lanes or end_ns < start_ns:
        return empty_chart(title, width, 90, note="no events")
    height = _MT + _LANE_H * len(lanes) + _MB
    fr = _Frame(0.0, float(max(end_ns - start_ns, 1)), 0.0, float(len(lanes)), width, height)
    out = _open(width, height, title) + _axes_time_only(fr, start_ns)
    row = {name: i for i, name in enumerate(lanes)}

    def x(ns: int) -> float:
        return float(fr.px(np.asarray([float(min(max(ns, start_ns), end_ns) - start_ns)]))[0])

    for i, name in enumerate(lanes):
        y = fr.top + i * _LANE_H
        out.append(f'<text x="{fr.left - 6}" y="{y + 15}" text-anchor="end" fill="#444">'
                   f"{escape(name[:_LANE_LABEL_CHARS])}</text>")
        out.append(f'<line x1="{fr.left}" x2="{fr.right}" y1="{y + _LANE_H}" y2="{y + _LANE_H}" stroke="#eee"/>')
    for s in spans:
        if s.lane not in row:
            continue
        x0, x1 = x(s.start_ns), x(s.end_ns)
        y = fr.top + row[s.lane] * _LANE_H + 4
        tip = f"{s.label}: {utc(s.start_ns)} → {utc(s.end_ns)} UTC"
        out.append(f'<rect x="{fnum(x0)}" y="{y}" width="{fnum(max(x1 - x0, 1.5))}" height="{_LANE_H - 8}" '
                   f'fill="{s.color}" fill-opacity="0.35"><title>{escape(tip)}</title></rect>')
    merged: dict[tuple[str, int, str], list[Point]] = {}
    for p in sorted(points, key=lambda p: (p.ts_ns, p.lane, p.label)):
        if p.lane in row:
            merged.setdefault((p.lane, round(x(p.ts_ns)), p.color), []).append(p)
    for (lane, px, color), group in merged.items():
        y = fr.top + row[lane] * _LANE_H
        first = group[0]
        tip = f"{first.label} {utc(first.ts_ns)} UTC" + (f" (+{len(group) - 1} more here)" if len(group) > 1 else "")
        out.append(f'<line x1="{px}" x2="{px}" y1="{y + 2}" y2="{y + _LANE_H - 2}" stroke="{color}" '
                   f'stroke-width="2.5"><title>{escape(tip)}</title></line>')
    out += _legend(width, [(label, color, "line") for label, color in legend])
    return "\n".join([*out, "</svg>"])


def _axes_time_only(fr: _Frame, origin_ns: int) -> list[str]:
    out = [f'<rect x="{fr.left}" y="{fr.top}" width="{fr.right - fr.left}" height="{fr.bottom - fr.top}" '
           'fill="#fcfcfc" stroke="#ccc"/>']
    for t, lab in time_ticks(origin_ns, origin_ns + round(fr.x1)):
        p = fnum(float(fr.px(np.asarray([float(t - origin_ns)]))[0]))
        out.append(f'<line x1="{p}" x2="{p}" y1="{fr.top}" y2="{fr.bottom + 4}" stroke="#e6e6e6"/>')
        half = len(lab) * 3.3
        anchor = "end" if float(p) + half > fr.w - 2 else "start" if float(p) - half < 2 else "middle"
        out.append(f'<text x="{p}" y="{fr.bottom + 16}" text-anchor="{anchor}" fill="#555">{escape(lab)}</text>')
    out.append(f'<text x="4" y="{fr.bottom + 16}" fill="#999">UTC</text>')
    return out
