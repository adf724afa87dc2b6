"""Parameter sweeps as distributed jobs, with an in-sample / out-of-sample split so the pick is honest.

Every grid point runs the full backtest (same core, same costs) on each time window as its own Ray task.
The best point is chosen on the in-sample window only; its out-of-sample result is the figure to trust.
"""

from __future__ import annotations

import csv
import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..core.config import EngineConfig
from ..infra.data.store import Store
from .backtest import replay_routes, summarize
from .market_data import DataError, load_route, resolve_routes

HEADLINE = ("trades", "wins", "win_rate", "gross_pnl_krw", "fees_krw", "slippage_krw", "net_pnl_krw",
            "max_drawdown_krw", "zero_cost_net_pnl_krw")


@dataclass(frozen=True)
class GridPoint:
    index: int
    values: dict[str, float]
    config: EngineConfig


def parse_grid(specs: Sequence[str]) -> dict[str, list[float]]:
    """``strategy.entry_bps=20,30,40`` → {"strategy.entry_bps": [20, 30, 40]}."""
    grid: dict[str, list[float]] = {}
    for spec in specs:
        key, sep, values = spec.partition("=")
        if not sep or "." not in key:
            raise DataError(f"bad grid spec {spec!r}: expected section.field=v1,v2 (e.g. strategy.entry_bps=20,40)")
        try:
            grid[key.strip()] = [float(v) for v in values.split(",") if v.strip()]
        except ValueError:
            raise DataError(f"bad grid spec {spec!r}: values must be numbers") from None
        if not grid[key.strip()]:
            raise DataError(f"bad grid spec {spec!r}: no values")
    return grid


def grid_points(base: EngineConfig, grid: dict[str, list[float]]) -> list[GridPoint]:
    keys = list(grid)
    points = []
    for i, combo in enumerate(itertools.product(*(grid[k] for k in keys))):
        raw: dict[str, Any] = json.loads(base.model_dump_json())
        for key, value in zip(keys, combo, strict=True):
            *path, field = key.split(".")
            node = raw
            for part in path:
                node = node.get(part) if isinstance(node, dict) else None  # type: ignore[assignment]
            if not isinstance(node, dict) or field not in node:
                raise DataError(f"unknown config field {key!r}")
            node[field] = str(value) if isinstance(node[field], str) else value  # Decimal fields stay exact
        try:
            cfg = EngineConfig.model_validate(raw)
        except ValidationError as exc:
            raise DataError(f"grid point {dict(zip(keys, combo, strict=True))} is not a valid config:\n{exc}") from None
        points.append(GridPoint(i, dict(zip(keys, combo, strict=True)), cfg))
    return points


def evaluate(store: Path, routes: Sequence[str], cfg: EngineConfig, start: int | None,
             end: int | None) -> dict[str, Any]:
    """One grid point on one window: the portfolio headline figures, under the point's risk limits (one risk
    model in every mode: a sweep judges what the backtest and paper would trade)."""
    runs, _ = replay_routes([load_route(store, b, cfg.costs, start, end) for b in routes], cfg)
    s = summarize(runs, cfg)
    return {k: s[k] for k in HEADLINE}


def data_span(store: Path, routes: Sequence[str]) -> tuple[int, int]:
    infos = [s for s in Store(store).series() if s.venue in ("upbit", "binance")
             and s.symbol.split("-")[0] in routes]
    return min(s.first_ts for s in infos), max(s.last_ts for s in infos) + 1


def run_sweep(store: Path, routes_spec: str, grid: dict[str, list[float]], base: EngineConfig, out: Path,
              split: float = 0.5, use_ray: bool = True, progress: bool = True) -> dict[str, Any]:
    if not 0.0 < split < 1.0:
        raise DataError("--split must be between 0 and 1 (the in-sample share of the time span)")
    routes = resolve_routes(store, routes_spec)
    points = grid_points(base, grid)
    lo, hi = data_span(store, routes)
    cut = lo + int((hi - lo) * split)
    windows = {"in_sample": (lo, cut), "out_of_sample": (cut, hi)}
    jobs = [(p, w) for p in points for w in windows]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), desc="sweep", unit="job")
    results: dict[tuple[int, str], dict[str, Any]] = {}
    if use_ray and len(jobs) > 1:
        from ..infra.ray_runtime import ensure_ray

        ray = ensure_ray()
        task = ray.remote(evaluate)
        refs = {task.remote(store, routes, p.config, *windows[w]): (p.index, w) for p, w in jobs}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                results[refs[ref]] = ray.get(ref)
                if bar is not None:
                    bar.update(1)
    else:
        for p, w in jobs:
            results[(p.index, w)] = evaluate(store, routes, p.config, *windows[w])
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    rows = []
    for p in points:
        row: dict[str, Any] = {"point": p.index, **p.values}
        for w in windows:
            for k in HEADLINE:
                row[f"{w}.{k}"] = results[(p.index, w)][k]
        rows.append(row)
    best = max(rows, key=lambda r: (float(r["in_sample.net_pnl_krw"]), -r["point"]))
    report = {"routes": routes, "grid": grid, "split_at": str(_iso(cut)), "windows": {
        w: [_iso(a), _iso(b)] for w, (a, b) in windows.items()}, "points": len(points),
        "best_in_sample": {k: best[k] for k in ["point", *grid]},
        "best_in_sample_out_of_sample": {k: best[f"out_of_sample.{k}"] for k in HEADLINE},
        "out_of_sample_positive_points": sum(1 for r in rows if float(r["out_of_sample.net_pnl_krw"]) > 0),
        "rows": rows}
    out.mkdir(parents=True, exist_ok=True)
    (out / "sweep.json").write_text(json.dumps(report, indent=2) + "\n")
    with (out / "sweep.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return report


def _iso(ts: int) -> str:
    import numpy as np

    return str(np.datetime64(int(ts), "ns").astype("datetime64[s]")) + "Z"
