"""``drill.html``: a drill's verdict, figures and kills at a glance (offline, no scripts, no dependencies).

Each kill is a horizontal bar split into where the restart's time went (Ray starting a process, imports, the
constructor with its restore, the first answered ping), against the 2 s target line; the supervisor's events
and the drill's checks follow, and when the runs differ, what differed (``why``).
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

PARTS = (("to_new_process", "Ray: new process", "#90a4ae"), ("imports", "imports", "#5c6bc0"),
         ("constructor", "constructor + restore", "#26a69a"), ("to_first_ping", "first ping", "#ffa726"))
TARGET_S = 2.0
_ROW, _LEFT, _WIDTH = 26, 150, 760


def _bars(kills: list[dict[str, Any]]) -> str:
    """One bar per kill: its recovery parts stacked (a negative part, Ray reusing a started process, is 0)."""
    if not kills:
        return "<p>No kill landed (the run ended first).</p>"
    longest = max([TARGET_S * 1.25] + [float(k.get("recover_s") or 0.0) for k in kills])
    scale = (_WIDTH - _LEFT - 60) / longest
    height = _ROW * len(kills) + 50
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{height}" '
           f'font-family="system-ui,sans-serif" font-size="12" role="img" aria-label="recovery time per kill">']
    for i, k in enumerate(kills):
        y = 10 + i * _ROW
        label = f"kill {i + 1}: {k.get('how', '?')} @ window {k.get('window')}"
        out.append(f'<text x="4" y="{y + 14}">{escape(label)}</text>')
        total = k.get("recover_s")
        if total is None:
            out.append(f'<text x="{_LEFT}" y="{y + 14}" fill="#c62828">did not recover</text>')
            continue
        parts = k.get("recover_parts_s") or {}
        x = float(_LEFT)
        if parts:
            for key, name, color in PARTS:
                w = max(float(parts.get(key, 0.0)), 0.0) * scale
                out.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="18" fill="{color}">'
                           f'<title>{escape(name)}: {float(parts.get(key, 0.0)):.3f} s</title></rect>')
                x += w
        else:
            x += float(total) * scale
            out.append(f'<rect x="{_LEFT}" y="{y}" width="{x - _LEFT:.1f}" height="18" fill="#78909c"/>')
        out.append(f'<text x="{max(x, _LEFT + float(total) * scale) + 6:.1f}" y="{y + 14}">{float(total):.2f} s</text>')
    tx = _LEFT + TARGET_S * scale
    bottom = 10 + len(kills) * _ROW
    out.append(f'<line x1="{tx:.1f}" y1="4" x2="{tx:.1f}" y2="{bottom}" stroke="#c62828" stroke-dasharray="4 3"/>')
    out.append(f'<text x="{tx + 4:.1f}" y="{bottom + 12}" fill="#c62828">target {TARGET_S:g} s</text>')
    lx = float(_LEFT)
    for _, name, color in PARTS:
        out.append(f'<rect x="{lx:.1f}" y="{bottom + 22}" width="10" height="10" fill="{color}"/>'
                   f'<text x="{lx + 14:.1f}" y="{bottom + 31}">{escape(name)}</text>')
        lx += 14 + 7.5 * len(name) + 18
    out.append("</svg>")
    return "".join(out)


def _table(rows: list[tuple[str, Any]]) -> str:
    body = "".join(f"<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def render_drill_report(result: dict[str, Any]) -> str:
    passed = bool(result.get("passed"))
    verdict = ('<p class="ok">PASSED: nothing lost, nothing doubled, ledger identical</p>' if passed else
               f'<p class="bad">FAILED: {escape(str(result["problem"]))}</p>' if result.get("problem") else
               '<p class="bad">FAILED: the disturbed run differs from the undisturbed one (see below)</p>')
    figures = [(k, result.get(k)) for k in ("kind", "target", "actor", "mode", "seed", "kills", "recovered",
                                            "restarts", "recover_s_p50", "recover_s_max", "fills_baseline",
                                            "fills_drill", "lost_fills", "duplicated_fills", "ledger_diff_krw",
                                            "trades_identical", "net_pnl_krw_baseline", "net_pnl_krw_drill")]
    sup = result.get("supervisor") or {}
    events = [(f"{e.get('action')} {e.get('who')}", e.get("reason")) for e in sup.get("events", [])]
    checks = list((result.get("checks") or {}).items())
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>drill "
        f"{escape(str(result.get('kind')))} {escape(str(result.get('target')))}</title><style>"
        "body{font-family:system-ui,sans-serif;margin:24px;max-width:980px}"
        "table{border-collapse:collapse;margin:8px 0}th,td{border:1px solid #ddd;padding:3px 8px;text-align:left}"
        ".ok{color:#1b7f3b;font-weight:600}.bad{color:#c62828;font-weight:600}pre{background:#f6f6f6;padding:8px}"
        "</style></head><body>",
        f"<h1>Drill: {escape(str(result.get('kind')))} {escape(str(result.get('target')))}</h1>",
        verdict,
        "<h2>Recovery per kill</h2>", _bars(list((result.get("chaos") or {}).get("kills", []))),
        "<h2>Figures</h2>", _table(figures),
    ]
    if checks:
        parts += ["<h2>Checks</h2>", _table(checks)]
    parts += ["<h2>Supervisor</h2>",
              _table(events) if events else "<p>No supervisor events.</p>",
              f"<p>halted: {escape(str(sup.get('halted')))}</p>"]
    if not passed and result.get("why"):
        parts += ["<h2>What differed</h2>", f"<pre>{escape(json.dumps(result['why'], indent=1, default=str))}</pre>"]
    parts.append("</body></html>\n")
    return "".join(parts)
