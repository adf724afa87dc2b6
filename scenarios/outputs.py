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

from ..core.accounting import reconcile
from ..core.fx import FxSource, split_premium_series
from ..core.metrics import SHARPE_CONVENTION, equity_curve, money, trip_attribution
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
# per-trip attribution (gross_pnl = gross_edge + fx_effect; net = gross - fees - slippage) and the entry
# premium split into its coin part and its tether part (USDT/KRW over USD/KRW, where both are known)
TRADE_COLUMNS += ["entry_notional_krw", "gross_edge_krw", "fx_effect_krw", "gross_edge_bps", "fx_effect_bps",
                  "fees_bps", "slippage_bps", "net_bps", "premium_entry_coin_bps", "premium_entry_tether_bps",
                  "premium_entry_total_bps"]
TRADE_COLUMNS += ["spans_data_gap", "unhedged_s", "unhedged_krw"]  # fills only on quotes that exist (core.book)
NO_SPLIT = (math.nan, math.nan, math.nan)


def _iso(ts: int) -> str:
    return "" if ts < 0 else str(np.datetime64(ts, "ns")) + "Z"


def _num(x: float | None) -> str:
    return "" if x is None or not math.isfinite(x) else f"{x:.4f}"


def premium_splits(run: RouteRun) -> dict[int, tuple[float, float, float]]:
    """Per trip: the entry premium as (coin, tether, total) bps, from the rates known at the entry decision.

    With USDT/KRW as the FX the kernel's premium is the coin part; the tether part needs a USD/KRW rate too.
    With USD/KRW as the FX the premium is the total and the split is unknown (NaN).
    """
    trips = [t for t in run.real.trips if t.ts[0] >= 0]
    if not trips:
        return {}
    ts = np.array([t.ts[0] for t in trips], dtype=np.int64)
    prem = np.array([t.premium_entry_bps for t in trips], dtype=np.float64)
    nan = np.full(ts.shape[0], np.nan)
    if run.data.fx_source == FxSource.USD_KRW.value:
        coin, tether, total = nan, nan, prem
    elif run.data.usd_krw is None:
        coin, tether, total = prem, nan, nan
    else:
        fx_ev = run.data.events.venue == 2
        coin = prem
        tether, total = split_premium_series(ts, prem, run.data.events.ts[fx_ev], run.data.events.px[fx_ev],
                                             *run.data.usd_krw)
    return {t.trip: (float(coin[i]), float(tether[i]), float(total[i])) for i, t in enumerate(trips)}


def trade_row(t: RoundTrip, split: tuple[float, float, float] = NO_SPLIT) -> dict[str, str]:
    a = trip_attribution(t)
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
        "entry_notional_krw": money(a.notional_krw), "gross_edge_krw": money(a.edge_krw),
        "fx_effect_krw": money(a.fx_krw), "gross_edge_bps": _num(a.bps(a.edge_krw)),
        "fx_effect_bps": _num(a.bps(a.fx_krw)), "fees_bps": _num(a.bps(a.fees_krw)),
        "slippage_bps": _num(a.bps(a.slippage_krw)), "net_bps": _num(a.bps(a.net_krw)),
        "premium_entry_coin_bps": _num(split[0]), "premium_entry_tether_bps": _num(split[1]),
        "premium_entry_total_bps": _num(split[2]),
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


def alerts_by_rule(alerts: Sequence[dict[str, Any]]) -> list[dict[str, object]]:
    """Alerts grouped by rule: how many were sent (and throttled), first and last time, keys, one example."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for a in sorted(alerts, key=lambda a: (int(a.get("now_ns", 0)), str(a.get("rule")))):
        groups.setdefault(str(a.get("rule")), []).append(a)
    out: list[dict[str, object]] = []
    for rule, items in groups.items():
        keys = sorted({str(a.get("key", "")) for a in items})
        first, last = int(items[0].get("now_ns", 0)), int(items[-1].get("now_ns", 0))
        out.append({"rule": rule, "severity": str(items[0].get("severity", "")), "count": len(items),
                    "suppressed": sum(int(a.get("suppressed", 0)) for a in items),
                    "first": _iso(first), "last": _iso(last), "first_ns": first, "last_ns": last,
                    "keys": len(keys), "key_examples": keys[:5],
                    "example": f"{items[0].get('key', '')}: {items[0].get('message', '')}"})
    return sorted(out, key=lambda g: (str(g["severity"]), -int(str(g["count"])), str(g["rule"])))


def trade_rows(runs: Sequence[RouteRun]) -> list[dict[str, str]]:
    """trades.csv's rows, in its order (entry time, route, trip): the report's trade list uses the same."""
    splits = {r.data.base: premium_splits(r) for r in runs}
    trips = sorted((t for r in runs for t in r.real.trips), key=lambda t: (t.ts[0], t.route, t.trip))
    return [trade_row(t, splits[t.route].get(t.trip, NO_SPLIT)) for t in trips]


def reconciliation(runs: Sequence[RouteRun]) -> dict[str, object]:
    """summary["reconciliation"]: each route's ledger against its initial balances and fills, exactly."""
    per = {}
    for r in runs:
        rec = reconcile(r.real.initial, r.real.fills, r.real.ledger.balances)
        per.update({f"{r.data.base}/{k}": v for k, v in rec.items()})
    return {"ok": all(v["ok"] for v in per.values()), "rule": "initial + fills (bought - sold) - fees == final, "
            "per route ledger, venue and currency, exact Decimal", "per_balance": per}


def report_fields(runs: Sequence[RouteRun]) -> dict[str, object]:
    """The summary's fields that say how far its figures can be trusted (ledger check, Sharpe convention)."""
    return {"reconciliation": reconciliation(runs), "sharpe_convention": SHARPE_CONVENTION}


def write_outputs(out: Path, summary: dict[str, Any], runs: Sequence[RouteRun]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    paper = summary.get("paper")
    if isinstance(paper, dict) and isinstance(paper.get("alerts"), list):  # one row per rule, not per alert
        summary["alerts_by_rule"] = alerts_by_rule(paper["alerts"])
    (out / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=False) + "\n")
    trips = sorted((t for r in runs for t in r.real.trips), key=lambda t: (t.ts[0], t.route, t.trip))
    rows = trade_rows(runs)
    with (out / "trades.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=TRADE_COLUMNS, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
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

    write_report(out / "report.html",
                 build_report_data(summary, runs, equity_curve([t for t in trips if t.closed]), rows))

