"""Load one route's market data from the store as a replay event stream (the I/O edge of the backtest)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..core.book import MAX_LEVELS
from ..core.config import CostConfig, GuardConfig, VenueCosts
from ..core.event_builders import (
    bars_to_events,
    book_snapshots_to_events,
    depth_diffs_to_events,
    fx_to_events,
    last_to_events,
    trades_to_events,
)
from ..core.events import DECISION_KINDS, VENUE_BINANCE, VENUE_UPBIT, EventBatch
from ..core.fill_model import roll_half_spread_bps
from ..core.fx import FxSource
from ..core.rules import SCALE, InstrumentRules, upbit_krw_tick_units
from ..errors import UserError
from ..infra.data.store import Store
from ..infra.exchange_rules import binance_usdt_rules

if TYPE_CHECKING:
    from .stream_replay import RouteStream
    from .universe import StatusPeriod, Universe

DAY_NS = 86_400_000_000_000
RESOLUTIONS = ("book", "1m bars", "snapshots")


class DataError(UserError):
    """The store lacks what a route needs; the message says what is missing."""


@dataclass(frozen=True)
class RouteData:
    base: str
    events: EventBatch
    resolution: str
    fx_source: str
    binance: InstrumentRules
    binance_rules_source: str
    costs: CostConfig  # the run's costs with per-route spread floors applied
    traded_value_krw: float
    usd_krw: tuple[np.ndarray, np.ndarray] | None = None  # (ts, rate) when FX is USDT/KRW: splits the premium
    status_periods: tuple[StatusPeriod, ...] = ()  # when the route could not open, and why (K_STATUS events)
    universe: Universe | None = None
    # streamed (scenarios.stream_replay): ``events`` holds the FX and status events only, the market events are
    # read from the store in chunks at replay time; ``n_events`` is the whole stream's size once replayed
    stream: RouteStream | None = None
    n_events: int = -1

    @property
    def event_count(self) -> int:
        return self.n_events if self.n_events >= 0 else len(self.events)


def _np(table: pa.Table, col: str) -> np.ndarray:
    return table.column(col).to_numpy(zero_copy_only=False)


def _window(table: pa.Table, start: int | None, end: int | None, col: str = "ts", lead_ns: int = 0) -> pa.Table:
    if start is not None:
        table = table.filter(pc.greater_equal(table[col], start - lead_ns))
    if end is not None:
        table = table.filter(pc.less(table[col], end))
    return table


def stored_book_depth(store: Store, base: str) -> int:
    """The most levels one side of a stored book snapshot holds (either venue; 0 without books), read from the
    Parquet column statistics where they exist (no market data read)."""
    import pyarrow.parquet as pq

    depth = 0
    for venue, symbol in (("binance", f"{base}-USDT"), ("upbit", f"{base}-KRW")):
        if not store.has("book", venue, symbol):
            continue
        meta = pq.ParquetFile(store.path("book", venue, symbol)).metadata
        names = [meta.schema.column(i).name for i in range(meta.num_columns)]
        if "level" not in names:
            continue
        col = names.index("level")
        stats = [meta.row_group(g).column(col).statistics for g in range(meta.num_row_groups)]
        if all(s is not None and s.has_min_max for s in stats):
            depth = max([depth, *(int(s.max) + 1 for s in stats if s is not None)])
        else:
            level = store.read("book", venue, symbol, ["level"]).column("level")
            depth = max(depth, int(pc.max(level).as_py() or -1) + 1)
    return depth


def with_book_depth(store: Store, base: str, costs: CostConfig) -> CostConfig:
    """``costs`` with the book depth a book route needs (``costs.book_levels`` None: by the data). Stored
    snapshots deeper than the default depth (raw exchange L2) get their depth plus a quarter, in 64s: with
    the default 64 levels the real 1,000-level Binance L2 left the best price unknown at 6,245 of 6,494 book
    ends (tests/test_book_depth.py)."""
    if costs.book_levels is not None:
        return costs
    depth = stored_book_depth(store, base)
    if depth <= MAX_LEVELS:
        return costs
    return costs.model_copy(update={"book_levels": -(-depth * 5 // 4 // 64) * 64})


def route_resolution(store: Store, base: str) -> str | None:
    u, b = f"{base}-KRW", f"{base}-USDT"
    if store.has("book", "upbit", u) and (store.has("book", "binance", b) or store.has("depth_diff", "binance", b)):
        return "book"
    if store.has("bars_1m", "upbit", u) and store.has("bars_1m", "binance", b):
        return "1m bars"
    if store.has("last", "upbit", u) and store.has("last", "binance", b):
        return "snapshots"
    return None


def traded_value_krw(store: Store, base: str, resolution: str) -> float:
    """What ``top:N`` ranks by: Upbit KRW value traded in the data (24h figures averaged for snapshots)."""
    if resolution == "1m bars":
        t = store.read("bars_1m", "upbit", f"{base}-KRW", columns=["close", "volume"])
        return float(np.nansum(_np(t, "close") * _np(t, "volume")))
    if resolution == "snapshots":
        t = store.read("last", "upbit", f"{base}-KRW", columns=["volume24h_krw"])
        v = _np(t, "volume24h_krw").astype(np.float64)
        return float(np.nanmean(v)) if np.isfinite(v).any() else 0.0
    t = store.read("book", "upbit", f"{base}-KRW", columns=["price", "qty"])
    return float(np.nansum(_np(t, "price") * _np(t, "qty")))


def _fx_events(store: Store, start: int | None, end: int | None,
               max_quote_age_ns: int = 120 * 1_000_000_000) -> tuple[EventBatch, str]:
    """FX as the route sees it: at its receive time, with its own time as ``ts_venue``. Upbit's KRW-USDT is a
    traded price, fresh for ``max_quote_age_ns`` like any quote; a daily USD/KRW rate of day D is stamped at
    D+1 00:00 UTC (known once its day is over) and keeps the kernel's multi-day validity (no weekend rates)."""
    if store.has("last", "upbit", "USDT-KRW"):
        t = _window(store.read("last", "upbit", "USDT-KRW"), start, end, lead_ns=7 * DAY_NS)
        if t.num_rows:
            tv = _np(t, "ts")
            ts = _np(t, "ts_local")
            ts = np.where(ts >= 0, ts, tv)
            return (fx_to_events(ts, _np(t, "price"), np.minimum(tv, ts), max_quote_age_ns),
                    FxSource.UPBIT_USDT_KRW.value)
    if store.has("book", "upbit", "USDT-KRW"):  # a live run's recording: the book the live feed took FX from
        from ..infra.live.venue_record import fx_from_book_table

        fx = fx_from_book_table(_window(store.read("book", "upbit", "USDT-KRW"), start, end, lead_ns=7 * DAY_NS))
        if len(fx):
            return fx, FxSource.UPBIT_USDT_KRW.value
    if store.has("fx", "ref", "USD-KRW"):
        t = _window(store.read("fx", "ref", "USD-KRW"), start, end, lead_ns=7 * DAY_NS)
        if t.num_rows:
            tv = _np(t, "ts")
            if t.num_rows > 1 and float(np.median(np.diff(tv))) >= 0.8 * DAY_NS:
                tv = tv + DAY_NS  # a daily rate is only known once its day is over: no look-ahead
            ts = _np(t, "ts_local")
            ts = np.maximum(np.where(ts >= 0, ts, tv), tv)  # known when received, never before its own time
            return fx_to_events(ts, _np(t, "rate"), tv), FxSource.USD_KRW.value
    if start is not None or end is not None:
        raise DataError("no FX in the store for the requested --from/--to window: widen it, or import FX for it")
    raise DataError("no FX in the store: import Upbit KRW-USDT snapshots or a USD/KRW file first")


def _venue_events(store: Store, resolution: str, venue: str, symbol: str, code: int,
                  start: int | None, end: int | None) -> EventBatch:
    if resolution == "1m bars":
        t = _window(store.read("bars_1m", venue, symbol), start, end)
        return bars_to_events(_np(t, "ts"), _np(t, "open"), _np(t, "close"), code)
    if resolution == "snapshots":
        t = _window(store.read("last", venue, symbol), start, end)
        ts_local = _np(t, "ts_local")
        return last_to_events(np.where(ts_local >= 0, ts_local, _np(t, "ts")), _np(t, "ts"), _np(t, "price"), code)
    parts = []
    if store.has("book", venue, symbol):
        t = _window(store.read("book", venue, symbol), start, end)
        ts_local = _np(t, "ts_local")
        parts.append(book_snapshots_to_events(np.where(ts_local >= 0, ts_local, _np(t, "ts")), _np(t, "snapshot"),
                                              _np(t, "side"), _np(t, "price"), _np(t, "qty"), code, _np(t, "ts")))
    if store.has("depth_diff", venue, symbol):
        t = _window(store.read("depth_diff", venue, symbol), start, end, "ts_local")
        parts.append(depth_diffs_to_events(_np(t, "ts_local"), _np(t, "ts"), _np(t, "last_update_id"),
                                           _np(t, "side"), _np(t, "price"), _np(t, "qty"), code))
    if store.has("trades", venue, symbol):
        t = _window(store.read("trades", venue, symbol), start, end, "ts_local")
        parts.append(trades_to_events(_np(t, "ts_local"), _np(t, "ts"), _np(t, "price"), _np(t, "qty"),
                                      _np(t, "aggressor"), code))
    return EventBatch.concat_sorted(parts)


def _with_floor(costs: VenueCosts, floor_bps: float) -> VenueCosts:
    return costs.model_copy(update={"half_spread_bps": max(costs.half_spread_bps, floor_bps)})


MIN_FLOOR_OBS = 30  # prices per venue a spread-floor estimate needs (the Roll estimator wants a few dozen)


def _floors(ev_u: EventBatch, ev_b: EventBatch, tick_b: int, resolution: str, until: int) -> tuple[float, float]:
    """Spread floors (bps) from the prices before ``until`` only: one tick is the narrowest spread a book can
    show, and last prices bounce between bid and ask (Roll): that bounce is a cost, not an edge."""
    u = ev_u.px[(ev_u.ts < until) & (ev_u.px > 0)]
    b = ev_b.px[(ev_b.ts < until) & (ev_b.px > 0)]
    mid_u = float(np.nanmedian(u)) if u.size else 0.0
    mid_b = float(np.nanmedian(b)) if b.size else 0.0
    tick_u = upbit_krw_tick_units(int(mid_u * SCALE), until) if mid_u else 0
    floor_u = 0.5 * tick_u / (mid_u * SCALE) * 1e4 if mid_u else 0.0
    floor_b = 0.5 * tick_b / (mid_b * SCALE) * 1e4 if mid_b else 0.0
    if resolution == "snapshots":
        floor_u = max(floor_u, roll_half_spread_bps(u))
        floor_b = max(floor_b, roll_half_spread_bps(b))
    return floor_u, floor_b


def _history_end(ev_u: EventBatch, ev_b: EventBatch, first: int, min_history_ns: int) -> int:
    """When the route has ``min_history_ns`` of data and enough prices on each venue to estimate its floors."""
    end = first + min_history_ns
    for ev in (ev_u, ev_b):
        ts = ev.ts[np.isin(ev.kind, DECISION_KINDS) & (ev.px > 0)]
        if ts.size >= MIN_FLOOR_OBS:
            end = max(end, int(ts[MIN_FLOOR_OBS - 1]) + 1)
        elif ts.size:
            end = max(end, int(ts[-1]) + 1)  # never enough: the route never opens
    return end


def fx_from(fx: EventBatch, first_market: int) -> EventBatch:
    """The FX events from the last rate at or before the market data's first event on."""
    keep_from = int(fx.ts[max(int(np.searchsorted(fx.ts, first_market, side="right")) - 1, 0)])
    return fx.slice_time(keep_from, None)


def route_status(universe: Universe, base: str, first_market: int,
                 hist_end: int) -> tuple[EventBatch, tuple[StatusPeriod, ...]]:
    """The route's K_STATUS events and its status periods (the history period ends at ``hist_end``)."""
    from .universe import history_period

    hist = history_period(universe.guard, first_market)
    periods = tuple(universe.periods.get(base, ()))
    if hist is not None:
        periods = (dataclasses.replace(hist, end_ns=hist_end), *periods)
    return dataclasses.replace(universe, periods={base: periods}).status_events(base, first_market), periods


def usd_krw_series(store: Store, fx_source: str, start: int | None,
                   end: int | None) -> tuple[np.ndarray, np.ndarray] | None:
    """USD/KRW (receive time, rate) when the FX is Upbit's USDT/KRW: it splits the premium."""
    if fx_source != FxSource.UPBIT_USDT_KRW.value or not store.has("fx", "ref", "USD-KRW"):
        return None
    t = _window(store.read("fx", "ref", "USD-KRW"), start, end, lead_ns=7 * DAY_NS)
    tl = _np(t, "ts_local")
    usd = (np.maximum(np.where(tl >= 0, tl, _np(t, "ts")), _np(t, "ts")), _np(t, "rate").astype(np.float64))
    order = np.argsort(usd[0], kind="stable")
    return usd[0][order], usd[1][order]


def load_route(store_root: Path, base: str, costs: CostConfig, start: int | None = None,
               end: int | None = None, universe: Universe | None = None) -> RouteData:
    """One route's events, from the past only: FX at its receive time with its own age, status events (pair
    guard, universe, exchange, history) from ``universe`` (default: the route alone, default guard), and
    spread floors estimated on the route's first ``guard.min_history_s`` of data, before which it may not open."""
    from .universe import plan_universe

    store = Store(store_root)
    resolution = route_resolution(store, base)
    if resolution is None:
        raise DataError(f"route {base}: the store has no pair of series for it (need Upbit {base}-KRW and "
                        f"Binance {base}-USDT as bars_1m, last or book)")
    if universe is None:
        universe = plan_universe(store_root, base, start, end)
    fx, fx_source = _fx_events(store, start, end, int(costs.max_quote_age_s * 1e9))
    ev_u = _venue_events(store, resolution, "upbit", f"{base}-KRW", VENUE_UPBIT, start, end)
    ev_b = _venue_events(store, resolution, "binance", f"{base}-USDT", VENUE_BINANCE, start, end)
    if len(ev_u) == 0 or len(ev_b) == 0:
        raise DataError(f"route {base}: no data in the requested window")
    last_market = max(int(ev_u.ts[-1]), int(ev_b.ts[-1]))
    first_market = min(int(ev_u.ts[0]), int(ev_b.ts[0]))
    fx = fx_from(fx, first_market).slice_time(None, last_market + 1)  # none after the data
    hist_end = _history_end(ev_u, ev_b, first_market, int(universe.guard.min_history_s * 1e9))
    status, periods = route_status(universe, base, first_market, hist_end)
    # status first: a change stamped at an instant is known to the decision of that instant (paper: upbit feed)
    events = EventBatch.concat_sorted([fx, status, ev_u, ev_b])
    rules, rules_source = binance_usdt_rules(base)
    floor_u, floor_b = _floors(ev_u, ev_b, rules.tick_units, resolution, hist_end)
    route_costs = with_book_depth(store, base, costs)
    if resolution != "book":
        route_costs = costs.model_copy(update={"upbit": _with_floor(costs.upbit, floor_u),
                                               "binance": _with_floor(costs.binance, floor_b)})
    usd = usd_krw_series(store, fx_source, start, end)
    return RouteData(base, events, resolution, fx_source, rules, rules_source, route_costs,
                     traded_value_krw(store, base, resolution), usd, periods, universe)


def available_routes(store_root: Path) -> list[tuple[str, str]]:
    """(base, resolution) for every base with data on both venues."""
    store = Store(store_root)
    bases = sorted({s.symbol.split("-")[0] for s in store.series() if s.venue == "upbit"
                    and s.symbol.endswith("-KRW") and s.symbol != "USDT-KRW"})
    out = []
    for base in bases:
        res = route_resolution(store, base)
        if res is not None:
            out.append((base, res))
    return out


def parse_top(spec: str) -> int | None:
    """N of ``top:N``; None for a list of symbols."""
    spec = spec.strip()
    if not spec.lower().startswith("top:"):
        return None
    try:
        n = int(spec[4:])
    except ValueError:
        raise DataError(f"bad route spec {spec!r}: expected top:N with N a positive integer") from None
    if n <= 0:
        raise DataError(f"bad route spec {spec!r}: N must be positive")
    return n


def resolve_routes(store_root: Path, spec: str, start: int | None = None, end: int | None = None,
                   guard: GuardConfig | None = None) -> list[str]:
    """``BTC,ETH``, or ``top:N``: every coin that enters the top N by trailing Upbit traded value at some
    re-rank (scenarios.universe; a coin trades only while it is in the last ranking)."""
    spec = spec.strip()
    avail = dict(available_routes(store_root))
    if not avail:
        raise DataError(f"the store at {store_root} has no route with data on both venues; run 'data import' first")
    if parse_top(spec) is not None:
        from .universe import plan_universe

        return list(plan_universe(store_root, spec, start, end, guard).routes)
    routes = [s.strip().upper() for s in spec.split(",") if s.strip()]
    if not routes:
        raise DataError("empty route spec: give symbols (BTC,ETH) or top:N")
    missing = [r for r in routes if r not in avail]
    if missing:
        raise DataError(f"no data on both venues for {', '.join(missing)}; available: "
                        f"{', '.join(sorted(avail)[:30])}{' ...' if len(avail) > 30 else ''}")
    return list(dict.fromkeys(routes))


__all__ = ["RESOLUTIONS", "DataError", "Decimal", "RouteData", "available_routes", "load_route", "resolve_routes"]
