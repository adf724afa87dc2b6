"""Streaming replay: a route's market events read from the store in chunks, merged across series on the fly
and fed to the resumable kernel, so memory stays bounded whatever the length of the data.

Same result as the in-memory path (``market_data.load_route`` + ``replay.run_route``) by construction:

* the in-memory stream is one stable sort by replay time of [FX, status, Upbit book / diffs / trades, Binance
  book / diffs / trades]; so the merge orders by (time, series rank, place in the series), each series read
  in its own stable order (``infra.data.stream_reader``);
* chunks handed to the kernel never split one instant (every event of chunk k is earlier than every event of
  chunk k+1): the kernel decides once all events of an instant are in, looking one event ahead;
* only the last chunk is ``final`` (legs still waiting expire at the end of the data, as in one pass);
* FX is kept from the last rate at or before the first market event, and none after the last one.

The market series are merged first (``merged_chunks``: chunks that each end an instant), then FX and status
events are merged into each chunk (``with_side_events``). The merged market chunks can be written once to an
event cache (``infra.data.event_cache``) and read back by later replays without decode or merge, and can be
read ahead (``read_ahead``): each series decoded and built on its own thread (pyarrow and most of numpy release
the GIL) while the merge and the kernel (compiled, they release it too) run on the caller's.

Only book-resolution routes stream (bars and snapshots are small: a month of 1m bars is 86k events).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

import numpy as np
from numba import njit

from ..core.config import CostConfig, EngineConfig
from ..core.driver import StreamCursor
from ..core.events import VENUE_BINANCE, VENUE_FX, VENUE_UPBIT, EventBatch
from ..core.replay import RouteResult, build_result, kernel_params, new_state
from ..core.rules import InstrumentRules
from ..infra.data import event_cache
from ..infra.data.read_ahead import read_ahead
from ..infra.data.store import Store
from ..infra.data.stream_reader import (
    COLS,
    DEFAULT_CHUNK_ROWS,
    Source,
    _raw_batch,
    cut_batch,
    first_time,
    source_events,
)
from ..infra.exchange_rules import binance_usdt_rules
from .market_data import (
    DataError,
    RouteData,
    _fx_events,
    fx_from,
    route_resolution,
    route_status,
    usd_krw_series,
    with_book_depth,
)
from .universe import Universe

MARKET_KINDS = ("book", "depth_diff", "trades")
T = TypeVar("T")
STREAM_ABOVE_ROWS = 20_000_000  # the backtest streams a route whose market series hold more rows than this


@njit(cache=True, nogil=True, inline="always")
def _copy(ts: np.ndarray, tv: np.ndarray, venue: np.ndarray, kind: np.ndarray, side: np.ndarray, px: np.ndarray,
          qty: np.ndarray, lo: int, hi: int, o_ts: np.ndarray, o_tv: np.ndarray, o_venue: np.ndarray,
          o_kind: np.ndarray, o_side: np.ndarray, o_px: np.ndarray, o_qty: np.ndarray, j: int) -> int:
    for i in range(lo, hi):
        o_ts[j], o_tv[j], o_venue[j], o_kind[j] = ts[i], tv[i], venue[i], kind[i]
        o_side[j], o_px[j], o_qty[j] = side[i], px[i], qty[i]
        j += 1
    return j


@njit(cache=True, nogil=True)
def _merge_into(ts: tuple[np.ndarray, ...], tv: tuple[np.ndarray, ...], venue: tuple[np.ndarray, ...],
                kind: tuple[np.ndarray, ...], side: tuple[np.ndarray, ...], px: tuple[np.ndarray, ...],
                qty: tuple[np.ndarray, ...], o_ts: np.ndarray, o_tv: np.ndarray, o_venue: np.ndarray,
                o_kind: np.ndarray, o_side: np.ndarray, o_px: np.ndarray, o_qty: np.ndarray) -> None:
    """k sorted runs (the columns of run r at index r of each tuple, not concatenated first) written out in
    (time, run) order: the merge and the gather in one pass. The chosen run is copied for as long as it stays
    ahead of every other run's head (a snapshot or a diff message is one stretch, not one choice per row)."""
    k = len(ts)
    pos = np.zeros(k, np.int64)
    j = 0
    while True:
        best, bt = -1, 0
        for r in range(k):
            if pos[r] < ts[r].shape[0] and (best < 0 or ts[r][pos[r]] < bt):
                best, bt = r, ts[r][pos[r]]
        if best < 0:
            return
        r2, t2 = k, 0  # the next run's head, by (time, run); k: no other run left
        for r in range(k):
            if r != best and pos[r] < ts[r].shape[0] and (r2 == k or ts[r][pos[r]] < t2):
                r2, t2 = r, ts[r][pos[r]]
        b_ts = ts[best]
        stop, end = pos[best], b_ts.shape[0]
        if r2 == k:
            stop = end
        else:  # best < r2 when their heads tie (best is the lowest run at the minimum time)
            while stop < end and (b_ts[stop] < t2 or (b_ts[stop] == t2 and best < r2)):
                stop += 1
        j = _copy(b_ts, tv[best], venue[best], kind[best], side[best], px[best], qty[best], pos[best], stop, o_ts,
                  o_tv, o_venue, o_kind, o_side, o_px, o_qty, j)
        pos[best] = stop


@njit(cache=True, nogil=True)
def _insert_into(s_ts: np.ndarray, s_tv: np.ndarray, s_venue: np.ndarray, s_kind: np.ndarray, s_side: np.ndarray,
                 s_px: np.ndarray, s_qty: np.ndarray, ts: np.ndarray, tv: np.ndarray, venue: np.ndarray,
                 kind: np.ndarray, side: np.ndarray, px: np.ndarray, qty: np.ndarray, o_ts: np.ndarray,
                 o_tv: np.ndarray, o_venue: np.ndarray, o_kind: np.ndarray, o_side: np.ndarray, o_px: np.ndarray,
                 o_qty: np.ndarray) -> None:
    """A few sorted events (``s_*``) merged into a sorted run, before its events of the same time: ``_merge_into``
    of [s, run] without concatenating the run first."""
    j = lo = 0
    for k in range(s_ts.shape[0]):
        hi = lo + np.searchsorted(ts[lo:], s_ts[k])
        j = _copy(ts, tv, venue, kind, side, px, qty, lo, hi, o_ts, o_tv, o_venue, o_kind, o_side, o_px, o_qty, j)
        j = _copy(s_ts, s_tv, s_venue, s_kind, s_side, s_px, s_qty, k, k + 1, o_ts, o_tv, o_venue, o_kind, o_side,
                  o_px, o_qty, j)
        lo = hi
    _copy(ts, tv, venue, kind, side, px, qty, lo, ts.shape[0], o_ts, o_tv, o_venue, o_kind, o_side, o_px, o_qty, j)


def insert_events(few: EventBatch, b: EventBatch) -> EventBatch:
    """``merge_batches([few, b])`` (``few`` first at equal times) for a small ``few``: no concatenation of ``b``."""
    if not len(few):
        return b
    out = {c: np.empty(len(few) + len(b), getattr(b, c).dtype) for c in COLS}
    _insert_into(*(getattr(few, c) for c in COLS), *(getattr(b, c) for c in COLS), *(out[c] for c in COLS))
    return _raw_batch(out)


def merge_batches(parts: Sequence[EventBatch]) -> EventBatch:
    """Sorted batches merged by (time, place in ``parts``): ``EventBatch.concat_sorted`` for sorted inputs."""
    parts = [p for p in parts if len(p)]
    if not parts:
        return _empty()
    if len(parts) == 1:
        return parts[0]
    n = sum(len(p) for p in parts)
    out = {c: np.empty(n, getattr(parts[0], c).dtype) for c in COLS}
    ts, tv, venue, kind, side, px, qty = (tuple(_readonly(getattr(p, c)) for p in parts) for c in COLS)
    _merge_into(ts, tv, venue, kind, side, px, qty, *(out[c] for c in COLS))
    return _raw_batch(out)


def _readonly(a: np.ndarray) -> np.ndarray:
    """A read-only view: the runs of one tuple must share one numba type (Arrow's and the cache's are read-only)."""
    v = a.view()
    v.flags.writeable = False
    return v


@dataclass
class _Feed:
    it: Iterator[EventBatch]
    batch: EventBatch
    done: bool = False

    def pull(self) -> None:
        nxt = next(self.it, None)
        if nxt is None:
            self.done = True
        elif len(self.batch):
            self.batch = _raw_batch({c: np.concatenate([getattr(self.batch, c), getattr(nxt, c)]) for c in COLS})
        else:
            self.batch = nxt


@dataclass
class StreamStats:
    events: int = 0
    first_market: int = -1
    last_market: int = -1
    chunks: int = 0
    max_chunk: int = 0


def merged_chunks(feeds: list[_Feed]) -> Iterator[EventBatch]:
    """The market feeds merged, cut so that no instant spans two chunks (each chunk ends an instant)."""
    while True:
        open_ = [f for f in feeds if not f.done]
        horizon = min((int(f.batch.ts[-1]) for f in open_), default=None)
        parts = []
        for f in feeds:
            cut = len(f.batch) if horizon is None else int(np.searchsorted(f.batch.ts, horizon, side="left"))
            parts.append(cut_batch(f.batch, 0, cut))
            f.batch = cut_batch(f.batch, cut)
        out = merge_batches(parts)
        if len(out):
            yield out
        if horizon is None:  # the market data is all read
            return
        for f in open_:
            if not len(f.batch) or int(f.batch.ts[-1]) == horizon:
                f.pull()


def with_side_events(market: Iterator[EventBatch], fx: EventBatch, status: EventBatch,
                     stats: StreamStats) -> Iterator[EventBatch]:
    """Market chunks (each ending an instant) with the FX and status events up to their end merged in, ranked
    before the market at equal times (the in-memory concatenation's order). FX after the last market event is
    dropped (the in-memory stream has none after the data); status events after it end the stream."""
    i_fx = i_st = 0

    def emit(out: EventBatch) -> EventBatch:
        stats.events += len(out)
        stats.chunks += 1
        stats.max_chunk = max(stats.max_chunk, len(out))
        return out

    for b in market:
        t = int(b.ts[-1])
        j_fx = int(np.searchsorted(fx.ts, t, side="right"))
        j_st = int(np.searchsorted(status.ts, t, side="right"))
        few = merge_batches([cut_batch(fx, i_fx, j_fx), cut_batch(status, i_st, j_st)])
        i_fx, i_st, stats.last_market = j_fx, j_st, t
        if not len(few):
            yield emit(b)
            continue
        # only the instants from the first to the last of them are copied: before and after, views of b
        lo = int(np.searchsorted(b.ts, few.ts[0], side="left"))
        hi = int(np.searchsorted(b.ts, few.ts[-1], side="right"))
        for out in (cut_batch(b, 0, lo), insert_events(few, cut_batch(b, lo, hi)), cut_batch(b, hi)):
            if len(out):
                yield emit(out)
    if i_st < len(status):
        yield emit(cut_batch(status, i_st))


@dataclass(frozen=True)
class RouteStream:
    """What a streamed replay reads: the route's market series (ranked as in the in-memory concatenation), its
    FX and status events, the window and the chunk size; optionally an event cache directory (its merged market
    events written by the first replay, read by the next ones) and read-ahead on a second thread. Plain data: it
    travels to a Ray worker."""

    sources: tuple[Source, ...]
    fx: EventBatch
    status: EventBatch
    start: int | None
    end: int | None
    chunk_rows: int
    first_market: int
    route: str = ""
    cache_dir: Path | None = None
    cache_compression: str | None = None
    read_ahead: bool = False

    def market_feeds(self) -> list[_Feed]:
        out = []
        for src in self.sources:
            it = source_events(src, self.chunk_rows, self.start, self.end)
            f = _Feed(read_ahead(it) if self.read_ahead else it, _empty())
            f.pull()
            out.append(f)
        return [f for f in out if len(f.batch) or not f.done]

    def cache_file(self) -> Path | None:
        if self.cache_dir is None:
            return None
        return event_cache.cache_path(self.cache_dir, self.route, self.sources, self.start, self.end,
                                      self.cache_compression)

    def market_chunks(self) -> Iterator[EventBatch]:
        """The merged market chunks: from the cache when it holds them, else decoded and merged (and written
        to the cache when there is one)."""
        path = self.cache_file()
        if path is not None and path.is_file():
            it = event_cache.read(path)
            return read_ahead(it) if self.read_ahead else it
        it = merged_chunks(self.market_feeds())  # read ahead: each series decoded and built on its own thread
        return event_cache.tee(path, it, self.cache_compression) if path is not None else it

    def chunks(self, stats: StreamStats | None = None) -> Iterator[EventBatch]:
        stats = stats if stats is not None else StreamStats()
        stats.first_market = self.first_market
        return with_side_events(self.market_chunks(), self.fx, self.status, stats)


def _empty() -> EventBatch:
    return _raw_batch({c: np.zeros(0, np.int64 if c.startswith("ts") else (np.int8 if c in ("venue", "kind", "side")
                                                                          else np.float64)) for c in COLS})


def market_sources(store: Store, base: str) -> tuple[Source, ...]:
    """The route's market series in the in-memory order (Upbit then Binance; book, diffs, trades)."""
    out = []
    rank = 2  # 0 FX, 1 status
    for venue, symbol, code in (("upbit", f"{base}-KRW", VENUE_UPBIT), ("binance", f"{base}-USDT", VENUE_BINANCE)):
        for kind in MARKET_KINDS:
            if store.has(kind, venue, symbol):
                out.append(Source(store.path(kind, venue, symbol), kind, code, rank))
            rank += 1
    return tuple(out)


def market_rows(store_root: Path, base: str) -> int:
    """Rows in the route's market series (Parquet metadata only): what decides streaming."""
    import pyarrow.parquet as pq

    total = 0
    for src in market_sources(Store(store_root), base):
        total += pq.ParquetFile(src.path).metadata.num_rows
    return total


def _first_market(sources: Sequence[Source], start: int | None, end: int | None) -> tuple[int, bool, bool]:
    """The first market event's time, and whether each venue has any event in the window (time columns only;
    a series out of order is refused when it is replayed, as the in-memory path refuses it)."""
    first, has = None, {VENUE_UPBIT: False, VENUE_BINANCE: False}
    for src in sources:
        t = first_time(src.path, src.kind, start, end)
        if t is not None:
            has[src.venue_code] = True
            first = t if first is None else min(first, t)
    return (first if first is not None else -1), has[VENUE_UPBIT], has[VENUE_BINANCE]


def upbit_traded_value(store: Store, base: str, chunk_rows: int) -> float:
    """``market_data.traded_value_krw`` for a book route, summed chunk by chunk (not used in any figure)."""
    import pyarrow.parquet as pq

    total = 0.0
    with pq.ParquetFile(store.path("book", "upbit", f"{base}-KRW")) as f:
        for rb in f.iter_batches(batch_size=chunk_rows, columns=["price", "qty"], use_threads=False):
            total += float(np.nansum(rb.column(0).to_numpy() * rb.column(1).to_numpy()))
    return total


def load_route_stream(store_root: Path, base: str, costs: CostConfig, start: int | None = None,
                      end: int | None = None, universe: Universe | None = None,
                      chunk_rows: int = DEFAULT_CHUNK_ROWS, cache_dir: Path | None = None,
                      cache_compression: str | None = None, read_ahead: bool = False) -> RouteData:
    """``market_data.load_route`` for a book route, without reading its market data: the events stay in the
    store until ``run_route_stream`` reads them chunk by chunk (``RouteStream`` for the cache and read-ahead)."""
    from .universe import plan_universe

    store = Store(store_root)
    if route_resolution(store, base) != "book":
        raise DataError(f"route {base}: only order-book routes stream (bars and snapshots replay in memory)")
    if universe is None:
        universe = plan_universe(store_root, base, start, end)
    fx, fx_source = _fx_events(store, start, end, int(costs.max_quote_age_s * 1e9))
    sources = market_sources(store, base)

    def memo(name: str, compute: Callable[[], T]) -> T:  # the event cache keeps these too
        return compute() if cache_dir is None else event_cache.memo(cache_dir, base, sources, name, compute)

    first_market, has_u, has_b = memo(f"first_market {start} {end}", lambda: _first_market(sources, start, end))
    if not (has_u and has_b):
        raise DataError(f"route {base}: no data in the requested window")
    # book routes have no priced decision events (BOOK_END carries no price): history ends min_history after
    hist_end = first_market + int(universe.guard.min_history_s * 1e9)
    status, periods = route_status(universe, base, first_market, hist_end)
    fx = fx_from(fx, first_market)
    rules, rules_source = binance_usdt_rules(base)
    plan = RouteStream(sources, fx, status, start, end, chunk_rows, first_market, base, cache_dir, cache_compression,
                       read_ahead)
    return RouteData(base, EventBatch.concat_sorted([fx, status]), "book", fx_source, rules, rules_source,
                     with_book_depth(store, base, costs),
                     memo("upbit_traded_value", lambda: upbit_traded_value(store, base, chunk_rows)),
                     usd_krw_series(store, fx_source, start, end),
                     periods, universe, stream=plan)


def run_route_stream(route: str, plan: RouteStream, cfg: EngineConfig, binance: InstrumentRules,
                     stats: StreamStats | None = None) -> RouteResult:
    """``replay.run_route`` over the store in chunks: same trades, PnL and counters, bounded memory."""
    stats = stats if stats is not None else StreamStats()
    state = new_state(cfg)
    cursor = StreamCursor(plan.chunks(stats))
    if cursor.cur is None:
        raise ValueError(f"route {route}: no events to replay")
    cursor.run(state, kernel_params(cfg, binance))
    return build_result(route, state, cfg, stats.first_market, stats.last_market)


def finish_data(data: RouteData, stats: StreamStats) -> RouteData:
    """The streamed route's data once replayed: its event count, and its FX cut at the last market event as
    the in-memory path cuts it (the premium split reads it)."""
    fx = data.events.venue == VENUE_FX
    keep = ~fx | (data.events.ts <= stats.last_market)
    kept = EventBatch(**{c: getattr(data.events, c)[keep] for c in COLS})
    return replace(data, events=kept, n_events=stats.events)
