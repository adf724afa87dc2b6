"""Market-data recorder, asyncio shell: WS connections to both venues, REST snapshots, flushing, reconnects.

All decisions are in :mod:`.recorder` (sans-IO); this moves bytes. Binance: one combined stream for every
symbol (depth@100ms, bookTicker, trade); a symbol whose book is unsynced gets ``/api/v3/depth`` fetched (the
documented procedure; a gap -> a new snapshot). Upbit: one quotation WS, orderbook + trade for every code.
A dropped connection is a ``disconnect`` marker, a backoff (0.1 s doubling to 5 s) and a reconnect with a full
resync. Defaults are the real venues' URLs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from ..core.venue import BestBidAsk, BookDelta, BookSnapshot, Rejected, Trade
from .data.store import Store
from .recorder import MARKER_NAMES, BinanceSymbol, SegmentWriter, UpbitSymbol, WriterStats, binance_symbol, upbit_code
from .venues.binance.parse import parse_depth_snapshot, parse_stream
from .venues.upbit.parse import parse_ws

BINANCE_WS = "wss://stream.binance.com:9443"
BINANCE_REST = "https://api.binance.com"
UPBIT_WS = "wss://api.upbit.com/websocket/v1"
_NET_ERRORS = (aiohttp.ClientError, OSError, asyncio.TimeoutError)


@dataclass(slots=True)
class RecordConfig:
    store: Path
    seconds: float
    symbols: tuple[str, ...] = ("BTC",)
    binance_ws: str | None = BINANCE_WS  # None: do not record the venue
    binance_rest: str = BINANCE_REST
    upbit_ws: str | None = UPBIT_WS
    flush_s: float = 2.0
    max_rows: int = 100_000
    depth_limit: int = 1000
    upbit_simple: bool = False


@dataclass(slots=True)
class RecordStats:
    connects: dict[str, int] = field(default_factory=lambda: {"binance": 0, "upbit": 0})
    errors: dict[str, int] = field(default_factory=dict)  # "venue: error class" -> count
    rejected: int = 0
    snapshots_fetched: int = 0
    writer: WriterStats = field(default_factory=WriterStats)
    markers: dict[str, dict[str, int]] = field(default_factory=dict)  # "venue SYM" -> marker name -> count

    def error(self, venue: str, e: BaseException) -> None:
        key = f"{venue}: {type(e).__name__}"
        self.errors[key] = self.errors.get(key, 0) + 1


async def record(cfg: RecordConfig, stop: asyncio.Event | None = None) -> RecordStats:
    """Record for ``cfg.seconds`` (or until ``stop``), then flush and merge everything into the store."""
    stop = stop or asyncio.Event()
    store = Store(cfg.store)
    writer = SegmentWriter(cfg.store, cfg.flush_s, cfg.max_rows)
    writer.compact(store)  # leftovers of a run that crashed
    stats = RecordStats()
    bsyms = {binance_symbol(b)[0]: BinanceSymbol(*binance_symbol(b), writer) for b in cfg.symbols}
    usyms = {upbit_code(b)[0]: UpbitSymbol(*upbit_code(b), writer) for b in cfg.symbols}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=10)) as session:
        tasks = [asyncio.create_task(_flusher(writer, stop))]
        if cfg.binance_ws:
            tasks.append(asyncio.create_task(_binance(cfg, session, bsyms, writer, stats, stop)))
        if cfg.upbit_ws:
            tasks.append(asyncio.create_task(_upbit(cfg, session, usyms, writer, stats, stop)))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), cfg.seconds)
        stop.set()
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
    now = time.time_ns()
    for rec in [*(bsyms.values() if cfg.binance_ws else ()), *(usyms.values() if cfg.upbit_ws else ())]:
        rec.on_disconnect(now)  # the end of the recording
    writer.flush()
    writer.compact(store)
    stats.writer = writer.stats
    stats.markers = {f"{r.venue} {r.store_symbol}": {MARKER_NAMES[k]: n for k, n in sorted(r.markers.items())}
                     for r in [*bsyms.values(), *usyms.values()]}
    return stats


async def _flusher(writer: SegmentWriter, stop: asyncio.Event) -> None:
    """Flush on time even when no message arrives (a quiet market still loses at most ``flush_s``)."""
    while not stop.is_set():
        await asyncio.sleep(writer.flush_s / 4)
        writer.maybe_flush()


async def _backoff(stop: asyncio.Event, delay: float) -> float:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), delay)
    return min(delay * 2, 5.0)


async def _binance(cfg: RecordConfig, session: aiohttp.ClientSession, recs: dict[str, BinanceSymbol],
                   writer: SegmentWriter, stats: RecordStats, stop: asyncio.Event) -> None:
    streams = "/".join(f"{s.lower()}@{k}" for s in recs for k in ("depth@100ms", "bookTicker", "trade"))
    url = f"{cfg.binance_ws.rstrip('/') if cfg.binance_ws else ''}/stream?streams={streams}"
    delay = 0.1
    while not stop.is_set():
        fetching: dict[str, asyncio.Task[None]] = {}
        connected = False
        try:
            async with session.ws_connect(url, heartbeat=30.0) as ws:
                connected, delay = True, 0.1
                stats.connects["binance"] += 1
                for rec in recs.values():
                    rec.on_connect(time.time_ns())
                async for msg in ws:
                    if msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                        break
                    _binance_msg(cfg, session, recs, stats, fetching, parse_stream(msg.data, time.time_ns()))
                    writer.maybe_flush()
        except _NET_ERRORS as e:
            stats.error("binance", e)
        finally:
            for task in fetching.values():
                task.cancel()
        if connected:
            for rec in recs.values():
                rec.on_disconnect(time.time_ns())
        delay = await _backoff(stop, delay)


def _binance_msg(cfg: RecordConfig, session: aiohttp.ClientSession, recs: dict[str, BinanceSymbol],
                 stats: RecordStats, fetching: dict[str, asyncio.Task[None]], m: Any) -> None:
    if isinstance(m, Rejected):
        stats.rejected += 1
        return
    rec = recs.get(getattr(m, "symbol", ""))
    if rec is None:
        return
    if isinstance(m, BookDelta):
        rec.on_delta(m)
        task = fetching.get(rec.symbol)
        if rec.wants_snapshot and (task is None or task.done()):
            fetching[rec.symbol] = asyncio.create_task(_snapshot(cfg, session, rec, stats))
    elif isinstance(m, Trade):
        rec.on_trade(m)
    elif isinstance(m, BestBidAsk):
        rec.on_bbo(m)


async def _snapshot(cfg: RecordConfig, session: aiohttp.ClientSession, rec: BinanceSymbol,
                    stats: RecordStats) -> None:
    """Fetch ``/api/v3/depth`` until the book syncs (a snapshot older than the buffered diffs: fetch again)."""
    url = f"{cfg.binance_rest.rstrip('/')}/api/v3/depth"
    for attempt in range(20):
        try:
            async with session.get(url, params={"symbol": rec.symbol, "limit": str(cfg.depth_limit)}) as r:
                body = await r.read()
                ok = r.status == 200
        except _NET_ERRORS as e:
            stats.error("binance", e)
            ok, body = False, b""
        if ok:
            stats.snapshots_fetched += 1
            snap = parse_depth_snapshot(body, rec.symbol, time.time_ns())
            if isinstance(snap, BookSnapshot):
                rec.on_snapshot(snap)
            else:
                stats.rejected += 1
        if not rec.wants_snapshot:
            return
        await asyncio.sleep(min(0.05 * 2**attempt, 2.0))


async def _upbit(cfg: RecordConfig, session: aiohttp.ClientSession, recs: dict[str, UpbitSymbol],
                 writer: SegmentWriter, stats: RecordStats, stop: asyncio.Event) -> None:
    codes = sorted(recs)
    sub: list[dict[str, Any]] = [{"ticket": str(uuid.uuid4())}, {"type": "orderbook", "codes": codes},
                                 {"type": "trade", "codes": codes},
                                 {"format": "SIMPLE" if cfg.upbit_simple else "DEFAULT"}]
    delay = 0.1
    while not stop.is_set():
        connected = False
        try:
            async with session.ws_connect(cfg.upbit_ws or "", heartbeat=30.0) as ws:
                connected, delay = True, 0.1
                stats.connects["upbit"] += 1
                for rec in recs.values():
                    rec.on_connect(time.time_ns())
                await ws.send_str(json.dumps(sub))
                async for msg in ws:
                    if msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                        break
                    m = parse_ws(msg.data, time.time_ns())
                    if isinstance(m, Rejected):
                        stats.rejected += 1
                    elif isinstance(m, BookSnapshot) and m.symbol in recs:
                        recs[m.symbol].on_book(m)
                    elif isinstance(m, Trade) and m.symbol in recs:
                        recs[m.symbol].on_trade(m)
                    writer.maybe_flush()
        except _NET_ERRORS as e:
            stats.error("upbit", e)
        if connected:
            for rec in recs.values():
                rec.on_disconnect(time.time_ns())
        delay = await _backoff(stop, delay)
