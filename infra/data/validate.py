"""Import-time validation: every anomaly is counted (with a few examples), never silently fixed.

``clean(kind, table, report, label)`` drops rows that must not reach the store (bad prices or
quantities, crossed books, duplicate keys) and counts, without dropping, what is only worth knowing
(gaps, out-of-order rows, OHLC inconsistencies, stale repeats, forward-filled days, sequence gaps).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from arbitrage_lite.infra.data.plausible import violations
from arbitrage_lite.infra.data.store import KEYS, SORT_KEYS, first_occurrence_mask

NS_PER_S = 1_000_000_000
NS_PER_MIN = 60 * NS_PER_S
NS_PER_DAY = 86_400 * NS_PER_S
MAX_EXAMPLES = 5

# Category -> whether the counted rows are dropped.
CATEGORIES: dict[str, bool] = {
    "malformed_lines": True,  # unparseable line / value, missing field
    "skipped": True,  # well-formed but out of scope (other exchange, quote, message type)
    "missing_values": True,  # empty value where one is required
    "duplicates": True,  # same key twice in the file (first kept)
    # plausibility (ranges and their reasons in plausible.py), checked in this order:
    "bad_time": True,  # before 2010-01-01, after now + 1 day, int64 overflow, or no time at all
    "bad_field": True,  # negative id, side/level/aggressor outside their sets
    "bad_price": True,  # NaN, infinite, zero or negative price
    "price_out_of_range": True,  # above the quote currency's maximum (or below MIN_PRICE)
    "fx_out_of_range": True,  # KRW per USD/USDT outside [500, 5000]
    "negative_qty": True,
    "bad_qty": True,  # NaN or zero quantity where a positive one is required
    "qty_out_of_range": True,  # infinite or above the maximum size
    "crossed_book": True,  # book snapshots (all levels) dropped
    "crossed_bbo": True,
    "already_in_store": True,  # exact rows the store already held (re-import)
    "key_conflicts": False,  # store now holds rows with the same key but different values
    "non_monotonic": False,  # row earlier than its predecessor in file order (stored sorted)
    "gaps": False,
    "ohlc_inconsistent": False,  # high < max(open, close) or low > min(open, close)
    "stale_repeats": False,  # same venue ts seen again at a later record time
    "flat_days": False,  # daily value equal to the previous day (the source forward-fills gaps)
    "sequence_gaps": False,  # depth diff U != previous u + 1, or missing trade ids
}


@dataclass(slots=True)
class GapStats:
    """Gaps in one series: how many, the longest (ns), and for bars how many minutes are missing."""

    count: int = 0
    longest_ns: int = 0
    missing_units: int = 0
    longest_at: str = ""


@dataclass(slots=True)
class ValidationReport:
    source: str
    rows_in: int = 0
    rows_out: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)
    gaps: dict[str, GapStats] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, category: str, n: int = 1, example: str | None = None) -> None:
        if category not in CATEGORIES:
            raise KeyError(f"unknown validation category {category!r}")
        if n <= 0:
            return
        self.counts[category] = self.counts.get(category, 0) + n
        if example is not None:
            ex = self.examples.setdefault(category, [])
            if len(ex) < MAX_EXAMPLES:
                ex.append(example)

    def count(self, category: str) -> int:
        return self.counts.get(category, 0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "counts": dict(sorted(self.counts.items())),
            "examples": dict(sorted(self.examples.items())),
            "gaps": {
                k: {"count": g.count, "longest_ns": g.longest_ns, "missing_units": g.missing_units,
                    "longest_at": g.longest_at}
                for k, g in sorted(self.gaps.items())
            },
            "notes": list(self.notes),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=True)

    def render_text(self, max_gap_lines: int = 4) -> str:
        lines = [f"{self.source}: {self.rows_in} rows parsed, {self.rows_out} kept"]
        for cat in CATEGORIES:
            n = self.counts.get(cat, 0)
            if not n:
                continue
            verb = "dropped" if CATEGORIES[cat] else "kept"
            ex = self.examples.get(cat)
            lines.append(f"  {cat:<18} {n:>9} ({verb})" + (f"  e.g. {'; '.join(ex[:3])}" if ex else ""))
        worst = sorted(self.gaps.items(), key=lambda kv: (-kv[1].longest_ns, kv[0]))
        for label, g in worst[:max_gap_lines]:
            extra = f" ({g.missing_units} units missing)" if g.missing_units else ""
            lines.append(f"  gaps in {label}: {g.count}{extra}, longest {fmt_duration(g.longest_ns)} "
                         f"at {g.longest_at}")
        if len(worst) > max_gap_lines:
            lines.append(f"  ... and {len(worst) - max_gap_lines} more series with gaps")
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)


def fmt_duration(ns: int) -> str:
    s = ns // NS_PER_S
    d, s = divmod(s, 86_400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return (f"{d}d" if d else "") + f"{h:02d}:{m:02d}:{s:02d}"


def fmt_ts(ns: int) -> str:
    """UTC ISO text of an ns timestamp (no time-zone lookups, no wall clock)."""
    if ns < 0:
        return "-"
    return str(np.datetime64(int(ns), "ns").astype("datetime64[ms]")).replace("T", " ")


def _np(table: pa.Table, col: str) -> np.ndarray[Any, Any]:
    return np.asarray(table[col].to_numpy())


def _drop(table: pa.Table, bad: np.ndarray[Any, Any], report: ValidationReport, cat: str, label: str,
          time_col: str = "ts") -> pa.Table:
    n = int(bad.sum())
    if n:
        first = int(np.flatnonzero(bad)[0])
        report.add(cat, n, f"{label} row at {fmt_ts(int(table[time_col][first].as_py()))}")
        table = table.filter(pa.array(~bad))
    return table


def _time_col(kind: str) -> str:
    return str(SORT_KEYS[kind][0])


def _check_values(kind: str, symbol: str, t: pa.Table, report: ValidationReport, label: str,
                  now_ns: int) -> pa.Table:
    """Drop rows outside the plausibility ranges, each counted under its first failing reason."""
    tc = _time_col(kind)
    bad = np.zeros(t.num_rows, dtype=bool)
    for reason, mask in violations(kind, symbol, t, now_ns).items():
        n = int(mask.sum())
        if n:
            first = int(np.flatnonzero(mask)[0])
            report.add(reason, n, f"{label} row at {fmt_ts(int(t[tc][first].as_py()))}")
            bad |= mask
    return t.filter(pa.array(~bad)) if bad.any() else t


def _check_crossed(kind: str, t: pa.Table, report: ValidationReport, label: str) -> pa.Table:
    if kind == "bbo":
        return _drop(t, _np(t, "bid") >= _np(t, "ask"), report, "crossed_bbo", label, "ts_local")
    if kind != "book" or t.num_rows == 0:
        return t
    snap = _np(t, "snapshot")
    side = _np(t, "side")
    price = _np(t, "price")
    ids, inv = np.unique(snap, return_inverse=True)
    best_bid = np.full(len(ids), -np.inf)
    best_ask = np.full(len(ids), np.inf)
    np.maximum.at(best_bid, inv[side == 0], price[side == 0])
    np.minimum.at(best_ask, inv[side == 1], price[side == 1])
    crossed = best_bid >= best_ask
    if crossed.any():
        rows = crossed[inv]
        first = int(np.flatnonzero(rows)[0])
        report.add("crossed_book", int(crossed.sum()),
                   f"{label} snapshot at {fmt_ts(int(t['ts'][first].as_py()))}: bid {best_bid[crossed][0]} "
                   f">= ask {best_ask[crossed][0]}")
        t = t.filter(pa.array(~rows))
    return t


def _check_duplicates(kind: str, t: pa.Table, report: ValidationReport, label: str) -> pa.Table:
    keep = first_occurrence_mask(t, KEYS[kind])
    if kind == "book":  # count whole snapshots, not levels
        dup_rows = ~keep
        if dup_rows.any():
            n = len(np.unique(_np(t, "snapshot")[dup_rows]))
            first = int(np.flatnonzero(dup_rows)[0])
            report.add("duplicates", n, f"{label} snapshot at {fmt_ts(int(t['ts'][first].as_py()))}")
            t = t.filter(pa.array(keep))
        return t
    return _drop(t, ~keep, report, "duplicates", label, _time_col(kind))


def _check_order(kind: str, t: pa.Table, report: ValidationReport, label: str) -> None:
    tc = _time_col(kind)
    x = _np(t, tc)
    back = np.flatnonzero(x[1:] < x[:-1])
    if len(back):
        i = int(back[0]) + 1
        report.add("non_monotonic", len(back), f"{label}: {tc} {fmt_ts(int(x[i]))} after {fmt_ts(int(x[i - 1]))}")


def _gap_stats(times: np.ndarray[Any, Any], step: int, threshold: int) -> GapStats:
    """Gaps where consecutive distinct times are more than ``threshold`` apart (``step`` = unit)."""
    g = GapStats()
    u = np.unique(times[times >= 0])
    if len(u) < 2:
        return g
    d = np.diff(u)
    idx = np.flatnonzero(d > threshold)
    if len(idx):
        g.count = len(idx)
        j = int(idx[np.argmax(d[idx])])
        g.longest_ns = int(d[j])
        g.longest_at = f"{fmt_ts(int(u[j]))} -> {fmt_ts(int(u[j + 1]))}"
        g.missing_units = int((d[idx] // step - 1).sum()) if step else 0
    return g


def _check_gaps(kind: str, t: pa.Table, report: ValidationReport, label: str) -> None:
    if t.num_rows == 0:
        return
    if kind == "bars_1m":
        g = _gap_stats(_np(t, "ts"), NS_PER_MIN, NS_PER_MIN)
    elif kind == "fx" and (_np(t, "ts_local") < 0).all():
        g = _gap_stats(_np(t, "ts"), NS_PER_DAY, NS_PER_DAY)
    elif kind in ("last", "fx"):  # irregular recorder snapshots: report silences over 30 minutes
        g = _gap_stats(_np(t, "ts_local"), 0, 30 * NS_PER_MIN)
    else:
        g = _gap_stats(_np(t, "ts_local"), 0, 5 * NS_PER_S)
    if g.count:
        report.gaps[label] = g
        report.add("gaps", g.count)


def _check_semantics(kind: str, t: pa.Table, report: ValidationReport, label: str) -> None:
    if kind == "bars_1m" and t.num_rows:
        o, h, lo, c = (_np(t, k) for k in ("open", "high", "low", "close"))
        bad = (h < np.maximum(o, c)) | (lo > np.minimum(o, c)) | (h < lo)
        if bad.any():
            report.add("ohlc_inconsistent", int(bad.sum()), f"{label} bar {fmt_ts(int(_np(t, 'ts')[bad][0]))}")
    if kind in ("last", "fx") and t.num_rows and (_np(t, "ts_local") >= 0).any():
        ts, tl = _np(t, "ts"), _np(t, "ts_local")
        _, first_idx = np.unique(ts, return_index=True)
        repeat = np.ones(len(ts), dtype=bool)
        repeat[first_idx] = False
        if repeat.any():  # the venue time did not move between two records: a stale entry
            age = tl - ts
            i = int(np.argmax(np.where(repeat, age, -1)))
            report.add("stale_repeats", int(repeat.sum()),
                       f"{label}: ts {fmt_ts(int(ts[i]))} still current at {fmt_ts(int(tl[i]))} "
                       f"({fmt_duration(int(age[i]))} old)")
    if kind == "fx" and t.num_rows > 1 and (_np(t, "ts_local") < 0).all():
        r = _np(t, "rate")
        flat = np.flatnonzero(r[1:] == r[:-1])
        if len(flat):
            report.add("flat_days", len(flat), f"{label} {fmt_ts(int(_np(t, 'ts')[flat[0] + 1]))[:10]}")
    if kind == "depth_diff" and t.num_rows:
        first_u = _np(t, "first_update_id")
        last_u = _np(t, "last_update_id")
        msg = np.concatenate([[True], (first_u[1:] != first_u[:-1]) | (last_u[1:] != last_u[:-1])])
        fu, lu = first_u[msg], last_u[msg]
        order = np.argsort(lu, kind="stable")
        fu, lu = fu[order], lu[order]
        brk = np.flatnonzero(fu[1:] != lu[:-1] + 1)
        if len(brk):
            i = int(brk[0])
            report.add("sequence_gaps", len(brk), f"{label}: u={lu[i]} then U={fu[i + 1]}")
    if kind == "trades" and t.num_rows > 1:
        ids = np.unique(_np(t, "trade_id"))
        missing = int((ids[-1] - ids[0] + 1) - len(ids))
        report.add("sequence_gaps", missing, f"{label}: {missing} trade ids missing" if missing else None)


def clean(kind: str, table: pa.Table, report: ValidationReport, label: str, symbol: str, now_ns: int
          ) -> pa.Table:
    """Validate one parsed series (in file order); return the rows fit to store (all within the
    plausibility ranges as of ``now_ns``, the caller's clock)."""
    n0 = table.num_rows
    _check_order(kind, table, report, label)
    table = _check_values(kind, symbol, table, report, label, now_ns)
    table = _check_crossed(kind, table, report, label)
    table = _check_duplicates(kind, table, report, label)
    table = table.take(pa.array(np.lexsort([_np(table, k) for k in reversed(SORT_KEYS[kind])])))
    _check_gaps(kind, table, report, label)
    _check_semantics(kind, table, report, label)
    report.rows_in += n0
    report.rows_out += table.num_rows
    return table

