"""Robustness scenarios: the transforms keep time honest, the campaign runs them against the baseline, the
checks read what happened, paper trades the same stressed data as the backtest, and the trip-loss kill switch."""

from __future__ import annotations

import csv
import dataclasses
import json
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from arbitrage_lite.cli import main
from arbitrage_lite.core.config import CostConfig, EngineConfig
from arbitrage_lite.core.domain import Venue
from arbitrage_lite.core.events import (
    K_BAR_CLOSE,
    K_BAR_OPEN,
    K_BOOK_END,
    K_CLEAR,
    K_FX,
    K_LAST,
    K_LEVEL,
    VENUE_BINANCE,
    VENUE_FX,
    VENUE_UPBIT,
    EventBatch,
    make_batch,
)
from arbitrage_lite.core.risk import RiskCoordinator, RiskLimits, RiskMode
from arbitrage_lite.core.risk_sequencer import RiskFact, RiskSequencer
from arbitrage_lite.core.stress import Scenario, delay_venue, drop_venue, fx_shock
from arbitrage_lite.scenarios.backtest import BacktestRequest, run_backtest
from arbitrage_lite.scenarios.stress import StressParams, StressRequest, catalogue, check, run_stress, select

S = 1_000_000_000


def _stream() -> EventBatch:
    """Two venues' bars each second (0..9 s) and an FX rate at 0 s and 5 s."""
    ts = np.arange(10, dtype=np.int64) * S
    up = make_batch(ts, VENUE_UPBIT, np.where(ts % (2 * S) == 0, K_BAR_OPEN, K_BAR_CLOSE), np.full(10, 100.0))
    bn = make_batch(ts, VENUE_BINANCE, K_BAR_CLOSE, np.full(10, 0.07))
    fx = make_batch(np.array([0, 5 * S]), VENUE_FX, K_FX, np.array([1400.0, 1410.0]), qty=np.array([7.0, 7.0]))
    return EventBatch.concat_sorted([fx, up, bn])


def test_latency_stagger_shows_a_venue_later_never_earlier() -> None:
    ev = _stream()
    late = delay_venue(ev, VENUE_BINANCE, 1_500_000_000)
    assert len(late) == len(ev) and bool(np.all(np.diff(late.ts) >= 0))
    b0, b1 = ev.venue == VENUE_BINANCE, late.venue == VENUE_BINANCE
    assert np.array_equal(late.ts[b1], ev.ts[b0] + 1_500_000_000)  # every Binance event 1.5 s later
    assert np.array_equal(late.ts_venue[b1], ev.ts[b0])  # stamped when the venue made it: as old as it is
    assert np.array_equal(late.ts[~b1], ev.ts[~b0]) and np.array_equal(late.px[~b1], ev.px[~b0])


def test_outage_drops_only_that_venues_market_data_in_its_window() -> None:
    ev = _stream()
    down = drop_venue(ev, VENUE_UPBIT, 3 * S, 4 * S)  # [3 s, 7 s)
    up = down.ts[down.venue == VENUE_UPBIT]
    assert list(up // S) == [0, 1, 2, 7, 8, 9]
    assert (down.venue == VENUE_BINANCE).sum() == 10 and (down.venue == VENUE_FX).sum() == 2


def test_price_shock_starts_at_its_time_and_fades_linearly_on_one_route() -> None:
    ev = _stream()
    sc = Scenario("crash", "price_shock", move=-0.3, duration_ns=4 * S, venue=VENUE_UPBIT, route="BTC")
    shocked = sc.anchored(4 * S).apply_events(ev, "BTC")
    up = shocked.venue == VENUE_UPBIT
    assert list(np.round(shocked.px[up], 6)) == [100, 100, 100, 100, 70, 77.5, 85, 92.5, 100, 100]
    assert np.array_equal(shocked.px[~up], ev.px[~up])
    assert sc.anchored(4 * S).apply_events(ev, "ETH") is ev  # another route's market is left alone
    with pytest.raises(ValueError, match="anchor"):
        sc.apply_events(ev, "BTC")


def _diff_book() -> EventBatch:
    """A Binance-like L2 stream: a snapshot at 0 s, then each second a diff moving the touch up one (it deletes
    the previous best bid and ask and sets the new ones)."""
    rows = [(0, K_CLEAR, 0, 0.0, 0.0), (0, K_LEVEL, 0, 99.0, 1.0), (0, K_LEVEL, 1, 101.0, 1.0),
            (0, K_BOOK_END, 0, 0.0, 0.0)]
    for i in range(1, 10):
        rows += [(i * S, K_LEVEL, 0, 98.0 + i, 0.0), (i * S, K_LEVEL, 0, 99.0 + i, 1.0),
                 (i * S, K_LEVEL, 1, 100.0 + i, 0.0), (i * S, K_LEVEL, 1, 101.0 + i, 2.0),
                 (i * S, K_BOOK_END, 0, 0.0, 0.0)]
    col = list(zip(*rows, strict=True))
    return make_batch(np.array(col[0], np.int64), VENUE_BINANCE, np.array(col[1], np.int8), np.array(col[3]),
                      np.array(col[4]), np.array(col[2], np.int8))


def _quotes_at_book_ends(ev: EventBatch) -> list[tuple[int, float, float, float]]:
    """(second, best bid, best ask, crossed) after each BOOK_END, through the kernel's own book code."""
    from arbitrage_lite.core.book import Q_CROSSED, apply_market_event, new_books

    book_px, book_q, book_n, quotes = new_books()
    out = []
    for i in range(len(ev)):
        apply_market_event(int(ev.kind[i]), 1, int(ev.side[i]), float(ev.px[i]), float(ev.qty[i]), int(ev.ts[i]),
                           int(ev.ts_venue[i]), book_px, book_q, book_n, quotes, 0.0)
        if ev.kind[i] == K_BOOK_END:
            out.append((int(ev.ts[i] // S), round(book_px[1, 0, 0], 6), round(book_px[1, 1, 0], 6),
                        quotes[1, Q_CROSSED]))
    return out


def test_a_price_shock_moves_an_l2_book_whole_and_the_book_heals_after_it() -> None:
    """Shocking the level updates alone crossed the book (levels set before the shock kept their price beside
    shocked ones: no quote, so no decision, and the open trip could not close). The shock re-issues the whole
    book shocked at each update inside it, and whole and unshocked at the first update after it."""
    ev = _diff_book()
    sc = Scenario("crash", "price_shock", move=-0.3, duration_ns=4 * S, venue=VENUE_BINANCE, route="BTC")
    shocked = sc.anchored(3 * S).apply_events(ev, "BTC")
    base, got = _quotes_at_book_ends(ev), _quotes_at_book_ends(shocked)
    assert got[:3] == base[:3]  # 0-2 s: before the shock, as recorded
    for (sec, bid, ask, crossed), (_, bid0, ask0, _) in zip(got[3:7], base[3:7], strict=True):
        f = 1 - 0.3 * (1 - (sec - 3) / 4)  # 0.7 at 3 s, back linearly: 0.775, 0.85, 0.925
        assert crossed == 0.0 and bid == pytest.approx(bid0 * f) and ask == pytest.approx(ask0 * f)
    assert got[7:] == base[7:]  # healed: from 7 s the book is the recorded one again
    assert bool(np.all(np.diff(shocked.ts) >= 0))
    pre = ev.ts < 3 * S
    assert np.array_equal(shocked.px[: int(pre.sum())], ev.px[pre])


def test_a_crash_no_leg_could_trade_is_not_shown_neither_passed_nor_failed() -> None:
    """One crashed quote, stamped before a leg sent on it (150 ms) could arrive: the crashed price is never
    tradable, so the check says 'not shown' and why. Stamped after the leg arrives, it is tradable: the check
    is shown and, with no kill switch, fails."""
    ts = np.array([0, 60, 700]) * S  # the shock [1 s, 601 s) holds the 60 s quote only
    sc = Scenario("flash_crash", "price_shock", move=-0.3, duration_ns=600 * S, venue=VENUE_BINANCE, route="CVC",
                  expect="kill_switch").anchored(S)
    fig = {"halts": {"kill_switch": 0}, "kill_switch_at": None, "kill_switch_reason": None, "events_changed": 1,
           "max_drawdown_krw": "0", "net_pnl_krw": "0"}
    for stamp_ms, tradable in ((60_122, 0), (60_178, 1)):
        ev = make_batch(ts, VENUE_BINANCE, K_LAST, np.full(3, 0.0575), ts_venue=np.array([0, stamp_ms * 1_000_000,
                                                                                             700 * S]))
        n = sc.tradable_quotes(sc.apply_events(ev, "CVC"), "CVC", 150_000_000)
        assert n == tradable
        verdict = check(sc, {**fig, "shock_quotes": n}, 10.0, {})
        assert verdict is not None
        if tradable:
            assert verdict["passed"] is False and verdict["verdict"] == "failed"
        else:
            assert verdict["passed"] is None and verdict["verdict"] == "not shown"
            assert "not shown on this data: no binance quote inside the 10 min shock on CVC" in str(verdict["detail"])
    no_trip = check(sc, {**fig, "shock_quotes": 5}, 10.0, {}, has_trip=False)
    assert no_trip is not None and no_trip["passed"] is None and "no round trip" in str(no_trip["detail"])


def test_fx_shock_is_known_at_its_time_and_undone_at_its_end() -> None:
    ev = _stream()
    out = fx_shock(ev, 0.05, 3 * S, 4 * S)  # [3 s, 7 s): the 5 s print is shocked, 1400 re-issued at 3 s
    fx = out.venue == VENUE_FX
    assert list(out.ts[fx] // S) == [0, 3, 5, 7]
    assert list(np.round(out.px[fx], 6)) == [1400.0, 1470.0, 1480.5, 1410.0]
    assert list(out.ts_venue[fx][1:] // S) == [3, 5, 7] and list(out.qty[fx]) == [7.0] * 4


def test_quote_noise_is_seeded_and_spares_l2_levels() -> None:
    ev = EventBatch.concat_sorted([_stream(), make_batch(np.array([S]), VENUE_UPBIT, K_LEVEL, np.array([99.0]),
                                                         qty=np.array([1.0]))])
    a = Scenario("n", "noise", noise_bps=5.0, seed=1).apply_events(ev, "BTC")
    b = Scenario("n", "noise", noise_bps=5.0, seed=1).apply_events(ev, "BTC")
    c = Scenario("n", "noise", noise_bps=5.0, seed=2).apply_events(ev, "BTC")
    assert np.array_equal(a.px, b.px) and not np.array_equal(a.px, c.px)
    market = (ev.venue <= VENUE_BINANCE) & (ev.kind != K_LEVEL)
    rel = np.abs(a.px[market] / ev.px[market] - 1)
    assert 0 < rel.max() < 30e-4  # 5 bps noise, never 6 sigma
    assert np.array_equal(a.px[~market], ev.px[~market])  # FX and the L2 level untouched


def test_cost_scenarios_scale_slippage_and_fees_exactly() -> None:
    costs = CostConfig()
    x2 = catalogue(StressParams())["slippage_x2"].apply_costs(costs)
    assert x2.upbit.half_spread_bps == 2 * costs.upbit.half_spread_bps
    assert x2.binance.taker_fee == costs.binance.taker_fee
    fees = catalogue(StressParams(fee_factor=3.0))["fee_surge"].apply_config(EngineConfig())
    assert fees.costs.upbit.taker_fee == Decimal("0.0015") and fees.costs.binance.taker_fee == Decimal("0.0030")


def test_select_names_unknown_scenarios() -> None:
    assert [s.name for s in select("fee_surge, spike", StressParams())] == ["fee_surge", "spike"]
    with pytest.raises(ValueError, match=r"unknown scenario.*crash"):
        select("crash", StressParams())


def test_a_trip_losing_past_the_limit_trips_the_kill_switch_and_flattens_the_others() -> None:
    rc = RiskCoordinator(RiskLimits(max_trip_loss_krw=Decimal(500_000)))
    seq = RiskSequencer(rc, ("BTC", "ETH"), Decimal(10**9))
    seq.progress("ETH", 10, [RiskFact("open", "ETH", 0, 1, ((0, "5000000"),))])
    seq.progress("BTC", 10, [RiskFact("open", "BTC", 0, 2, ((0, "5000000"),)),
                             RiskFact("close", "BTC", 0, 3, net_krw="-499999")])
    assert rc.state.mode is RiskMode.ACTIVE  # below the limit (and far from the 5M drawdown)
    seq.progress("BTC", 20, [RiskFact("open", "BTC", 1, 11, ((0, "5000000"),)),
                             RiskFact("close", "BTC", 1, 12, net_krw="-500000")])
    assert rc.state.mode is RiskMode.ACTIVE  # ETH has not reported past 12 yet: not booked
    seq.progress("ETH", 20)
    assert rc.state.mode is RiskMode.HALTED and "lost 500000" in str(rc.state.halt_reason)
    assert seq.flatten == {"ETH"}  # the route still holding a position
    assert not rc.check_open("ETH", "ETH", {Venue.UPBIT: Decimal(1)}, 21).allowed
    off = RiskCoordinator(RiskLimits(max_trip_loss_krw=None))
    off.on_round_trip_closed("BTC", Decimal(-4_000_000), 1)
    assert off.state.mode is RiskMode.ACTIVE


def _rows(out: Path) -> dict[str, dict[str, str]]:
    with (out / "stress.csv").open() as fh:
        return {r["scenario"]: r for r in csv.DictReader(fh)}


def test_stress_on_btc_bars_against_the_baseline(sample_stores: dict[str, Path], tmp_path: Path) -> None:
    store = sample_stores["btc"]
    bt = run_backtest(BacktestRequest(store=store, routes="BTC", out=tmp_path / "bt", use_ray=False,
                                      progress=False))
    rep = run_stress(StressRequest(store=store, routes="BTC", out=tmp_path / "st", use_ray=False, progress=False,
                                   scenarios="slippage_x2,fee_surge,flash_crash,venue_down"))
    by = {r["name"]: r for r in rep["scenarios"]}
    base = by["baseline"]["figures"]
    assert base["net_pnl_krw"] == bt["net_pnl_krw"] and base["trades"] == bt["trades"] > 0  # the plain backtest
    if by["slippage_x2"]["figures"]["trades"] == base["trades"]:
        assert Decimal(by["slippage_x2"]["figures"]["slippage_krw"]) > Decimal(base["slippage_krw"])
    anchor = rep["anchor"]
    assert anchor["route"] == "BTC" and anchor["trip"] is not None
    crash = by["flash_crash"]
    # the crash meets the anchored open position: a loss well past the stop, and the check reads the risk events
    assert Decimal(crash["figures"]["net_pnl_krw"]) < Decimal(base["net_pnl_krw"])
    assert crash["check"]["passed"] == (crash["figures"]["halts"]["kill_switch"] > 0)
    assert crash["check"]["exercised"] and crash["figures"]["events_changed"] > 0 == base["events_changed"]
    down = by["venue_down"]["figures"]
    assert down["legs_expired"] >= 1 and down["unhedged_max_s"] > 0  # it hit the trade mid-flight
    assert by["venue_down"]["check"]["passed"] == (down["trips_unhedged_over_policy"] == 0)
    rows = _rows(tmp_path / "st")
    assert list(rows) == ["baseline", "slippage_x2", "fee_surge", "flash_crash", "venue_down"]
    assert rows["flash_crash"]["net_pnl_krw"] == crash["figures"]["net_pnl_krw"]
    for name in ("slippage_x2", "fee_surge", "flash_crash", "venue_down"):
        assert (tmp_path / "st" / "plots" / f"{name}.svg").read_text().startswith("<svg")
    html = (tmp_path / "st" / "stress.html").read_text()
    assert "flash_crash" in html and html.count("<svg") == 4
    assert json.loads((tmp_path / "st" / "stress.json").read_text())["checks_passed"] == rep["checks_passed"]


def test_moment_scenarios_leave_the_run_unchanged_before_their_time(sample_stores: dict[str, Path],
                                                                    tmp_path: Path) -> None:
    from arbitrage_lite.scenarios.backtest import BacktestRequest as Req
    from arbitrage_lite.scenarios.backtest import _load_routes, replay_routes
    from arbitrage_lite.scenarios.stress import anchor_of, prepare

    req = Req(store=sample_stores["btc"], routes="BTC", out=tmp_path, use_ray=False, progress=False)
    datas = _load_routes(req, ["BTC"])
    base, _ = replay_routes(datas, req.config)
    anchor = anchor_of(base)
    sc = anchor.place(catalogue(StressParams())["flash_crash"])
    assert sc.at_ns == anchor.at_entry_fill_ns + 1
    stressed, _ = replay_routes(*prepare(sc, datas, req.config))
    before = [t for t in base[0].real.trips if t.ts[3] >= 0 and t.ts[3] < sc.at_ns]
    assert before == [t for t in stressed[0].real.trips if t.ts[3] >= 0 and t.ts[3] < sc.at_ns]
    moved = dataclasses.replace(sc, at_ns=None)
    assert moved.needs_anchor


def test_paper_trades_the_same_stressed_data_as_the_backtest(sample_stores: dict[str, Path], tmp_path: Path,
                                                             ray_session: object) -> None:
    """Under the venue outage (legs expire, the filled leg is traded back) paper without risk tiers makes the
    very trades and fills the backtest makes on the same transformed data."""
    rep = run_stress(StressRequest(store=sample_stores["btc"], routes="BTC", out=tmp_path, use_ray=False,
                                   progress=False, scenarios="venue_down", paper_scenario="venue_down"))
    paper = rep["paper_check"]
    assert paper["identical"] and paper["trades_paper"] == paper["trades_backtest"] > 0
    assert paper["net_pnl_krw_paper"] == paper["net_pnl_krw_backtest"]
    trades = (tmp_path / "paper_check" / "venue_down" / "paper" / "trades.csv").read_text()
    assert "aborted" in trades  # the outage made the paper run abort a trip too: it saw the stressed data


def test_stress_cli_checks_input_and_exits_by_the_checks(sample_stores: dict[str, Path], tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    store = str(sample_stores["btc"])
    assert main(["stress", "--store", store, "--routes", "BTC", "--out", str(tmp_path / "a"),
                 "--scenarios", "crash"]) == 2
    assert "unknown scenario" in capsys.readouterr().err
    assert main(["stress", "--store", store, "--routes", "BTC", "--out", str(tmp_path / "a"),
                 "--paper", "all"]) == 2
    assert main(["stress", "--store", str(tmp_path / "none"), "--routes", "BTC", "--out", str(tmp_path / "a")]) == 2
    assert not (tmp_path / "a").exists()
    rc = main(["stress", "--store", store, "--routes", "BTC", "--out", str(tmp_path / "b"), "--no-ray",
               "--no-progress", "--scenarios", "fee_surge,flash_crash"])
    rep = json.loads((tmp_path / "b" / "stress.json").read_text())
    assert rc == (0 if rep["checks_passed"] else 1) and set(rep["checks"]) == {"flash_crash"}


def test_paper_under_the_flash_crash_trips_the_same_kill_switch_and_pages(sample_stores: dict[str, Path],
                                                                           tmp_path: Path,
                                                                           ray_session: object) -> None:
    """With risk tiers on, paper (the RiskCoordinator actor) halts where the backtest halts and raises the P0."""
    import functools

    from arbitrage_lite.scenarios.backtest import _load_routes, replay_routes
    from arbitrage_lite.scenarios.paper import PaperRequest, run_paper
    from arbitrage_lite.scenarios.stress import anchor_of, apply_route, prepare

    store = sample_stores["btc"]
    req = BacktestRequest(store=store, routes="BTC", out=tmp_path, use_ray=False, progress=False)
    datas = _load_routes(req, ["BTC"])
    base, _ = replay_routes(datas, req.config)
    sc = anchor_of(base).place(catalogue(StressParams())["flash_crash"])
    _, bt_risk = replay_routes(*prepare(sc, datas, req.config))
    kills = [e for e in bt_risk["events"] if e["action"] == "kill_switch"]  # type: ignore[union-attr]
    paper = run_paper(PaperRequest(store=store, routes="BTC", out=tmp_path / "paper",
                                   config=sc.apply_config(req.config), transform=functools.partial(apply_route, sc)))
    assert [(e["ts_ns"], e["reason"]) for e in paper["risk"]["events"] if e["action"] == "kill_switch"] == [
        (k["ts_ns"], k["reason"]) for k in kills]
    assert len(kills) == 1 and paper["paper"]["portfolio"]["halted"] is True
    page = [a for a in paper["paper"]["alerts"] if a["rule"] == "kill_switch"]
    assert len(page) == 1 and page[0]["severity"] == "P0"


@pytest.fixture(scope="module")
def l2_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic L2 route (the streaming tests' generator): Binance diffs and Upbit top-5 books every ~2 s."""
    from test_streaming_replay import write_route

    root = tmp_path_factory.mktemp("l2") / "s"
    write_route(root, "BTC", hours=8, step_s=2.0, seed=7)
    return root


def _l2_config() -> EngineConfig:
    from arbitrage_lite.core.config import GuardConfig

    return EngineConfig(guard=GuardConfig(min_history_s=600.0))


def test_an_outage_on_l2_leaves_no_leg_unhedged_past_the_policy(l2_store: Path, tmp_path: Path) -> None:
    """On L2 data a leg waits 2 s for a quote (costs.max_fill_wait_s by data), so one venue going down mid-trade
    is unwound within risk.max_unhedged_s: checked on a synthetic L2 route. (Bars and snapshots cannot show it:
    a leg there waits for the next bar or snapshot, 60-600 s, and docs/stress.md says so.)"""
    cfg = _l2_config()
    rep = run_stress(StressRequest(store=l2_store, routes="BTC", out=tmp_path / "st", scenarios="venue_down",
                                   config=cfg, use_ray=False, progress=False))
    down = {r["name"]: r for r in rep["scenarios"]}["venue_down"]
    assert down["check"]["exercised"] and down["figures"]["legs_expired"] >= 1  # it hit a trade mid-flight
    assert down["check"]["passed"] and 0 < down["figures"]["unhedged_max_s"] <= cfg.risk.max_unhedged_s


def test_the_flash_crash_on_l2_trips_the_kill_switch(l2_store: Path, tmp_path: Path) -> None:
    """The crash moves the whole Binance book (it used to cross it: no quote, the open trip never closed and
    the stray shocked levels marked a leftover leg up 1.4M KRW): the stop loss sells into the crashed book and
    the trip's loss trips the kill switch."""
    rep = run_stress(StressRequest(store=l2_store, routes="BTC", out=tmp_path / "st", scenarios="flash_crash",
                                   config=_l2_config(), use_ray=False, progress=False))
    by = {r["name"]: r for r in rep["scenarios"]}
    crash, base = by["flash_crash"], by["baseline"]["figures"]
    assert crash["check"]["verdict"] == "passed" and crash["check"]["passed"] is True
    assert crash["figures"]["shock_quotes"] > 1 and crash["figures"]["open_positions"] == 0
    assert "a gap through the stop" in str(crash["figures"]["kill_switch_reason"])
    assert crash["figures"]["exit_reasons"].get("stop_loss", 0) == base["exit_reasons"].get("stop_loss", 0) + 1
    assert Decimal(crash["figures"]["net_pnl_krw"]) < Decimal(base["net_pnl_krw"]) - 2_000_000
    assert rep["checks_passed"] and rep["checks_not_shown"] == []


def test_the_flash_crash_on_sampled_snapshots_is_shown_where_a_crashed_quote_is_tradable(
        sample_stores: dict[str, Path], tmp_path: Path) -> None:
    """On the snapshot sample the anchored trip's Binance quotes inside the crash include one a close could meet:
    the crash is shown, and the kill switch trips. (On the whole snapshot set none is: 'not shown',
    docs/stress.md.)"""
    from arbitrage_lite.cli_checks import load_config

    cfg = load_config(str(Path(__file__).resolve().parents[1] / "docs" / "configs" / "snapshots.toml"))
    rep = run_stress(StressRequest(store=sample_stores["multi"], routes="top:25", out=tmp_path / "st",
                                   scenarios="flash_crash", config=cfg, use_ray=False, progress=False))
    crash = {r["name"]: r for r in rep["scenarios"]}["flash_crash"]
    assert crash["figures"]["shock_quotes"] >= 1
    assert crash["check"]["verdict"] == "passed" and crash["figures"]["halts"]["kill_switch"] == 1
    assert _rows(tmp_path / "st")["flash_crash"]["check"] == "passed"
