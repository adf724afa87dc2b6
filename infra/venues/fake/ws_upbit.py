"""Fake Upbit quotation WebSocket ``/websocket/v1``: the store's recorded books (and trades) as Upbit frames.

A client sends ``[{"ticket":..},{"type":"orderbook","codes":["KRW-BTC"]},{"type":"trade","codes":[..]},
{"format":"SIMPLE"}]``; it gets the current book at once (``stream_type":"SNAPSHOT"``) and then every replayed
book (``REALTIME``), as binary frames like the venue, in DEFAULT names or SIMPLE abbreviations (brief §A2).
Numbers go out as JSON numbers (the venue's wire form). The replay itself (book changes, paced by recorded
time / speed) is the server's: it calls :meth:`UpbitWs.on_book` each time it serves a book. ``served`` logs
every served book (ts, top bids, top asks) for tests when ``log`` is set.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from aiohttp import web

from ...data.store import Store
from .engine import Book
from .faults import Faults
from .ws_common import Hub, Sub, paced

MAX_UNITS = 30
_OB_SIMPLE = {"type": "ty", "code": "cd", "timestamp": "tms", "total_ask_size": "tas", "total_bid_size": "tbs",
              "orderbook_units": "obu", "stream_type": "st", "level": "lv"}
_UNIT_SIMPLE = {"ask_price": "ap", "bid_price": "bp", "ask_size": "as", "bid_size": "bs"}
_TRADE_SIMPLE = {"type": "ty", "code": "cd", "timestamp": "tms", "trade_date": "td", "trade_time": "ttm",
                 "trade_timestamp": "ttms", "trade_price": "tp", "trade_volume": "tv", "ask_bid": "ab",
                 "sequential_id": "sid", "stream_type": "st"}


def _num(x: Decimal) -> Any:
    """A JSON number with the exact digits (an int when integral, like the venue's KRW prices)."""
    return int(x) if x == x.to_integral_value() else float(x)


def orderbook_frame(code: str, book: Book, ts_ms: int, stream_type: str, simple: bool) -> str:
    n = min(len(book.bids), len(book.asks), MAX_UNITS)
    units = [{"ask_price": _num(book.asks[i][0]), "bid_price": _num(book.bids[i][0]),
              "ask_size": _num(book.asks[i][1]), "bid_size": _num(book.bids[i][1])} for i in range(n)]
    msg: dict[str, Any] = {"type": "orderbook", "code": code, "timestamp": ts_ms,
                           "total_ask_size": _num(sum((a[1] for a in book.asks[:n]), Decimal(0))),
                           "total_bid_size": _num(sum((b[1] for b in book.bids[:n]), Decimal(0))),
                           "orderbook_units": units, "stream_type": stream_type, "level": 0}
    if simple:
        msg = {_OB_SIMPLE[k]: v for k, v in msg.items()}
        msg["obu"] = [{_UNIT_SIMPLE[k]: v for k, v in u.items()} for u in units]
    return json.dumps(msg, separators=(",", ":"))


def trade_frame(code: str, row: dict[str, Any], simple: bool) -> str:
    ts_ms = row["ts"] // 1_000_000
    when = datetime.fromtimestamp(ts_ms / 1000, UTC)
    msg = {"type": "trade", "code": code, "timestamp": ts_ms, "trade_date": when.strftime("%Y-%m-%d"),
           "trade_time": when.strftime("%H:%M:%S"), "trade_timestamp": ts_ms,
           "trade_price": _num(Decimal(repr(row["price"]))), "trade_volume": _num(Decimal(repr(row["qty"]))),
           "ask_bid": "BID" if row["aggressor"] == 1 else "ASK", "sequential_id": row["trade_id"],
           "stream_type": "REALTIME"}
    if simple:
        msg = {_TRADE_SIMPLE[k]: v for k, v in msg.items()}
    return json.dumps(msg, separators=(",", ":"))


def read_request(sub: Sub, text: str) -> list[Any] | None:
    """A client's subscription frame (a JSON array holding a ticket), else None: ``PING`` is answered
    ``{"status":"UP"}``, anything else with Upbit's ``NO_TICKET`` error (brief §A7)."""
    if text == "PING":
        sub.push(json.dumps({"status": "UP"}))
        return None
    try:
        req = json.loads(text)
        if not isinstance(req, list) or not any(isinstance(x, dict) and "ticket" in x for x in req):
            raise ValueError("no ticket")
    except ValueError:
        sub.push(json.dumps({"error": {"name": "NO_TICKET", "message": "ticket is required"}}))
        return None
    return req


class UpbitWs:
    """Quotation WS of the fake Upbit; books come from the server's replay, trades from the store."""

    def __init__(self, faults: Faults, store: Store | None, speed: float, log: bool = False) -> None:
        self.hub = Hub(faults)
        self.books: dict[str, Book] = {}
        self.speed = speed
        self.log = log
        self.served: dict[str, list[Book]] = {}
        self.trades: dict[str, list[dict[str, Any]]] = {}
        if store is not None:
            for s in store.series():
                if s.kind == "trades" and s.venue == "upbit" and s.symbol.endswith("-KRW"):
                    base = s.symbol.split("-")[0]
                    self.trades[f"KRW-{base}"] = store.read("trades", "upbit", s.symbol).to_pylist()

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/websocket/v1", self.websocket)

    def on_book(self, code: str, book: Book) -> None:
        """The server serves a new book for ``code``: send it to the subscribers of its orderbook."""
        self.books[code] = book
        if self.log:
            self.served.setdefault(code, []).append(book)
        self.hub.publish(f"orderbook:{code}", lambda sub: orderbook_frame(
            code, book, book.ts_ms, "REALTIME", "simple" in sub.topics), book=True)

    async def run_trades(self, code: str) -> None:
        rows = self.trades.get(code, [])
        if self.speed <= 0 or not rows:
            return
        await paced([r["ts"] for r in rows], self.speed, lambda i: self.hub.publish(
            f"trade:{code}", lambda sub: trade_frame(code, rows[i], "simple" in sub.topics)))

    async def websocket(self, request: web.Request) -> web.WebSocketResponse:
        sub = Sub(web.WebSocketResponse(), binary=True)
        return await self.hub.serve(request, self._subscribe, sub)

    async def _subscribe(self, sub: Sub, text: str) -> None:
        req = read_request(sub, text)
        if req is None:
            return
        topics: set[str] = set()
        for item in req:
            if not isinstance(item, dict):
                continue
            if item.get("format") == "SIMPLE":
                topics.add("simple")
            if item.get("type") in ("orderbook", "trade") and isinstance(item.get("codes"), list):
                topics |= {f"{item['type']}:{str(c).upper().split('.')[0]}" for c in item["codes"]}
        sub.topics = topics
        for topic in sorted(topics):
            kind, _, code = topic.partition(":")
            if kind == "orderbook" and code in self.books:
                book = self.books[code]
                sub.push(orderbook_frame(code, book, book.ts_ms, "SNAPSHOT", "simple" in topics))
