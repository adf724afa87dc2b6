"""Load one route's market data from the store as a replay event stream (the I/O edge of the backtest)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..core.config import CostConfig, VenueCosts
from ..core.event_builders import (
    bars_to_events,
    book_snapshots_to_events,
    depth_diffs_to_events,
    fx_to_events,
    last_to_events,
    trades_to_events,
)
from ..core.events import VENUE_BINANCE, VENUE_UPBIT, EventBatch
from ..core.fill_model import roll_half_spread_bps
from ..core.fx import FxSource
from ..core.rules import SCALE, InstrumentRules, upbit_krw_tick_units
from ..errors import UserError
from ..infra.data.store import Store
from ..infra.exchange_rules import binance_usdt_rules

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


def _np(table: pa.Table, col: str) -> np.ndarray:
    return table.column(col).to_numpy(zero_copy_only=False)


def _window(table: pa.Table, start: int | None, end: int | None, col: str = "ts", lead_ns: int = 0) -> pa.Table:
    if start is not None:
        table = table.filter(pc.greater_equal(table[col], start - lead_ns))
    if end is not None:
        table = table.filter(pc.less(table[col], end))
    return table


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


def _fx_events(store: Store, start: int | None, end: int | None) -> tuple[EventBatch, str]:
    if store.has("last", "upbit", "USDT-KRW"):
        t = _window(store.read("last", "upbit", "USDT-KRW"), start, end, lead_ns=7 * DAY_NS)
        if t.num_rows:
            ts = _np(t, "ts_local")
            ts = np.where(ts >= 0, ts, _np(t, "ts"))
            return fx_to_events(ts, _np(t, "price")), FxSource.UPBIT_USDT_KRW.value
    if store.has("fx", "ref", "USD-KRW"):
        t = _window(store.read("fx", "ref", "USD-KRW"), start, end, lead_ns=7 * DAY_NS)
        if t.num_rows:
            ts = _np(t, "ts")
            if t.num_rows > 1 and float(np.median(np.diff(ts))) >= 0.8 * DAY_NS:
                ts = ts + DAY_NS  # a daily rate is only known once its day is over: no look-ahead
            return fx_to_events(ts, _np(t, "rate")), FxSource.USD_KRW.value
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


def load_route(store_root: Path, base: str, costs: CostConfig, start: int | None = None,
               end: int | None = None) -> RouteData:
    store = Store(store_root)
    resolution = route_resolution(store, base)
    if resolution is None:
        raise DataError(f"route {base}: the store has no pair of series for it (need Upbit {base}-KRW and "
                        f"Binance {base}-USDT as bars_1m, last or book)")
    fx, fx_source = _fx_events(store, start, end)
    ev_u = _venue_events(store, resolution, "upbit", f"{base}-KRW", VENUE_UPBIT, start, end)
    ev_b = _venue_events(store, resolution, "binance", f"{base}-USDT", VENUE_BINANCE, start, end)
    if len(ev_u) == 0 or len(ev_b) == 0:
        raise DataError(f"route {base}: no data in the requested window")
    last_market = max(int(ev_u.ts[-1]), int(ev_b.ts[-1]))
    first_market = min(int(ev_u.ts[0]), int(ev_b.ts[0]))
    keep_from = int(fx.ts[max(int(np.searchsorted(fx.ts, first_market, side="right")) - 1, 0)])
    fx = fx.slice_time(keep_from, last_market + 1)  # the last rate before the data, and none after it
    events = EventBatch.concat_sorted([fx, ev_u, ev_b])
    rules, rules_source = binance_usdt_rules(base)
    # Spread floors from the venues' own grids: one tick is the narrowest spread a book can show.
    mid_u = float(np.nanmedian(ev_u.px[ev_u.px > 0])) if (ev_u.px > 0).any() else 0.0
    mid_b = float(np.nanmedian(ev_b.px[ev_b.px > 0])) if (ev_b.px > 0).any() else 0.0
    tick_u = upbit_krw_tick_units(int(mid_u * SCALE), int(events.ts[-1])) if mid_u else 0
    floor_u = 0.5 * tick_u / (mid_u * SCALE) * 1e4 if mid_u else 0.0
    floor_b = 0.5 * rules.tick_units / (mid_b * SCALE) * 1e4 if mid_b else 0.0
    if resolution == "snapshots":  # last prices bounce between bid and ask: that bounce is a cost, not an edge
        floor_u = max(floor_u, roll_half_spread_bps(ev_u.px))
        floor_b = max(floor_b, roll_half_spread_bps(ev_b.px))
    route_costs = costs
    if resolution != "book":
        route_costs = costs.model_copy(update={"upbit": _with_floor(costs.upbit, floor_u),
                                               "binance": _with_floor(costs.binance, floor_b)})
    usd = None
    if fx_source == FxSource.UPBIT_USDT_KRW.value and store.has("fx", "ref", "USD-KRW"):
        t = _window(store.read("fx", "ref", "USD-KRW"), start, end, lead_ns=7 * DAY_NS)
        usd = (_np(t, "ts"), _np(t, "rate").astype(np.float64))
    return RouteData(base, events, resolution, fx_source, rules, rules_source, route_costs,
                     traded_value_krw(store, base, resolution), usd)


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


def resolve_routes(store_root: Path, spec: str) -> list[str]:
    """``BTC,ETH`` or ``top:N`` (Top-N bases on both venues by Upbit traded value in the data)."""
    spec = spec.strip()
    avail = dict(available_routes(store_root))
    if not avail:
        raise DataError(f"the store at {store_root} has no route with data on both venues; run 'data import' first")
    if spec.lower().startswith("top:"):
        try:
            n = int(spec[4:])
        except ValueError:
            raise DataError(f"bad route spec {spec!r}: expected top:N with N a positive integer") from None
        if n <= 0:
            raise DataError(f"bad route spec {spec!r}: N must be positive")
        store = Store(store_root)
        ranked = sorted(avail, key=lambda b: (-traded_value_krw(store, b, avail[b]), b))
        return ranked[:n]
    routes = [s.strip().upper() for s in spec.split(",") if s.strip()]
    if not routes:
        raise DataError("empty route spec: give symbols (BTC,ETH) or top:N")
    missing = [r for r in routes if r not in avail]
    if missing:
        raise DataError(f"no data on both venues for {', '.join(missing)}; available: "
                        f"{', '.join(sorted(avail)[:30])}{' ...' if len(avail) > 30 else ''}")
    return list(dict.fromkeys(routes))


__all__ = ["RESOLUTIONS", "DataError", "Decimal", "RouteData", "available_routes", "load_route", "resolve_routes"]
