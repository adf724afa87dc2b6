"""Live market data (core.venue types) -> the kernel's event rows, one message at a time.

The backtest builds its events from the store in bulk (core.event_builders); a live route gets each venue
message as it arrives and needs the same rows: a full book as CLEAR, its levels, BOOK_END (a decision point);
an applied depth diff as its level changes then BOOK_END; a trade as one TRADE row; the USDT/KRW rate as one
FX row; a market status as one STATUS row. ``ts`` is the local receive time (the live clock, the same for every
source), ``ts_venue`` the venue's stamp: the kernel judges quote age and cross-venue skew by it.

Prices become floats here, for the signal math only: orders, fills and the ledger stay exact (the order leaves
with the venue's own Decimal grid, core.venue / infra.live.gateway).
"""

from __future__ import annotations

import numpy as np

from .events import (
    K_BOOK_END,
    K_CLEAR,
    K_FX,
    K_LEVEL,
    K_STATUS,
    K_TRADE,
    VENUE_FX,
    VENUE_STATUS,
    EventBatch,
)
from .venue import BookDelta, BookLevel, BookSnapshot, Trade

FX_VALID_NS = 60 * 1_000_000_000  # a live USDT/KRW mid older than this is not used (the kernel refuses to open)


def _batch(ts: int, tv: int, venue: int, kinds: list[int], sides: list[int], px: list[float],
           qty: list[float]) -> EventBatch:
    n = len(kinds)
    return EventBatch(np.full(n, ts, np.int64), np.full(n, tv, np.int64), np.full(n, venue, np.int8),
                      np.array(kinds, np.int8), np.array(sides, np.int8), np.array(px, np.float64),
                      np.array(qty, np.float64))


def _levels(bids: tuple[BookLevel, ...], asks: tuple[BookLevel, ...], kinds: list[int], sides: list[int],
            px: list[float], qty: list[float]) -> None:
    for side, levels in ((0, bids), (1, asks)):
        for lv in levels:
            kinds.append(K_LEVEL)
            sides.append(side)
            px.append(float(lv.price))
            qty.append(float(lv.qty))


def book_events(venue: int, snap: BookSnapshot, depth: int = 20) -> EventBatch:
    """A whole book (an Upbit orderbook message, a Binance book after a resync): it replaces the kernel's."""
    kinds, sides, px, qty = [K_CLEAR], [0], [0.0], [0.0]
    _levels(snap.bids[:depth], snap.asks[:depth], kinds, sides, px, qty)
    kinds.append(K_BOOK_END)
    sides.append(0)
    px.append(0.0)
    qty.append(0.0)
    return _batch(snap.ts_local, venue_time(snap.ts_venue), venue, kinds, sides, px, qty)


def venue_time(ts_venue: int) -> int:
    """A venue stamp, -1 when the venue gave none: a Binance REST depth snapshot comes with 0, which the kernel
    would take for a quote from 1970 (stale until the next diff) while the recorded store says -1 (unknown: the
    receive time counts) -- the backtest of a recorded run would decide where live could not."""
    return ts_venue if ts_venue > 0 else -1


def delta_events(venue: int, delta: BookDelta) -> EventBatch:
    """An applied depth diff: its level changes (qty 0 removes a level), then BOOK_END."""
    kinds: list[int] = []
    sides: list[int] = []
    px: list[float] = []
    qty: list[float] = []
    _levels(delta.bids, delta.asks, kinds, sides, px, qty)
    kinds.append(K_BOOK_END)
    sides.append(0)
    px.append(0.0)
    qty.append(0.0)
    return _batch(delta.ts_local, venue_time(delta.ts_venue), venue, kinds, sides, px, qty)


def trade_event(venue: int, trade: Trade) -> EventBatch:
    return _batch(trade.ts_local, trade.ts_venue, venue, [K_TRADE], [int(trade.aggressor)], [float(trade.price)],
                  [float(trade.qty)])


def fx_event(rate: float, ts_local: int, ts_venue: int, valid_ns: int = FX_VALID_NS) -> EventBatch:
    """USDT/KRW from a live book mid: valid ``valid_ns`` from the venue's stamp (a daily reference rate is not)."""
    return _batch(ts_local, ts_venue, VENUE_FX, [K_FX], [0], [rate], [float(valid_ns)])


def status_event(bits: int, ts_local: int) -> EventBatch:
    """The route's status bitmask (core.events STATUS_*): any bit set and the route may not open."""
    return _batch(ts_local, ts_local, VENUE_STATUS, [K_STATUS], [0], [float(bits)], [0.0])


def book_mid(snap: BookSnapshot) -> float | None:
    """The mid of a book's best levels, or None for an empty, one-sided or crossed book."""
    if not snap.bids or not snap.asks:
        return None
    return fx_mid(float(snap.bids[0].price), float(snap.asks[0].price))


def fx_mid(bid: float, ask: float) -> float | None:
    """USDT/KRW from the best levels of Upbit's KRW-USDT book (live and a recorded book alike: the same float
    arithmetic on the same float prices); None for a crossed or empty side."""
    if not (0 < bid < ask):
        return None
    return (bid + ask) / 2


def fx_keep(rate: float, ts_venue: int, last_rate: float | None, last_ts_venue: int, refresh_ns: int) -> bool:
    """Whether a book's rate is handed to the routes: a new rate, or the same one ``refresh_ns`` after the last
    handed over (by the venue's time; else it would age out while the market is quiet)."""
    return rate != last_rate or ts_venue - last_ts_venue >= refresh_ns


def fx_from_books(ts_local: np.ndarray, ts_venue: np.ndarray, bid: np.ndarray, ask: np.ndarray,
                  refresh_ns: int, valid_ns: int = FX_VALID_NS) -> EventBatch:
    """The FX rows a live feed hands its routes from a sequence of KRW-USDT books (best bid/ask per book, NaN
    for an empty side), in order: what a replay of a recorded KRW-USDT book must see."""
    keep: list[int] = []
    rates: list[float] = []
    last: float | None = None
    last_tv = -1
    for k in range(ts_local.shape[0]):
        mid = fx_mid(float(bid[k]), float(ask[k]))
        if mid is None or not fx_keep(mid, int(ts_venue[k]), last, last_tv, refresh_ns):
            continue
        last, last_tv = mid, int(ts_venue[k])
        keep.append(k)
        rates.append(mid)
    idx = np.array(keep, np.int64)
    n = idx.shape[0]
    return EventBatch(ts_local[idx].astype(np.int64), ts_venue[idx].astype(np.int64), np.full(n, VENUE_FX, np.int8),
                      np.full(n, K_FX, np.int8), np.zeros(n, np.int8), np.array(rates, np.float64),
                      np.full(n, float(valid_ns)))
