"""HTML report and SVG chart toolkit: rendering, formatting, determinism, size and gap handling."""

from __future__ import annotations

import csv
import json
import re
import xml.etree.ElementTree as ET
from decimal import Decimal, localcontext
from pathlib import Path

import numpy as np
import pytest

from arbitrage_lite.cli import main
from arbitrage_lite.core.ledger import EXACT
from arbitrage_lite.infra.report import fmt
from arbitrage_lite.infra.report.html import PremiumSeries, ReportData, render_report, write_report
from arbitrage_lite.infra.report.svg import Markers, Series, histogram, line_chart
from arbitrage_lite.scenarios.backtest import BacktestRequest, run_backtest

NS = 1_000_000_000
T0 = 1_714_521_600 * NS  # 2024-05-01 00:00:00 UTC
BLOCK_S, PERIOD_S = 3 * 3600 + 20 * 60, 16 * 3600 + 3 * 3600 + 20 * 60  # 3h20m blocks, 16 h apart
SVG_NS = "{http://www.w3.org/2000/svg}"


def block_timestamps(n: int, step_s: int) -> np.ndarray:
    """n timestamps at step_s inside 3h20m blocks separated by 16 h gaps (like the BTC data)."""
    per_block = BLOCK_S // step_s
    i = np.arange(n, dtype=np.int64)
    return T0 + (i // per_block) * PERIOD_S * NS + (i % per_block) * step_s * NS


def premium_series(n: int, seed: int, step_s: int = 5) -> PremiumSeries:
    rng = np.random.default_rng(seed)
    ts = block_timestamps(n, step_s)
    prem = 250.0 + np.cumsum(rng.normal(0.0, 0.8, n))
    prem[rng.choice(n, n // 200, replace=False)] = np.nan
    csum = np.concatenate(([0.0], np.cumsum(np.nan_to_num(prem, nan=250.0))))
    ref = np.full(n, np.nan)
    ref[500:] = (csum[500 + 1:] - csum[1:-500]) / 500  # trailing 500-point mean, NaN during warm-up
    ok = np.flatnonzero(np.isfinite(prem[: n - 40]) & np.isfinite(prem[40:]))
    e = np.sort(rng.choice(ok, 70, replace=False))
    x = e + 40
    return PremiumSeries(ts_ns=ts, premium_bps=prem, reference_bps=ref, entry_ts_ns=ts[e],
                         entry_bps=prem[e], exit_ts_ns=ts[x], exit_bps=prem[x])


def route_figures(trades: int, wins: int, net: str, gross: str, fees: str, slip: str) -> dict[str, object]:
    return {"trades": trades, "wins": wins, "win_rate": wins / trades, "gross_pnl_krw": gross,
            "fees_krw": fees, "slippage_krw": slip, "net_pnl_krw": net, "max_drawdown_krw": "-310000"}


def realistic_data() -> ReportData:
    rng = np.random.default_rng(7)
    pnl = rng.normal(6_000.0, 25_000.0, 200)
    exits = np.sort(block_timestamps(50_000, 5)[rng.choice(50_000, 200, replace=False)])
    summary: dict[str, object] = {
        "mode": "backtest",
        "routes": ["BTC", "ETH", "XRP"],
        "data": {"from": "2024-05-01T00:00:00Z", "to": "2024-05-18T00:00:00Z", "resolution": "5s",
                 "fx_source": "upbit_usdt_krw"},
        "trades": 200, "wins": 113, "win_rate": "0.565",
        "gross_pnl_krw": "4893210.4567", "fees_krw": "2345678.9", "slippage_krw": 456789.49,
        "net_pnl_krw": "1234567.89", "max_drawdown_krw": "-987654.5", "zero_cost_net_pnl_krw": "4036035",
        "funnel": {"signals": 12_000, "above_threshold": 3_000, "depth_ok": 600, "filled": 200},
        "per_route": {
            "XRP": route_figures(40, 15, "-345678", "100000", "300000", "145678"),
            "BTC": route_figures(100, 60, "1300000.4", "3000000", "1200000", "499999.6"),
            "ETH": route_figures(60, 38, "280245.49", "1793210", "845679", "667285"),
        },
        "assumptions": {"upbit_taker_fee": "0.0005", "binance_taker_fee": "0.001", "notional_krw": 5_000_000,
                        "latency_ms": 150, "fx": "USDT/KRW from Upbit"},
    }
    return ReportData(
        summary=summary,
        equity=(exits, np.cumsum(pnl)),
        premium={r: premium_series(50_000, i) for i, r in enumerate(["BTC", "ETH", "XRP"])},
        trade_net_pnl_krw=pnl,
        title="Kimchi premium backtest <May 2024>",
    )


def svgs(page: str) -> list[str]:
    return re.findall(r"<svg .*?</svg>", page, flags=re.S)


def line_paths(svg: str) -> list[str]:
    root = ET.fromstring(svg)
    return [p.get("d", "") for p in root.iter(f"{SVG_NS}path") if p.get("fill") == "none"]


def test_realistic_page_contains_formatted_summary(tmp_path: Path) -> None:
    data = realistic_data()
    page = render_report(data)
    assert page.startswith("<!DOCTYPE html>")
    assert "Kimchi premium backtest &lt;May 2024&gt;" in page
    for text in ("1,234,568", "2,345,679", "456,789", "4,893,210", "-987,655", "4,036,035", "56.5 %",
                 "200 round trips", "12,000", "25.0 %", "33.3 %", "0.0005", "5,000,000", "upbit_usdt_krw"):
        assert text in page, text
    assert 'class="num pos">1,234,568<' in page
    assert 'class="num neg">-345,678<' in page
    # per-route table sorted by net PnL: BTC, ETH, XRP
    table = page[page.index("<h2>Per route</h2>"):]
    assert table.index(">BTC<") < table.index(">ETH<") < table.index(">XRP<")
    # 3 premium charts + equity + drawdown + histogram, all well-formed, none remote
    charts = svgs(page)
    assert len(charts) == 6
    for svg in charts:
        ET.fromstring(svg)
        assert len(svg.encode()) < 300_000
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in page
    out = tmp_path / "sub" / "report.html"
    write_report(out, data)
    assert out.read_bytes() == page.encode("utf-8")


def test_render_is_byte_identical() -> None:
    assert render_report(realistic_data()) == render_report(realistic_data())


def test_empty_run_says_no_trades() -> None:
    summary: dict[str, object] = {"mode": "backtest", "routes": [], "trades": 0, "wins": 0, "win_rate": 0,
                                  "net_pnl_krw": "0", "funnel": {"signals": 50, "filled": 0}}
    empty = PremiumSeries(ts_ns=np.zeros(0, np.int64), premium_bps=np.zeros(0))
    page = render_report(ReportData(summary=summary, premium={"BTC": empty}))
    assert "no trades" in page.lower()
    assert page.count("no data") == 1  # the empty premium chart
    for svg in svgs(page):
        ET.fromstring(svg)
    render_report(ReportData(summary={}))


def test_many_routes_chart_only_the_top_twelve_by_abs_net() -> None:
    per_route = {f"C{i:02d}": {"trades": 1, "net_pnl_krw": (i - 10) * 1000} for i in range(15)}
    ts = T0 + np.arange(50) * NS
    prem = {k: PremiumSeries(ts_ns=ts, premium_bps=np.linspace(0, 10, 50)) for k in per_route}
    page = render_report(ReportData(summary={"trades": 15, "per_route": per_route}, premium=prem))
    assert len(svgs(page)) == 12 + 3
    assert "Not charted (3 more routes" in page
    assert "C09, C11, C10." in page  # the smallest |net PnL| (1000, 1000, 0), ties by name


def test_large_series_is_downsampled_under_300kb() -> None:
    n = 200_000
    ts = T0 + np.arange(n, dtype=np.int64) * NS
    y = np.sin(np.arange(n) / 300.0) * 100 + np.random.default_rng(1).normal(0, 5, n)
    svg = line_chart([Series(ts, y, label="a"), Series(ts, y * 0.5, label="b")], title="big")
    assert len(svg.encode()) < 300_000
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG_NS}svg"
    # min/max per column keeps the extremes
    assert "100" in svg
    i = np.arange(0, n, 20)  # 10k entries + 10k exits: compact marker paths, still under the budget
    marks = [Markers(ts[i], y[i], "entry"), Markers(ts[i + 5], y[i + 5], "exit")]
    svg = line_chart([Series(ts, y)], markers=marks)
    assert len(svg.encode()) < 300_000
    ET.fromstring(svg)


def test_gaps_and_nans_break_the_line() -> None:
    n = 24_000
    ts = block_timestamps(n, 5)  # 2,400 points per block -> 10 blocks
    y = np.cos(np.arange(n) / 50.0)
    (d,) = line_paths(line_chart([Series(ts, y)], gap=3600 * NS))
    assert d.count("M") == 10
    (d_nogap,) = line_paths(line_chart([Series(ts, y)]))
    assert d_nogap.count("M") == 1
    y[[100, 5_000, 5_001]] = np.nan
    (d_nan,) = line_paths(line_chart([Series(ts, y)], gap=3600 * NS))
    assert d_nan.count("M") == 12


def test_svg_edge_cases_are_well_formed() -> None:
    cases = [
        line_chart([], title="nothing"),
        line_chart([Series(np.zeros(0, np.int64), np.zeros(0))]),
        line_chart([Series(np.array([T0]), np.array([np.nan]))]),
        line_chart([Series(np.array([T0]), np.array([5.0]))]),
        line_chart([Series(np.array([1.0, 2.0, 3.0]), np.full(3, 2.0), fill=True)], time_axis=False),
        histogram([]),
        histogram([0.0]),
        histogram([-5.0, -5.0]),
        histogram(np.array([1.0, np.nan, 2.5, 1e7])),
    ]
    for svg in cases:
        ET.fromstring(svg)
    assert "no data" in cases[0] and "no data" in cases[2] and "no data" in cases[5]


def test_markers_and_histogram_content() -> None:
    ts = T0 + np.arange(100, dtype=np.int64) * 60 * NS
    svg = line_chart([Series(ts, np.arange(100.0))],
                     markers=[Markers(ts[[10]], [10.0], "entry", unit="bps"),
                              Markers(ts[[20]], [20.0], "exit", unit="bps")])
    assert "<title>entry 2024-05-01 00:10:00 UTC · 10.0 bps</title>" in svg
    assert "<title>exit 2024-05-01 00:20:00 UTC · 20.0 bps</title>" in svg
    assert "05-01 00:30" in svg or "00:30" in svg  # readable UTC tick labels
    h = histogram([-1500.0, -200.0, 300.0, 800.0, 2600.0], unit="KRW")
    root = ET.fromstring(h)
    bars = [r for r in root.iter(f"{SVG_NS}rect") if r.find(f"{SVG_NS}title") is not None]
    assert sum(int(r.find(f"{SVG_NS}title").text.split(": ")[1].split()[0]) for r in bars) == 5  # type: ignore[union-attr]
    assert 'stroke-dasharray="4 3"' in h  # zero line


def test_number_formatting() -> None:
    assert fmt.krw("1234567.5") == "1,234,568"
    assert fmt.krw(-0.4) == "0"
    assert fmt.krw(-1234.5) == "-1,235"
    assert fmt.krw(None) == "—"
    assert fmt.number("0.0005") == "0.0005"
    assert fmt.number(5_000_000) == "5,000,000"
    assert fmt.pct(fmt.win_fraction({"trades": 3, "wins": 1})) == "33.3 %"
    assert fmt.pct(fmt.win_fraction({"win_rate": 56.5})) == "56.5 %"


# --- a report a trader can act on: attribution, trade list, small samples, risk, guarded pairs, alerts ---

H = 3600 * NS


def risk_summary() -> dict[str, object]:
    """summary["risk"] in the shape the lead's RiskCoordinator report produces (hand-made)."""
    def ev(h: int, action: str, route: str, reason: str) -> dict[str, object]:
        return {"ts": f"2024-05-01T{h:02d}:00:00Z", "ts_ns": T0 + h * H, "action": action, "route": route,
                "reason": reason}
    return {"enabled": True, "rejections_by_reason": {"max_order_notional": 7, "route_breaker": 31},
            "events": [ev(2, "breaker_trip", "WAVES", "5 consecutive losing round trips"),
                       ev(5, "halt", "", "daily loss limit"), ev(9, "resume", "", "new day"),
                       ev(12, "breaker_reset", "WAVES", "reset after 1 day of market time"),
                       ev(20, "kill_switch", "", "drawdown 6 % of capital")]}


def actionable_summary(trades: int) -> dict[str, object]:
    return {"mode": "backtest", "routes": ["BTC", "WAVES"], "trades": trades, "wins": 1, "net_pnl_krw": "265353",
            "data": {"from": "2024-05-01T00:00:00Z", "to": "2024-05-02T00:00:00Z"},
            "small_sample_warning": f"only {trades} round trips (fewer than 30): too few to tell an edge from luck",
            "risk": risk_summary(),
            "guarded_pairs": [{"route": "WAVES", "start": "2024-05-01T01:00:00Z", "end": None,
                               "reason": "premium 640 bps from the universe's for 24 h"}],
            "per_route": {"BTC": {"trades": 2, "net_pnl_krw": "265353", "guarded": []},
                          "WAVES": {"trades": 0, "net_pnl_krw": "0", "guarded": [{"reason": "structural"}]}},
            "alerts_by_rule": [{"rule": "risk_reject", "severity": "P3", "count": 1140, "suppressed": 20,
                                "first": "2024-05-01T00:01:00Z", "last": "2024-05-01T23:59:00Z", "keys": 2,
                                "example": "BTC: order notional over the limit"}]}


def test_risk_timeline_guarded_pairs_and_small_sample_warning_render() -> None:
    page = render_report(ReportData(summary=actionable_summary(2)))
    head = page[:page.index("<h2>Funnel</h2>")]
    assert "only 2 round trips (fewer than 30)" in head  # beside the headline, before anything else
    risk = page[page.index("<h2>Risk"):page.index("<h2>Guarded pairs</h2>")]
    assert "route_breaker" in risk and ">31<" in risk
    (strip,) = svgs(risk)
    root = ET.fromstring(strip)
    spans = {r.find(f"{SVG_NS}title").text.split(":")[0] for r in root.iter(f"{SVG_NS}rect")  # type: ignore[union-attr]
             if r.find(f"{SVG_NS}title") is not None}
    assert spans == {"breaker tripped", "halted", "kill switch (to the end)"}
    assert "all routes" in strip and "WAVES" in strip
    guarded = page[page.index("<h2>Guarded pairs</h2>"):page.index("<h2>Equity")]
    assert "premium 640 bps" in guarded and "to the end" in guarded and len(svgs(guarded)) == 1
    per_route = page[page.index("<h2>Per route</h2>"):]
    assert "<th>Guarded</th>" in per_route and "1 span" in per_route
    alerts = page[page.index("<h2>Alerts by rule</h2>"):]
    assert "risk_reject" in alerts and "1,140" in alerts
    for svg in svgs(page):
        ET.fromstring(svg)
    assert "only 30 round trips" not in render_report(ReportData(summary={**actionable_summary(30),
                                                                           "small_sample_warning": None}))


def test_alerts_are_aggregated_by_rule_not_listed() -> None:
    from arbitrage_lite.scenarios.outputs import alerts_by_rule  # here: the other tests run on older code

    alerts = [{"rule": "risk_reject", "severity": "P3", "key": f"R{i % 3}", "message": f"rejected #{i}",
               "now_ns": T0 + i * NS, "suppressed": 1} for i in range(1140)]
    alerts.append({"rule": "kill_switch", "severity": "P0", "key": "global", "message": "drawdown",
                   "now_ns": T0 + 5 * NS, "suppressed": 0})
    rows = alerts_by_rule(alerts)
    assert [r["rule"] for r in rows] == ["kill_switch", "risk_reject"]  # most urgent first
    rej = rows[1]
    assert rej["count"] == 1140 and rej["suppressed"] == 1140 and rej["keys"] == 3
    assert rej["first"] == "2024-05-01T00:00:00.000000000Z" and rej["example"] == "R0: rejected #0"
    summary = {"trades": 0, "paper": {"alerts": alerts, "feeds": [1, 2]}, "alerts_by_rule": rows}
    page = render_report(ReportData(summary=summary))
    assert "rejected #1139" not in page  # no alert list dumped into a cell
    assert "1,141 items (see summary.json)" not in page  # the raw list is not shown at all


def listed_trades(page: str) -> list[tuple[str, str]]:
    """(route, trip) of each row of the report's trade list, in order."""
    table = page[page.index("<h2>Trade list</h2>"):page.index("<h2>Per route</h2>")]
    return re.findall(r'<tr><td data-v="([A-Z0-9]+) #(\d+)">', table)


def sample_backtest(store: Path, out: Path) -> tuple[dict, list[dict[str, str]]]:
    summary = run_backtest(BacktestRequest(store=store, routes="BTC", out=out, use_ray=False, progress=False))
    with (out / "trades.csv").open() as fh:
        return summary, list(csv.DictReader(fh))


def test_zero_cost_figure_is_the_same_trips_attributed(sample_stores: dict[str, Path], tmp_path: Path) -> None:
    summary, rows = sample_backtest(sample_stores["btc"], tmp_path)
    closed = [r for r in rows if r["exit_fill_time"]]
    assert 0 < len(closed) == summary["trades"]
    attr = summary["cost_attribution"]
    with localcontext(EXACT):
        for r in rows:  # per trip: edge + fx - fees - slippage == net, digit for digit
            assert (Decimal(r["gross_edge_krw"]) + Decimal(r["fx_effect_krw"]) - Decimal(r["fees_krw"])
                    - Decimal(r["slippage_krw"])) == Decimal(r["net_pnl_krw"])
            assert Decimal(r["gross_edge_krw"]) + Decimal(r["fx_effect_krw"]) == Decimal(r["gross_pnl_krw"])

        def total(key: str) -> Decimal:
            return sum((Decimal(r[key]) for r in closed), Decimal(0))

        zero_cost = total("net_pnl_krw") + total("fees_krw") + total("slippage_krw")
        assert Decimal(summary["zero_cost_net_pnl_krw"]) == zero_cost == Decimal(attr["gross_pnl_krw"])
        assert Decimal(attr["gross_edge_krw"]) == total("gross_edge_krw")
        assert Decimal(attr["fx_effect_krw"]) == total("fx_effect_krw")
        assert Decimal(attr["net_pnl_krw"]) == Decimal(summary["net_pnl_krw"]) == total("net_pnl_krw")
    for route in summary["per_route"].values():
        assert "zero_cost_trades" not in route and route["cost_attribution"]["trips"] == route["trades"]
    assert summary["reconciliation"]["ok"] is True and summary["reconciliation"]["per_balance"]
    assert all(b["ok"] and Decimal(b["diff"]) == 0 for b in summary["reconciliation"]["per_balance"].values())
    assert summary["sharpe_convention"]["annualization_factor"].startswith("sqrt(365)")
    assert summary["sharpe_convention"]["risk_free_rate"] == "0"
    assert listed_trades((tmp_path / "report.html").read_text()) == [(r["route"], r["trip"]) for r in rows]


def test_trade_list_is_trades_csv_and_small_samples_are_flagged(sample_stores: dict[str, Path], tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backtest", "--store", str(sample_stores["multi"]), "--routes", "top:10", "--no-ray",
                 "--no-progress", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((tmp_path / "summary.json").read_text())
    with (tmp_path / "trades.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    page = (tmp_path / "report.html").read_text()
    assert summary["trades"] < 30
    warning = summary["small_sample_warning"]
    assert warning.startswith(f"only {summary['trades']} round trip")
    assert f"WARNING: {warning}" in printed
    assert warning in page[:page.index("<h2>Funnel</h2>")]
    assert listed_trades(page) == [(r["route"], r["trip"]) for r in rows]
    for r in rows:
        if r["premium_entry_tether_bps"]:  # USDT/KRW and USD/KRW both known: coin x tether = total
            coin, tether = float(r["premium_entry_coin_bps"]), float(r["premium_entry_tether_bps"])
            total = ((1 + coin / 1e4) * (1 + tether / 1e4) - 1) * 1e4
            assert abs(total - float(r["premium_entry_total_bps"])) < 1e-3
    assert "Sharpe convention" in page and "Ledger reconciles" in page
