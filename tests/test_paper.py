"""Paper trading through the Ray actors on the bundled real sample: parity with the backtest."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from arbitrage_lite.cli import main
from arbitrage_lite.cli_checks import load_config
from arbitrage_lite.core.risk import RiskLimits
from arbitrage_lite.scenarios import paper as paper_scenario
from arbitrage_lite.scenarios.backtest import BacktestRequest, run_backtest
from arbitrage_lite.scenarios.paper import PaperRequest, run_paper

REPO = Path(__file__).resolve().parent.parent
FIGURES = ("trades", "wins", "gross_pnl_krw", "fees_krw", "slippage_krw", "net_pnl_krw", "max_drawdown_krw",
           "zero_cost_net_pnl_krw", "funnel")


def backtest(store: Path, routes: str, out: Path, risk: bool = True) -> dict:
    return run_backtest(BacktestRequest(store=store, routes=routes, out=out, use_ray=False, progress=False,
                                        risk=risk))


@pytest.mark.parametrize("risk", [True, False], ids=["default_risk", "no_risk"])
def test_paper_equals_backtest_on_btc_bars(sample_stores: dict[str, Path], tmp_path: Path, ray_session: object,
                                           risk: bool) -> None:
    """With the default config -- risk on in both, the same RiskCoordinator rules -- the same trades."""
    bt = backtest(sample_stores["btc"], "BTC", tmp_path / "bt", risk)
    paper = run_paper(PaperRequest(store=sample_stores["btc"], routes="BTC", out=tmp_path / "paper",
                                   risk="config" if risk else None,
                                   window_events=150, metrics_port=0))  # many small windows: exercises ordering
    bt["risk"].pop("flatten_late", None)  # the backtest driver's own count
    assert paper["risk"] == bt["risk"]  # the same rejections by reason, the same timeline
    assert paper["mode"] == "paper" and bt["trades"] > 0
    for key in FIGURES:
        assert paper[key] == bt[key], key
    for name in ("trades.csv", "fills.csv"):
        assert (tmp_path / "paper" / name).read_bytes() == (tmp_path / "bt" / name).read_bytes(), name
    extra = paper["paper"]
    route = extra["routes"][0]
    assert route["order_status"] == {"FILLED": 4 * bt["trades"]}  # every leg of every round trip, filled
    assert route["client_ids_unique"] and route["orders"] == 4 * bt["trades"]
    fsm = route["trade_fsm"]  # each round trip followed through the two-leg trade state machine
    assert fsm["status"] == {"CLOSED": bt["trades"]} and fsm["errors"] == 0 and fsm["untracked_events"] == 0
    assert Decimal(extra["portfolio"]["net_pnl_krw"]) == Decimal(paper["net_pnl_krw"])  # the ledger of record
    assert extra["portfolio"]["fills_applied"] == 4 * bt["trades"] and extra["portfolio"]["duplicates_ignored"] == 0
    assert extra["feed_to_intent_latency_ms"]["intents"] == 4 * bt["trades"]
    scrape = extra["metrics_scrape"]  # the Prometheus page as served on 127.0.0.1 during the run
    assert f'arb_round_trips_total{{route="BTC"}} {float(bt["trades"])}' in scrape
    assert f"arb_feed_to_intent_seconds_count {float(4 * bt['trades'])}" in scrape


def test_paper_equals_backtest_on_multi_coin_snapshots(sample_stores: dict[str, Path], tmp_path: Path,
                                                       ray_session: object) -> None:
    """25 routes, each in its own actor at its own pace, under portfolio-wide risk (a breaker after 2 losing
    trips on any route): paper answers every open in market-time order, so it trades exactly as the backtest."""
    cfg = load_config(str(REPO / "docs" / "configs" / "snapshots.toml"))
    cfg = cfg.model_copy(update={"risk": cfg.risk.model_copy(update={"global_circuit_breaker_losses": 2,
                                                                     "circuit_breaker_losses": 1})})
    bt = run_backtest(BacktestRequest(store=sample_stores["multi"], routes="top:25", out=tmp_path / "bt",
                                      config=cfg, use_ray=False, progress=False))
    paper = run_paper(PaperRequest(store=sample_stores["multi"], routes="top:25", out=tmp_path / "paper",
                                   config=cfg, window_events=400))
    assert paper["routes"] == bt["routes"]
    assert bt["risk"]["rejections_by_reason"].get("global_circuit_breaker", 0) > 0  # a cross-route tier binds
    assert "order_timeouts" not in paper["risk"]  # every question got its turn, none was answered early
    assert paper["risk"]["rejections_by_reason"] == bt["risk"]["rejections_by_reason"]
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


def test_paper_cli_one_route_host_with_risk_inside_equals_the_backtest(sample_stores: dict[str, Path], tmp_path: Path,
                                                                        ray_session: object) -> None:
    bt = backtest(sample_stores["btc"], "BTC", tmp_path / "bt", risk=False)
    assert main(["paper", "--replay", str(sample_stores["btc"]), "--routes", "BTC", "--out", str(tmp_path / "cli"),
                 "--no-risk", "--route-hosts", "1", "--risk-in-host", "--window-events", "150"]) == 0
    # the RiskCoordinator in the host rules on every open, with limits the sample never reaches
    big = Decimal(10**12)
    loose = RiskLimits(daily_loss_limit_krw=big, max_drawdown_krw=big, max_venue_exposure_krw=big,
                       max_route_position_krw=big, max_symbol_position_krw=big, max_order_notional_krw=big,
                       max_inventory_imbalance=1.0, loss_cooldown_s=0.0, circuit_breaker_losses=10**6,
                       global_circuit_breaker_losses=None)
    paper = run_paper(PaperRequest(store=sample_stores["btc"], routes="BTC", out=tmp_path / "host", risk=loose,
                                   route_hosts=1, risk_in_host=True, window_events=150))
    assert bt["trades"] > 0 and paper["trades"] == bt["trades"], paper["paper"]["routes"][0]["risk_rejections"]
    assert paper["paper"]["risk_decisions"] == bt["funnel"]["passed_risk"] > 0
    for out in ("cli", "host"):
        for name in ("trades.csv", "fills.csv"):
            assert (tmp_path / out / name).read_bytes() == (tmp_path / "bt" / name).read_bytes(), (out, name)


class _Request(Exception):
    """Carries the PaperRequest the CLI built out of the test (instead of running it)."""


def _paper_request(args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> PaperRequest:
    def capture(req: PaperRequest) -> dict[str, object]:
        raise _Request(req)

    monkeypatch.setattr(paper_scenario, "run_paper", capture)
    with pytest.raises(_Request) as caught:  # --debug: the CLI lets an unexpected exception through
        main(["paper", "--debug", "--replay", str(tmp_path), "--routes", "BTC", "--out", str(tmp_path / "out"),
              *args])
    req = caught.value.args[0]
    assert isinstance(req, PaperRequest)
    return req


def test_paper_cli_passes_route_hosts_risk_in_host_and_windows(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    req = _paper_request([], tmp_path, monkeypatch)
    assert (req.route_hosts, req.risk_in_host, req.window_ns, req.window_events) == (0, False, None, 20_000)
    req = _paper_request(["--route-hosts", "1", "--risk-in-host", "--window-ms", "50"], tmp_path, monkeypatch)
    assert (req.route_hosts, req.risk_in_host, req.window_ns) == (1, True, 50_000_000)
    req = _paper_request(["--route-hosts", "3", "--window-ms", "0.5", "--speed", "1"], tmp_path, monkeypatch)
    assert (req.route_hosts, req.risk_in_host, req.window_ns, req.speed) == (3, False, 500_000, 1.0)
    req = _paper_request(["--window-events", "150"], tmp_path, monkeypatch)
    assert (req.window_ns, req.window_events) == (None, 150)


@pytest.mark.parametrize(("args", "message"), [
    (["--risk-in-host"], "--risk-in-host needs --route-hosts 1"),
    (["--route-hosts", "2", "--risk-in-host"], "--risk-in-host needs --route-hosts 1"),
    (["--route-hosts", "-1"], "argument --route-hosts: -1 is below 0"),
    (["--route-hosts", "two"], "argument --route-hosts: 'two' is not a whole number"),
    (["--window-ms", "0"], "argument --window-ms: 0 ms is not a usable window"),
    (["--window-ms", "nan"], "argument --window-ms: nan ms is not a usable window"),
    (["--window-ms", "fast"], "argument --window-ms: 'fast' is not a number of milliseconds"),
    (["--window-events", "0"], "argument --window-events: 0 is below 1"),
    (["--window-ms", "50", "--window-events", "100"], "not allowed with argument"),
])
def test_paper_cli_refuses_bad_host_and_window_values(args: list[str], message: str, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(paper_scenario, "run_paper", lambda req: pytest.fail("must not run"))
    assert main(["paper", "--replay", str(tmp_path), "--routes", "BTC", "--out", str(tmp_path / "out"), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("arbitrage-lite: error:") and err.count("\n") == 1 and message in err, err
