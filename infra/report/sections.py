"""Report sections a trader acts on: cost attribution, the trade list, risk, guarded pairs, alerts, the ledger.

Each renders from plain summary dicts (the shapes summary.json holds) and says so when its input is absent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

import numpy as np

from . import fmt
from .svg import Point, Span, timeline

MAX_TRADE_ROWS = 2000
MAX_EVENT_ROWS = 200
GLOBAL_LANE = "all routes"
_SPAN_OPEN = {"halt": ("halted", "#c62828"), "pause": ("paused", "#e08a00"),
              "kill_switch": ("kill switch", "#6a1b9a"), "breaker_trip": ("breaker tripped", "#ef6c00")}
_SPAN_CLOSE = {"resume": ("halt", "pause"), "breaker_reset": ("breaker_trip",)}
_POINT_COLOR = {"resume": "#1b7f3b", "breaker_reset": "#1b7f3b"}
GUARD_COLOR = "#7a7a7a"

SORT_JS = """<script>
document.querySelectorAll("table.sortable").forEach(function (t) {
  t.querySelectorAll("th").forEach(function (th, i) {
    th.addEventListener("click", function () {
      var body = t.tBodies[0], rows = Array.prototype.slice.call(body.rows), asc = th.dataset.asc !== "1";
      t.querySelectorAll("th").forEach(function (h) { delete h.dataset.asc; });
      th.dataset.asc = asc ? "1" : "0";
      function key(r) { var c = r.cells[i]; return c.dataset.v !== undefined ? c.dataset.v : c.textContent; }
      rows.sort(function (a, b) {
        var x = key(a), y = key(b), nx = parseFloat(x), ny = parseFloat(y);
        var c = (x !== "" && y !== "" && !isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
        return asc ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
</script>"""


def _note(text: str) -> str:
    return f'<p class="note">{escape(text)}</p>'


def warning(text: object) -> str:
    """A visible caution box (empty when there is nothing to say)."""
    return f'<p class="warn">⚠ {escape(str(text))}</p>' if text else ""


def to_ns(v: object) -> int | None:
    """Epoch ns from an int or an ISO-8601 UTC string (``2024-12-20T10:00:00Z``); None if neither."""
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    if isinstance(v, str) and v:
        try:
            return int(np.datetime64(v.rstrip("Z"), "ns").astype(np.int64))
        except ValueError:
            return None
    return None


def _bps(v: object) -> str:
    d = fmt.to_decimal(v)
    return "—" if d is None else f"{round(float(d), 1) + 0.0:,.1f}"  # + 0.0: never "-0.0"


def attribution(s: Mapping[str, object]) -> str:
    """The run's PnL walked from the captured premium down to net, over the same round trips."""
    a = s.get("cost_attribution")
    if not isinstance(a, Mapping):
        return _note("No cost attribution in the summary.")
    rows = [("Gross edge (premium captured at decision mids)", "gross_edge_krw", "gross_edge_bps", "+"),
            ("FX effect (entry USDT valued at the exit FX)", "fx_effect_krw", "fx_effect_bps", "+"),
            ("= Gross PnL, the same trips with zero costs", "gross_pnl_krw", "gross_pnl_bps", "="),
            ("Fees", "fees_krw", "fees_bps", "−"),
            ("Slippage (fills against the decision's mid)", "slippage_krw", "slippage_bps", "−"),
            ("= Net PnL", "net_pnl_krw", "net_bps", "=")]
    body = []
    for label, krw, bps, op in rows:
        style = ' style="font-weight:600"' if op == "=" else ""
        bps_text = _bps(a.get(bps)) if bps else "—"
        cls = fmt.sign_class(a.get(krw)) if op != "−" else ""
        body.append(f"<tr{style}><td>{escape(label)}</td>"
                    f'<td class="num {cls}">{fmt.krw(a.get(krw))}</td><td class="num">{bps_text}</td></tr>')
    table = ('<table style="max-width:760px"><thead><tr><th>Over '
             f'{fmt.count(a.get("trips"))} closed round trips</th><th class="num">KRW</th>'
             f'<th class="num">bps of entry notional</th></tr></thead><tbody>{"".join(body)}</tbody></table>')
    return table + _note(
        f"Entry notional {fmt.krw(a.get('entry_notional_krw'))} KRW (the Upbit legs at entry). The zero-cost "
        "figure is these same trips before fees and slippage, not a second run. Per-trip figures: trade list "
        "below and trades.csv.")


def _trade_cell(row: Mapping[str, str], krw: str, bps: str | None = None, signed: bool = True) -> str:
    v = row.get(krw, "")
    cls = fmt.sign_class(v) if signed else ""
    sub = f'<br><small>{_bps(row.get(bps))} bps</small>' if bps else ""
    return f'<td class="num {cls}" data-v="{escape(v)}">{fmt.krw(v) if v else "—"}{sub}</td>'.replace(' "', '"')


def _plain(v: str, num: bool = False, sub: str = "") -> str:
    cls = ' class="num"' if num else ""
    text = escape(_bps(v) if num else v) if v else "—"
    return f'<td{cls} data-v="{escape(v)}">{text}{f"<br><small>{escape(sub)}</small>" if sub else ""}</td>'


_TRADE_HEAD = ("Route", "Direction", "Entry / exit (UTC)", "Exit reason", "Premium in / out bps",
               "Coin / tether part bps", "Net KRW", "Gross edge KRW", "FX effect KRW", "Fees KRW", "Slippage KRW",
               "Notional KRW")
_FIRST_NUM_COL = 4


def _trade_row(r: Mapping[str, str]) -> str:
    exit_ts = r.get("exit_fill_time", "")
    coin, tether = r.get("premium_entry_coin_bps", ""), r.get("premium_entry_tether_bps", "")
    return (
        "<tr>" + _plain(f"{r.get('route', '')} #{r.get('trip', '')}")
        + _plain("sell Upbit" if r.get("direction", "").startswith("sell_upbit") else "buy Upbit",
                 sub="buy Binance" if r.get("direction", "").startswith("sell_upbit") else "sell Binance")
        + _plain(r.get("entry_decision_time", "")[:19].replace("T", " "),
                 sub=exit_ts[:19].replace("T", " ") if exit_ts else "open")
        + _plain(r.get("exit_reason", "") if exit_ts else "open")
        + _plain(r.get("premium_entry_bps", ""), num=True, sub=_bps(r.get("premium_exit_bps")) if exit_ts else "")
        + _plain(coin, num=True, sub=_bps(tether) if tether else "—")
        + _trade_cell(r, "net_pnl_krw", "net_bps") + _trade_cell(r, "gross_edge_krw", "gross_edge_bps")
        + _trade_cell(r, "fx_effect_krw", "fx_effect_bps") + _trade_cell(r, "fees_krw", "fees_bps", signed=False)
        + _trade_cell(r, "slippage_krw", "slippage_bps", signed=False)
        + _trade_cell(r, "entry_notional_krw", signed=False) + "</tr>")


def trade_list(rows: Sequence[Mapping[str, str]]) -> str:
    """Every round trip as in trades.csv (same rows, same order); click a heading to sort."""
    if not rows:
        return _note("No round trips.")
    body = "".join(_trade_row(r) for r in rows[:MAX_TRADE_ROWS])
    head = "".join(f"<th{' class=num' if i >= _FIRST_NUM_COL else ''}>{escape(h)}</th>"
                   for i, h in enumerate(_TRADE_HEAD))
    more = (_note(f"Showing the first {MAX_TRADE_ROWS:,} of {len(rows):,} round trips; trades.csv has all.")
            if len(rows) > MAX_TRADE_ROWS else "")
    return (_note("Gross edge + FX effect − fees − slippage = net, per trip, exactly; small figures are bps of "
                  "the entry notional. The coin part is the premium against Upbit's USDT/KRW, the tether part "
                  "USDT/KRW over USD/KRW (— where the data has no such rate: then the premium is the total). "
                  "Click a heading to sort.")
            + f'<div class="scroll"><table class="sortable trades"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>{more}")


def _lane(route: object) -> str:
    r = str(route or "")
    return GLOBAL_LANE if r in ("", "*", "global", "all") else r


def risk_spans(events: Sequence[Mapping[str, object]], end_ns: int) -> tuple[list[Span], list[Point]]:
    """Halts, pauses, kill switch and tripped breakers as spans (open until resumed/reset or the run's end)."""
    spans: list[Span] = []
    points: list[Point] = []
    open_: dict[tuple[str, str], int] = {}
    for e in sorted((e for e in events if to_ns(e.get("ts_ns", e.get("ts"))) is not None),
                    key=lambda e: to_ns(e.get("ts_ns", e.get("ts"))) or 0):
        ts, action, lane = to_ns(e.get("ts_ns", e.get("ts"))) or 0, str(e.get("action", "")), _lane(e.get("route"))
        color = _SPAN_OPEN[action][1] if action in _SPAN_OPEN else _POINT_COLOR.get(action, "#1f5fa8")
        points.append(Point(lane, ts, color, f"{action} {lane}: {e.get('reason', '')}"))
        if action in _SPAN_OPEN:
            open_.setdefault((lane, action), ts)
        for opener in _SPAN_CLOSE.get(action, ()):
            start = open_.pop((lane, opener), None)
            if start is not None:
                spans.append(Span(lane, start, ts, _SPAN_OPEN[opener][1], _SPAN_OPEN[opener][0]))
    for (lane, action), start in open_.items():
        spans.append(Span(lane, start, end_ns, _SPAN_OPEN[action][1], _SPAN_OPEN[action][0] + " (to the end)"))
    return spans, points


def _span_bounds(s: Mapping[str, object]) -> tuple[int, int] | None:
    d = s.get("data")
    if not isinstance(d, Mapping):
        return None
    a, b = to_ns(d.get("from")), to_ns(d.get("to"))
    return (a, b) if a is not None and b is not None else None


def _events_table(events: Sequence[Mapping[str, object]]) -> str:
    rows = "".join(
        f"<tr><td>{escape(str(e.get('ts') or fmt.when(e.get('ts_ns'))))}</td><td>{escape(str(e.get('action', '')))}"
        f"</td><td>{escape(_lane(e.get('route')))}</td><td>{escape(str(e.get('reason', '')))}</td></tr>"
        for e in events[:MAX_EVENT_ROWS])
    more = _note(f"First {MAX_EVENT_ROWS} of {len(events):,} events; summary.json has all.") \
        if len(events) > MAX_EVENT_ROWS else ""
    return ("<table><thead><tr><th>Time (UTC)</th><th>Action</th><th>Route</th><th>Reason</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>{more}")


def risk(s: Mapping[str, object]) -> str:
    """Rejections by reason, a timeline of halts / breakers / resumes, and the events themselves."""
    r = s.get("risk")
    if not isinstance(r, Mapping) or r.get("enabled") is False:
        off = isinstance(r, Mapping)
        return _note("Risk limits were off in this run." if off else "No risk report in the summary.")
    parts = []
    rej = r.get("rejections_by_reason")
    if isinstance(rej, Mapping) and rej:
        rows = "".join(f'<tr><td>{escape(str(k))}</td><td class="num">{fmt.count(v)}</td></tr>'
                       for k, v in sorted(rej.items(), key=lambda kv: (-(fmt.to_decimal(kv[1]) or 0), str(kv[0]))))
        parts.append('<table style="max-width:480px"><thead><tr><th>Opens rejected by risk, by first reason</th>'
                     f'<th class="num">Count</th></tr></thead><tbody>{rows}</tbody></table>')
    else:
        parts.append(_note("Risk rejected no open."))
    raw = r.get("events")
    events = [e for e in raw if isinstance(e, Mapping)] if isinstance(raw, list) else []
    if not events:
        return "".join(parts) + _note("No halt, pause, breaker trip or kill switch during the run.")
    bounds = _span_bounds(s)
    times = [t for e in events if (t := to_ns(e.get("ts_ns", e.get("ts")))) is not None]
    lo, hi = bounds if bounds else (min(times, default=0), max(times, default=0))
    spans, points = risk_spans(events, hi)
    lanes = sorted({p.lane for p in points}, key=lambda x: (x != GLOBAL_LANE, x))
    legend = [(label, color) for label, color in _SPAN_OPEN.values()] + [("resume / reset", "#1b7f3b")]
    svg = timeline(lanes, spans, points, start_ns=min(lo, *times), end_ns=max(hi, *times),
                   title="Risk timeline", legend=legend)
    return "".join(parts) + f"<figure>{svg}</figure>" + _events_table(events)


def guarded(s: Mapping[str, object]) -> str:
    """Pairs the pair guard kept from opening: when, how long, why (they are not in the headline)."""
    g = s.get("guarded_pairs")
    if not isinstance(g, list):
        return _note("No pair-guard report in the summary.")
    items = [x for x in g if isinstance(x, Mapping)]
    if not items:
        return _note("No pair was guarded.")
    rows = "".join(f"<tr><td>{escape(str(x.get('route', '')))}</td><td>{escape(fmt.when(x.get('start')))}</td>"
                   f"<td>{escape(fmt.when(x.get('end')) if x.get('end') is not None else 'to the end')}</td>"
                   f"<td>{escape(str(x.get('reason', '')))}</td></tr>" for x in items)
    table = ("<table><thead><tr><th>Route</th><th>Guarded from</th><th>Until</th><th>Reason</th></tr></thead>"
             f"<tbody>{rows}</tbody></table>")
    bounds = _span_bounds(s)
    if bounds is None:
        return table
    spans = [Span(str(x.get("route", "")), a, to_ns(x.get("end")) or bounds[1], GUARD_COLOR,
                  f"guarded: {x.get('reason', '')}") for x in items if (a := to_ns(x.get("start"))) is not None]
    lanes = sorted({sp.lane for sp in spans})
    svg = timeline(lanes, spans, [], start_ns=bounds[0], end_ns=bounds[1], title="Guarded pairs",
                   legend=[("guarded", GUARD_COLOR)]) if spans else ""
    return (f"<figure>{svg}</figure>" if svg else "") + table


def alerts(s: Mapping[str, object]) -> str:
    """Alerts, one row per rule (the raw list stays in summary.json under paper.alerts)."""
    g = s.get("alerts_by_rule")
    if not isinstance(g, list):
        return ""
    if not g:
        return _note("No alerts.")
    rows = "".join(
        f"<tr><td>{escape(str(x.get('rule', '')))}</td><td>{escape(str(x.get('severity', '')))}</td>"
        f'<td class="num">{fmt.count(x.get("count"))}</td><td class="num">{fmt.count(x.get("suppressed"))}</td>'
        f"<td>{escape(str(x.get('first', '')))}</td><td>{escape(str(x.get('last', '')))}</td>"
        f'<td class="num">{fmt.count(x.get("keys"))}</td><td>{escape(str(x.get("example", "")))}</td></tr>'
        for x in g if isinstance(x, Mapping))
    return ("<table><thead><tr><th>Rule</th><th>Severity</th><th class=num>Sent</th><th class=num>Throttled</th>"
            "<th>First</th><th>Last</th><th class=num>Keys</th><th>Example</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>")


def reconciliation(s: Mapping[str, object]) -> str:
    """The ledger check: every balance equals its initial amount plus fills minus fees, exactly."""
    r = s.get("reconciliation")
    if not isinstance(r, Mapping):
        return _note("No ledger reconciliation in the summary.")
    per = r.get("per_balance")
    per = per if isinstance(per, Mapping) else {}
    bad = [k for k, v in per.items() if isinstance(v, Mapping) and not v.get("ok")]
    verdict = (f'<p class="ok">✓ Ledger reconciles: {len(per)} balances, initial + fills − fees == final, exactly.</p>'
               if r.get("ok") and not bad else
               warning(f"Ledger does NOT reconcile: {len(bad)} of {len(per)} balances differ: {', '.join(bad[:10])}"))
    rows = "".join(
        f"<tr><td>{escape(str(k))}</td>" + "".join(f'<td class="num">{escape(fmt.number(v.get(c)))}</td>'
                                                   for c in ("initial", "fills", "fees", "final", "diff"))
        + f"<td>{'ok' if v.get('ok') else 'MISMATCH'}</td></tr>"
        for k, v in per.items() if isinstance(v, Mapping))
    table = ("<details><summary>Per balance</summary><table><thead><tr><th>Route/venue/currency</th>"
             "<th class=num>Initial</th><th class=num>Fills</th><th class=num>Fees</th><th class=num>Final</th>"
             f"<th class=num>Diff</th><th></th></tr></thead><tbody>{rows}</tbody></table></details>")
    return verdict + table


def sharpe_note(s: Mapping[str, object]) -> str:
    """How the Sharpe figure was computed (it is not comparable across conventions)."""
    c = s.get("sharpe_convention")
    if not isinstance(c, Mapping):
        return ""
    text = "; ".join(f"{k.replace('_', ' ')}: {v}" for k, v in c.items() if k != "key")
    return _note(f"Sharpe convention — {text}.")
