"""Columnar market events for replay: one struct-of-arrays batch, sorted by replay time.

``ts`` is the replay clock (the local receive time where the recording has one, else the venue time);
``ts_venue`` is what the venue stamped (-1 if it stamps nothing, e.g. Binance bookTicker).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

VENUE_UPBIT, VENUE_BINANCE, VENUE_FX = 0, 1, 2
VENUE_STATUS = 3  # market-status events of the route (pair guard, universe, exchange status)

# event kinds
K_BAR_OPEN = 0  # px = bar open (the market right after the previous bar)
K_BAR_CLOSE = 1  # px = bar close; a decision point
K_LAST = 2  # px = last-trade snapshot; a decision point
K_LEVEL = 3  # side, px, qty: set one book level (qty 0 deletes it)
K_CLEAR = 4  # clear the venue's book (a full snapshot follows)
K_BOOK_END = 5  # end of a snapshot or diff batch; a decision point
K_TRADE = 6  # px, qty, side = aggressor
K_FX = 7  # px = KRW per USDT (or per USD); ts_venue = the rate's own time; qty = its validity in ns (0: default)
K_STATUS = 8  # px = the route's status bitmask (STATUS_*); any bit set: the route may not open (closes may)

# status bits (K_STATUS px)
STATUS_STRUCTURAL = 1  # premium far from the universe's common premium for long (another asset, closed channel)
STATUS_EXCHANGE = 2  # the exchange flags the market (warning, caution, halt, deposit/withdraw suspension)
STATUS_OUT_OF_UNIVERSE = 4  # not in the top-N universe at the last re-rank
STATUS_HISTORY = 8  # not enough past data yet to rank, guard or estimate its spread floor
STATUS_NAMES = {STATUS_STRUCTURAL: "structural_premium", STATUS_EXCHANGE: "exchange_status",
                STATUS_OUT_OF_UNIVERSE: "out_of_universe", STATUS_HISTORY: "insufficient_history"}

DECISION_KINDS = (K_BAR_CLOSE, K_LAST, K_BOOK_END)


@dataclass(frozen=True)
class EventBatch:
    ts: np.ndarray  # int64 ns, non-decreasing
    ts_venue: np.ndarray  # int64 ns, -1 unknown
    venue: np.ndarray  # int8
    kind: np.ndarray  # int8
    side: np.ndarray  # int8 (book: 0 bid / 1 ask; trade: +1 buy / -1 sell aggressor)
    px: np.ndarray  # float64
    qty: np.ndarray  # float64

    def __post_init__(self) -> None:
        n = self.ts.shape[0]
        for name in ("ts_venue", "venue", "kind", "side", "px", "qty"):
            if getattr(self, name).shape[0] != n:
                raise ValueError(f"event column {name} has {getattr(self, name).shape[0]} rows, expected {n}")
        if n > 1 and bool(np.any(np.diff(self.ts) < 0)):
            raise ValueError("events are not sorted by ts")

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    @staticmethod
    def concat_sorted(parts: list[EventBatch]) -> EventBatch:
        """Merge batches into one time-ordered stream; ties keep the order of ``parts`` (deterministic)."""
        parts = [p for p in parts if len(p)]
        if not parts:
            return empty_batch()
        cols = {name: np.concatenate([getattr(p, name) for p in parts])
                for name in ("ts", "ts_venue", "venue", "kind", "side", "px", "qty")}
        order = np.argsort(cols["ts"], kind="stable")
        return EventBatch(**{k: v[order] for k, v in cols.items()})

    def slice_time(self, start_ns: int | None, end_ns: int | None) -> EventBatch:
        lo = 0 if start_ns is None else int(np.searchsorted(self.ts, start_ns, side="left"))
        hi = len(self) if end_ns is None else int(np.searchsorted(self.ts, end_ns, side="left"))
        return EventBatch(**{k: getattr(self, k)[lo:hi]
                             for k in ("ts", "ts_venue", "venue", "kind", "side", "px", "qty")})


def make_batch(ts: np.ndarray, venue: int, kind: np.ndarray | int, px: np.ndarray,
               qty: np.ndarray | None = None, side: np.ndarray | None = None,
               ts_venue: np.ndarray | None = None) -> EventBatch:
    n = ts.shape[0]
    kinds = np.full(n, kind, dtype=np.int8) if isinstance(kind, int) else kind.astype(np.int8)
    return EventBatch(
        ts=ts.astype(np.int64),
        ts_venue=(ts if ts_venue is None else ts_venue).astype(np.int64),
        venue=np.full(n, venue, dtype=np.int8),
        kind=kinds,
        side=np.zeros(n, dtype=np.int8) if side is None else side.astype(np.int8),
        px=px.astype(np.float64),
        qty=np.zeros(n, dtype=np.float64) if qty is None else qty.astype(np.float64),
    )


def empty_batch() -> EventBatch:
    z = np.zeros(0, dtype=np.int64)
    return EventBatch(z, z, z.astype(np.int8), z.astype(np.int8), z.astype(np.int8),
                      z.astype(np.float64), z.astype(np.float64))


def fx_to_events_like(quotes: EventBatch, keep: np.ndarray, rates: np.ndarray) -> EventBatch:
    """The rows of ``quotes`` that ``keep`` selects, with their rates replaced (aggregated FX)."""
    return EventBatch(quotes.ts[keep], quotes.ts_venue[keep], quotes.venue[keep], quotes.kind[keep],
                      quotes.side[keep], rates[keep].astype(np.float64), quotes.qty[keep])
