"""``arbitrage-lite replay-check RUN``: a recorded live run replayed through the backtest kernel, decision by
decision (scenarios.replay_check). Writes ``replay_check.json`` and ``replay_check.md`` into RUN (or --out).

Exit codes: 0 -- every route's intents are the same after the same events and the recording is whole;
1 -- a difference (listed with its reason) or a recording that lost, changed or reordered rows;
2 -- RUN is not a recorded live run (or bad flags).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from . import cli_checks as chk
from .cli_checks import UsageError


def add_replay_check(sub: Any, common: Any) -> None:
    rc = sub.add_parser("replay-check", help="replay a live run's recording through the backtest kernel and "
                                             "compare its decisions with live's (exit 1 if any differ)")
    rc.add_argument("run", metavar="RUN", help="the live run's --out directory (or its store/)")
    rc.add_argument("--fills", choices=("model", "live"), default="model",
                    help="model: the backtest's fill model (default); live: the venue fills live booked")
    rc.add_argument("--risk", choices=("live", "allow"), default="live",
                    help="live: live's risk verdicts (default); allow: no coordinator (live rejections differ)")
    rc.add_argument("--source", choices=("kernel", "store"), default="kernel",
                    help="kernel: the rows each route's kernel ran, cut as live cut them (default, exact); store: "
                         "the venue recording built into events as a backtest does, decisions matched by time")
    rc.add_argument("--out", help="where to write replay_check.json / .md (default: RUN)")
    common(rc, config=False, ray=False)
    rc.set_defaults(func=cmd_replay_check)


def cmd_replay_check(args: argparse.Namespace) -> int:
    from .scenarios.replay_check import ReplayCheckError, check_run

    try:
        result = check_run(Path(args.run), args.fills, args.risk, args.source)
    except ReplayCheckError as exc:
        raise UsageError(str(exc)) from None
    out = chk.output_dir(args.out) if args.out else Path(args.run)
    out.mkdir(parents=True, exist_ok=True)
    (out / "replay_check.json").write_text(json.dumps(result, indent=1))
    (out / "replay_check.md").write_text(markdown(result))
    for line in summary_lines(result):
        print(line)
    print(f"outputs: {out}/replay_check.json, replay_check.md")
    return 0 if result["identical"] else 1


def summary_lines(result: dict[str, Any]) -> list[str]:
    lines = [f"replay-check {result['run_id']} (source: {result['source']}, fills: {result['fills']}, "
             f"risk: {result['risk']}): "
             + ("IDENTICAL" if result["identical"] else "DIFFERENT")]
    for route, r in result["routes"].items():
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(r["reasons"].items()))
        fills = sum(c["reason"] == "fill_differs" for c in r["causes"])
        lines.append(f"  {route}: {r['chunks']} chunks, {r['rows']} rows; intents live {r['live_intents']} replay "
                     f"{r['replay_intents']} matched {r['matched']}; differences {len(r['differences'])}"
                     + (f" ({reasons})" if reasons else "")
                     + (f"; recording problems {r['recording_problems']}" if r["recording_problems"] else "")
                     + (f"; legs filled differently {fills}" if fills else ""))
    return lines


def markdown(result: dict[str, Any]) -> str:
    """The differences as one table per route, then what caused them (the recording, fills, verdicts)."""
    out = ["# replay-check", "", *summary_lines(result), ""]
    for route, r in result["routes"].items():
        out += [f"## {route}", ""]
        if r["differences"]:
            out += [f"| {result['position']} | slot | action | what | live | replay | reason | detail |",
                    "|---|---|---|---|---|---|---|---|"]
            for d in r["differences"]:
                reason = d["reason"] + (" (after an earlier difference)" if d["after"] else "")
                out.append(f"| {d['chunk']}:{d['offset']} | {d['slot']} | {d['action']} | {d['what']} | "
                           f"{_cell(d['live'])} | {_cell(d['replay'])} | {reason} | {d['detail']} |")
        else:
            out.append("Every intent the same, at the same event.")
        if r["causes"]:
            out += ["", "Below the decisions (recording problems, fills, risk verdicts that differ):", ""]
            out += [f"- {c['chunk']}:{c['offset']} {c['reason']}: {c['detail']}" for c in r["causes"]]
        out.append("")
    return "\n".join(out)


def _cell(d: dict[str, Any] | None) -> str:
    if d is None:
        return "-"
    side = "buy" if d["side"] == 1 else "sell"
    return f"trip {d['trip']} {('upbit', 'binance')[d['venue']]} {side} {d['qty'] / 1e8:g} @t={d['ts']}"
