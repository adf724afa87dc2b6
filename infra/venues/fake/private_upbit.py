"""Fake Upbit private WebSocket ``/websocket/v1/private`` (brief §A8): myOrder and myAsset from the engine.

The handshake carries ``Authorization: Bearer <jwt>`` (no query hash: the token of a request without
parameters); a token that does not verify, a wrong access key or a reused nonce is refused with HTTP 401 and
Upbit's error body, before any WebSocket exists. A client then subscribes ``[{"ticket"},{"type":"myOrder",
"codes":[..]},{"type":"myAsset"}]`` (codes optional for myOrder, refused for myAsset: ``WRONG_FORMAT``).

Per engine change: ``wait`` when accepted, ``trade`` per fill (``price``/``volume`` are the fill's, ``trade_fee``
its fee, ``trade_uuid`` the same id ``GET /v1/order`` lists), then ``done`` or ``cancel`` when it closes; one
``myAsset`` of the touched currencies per operation. Binary frames, JSON numbers with the exact decimal digits.
"""

from __future__ import annotations

import json
import re
import uuid
from decimal import Decimal
from typing import Any

from aiohttp import web

from .auth import jwt_decode
from .common import now_ms, reply
from .engine import Change
from .faults import Faults
from .upbit import UpbitFake
from .ws_common import Hub, Sub
from .ws_upbit import read_request

PATH = "/websocket/v1/private"
_NUMBER = re.compile(r'"@@(-?[0-9.]+)@@"')


def _dumps(msg: dict[str, Any]) -> str:
    """JSON with Decimals as bare numbers of their exact digits (a float would round a 17-digit KRW amount)."""
    text = json.dumps(msg, separators=(",", ":"), default=lambda d: f"@@{d:f}@@")
    return _NUMBER.sub(r"\1", text)


def trade_uuid(trade_id: int) -> str:
    """A fill's id as the fake's REST shows it (``GET /v1/order`` trades[].uuid)."""
    return str(uuid.UUID(int=trade_id))


def my_order(c: Change, state: str) -> dict[str, Any]:
    o, f, zero = c.order, c.fill, Decimal(0)
    kind = "limit" if o.kind == "limit" else "price" if o.side == "buy" else "market"
    ts = c.ts_ms
    msg: dict[str, Any] = {
        "type": "myOrder", "code": o.symbol, "uuid": o.uid, "ask_bid": "BID" if o.side == "buy" else "ASK",
        "order_type": kind, "state": state, "trade_uuid": trade_uuid(f.trade_id) if f else None,
        "price": f.price if f else (o.price or o.quote_qty),
        "avg_price": (c.filled_quote / c.filled).quantize(Decimal("1e-8")) if c.filled else zero,
        "volume": f.qty if f else o.qty, "remaining_volume": (o.qty - c.filled) if o.qty is not None else None,
        "executed_volume": c.filled, "executed_funds": c.filled_quote,
        "trades_count": o.fills.index(f) + 1 if f else len(o.fills), "paid_fee": c.fee_paid,
        "locked": o.locked,
        "time_in_force": o.tif.lower() if o.tif != "GTC" else None, "smp_type": None, "prevented_volume": zero,
        "prevented_locked": zero, "order_timestamp": o.created_ms, "timestamp": ts, "stream_type": "REALTIME"}
    if f is not None:
        msg.update({"trade_fee": f.fee, "is_maker": f.maker, "trade_timestamp": f.ts_ms})
    if o.client_id:
        msg["identifier"] = o.client_id
    return msg


def _states(c: Change) -> list[str]:
    """The myOrder states one engine change is reported as."""
    if c.kind == "new":
        return ["wait"]
    if c.kind == "trade":
        return ["trade", "done"] if c.status == "filled" else ["trade"]
    return ["done" if c.status == "filled" else "cancel"]


class UpbitPrivate:
    """The private WS of one fake Upbit account; registers itself as the engine's listener."""

    def __init__(self, fake: UpbitFake) -> None:
        self.fake = fake
        self.hub = Hub(Faults())
        fake.engine.listeners.append(self.on_changes)

    def routes(self, app: web.Application) -> None:
        app.router.add_get(PATH, self.websocket)

    def on_changes(self, changes: list[Change]) -> None:
        for c in changes:
            for state in _states(c):
                self._send(f"myOrder:{c.order.symbol}", _dumps(my_order(c, state)))
        e, ts = self.fake.engine, now_ms()
        currencies = sorted({a for c in changes for a in ("KRW", e.markets[c.order.symbol].base)})
        self._send("myAsset", _dumps({"type": "myAsset", "asset_uuid": str(uuid.uuid4()),
                                      "assets": [{"currency": a, "balance": e.free.get(a, Decimal(0)),
                                                  "locked": e.locked.get(a, Decimal(0))} for a in currencies],
                                      "asset_timestamp": ts, "timestamp": ts, "stream_type": "REALTIME"}))

    def _send(self, topic: str, frame: str) -> None:
        for sub in list(self.hub.subs):
            wanted = topic in sub.topics or (topic.startswith("myOrder:") and "myOrder:*" in sub.topics)
            if wanted and not sub.push(frame):
                self.hub.close(sub)

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        head = request.headers.get("Authorization", "")
        claims = jwt_decode(head[7:], self.fake.cfg.secret) if head.startswith("Bearer ") else None
        refused = None
        if claims is None:
            refused = ("jwt_verification", "Jwt 토큰 검증에 실패했습니다.")
        elif claims.get("access_key") != self.fake.cfg.access_key:
            refused = ("invalid_access_key", "잘못된 엑세스 키입니다.")
        elif not str(claims.get("nonce", "")) or str(claims["nonce"]) in self.fake.nonces:
            refused = ("nonce_used", "Used nonce.")
        if refused is not None:
            return reply({"error": {"name": refused[0], "message": refused[1]}}, 401)
        assert claims is not None
        self.fake.nonces.add(str(claims["nonce"]))
        return await self.hub.serve(request, self._subscribe, Sub(web.WebSocketResponse(), binary=True))

    async def _subscribe(self, sub: Sub, text: str) -> None:
        req = read_request(sub, text)
        if req is None:
            return
        topics: set[str] = set()
        for item in (x for x in req if isinstance(x, dict)):
            if item.get("type") == "myOrder":
                codes = item.get("codes") or []
                topics |= {f"myOrder:{str(c).upper()}" for c in codes} if isinstance(codes, list) else set()
                topics |= set() if codes else {"myOrder:*"}
            elif item.get("type") == "myAsset":
                if "codes" in item:
                    sub.push(_ws_error("WRONG_FORMAT", "myAsset takes no codes"))
                    return
                topics.add("myAsset")
        if not topics:
            sub.push(_ws_error("NO_TYPE", "type is required"))
            return
        sub.topics = topics


def _ws_error(name: str, message: str) -> str:
    return json.dumps({"error": {"name": name, "message": message}})
