"""A study's result from its database rows: per-fold table, stability of the picks, heatmap cells, held-out block.

Pure (rows in, dict out) but for ``write_outputs``, which writes tune.json, folds.csv and
report.html into the run's output directory.
"""

from __future__ import annotations

import csv
import json
import statistics
from decimal import Decimal
from pathlib import Path
from typing import Any

from ..core.metrics import small_sample_warning
from .sweep import _iso


def _fold_row(f: dict[str, Any], trials: list[dict[str, Any]]) -> dict[str, Any]:
    test = f["test"]["chosen"]
    mine = [t for t in trials if t["fold"] == f["fold"]]
    return {"fold": "holdout" if f["kind"] == "holdout" else f["fold"],
            "train_from": _iso(f["train_start"]), "train_to": _iso(f["train_end"]),
            "test_from": _iso(f["test_start"]), "test_to": _iso(f["test_end"]),
            "trial": f["chosen"]["trial"], **f["chosen"]["values"],
            "train_trades": f["train"].get("trades"), "train_net_pnl_krw": f["train"].get("net_pnl_krw"),
            "test_trades": test["trades"], "test_win_rate": test["win_rate"], "test_net_pnl_krw": test["net_pnl_krw"],
            "test_fees_krw": test["fees_krw"], "test_max_drawdown_krw": test["max_drawdown_krw"],
            "trials_complete": sum(t["status"] == "complete" for t in mine),
            "trials_stopped": sum(t["status"] == "stopped" for t in mine),
            "trials_invalid": sum(t["status"] == "invalid" for t in mine)}


def stability(space: list[dict[str, Any]], picks: list[dict[str, float]]) -> list[dict[str, Any]]:
    """How much each parameter's pick moves across folds: its values, spread, and spread over the searched
    range (0: the same pick every fold; near 0.3 or more: about as spread as random picks)."""
    out = []
    for d in space:
        vals = [p[d["key"]] for p in picks]
        span = (max(d["values"]) - min(d["values"])) if d.get("values") else d["high"] - d["low"]
        sd = statistics.pstdev(vals) if len(vals) > 1 else 0.0
        out.append({"key": d["key"], "picks": vals, "mean": statistics.fmean(vals), "stdev": sd,
                    "stdev_over_range": sd / span if span else 0.0, "distinct": len(set(vals))})
    return out


def heat_cells(folds: list[dict[str, Any]], trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every complete trial of the walk-forward folds with its out-of-sample net PnL (held-out block: never)."""
    values = {(t["fold"], t["trial"]): t["config"]["values"] for t in trials}
    cells = []
    for f in folds:
        if f["kind"] == "holdout":
            continue
        for no, net in f["test"]["by_trial"].items():
            cells.append({"fold": f["fold"], "trial": int(no), "values": values[(f["fold"], int(no))],
                          "oos_net_pnl_krw": float(net)})
    return cells


def study_result(study: str, spec: dict[str, Any], folds: list[dict[str, Any]],
                 trials: list[dict[str, Any]]) -> dict[str, Any]:
    wf = [f for f in folds if f["kind"] == "walk_forward"]
    hold = next((f for f in folds if f["kind"] == "holdout"), None)
    oos = sum((Decimal(f["test"]["chosen"]["net_pnl_krw"]) for f in wf), Decimal(0))
    oos_trades = sum(int(f["test"]["chosen"]["trades"]) for f in wf)
    result: dict[str, Any] = {
        "study": study, "routes": spec["routes"], "search": spec["search"], "space": spec["space"],
        "trials_per_fold": spec["trials"], "slices": spec["slices"], "early_stop": spec["early_stop"],
        "span": [_iso(spec["span"][0]), _iso(spec["span"][1])], "folds": [_fold_row(f, trials) for f in folds],
        "walk_forward": {"folds": len(wf), "oos_net_pnl_krw": str(oos), "oos_trades": oos_trades,
                         "folds_positive": sum(Decimal(f["test"]["chosen"]["net_pnl_krw"]) > 0 for f in wf),
                         "small_sample_warning": small_sample_warning(oos_trades)},
        "stability": stability(spec["space"], [f["chosen"]["values"] for f in wf]),
        "heatmap_cells": heat_cells(folds, trials),
        "trials": {s: sum(t["status"] == s for t in trials) for s in ("complete", "stopped", "invalid")},
        "sessions": max((t["session"] for t in trials), default=0),
    }
    if hold is not None:
        h = hold["test"]["chosen"]
        result["holdout"] = {"from": _iso(hold["test_start"]), "to": _iso(hold["test_end"]),
                             "chosen_on": [_iso(hold["train_start"]), _iso(hold["train_end"])],
                             "values": hold["chosen"]["values"], "figures": h,
                             "small_sample_warning": small_sample_warning(int(h["trades"]))}
    return result


def write_outputs(out: Path, result: dict[str, Any]) -> None:
    from ..infra.report.tune import write_tune_report

    out.mkdir(parents=True, exist_ok=True)
    (out / "tune.json").write_text(json.dumps(result, indent=2) + "\n")
    rows = result["folds"]
    if rows:
        with (out / "folds.csv").open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
            w.writeheader()
            w.writerows(rows)
    write_tune_report(out / "report.html", result)
