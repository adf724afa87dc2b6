"""No look-ahead: top:N ranks on trailing traded value at re-rank times, spread floors come from the route's
first hours only, FX is judged by the rate's own timestamp."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from arbitrage_lite.core.config import CostConfig
from arbitrage_lite.core.event_builders import bars_to_events, fx_to_events
from arbitrage_lite.core.events import EventBatch
from arbitrage_lite.core.fill_model import roll_half_spread_bps
from arbitrage_lite.core.replay import run_route
from arbitrage_lite.infra.data.store import Store
from arbitrage_lite.scenarios.market_data import load_route, resolve_routes
from arbitrage_lite.scenarios.universe import plan_universe, traded_value_windows
from market_fixtures import BTC_RULES, FX, MIN, T0, config, spike_prices


def test_top_n_ranks_each_time_on_the_trailing_window_only(sample_stores: dict[str, Path]) -> None:
    store_root = sample_stores["multi"]
    u = plan_universe(store_root, "top:5")
    assert u.schedule, "the sample has a first ranking"
    store = Store(store_root)
    for at, members in u.schedule:
        vals = {b: float(traded_value_windows(store, b, "snapshots", np.array([at]), 86_400 * 10**9)[0])
                for b in u.routes}
        # the ranking at ``at`` is the one the past gives: volumes seen strictly before it
        assert list(members) == sorted((b for b in vals if vals[b] > 0), key=lambda b: (-vals[b], b))[:5]
    first_rank = u.schedule[0][0]
    t = store.read("last", "upbit", "XRP-KRW", columns=["ts_local", "volume24h_krw"])
    seen = t.column("ts_local").to_numpy()
    assert first_rank > int(seen[~np.isnan(t.column("volume24h_krw").to_numpy())][0])  # after the first volume
    assert resolve_routes(store_root, "top:5") == list(u.routes)
    # a route outside the ranking cannot open before its first ranking: the out-of-universe period says so
    for b in u.routes:
        outs = [p for p in u.periods[b] if p.bit == 4]
        assert outs and outs[0].start_ns < first_rank


def test_spread_floor_is_estimated_on_the_route_s_first_hours_only(sample_stores: dict[str, Path]) -> None:
    from arbitrage_lite.scenarios.market_data import _floors

    d = load_route(sample_stores["multi"], "XRP", CostConfig())
    hist = next(p for p in d.status_periods if p.bit == 8)  # no open before the floor is known
    assert hist.end_ns is not None
    ev = d.events
    ev_u = EventBatch(*(getattr(ev, c)[ev.venue == 0] for c in ("ts", "ts_venue", "venue", "kind", "side", "px",
                                                                  "qty")))
    ev_b = EventBatch(*(getattr(ev, c)[ev.venue == 1] for c in ("ts", "ts_venue", "venue", "kind", "side", "px",
                                                                  "qty")))
    past = _floors(ev_u, ev_b, d.binance.tick_units, "snapshots", hist.end_ns)
    whole = _floors(ev_u, ev_b, d.binance.tick_units, "snapshots", int(ev.ts[-1]) + 1)
    assert d.costs.upbit.half_spread_bps == max(CostConfig().upbit.half_spread_bps, past[0])
    assert d.costs.binance.half_spread_bps == max(CostConfig().binance.half_spread_bps, past[1])
    assert past != whole  # the old whole-window estimate (it saw the future) differs
    assert roll_half_spread_bps(ev_u.px[ev_u.ts < hist.end_ns]) > 0


def _market_with_fx(fx_ts: int, fx_ts_venue: int, valid_ns: int) -> EventBatch:
    u = spike_prices(at=60, until=80, bps=60.0)
    n = u.shape[0]
    ts = T0 + np.arange(n, dtype=np.int64) * MIN
    b = np.full(n, 100_000.0)
    fx = fx_to_events(np.array([fx_ts]), np.array([FX]), np.array([fx_ts_venue]), valid_ns)
    return EventBatch.concat_sorted([fx, bars_to_events(ts, np.r_[u[0], u[:-1]], u, 0), bars_to_events(ts, b, b, 1)])


def test_fx_age_is_judged_from_the_rate_s_own_timestamp() -> None:
    fresh = run_route("BTC", _market_with_fx(T0 - MIN, T0 - MIN, 3 * 3600 * 10**9), config(), BTC_RULES)
    assert fresh.counters["filled_both_legs"] == 1
    # received now, but the rate itself is 15 h old: a stale repeat (old code took its receive time as its age)
    stale = run_route("BTC", _market_with_fx(T0 - MIN, T0 - 15 * 3600 * 10**9, 3 * 3600 * 10**9), config(),
                      BTC_RULES)
    assert stale.counters["filled_both_legs"] == 0 and stale.counters["rejected_fx"] >= 1


def test_a_daily_rate_is_used_only_after_its_day_has_closed(sample_stores: dict[str, Path]) -> None:
    from arbitrage_lite.scenarios.market_data import _fx_events

    store = Store(sample_stores["btc"])
    fx, source = _fx_events(store, None, None)
    days = store.read("fx", "ref", "USD-KRW").column("ts").to_numpy()
    assert source == "usd_krw"
    assert np.all(fx.ts >= np.sort(days) + 86_400 * 10**9)  # day D's rate appears at D+1 00:00 UTC, not before
    assert np.array_equal(fx.ts_venue, fx.ts)
