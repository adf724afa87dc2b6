"""Paper trading through the Ray actors on the bundled real sample: parity with the backtest."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from arbitrage_lite.core.risk import RiskLimits
from arbitrage_lite.scenarios.backtest import BacktestRequest, run_backtest
from arbitrage_lite.scenarios.paper import PaperRequest, run_paper

FIGURES = ("trades", "wins", "gross_pnl_krw", "fees_krw", "slippage_krw", "net_pnl_krw", "max_drawdown_krw",
           "zero_cost_net_pnl_krw", "funnel")


def backtest(store: Path, routes: str, out: Path) -> dict:
    return run_backtest(BacktestRequest(store=store, routes=routes, out=out, use_ray=False, progress=False))


def test_paper_equals_backtest_on_btc_bars(sample_stores: dict[str, Path], tmp_path: Path,
                                           ray_session: object) -> None:
    bt = backtest(sample_stores["btc"], "BTC", tmp_path / "bt")
    paper = run_paper(PaperRequest(store=sample_stores["btc"], routes="BTC", out=tmp_path / "paper", risk=None,
                                   window_events=150, metrics_port=0))  # many small windows: exercises ordering
    assert paper["mode"] == "paper" and bt["trades"] > 0
    for key in FIGURES:
        assert paper[key] == bt[key], key
    for name in ("trades.csv", "fills.csv"):
        assert (tmp_path / "paper" / name).read_bytes() == (tmp_path / "bt" / name).read_bytes(), name
    extra = paper["paper"]
    route = extra["routes"][0]
    assert route["order_status"] == {"FILLED": 4 * bt["trades"]}  # every leg of every round trip, filled
    assert route["client_ids_unique"] and route["orders"] == 4 * bt["trades"]
    assert Decimal(extra["portfolio"]["net_pnl_krw"]) == Decimal(paper["net_pnl_krw"])  # the ledger of record
    assert extra["portfolio"]["fills_applied"] == 4 * bt["trades"] and extra["portfolio"]["duplicates_ignored"] == 0
    assert extra["feed_to_intent_latency_ms"]["intents"] == 4 * bt["trades"]
    scrape = extra["metrics_scrape"]  # the Prometheus page as served on 127.0.0.1 during the run
    assert f'arb_round_trips_total{{route="BTC"}} {float(bt["trades"])}' in scrape
    assert f"arb_feed_to_intent_seconds_count {float(4 * bt['trades'])}" in scrape


def test_paper_equals_backtest_on_multi_coin_snapshots(sample_stores: dict[str, Path], tmp_path: Path,
                                                       ray_session: object) -> None:
    bt = backtest(sample_stores["multi"], "top:4", tmp_path / "bt")
    paper = run_paper(PaperRequest(store=sample_stores["multi"], routes="top:4", out=tmp_path / "paper", risk=None,
                                   window_events=400))
    assert paper["routes"] == bt["routes"]
    for key in FIGURES:
        assert paper[key] == bt[key], key
    assert (tmp_path / "paper" / "trades.csv").read_bytes() == (tmp_path / "bt" / "trades.csv").read_bytes()


def test_risk_coordinator_rules_on_every_open(sample_stores: dict[str, Path], tmp_path: Path,
                                              ray_session: object) -> None:
    tight = RiskLimits(max_order_notional_krw=Decimal(1_000_000), max_route_position_krw=Decimal(1_000_000))
    paper = run_paper(PaperRequest(store=sample_stores["btc"], routes="BTC", out=tmp_path / "p", risk=tight))
    assert paper["trades"] == 0  # every 10M KRW open is above the 1M per-order limit
    assert paper["rejections"]["rejected_risk"] > 0
    route = paper["paper"]["routes"][0]
    assert set(route["risk_rejections"]) == {"max_order_notional"}
    assert paper["paper"]["risk_decisions"] == paper["rejections"]["rejected_risk"]
    assert any(a["rule"] == "risk_reject" for a in paper["paper"]["alerts"])


def test_drawdown_kill_switch_halts_opens_and_raises_p0(sample_stores: dict[str, Path], tmp_path: Path,
                                                        ray_session: object) -> None:
    free = run_paper(PaperRequest(store=sample_stores["btc"], routes="BTC", out=tmp_path / "free", risk=None))
    limits = RiskLimits(max_drawdown_krw=Decimal(50_000), circuit_breaker_losses=50, global_circuit_breaker_losses=None,
                        daily_loss_limit_krw=Decimal(10**9), max_order_notional_krw=Decimal(20_000_000),
                        max_route_position_krw=Decimal(20_000_000))
    halted = run_paper(PaperRequest(store=sample_stores["btc"], routes="BTC", out=tmp_path / "halted", risk=limits))
    # the sample's second round trip takes equity more than 50k KRW below its peak: no open after that
    assert free["trades"] == 4 and halted["trades"] == 2
    assert halted["rejections"]["rejected_risk"] >= 1
    assert halted["paper"]["portfolio"]["halted"] is True
    kill = [a for a in halted["paper"]["alerts"] if a["rule"] == "kill_switch"]
    assert len(kill) == 1 and kill[0]["severity"] == "P0" and "drawdown" in kill[0]["message"]
    assert set(halted["paper"]["routes"][0]["risk_rejections"]) == {"halted"}
