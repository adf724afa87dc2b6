"""Fake Binance user data stream (brief §B7): the WS API subscription and the legacy listenKey, fed by the engine.

``/ws-api/v3``: ``{"id","method":"userDataStream.subscribe.signature","params":{apiKey,timestamp,signature}}``
is checked like a signed REST request (key -2015, WS API signature -1022, timestamp -1021; the real error shape
``{"id","status","error":{"code","msg"}}``) and answered ``{"result":{"subscriptionId":n}}``; events then go out
wrapped ``{"subscriptionId":n,"event":..}``. ``userDataStream.unsubscribe`` ends them. ``POST/PUT/DELETE
/api/v3/userDataStream`` (API key only) manage a listenKey, streamed unwrapped at ``/ws/<listenKey>``.

Every engine change becomes an ``executionReport`` as the venue sends it (NEW, one TRADE per fill with that
fill's price/qty/commission and the cumulative ``z``/``Z``, the completing fill saying FILLED, CANCELED or
EXPIRED at the end), and each operation ends with one ``outboundAccountPosition`` of the assets it touched.
Tests end streams on the venue's side with :meth:`terminate` (``eventStreamTerminated``) and :meth:`expire`
(``listenKeyExpired``), or drop every connection with ``hub.close_all()``.
"""

from __future__ import annotations

import json
import secrets
from decimal import Decimal
from typing import Any

from aiohttp import web

from .auth import binance_ws_check
from .binance import STATUS, BinanceError, BinanceFake
from .common import fmt8, now_ms, reply
from .engine import Change
from .faults import Faults
from .ws_common import Hub, Sub

_EXEC = {"new": "NEW", "trade": "TRADE"}
_CLOSED = {"cancelled": "CANCELED", "expired": "EXPIRED", "filled": "TRADE"}
LISTEN_KEY = "{key:[A-Za-z0-9]{60}}"


def execution_report(c: Change) -> dict[str, Any]:
    o, f, zero = c.order, c.fill, Decimal(0)
    x = _EXEC.get(c.kind) or _CLOSED[c.status]
    cancel = c.status == "cancelled"
    return {"e": "executionReport", "E": c.ts_ms, "s": o.symbol,
            "c": f"cancel-{o.order_id}" if cancel else o.client_id, "S": o.side.upper(), "o": o.kind.upper(),
            "f": o.tif, "q": fmt8(o.qty or zero), "p": fmt8(o.price or zero), "P": fmt8(zero), "F": fmt8(zero),
            "g": -1, "C": o.client_id if cancel else "", "x": x, "X": "NEW" if c.kind == "new" else STATUS[c.status],
            "r": "NONE", "i": o.order_id, "l": fmt8(f.qty if f else zero), "z": fmt8(c.filled),
            "L": fmt8(f.price if f else zero), "n": fmt8(f.fee if f else zero), "N": f.fee_asset if f else None,
            "T": c.ts_ms, "t": f.trade_id if f else -1, "I": c.ts_ms, "w": c.status in ("new", "partial"),
            "m": bool(f and f.maker), "M": False, "O": o.created_ms, "Z": fmt8(c.filled_quote),
            "Y": fmt8(f.quote if f else zero), "Q": fmt8(o.quote_qty or zero), "W": o.created_ms,
            "V": "EXPIRE_MAKER"}


class BinanceUserData:
    """The private streams of one fake Binance account; registers itself as the engine's listener."""

    def __init__(self, fake: BinanceFake) -> None:
        self.fake = fake
        self.hub = Hub(Faults())  # market-data faults do not touch the private streams
        self.listen_keys: dict[str, int] = {}  # key -> expiry (epoch ms)
        self.subscription: dict[int, int] = {}  # id(sub) -> subscriptionId (WS API)
        self._next_id = 0
        fake.engine.listeners.append(self.on_changes)

    def routes(self, app: web.Application) -> None:
        """Before the market-data routes: ``/ws/<60 alphanumerics>`` is a listenKey, never a market stream."""
        r = app.router
        r.add_post("/api/v3/userDataStream", self.create_key)
        r.add_put("/api/v3/userDataStream", self.keepalive)
        r.add_delete("/api/v3/userDataStream", self.close_key)
        r.add_get("/ws-api/v3", self.ws_api)
        r.add_get("/ws/" + LISTEN_KEY, self.listen_stream)

    # -- engine -> subscribers ------------------------------------------------------------------------
    def on_changes(self, changes: list[Change]) -> None:
        for c in changes:
            self._send(execution_report(c))
        assets = sorted({a for c in changes for a in (self.fake.engine.markets[c.order.symbol].base,
                                                      self.fake.engine.markets[c.order.symbol].quote)})
        e, ts = self.fake.engine, now_ms()
        self._send({"e": "outboundAccountPosition", "E": ts, "u": ts,
                    "B": [{"a": a, "f": fmt8(e.free.get(a, Decimal(0))), "l": fmt8(e.locked.get(a, Decimal(0)))}
                          for a in assets]})

    def _send(self, event: dict[str, Any], only: str | None = None) -> None:
        raw = json.dumps(event, separators=(",", ":"))
        for sub in list(self.hub.subs):
            topic = next(iter(sub.topics), None)
            if topic is None or (only is not None and topic != only):
                continue
            frame = raw if topic.startswith("key:") else (
                f'{{"subscriptionId":{self.subscription.get(id(sub), 0)},"event":{raw}}}')
            if not sub.push(frame):
                self.hub.close(sub)

    def terminate(self) -> None:
        """The venue ends every WS API subscription (``eventStreamTerminated``); the connections stay."""
        self._send({"e": "eventStreamTerminated", "E": now_ms()}, only="user")
        for sub in self.hub.subs:
            sub.topics.discard("user")

    def expire(self) -> None:
        """Every listenKey expires: ``listenKeyExpired`` on its stream, then the stream closes."""
        for key in list(self.listen_keys):
            self._send({"e": "listenKeyExpired", "E": now_ms(), "listenKey": key}, only=f"key:{key}")
            for sub in [s for s in self.hub.subs if f"key:{key}" in s.topics]:
                self.hub.close(sub)
        self.listen_keys.clear()

    # -- listenKey (REST) --------------------------------------------------------------------------------
    def _api_key(self, request: web.Request) -> None:
        key = request.headers.get("X-MBX-APIKEY")
        if not key:
            raise BinanceError(-2014, "API-key format invalid.", 401)
        if key != self.fake.cfg.api_key:
            raise BinanceError(-2015, "Invalid API-key, IP, or permissions for action.", 401)

    async def create_key(self, request: web.Request) -> web.Response:
        self._api_key(request)
        key = next(iter(self.listen_keys), None) or secrets.token_urlsafe(60).replace("-", "a").replace("_", "b")[:60]
        self.listen_keys[key] = now_ms() + 60 * 60_000  # the active key comes back, extended
        return reply({"listenKey": key})

    def _known(self, request: web.Request) -> str:
        self._api_key(request)
        key = request.query.get("listenKey", "")
        if not key:
            raise BinanceError(-1102, "Mandatory parameter 'listenKey' was not sent, was empty/null, or malformed.")
        if key not in self.listen_keys:
            raise BinanceError(-1125, "This listenKey does not exist.")
        return key

    async def keepalive(self, request: web.Request) -> web.Response:
        self.listen_keys[self._known(request)] = now_ms() + 60 * 60_000
        return reply({})

    async def close_key(self, request: web.Request) -> web.Response:
        key = self._known(request)
        del self.listen_keys[key]
        for sub in [s for s in self.hub.subs if f"key:{key}" in s.topics]:
            self.hub.close(sub)
        return reply({})

    async def listen_stream(self, request: web.Request) -> web.StreamResponse:
        key = request.match_info["key"]
        if self.listen_keys.get(key, 0) < now_ms():
            return reply({"code": -1125, "msg": "This listenKey does not exist."}, 400)
        sub = Sub(web.WebSocketResponse(), {f"key:{key}"})
        return await self.hub.serve(request, _ignore, sub)

    # -- WS API ------------------------------------------------------------------------------------------
    async def ws_api(self, request: web.Request) -> web.WebSocketResponse:
        return await self.hub.serve(request, self._ws_request)

    async def _ws_request(self, sub: Sub, text: str) -> None:
        try:
            msg = json.loads(text)
            rid, method, params = msg.get("id"), msg["method"], msg.get("params", {})
            if not isinstance(params, dict):
                raise ValueError("params")
        except (ValueError, KeyError, TypeError, AttributeError):
            sub.push(_error(None, BinanceError(-1100, "Illegal characters found in a parameter.")))
            return
        try:
            if method == "userDataStream.subscribe.signature":
                self._check(params)
                self._next_id += 1
                self.subscription[id(sub)] = sid = self._next_id - 1
                sub.topics = {"user"}
                sub.push(_ok(rid, {"subscriptionId": sid}))
            elif method == "userDataStream.unsubscribe":
                sub.topics.discard("user")
                sub.push(_ok(rid, {}))
            else:
                raise BinanceError(-1100, f"Unknown method '{str(method)[:40]}'.")
        except BinanceError as e:
            sub.push(_error(rid, e))

    def _check(self, p: dict[str, Any]) -> None:
        """As a signed REST request: the key, the WS API signature, then the timestamp window."""
        for name in ("apiKey", "timestamp", "signature"):
            if name not in p:
                raise BinanceError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")
        if p["apiKey"] != self.fake.cfg.api_key:
            raise BinanceError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        if not binance_ws_check(self.fake.cfg.secret, p):
            raise BinanceError(-1022, "Signature for this request is not valid.")
        ts, window, server = str(p["timestamp"]), str(p.get("recvWindow", 5000)), now_ms()
        if not ts.isdigit() or not window.isdigit():
            raise BinanceError(-1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed.")
        if int(ts) >= server + 1000 or server - int(ts) > int(window):
            raise BinanceError(-1021, "Timestamp for this request is outside of the recvWindow.")


def _ok(rid: Any, result: dict[str, Any]) -> str:
    return json.dumps({"id": rid, "status": 200, "result": result,
                       "rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
                                       "limit": 6000, "count": 2}]}, separators=(",", ":"))


def _error(rid: Any, e: BinanceError) -> str:
    return json.dumps({"id": rid, "status": e.status, "error": {"code": e.code, "msg": e.msg}}, separators=(",", ":"))


async def _ignore(sub: Sub, text: str) -> None:
    """A listenKey stream takes no requests (the venue ignores what a client sends on it)."""
