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

Only book-resolution routes stream (bars and snapshots are small: a month of 1m bars is 86k events).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from numba import njit

from ..core.config import CostConfig, EngineConfig
from ..core.driver import StreamCursor
from ..core.events import VENUE_BINANCE, VENUE_FX, VENUE_UPBIT, EventBatch
from ..core.replay import RouteResult, build_result, kernel_params, new_state
from ..core.rules import InstrumentRules
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
STREAM_ABOVE_ROWS = 20_000_000  # the backtest streams a route whose market series hold more rows than this


@njit(cache=True)
def _merge_into(ts: np.ndarray, tv: np.ndarray, venue: np.ndarray, kind: np.ndarray, side: np.ndarray,
                px: np.ndarray, qty: np.ndarray, bounds: np.ndarray, o_ts: np.ndarray, o_tv: np.ndarray,
                o_venue: np.ndarray, o_kind: np.ndarray, o_side: np.ndarray, o_px: np.ndarray,
                o_qty: np.ndarray) -> None:
    """Rows of k sorted runs (run r at [bounds[r], bounds[r+1])) written out in (time, run) order: the
    merge and the gather in one pass over the columns."""
    k = bounds.shape[0] - 1
    pos = bounds[:-1].copy()
    n = bounds[k] - bounds[0]
    for j in range(n):
        best = -1
        bt = 0
        for r in range(k):
            if pos[r] < bounds[r + 1]:
                t = ts[pos[r]]
                if best < 0 or t < bt:
                    best, bt = r, t
        i = pos[best]
        pos[best] += 1
        o_ts[j], o_tv[j], o_venue[j], o_kind[j] = ts[i], tv[i], venue[i], kind[i]
        o_side[j], o_px[j], o_qty[j] = side[i], px[i], qty[i]


def merge_batches(parts: Sequence[EventBatch]) -> EventBatch:
    """Sorted batches merged by (time, place in ``parts``): ``EventBatch.concat_sorted`` for sorted inputs."""
    parts = [p for p in parts if len(p)]
    if len(parts) == 1:
        return parts[0]
    ts, tv, venue, kind, side, px, qty = (np.concatenate([getattr(p, c) for p in parts]) for c in COLS)
    bounds = np.cumsum([0, *(len(p) for p in parts)]).astype(np.int64)
    out = {c: np.empty_like(a) for c, a in zip(COLS, (ts, tv, venue, kind, side, px, qty), strict=True)}
    _merge_into(ts, tv, venue, kind, side, px, qty, bounds, out["ts"], out["ts_venue"], out["venue"], out["kind"],
                out["side"], out["px"], out["qty"])
    return _raw_batch(out)


@dataclass
class _Feed:
    it: Iterator[EventBatch]
    market: bool
    batch: EventBatch
    done: bool = False
    trim: bool = False  # none after the last market event (FX)

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


def merged_chunks(feeds: list[_Feed], stats: StreamStats) -> Iterator[EventBatch]:
    """The feeds merged, cut so that no instant spans two chunks. ``stats.last_market`` is known at the end;
    FX events after it are dropped (the in-memory stream has none after the data)."""
    while True:
        open_ = [f for f in feeds if not f.done]
        horizon = min((int(f.batch.ts[-1]) for f in open_ if f.market), default=None)
        if horizon is None:  # the market data is all read: what is left of it ends the stream
            for f in feeds:
                if f.market and len(f.batch):
                    stats.last_market = max(stats.last_market, int(f.batch.ts[-1]))
        parts = []
        for f in feeds:
            if horizon is not None:
                cut = int(np.searchsorted(f.batch.ts, horizon, side="left"))
            elif f.trim:
                cut = int(np.searchsorted(f.batch.ts, stats.last_market, side="right"))
            else:
                cut = len(f.batch)
            parts.append(cut_batch(f.batch, 0, cut))
            if f.market and cut:
                stats.last_market = max(stats.last_market, int(f.batch.ts[cut - 1]))
            f.batch = cut_batch(f.batch, cut)
        out = merge_batches(parts)
        if len(out):
            stats.events += len(out)
            stats.chunks += 1
            stats.max_chunk = max(stats.max_chunk, len(out))
            yield out
        if horizon is None:
            return
        for f in open_:
            if f.market and (not len(f.batch) or int(f.batch.ts[-1]) == horizon):
                f.pull()


@dataclass(frozen=True)
class RouteStream:
    """What a streamed replay reads: the route's market series (ranked as in the in-memory concatenation), its
    FX and status events, the window and the chunk size. Plain data: it travels to a Ray worker."""

    sources: tuple[Source, ...]
    fx: EventBatch
    status: EventBatch
    start: int | None
    end: int | None
    chunk_rows: int
    first_market: int

    def feeds(self) -> list[_Feed]:
        out = [_Feed(iter(()), False, self.fx, True, trim=True), _Feed(iter(()), False, self.status, True)]
        for src in self.sources:
            f = _Feed(source_events(src, self.chunk_rows, self.start, self.end), True, _empty())
            f.pull()
            out.append(f)
        return [f for f in out if len(f.batch) or not f.done]

    def chunks(self, stats: StreamStats | None = None) -> Iterator[EventBatch]:
        stats = stats if stats is not None else StreamStats()
        stats.first_market = self.first_market
        return merged_chunks(self.feeds(), stats)


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
                      chunk_rows: int = DEFAULT_CHUNK_ROWS) -> RouteData:
    """``market_data.load_route`` for a book route, without reading its market data: the events stay in the
    store until ``run_route_stream`` reads them chunk by chunk."""
    from .universe import plan_universe

    store = Store(store_root)
    if route_resolution(store, base) != "book":
        raise DataError(f"route {base}: only order-book routes stream (bars and snapshots replay in memory)")
    if universe is None:
        universe = plan_universe(store_root, base, start, end)
    fx, fx_source = _fx_events(store, start, end, int(costs.max_quote_age_s * 1e9))
    sources = market_sources(store, base)
    first_market, has_u, has_b = _first_market(sources, start, end)
    if not (has_u and has_b):
        raise DataError(f"route {base}: no data in the requested window")
    # book routes have no priced decision events (BOOK_END carries no price): history ends min_history after
    hist_end = first_market + int(universe.guard.min_history_s * 1e9)
    status, periods = route_status(universe, base, first_market, hist_end)
    fx = fx_from(fx, first_market)
    rules, rules_source = binance_usdt_rules(base)
    plan = RouteStream(sources, fx, status, start, end, chunk_rows, first_market)
    return RouteData(base, EventBatch.concat_sorted([fx, status]), "book", fx_source, rules, rules_source,
                     with_book_depth(store, base, costs),
                     upbit_traded_value(store, base, chunk_rows), usd_krw_series(store, fx_source, start, end),
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
