from decimal import Decimal

import numpy as np

from arbitrage_lite.core.config import EngineConfig
from arbitrage_lite.core.domain import Side, Venue
from arbitrage_lite.core.replay import run_route
from market_fixtures import (
    BTC_RULES,
    MIN,
    T0,
    bar_market,
    book_market,
    config,
    spike_prices,
)


def test_spike_opens_sell_upbit_buy_binance_and_closes_on_revert() -> None:
    u = spike_prices(at=60, until=80, bps=60.0)
    res = run_route("BTC", bar_market(u), config(), BTC_RULES)
    assert res.counters["signals"] >= 1 and res.counters["filled_both_legs"] == 1
    (trip,) = res.trips
    assert trip.direction == 1 and trip.exit_reason == "revert" and trip.closed
    assert trip.ts[0] == T0 + 60 * MIN + MIN - 1  # decided on the close of the spike's first bar
    entry_u = [f for f in trip.fills if f.action == "open" and f.venue is Venue.UPBIT]
    entry_b = [f for f in trip.fills if f.action == "open" and f.venue is Venue.BINANCE]
    assert [f.side for f in entry_u] == [Side.SELL] and [f.side for f in entry_b] == [Side.BUY]
    assert entry_u[0].qty == entry_b[0].qty == trip.qty
    # 10M KRW at 140.84M KRW/BTC = 0.0710025... BTC, floored to Binance's 0.00001 step
    assert trip.qty == Decimal("0.07100")
    assert trip.pnl.net_krw == trip.pnl.gross_krw - trip.pnl.fees_krw - trip.pnl.slippage_krw
    assert trip.pnl.gross_krw > 0 and trip.pnl.fees_krw > 0 and trip.pnl.slippage_krw > 0
    assert trip.pnl.residual_coin == (Decimal(0), Decimal(0))


def test_fill_meets_the_next_bar_open_not_the_decision_close() -> None:
    u = spike_prices(at=60, until=80, bps=60.0)
    opens = np.r_[u[0], u[:-1]].copy()
    opens[61] = u[60] * (1 + 20 / 1e4)  # the market moved further during the latency
    res = run_route("BTC", bar_market(u, upbit_open=opens), config(), BTC_RULES)
    entry_u = next(f for f in res.fills if f.action == "open" and f.venue is Venue.UPBIT)
    hs = EngineConfig().costs.upbit.half_spread_bps
    expected = np.floor(opens[61] * (1 - hs / 1e4) / 1000) * 1000  # sell: rounded down onto the 1,000 grid
    assert entry_u.price == Decimal(int(expected))
    assert entry_u.ref_price == Decimal(int(u[60]))  # slippage is measured against what the decision saw
    assert entry_u.price != entry_u.ref_price


def test_fees_match_the_configured_taker_rates() -> None:
    res = run_route("BTC", bar_market(spike_prices()), config(), BTC_RULES)
    for f in res.fills:
        rate = Decimal("0.0005") if f.venue is Venue.UPBIT else Decimal("0.0010")
        assert f.fee == f.price * f.qty * rate


def test_no_trade_without_enough_deviation_or_edge() -> None:
    flat = run_route("BTC", bar_market(spike_prices(bps=30.0)), config(), BTC_RULES)
    assert flat.trips == () and flat.counters["signals"] == 0
    # a 60 bps spike passes the entry threshold but not a 100 bps minimum edge after ~30 bps of costs
    picky = run_route("BTC", bar_market(spike_prices(bps=60.0)), config(min_edge_bps=100.0), BTC_RULES)
    assert picky.trips == () and picky.counters["rejected_edge"] >= 1


def test_warmup_blocks_early_signals() -> None:
    res = run_route("BTC", bar_market(spike_prices(at=10, until=20)), config(), BTC_RULES)
    assert res.trips == () and res.counters["rejected_warmup"] >= 1


def test_stale_upbit_quotes_are_never_traded() -> None:
    u = spike_prices(at=60, until=80)
    events = bar_market(u)
    keep = ~((events.venue == 0) & (events.ts > T0 + 55 * MIN))  # Upbit goes silent before the spike
    silent = events.__class__(**{k: getattr(events, k)[keep] for k in
                                 ("ts", "ts_venue", "venue", "kind", "side", "px", "qty")})
    res = run_route("BTC", silent, config(), BTC_RULES)
    assert res.trips == () and res.counters["rejected_stale"] > 0


def test_nan_and_negative_prices_never_become_quotes() -> None:
    u = spike_prices(at=60, until=80)
    u[60:80] = np.nan
    u[85] = -5.0
    res = run_route("BTC", bar_market(u), config(), BTC_RULES)
    assert res.trips == ()
    assert np.all(np.isfinite(res.series_dev_bps))


def test_crossed_book_is_never_traded() -> None:
    snaps = []
    for k in range(40):
        ts = T0 + k * MIN
        rich = k >= 35
        u_bid = 140_900_000.0 if rich else 139_999_000.0
        u_ask = 140_800_000.0 if rich else 140_001_000.0  # crossed once rich: bid above ask
        snaps.append((ts, 0, [(u_bid, 1.0)], [(u_ask, 1.0)]))
        snaps.append((ts, 1, [(99_999.99, 5.0)], [(100_000.01, 5.0)]))
    res = run_route("BTC", book_market(snaps), config(warmup_s=600.0), BTC_RULES)
    assert res.trips == () and res.counters["rejected_crossed"] >= 5


def test_book_walk_partial_fill_is_unwound_and_hedged_qty_kept() -> None:
    snaps = []
    for k in range(40):
        ts = T0 + k * MIN
        rich = k >= 35
        mid_u = 140_840_000.0 if rich else 140_000_000.0
        snaps.append((ts, 0, [(mid_u - 1000, 0.05), (mid_u - 2000, 0.05)],
                      [(mid_u + 1000, 0.05), (mid_u + 2000, 0.05)]))
        b_ask_qty = 0.03 if k == 35 else 5.0  # Binance thins out right after the decision (before the fill)
        if k == 35:
            snaps.append((ts, 1, [(99_999.99, 5.0)], [(100_000.01, 5.0)]))
            snaps.append((ts + 100_000_000, 1, [(99_999.99, 5.0)], [(100_000.01, b_ask_qty)]))
        else:
            snaps.append((ts, 1, [(99_999.99, 5.0)], [(100_000.01, 5.0)]))
    res = run_route("BTC", book_market(snaps), config(warmup_s=600.0), BTC_RULES)
    trip = res.trips[0]
    opens_u = [f for f in trip.fills if f.action == "open" and f.venue is Venue.UPBIT]
    opens_b = [f for f in trip.fills if f.action == "open" and f.venue is Venue.BINANCE]
    unwinds = [f for f in trip.fills if f.action == "unwind"]
    sold_u = sum(f.qty for f in opens_u)
    bought_b = sum(f.qty for f in opens_b)
    assert len(opens_u) == 2  # walked two Upbit levels: 0.05 + the rest
    assert bought_b == Decimal("0.03") and sold_u > bought_b
    assert [(f.venue, f.side) for f in unwinds] == [(Venue.UPBIT, Side.BUY)]
    assert sum(f.qty for f in unwinds) == sold_u - bought_b
    assert trip.qty == Decimal("0.03")


def test_replay_is_deterministic() -> None:
    ev = bar_market(spike_prices())
    a = run_route("BTC", ev, config(), BTC_RULES)
    b = run_route("BTC", ev, config(), BTC_RULES)
    assert a.fills == b.fills and a.counters == b.counters
    assert np.array_equal(a.series_dev_bps, b.series_dev_bps)


def test_flatten_request_closes_the_open_position_at_the_next_decision() -> None:
    from arbitrage_lite.core.events import DECISION_KINDS
    from arbitrage_lite.core.kernel import N_COUNTERS
    from arbitrage_lite.core.replay import build_result, kernel_params, step
    from arbitrage_lite.core.route_state import S_FLATTEN, S_POS_DIR, RouteState

    events = bar_market(spike_prices(at=60, until=100, bps=60.0))  # rich for 40 minutes: no revert before 100
    cut = int(np.searchsorted(events.ts, T0 + 70 * MIN))
    state = RouteState.new(N_COUNTERS, series_hint=int(np.isin(events.kind, DECISION_KINDS).sum()) + 16)
    params = kernel_params(config(), BTC_RULES)
    step(state, events, 0, cut, False, True, params)
    assert state.si[S_POS_DIR] == 1  # sold Upbit / bought Binance at minute 60
    state.si[S_FLATTEN] = 1  # the kill switch asks this route to flatten
    step(state, events, cut, len(events), True, True, params)
    res = build_result("BTC", state, config(), int(events.ts[0]), int(events.ts[-1]))
    trip = res.trips[0]  # (no risk layer here: the still-rich premium may open again after it)
    assert trip.exit_reason == "flatten" and trip.closed
    assert T0 + 70 * MIN <= trip.ts[2] < T0 + 71 * MIN  # the first decision after the request
    assert state.si[S_FLATTEN] == 0
