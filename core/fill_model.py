"""Fill model: walk real book levels when there is a book, else a declared bar cost model.

Both return fills on the venue's price grid in 1e-8 units, so the ledger stays exact. The bar model is
``mid * (1 ± (half_spread + impact_per_M * notional / 1e6) / 1e4)``, rounded against us onto the grid; its
coefficients are calibrated from real top-N books by :func:`calibrate_cost_model` and never zero by default.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .rules import SCALE, price_to_grid


@njit(cache=True)
def walk_levels(level_px: np.ndarray, level_qty: np.ndarray, n_levels: int, qty_units: int,
                out_px: np.ndarray, out_qty: np.ndarray) -> int:
    """Take ``qty_units`` from the given side's levels (best first); write one fill per level touched.

    Returns the number of fills; their quantities sum to less than asked when depth runs out (a partial
    fill). Level prices are taken as they are on the book (already on the grid).
    """
    remaining = qty_units
    k = 0
    for i in range(n_levels):
        if remaining <= 0:
            break
        avail = int(level_qty[i] * SCALE + 0.5)
        if avail <= 0:
            continue
        take = avail if avail < remaining else remaining
        out_px[k] = int(level_px[i] * SCALE + 0.5)
        out_qty[k] = take
        remaining -= take
        k += 1
    return k


@njit(cache=True)
def model_price_units(mid: float, side: int, notional_quote: float, half_spread_bps: float,
                      impact_bps_per_m: float, tick_units: int) -> int:
    """Bar-mode fill price: the mid moved against us by half the spread plus size-dependent impact."""
    cost_bps = half_spread_bps + impact_bps_per_m * notional_quote / 1e6
    return price_to_grid(mid * (1.0 + side * cost_bps / 1e4), tick_units, side)


def walk_cost_bps(bids: np.ndarray, asks: np.ndarray, notional_quote: float) -> tuple[float, float]:
    """(half spread bps, extra impact bps) of a taker buy of ``notional_quote`` through one snapshot.

    ``bids``/``asks`` are (n, 2) arrays of [price, qty], best first. Impact is measured past the half
    spread: VWAP against the touch. Returns NaN impact if the snapshot is too thin for the size.
    """
    best_bid, best_ask = float(bids[0, 0]), float(asks[0, 0])
    mid = 0.5 * (best_bid + best_ask)
    half_spread = (best_ask - mid) / mid * 1e4
    remaining, cost_qty, cost_val = notional_quote, 0.0, 0.0
    for px, q in asks:
        take_val = min(remaining, float(px) * float(q))
        cost_val += take_val
        cost_qty += take_val / float(px)
        remaining -= take_val
        if remaining <= 1e-12:
            break
    if remaining > 1e-9:
        return half_spread, float("nan")
    vwap = cost_val / cost_qty
    return half_spread, (vwap - best_ask) / mid * 1e4


def calibrate_cost_model(snapshots: list[tuple[np.ndarray, np.ndarray]],
                         sizes_quote: list[float]) -> tuple[float, float]:
    """Fit (half_spread_bps, impact_bps_per_M_quote) on real snapshots.

    Half spread: the median over snapshots. Impact: least squares through the origin of walk impact (bps)
    against size (millions of quote currency) over all snapshots and sizes the books are deep enough for.
    """
    if not snapshots:
        raise ValueError("no book snapshots to calibrate on")
    spreads, xs, ys = [], [], []
    for bids, asks in snapshots:
        if bids[0, 0] >= asks[0, 0]:
            continue  # crossed: never used
        for size in sizes_quote:
            hs, imp = walk_cost_bps(bids, asks, size)
            spreads.append(hs)
            if imp == imp:
                xs.append(size / 1e6)
                ys.append(imp)
    if not spreads:
        raise ValueError("every snapshot was crossed")
    x, y = np.asarray(xs), np.asarray(ys)
    slope = float((x * y).sum() / (x * x).sum()) if x.size and (x * x).sum() > 0 else 0.0
    return float(np.median(spreads)), max(slope, 0.0)


def roll_half_spread_bps(prices: np.ndarray) -> float:
    """Roll (1984) estimate of half the bid-ask spread from last-trade prices, in bps.

    Trades bouncing between bid and ask make successive returns negatively correlated:
    half spread = sqrt(-cov(r_t, r_{t-1})). Zero when the covariance is not negative (no bounce seen).
    Used as a floor for snapshot data, where the last price is not a mid and its bounce is not an edge.
    """
    p = prices[np.isfinite(prices) & (prices > 0)]
    if p.shape[0] < 10:
        return 0.0
    r = np.diff(np.log(p))
    cov = float(np.cov(r[1:], r[:-1])[0, 1])
    return float(np.sqrt(-cov) * 1e4) if cov < 0 else 0.0
