"""Write a run's summary.json, trades.csv, fills.csv and report.html (same schema for backtest and paper)."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.metrics import equity_curve, money
from ..core.replay import RoundTrip

if TYPE_CHECKING:
    from .backtest import RouteRun

_Q8 = Decimal("0.00000001")
TRADE_COLUMNS = [
    "route", "trip", "direction", "exit_reason", "entry_decision_time", "entry_fill_time", "exit_decision_time",
    "exit_fill_time", "qty", "premium_entry_bps", "premium_exit_bps", "deviation_entry_bps", "deviation_exit_bps",
    "fx_entry", "fx_exit",
]
for _phase in ("entry", "exit"):
    for _venue, _ccy in (("upbit", "krw"), ("binance", "usdt")):
        TRADE_COLUMNS += [f"{_phase}_{_venue}_side", f"{_phase}_{_venue}_price", f"{_phase}_{_venue}_qty",
                          f"{_phase}_{_venue}_fee_{_ccy}", f"{_phase}_{_venue}_slippage_{_ccy}"]
TRADE_COLUMNS += ["unwind_fills", "gross_pnl_krw", "fees_krw", "slippage_krw", "net_pnl_krw"]
TRADE_COLUMNS += ["spans_data_gap", "unhedged_s", "unhedged_krw"]  # fills only on quotes that exist (core.book)


def _iso(ts: int) -> str:
    return "" if ts < 0 else str(np.datetime64(ts, "ns")) + "Z"


def _num(x: float) -> str:
    return "" if not math.isfinite(x) else f"{x:.4f}"


def trade_row(t: RoundTrip) -> dict[str, str]:
    row = {
        "route": t.route, "trip": str(t.trip), "direction": "sell_upbit_buy_binance" if t.direction > 0
        else "buy_upbit_sell_binance", "exit_reason": t.exit_reason,
        "entry_decision_time": _iso(t.ts[0]), "entry_fill_time": _iso(t.ts[1]),
        "exit_decision_time": _iso(t.ts[2]), "exit_fill_time": _iso(t.ts[3]), "qty": format(t.qty, "f"),
        "premium_entry_bps": _num(t.premium_entry_bps), "premium_exit_bps": _num(t.premium_exit_bps),
        "deviation_entry_bps": _num(t.dev_entry_bps), "deviation_exit_bps": _num(t.dev_exit_bps),
        "fx_entry": format(t.fx_entry, "f"), "fx_exit": format(t.fx_exit, "f"),
        "unwind_fills": str(sum(1 for f in t.fills if f.action == "unwind")),
        "gross_pnl_krw": money(t.pnl.gross_krw), "fees_krw": money(t.pnl.fees_krw),
        "slippage_krw": money(t.pnl.slippage_krw), "net_pnl_krw": money(t.pnl.net_krw),
        "spans_data_gap": str(int(t.spans_gap)), "unhedged_s": _num(t.unhedged_ns / 1e9),
        "unhedged_krw": _num(t.unhedged_krw),
    }
    for phase in ("entry", "exit"):
        for venue, ccy in (("upbit", "krw"), ("binance", "usdt")):
            leg = t.legs.get(f"{phase}_{venue}")
            p = f"{phase}_{venue}"
            row[f"{p}_side"] = "" if leg is None else ("buy" if leg.side > 0 else "sell")
            row[f"{p}_price"] = "" if leg is None else format(leg.vwap.quantize(_Q8), "f")
            row[f"{p}_qty"] = "" if leg is None else format(leg.qty, "f")
            row[f"{p}_fee_{ccy}"] = "" if leg is None else format(leg.fee, "f")
            row[f"{p}_slippage_{ccy}"] = "" if leg is None else format(leg.slippage, "f")
    return row


def write_outputs(out: Path, summary: dict[str, Any], runs: Sequence[RouteRun]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=False) + "\n")
    trips = sorted((t for r in runs for t in r.real.trips), key=lambda t: (t.ts[0], t.route, t.trip))
    with (out / "trades.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=TRADE_COLUMNS, lineterminator="\n")
        w.writeheader()
        for t in trips:
            w.writerow(trade_row(t))
    with (out / "fills.csv").open("w", newline="") as fh:
        w2 = csv.writer(fh, lineterminator="\n")
        w2.writerow(["route", "trip", "action", "venue", "side", "price", "qty", "fee", "ref_price",
                     "decision_time", "fill_time"])
        for r in runs:
            for f in r.real.fills:
                w2.writerow([r.data.base, f.trip, f.action, f.venue.label, "buy" if f.side > 0 else "sell",
                             format(f.price, "f"), format(f.qty, "f"), format(f.fee, "f"), format(f.ref_price, "f"),
                             _iso(f.ts_decision), _iso(f.ts_venue)])
    from ..infra.report.html import write_report
    from .report_data import build_report_data

    write_report(out / "report.html", build_report_data(summary, runs, equity_curve([t for t in trips if t.closed])))

