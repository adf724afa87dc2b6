"""Fake Binance market-data WebSocket: recorded L2 replayed with its real ``U``/``u`` ids.

Endpoints: ``/stream?streams=btcusdt@depth@100ms/btcusdt@bookTicker/btcusdt@trade`` (combined:
``{"stream":..,"data":..}``) and ``/ws/<stream>`` (raw payloads); ``{"method":"SUBSCRIBE"|"UNSUBSCRIBE",
"params":[..],"id":n}`` is answered ``{"result":null,"id":n}``. The served book starts from the recording's REST
snapshot (raw file) or the store's ``book`` row set, then every replayed diff is applied to it and to the
matching engine at once, so ``GET /api/v3/depth`` returns a ``lastUpdateId`` consistent with the stream
position: a client that follows the documented procedure syncs exactly. Sources: a raw combined-stream file
(``<local_ns> <json>`` lines, MANIFEST §2) or the store's ``book`` + ``depth_diff`` + ``trades`` + ``bbo``.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from aiohttp import web

from ...data.store import Store
from .common import fmt8, now_ms
from .engine import Book, Engine
from .faults import Faults
from .ws_common import Hub, Sub, paced

DEPTH, TICKER, TRADE = "depth@100ms", "bookTicker", "trade"
ENGINE_LEVELS = 1000  # levels per side handed to the matching engine / REST depth


@dataclass(slots=True)
class Feed:
    """One symbol's recording: the initial book and the messages (local ns, stream suffix, payload)."""

    symbol: str
    bids: dict[Decimal, Decimal] = field(default_factory=dict)
    asks: dict[Decimal, Decimal] = field(default_factory=dict)
    update_id: int = 0
    msgs: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)

    def apply(self, d: dict[str, Any]) -> int:
        """Apply one diff. A level left over from a seed older than the diffs (the store keeps no
        lastUpdateId, so a straddling diff may be missed) would cross the book: it is removed, and the removal
        is added to this diff, so the stream still rebuilds the served book exactly. Returns levels removed."""
        touched: list[set[Decimal]] = [set(), set()]
        for i, (side, key) in enumerate(((self.bids, "b"), (self.asks, "a"))):
            for p, q in d[key]:
                px, qty = Decimal(p), Decimal(q)
                touched[i].add(px)
                if qty:
                    side[px] = qty
                else:
                    side.pop(px, None)
        self.update_id = int(d["u"])
        removed = 0
        while self.bids and self.asks:
            bid, ask = max(self.bids), min(self.asks)
            if bid < ask:
                break
            i, px = (0, bid) if bid not in touched[0] else (1, ask)
            if px in touched[i]:
                break  # the diff itself crosses: serve it as recorded
            (self.bids if i == 0 else self.asks).pop(px)
            d["ba"[i]].append([fmt8(px), fmt8(Decimal(0))])
            removed += 1
        return removed

    def top(self, n: int) -> tuple[tuple[tuple[Decimal, Decimal], ...], tuple[tuple[Decimal, Decimal], ...]]:
        bids = sorted(self.bids, reverse=True)[:n]
        asks = sorted(self.asks)[:n]
        return tuple((p, self.bids[p]) for p in bids), tuple((p, self.asks[p]) for p in asks)


def feeds_from_raw(path: Path) -> dict[str, Feed]:
    """A raw recording: the REST snapshot line (if any) seeds the book; diffs it already holds are dropped."""
    feeds: dict[str, Feed] = {}
    snapshot: dict[str, Any] | None = None
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            ts, _, body = line.partition(" ")
            if not body.strip():
                continue
            msg = json.loads(body)
            if "lastUpdateId" in msg:
                snapshot = snapshot or msg
                continue
            sym, _, stream = msg["stream"].partition("@")
            feed = feeds.setdefault(sym.upper(), Feed(sym.upper()))
            feed.msgs.append((int(ts), stream, msg["data"]))
    if snapshot is not None and len(feeds) == 1:
        feed = next(iter(feeds.values()))
        feed.bids = {Decimal(p): Decimal(q) for p, q in snapshot["bids"]}
        feed.asks = {Decimal(p): Decimal(q) for p, q in snapshot["asks"]}
        feed.update_id = int(snapshot["lastUpdateId"])
    return feeds


def _dec(x: float) -> Decimal:
    return Decimal(repr(x))


def feed_from_store(store: Store, symbol: str) -> Feed | None:
    """``BTC-USDT`` from the store: its first ``book`` snapshot seeds the book, diffs received after it follow."""
    if not store.has("depth_diff", "binance", symbol):
        return None
    sym = symbol.replace("-", "")
    feed = Feed(sym)
    start = -1
    if store.has("book", "binance", symbol):
        b = store.read("book", "binance", symbol).to_pydict()
        first = b["snapshot"][0] if b["snapshot"] else None
        for snap, tl, side, px, q in zip(b["snapshot"], b["ts_local"], b["side"], b["price"], b["qty"], strict=True):
            if snap == first:
                (feed.bids if side == 0 else feed.asks)[_dec(px)] = _dec(q)
                start = tl
    d = store.read("depth_diff", "binance", symbol).to_pydict()
    msgs: list[tuple[int, str, dict[str, Any]]] = []
    for ts, tl, fu, lu, side, px, q in zip(d["ts"], d["ts_local"], d["first_update_id"], d["last_update_id"],
                                           d["side"], d["price"], d["qty"], strict=True):
        if tl < start:
            continue
        if not msgs or msgs[-1][2]["u"] != lu:
            msgs.append((tl, DEPTH, {"e": "depthUpdate", "E": ts // 1_000_000, "s": sym, "U": fu, "u": lu,
                                     "b": [], "a": []}))
        msgs[-1][2]["b" if side == 0 else "a"].append([fmt8(_dec(px)), fmt8(_dec(q))])
    if start >= 0 and msgs:
        feed.update_id = msgs[0][2]["U"] - 1
    for kind in ("trades", "bbo"):
        if store.has(kind, "binance", symbol):
            msgs += _store_msgs(store, kind, symbol, sym, start)
    msgs.sort(key=lambda m: m[0])
    feed.msgs = msgs
    return feed


def _store_msgs(store: Store, kind: str, symbol: str, sym: str, start: int) -> list[tuple[int, str, dict[str, Any]]]:
    t = store.read(kind, "binance", symbol).to_pylist()
    if kind == "trades":
        return [(r["ts_local"], TRADE, {"e": "trade", "E": r["ts"] // 1_000_000, "s": sym, "t": r["trade_id"],
                                        "p": fmt8(_dec(r["price"])), "q": fmt8(_dec(r["qty"])),
                                        "T": r["ts"] // 1_000_000, "m": r["aggressor"] == -1, "M": True})
                for r in t if r["ts_local"] >= start]
    return [(r["ts_local"], TICKER, {"u": r["update_id"], "s": sym, "b": fmt8(_dec(r["bid"])),
                                     "B": fmt8(_dec(r["bid_qty"])), "a": fmt8(_dec(r["ask"])),
                                     "A": fmt8(_dec(r["ask_qty"]))}) for r in t if r["ts_local"] >= start]


class BinanceWs:
    """Streams of the fake Binance. ``served[symbol]`` logs (update id, top bids, top asks) per served state
    when ``log_depth`` > 0 (tests compare a client's books against it)."""

    def __init__(self, feeds: dict[str, Feed], engine: Engine, faults: Faults, speed: float,
                 log_depth: int = 0) -> None:
        self.feeds = feeds
        self.engine = engine
        self.hub = Hub(faults)
        self.speed = speed
        self.log_depth = log_depth
        self.served: dict[str, dict[int, tuple[Any, Any]]] = {s: {} for s in feeds}
        self.position: dict[str, int] = dict.fromkeys(feeds, 0)
        for sym, feed in feeds.items():
            self._publish_book(sym, feed)

    def initial_book(self, symbol: str) -> Book:
        feed = self.feeds[symbol]
        bids, asks = feed.top(ENGINE_LEVELS)
        return Book(bids, asks, 0, feed.update_id)

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/stream", self.combined)
        app.router.add_get("/ws/{stream}", self.raw)

    async def run(self, symbol: str) -> None:
        feed = self.feeds[symbol]
        if self.speed <= 0:
            return
        await paced([m[0] for m in feed.msgs], self.speed, lambda i: self._step(symbol, i))

    def _step(self, symbol: str, i: int) -> None:
        feed = self.feeds[symbol]
        _, stream, data = feed.msgs[i]
        self.position[symbol] = i + 1
        topic = f"{symbol.lower()}@{stream}"
        if stream.startswith("depth"):
            if int(data["u"]) <= feed.update_id:
                return  # the seed snapshot already holds it
            feed.apply(data)
            self._publish_book(symbol, feed)
        self.hub.publish(topic.lower(), _render(topic, data), book=stream.startswith("depth"))

    def _publish_book(self, symbol: str, feed: Feed) -> None:
        bids, asks = feed.top(ENGINE_LEVELS)
        self.engine.set_book(symbol, Book(bids, asks, now_ms(), feed.update_id), now_ms())
        if self.log_depth:
            self.served[symbol][feed.update_id] = (bids[:self.log_depth], asks[:self.log_depth])

    async def combined(self, request: web.Request) -> web.WebSocketResponse:
        topics = {s for s in request.query.get("streams", "").split("/") if s}
        return await self.hub.serve(request, self._control, Sub(web.WebSocketResponse(), _norm(topics)))

    async def raw(self, request: web.Request) -> web.WebSocketResponse:
        sub = Sub(web.WebSocketResponse(), _norm({request.match_info["stream"]}))
        sub.combined = False
        return await self.hub.serve(request, self._control, sub)

    async def _control(self, sub: Sub, text: str) -> None:
        try:
            msg = json.loads(text)
            method, params, ident = msg["method"], msg.get("params", []), msg.get("id")
        except (ValueError, KeyError, TypeError):
            sub.push(json.dumps({"error": {"code": 2, "msg": "Invalid request"}, "id": None}))
            return
        if method == "SUBSCRIBE":
            sub.topics |= _norm(set(params))
        elif method == "UNSUBSCRIBE":
            sub.topics -= _norm(set(params))
        elif method == "LIST_SUBSCRIPTIONS":
            sub.push(json.dumps({"result": sorted(sub.topics), "id": ident}))
            return
        sub.push(json.dumps({"result": None, "id": ident}))


def _norm(topics: set[str]) -> set[str]:
    """``btcusdt@depth`` and ``@depth@100ms`` are served by the same 100 ms diff stream."""
    return {t.lower() + "@100ms" if t.lower().endswith("@depth") else t.lower() for t in topics}


def _render(topic: str, data: dict[str, Any]) -> Callable[[Sub], str]:
    combined = json.dumps({"stream": topic, "data": data}, separators=(",", ":"))
    raw = json.dumps(data, separators=(",", ":"))
    return lambda sub: combined if sub.combined else raw
