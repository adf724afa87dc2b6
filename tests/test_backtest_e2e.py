"""End to end on the bundled real sample: import → backtest → summary/trades/report, identities exact."""

from __future__ import annotations

import csv
import json
from decimal import Decimal, localcontext
from pathlib import Path

import pytest

from arbitrage_lite.cli import main
from arbitrage_lite.core.ledger import EXACT
from arbitrage_lite.scenarios.backtest import BacktestRequest, run_backtest

MONEY = ("gross_pnl_krw", "fees_krw", "slippage_krw", "net_pnl_krw", "max_drawdown_krw", "zero_cost_net_pnl_krw")


def check_identities(summary: dict, out: Path) -> None:
    with localcontext(EXACT):  # exact sums: 28 digits would round them
        _check_identities(summary, out)


def _check_identities(summary: dict, out: Path) -> None:
    d = {k: Decimal(summary[k]) for k in MONEY}
    assert d["net_pnl_krw"] == d["gross_pnl_krw"] - d["fees_krw"] - d["slippage_krw"]
    per = summary["per_route"]
    assert set(per) == set(summary["routes"])
    for key in ("gross_pnl_krw", "fees_krw", "slippage_krw", "net_pnl_krw"):
        assert sum(Decimal(r[key]) for r in per.values()) == d[key]
    for r in per.values():
        assert Decimal(r["net_pnl_krw"]) == (Decimal(r["gross_pnl_krw"]) - Decimal(r["fees_krw"])
                                              - Decimal(r["slippage_krw"]))
    assert summary["trades"] == sum(r["trades"] for r in per.values())
    assert summary["wins"] <= summary["trades"]
    f = summary["funnel"]
    assert f["decisions"] >= f["signals_seen"] >= f["passed_risk"] >= f["filled_both_legs"] >= f["closed"]
    with (out / "trades.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    closed = [r for r in rows if r["exit_fill_time"]]
    assert len(closed) == summary["trades"]
    assert sum(Decimal(r["net_pnl_krw"]) for r in closed) == d["net_pnl_krw"]
    for r in closed:
        assert Decimal(r["net_pnl_krw"]) == (Decimal(r["gross_pnl_krw"]) - Decimal(r["fees_krw"])
                                             - Decimal(r["slippage_krw"]))
        assert r["entry_upbit_side"] != r["entry_binance_side"]
    html = (out / "report.html").read_text()
    assert "<svg" in html and "Per route" in html


def test_btc_bars_backtest_on_real_sample(sample_stores: dict[str, Path], tmp_path: Path) -> None:
    summary = run_backtest(BacktestRequest(store=sample_stores["btc"], routes="BTC", out=tmp_path, use_ray=False,
                                           progress=False))
    assert summary["mode"] == "backtest" and summary["routes"] == ["BTC"]
    assert summary["data"]["resolution"] == "1m bars" and summary["data"]["fx_source"] == "usd_krw"
    assert summary["data"]["from"] == "2024-08-24T22:28:00Z"
    assert summary["trades"] > 0  # the December 2024 blocks hold real premium swings
    assert Decimal(summary["fees_krw"]) > 0
    check_identities(summary, tmp_path)


def test_top_n_snapshots_in_ray_tasks_match_in_process(sample_stores: dict[str, Path], tmp_path: Path,
                                                       ray_session: object) -> None:
    a = run_backtest(BacktestRequest(store=sample_stores["multi"], routes="top:6", out=tmp_path / "ray",
                                     use_ray=True, progress=False))
    b = run_backtest(BacktestRequest(store=sample_stores["multi"], routes="top:6", out=tmp_path / "local",
                                     use_ray=False, progress=False))
    assert a == b
    assert len(a["routes"]) == 6 and a["data"]["fx_source"] == "upbit_krw_usdt"
    split = a["per_route"]["BTC"]["premium_split_bps"]  # Upbit KRW-USDT and USD/KRW both in the sample
    assert 50 < split["tether_median"] < 300 and abs(split["coin_median"]) < split["tether_median"]
    assert a["data"]["resolution"] == "snapshots"
    check_identities(a, tmp_path / "ray")
    for name in ("summary.json", "trades.csv", "fills.csv", "report.html"):
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), name


def test_backtest_is_byte_identical_across_runs(sample_stores: dict[str, Path], tmp_path: Path) -> None:
    for run in ("a", "b"):
        assert main(["backtest", "--store", str(sample_stores["btc"]), "--routes", "BTC", "--no-ray",
                     "--no-progress", "--out", str(tmp_path / run)]) == 0
    for name in ("summary.json", "trades.csv", "fills.csv", "report.html"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_config_file_changes_the_run_and_bad_config_is_refused(sample_stores: dict[str, Path], tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "strict.toml"
    cfg.write_text("[strategy]\nentry_bps = 400.0\nexit_bps = 5.0\n")
    assert main(["backtest", "--store", str(sample_stores["btc"]), "--routes", "BTC", "--no-ray", "--no-progress",
                 "--config", str(cfg), "--out", str(tmp_path / "strict")]) == 0
    strict = json.loads((tmp_path / "strict" / "summary.json").read_text())
    assert strict["trades"] == 0 and strict["config"]["strategy"]["entry_bps"] == 400.0
    bad = tmp_path / "bad.toml"
    bad.write_text("[strategy]\nentry_bps = -1\n")
    assert main(["backtest", "--store", str(sample_stores["btc"]), "--routes", "BTC", "--config", str(bad),
                 "--out", str(tmp_path / "bad")]) == 2
    assert "entry_bps" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize(("routes", "needle"), [("DOGE", "no data on both venues"), ("top:x", "top:N"),
                                                ("top:0", "positive"), (" , ", "empty route spec")])
def test_bad_route_specs_are_refused(sample_stores: dict[str, Path], tmp_path: Path, routes: str, needle: str,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backtest", "--store", str(sample_stores["btc"]), "--routes", routes, "--out", str(tmp_path)]) == 2
    assert needle in capsys.readouterr().err


def test_missing_store_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backtest", "--store", str(tmp_path / "nope"), "--routes", "BTC", "--out", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_cli_prints_what_risk_refused_and_the_guarded_pairs(sample_stores: dict[str, Path], tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """The run's last lines say what risk refused (by reason), its events and the guarded pairs."""
    cfg = tmp_path / "tight.toml"
    snapshots = Path(__file__).resolve().parent.parent / "docs" / "configs" / "snapshots.toml"
    cfg.write_text(snapshots.read_text() + "\n[risk]\nglobal_circuit_breaker_losses = 2\ncircuit_breaker_losses = 1\n")
    assert main(["backtest", "--store", str(sample_stores["multi"]), "--routes", "top:25", "--no-ray", "--no-progress",
                 "--config", str(cfg), "--out", str(tmp_path / "t")]) == 0
    summary = json.loads((tmp_path / "t" / "summary.json").read_text())
    by = summary["risk"]["rejections_by_reason"]
    assert by.get("global_circuit_breaker", 0) > 0
    out = capsys.readouterr().out
    refused = ", ".join(f"{k} {v}" for k, v in sorted(by.items(), key=lambda kv: -kv[1]))
    assert f"risk: opens refused {sum(by.values())} ({refused}); events: " in out
    names = sorted({g["route"] for g in summary["guarded_pairs"]})
    assert names and f"guarded pairs (no opens while guarded): {len(names)}: {', '.join(names)}" in out
    assert main(["backtest", "--store", str(sample_stores["multi"]), "--routes", "top:25", "--no-ray", "--no-progress",
                 "--no-risk", "--out", str(tmp_path / "off")]) == 0
    assert json.loads((tmp_path / "off" / "summary.json").read_text())["risk"] == {"enabled": False}
    assert "risk: off (--no-risk)" in capsys.readouterr().out
