"""The kernel's book holds a bounded number of levels a side; it must never quote a best price it does not know.

The real 11-minute Binance BTCUSDT L2 recording (a 1,000-level REST snapshot, then depth@100ms diffs, shared
data ``binance_spot_l2_raw``) is replayed through the compiled kernel (``route_step``) and, from the same events,
into an exact full-depth book (plain dicts); the two are compared at every BOOK_END.
"""

from __future__ import annotations

import gzip
import heapq
import json
from pathlib import Path

import numpy as np
from binance_payloads import raw_l2_files

from arbitrage_lite.core.book import (
    MAX_LEVELS,
    Q_MID,
    Q_TS,
    Q_UNKNOWN,
    apply_market_event,
    depth_cut,
    execute_leg,
    new_books,
)
from arbitrage_lite.core.config import EngineConfig
from arbitrage_lite.core.event_builders import book_snapshots_to_events, depth_diffs_to_events
from arbitrage_lite.core.events import K_BOOK_END, K_CLEAR, K_LEVEL, VENUE_BINANCE, EventBatch
from arbitrage_lite.core.kernel import N_COUNTERS
from arbitrage_lite.core.replay import kernel_params, step
from arbitrage_lite.core.route_state import RouteState
from arbitrage_lite.core.rules import binance_rules

TOP = 10
Side = tuple[tuple[float, float], ...]


def _l2_events(paths: list[Path]) -> EventBatch:
    """The REST snapshot, then the diffs after it (Binance's sync rule: u > lastUpdateId; a diff received
    before the snapshot is applied at the snapshot's time), through the engine's event builders."""
    snap: tuple[int, dict] | None = None
    rows: list[tuple[int, int, int, int, float, float]] = []  # ts_local, E ns, u, side, price, qty
    for path in paths:
        with gzip.open(path, "rt") as fh:
            for line in fh:
                local, _, body = line.partition(" ")
                if snap is None and body.startswith('{"lastUpdateId"'):
                    snap = (int(local), json.loads(body))
                elif '"depthUpdate"' in body:
                    d = json.loads(body)["data"]
                    rows += [(int(local), d["E"] * 1_000_000, d["u"], s, float(p), float(q))
                             for s, key in ((0, "b"), (1, "a")) for p, q in d[key]]
    assert snap is not None
    snap_ts, s = snap
    levels = [(0, float(p), float(q)) for p, q in s["bids"]] + [(1, float(p), float(q)) for p, q in s["asks"]]
    n = len(levels)
    book = book_snapshots_to_events(np.full(n, snap_ts, np.int64), np.zeros(n, np.int64),
                                    np.array([x[0] for x in levels], np.int8), np.array([x[1] for x in levels]),
                                    np.array([x[2] for x in levels]), VENUE_BINANCE, np.full(n, -1, np.int64))
    d = np.array([r for r in rows if r[2] > s["lastUpdateId"]])
    diffs = depth_diffs_to_events(np.maximum(d[:, 0].astype(np.int64), snap_ts), d[:, 1].astype(np.int64),
                                  d[:, 2].astype(np.int64), d[:, 3].astype(np.int8), d[:, 4], d[:, 5], VENUE_BINANCE)
    return EventBatch.concat_sorted([book, diffs])


def _reference(ev: EventBatch) -> list[tuple[Side, Side]]:
    """An exact full-depth book from the same events: the top ``TOP`` levels a side at every BOOK_END."""
    book: list[dict[float, float]] = [{}, {}]
    out = []
    for kd, sd, px, q in zip(ev.kind.tolist(), ev.side.tolist(), ev.px.tolist(), ev.qty.tolist(), strict=True):
        if kd == K_CLEAR:
            book = [{}, {}]
        elif kd == K_LEVEL:
            if q > 0.0:
                book[sd][px] = q
            else:
                book[sd].pop(px, None)
        elif kd == K_BOOK_END:
            out.append((tuple((p, book[0][p]) for p in heapq.nlargest(TOP, book[0])),
                        tuple((p, book[1][p]) for p in heapq.nsmallest(TOP, book[1]))))
    return out


def _kernel(ev: EventBatch, levels: int) -> list[tuple[bool, float, Side, Side]]:
    """The same events through ``route_step`` (a book of ``levels`` a side): (best price unknown, Binance mid,
    top bids, top asks) at every BOOK_END, read from the kernel's own state."""
    state = RouteState.new(N_COUNTERS, series_hint=16)
    state.book_px, state.book_q, state.book_n, state.quotes = new_books(levels)
    params = kernel_params(EngineConfig(), binance_rules("0.01", "0.00001", "5"))
    out = []
    lo = 0
    for end in np.flatnonzero(ev.kind == K_BOOK_END).tolist():
        step(state, ev, lo, end + 1, False, True, params)
        lo = end + 1
        q = state.quotes[VENUE_BINANCE]
        assert (q[Q_TS] == ev.ts_venue[end] or ev.ts_venue[end] < 0) != (q[Q_UNKNOWN] == 1.0)  # stamped iff known
        tops = tuple(tuple((float(state.book_px[1, s, i]), float(state.book_q[1, s, i]))
                           for i in range(min(TOP, int(state.book_n[1, s])))) for s in (0, 1))
        out.append((bool(q[Q_UNKNOWN]), float(q[Q_MID]), *tops))
    return out


def _compare(ev: EventBatch, ref: list[tuple[Side, Side]], levels: int) -> dict[str, int]:
    """Counts over the BOOK_ENDs: the kernel's best price unknown (no quote), its quoted best or mid wrong, a
    kept level that is not the venue's (its top ``TOP`` is not a prefix of the exact book's), fewer than
    ``TOP`` levels kept where the exact book has them."""
    got = _kernel(ev, levels)
    assert len(ref) == len(got) > 6000
    out = dict.fromkeys(("unknown", "wrong_best", "wrong_mid", "not_prefix", "short_top"), 0)
    for (bids, asks), (unknown, mid, kb, ka) in zip(ref, got, strict=True):
        out["unknown"] += unknown
        if not unknown:
            out["wrong_best"] += (kb[:1], ka[:1]) != (bids[:1], asks[:1])
            out["wrong_mid"] += mid != 0.5 * (bids[0][0] + asks[0][0])
        out["not_prefix"] += (kb, ka) != (bids[:len(kb)], asks[:len(ka)])
        out["short_top"] += (len(kb), len(ka)) != (len(bids), len(asks))
    return out


def test_kernel_book_on_the_real_l2_recording_never_quotes_a_best_price_it_does_not_know() -> None:
    ev = _l2_events(raw_l2_files())
    ref = _reference(ev)
    counts = {lv: _compare(ev, ref, lv) for lv in (16, 64, MAX_LEVELS, 2048)}
    print(counts)
    for lv, c in counts.items():
        assert (c["wrong_best"], c["wrong_mid"], c["not_prefix"]) == (0, 0, 0), (lv, c)
    assert counts[2048]["unknown"] == counts[2048]["short_top"] == 0  # deep enough: the exact book, always
    assert counts[16]["unknown"] > 0  # the path is taken on real data: a side emptied past its dropped levels


def _apply(books: tuple[np.ndarray, ...], kd: int, sd: int = 0, px: float = 0.0, qty: float = 0.0,
           t: int = 0) -> bool:
    return bool(apply_market_event(kd, VENUE_BINANCE, sd, px, qty, t, t, *books, 0.0))


def test_a_side_emptied_past_its_dropped_levels_gives_no_quote_until_a_snapshot() -> None:
    books = new_books(3)
    _, _, book_n, quotes = books
    v = VENUE_BINANCE
    _apply(books, K_CLEAR)
    for i in range(5):  # a snapshot deeper than the book: asks 101..105, the last two dropped
        _apply(books, K_LEVEL, 1, 101.0 + i, 1.0)
    _apply(books, K_LEVEL, 0, 100.0, 1.0)
    assert _apply(books, K_BOOK_END, t=1) and quotes[v, Q_MID] == 100.5 and quotes[v, Q_UNKNOWN] == 0.0
    assert depth_cut(quotes, v, +1) and not depth_cut(quotes, v, -1)  # a buy walks a cut side, a sell does not
    out_px, out_qty = np.zeros(3, np.int64), np.zeros(3, np.int64)
    k = execute_leg(*books, v, +1, 10 * 10**8, 1, 0.0, 0.0, 1, out_px, out_qty)
    assert k == 3 and out_qty[:k].sum() == 3 * 10**8  # only the kept (known) levels, never 104 or 105
    for px in (101.0, 102.0, 103.0):  # a sweep removes the kept asks
        _apply(books, K_LEVEL, 1, px, 0.0)
    _apply(books, K_LEVEL, 1, 106.0, 2.0)  # past the dropped 104: a hole above it, ignored
    assert book_n[v, 1] == 0
    assert _apply(books, K_BOOK_END, t=2) and quotes[v, Q_UNKNOWN] == 1.0
    assert quotes[v, Q_TS] == 1 and quotes[v, Q_MID] == 100.5  # no new quote: a leg waits for a known book
    _apply(books, K_LEVEL, 1, 102.5, 1.0)  # better than every dropped level: known again
    assert _apply(books, K_BOOK_END, t=3) and quotes[v, Q_UNKNOWN] == 0.0 and quotes[v, Q_MID] == 101.25
    _apply(books, K_LEVEL, 1, 102.5, 0.0)
    assert _apply(books, K_BOOK_END, t=4) and quotes[v, Q_UNKNOWN] == 1.0
    _apply(books, K_CLEAR)  # a snapshot restores the side
    _apply(books, K_LEVEL, 0, 100.0, 1.0)
    _apply(books, K_LEVEL, 1, 106.0, 2.0)
    assert _apply(books, K_BOOK_END, t=5) and quotes[v, Q_UNKNOWN] == 0.0 and quotes[v, Q_MID] == 103.0
    assert not depth_cut(quotes, v, +1) and quotes[v, Q_TS] == 5
