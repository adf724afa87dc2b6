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
    common(lv)
    lv.set_defaults(func=cmd_live)


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
    from .cli import _ray

    _ray(args)
    from .scenarios.live import LiveError, LiveRequest, run_live

    try:
        summary = run_live(LiveRequest(args.routes, out, cfg, args.seconds, args.shadow, args.real, caps,
                                       args.slippage_bps, run_id=args.run_id, journal_dir=args.journal,
                                       journal_dsn=args.journal_dsn, fakes=_fakes(args)))
    except LiveError as exc:
        raise UsageError(str(exc)) from None
    live: Any = summary["live"]
    print(f"live: {summary['trades']} round trips, net {float(summary['net_pnl_krw']):,.0f} KRW; "
          f"decision latency {live['decision_latency_ms']}; order round trip {live['order_send_ms']}")
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
