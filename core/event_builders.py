"""Turn columnar market data into replay events (pure array functions, no I/O)."""

from __future__ import annotations

import numpy as np

from .events import (
    K_BAR_CLOSE,
    K_BAR_OPEN,
    K_BOOK_END,
    K_CLEAR,
    K_FX,
    K_LAST,
    K_LEVEL,
    K_TRADE,
    VENUE_FX,
    EventBatch,
    make_batch,
)

MINUTE_NS = 60_000_000_000


def bars_to_events(ts_open: np.ndarray, open_: np.ndarray, close: np.ndarray, venue: int,
                   bar_ns: int = MINUTE_NS) -> EventBatch:
    """Each bar gives its open at the bar start and its close at the last nanosecond of the bar.

    A decision on a close therefore meets, after any latency, the next bar's open: never its own close.
    """
    n = ts_open.shape[0]
    ts = np.empty(2 * n, dtype=np.int64)
    ts[0::2], ts[1::2] = ts_open, ts_open + bar_ns - 1
    px = np.empty(2 * n)
    px[0::2], px[1::2] = open_, close
    kinds = np.empty(2 * n, dtype=np.int8)
    kinds[0::2], kinds[1::2] = K_BAR_OPEN, K_BAR_CLOSE
    return make_batch(ts, venue, kinds, px)


def last_to_events(ts_replay: np.ndarray, ts_venue: np.ndarray, price: np.ndarray, venue: int) -> EventBatch:
    order = np.argsort(ts_replay, kind="stable")
    return make_batch(ts_replay[order], venue, K_LAST, price[order], ts_venue=ts_venue[order])


def fx_to_events(ts: np.ndarray, rate: np.ndarray, ts_venue: np.ndarray | None = None,
                 valid_ns: int = 0) -> EventBatch:
    """FX events at replay time ``ts``; ``ts_venue`` is the rate's own time (the kernel judges its age from it:
    a recording that repeats an old rate under a new receive time is not fresh), ``valid_ns`` how long after
    that time it may be used (in ``qty``; 0 = the kernel's default for daily reference rates)."""
    order = np.argsort(ts, kind="stable")
    tv = ts if ts_venue is None else ts_venue
    return make_batch(ts[order], VENUE_FX, K_FX, rate[order], np.full(ts.shape[0], float(valid_ns)),
                      ts_venue=tv[order])


def book_snapshots_to_events(ts: np.ndarray, snapshot: np.ndarray, side: np.ndarray, price: np.ndarray,
                             qty: np.ndarray, venue: int, ts_venue: np.ndarray | None = None) -> EventBatch:
    """Rows = one level each (sorted by snapshot, then side/level): CLEAR, the levels, BOOK_END."""
    if ts.shape[0] == 0:
        return make_batch(ts, venue, K_LEVEL, price)
    tv = ts if ts_venue is None else ts_venue
    starts = np.flatnonzero(np.r_[True, snapshot[1:] != snapshot[:-1]])
    ends = np.r_[starts[1:], ts.shape[0]]
    n_snap, n_rows = starts.shape[0], ts.shape[0]
    total = n_rows + 2 * n_snap
    out_ts = np.empty(total, np.int64)
    out_tv = np.empty(total, np.int64)
    out_kind = np.empty(total, np.int8)
    out_side = np.zeros(total, np.int8)
    out_px = np.zeros(total)
    out_qty = np.zeros(total)
    pos = 0
    for s, e in zip(starts, ends, strict=True):
        m = e - s
        out_ts[pos:pos + m + 2] = ts[s]
        out_tv[pos:pos + m + 2] = tv[s]
        out_kind[pos] = K_CLEAR
        out_kind[pos + 1:pos + 1 + m] = K_LEVEL
        out_side[pos + 1:pos + 1 + m] = side[s:e]
        out_px[pos + 1:pos + 1 + m] = price[s:e]
        out_qty[pos + 1:pos + 1 + m] = qty[s:e]
        out_kind[pos + 1 + m] = K_BOOK_END
        pos += m + 2
    return make_batch(out_ts, venue, out_kind, out_px, out_qty, out_side, out_tv)


def depth_diffs_to_events(ts_local: np.ndarray, ts_venue: np.ndarray, last_update_id: np.ndarray,
                          side: np.ndarray, price: np.ndarray, qty: np.ndarray, venue: int) -> EventBatch:
    """Binance diff rows (one per level change) → level events, a BOOK_END after each diff message."""
    if ts_local.shape[0] == 0:
        return make_batch(ts_local, venue, K_LEVEL, price)
    ends = np.flatnonzero(np.r_[last_update_id[1:] != last_update_id[:-1], True])
    n_rows, n_msg = ts_local.shape[0], ends.shape[0]
    total = n_rows + n_msg
    # positions: each row shifted by the number of BOOK_END markers before it
    msg_index = np.zeros(n_rows, np.int64)
    msg_index[ends[:-1] + 1] = 1
    msg_index = np.cumsum(msg_index)
    row_pos = np.arange(n_rows) + msg_index
    end_pos = ends + np.arange(n_msg) + 1
    out_ts = np.empty(total, np.int64)
    out_tv = np.empty(total, np.int64)
    out_kind = np.empty(total, np.int8)
    out_side = np.zeros(total, np.int8)
    out_px = np.zeros(total)
    out_qty = np.zeros(total)
    out_ts[row_pos], out_tv[row_pos], out_kind[row_pos] = ts_local, ts_venue, K_LEVEL
    out_side[row_pos], out_px[row_pos], out_qty[row_pos] = side, price, qty
    out_ts[end_pos], out_tv[end_pos], out_kind[end_pos] = ts_local[ends], ts_venue[ends], K_BOOK_END
    return make_batch(out_ts, venue, out_kind, out_px, out_qty, out_side, out_tv)


def trades_to_events(ts_local: np.ndarray, ts_venue: np.ndarray, price: np.ndarray, qty: np.ndarray,
                     aggressor: np.ndarray, venue: int) -> EventBatch:
    return make_batch(ts_local, venue, K_TRADE, price, qty, aggressor, ts_venue)
