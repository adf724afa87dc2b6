"""Venue market state shared by the replay kernel and the paper venue: books, quotes, and leg execution.

One venue's view is a sorted book (up to ``MAX_LEVELS`` per side) or, for bar/snapshot data, a quote
(mid and a declared half spread).

A side that had to drop levels for capacity knows the venue's book only down to the best price it dropped
(``Q_BOUND``): it keeps exactly the venue's levels better than that bound and ignores every update at or past
it. So its kept levels are always the venue's top levels, and when they are all gone the best price is
unknown (``Q_UNKNOWN``): no quote until the next snapshot (K_CLEAR ... K_BOOK_END) restores the side.
(On the real 11-minute Binance L2 recording, 64 levels leave the best price unknown at 6,245 of 6,494 book
ends; it takes about 1,100 to keep it known throughout: tests/test_book_depth.py.)

``apply_market_event`` and ``execute_leg`` are the single implementation of "what the market looks like"
and "what an order gets": the backtest kernel and the simulated venue of paper trading call the very same
functions.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .events import K_BAR_CLOSE, K_BAR_OPEN, K_BOOK_END, K_CLEAR, K_LAST, K_LEVEL
from .fill_model import model_price_units, walk_levels
from .rules import SCALE, upbit_krw_tick_units

MAX_LEVELS = 64

# per-venue quote slots (float64 array ``q`` of shape (2, N_QUOTE))
Q_MID, Q_HALF_SPREAD, Q_HAS_BOOK, Q_CROSSED, Q_TS = 0, 1, 2, 3, 4
Q_UNKNOWN = 5  # 1.0 from a BOOK_END at which a side's best price was unknown (see the module docstring)
Q_BOUND = 6  # Q_BOUND + side: sign * price of the best level dropped for capacity since the last snapshot
N_QUOTE = 8
NO_BOUND = np.inf  # nothing dropped: the side knows the whole book it was sent


def new_books(levels: int = MAX_LEVELS) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(book_px, book_q, book_n, quotes) for two venues, empty, ``levels`` a side."""
    quotes = np.zeros((2, N_QUOTE))
    quotes[:, Q_TS] = -1.0
    quotes[:, Q_BOUND:Q_BOUND + 2] = NO_BOUND
    return (np.zeros((2, 2, levels)), np.zeros((2, 2, levels)), np.zeros((2, 2), np.int64), quotes)


@njit(cache=True, inline="always")
def set_level(book_px: np.ndarray, book_q: np.ndarray, quotes: np.ndarray, v: int, sidx: int, n: int,
              price: float, qty: float) -> int:
    """Set one price level of side ``sidx`` (0 bids descending, 1 asks ascending) of venue ``v``'s book;
    qty 0 deletes. A side keeps its best ``book_px.shape[2]`` levels: a level it drops for room lowers the
    side's known-to bound (``Q_BOUND``), and an update at or past the bound is ignored (its price is in a
    part of the book this side no longer knows: keeping it would leave a hole above it).

    Takes the whole book (no per-event array views); returns the side's new level count.
    """
    cap = book_px.shape[2]
    sgn = 1.0 if sidx == 1 else -1.0  # on sgn * price, "better than" is "<" for both sides (exact sign flip)
    key = sgn * price
    if n == 0 or sgn * book_px[v, sidx, n - 1] < key:  # past the last level: far updates, snapshots best first
        # (only here can a price be at or past the bound: every kept level is better than it)
        if qty <= 0.0 or not key < quotes[v, Q_BOUND + sidx]:
            return n  # deleting an unknown level, or a price in the depth this side no longer knows
        if n == cap:
            quotes[v, Q_BOUND + sidx] = key  # dropped for capacity: the side now knows the book down to here
            return n
        book_px[v, sidx, n] = price
        book_q[v, sidx, n] = qty
        return n + 1
    i = 0  # the first level not better than price = the number of better ones
    if n <= MAX_LEVELS:  # branch-free and vectorized (the default depth: as fast as before deep books)
        for j in range(n):
            i += sgn * book_px[v, sidx, j] < key
    else:  # a deep book (raw exchange L2, costs.book_levels): binary search over the sorted levels
        hi = n
        while i < hi:
            mid = (i + hi) >> 1
            if sgn * book_px[v, sidx, mid] < key:
                i = mid + 1
            else:
                hi = mid
    # shifts index with np.uint64: no negative-index wraparound, so LLVM vectorizes them
    if book_px[v, sidx, i] == price:
        if qty > 0.0:
            book_q[v, sidx, i] = qty
            return n
        for j in range(i, n - 1):
            book_px[v, sidx, np.uint64(j)] = book_px[v, sidx, np.uint64(j + 1)]
        for j in range(i, n - 1):
            book_q[v, sidx, np.uint64(j)] = book_q[v, sidx, np.uint64(j + 1)]
        return n - 1
    if qty <= 0.0:
        return n  # deleting an unknown level
    last = n if n < cap else cap - 1  # a full side drops its worst level: known down to it from now on
    if n == cap:
        quotes[v, Q_BOUND + sidx] = sgn * book_px[v, sidx, last]
    for j in range(last, i, -1):
        book_px[v, sidx, np.uint64(j)] = book_px[v, sidx, np.uint64(j - 1)]
    for j in range(last, i, -1):
        book_q[v, sidx, np.uint64(j)] = book_q[v, sidx, np.uint64(j - 1)]
    book_px[v, sidx, i] = price
    book_q[v, sidx, i] = qty
    return n + 1 if n < cap else n


@njit(cache=True, inline="always")
def apply_level(v: int, sd: int, price: float, qty: float, book_px: np.ndarray, book_q: np.ndarray,
                book_n: np.ndarray, quotes: np.ndarray) -> None:
    """One book level update (the hot path of an L2 replay: the kernel calls it directly)."""
    sidx = 1 if sd == 1 else 0
    if price > 0.0 and qty >= 0.0:  # false for NaN too
        book_n[v, sidx] = set_level(book_px, book_q, quotes, v, sidx, book_n[v, sidx], price, qty)
    if quotes[v, Q_HAS_BOOK] == 0.0:
        quotes[v, Q_HAS_BOOK] = 1.0


@njit(cache=True, inline="always")
def apply_market_event(kd: int, v: int, sd: int, price: float, qty: float, t: int, tv: int,
                       book_px: np.ndarray, book_q: np.ndarray, book_n: np.ndarray, quotes: np.ndarray,
                       declared_half_spread_bps: float) -> bool:
    """Apply one book/quote event of venue ``v``; True when the venue's quote (mid) was refreshed.

    Never a quote from a NaN / non-positive price; a crossed or one-sided book is flagged, not traded. A
    book whose best price is unknown (a side emptied past levels dropped for capacity) gives no quote: it
    is flagged ``Q_UNKNOWN`` (True is returned, so a decision sees and rejects it) and keeps its last stamp,
    so a leg waits for a known book or expires.
    """
    if kd == K_LEVEL:
        apply_level(v, sd, price, qty, book_px, book_q, book_n, quotes)
        return False
    if kd == K_CLEAR:
        book_n[v, 0] = 0
        book_n[v, 1] = 0
        quotes[v, Q_HAS_BOOK] = 1.0
        quotes[v, Q_BOUND] = NO_BOUND
        quotes[v, Q_BOUND + 1] = NO_BOUND
        return False
    if kd == K_BOOK_END:
        if (book_n[v, 0] == 0 and quotes[v, Q_BOUND] < NO_BOUND) or (
                book_n[v, 1] == 0 and quotes[v, Q_BOUND + 1] < NO_BOUND):
            quotes[v, Q_UNKNOWN] = 1.0
            return True
        quotes[v, Q_UNKNOWN] = 0.0
        if book_n[v, 0] > 0 and book_n[v, 1] > 0:
            bid, ask = book_px[v, 0, 0], book_px[v, 1, 0]
            quotes[v, Q_CROSSED] = 1.0 if bid >= ask else 0.0
            quotes[v, Q_MID] = 0.5 * (bid + ask)
            quotes[v, Q_HALF_SPREAD] = (ask - bid) / (bid + ask) * 1e4
        else:
            quotes[v, Q_CROSSED] = 1.0  # a one-sided book is not tradable
        quotes[v, Q_TS] = tv if tv >= 0 else t
        return True
    if kd == K_BAR_OPEN or kd == K_BAR_CLOSE or kd == K_LAST:  # noqa: SIM109 (numba)
        if not (price > 0.0):
            return False
        quotes[v, Q_MID] = price
        quotes[v, Q_HALF_SPREAD] = declared_half_spread_bps
        quotes[v, Q_CROSSED] = 0.0
        quotes[v, Q_TS] = tv if tv >= 0 else t
        return True
    return False


# what a leg due at ``due`` does at a check (book.leg_outcome)
LEG_WAIT, LEG_FILL, LEG_EXPIRE = 0, 1, 2


@njit(cache=True)
def leg_outcome(quote_ts: float, due: int, deadline: int, now: int, at_end: bool) -> int:
    """Whether a leg (an order arriving at ``due``) fills now, has expired, or waits for a quote.

    It fills only against a quote the venue stamped at or after its arrival (the market it actually met),
    and only if that quote came by ``deadline`` (the maximum wait); past it, or at the end of the data,
    it expires unfilled. Checked by the replay kernel before each event after ``due`` and by the paper
    venue before each of its own events (``now``: that event's time), with the venue's quote as it stands:
    the same rule, the same outcome.
    """
    if quote_ts >= due:
        return LEG_FILL if quote_ts <= deadline else LEG_EXPIRE
    if at_end or now > deadline:
        return LEG_EXPIRE
    return LEG_WAIT


@njit(cache=True)
def depth_units(book_q: np.ndarray, book_n: np.ndarray, v: int, sidx: int) -> int:
    total = 0.0
    for i in range(book_n[v, sidx]):
        total += book_q[v, sidx, i]
    return int(total * SCALE)


@njit(cache=True)
def tick_units(v: int, price: float, ts: int, binance_tick_units: int) -> int:
    if v == 0:
        return upbit_krw_tick_units(int(price * SCALE), ts)
    return binance_tick_units


@njit(cache=True)
def execute_leg(book_px: np.ndarray, book_q: np.ndarray, book_n: np.ndarray, quotes: np.ndarray, v: int,
                sd: int, qty_units: int, at_ns: int, half_spread_bps: float, impact_bps_per_m: float,
                binance_tick_units: int, out_px: np.ndarray, out_qty: np.ndarray) -> int:
    """What a taker order of ``qty_units`` gets on venue ``v`` from the market as it is now.

    With a book: walk the kept levels of the side it hits, which are exactly the venue's best levels;
    partial when they run out (past a capacity bound, :func:`depth_cut`, the rest is unknown, never
    guessed). Without: one fill at the bar cost model price on the venue's grid (tick looked up at
    ``at_ns``). Returns the fill count. Callers first ask :func:`leg_outcome` whether the market as it is
    now is one the order can meet.
    """
    if quotes[v, Q_HAS_BOOK] > 0.5:
        sidx = 1 if sd > 0 else 0
        return walk_levels(book_px[v, sidx], book_q[v, sidx], book_n[v, sidx], qty_units, out_px, out_qty)
    mid = quotes[v, Q_MID]
    if not (mid > 0.0):
        return 0
    out_px[0] = model_price_units(mid, sd, mid * qty_units / SCALE, half_spread_bps, impact_bps_per_m,
                                  tick_units(v, mid, at_ns, binance_tick_units))
    out_qty[0] = qty_units
    return 1


@njit(cache=True)
def depth_cut(quotes: np.ndarray, v: int, sd: int) -> bool:
    """Whether the side a taker order of side ``sd`` hits dropped levels for capacity: a walk that used up
    its kept levels stopped at the end of what the book knows, not at the end of the venue's depth."""
    return quotes[v, Q_BOUND + (1 if sd > 0 else 0)] < NO_BOUND
