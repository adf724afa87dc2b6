"""``arbitrage-lite fake-venues`` and ``record``: the local fake venues, and the market-data recorder."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from . import cli_checks as chk
from .errors import UserError


def add_venues(sub: Any) -> None:
    _add_fake_venues(sub)
    _add_record(sub)


def _cmd_fake_venues(args: argparse.Namespace) -> int:
    """Fake Binance and Upbit on 127.0.0.1: one JSON line (URLs, keys) once ready, then serve until Ctrl-C."""
    import asyncio
    import json

    from .infra.venues.fake.faults import Faults
    from .infra.venues.fake.server import FakeVenues

    if not 0 <= args.speed < 1e9:  # false for NaN too
        raise UserError(f"--speed {args.speed}: expected a number >= 0 (0: stay on the first book)")
    if not (args.store or args.static_books or args.synthetic):
        raise UserError("give --store, --static-books or --synthetic")
    if args.static_books and args.synthetic:
        raise UserError("--synthetic generates its own books: give it --store (prices) or nothing, not --static-books")
    store = Path(args.store) if args.store else None
    if store is not None and not store.is_dir():
        raise UserError(f"--store {store}: no such directory (import recorded books with 'data import')")
    synthetic = _synthetic_spec(args) if args.synthetic else None
    faults: dict[str, int] = {}
    for item in args.fault or []:
        name, _, value = item.partition("=")
        faults[name] = int(value) if value.isdigit() else -1
    try:
        Faults().update(faults)
    except ValueError as e:
        raise UserError(f"--fault: {e}") from None
    orders = {} if args.upbit_order_per_s is None else {"upbit_order_per_s": args.upbit_order_per_s}
    fv = FakeVenues(store=store, speed=args.speed, port_binance=args.port_binance, port_upbit=args.port_upbit,
                    binance_weight_limit=args.binance_weight_limit, binance_faults=Faults(**faults),
                    upbit_faults=Faults(**faults), synthetic=synthetic, **orders)

    async def serve() -> None:
        try:
            info = await fv.start()
        except (ValueError, FileNotFoundError) as e:
            raise UserError(str(e)) from None
        except OSError as e:
            raise UserError(f"cannot listen on 127.0.0.1: {e.strerror or e}") from None
        print(json.dumps(info), flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await fv.stop()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        return 0
    return 0


def _synthetic_spec(args: argparse.Namespace) -> Any:
    """``--synthetic top:N`` or ``BTC,ETH`` (+ rates, seed, speed) as a SyntheticSpec."""
    from .infra.venues.fake.synthetic import SyntheticSpec

    text = args.synthetic.strip()
    if text.lower().startswith("top:"):
        n = text[4:]
        if not n.isdigit() or int(n) <= 0:
            raise UserError(f"--synthetic {text}: expected top:N with N a positive integer, or BTC,ETH")
        coins: tuple[str, ...] = ()
        top = int(n)
    else:
        coins, top = tuple(c.strip().upper() for c in text.split(",") if c.strip()), 0
        if not coins:
            raise UserError("--synthetic: expected top:N or a list of coins (BTC,ETH)")
    for name in ("rate_binance", "rate_upbit"):
        if not 0 < getattr(args, name) <= 1000:
            raise UserError(f"--{name.replace('_', '-')} {getattr(args, name)}: expected a rate in (0, 1000] Hz")
    return SyntheticSpec(coins=coins, top_n=top, rate_binance_hz=args.rate_binance, rate_upbit_hz=args.rate_upbit,
                         seed=args.seed, speed=args.speed)


def _add_fake_venues(sub: Any) -> None:
    fk = sub.add_parser("fake-venues", help="fake Binance and Upbit on 127.0.0.1 (real REST shapes) for rehearsals")
    src = fk.add_mutually_exclusive_group()
    src.add_argument("--store", help="replay the recorded books of this store (with --synthetic: its kimpai prices)")
    src.add_argument("--static-books", action="store_true", help="serve the recorded BTC book snapshots instead")
    fk.add_argument("--synthetic", metavar="top:N|BTC,ETH",
                    help="serve a SYNTHETIC market: books generated for these coins from the recorded prices of "
                         "--store (kimpai snapshots), or from a built-in snapshot of 50 coins without --store")
    fk.add_argument("--rate-binance", type=float, default=10.0, help="synthetic: Binance diffs/s per symbol")
    fk.add_argument("--rate-upbit", type=float, default=5.0, help="synthetic: Upbit books/s per market")
    fk.add_argument("--seed", type=int, default=0, help="synthetic: the generator's seed")
    fk.add_argument("--port-binance", type=chk.port, default=0, help="0 (default): a free port")
    fk.add_argument("--port-upbit", type=chk.port, default=0, help="0 (default): a free port")
    fk.add_argument("--speed", type=float, default=1.0,
                    help="replay speed (1: recorded pace; 0: stay on the first book)")
    fk.add_argument("--binance-weight-limit", type=chk.count(1), default=6000, help="request weight per minute")
    fk.add_argument("--upbit-order-per-s", type=chk.count(1), default=None,
                    help="order requests per second (default: the venue's today, 12 since 2026-08-21)")
    fk.add_argument("--fault", action="append", metavar="NAME=N",
                    help="inject faults on both venues: delay_ms, drop, error_after_accept, drop_after_accept, "
                         "reject_orders (repeatable; also POST /fake/faults at run time)")
    fk.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                    help="show the traceback of an unexpected error")
    fk.set_defaults(func=_cmd_fake_venues)


def _cmd_record(args: argparse.Namespace) -> int:
    """Record both venues' WS market data into the store; one JSON line of counts at the end."""
    import asyncio
    import dataclasses
    import json
    import re

    from .infra.recorder_io import RecordConfig, record

    symbols = tuple(s.strip().upper() for s in args.symbols.split(",") if s.strip())
    if not symbols or not all(re.fullmatch(r"[A-Z0-9]{1,20}", s) for s in symbols):
        raise UserError(f"--symbols {args.symbols!r}: expected base assets separated by commas (BTC,ETH)")
    for flag, url, schemes in (("--binance-ws", args.binance_ws, ("ws://", "wss://")),
                               ("--binance-rest", args.binance_rest, ("http://", "https://")),
                               ("--upbit-ws", args.upbit_ws, ("ws://", "wss://"))):
        if url and not url.startswith(schemes):
            raise UserError(f"{flag} {url}: expected a URL starting with {' or '.join(schemes)}")
    cfg = RecordConfig(chk.output_dir(args.store, "--store"), args.seconds, symbols, args.binance_ws or None,
                       args.binance_rest, args.upbit_ws or None, flush_s=args.flush_s, max_rows=args.max_rows)
    stats = asyncio.run(record(cfg))
    print(json.dumps(dataclasses.asdict(stats), default=str), flush=True)
    return 0


def _add_record(sub: Any) -> None:
    from .infra.recorder_io import BINANCE_REST, BINANCE_WS, UPBIT_WS

    rc = sub.add_parser("record", help="record both venues' WS market data (books, trades, markers) into the store")
    rc.add_argument("--binance-ws", default=BINANCE_WS, help=f"stream root (default {BINANCE_WS}; '' : skip)")
    rc.add_argument("--binance-rest", default=BINANCE_REST, help=f"REST root for depth snapshots ({BINANCE_REST})")
    rc.add_argument("--upbit-ws", default=UPBIT_WS, help=f"quotation WS (default {UPBIT_WS}; '': skip)")
    rc.add_argument("--symbols", default="BTC", help="base assets: BTCUSDT on Binance, KRW-BTC on Upbit (BTC,ETH)")
    rc.add_argument("--store", required=True, help="store directory (created if new)")
    rc.add_argument("--seconds", type=chk.finite(0, 1e9, "a positive number of seconds"), required=True)
    rc.add_argument("--flush-s", type=chk.finite(0, 3600, "in (0, 3600) seconds"), default=2.0,
                    help="flush buffered rows at least this often (a crash loses at most this much)")
    rc.add_argument("--max-rows", type=chk.count(1), default=100_000, help="rows buffered in memory at most")
    rc.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                    help="show the traceback of an unexpected error")
    rc.set_defaults(func=_cmd_record)
