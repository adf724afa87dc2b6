"""``arbitrage-lite live``: its flags, their checks, and the command (kept out of cli.py, which is long enough)."""

from __future__ import annotations

import argparse
from decimal import Decimal, InvalidOperation
from typing import Any

from . import cli_checks as chk
from .cli_checks import UsageError

REAL_FLAG = "--i-understand-this-trades-real-money"
OVERRIDE_FLAG = "--allow-caps-above-hard-ceiling"


def _krw(text: str) -> Decimal:
    try:
        v = Decimal(text.replace(",", "").replace("_", ""))
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"{text!r} is not an amount in KRW") from None
    if not v.is_finite() or v <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: an amount in KRW must be positive")
    return v


def _seconds(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not (v > 0 and v < 1e9):
        raise argparse.ArgumentTypeError(f"{text!r}: seconds must be positive")
    return v


def add_live(sub: Any, common: Any) -> None:
    lv = sub.add_parser("live", help="trade the venues event at a time (default: the local fake venues)")
    lv.add_argument("--routes", required=True, type=chk.routes, help="comma list of bases (BTC,ETH) or top:N")
    lv.add_argument("--out", required=True)
    lv.add_argument("--seconds", type=_seconds, default=None, help="stop after this long (default: until Ctrl-C)")
    lv.add_argument("--shadow", action="store_true",
                    help="real market data, decisions and intents journaled; no order sent (fills simulated "
                         "against the venue's book)")
    lv.add_argument("--real", action="store_true",
                    help=f"trade the real Upbit and Binance (keys from the environment; needs {REAL_FLAG})")
    lv.add_argument(REAL_FLAG, dest="confirm_real", action="store_true", help=argparse.SUPPRESS)
    lv.add_argument("--max-order-krw", type=_krw, default=Decimal(2_000_000), help="per-order notional cap")
    lv.add_argument("--max-daily-krw", type=_krw, default=Decimal(50_000_000), help="notional cap per UTC day")
    lv.add_argument(OVERRIDE_FLAG, dest="override_caps", action="store_true", help=argparse.SUPPRESS)
    lv.add_argument("--slippage-bps", type=_krw, default=Decimal(30),
                    help="protective band of each IOC leg off the best price (default 30)")
    lv.add_argument("--synthetic-rate", type=float, default=None,
                    help="fake venues: book updates per second per symbol (default: theirs)")
    lv.add_argument("--journal", help="journal directory (SQLite there, or --journal-dsn)")
    lv.add_argument("--journal-dsn", help="PostgreSQL DSN for the journal")
    lv.add_argument("--run-id", type=chk.run_id, default="live1")
    lv.add_argument("--on-stop", choices=("flatten", "report"), default="flatten",
                    help="at the end (Ctrl-C, --seconds, live-ctl stop): close open positions with real orders "
                         "(default: a later run does not take them over) or only report them in summary.json")
    lv.add_argument("--control-port", type=chk.port, default=0,
                    help="port of the control surface on 127.0.0.1 (default 0: any free one; see live-ctl)")
    lv.add_argument("--metrics-port", type=chk.port, default=None,
                    help="Prometheus page on 127.0.0.1:PORT (0: any free port), the paper run's metric families")
    lv.add_argument("--dashboard-port", type=chk.port, default=None,
                    help="the web dashboard on 127.0.0.1:PORT (0: any free port; URL with token printed)")
    common(lv)
    lv.set_defaults(func=cmd_live)
    _add_live_ctl(sub)


def _add_live_ctl(sub: Any) -> None:
    ctl = sub.add_parser("live-ctl", help="talk to a running 'live' (status, pause, resume, flatten, stop)")
    ctl.add_argument("--out", required=True, help="the run's --out directory (its control.json)")
    ctl.add_argument("--json", action="store_true", help="print the whole answer as JSON")
    words = ctl.add_subparsers(dest="word", required=True, parser_class=chk.Parser)
    words.add_parser("status", help="routes, positions, risk mode, feeds")
    pause = words.add_parser("pause", help="no new opens (closes go on) until resume")
    pause.add_argument("--reason", default="operator pause")
    words.add_parser("resume", help="opens allowed again (also after a kill switch)")
    fl = words.add_parser("flatten", help="kill switch: no new opens, close positions with real orders")
    fl.add_argument("--route", type=str.upper, help="one route (default: all)")
    fl.add_argument("--reason", default="operator kill switch")
    words.add_parser("stop", help="end the run as Ctrl-C does (per its --on-stop)")
    ctl.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    ctl.set_defaults(func=cmd_live_ctl)


def cmd_live_ctl(args: argparse.Namespace) -> int:
    import json

    from .infra.live.control import send
    from .infra.live.killswitch import ControlError

    body = {k: v for k, v in (("reason", getattr(args, "reason", None)), ("route", getattr(args, "route", None)))
            if v is not None}
    try:
        answer = send(args.out, args.word, body)
    except ControlError as exc:
        raise UsageError(str(exc)) from None
    print(json.dumps(answer, indent=2, sort_keys=True) if args.json else _ctl_line(args.word, answer))
    return 0


def _ctl_line(word: str, answer: dict[str, Any]) -> str:
    """The answer in a few lines: the mode, what is open, the flatten orders."""
    if word == "stop":
        return "stopping: the run ends as on Ctrl-C (its summary.json says what was flattened or left)"
    ctl = answer.get("control", answer)
    lines = [f"{word}: mode {ctl.get('mode')}"]
    if word == "status":
        routes = answer.get("routes", {})
        lines[0] += (f", {len(routes)} routes, uptime {answer.get('uptime_s', 0):.0f} s, "
                     f"trips {sum(r['trips'] for r in routes.values())}, errors {len(answer.get('errors', []))}")
    positions = ctl.get("positions", [])
    lines.append(f"positions open: {len(positions)}")
    lines += [f"  {p['route']}: upbit {p['upbit']} binance {p['binance']} qty {p['qty']} (~{p['notional_krw']} KRW)"
              + (" [flattening]" if p.get("flatten_pending") else "") for p in positions]
    fo = ctl.get("flatten_orders") or {}
    if fo.get("sent"):
        lines.append(f"flatten orders: {fo['sent']} sent, {fo['filled']} with fills")
    return "\n".join(lines)


def cmd_live(args: argparse.Namespace) -> int:
    from .core.live_orders import OrderCaps

    out = chk.output_dir(args.out)
    if args.real and not args.confirm_real:
        raise UsageError(f"--real trades real money: add {REAL_FLAG} to confirm")
    if args.journal_dsn and not args.journal:
        raise UsageError("--journal-dsn needs --journal DIR (the overflow file and SQLite fallback live there)")
    try:
        caps = OrderCaps(args.max_order_krw, args.max_daily_krw, override=args.override_caps)
    except ValueError as exc:
        raise UsageError(f"{exc} ({OVERRIDE_FLAG})") from None
    cfg = chk.engine_config(args)
    from .cli import _ray, bind_exporter

    exporter = bind_exporter(args.metrics_port)
    _ray(args)
    from .scenarios.live import LiveError, LiveRequest, run_live

    try:
        summary = run_live(LiveRequest(args.routes, out, cfg, args.seconds, args.shadow, args.real, caps,
                                       args.slippage_bps, run_id=args.run_id, journal_dir=args.journal,
                                       journal_dsn=args.journal_dsn, fakes=_fakes(args), on_stop=args.on_stop,
                                       control_port=args.control_port, dashboard_port=args.dashboard_port,
                                       exporter=exporter))
    except LiveError as exc:
        raise UsageError(str(exc)) from None
    finally:
        if exporter is not None:
            exporter.close()
    live: Any = summary["live"]
    print(f"live: {summary['trades']} round trips, net {float(summary['net_pnl_krw']):,.0f} KRW; "
          f"decision latency {live['decision_latency_ms']}; order round trip {live['order_send_ms']}")
    down = live.get("shutdown") or {}
    if down:
        left, fo = down.get("positions_left", []), down.get("flatten_orders", {})
        print(f"stop ({down.get('on_stop')}): {len(left)} position(s) left open"
              + (f" ({', '.join(p['route'] for p in left)})" if left else "")
              + f", flatten orders {fo.get('sent', 0)} sent / {fo.get('filled', 0)} filled, "
                f"{len(down.get('orders_cancelled', []))} open order(s) cancelled")
    print(f"outputs: {out}/summary.json, trades.csv, report.html")
    return 0


def _fakes(args: argparse.Namespace) -> Any:
    if args.real:
        return None
    from .infra.venues.fake.server import FakeVenues
    from .infra.venues.fake.synthetic import SyntheticSpec

    rates = {} if args.synthetic_rate is None else {"rate_binance_hz": args.synthetic_rate,
                                                    "rate_upbit_hz": args.synthetic_rate}
    return FakeVenues(synthetic=SyntheticSpec(top_n=50, **rates))
