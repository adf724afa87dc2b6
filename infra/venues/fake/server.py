"""Run both fake venues on 127.0.0.1: books from the store (replayed) or static books, one ready line.

``FakeVenues`` is used by the CLI (``arbitrage-lite fake-venues``) and by tests (in-process, free ports).
Replay: each market's recorded snapshots are served in turn, spaced by their recorded times divided by
``speed`` (``speed=0``: stay on the first snapshot); after the last one the book stays.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from aiohttp import web

from ...data.store import Store
from ..upbit.limits import limit_for
from .binance import BinanceConfig, BinanceFake
from .books import SHARED, books_from_snapshot_file, books_from_store, store_markets
from .common import now_ms
from .engine import Book, Engine
from .faults import Faults
from .private_binance import BinanceUserData
from .private_upbit import PATH as UPBIT_PRIVATE_PATH
from .private_upbit import UpbitPrivate
from .synthetic import SyntheticSpec
from .synthetic_feed import SyntheticSetup
from .upbit import UpbitConfig, UpbitFake
from .ws_binance import BinanceWs, Feed, feed_from_store, feeds_from_raw
from .ws_upbit import UpbitWs

SNAPSHOTS = SHARED / "orderbook_snapshots"
STATIC_BOOKS = {"binance": {"BTCUSDT": SNAPSHOTS / "binance_BTCUSDT_ob20_20250824T06_vsun410.jsonl.gz"},
                "upbit": {"KRW-BTC": SNAPSHOTS / "upbit_KRW-BTC_ob20_20250824T06_vsun410.jsonl.gz"}}
DEFAULT_BALANCES = {"binance": {"USDT": Decimal(100_000), "BTC": Decimal(1)},
                    "upbit": {"KRW": Decimal(100_000_000), "BTC": Decimal(1)}}


def _venue_id(venue: str, store_symbol: str) -> str:
    base, quote = store_symbol.split("-")
    return f"{base}{quote}" if venue == "binance" else f"{quote}-{base}"


def books_for(venue: str, store: Path | None) -> dict[str, list[Book]]:
    """Books per venue market id: every recorded book series of the venue in the store, else the static file."""
    if store is None:
        return {sym: books_from_snapshot_file(path) for sym, path in STATIC_BOOKS[venue].items()}
    s = Store(store)
    out = {_venue_id(venue, sym): books_from_store(s, venue, sym) for sym in store_markets(s, venue)}
    if venue == "upbit":
        out = {k: v for k, v in out.items() if k.startswith("KRW-")}
    return {k: v for k, v in out.items() if v}


@dataclass(slots=True)
class FakeVenues:
    """Both fakes, their markets and credentials. ``start()`` binds the ports; ``info`` is the ready line."""

    store: Path | None = None
    speed: float = 1.0
    port_binance: int = 0
    port_upbit: int = 0
    binance_weight_limit: int = 6000
    binance_weight_window_ms: int = 60_000
    upbit_order_per_s: int = field(default_factory=lambda: limit_for("order", time.time_ns()))  # the venue's today
    upbit_default_per_s: int = 30
    binance_faults: Faults = field(default_factory=Faults)
    upbit_faults: Faults = field(default_factory=Faults)
    binance_l2: Path | None = None  # raw combined-stream recording for the Binance WS (else the store's diffs)
    ws_log: int = 0  # tests: keep every served book (top N levels) in binance_ws.served / upbit_ws.served
    synthetic: SyntheticSpec | None = None  # serve a SYNTHETIC market (synthetic.py; prices from ``store``)
    synthetic_setup: SyntheticSetup | None = None
    binance_ws: BinanceWs | None = None
    upbit_ws: UpbitWs | None = None
    binance: BinanceFake | None = None
    upbit: UpbitFake | None = None
    binance_private: BinanceUserData | None = None  # user data stream (WS API and listenKey)
    upbit_private: UpbitPrivate | None = None  # /websocket/v1/private
    info: dict[str, Any] = field(default_factory=dict)
    _runners: list[web.AppRunner] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self) -> dict[str, Any]:
        syn = self.synthetic_setup = (SyntheticSetup.build(self.synthetic, self.store, DEFAULT_BALANCES, self.ws_log)
                                      if self.synthetic is not None else None)
        books = syn.books if syn else {v: books_for(v, self.store) for v in ("binance", "upbit")}
        feeds = {} if syn else self._binance_feeds()
        books["binance"].update({sym: [Book((), (), 0, 0)] for sym in feeds})
        for venue, got in books.items():
            if not got:
                raise ValueError(f"no {venue} book in store {self.store} (import recorded books first)")
        balances = syn.balances if syn else DEFAULT_BALANCES
        bkey, bsecret = secrets.token_hex(32), secrets.token_hex(32)
        ukey, usecret = secrets.token_hex(20), secrets.token_hex(20)
        self.binance = BinanceFake(BinanceConfig(bkey, bsecret, weight_limit=self.binance_weight_limit,
                                                 weight_window_ms=self.binance_weight_window_ms,
                                                 faults=self.binance_faults,
                                                 extra_symbols=syn.exchange_info if syn else ()),
                                   sorted(books["binance"]), dict(balances["binance"]))
        self.upbit = UpbitFake(UpbitConfig(ukey, usecret, order_per_s=self.upbit_order_per_s,
                                           default_per_s=self.upbit_default_per_s, faults=self.upbit_faults,
                                           extra_markets=syn.market_all if syn else ()),
                               sorted(books["upbit"]), dict(balances["upbit"]))
        self.binance_ws = BinanceWs(feeds, self.binance.engine, self.binance_faults, self.speed, self.ws_log)
        self.upbit_ws = UpbitWs(self.upbit_faults, Store(self.store) if self.store else None, self.speed,
                                bool(self.ws_log))
        self._tasks += [asyncio.create_task(self.binance_ws.run(sym)) for sym in feeds]
        self._tasks += [asyncio.create_task(self.upbit_ws.run_trades(sym)) for sym in books["upbit"]]
        for engine, venue_books, on_book in ((self.binance.engine, books["binance"], None),
                                             (self.upbit.engine, books["upbit"], self.upbit_ws.on_book)):
            for sym, series in venue_books.items():
                if sym in feeds:
                    continue  # the WS replay drives this book
                engine.set_book(sym, series[0], now_ms())
                if on_book is not None:
                    on_book(sym, series[0])
                if self.speed > 0 and len(series) > 1:
                    self._tasks.append(asyncio.create_task(_replay(engine, sym, series, self.speed, on_book)))
        if syn is not None:
            self._tasks.append(asyncio.create_task(syn.run(self.binance.engine, self.upbit.engine, self.binance_ws,
                                                           self.upbit_ws)))
        bapp, uapp = self.binance.app(), self.upbit.app()
        self.binance_private, self.upbit_private = BinanceUserData(self.binance), UpbitPrivate(self.upbit)
        self.binance_private.routes(bapp)  # first: /ws/<listenKey> before the market streams' /ws/<stream>
        self.upbit_private.routes(uapp)
        self.binance_ws.routes(bapp)
        self.upbit_ws.routes(uapp)
        burl = await self._serve(bapp, self.port_binance)
        uurl = await self._serve(uapp, self.port_upbit)
        self.info = {
            "binance": {"rest": burl, "ws": burl.replace("http", "ws", 1), "api_key": bkey, "secret": bsecret,
                        "markets": sorted(books["binance"])},
            "upbit": {"rest": uurl, "ws": uurl.replace("http", "ws", 1) + "/websocket/v1",
                      "private_ws": uurl.replace("http", "ws", 1) + UPBIT_PRIVATE_PATH, "access_key": ukey,
                      "secret": usecret, "markets": sorted(books["upbit"])},
        }
        if syn is not None:
            self.info["synthetic"] = syn.label
        return self.info

    async def _serve(self, app: web.Application, port: int) -> str:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port)
        await site.start()
        self._runners.append(runner)
        port = runner.addresses[0][1]
        return f"http://127.0.0.1:{port}"

    def _binance_feeds(self) -> dict[str, Feed]:
        """Recorded L2 for the Binance WS: the raw file if given, else the store's depth diffs."""
        if self.binance_l2 is not None:
            return feeds_from_raw(self.binance_l2)
        if self.store is None:
            return {}
        s = Store(self.store)
        syms = sorted(x.symbol for x in s.series() if x.kind == "depth_diff" and x.venue == "binance")
        found = {sym: feed_from_store(s, sym) for sym in syms}
        return {f.symbol: f for f in found.values() if f is not None}

    async def stop(self) -> None:
        for ws in (self.binance_ws, self.upbit_ws, self.binance_private, self.upbit_private):
            if ws is not None:
                for sub in list(ws.hub.subs):
                    ws.hub.close(sub)
        for task in self._tasks:
            task.cancel()
        for runner in self._runners:
            await runner.cleanup()
        self._tasks.clear()
        self._runners.clear()


async def _replay(engine: Engine, symbol: str, series: list[Book], speed: float,
                  on_book: Callable[[str, Book], None] | None = None) -> None:
    """Serve the recorded snapshots in turn, spaced by their recorded times / speed (and stream each)."""
    for prev, book in itertools.pairwise(series):
        await asyncio.sleep(max(0.0, (book.ts_ms - prev.ts_ms) / 1000 / speed))
        engine.set_book(symbol, book, now_ms())
        if on_book is not None:
            on_book(symbol, book)
