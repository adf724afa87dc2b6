"""Self-contained, deterministic HTML report of a backtest run (inline CSS + SVG, no external resources)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from html import escape
from pathlib import Path

import numpy as np
import numpy.typing as npt

from . import fmt, sections
from .svg import EXIT_COLOR, Markers, Series, empty_chart, histogram, line_chart

NS = 1_000_000_000
MAX_PREMIUM_CHARTS = 12
_ROUTE_NAMES_SHOWN = 20


def _i64(a: npt.ArrayLike) -> npt.NDArray[np.int64]:
    arr = np.asarray(a).ravel()
    if np.issubdtype(arr.dtype, np.datetime64):
        return arr.astype("datetime64[ns]").astype(np.int64)
    return arr.astype(np.int64)


def _f64(a: npt.ArrayLike) -> npt.NDArray[np.float64]:
    return np.asarray(a, dtype=np.float64).ravel()


def _empty_i() -> npt.NDArray[np.int64]:
    return np.zeros(0, dtype=np.int64)


def _empty_f() -> npt.NDArray[np.float64]:
    return np.zeros(0, dtype=np.float64)


def _check(name: str, a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{name}: lengths differ ({a.shape[0]} != {b.shape[0]})")


@dataclass(frozen=True, eq=False)
class PremiumSeries:
    """One route's premium over time, its reference (may be NaN / empty) and the trade markers."""

    ts_ns: npt.NDArray[np.int64]
    premium_bps: npt.NDArray[np.float64]
    reference_bps: npt.NDArray[np.float64] = field(default_factory=_empty_f)
    entry_ts_ns: npt.NDArray[np.int64] = field(default_factory=_empty_i)
    entry_bps: npt.NDArray[np.float64] = field(default_factory=_empty_f)
    exit_ts_ns: npt.NDArray[np.int64] = field(default_factory=_empty_i)
    exit_bps: npt.NDArray[np.float64] = field(default_factory=_empty_f)

    def __post_init__(self) -> None:
        for name in ("ts_ns", "entry_ts_ns", "exit_ts_ns"):
            object.__setattr__(self, name, _i64(getattr(self, name)))
        for name in ("premium_bps", "reference_bps", "entry_bps", "exit_bps"):
            object.__setattr__(self, name, _f64(getattr(self, name)))
        _check("premium_bps", self.ts_ns, self.premium_bps)
        if self.reference_bps.shape[0]:
            _check("reference_bps", self.ts_ns, self.reference_bps)
        _check("entry markers", self.entry_ts_ns, self.entry_bps)
        _check("exit markers", self.exit_ts_ns, self.exit_bps)


def _no_equity() -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    return _empty_i(), _empty_f()


@dataclass(frozen=True, eq=False)
class ReportData:
    """Everything the report shows. Arrays are coerced (ts -> int64 ns, values -> float64) on construction.

    ``premium_gap_ns``: break premium lines where timestamps jump by more than this
    (None: 20x the median step, at least 60 s).
    """

    summary: dict[str, object]
    equity: tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]] = field(default_factory=_no_equity)
    premium: dict[str, PremiumSeries] = field(default_factory=dict)
    trade_net_pnl_krw: npt.NDArray[np.float64] = field(default_factory=_empty_f)
    title: str = "arbitrage-lite backtest report"
    premium_gap_ns: int | None = None
    trades: list[dict[str, str]] = field(default_factory=list)  # trades.csv's rows, for the trade list

    def __post_init__(self) -> None:
        ts, pnl = _i64(self.equity[0]), _f64(self.equity[1])
        _check("equity", ts, pnl)
        object.__setattr__(self, "equity", (ts, pnl))
        object.__setattr__(self, "trade_net_pnl_krw", _f64(self.trade_net_pnl_krw))


_CSS = """
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;color:#1d1d1f;
background:#f4f5f7;margin:0}
main{max-width:1280px;margin:0 auto;padding:24px 28px 48px;background:#fff;min-height:100vh}
h1{font-size:24px;margin:0 0 8px}
h2{font-size:18px;margin:32px 0 10px;padding-bottom:4px;border-bottom:1px solid #e3e3e3}
p.reading{font-size:15px;background:#f7f9fc;border-left:4px solid #1f5fa8;padding:10px 14px;margin:12px 0}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(320px,1fr));gap:20px;align-items:start}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{padding:4px 10px;border-bottom:1px solid #eee;text-align:left;vertical-align:top}
th{background:#fafafa;font-weight:600;color:#444}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tbody tr:hover{background:#f5f8ff}
.neg{color:#c62828}.pos{color:#1b7f3b}
.bar{display:inline-block;height:9px;background:#8fb0d9;vertical-align:middle}
figure{margin:14px 0}
figure svg{width:100%;height:auto;display:block;border:1px solid #eee;border-radius:4px}
.note{color:#666;font-size:13px}
p.warn{background:#fff6e0;border-left:4px solid #e08a00;padding:8px 12px;margin:10px 0;font-weight:600}
p.ok{background:#eef8f0;border-left:4px solid #1b7f3b;padding:8px 12px;margin:10px 0}
.scroll{overflow-x:auto;max-height:900px;overflow-y:auto;border:1px solid #eee}
table.trades{font-size:12px}table.trades td,table.trades th{padding:3px 6px}
table.trades td{white-space:nowrap}table.trades small{color:#777}
table.sortable th{cursor:pointer;position:sticky;top:0}
"""

_RESULT_ROWS = (
    ("trades", "Round trips", "count"),
    ("wins", "Wins", "count"),
    ("win_rate", "Win rate", "winrate"),
    ("gross_pnl_krw", "Gross PnL (KRW)", "krw"),
    ("fees_krw", "Fees (KRW)", "cost"),
    ("slippage_krw", "Slippage (KRW)", "cost"),
    ("net_pnl_krw", "Net PnL (KRW)", "krw"),
    ("max_drawdown_krw", "Max drawdown (KRW)", "dd"),
)
_KNOWN = {k for k, _, _ in _RESULT_ROWS} | {
    "mode", "routes", "data", "funnel", "per_route", "assumptions", "zero_cost_net_pnl_krw", "small_sample_warning",
    "cost_attribution", "reconciliation", "sharpe_convention", "risk", "guarded_pairs", "alerts_by_rule"}
_LABELS = {"sharpe_daily_annualized": "Sharpe (daily net PnL, ×√365, risk-free 0)"}
_NOT_GENERIC = {"alerts", "risk_report"}  # shown aggregated in their own sections
_MAX_LIST_ITEMS = 8


def _money(v: object, kind: str = "krw") -> str:
    """A KRW <td>: PnL coloured by sign, costs and drawdowns only red when negative."""
    cls = fmt.sign_class(v)
    if kind != "krw" and cls == "pos":
        cls = ""
    return f'<td class="num {cls}">{fmt.krw(v)}</td>'.replace(' ">', '">')


def _span(v: object) -> str:
    cls = fmt.sign_class(v)
    return f'<span class="{cls}">{fmt.krw(v)} KRW</span>' if cls else f"{fmt.krw(v)} KRW"


def _cell(figures: Mapping[str, object], key: str, kind: str) -> str:
    v = figures.get(key)
    if kind == "count":
        return f'<td class="num">{fmt.count(v)}</td>'
    if kind == "winrate":
        return f'<td class="num">{fmt.pct(fmt.win_fraction(figures))}</td>'
    return _money(v, kind)


def _routes_text(routes: object) -> str:
    if isinstance(routes, list | tuple):
        names = [str(r) for r in routes]
        shown = ", ".join(names[:_ROUTE_NAMES_SHOWN])
        more = f" … (+{len(names) - _ROUTE_NAMES_SHOWN} more)" if len(names) > _ROUTE_NAMES_SHOWN else ""
        return f"{len(names)}: {shown}{more}" if names else "0"
    return fmt.value(routes)


def _n_routes(summary: Mapping[str, object]) -> int | None:
    routes = summary.get("routes")
    if isinstance(routes, list | tuple):
        return len(routes)
    d = fmt.to_decimal(routes)
    return int(d) if d is not None else None


def _data(summary: Mapping[str, object]) -> Mapping[str, object]:
    d = summary.get("data")
    return d if isinstance(d, Mapping) else {}


def _n_trades(data: ReportData) -> int:
    d = fmt.to_decimal(data.summary.get("trades"))
    return int(d) if d is not None else int(data.trade_net_pnl_krw.shape[0])


def reading(data: ReportData) -> str:
    """The one-paragraph plain-language reading of the run (HTML)."""
    s, d = data.summary, _data(data.summary)
    ctx: list[str] = []
    if s.get("mode") is not None:
        ctx.append(f"{escape(str(s['mode']))} run")
    if d.get("from") is not None or d.get("to") is not None:
        ctx.append(f"{escape(fmt.when(d.get('from')))} → {escape(fmt.when(d.get('to')))}")
    nr = _n_routes(s)
    if nr is not None:
        ctx.append(f"{nr} route{'s' if nr != 1 else ''}")
    if d.get("resolution") is not None:
        ctx.append(f"{escape(str(d['resolution']))} resolution")
    context = f" ({', '.join(ctx)})" if ctx else ""
    n = _n_trades(data)
    if n == 0:
        text = f"There were no trades in this run{context}: 0 round trips, so there is no PnL to report."
        if isinstance(s.get("funnel"), Mapping) and s["funnel"]:
            text += " The funnel below shows at which stage the candidate opportunities were filtered out."
        return text
    wr = fmt.pct(fmt.win_fraction(s))
    warn = s.get("small_sample_warning")
    text = (f"<strong>⚠ {escape(str(warn))}.</strong> " if warn else "") + (
            f"{n:,} round trip{'s' if n != 1 else ''}{context}, win rate {wr}, "
            f"net PnL {_span(s.get('net_pnl_krw'))} after {fmt.krw(s.get('fees_krw'))} KRW fees and "
            f"{fmt.krw(s.get('slippage_krw'))} KRW slippage; without fees and slippage the same trades would have "
            f"made {_span(s.get('zero_cost_net_pnl_krw'))}.")
    gross, net = fmt.to_decimal(s.get("gross_pnl_krw")), fmt.to_decimal(s.get("net_pnl_krw"))
    if gross is not None and net is not None and gross > 0 > net:
        text += f" Costs turned a gross profit of {fmt.krw(gross)} KRW into a loss."
    if s.get("max_drawdown_krw") is not None:
        text += f" The largest drawdown was {fmt.krw(s.get('max_drawdown_krw'))} KRW."
    return text


def _kv_table(rows: list[tuple[str, str]], head: str) -> str:
    body = "".join(f"<tr><th>{escape(k)}</th>{v}</tr>" for k, v in rows)
    return f'<table><thead><tr><th colspan="2">{escape(head)}</th></tr></thead><tbody>{body}</tbody></table>'


def _headline(s: Mapping[str, object]) -> str:
    d = _data(s)
    run = [("Mode", s.get("mode")), ("Routes", None), ("From", d.get("from")), ("To", d.get("to")),
           ("Resolution", d.get("resolution")), ("FX source", d.get("fx_source"))]
    run_rows = [(k, f"<td>{escape(fmt.when(v))}</td>") for k, v in run if k != "Routes"]
    run_rows.insert(1, ("Routes", f"<td>{escape(_routes_text(s.get('routes')))}</td>"))
    for k, v in d.items():
        if k not in {"from", "to", "resolution", "fx_source"}:
            run_rows.append((f"data.{k}", f"<td>{escape(fmt.value(v))}</td>"))
    res_rows = [(label, _cell(s, key, kind)) for key, label, kind in _RESULT_ROWS
                if key in s or kind == "winrate"]
    for k, v in s.items():
        if k not in _KNOWN and not isinstance(v, Mapping | list | tuple):
            text = fmt.krw(v) if k.endswith("_krw") else f"{v:,.3f}" if isinstance(v, float) else fmt.value(v)
            res_rows.append((_LABELS.get(k, k.replace("_", " ")), f'<td class="num">{escape(text)}</td>'))
    warn = sections.warning(s.get("small_sample_warning"))
    return f'{warn}<div class="grid">{_kv_table(run_rows, "Run")}{_kv_table(res_rows, "Results")}</div>'


def _counts(s: Mapping[str, object]) -> str:
    """Small tables for nested count maps (exit reasons, rejections); the full config stays in summary.json."""
    parts = []
    for k, v in s.items():
        if k in _KNOWN or k == "config" or not isinstance(v, Mapping) or not v:
            continue
        rows = [(str(name), _count_cell(val)) for name, val in v.items() if name not in _NOT_GENERIC]
        parts.append(_kv_table(rows, k.replace("_", " ")))
    return f'<div class="grid">{"".join(parts)}</div>' if parts else ""


def _count_cell(v: object) -> str:
    """A number stays on one line, right-aligned; a sentence (a rule, a note) wraps."""
    text = _short(v)
    if isinstance(v, str) and " " in v.strip():
        return f'<td style="white-space:normal;max-width:28em">{escape(text)}</td>'
    return f'<td class="num">{escape(text)}</td>'


def _short(v: object) -> str:
    """A value for a table cell: long lists are counted, not spelled out (summary.json keeps them)."""
    if isinstance(v, list | tuple) and len(v) > _MAX_LIST_ITEMS:
        return f"{len(v):,} items (see summary.json)"
    return fmt.value(v)


def _funnel(s: Mapping[str, object]) -> str:
    funnel = s.get("funnel")
    if not isinstance(funnel, Mapping) or not funnel:
        return '<p class="note">No funnel figures in the summary.</p>'
    vals = [(str(k), fmt.to_decimal(v)) for k, v in funnel.items()]
    top = max((v for _, v in vals if v is not None), default=Decimal(0))
    rows, prev = [], None
    for stage, v in vals:
        share = fmt.pct(v / prev) if v is not None and prev is not None and prev > 0 else "—"
        width = int(v / top * 120) if v is not None and top > 0 else 0
        bar = f'<span class="bar" style="width:{width}px"></span>'
        rows.append(f'<tr><td>{escape(stage)}</td><td class="num">{fmt.count(v)}</td>'
                    f'<td class="num">{share}</td><td>{bar}</td></tr>')
        prev = v
    return ('<table style="max-width:640px"><thead><tr><th>Stage</th><th class="num">Count</th>'
            f'<th class="num">% of previous</th><th></th></tr></thead><tbody>{"".join(rows)}</tbody></table>')


def _per_route_items(s: Mapping[str, object]) -> list[tuple[str, Mapping[str, object]]]:
    pr = s.get("per_route")
    if not isinstance(pr, Mapping):
        return []
    items = [(str(k), v) for k, v in pr.items() if isinstance(v, Mapping)]
    return sorted(items, key=lambda kv: (-(fmt.to_decimal(kv[1].get("net_pnl_krw")) or Decimal(0)), kv[0]))


def _per_route(s: Mapping[str, object]) -> str:
    items = _per_route_items(s)
    if not items:
        return '<p class="note">No per-route figures in the summary.</p>'
    cols = [("trades", "count"), ("win_rate", "winrate"), ("gross_pnl_krw", "krw"), ("fees_krw", "cost"),
            ("slippage_krw", "cost"), ("net_pnl_krw", "krw"), ("max_drawdown_krw", "dd")]
    names = ("Trades", "Win rate", "Gross (KRW)", "Fees (KRW)", "Slippage (KRW)", "Net (KRW)", "Max DD (KRW)")
    guard = any("guarded" in f for _, f in items)
    head = ("<tr><th>Symbol</th>" + "".join(f'<th class="num">{n}</th>' for n in names)
            + ("<th>Guarded</th>" if guard else "") + "</tr>")
    rows = "".join(f"<tr><td>{escape(sym)}{_small_mark(f)}</td>{''.join(_cell(f, k, kind) for k, kind in cols)}"
                   f"{_guard_cell(f) if guard else ''}</tr>" for sym, f in items)
    note = ('<p class="note">⚠: fewer than 30 round trips on that route, too few to read its figures as an '
            "edge.</p>" if any(f.get("small_sample_warning") for _, f in items) else "")
    return f"<table><thead>{head}</thead><tbody>{rows}</tbody></table>{note}"


def _small_mark(f: Mapping[str, object]) -> str:
    w = f.get("small_sample_warning")
    return f' <span class="warnmark" title="{escape(str(w))}">⚠</span>' if w else ""


def _guard_cell(f: Mapping[str, object]) -> str:
    g = f.get("guarded")
    if isinstance(g, list | tuple):
        text = f"{len(g)} span{'s' if len(g) != 1 else ''}" if g else "no"
    elif isinstance(g, Mapping):
        text = str(g.get("reason", "yes"))
    else:
        text = "yes" if g else "no" if g is not None else "—"
    return f"<td>{escape(text)}</td>"


def _assumptions(s: Mapping[str, object]) -> str:
    a = s.get("assumptions")
    if not isinstance(a, Mapping) or not a:
        return '<p class="note">No assumptions recorded in the summary.</p>'
    rows = "".join(f"<tr><td>{escape(str(k))}</td><td>{escape(fmt.value(v))}</td></tr>" for k, v in a.items())
    return ('<table style="max-width:760px"><thead><tr><th>Assumption</th><th>Value</th></tr></thead>'
            f"<tbody>{rows}</tbody></table>")


def _auto_gap(ts: npt.NDArray[np.int64]) -> int:
    d = np.diff(np.sort(ts))
    d = d[d > 0]
    med = int(np.median(d)) if d.shape[0] else 0
    return max(20 * med, 60 * NS)


def _route_order(data: ReportData) -> list[str]:
    """Premium routes by |net PnL| (from per_route; unknown = 0), ties by name."""
    pr = data.summary.get("per_route")
    net: dict[str, Decimal] = {}
    if isinstance(pr, Mapping):
        for k, v in pr.items():
            if isinstance(v, Mapping):
                net[str(k)] = abs(fmt.to_decimal(v.get("net_pnl_krw")) or Decimal(0))
    return sorted(data.premium, key=lambda r: (-net.get(r, Decimal(0)), r))


def _premium_chart(route: str, p: PremiumSeries, gap_ns: int | None) -> str:
    gap = gap_ns if gap_ns is not None else _auto_gap(p.ts_ns)
    series = [Series(p.ts_ns, p.premium_bps, label="premium", color="#1f5fa8", width=1.2)]
    if p.reference_bps.shape[0] and np.isfinite(p.reference_bps).any():
        series.append(Series(p.ts_ns, p.reference_bps, label="reference", color="#e08a00", width=1.2,
                             dash="5 3"))
    markers = [Markers(p.entry_ts_ns, p.entry_bps, "entry", "entry", "bps"),
               Markers(p.exit_ts_ns, p.exit_bps, "exit", "exit", "bps")]
    return line_chart(series, markers=markers, title=f"{route}: premium", y_label="bps", gap=float(gap))


def _premium_section(data: ReportData) -> str:
    order = _route_order(data)
    if not order:
        return '<p class="note">No premium series.</p>'
    charts = "".join(f"<figure>{_premium_chart(r, data.premium[r], data.premium_gap_ns)}</figure>"
                     for r in order[:MAX_PREMIUM_CHARTS])
    rest = order[MAX_PREMIUM_CHARTS:]
    note = (f'<p class="note">Not charted ({len(rest)} more routes, smaller |net PnL|): '
            f"{escape(', '.join(rest))}.</p>") if rest else ""
    return charts + note


_EQ_TITLE, _DD_TITLE = "Equity: cumulative net PnL (KRW)", "Drawdown from running peak (KRW)"


def _equity_charts(data: ReportData) -> str:
    ts, pnl = data.equity
    if ts.shape[0] == 0:
        return (f"<figure>{empty_chart(_EQ_TITLE, height=140, note='no trades')}</figure>"
                f"<figure>{empty_chart(_DD_TITLE, height=140, note='no trades')}</figure>")
    dd = pnl - np.maximum(np.fmax.accumulate(pnl), 0.0)
    eq = line_chart([Series(ts, pnl, color="#1f5fa8", width=1.6, step=True)], include_zero=True,
                    title=_EQ_TITLE, y_label="KRW")
    ddc = line_chart([Series(ts, dd, color=EXIT_COLOR, width=1.2, fill=True, step=True)],
                     title=_DD_TITLE, y_label="KRW")
    return f"<figure>{eq}</figure><figure>{ddc}</figure>"


def render_report(data: ReportData) -> str:
    """The complete HTML page as a string (byte-identical for identical input)."""
    s = data.summary
    pnl = data.trade_net_pnl_krw
    hist = (histogram(pnl, title="Net PnL per round trip", unit="KRW") if pnl.shape[0]
            else empty_chart("Net PnL per round trip", height=140, note="no trades"))
    title = escape(data.title)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{title}</title><style>{_CSS}</style></head><body><main>",
        f"<h1>{title}</h1>",
        f'<p class="reading">{reading(data)}</p>',
        "<h2>Headline figures</h2>", _headline(s), sections.sharpe_note(s),
        "<h2>Where the PnL came from (same trips)</h2>", sections.attribution(s),
        "<h2>Funnel</h2>", _funnel(s), _counts(s),
        "<h2>Risk: rejections and halts</h2>", sections.risk(s),
        "<h2>Guarded pairs</h2>", sections.guarded(s),
        "<h2>Equity and drawdown</h2>", _equity_charts(data),
        "<h2>Premium over time</h2>",
        '<p class="note">Premium in bps (blue), reference (orange, dashed); ▲ entries, ▼ exits. '
        "Lines break at data gaps. Times in UTC.</p>",
        _premium_section(data),
        "<h2>PnL per round trip</h2>", f"<figure>{hist}</figure>",
        "<h2>Trade list</h2>", sections.trade_list(data.trades),
        "<h2>Per route</h2>", _per_route(s),
        *(["<h2>Alerts by rule</h2>", alerts] if (alerts := sections.alerts(s)) else []),
        "<h2>Ledger reconciliation</h2>", sections.reconciliation(s),
        "<h2>Assumptions</h2>", _assumptions(s),
        sections.SORT_JS if data.trades else "",
        "</main></body></html>",
        "",
    ]
    return "\n".join(parts)


def write_report(path: Path, data: ReportData) -> None:
    """Render and write the page as UTF-8 (parent directories are created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(render_report(data).encode("utf-8"))
