"""Synthetic market streams for the replay benchmark, shaped by samples taken from the real L2 stream.

Everything is vectorized numpy with a caller-supplied ``np.random.Generator`` (deterministic for a seed).

* :func:`upbit_snapshot_rows` - Upbit KRW-BTC top-N full snapshots around a given KRW mid: spread, gaps
  between levels and level sizes drawn from real Upbit snapshots, prices on the 1,000 KRW tick.
* :func:`synthetic_stream` - a large two-venue stream: Binance depth diffs (levels-per-diff, distances from
  the touch, quantities, mid moves in ticks, diff cadence and trades per diff all bootstrapped from the real
  stream) plus trades, and Upbit snapshots at the same cadence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from arbitrage_lite.core.event_builders import depth_diffs_to_events, fx_to_events, trades_to_events
from arbitrage_lite.core.events import K_BOOK_END, K_CLEAR, K_LEVEL, VENUE_BINANCE, VENUE_UPBIT, EventBatch

UPBIT_TICK_KRW = 1000.0  # KRW-BTC tick for prices >= 2,000,000 KRW (table in force in 2024)
BINANCE_TICKS_PER_USDT = 100  # BTCUSDT tick 0.01
# Binance deep levels live on an absolute grid of this many ticks: the real top-64 bids/asks of the REST
# snapshot span about 2,000 ticks, i.e. ~32 ticks between levels (the touch itself is on any tick).
BINANCE_GRID_TICKS = 32


@dataclass(frozen=True)
class StreamShape:
    """Samples of the real stream that the synthetic generator bootstraps from."""

    diff_dt_ns: np.ndarray  # gaps between consecutive depth diffs (local clock)
    levels_per_diff: np.ndarray  # level rows per diff message
    mid_step_ticks: np.ndarray  # Binance mid change between consecutive diffs, in ticks
    row_side: np.ndarray  # side of each real level row (0 bid, 1 ask)
    row_dist_ticks: np.ndarray  # distance of each real level row from the mid, in ticks
    row_qty: np.ndarray  # quantity of each real level row (0 = delete)
    trades_per_diff: np.ndarray  # trades between consecutive diffs
    trade_qty: np.ndarray
    upbit_sizes: np.ndarray  # real Upbit level sizes (BTC)
    upbit_gaps: np.ndarray  # real gaps between adjacent Upbit levels, in ticks (>= 1)
    upbit_spread: np.ndarray  # real Upbit best-ask minus best-bid, in ticks (>= 1)


def premium(ts_ns: np.ndarray, t0_ns: int) -> np.ndarray:
    """A slowly wandering kimchi premium (fraction): 1.5 % plus a 4-minute and a 37-second swing."""
    t = (ts_ns - t0_ns) / 1e9
    return 0.015 + 0.0070 * np.sin(2 * np.pi * t / 240.0) + 0.0020 * np.sin(2 * np.pi * t / 37.0)


def between(ts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One time drawn uniformly between each time and the next (within 100 ms after the last): same cadence."""
    gap = np.r_[np.diff(ts), 100_000_000]
    return ts + (rng.random(ts.shape[0]) * gap).astype(np.int64)


def upbit_snapshot_rows(mid_krw: np.ndarray, n_levels: int, shape: StreamShape, rng: np.random.Generator
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(side, price, qty) of ``len(mid_krw)`` snapshots as (S, 2 * n_levels) arrays: bids best first, then asks."""
    s = mid_krw.shape[0]
    spread = rng.choice(shape.upbit_spread, s).astype(np.float64)
    best_bid = np.floor((mid_krw - 0.5 * spread * UPBIT_TICK_KRW) / UPBIT_TICK_KRW) * UPBIT_TICK_KRW
    best_ask = best_bid + spread * UPBIT_TICK_KRW
    depth = np.zeros((s, n_levels))
    depth[:, 1:] = np.cumsum(rng.choice(shape.upbit_gaps, (s, n_levels - 1)), axis=1) * UPBIT_TICK_KRW
    px = np.concatenate([best_bid[:, None] - depth, best_ask[:, None] + depth], axis=1)
    qty = rng.choice(shape.upbit_sizes, (s, 2 * n_levels))
    side = np.zeros((s, 2 * n_levels), np.int8)
    side[:, n_levels:] = 1
    return side, px, qty


def upbit_snapshot_events(ts: np.ndarray, side: np.ndarray, px: np.ndarray, qty: np.ndarray) -> EventBatch:
    """The events ``book_snapshots_to_events`` makes of regular snapshots (CLEAR, levels, BOOK_END each),
    laid out directly as an (S, 2N + 2) block instead of snapshot by snapshot."""
    s, m = px.shape
    kind = np.full((s, m + 2), K_LEVEL, np.int8)
    kind[:, 0], kind[:, -1] = K_CLEAR, K_BOOK_END
    out_side = np.zeros((s, m + 2), np.int8)
    out_px = np.zeros((s, m + 2))
    out_qty = np.zeros((s, m + 2))
    out_side[:, 1:-1], out_px[:, 1:-1], out_qty[:, 1:-1] = side, px, qty
    tsr = np.repeat(ts.astype(np.int64), m + 2)
    return EventBatch(ts=tsr, ts_venue=tsr.copy(), venue=np.full(s * (m + 2), VENUE_UPBIT, np.int8),
                      kind=kind.ravel(), side=out_side.ravel(), px=out_px.ravel(), qty=out_qty.ravel())


def _ragged(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For groups of the given sizes: the group of each item and the item's index inside its group."""
    group = np.repeat(np.arange(counts.shape[0]), counts)
    starts = np.cumsum(counts) - counts
    return group, np.arange(group.shape[0]) - starts[group]


def _binance_diff_rows(n_diffs: int, t0_ns: int, bid0_ticks: int, shape: StreamShape,
                       rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Depth-diff rows keeping the synthetic book uncrossed: per diff its ts; per row its diff id, side,
    price (ticks) and qty; per diff the best bid and ask (ticks).

    Best bid moves by real mid steps (ticks), best ask = best bid + 1 tick. Each diff: delete the previous
    touch levels that moved, delete the grid levels the touch moved through, set the new touch levels, then
    real-shaped deep levels (grid prices strictly behind the touch, real distances and quantities) up to the
    real levels-per-diff count. Every level is then behind the touch, so the book is never crossed.
    """
    g = BINANCE_GRID_TICKS
    ts = t0_ns + np.cumsum(rng.choice(shape.diff_dt_ns, n_diffs))
    step = rng.choice(shape.mid_step_ticks, n_diffs)
    step[0] = 0
    bid = bid0_ticks + np.cumsum(step)
    ask = bid + 1
    prev_bid, prev_ask = np.r_[bid[0], bid[:-1]], np.r_[ask[0], ask[:-1]]
    # grid levels the touch moved through: asks in [prev_ask, ask) going up, bids in (bid, prev_bid] going down
    n_up = np.maximum(-(-ask // g) - (-(-prev_ask // g)), 0)
    n_down = np.maximum(prev_bid // g - bid // g, 0)
    moved = step != 0
    n_struct = 2 * moved + n_up + n_down + 2
    n_deep = np.maximum(rng.choice(shape.levels_per_diff, n_diffs) - n_struct, 0)
    counts = n_struct + n_deep
    total = int(counts.sum())
    start = np.cumsum(counts) - counts
    side = np.zeros(total, np.int8)
    price = np.zeros(total, np.int64)
    qty = np.zeros(total)
    diff_id = np.repeat(np.arange(n_diffs), counts)
    # 1) the old touch levels, where the touch moved (deletes)
    k = np.flatnonzero(moved)
    pos = start[k]
    side[pos], price[pos] = 0, prev_bid[k]
    side[pos + 1], price[pos + 1] = 1, prev_ask[k]
    off = 2 * moved
    # 2) grid levels crossed by the move (deletes)
    grp, j = _ragged(n_up)
    pos = start[grp] + off[grp] + j
    side[pos], price[pos] = 1, -(-prev_ask[grp] // g) * g + j * g
    grp, j = _ragged(n_down)
    pos = start[grp] + off[grp] + n_up[grp] + j
    side[pos], price[pos] = 0, (prev_bid[grp] // g) * g - j * g
    # 3) the new touch
    pos = start + off + n_up + n_down
    nonzero_qty = shape.row_qty[shape.row_qty > 0]
    side[pos], price[pos], qty[pos] = 0, bid, rng.choice(nonzero_qty, n_diffs)
    side[pos + 1], price[pos + 1], qty[pos + 1] = 1, ask, rng.choice(nonzero_qty, n_diffs)
    # 4) deep levels: real (side, distance, qty) rows, snapped onto the grid behind the touch
    grp, j = _ragged(n_deep)
    pos = start[grp] + n_struct[grp] + j
    r = rng.integers(0, shape.row_side.shape[0], grp.shape[0])
    dist = np.maximum(shape.row_dist_ticks[r], 1)
    is_ask = shape.row_side[r] == 1
    side[pos] = is_ask
    price[pos] = np.where(is_ask, -(-(ask[grp] + dist) // g) * g, ((bid[grp] - dist) // g) * g)
    qty[pos] = shape.row_qty[r]
    return ts, diff_id, side, price, qty, bid, ask


def synthetic_stream(n_events: int, shape: StreamShape, fx: float, t0_ns: int, bid0_usdt: float,
                     upbit_levels: int, seed: int) -> EventBatch:
    """A two-venue stream of exactly ``n_events`` events (FX, Binance diffs + trades, Upbit snapshots)."""
    rng = np.random.default_rng(seed)
    per_diff = (shape.levels_per_diff.mean() + 1 + shape.trades_per_diff.mean() + 2 * upbit_levels + 2)
    n_diffs = int(n_events / per_diff * 1.05) + 16
    ts, diff_id, side, price, qty, bid, ask = _binance_diff_rows(
        n_diffs, t0_ns, round(bid0_usdt * BINANCE_TICKS_PER_USDT), shape, rng)
    row_ts = ts[diff_id]
    binance = depth_diffs_to_events(row_ts, row_ts, diff_id, side, price / BINANCE_TICKS_PER_USDT, qty,
                                    VENUE_BINANCE)
    # trades between consecutive diffs, at the touch of the diff before them
    n_tr = rng.choice(shape.trades_per_diff, n_diffs)
    grp, _ = _ragged(n_tr)
    gap = np.r_[np.diff(ts), 100_000_000][grp]
    t_ts = np.sort(ts[grp] + (rng.random(grp.shape[0]) * gap).astype(np.int64))
    aggressor = np.where(rng.random(grp.shape[0]) < 0.5, 1, -1).astype(np.int8)
    t_px = np.where(aggressor > 0, ask[grp], bid[grp]) / BINANCE_TICKS_PER_USDT
    trades = trades_to_events(t_ts, t_ts, t_px, rng.choice(shape.trade_qty, grp.shape[0]), aggressor,
                              VENUE_BINANCE)
    # Upbit: one top-N snapshot between each Binance diff and the next, at Binance mid x FX x (1 + premium)
    u_ts = between(ts, rng)
    mid_krw = (bid + ask) / (2 * BINANCE_TICKS_PER_USDT) * fx * (1.0 + premium(u_ts, t0_ns))
    upbit = upbit_snapshot_events(u_ts, *upbit_snapshot_rows(mid_krw, upbit_levels, shape, rng))
    fx_ev = fx_to_events(np.array([t0_ns - 1], np.int64), np.array([fx]))
    merged = EventBatch.concat_sorted([fx_ev, binance, trades, upbit])
    if len(merged) < n_events:
        raise ValueError(f"generated {len(merged)} events, fewer than the {n_events} asked")
    return EventBatch(**{k: getattr(merged, k)[:n_events]
                         for k in ("ts", "ts_venue", "venue", "kind", "side", "px", "qty")})
