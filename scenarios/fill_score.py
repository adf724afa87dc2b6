"""Score the fill model on real Binance L2: what it expects at decision time against what the book gave later.

At many decision times (book updates after a warm-up), for a few order sizes and both sides, the model's
expected taker price is compared with the price of walking the book that existed ``latency`` later (the
last book the venue had stamped by decision + latency), the market the order actually meets:

* ``bar``: the bar/snapshot cost model (``fill_model.model_price_units``): the mid moved against us by the
  configured half spread plus impact per million (``CostConfig`` defaults, floored at half a tick as for
  non-book data);
* ``walk``: the book walk (``fill_model.walk_levels``) over the book as it was at decision time.

Error in bps, signed so that positive means the real fill was worse than expected (the model was optimistic):
``side * (actual - expected) / expected * 1e4``. The books are the engine's own (``core.book``: the same
64 levels per side the kernel keeps), rebuilt from the recorded diffs in exchange time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.book import MAX_LEVELS, Q_CROSSED, Q_MID, Q_UNKNOWN, apply_market_event, new_books
from ..core.config import CostConfig
from ..core.event_builders import book_snapshots_to_events, depth_diffs_to_events
from ..core.events import K_BOOK_END, EventBatch
from ..core.fill_model import model_price_units, walk_levels
from ..core.rules import SCALE
from ..infra.data.layouts import parse_binance_ws, read_bytes
from ..infra.data.validate import ValidationReport

SIZES_USDT = (1_000.0, 7_000.0, 50_000.0)  # 7,000 USDT ~ the default 10 M KRW order
LATENCIES_MS = (0.0, 50.0, 150.0, 500.0, 1000.0)  # 150 ms: the configured default
TICK_UNITS = 1_000_000  # BTCUSDT price tick 0.01
STEP_UNITS = 1_000  # BTCUSDT lot 0.00001


@dataclass(frozen=True)
class Books:
    """Every consistent book of one venue: stamp (exchange ns), mid, and its levels (bids, asks)."""

    ts: np.ndarray  # int64, sorted
    mid: np.ndarray
    px: np.ndarray  # (n, 2, levels)
    qty: np.ndarray
    n: np.ndarray  # (n, 2) levels per side


@dataclass(frozen=True)
class ScoreRow:
    model: str  # "bar" | "walk"
    size_usdt: float
    latency_ms: float
    n: int  # decisions x sides scored (a walk the book was too thin for is left out)
    mean_bps: float  # signed: > 0 the real fill was worse than the model expected
    mean_abs_bps: float
    p95_abs_bps: float


def load_binance_l2(paths: list[Path]) -> EventBatch:
    """Depth diffs (and a REST snapshot if the file has one) of recorded ``<local_ns> <json>`` files, in
    exchange time (the venue's E stamps): the clock decision + latency is measured on."""
    parts = []
    for path in paths:
        report = ValidationReport(str(path))
        for s in parse_binance_ws(path, read_bytes(path), None, "binance", report):
            t = s.table
            col = {name: t.column(name).to_numpy() for name in t.column_names}
            if s.kind == "depth_diff":
                parts.append(depth_diffs_to_events(col["ts"], col["ts"], col["last_update_id"], col["side"],
                                                   col["price"], col["qty"], 1))
            elif s.kind == "book":
                parts.append(book_snapshots_to_events(col["ts"], col["snapshot"], col["side"], col["price"],
                                                      col["qty"], 1, col["ts"]))
    if not parts:
        raise ValueError(f"no Binance depth data in {[str(p) for p in paths]}")
    return EventBatch.concat_sorted(parts)


SCORE_LEVELS = 4096  # deeper than any side of the recorded Binance books (about 3,000 after 11 minutes)

def replay_books(events: EventBatch, warmup_ns: int) -> Books:
    """Apply the events to the engine's book and keep a copy at each book end past the warm-up (diffs alone
    build the book up from nothing: the first seconds show a few levels only). The replay book is deep
    (``SCORE_LEVELS``: a 64-level one loses the best price on most of a real Binance recording, see
    core/book.py); each copy keeps its top ``MAX_LEVELS``, the depth the engine's own book walks."""
    book_px, book_q, book_n, quotes = new_books(SCORE_LEVELS)
    ts: list[int] = []
    mids: list[float] = []
    pxs: list[np.ndarray] = []
    qtys: list[np.ndarray] = []
    ns: list[np.ndarray] = []
    start = int(events.ts[0]) + warmup_ns
    for i in range(len(events)):
        kd = int(events.kind[i])
        apply_market_event(kd, 1, int(events.side[i]), float(events.px[i]), float(events.qty[i]), int(events.ts[i]),
                           int(events.ts_venue[i]), book_px, book_q, book_n, quotes, 0.0)
        # never a crossed book, nor one whose best price is unknown (a side emptied past levels dropped for
        # capacity: its arrays still hold the last levels, not the market)
        if kd != K_BOOK_END or int(events.ts[i]) < start or quotes[1, Q_CROSSED] > 0.5 or quotes[1, Q_UNKNOWN] > 0.5:
            continue
        if ts and int(events.ts[i]) == ts[-1]:  # one message split in parts: keep its last state
            ts.pop(), mids.pop(), pxs.pop(), qtys.pop(), ns.pop()
        ts.append(int(events.ts[i]))
        mids.append(float(quotes[1, Q_MID]))
        pxs.append(book_px[1, :, :MAX_LEVELS].copy())
        qtys.append(book_q[1, :, :MAX_LEVELS].copy())
        ns.append(np.minimum(book_n[1], MAX_LEVELS))
    if not ts:
        raise ValueError("no uncrossed two-sided book after the warm-up")
    return Books(np.asarray(ts, np.int64), np.asarray(mids), np.asarray(pxs), np.asarray(qtys), np.asarray(ns))


def _walk_vwap(books: Books, k: int, side: int, qty_units: int, out_px: np.ndarray, out_qty: np.ndarray) -> float:
    """VWAP of a taker order through book ``k`` (NaN if its tracked depth is too thin for the order)."""
    s = 1 if side > 0 else 0
    m = walk_levels(books.px[k, s], books.qty[k, s], int(books.n[k, s]), qty_units, out_px, out_qty)
    got = int(out_qty[:m].sum())
    if got < qty_units:
        return float("nan")
    return float((out_px[:m].astype(np.float64) * out_qty[:m]).sum() / got / SCALE)


def score(books: Books, sizes_usdt: tuple[float, ...] = SIZES_USDT,
          latencies_ms: tuple[float, ...] = LATENCIES_MS, max_decisions: int = 600,
          costs: CostConfig | None = None) -> list[ScoreRow]:
    """The model's error at ``max_decisions`` evenly spread decision times, per model, size and latency."""
    c = (costs or CostConfig()).binance
    horizon = int(max(latencies_ms) * 1e6)
    last = int(np.searchsorted(books.ts, books.ts[-1] - horizon, side="right"))
    decisions = np.unique(np.linspace(0, max(last - 1, 0), min(max_decisions, last)).astype(np.int64))
    out_px = np.zeros(books.px.shape[2], np.int64)
    out_qty = np.zeros(books.px.shape[2], np.int64)
    rows = []
    for size in sizes_usdt:
        errs: dict[tuple[str, float], list[float]] = {(m, lat): [] for m in ("bar", "walk") for lat in latencies_ms}
        for k in decisions:
            mid = float(books.mid[k])
            qty_units = int(size / mid * SCALE) // STEP_UNITS * STEP_UNITS
            floor_hs = 0.5 * TICK_UNITS / (mid * SCALE) * 1e4  # half a tick, as the backtest floors non-book data
            for side in (1, -1):
                bar = model_price_units(mid, side, mid * qty_units / SCALE, max(c.half_spread_bps, floor_hs),
                                        c.impact_bps_per_m_quote, TICK_UNITS) / SCALE
                walk = _walk_vwap(books, int(k), side, qty_units, out_px, out_qty)
                for lat in latencies_ms:
                    j = int(np.searchsorted(books.ts, books.ts[k] + int(lat * 1e6), side="right")) - 1
                    actual = _walk_vwap(books, j, side, qty_units, out_px, out_qty)
                    for model, expected in (("bar", bar), ("walk", walk)):
                        if np.isfinite(actual) and np.isfinite(expected):
                            errs[(model, lat)].append(side * (actual - expected) / expected * 1e4)
        for (model, lat), e in errs.items():
            a = np.asarray(e)
            rows.append(ScoreRow(model, size, lat, int(a.size), float(a.mean()) if a.size else float("nan"),
                                 float(np.abs(a).mean()) if a.size else float("nan"),
                                 float(np.percentile(np.abs(a), 95)) if a.size else float("nan")))
    return rows


def score_files(paths: list[Path], warmup_s: float = 30.0, max_decisions: int = 600) -> tuple[Books, list[ScoreRow]]:
    books = replay_books(load_binance_l2(paths), int(warmup_s * 1e9))
    return books, score(books, max_decisions=max_decisions)
