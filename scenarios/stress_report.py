"""The stress run on disk: stress.json, stress.csv (one row per scenario), plots/<scenario>.svg (its equity
curve against the baseline's) and stress.html (the table, the checks and every plot; offline, no scripts)."""

from __future__ import annotations

import csv
import json
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from ..infra.report.svg import Series, line_chart

CSV_COLUMNS = ("scenario", "trades", "net_pnl_krw", "delta_net_pnl_krw", "max_drawdown_krw", "unhedged_max_s",
               "unhedged_total_s", "unhedged_max_krw", "trips_unhedged_over_policy", "legs_expired",
               "kill_switch", "daily_loss_limit", "breaker_trips", "halted_at_end", "rejected_opens", "events_changed",
               "check")
BASE_COLOR, SCEN_COLOR = "#78909c", "#c62828"


def csv_row(row: dict[str, Any]) -> dict[str, object]:
    f, check = row["figures"], row.get("check")
    halts = f["halts"]
    return {"scenario": row["name"], "trades": f["trades"], "net_pnl_krw": f["net_pnl_krw"],
            "delta_net_pnl_krw": (row.get("vs_baseline") or {}).get("net_pnl_krw", "0"),
            "max_drawdown_krw": f["max_drawdown_krw"], "unhedged_max_s": f"{f['unhedged_max_s']:.3f}",
            "unhedged_total_s": f"{f['unhedged_total_s']:.3f}", "unhedged_max_krw": f"{f['unhedged_max_krw']:.0f}",
            "trips_unhedged_over_policy": f["trips_unhedged_over_policy"], "legs_expired": f["legs_expired"],
            "kill_switch": halts["kill_switch"], "daily_loss_limit": halts["daily_loss_limit"],
            "breaker_trips": halts["breaker_trip"] + halts["global_breaker_trip"],
            "halted_at_end": f["halted_at_end"], "rejected_opens": f["rejected_opens"],
            "events_changed": f["events_changed"], "check": _verdict(check)}


def _verdict(check: dict[str, Any] | None) -> str:
    if not check:
        return ""
    if check["passed"] is None:
        return "not shown"
    if check["passed"]:
        return "passed"
    return "FAILED" if check.get("exercised", True) else "FAILED (not exercised)"


def _curve(ts: np.ndarray, krw: np.ndarray, start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
    """The curve from 0 at the data's start to its end (a step per closed trip)."""
    last = float(krw[-1]) if krw.size else 0.0
    return (np.concatenate([[start], ts, [max(end, int(ts[-1]) if ts.size else end)]]).astype(np.int64),
            np.concatenate([[0.0], krw, [last]]).astype(np.float64))


def plot(name: str, curves: dict[str, tuple[np.ndarray, np.ndarray]], start: int, end: int) -> str:
    bx, by = _curve(*curves["baseline"], start, end)
    series = [Series(bx, by, "baseline", BASE_COLOR, step=True)]
    if name != "baseline":
        sx, sy = _curve(*curves[name], start, end)
        series.append(Series(sx, sy, name, SCEN_COLOR, step=True))
    return line_chart(series, title=f"{name}: realized net PnL (KRW) vs baseline", y_label="KRW", include_zero=True)


def _whole(v: object) -> str:
    """Money to whole KRW for the page (stress.csv and stress.json keep it exact)."""
    return f"{float(str(v)):,.0f}"


def _css(v: object) -> str:
    return "bad" if str(v).startswith("FAILED") else "ok" if v == "passed" else ""


def _table(rows: list[dict[str, Any]]) -> str:
    head = "".join(f"<th>{escape(c.replace('_', ' '))}</th>" for c in CSV_COLUMNS)  # spaces: headers wrap
    body = []
    for row in rows:
        cells = {k: _whole(v) if k.endswith("_krw") else v for k, v in csv_row(row).items()}
        tds = "".join(f"<td class='{_css(v)}'>{escape(str(v))}</td>" for v in cells.values())
        body.append(f"<tr>{tds}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def render_html(report: dict[str, Any], svgs: dict[str, str]) -> str:
    rows = report["scenarios"]
    checks = "".join(f"<li class='{_css(_verdict(c))}'>{escape(name)}: "
                     f"{escape(_verdict(c))} &mdash; {escape(str(c['expect']))}. "
                     f"{escape(str(c['detail']))}</li>" for name, c in report["checks"].items())
    desc = "".join(f"<li><b>{escape(r['name'])}</b>: {escape(str(r['scenario'].get('description', '')))}</li>"
                   for r in rows)
    plots = "".join(f"<h3>{escape(n)}</h3>{svg}" for n, svg in svgs.items() if n != "baseline")
    paper = report.get("paper_check")
    paper_html = "" if not paper else (
        f"<h2>Paper under {escape(str(paper['scenario']))}</h2><p class='{'ok' if paper['identical'] else 'bad'}'>"
        f"paper {'identical to' if paper['identical'] else 'DIFFERS from'} the backtest (no risk tiers): "
        f"{paper['trades_paper']} vs {paper['trades_backtest']} trades, net {escape(str(paper['net_pnl_krw_paper']))}"
        f" vs {escape(str(paper['net_pnl_krw_backtest']))} KRW</p>")
    return "".join([
        "<!doctype html><html><head><meta charset='utf-8'><title>arbitrage-lite stress</title><style>"
        "body{font-family:system-ui,sans-serif;margin:24px;max-width:1100px}"
        "table{border-collapse:collapse;margin:8px 0;font-size:13px}th,td{border:1px solid #ddd;padding:3px 6px;"
        "text-align:right}th{background:#f4f4f4}td:first-child{text-align:left}"
        ".ok{color:#1b7f3b;font-weight:600}.bad{color:#c62828;font-weight:600}</style></head><body>",
        f"<h1>Stress: {escape(', '.join(report['routes'][:10]))}</h1>",
        f"<p>{escape(report['data']['from'])} to {escape(report['data']['to'])}; store {escape(report['store'])}. "
        f"Moment scenarios anchored at {escape(json.dumps(report['anchor']))}.</p>",
        "<h2>Checks</h2><ul>", checks or "<li>none selected</li>", "</ul>",
        "<h2>Scenarios against the baseline</h2>", _table(rows),
        "<ul>", desc, "</ul>", paper_html, "<h2>Equity curves</h2>", plots, "</body></html>\n"])


def write_stress(out: Path, report: dict[str, Any], curves: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "stress.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    with (out / "stress.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=CSV_COLUMNS, lineterminator="\n")
        w.writeheader()
        for row in report["scenarios"]:
            w.writerow(csv_row(row))
    start, end = (int(np.datetime64(report["data"][k].rstrip("Z"), "ns").astype(np.int64)) for k in ("from", "to"))
    (out / "plots").mkdir(exist_ok=True)
    svgs = {}
    for name in curves:
        if name == "baseline":
            continue
        svgs[name] = plot(name, curves, start, end)
        (out / "plots" / f"{name}.svg").write_text(svgs[name] + "\n")
    (out / "stress.html").write_text(render_html(report, svgs))
