"""HTML report of a tuning study: per-fold table, heatmaps of out-of-sample net PnL, stability of the picks,
and the held-out block apart, with its small-sample warning. Self-contained (inline CSS and SVG)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

from . import fmt, sections
from .html import _CSS

MAX_BINS = 8
CELL_W, CELL_H, PAD_L, PAD_T = 64, 28, 90, 40


def _edges(vals: Sequence[float]) -> list[float]:
    """The distinct values (a grid), or up to MAX_BINS equal bins' lower edges (continuous values)."""
    distinct = sorted(set(vals))
    if len(distinct) <= MAX_BINS:
        return distinct
    lo, hi = distinct[0], distinct[-1]
    return [lo + (hi - lo) * i / MAX_BINS for i in range(MAX_BINS)]


def _bin(v: float, edges: Sequence[float]) -> int:
    return max(i for i, e in enumerate(edges) if v >= e - 1e-12)


def _color(v: float, scale: float) -> str:
    """Diverging: red below zero, green above, white at zero."""
    t = max(-1.0, min(1.0, v / scale)) if scale else 0.0
    r, g, b = (255, int(255 * (1 + t)), int(255 * (1 + t))) if t < 0 else (int(255 * (1 - t)), 255 - int(90 * t),
                                                                             int(255 * (1 - t)))
    return f"rgb({r},{g},{b})"


def heatmap_svg(cells: Sequence[Mapping[str, Any]], kx: str, ky: str) -> str:
    """Mean out-of-sample net PnL (KRW) per (kx, ky) cell over every fold's complete trials; n per cell."""
    ex = _edges([c["values"][kx] for c in cells])
    ey = _edges([c["values"][ky] for c in cells]) if ky != kx else [0.0]
    acc: dict[tuple[int, int], list[float]] = {}
    for c in cells:
        y = _bin(c["values"][ky], ey) if ky != kx else 0
        acc.setdefault((_bin(c["values"][kx], ex), y), []).append(c["oos_net_pnl_krw"])
    means = {k: sum(v) / len(v) for k, v in acc.items()}
    scale = max((abs(v) for v in means.values()), default=0.0)
    w, h = PAD_L + CELL_W * len(ex) + 10, PAD_T + CELL_H * len(ey) + 30
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" font-size="11" font-family="sans-serif">',
           f'<text x="{PAD_L}" y="14" font-weight="600">{escape(kx)} (x){"" if ky == kx else f" × {escape(ky)} (y)"}'
           "</text>"]
    for (i, j), m in sorted(means.items()):
        x, y = PAD_L + i * CELL_W, PAD_T + (len(ey) - 1 - j) * CELL_H
        out.append(f'<rect x="{x}" y="{y}" width="{CELL_W - 2}" height="{CELL_H - 2}" fill="{_color(m, scale)}">'
                   f"<title>mean {m:,.0f} KRW over {len(acc[(i, j)])} trials</title></rect>")
        out.append(f'<text x="{x + CELL_W / 2 - 1}" y="{y + CELL_H / 2 + 4}" text-anchor="middle">'
                   f"{m / 1000:,.0f}k</text>")
    for i, e in enumerate(ex):
        out.append(f'<text x="{PAD_L + i * CELL_W + CELL_W / 2}" y="{h - 12}" text-anchor="middle">{e:g}</text>')
    if ky != kx:
        for j, e in enumerate(ey):
            out.append(f'<text x="{PAD_L - 6}" y="{PAD_T + (len(ey) - 1 - j) * CELL_H + CELL_H / 2 + 4}" '
                       f'text-anchor="end">{e:g}</text>')
    out.append("</svg>")
    return "".join(out)


def _table(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return sections.warning("no fold finished")
    keys = list(rows[0])
    head = "".join(f"<th>{escape(k)}</th>" for k in keys)
    body = []
    for r in rows:
        tds = []
        for k in keys:
            v = r[k]
            if k.endswith("_krw"):
                tds.append(f'<td class="num {fmt.sign_class(v)}">{fmt.krw(v)}</td>')
            elif isinstance(v, float):
                tds.append(f'<td class="num">{v:.4g}</td>')
            else:
                tds.append(f"<td>{escape(str(v))}</td>")
        body.append(f"<tr>{''.join(tds)}</tr>")
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def _heatmaps(result: Mapping[str, Any]) -> str:
    keys = [d["key"] for d in result["space"]]
    cells = result["heatmap_cells"]
    if not cells:
        return sections.warning("no complete trial judged out of sample yet")
    pairs = list(itertools.combinations(keys, 2)) or [(keys[0], keys[0])]
    figs = "".join(f"<figure>{heatmap_svg(cells, kx, ky)}</figure>" for kx, ky in pairs)
    return (f'<p class="note">Each cell: mean net PnL (thousand KRW) on the test block of the fold that searched '
            f"it, over every complete trial in the cell ({len(cells)} trial-folds). The held-out block is not in "
            f'any cell.</p><div class="grid">{figs}</div>')


def _holdout(result: Mapping[str, Any]) -> str:
    h = result.get("holdout")
    if not h:
        return sections.warning("the held-out block has not been judged yet (the study did not finish)")
    f = h["figures"]
    win = "—" if f["win_rate"] is None else f"{float(f['win_rate']):.3f}"
    rows = [("Block", f"{h['from']} → {h['to']}"), ("Chosen on", " → ".join(h["chosen_on"])),
            ("Parameters", ", ".join(f"{k} = {v:g}" for k, v in h["values"].items())),
            ("Round trips", str(f["trades"])), ("Win rate", win),
            ("Net PnL (KRW)", fmt.krw(f["net_pnl_krw"])), ("Fees (KRW)", fmt.krw(f["fees_krw"])),
            ("Max drawdown (KRW)", fmt.krw(f["max_drawdown_krw"])),
            ("Zero-cost net PnL (KRW)", fmt.krw(f["zero_cost_net_pnl_krw"]))]
    body = "".join(f"<tr><th>{escape(a)}</th><td>{escape(b)}</td></tr>" for a, b in rows)
    return f"{sections.warning(h['small_sample_warning'])}<table>{body}</table>"


def render_tune_report(result: Mapping[str, Any]) -> str:
    wf = result["walk_forward"]
    title = f"Tuning study {escape(result['study'])}: {escape(', '.join(result['routes']))}"
    stab = [{k: (", ".join(f"{x:g}" for x in v) if k == "picks" else v) for k, v in s.items()}
            for s in result["stability"]]
    reading = (f"{result['search']} search, {result['trials_per_fold']} trials per fold, {wf['folds']} walk-forward "
               f"folds over {result['span'][0]} → {result['span'][1]}. Out of sample (each fold's pick on the block "
               f"after it): {fmt.krw(wf['oos_net_pnl_krw'])} KRW over {wf['oos_trades']} round trips, "
               f"{wf['folds_positive']} of {wf['folds']} folds positive.")
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>{title}</title><style>{_CSS}</style></head><body><main>", f"<h1>{title}</h1>",
             f'<p class="reading">{escape(reading)}</p>', sections.warning(wf["small_sample_warning"]),
             "<h2>Per fold</h2>", _table(result["folds"]),
             "<h2>Out-of-sample net PnL by parameter</h2>", _heatmaps(result),
             "<h2>Stability of the picks across folds</h2>",
             '<p class="note">stdev_over_range: the picks\' spread over the searched range (0: the same pick every '
             "fold).</p>", _table(stab),
             "<h2>Held-out block (never read by a search)</h2>", _holdout(result),
             f'<p class="note">Trials: {result["trials"]}; sessions (runs of this study): {result["sessions"]}; '
             f'slices per train block: {result["slices"]}, early stopping: {result["early_stop"]}.</p>',
             "</main></body></html>", ""]
    return "\n".join(parts)


def write_tune_report(path: Path, result: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(render_tune_report(result).encode("utf-8"))
