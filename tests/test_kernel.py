import itertools
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from venue_driver import VenueRun, run_with_venues

from arbitrage_lite.core.config import CostConfig, EngineConfig
from arbitrage_lite.core.domain import Side, Venue
from arbitrage_lite.core.events import K_BAR_CLOSE, K_BAR_OPEN, EventBatch
from arbitrage_lite.core.fill_model import model_price_units
from arbitrage_lite.core.order_fsm import OrderStatus
from arbitrage_lite.core.replay import RouteResult, run_route
from arbitrage_lite.core.rules import SCALE, upbit_krw_tick_units
from arbitrage_lite.scenarios.market_data import RouteData, load_route
from market_fixtures import (
    BTC_RULES,
    MIN,
    T0,
    bar_market,
    book_market,
    config,
    spike_prices,
    strategy,
)

Snapshot = tuple[int, int, list[tuple[float, float]], list[tuple[float, float]]]


def minute_books_config(**kw: float) -> EngineConfig:
    """These markets show a book a minute: a leg may wait for the next one (the L2 default wait is 2 s)."""
    return EngineConfig(strategy=strategy(**kw), costs=CostConfig(max_fill_wait_s=90.0))
STEP_B = BTC_RULES.step_units  # Binance BTCUSDT lot: 0.00001 BTC = 1,000 units


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


def test_fill_meets_the_first_quote_stamped_after_arrival_not_the_decision_close_nor_the_bar_open() -> None:
    """The next bar's open is stamped at the bar's start, before decision + latency: the first quote the order
    can have met is that bar's close."""
    u = spike_prices(at=60, until=80, bps=60.0)
    u[61] = u[60] * (1 + 20 / 1e4)  # the market moved further after the order arrived
    opens = np.r_[u[0], u[:-1]].copy()
    opens[61] = u[60] * (1 - 30 / 1e4)  # an open stamped before the arrival: never met
    res = run_route("BTC", bar_market(u, upbit_open=opens), config(), BTC_RULES)
    entry_u = next(f for f in res.fills if f.action == "open" and f.venue is Venue.UPBIT)
    hs = EngineConfig().costs.upbit.half_spread_bps
    expected = np.floor(u[61] * (1 - hs / 1e4) / 1000) * 1000  # sell: rounded down onto the 1,000 grid
    assert entry_u.price == Decimal(int(expected))
    assert entry_u.ref_price == Decimal(int(u[60]))  # slippage is measured against what the decision saw
    assert entry_u.ts_venue == T0 + 62 * MIN - 1  # stamped when that quote came, not at decision + latency
    assert entry_u.ts_venue >= entry_u.ts_decision + 150_000_000


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
            snaps.append((ts + 200_000_000, 1, [(99_999.99, 5.0)], [(100_000.01, b_ask_qty)]))
        else:
            snaps.append((ts, 1, [(99_999.99, 5.0)], [(100_000.01, 5.0)]))
    res = run_route("BTC", book_market(snaps), minute_books_config(warmup_s=600.0), BTC_RULES)
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


def partial_upbit_market(upbit_bid_qty: float) -> EventBatch:
    """Upbit rich over minutes [35, 45): an open (sell Upbit / buy Binance) at 35, a close on the revert at 45.
    Right after the open's legs arrive, Upbit's bids are thin: ``upbit_bid_qty`` (the book its leg meets)."""
    snaps: list[Snapshot] = []
    for k in range(60):
        ts = T0 + k * MIN
        mid_u = 140_840_000.0 if 35 <= k < 45 else 140_000_000.0
        snaps.append((ts, 0, [(mid_u - 1000, 0.05), (mid_u - 2000, 0.05)],
                      [(mid_u + 1000, 0.05), (mid_u + 2000, 0.05)]))
        if k == 35:
            snaps.append((ts + 200_000_000, 0, [(mid_u - 1000, upbit_bid_qty)], [(mid_u + 1000, 0.05)]))
        snaps.append((ts, 1, [(99_999.99, 5.0)], [(100_000.01, 5.0)]))
    return book_market(snaps)


def check_lots_and_parity(run: VenueRun, bt: RouteResult) -> None:
    """Every order the kernel sent is a whole Binance lot and the venues took it; paper fills = backtest fills."""
    for _, order, report in run.orders:
        assert order.qty_units > 0 and order.qty_units % STEP_B == 0, order
        assert report.status is not OrderStatus.REJECTED or report.reason == "no liquidity", report
    for trip in bt.trips:
        assert trip.qty * SCALE % STEP_B == 0, trip.qty
    assert run.result.fills == bt.fills and run.result.counters == bt.counters
    assert [(t.ts, t.qty, t.pnl) for t in run.result.trips] == [(t.ts, t.qty, t.pnl) for t in bt.trips]


def test_partial_upbit_fill_keeps_the_position_and_every_binance_order_on_the_lot_step() -> None:
    res = run_route("BTC", partial_upbit_market(0.0412345), minute_books_config(warmup_s=600.0), BTC_RULES)
    (trip,) = res.trips
    legs = {(f.action, f.venue): sum(g.qty for g in trip.fills if (g.action, g.venue) == (f.action, f.venue))
            for f in trip.fills}
    assert legs[("open", Venue.UPBIT)] == Decimal("0.0412345")  # partial: 8 decimals, off Binance's lot
    assert legs[("open", Venue.BINANCE)] == Decimal("0.07100")
    assert trip.qty == Decimal("0.04123")  # hedged: floored to the lot
    assert legs[("unwind", Venue.BINANCE)] == Decimal("0.02977")  # 0.071 - 0.04123, a whole number of lots
    assert ("unwind", Venue.UPBIT) not in legs  # 0.0000045 BTC (~630 KRW): under one lot, left on Upbit
    assert res.counters["unhedged_units_left"] == 450
    assert trip.exit_reason == "revert" and trip.closed
    assert legs[("close", Venue.UPBIT)] == legs[("close", Venue.BINANCE)] == Decimal("0.04123")
    assert trip.pnl.residual_coin == (Decimal("-0.0000045"), Decimal(0))
    assert trip.pnl.net_krw == trip.pnl.gross_krw - trip.pnl.fees_krw - trip.pnl.slippage_krw


def test_paper_venues_accept_every_leg_after_a_partial_upbit_fill_and_equal_the_backtest() -> None:
    events, cfg = partial_upbit_market(0.0412345), minute_books_config(warmup_s=600.0)
    run = run_with_venues("BTC", events, cfg, BTC_RULES)
    statuses = [(v, o.side, r.status) for v, o, r in run.orders]
    assert statuses == [(0, Side.SELL, OrderStatus.EXPIRED), (1, Side.BUY, OrderStatus.FILLED),
                        (1, Side.SELL, OrderStatus.FILLED),  # the unwind of Binance's excess
                        (0, Side.BUY, OrderStatus.FILLED), (1, Side.SELL, OrderStatus.FILLED)]  # the close
    check_lots_and_parity(run, run_route("BTC", events, cfg, BTC_RULES))


_units = st.integers(min_value=20_000, max_value=6_000_000)  # 0.0002 .. 0.06 BTC a level, in 1e-8 units


@st.composite
def partial_fill_markets(draw: st.DrawFn) -> tuple[list[Snapshot], bool]:
    """Book markets where legs often fill partially: random level sizes with 8 decimals on Upbit (on the lot,
    or not, on Binance), books that thin out between a decision and its fills, a premium away and back."""
    off_lot_b = draw(st.booleans())
    start, length = draw(st.integers(32, 40)), draw(st.integers(2, 15))
    bps = draw(st.sampled_from([-120.0, -70.0, 60.0, 90.0, 150.0]))

    def size(venue: int) -> float:
        u = draw(_units)
        return (u if venue == 0 or off_lot_b else u // STEP_B * STEP_B + STEP_B) / SCALE

    snaps: list[Snapshot] = []
    for k in range(start + length + 10):
        ts = T0 + k * MIN
        mid_u = round(140_000_000.0 * (1 + (bps / 1e4 if start <= k < start + length else 0.0)) / 1000) * 1000
        for v, mid, tick in ((0, float(mid_u), 1000.0), (1, 100_000.0, 0.01)):
            snaps.append((ts, v, [(mid - tick, size(v)), (mid - 2 * tick, size(v))],
                          [(mid + tick, size(v)), (mid + 2 * tick, size(v))]))
        if k >= start and draw(st.booleans()):  # thinner books right after this minute's orders arrive
            v = draw(st.sampled_from([0, 1]))
            mid, tick = (float(mid_u), 1000.0) if v == 0 else (100_000.0, 0.01)
            snaps.append((ts + 200_000_000, v, [(mid - tick, size(v) / 4)], [(mid + tick, size(v) / 4)]))
    return snaps, off_lot_b


@settings(max_examples=60, deadline=None)
@given(partial_fill_markets())
def test_no_order_off_the_binance_lot_and_paper_venues_equal_the_backtest(market: tuple[list[Snapshot], bool]) -> None:
    snaps, _ = market
    events, cfg = book_market(snaps), minute_books_config(warmup_s=600.0, cooldown_s=60.0)
    check_lots_and_parity(run_with_venues("BTC", events, cfg, BTC_RULES), run_route("BTC", events, cfg, BTC_RULES))


# ---- fills only against quotes that exist; data gaps (the bundled real BTC 1m sample)


def _btc_sample(stores: dict[str, Path]) -> tuple[EventBatch, EngineConfig, RouteData]:
    data = load_route(stores["btc"], "BTC", EngineConfig().costs)
    return data.events, EngineConfig(costs=data.costs), data


def _without(events: EventBatch, drop: np.ndarray) -> EventBatch:
    return EventBatch(**{k: getattr(events, k)[~drop] for k in ("ts", "ts_venue", "venue", "kind", "side", "px",
                                                                 "qty")})


def test_every_fill_meets_a_quote_its_venue_stamped_after_the_order_arrived(sample_stores: dict[str, Path]) -> None:
    """Each fill is priced from a real quote stamped in [decision + latency, + max wait]: before, a leg filled
    at decision + latency from the quote the decision itself saw (every one of the sample's 20 fills)."""
    events, cfg, data = _btc_sample(sample_stores)
    res = run_route("BTC", events, cfg, data.binance)
    assert len(res.fills) >= 16
    lat, wait = 150_000_000, 90_000_000_000  # the defaults: 150 ms, and 90 s for bars (costs.max_fill_wait_s)
    quotes = np.isin(events.kind, (K_BAR_OPEN, K_BAR_CLOSE))
    for f in res.fills:
        v = int(f.venue)
        at = quotes & (events.venue == v) & (events.ts == f.ts_venue)
        assert at.sum() == 1, f  # the quote the fill was priced from, stamped when the fill says
        assert f.ts_decision + lat <= f.ts_venue <= f.ts_decision + lat + wait
        costs = cfg.costs.upbit if v == 0 else cfg.costs.binance
        mid = float(events.px[at][0])
        tick = upbit_krw_tick_units(int(mid * SCALE), f.ts_venue) if v == 0 else data.binance.tick_units
        expected = model_price_units(mid, int(f.side), mid * float(f.qty), costs.half_spread_bps,
                                     costs.impact_bps_per_m_quote, tick)
        assert f.price == Decimal(expected) / SCALE


def test_a_trip_held_across_a_data_gap_exits_at_the_first_quote_after_it(sample_stores: dict[str, Path]) -> None:
    """The sample holds a trip over a 14.8 h hole (it used to exit after it as a plain stop loss)."""
    events, cfg, data = _btc_sample(sample_stores)
    res = run_route("BTC", events, cfg, data.binance)
    gap_ns = int(cfg.strategy.max_gap_s * 1e9)
    closes = np.unique(events.ts[events.kind == K_BAR_CLOSE])
    holes = [(a, b) for a, b in itertools.pairwise(closes) if b - a > gap_ns]
    spanned = [t for t in res.trips if any(t.ts[0] < a and (t.ts[3] > b or t.ts[3] < 0) for a, b in holes)]
    assert spanned
    for t in spanned:
        after = min(b for a, b in holes if t.ts[0] < a)
        assert t.exit_reason == "data_gap" and t.ts[2] == after  # decided at the first bar after the hole
    assert [t.spans_gap for t in res.trips] == [t in spanned for t in res.trips]
    assert res.counters["trips_spanning_gap"] == len(spanned)
    for _, b in holes:  # no open within the warm-up after a hole
        assert not [t for t in res.trips if b <= t.ts[0] < b + int(cfg.strategy.warmup_s * 1e9)]


def test_a_leg_with_no_quote_in_its_wait_expires_and_the_filled_one_is_traded_back(
        sample_stores: dict[str, Path]) -> None:
    """Upbit's data stops right after an open's decision (the real sample, cut): its leg expires unfilled, the
    Binance leg that filled is unwound at the first Binance quote after, the one-legged time and notional are
    measured, and the paper venues decide every leg the same way."""
    events, cfg, data = _btc_sample(sample_stores)
    first = run_route("BTC", events, cfg, data.binance).trips[0]
    cut = _without(events, (events.venue == 0) & (events.ts > first.ts[0]) & (events.ts < first.ts[0] + 5 * MIN))
    res = run_route("BTC", cut, cfg, data.binance)
    trip = res.trips[0]
    assert trip.ts[0] == first.ts[0] and trip.exit_reason == "aborted"
    assert [(f.action, f.venue) for f in trip.fills] == [("open", Venue.BINANCE), ("unwind", Venue.BINANCE)]
    opened, unwound = trip.fills
    assert unwound.side == -opened.side and unwound.qty == opened.qty
    wait = int(cfg.costs.fill_waits_s()[0] * 1e9)
    expired_at = first.ts[0] + 150_000_000 + wait  # the Upbit leg's deadline
    assert unwound.ts_venue > expired_at + 150_000_000  # sent once the expiry was known, met a later quote
    assert trip.unhedged_ns == unwound.ts_venue - opened.ts_venue
    upbit_mid = events.px[(events.venue == 0) & (events.kind == K_BAR_CLOSE) & (events.ts == first.ts[0])][0]
    assert trip.unhedged_krw == pytest.approx(float(opened.qty) * upbit_mid, rel=1e-12)  # KRW at decision's mid
    assert res.counters["legs_expired"] == 1 and res.counters["unhedged_actions"] >= 1
    run = run_with_venues("BTC", cut, cfg, data.binance)
    assert [(v, r.status) for v, _, r in run.orders][:3] == [(1, OrderStatus.FILLED), (0, OrderStatus.EXPIRED),
                                                              (1, OrderStatus.FILLED)]  # the unwind
    assert run.result.fills == res.fills and run.result.counters == res.counters
    assert [(t.ts, t.pnl, t.unhedged_ns) for t in run.result.trips] == [(t.ts, t.pnl, t.unhedged_ns)
                                                                          for t in res.trips]


def test_an_unwind_below_the_venues_minimum_order_is_not_armed() -> None:
    """A remainder the venue would refuse (under 5,000 KRW on Upbit, under NOTIONAL on Binance) stays as dust:
    at 177 live routes, 380 Upbit and 383 Binance such legs were sent and refused locally before this rule."""
    from arbitrage_lite.core.book import Q_MID
    from arbitrage_lite.core.kernel import _below_minimum
    from arbitrage_lite.core.replay import kernel_params
    from arbitrage_lite.core.rules import SCALE, binance_rules

    p = kernel_params(EngineConfig(), binance_rules("0.0001", "1", "5"))
    quotes = np.zeros((2, 8))
    quotes[0, Q_MID], quotes[1, Q_MID] = 151.0, 0.1  # KRW per coin on Upbit, USDT per coin on Binance
    assert _below_minimum(0, 1 * SCALE, quotes, p)  # 151 KRW
    assert not _below_minimum(0, 34 * SCALE, quotes, p)  # 5,134 KRW
    assert _below_minimum(1, 49 * SCALE, quotes, p)  # 4.9 USDT < 5
    assert not _below_minimum(1, 50 * SCALE, quotes, p)


def test_a_position_below_a_venues_minimum_is_left_as_dust_not_closed(sample_stores: dict[str, Path]) -> None:
    """A position worth less than a venue's minimum order when it is due to close (a partial fill shrank it, or
    the price fell) gets no close legs -- the venue would refuse them, and live sent such 3,060 KRW Upbit
    closes again and again -- it ends in the books as ``dust_left`` and the route trades on."""
    from arbitrage_lite.core.driver import kernel_turns
    from arbitrage_lite.core.kernel import N_COUNTERS, resolve_candidate
    from arbitrage_lite.core.legs import settled_legs
    from arbitrage_lite.core.replay import build_result, inject_report, kernel_params
    from arbitrage_lite.core.route_state import S_PTRIP, RouteState
    from arbitrage_lite.scenarios.replay_check import _model_fills

    events, cfg, data = _btc_sample(sample_stores)
    params = kernel_params(cfg, data.binance)
    lot = data.binance.step_units  # one Binance lot of BTC: ~1,400 KRW, ~1 USDT (minimums: 5,000 KRW, 5 USDT)
    state = RouteState.new(N_COUNTERS, series_hint=len(events) + 16)
    for turn in kernel_turns(state, events, True, params):
        if turn.needs_risk:
            s = state
            resolve_candidate(s.si, s.sf, s.legs, s.counters, s.trips_i, s.trips_f, s.quotes, params, True)
        elif turn.needs_fills:
            for leg in settled_legs(state.legs):
                got = _model_fills(state, params, leg.slot)
                if state.si[S_PTRIP] == 0 and leg.slot < 2 and got:  # the first open: each IOC fills one lot only
                    got = [(got[0][0], got[0][1], lot, got[0][3])]
                inject_report(state, params, leg.slot, got)
    market = events.ts[events.venue < 2]
    res = build_result("BTC", state, cfg, int(market[0]), int(market[-1]))
    whole = run_route("BTC", events, cfg, data.binance)
    assert whole.trips[0].exit_reason != "dust_left"
    first = res.trips[0]
    assert first.qty == Decimal(lot) / SCALE and first.exit_reason == "dust_left" and first.ts[2] == first.ts[3]
    assert [f.action for f in first.fills] == ["open", "open"]  # no close was sent
    assert res.counters["positions_left_as_dust"] == 1 and whole.counters["positions_left_as_dust"] == 0
    assert len(res.trips) > 1 and res.trips[1].ts[0] > first.ts[3]  # the route traded on
