"""Binance user data stream (brief §B7), sans-IO: the requests that open it and one reader of its frames.

Two ways in. The current one is the WS API (``/ws-api/v3``): one ``userDataStream.subscribe.signature`` request
(``apiKey``, ``timestamp``, ``signature`` signed like any WS API request: params sorted, HMAC-SHA256), answered
``{"id","status":200,"result":{"subscriptionId":0}}``; events then come wrapped ``{"subscriptionId":0,"event":..}``.
The legacy one is a listenKey (``POST/PUT/DELETE /api/v3/userDataStream``, API-key header only, no signature),
streamed unwrapped at ``/ws/<listenKey>``; PUT keeps it alive (valid 60 min), ``listenKeyExpired`` ends it.

:class:`UserStream` turns frames into what the engine needs: an ``executionReport`` is a ``core.venue.OrderEvent``
(``parse.parse_user_event``: the REST parser's twin, kept in one place), ``outboundAccountPosition`` the changed
balances, ``eventStreamTerminated`` / ``listenKeyExpired`` a :class:`Resubscribe`. A fill already seen -- same
(symbol, tradeId) -- is a counted ``duplicate``, never a second fill: a reconnect or a venue resend must not
double a position. Nothing here raises on a bad frame: it comes out as a ``Rejected``.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ....core.venue import Balance, OrderEvent, RejectCounts, Rejected
from ..stream_loop import Refused, Resubscribe
from . import VENUE
from .orders import Request
from .parse import CATCH, Bad, Control, error_reason, integer, parse_user_event
from .sign import ws_api_signature

SUBSCRIBE = "userDataStream.subscribe.signature"
LISTEN_KEY_PATH = "/api/v3/userDataStream"
LISTEN_KEY_WEIGHT = 2
KEEPALIVE_S = 30 * 60  # a listenKey lives 60 min; the docs say extend it every ~30 min
_RESUBSCRIBE = ("eventStreamTerminated", "listenKeyExpired")
_IGNORED = ("balanceUpdate", "externalLockUpdate")  # deltas; outboundAccountPosition carries the balances


@dataclass(frozen=True, slots=True)
class Subscribed:
    """The WS API accepted the subscription."""

    request_id: str
    subscription_id: int


Item = OrderEvent | tuple[Balance, ...] | Subscribed | Refused | Resubscribe | Rejected


# ---- requests
def subscribe_request(request_id: str, api_key: str, secret: str, timestamp_ms: int,
                      recv_window_ms: int | None = None) -> str:
    """The WS API text frame subscribing this key's user data stream (no session logon needed)."""
    params: dict[str, str] = {"apiKey": api_key, "timestamp": str(timestamp_ms)}
    if recv_window_ms is not None:
        params["recvWindow"] = str(recv_window_ms)
    params["signature"] = ws_api_signature(params, secret)
    return json.dumps({"id": request_id, "method": SUBSCRIBE, "params": params}, separators=(",", ":"))


def unsubscribe_request(request_id: str, subscription_id: int | None = None) -> str:
    params = {} if subscription_id is None else {"subscriptionId": subscription_id}
    return json.dumps({"id": request_id, "method": "userDataStream.unsubscribe", "params": params},
                      separators=(",", ":"))


def listen_key_request(method: str, listen_key: str | None = None) -> Request:
    """POST (create, or the active key back), PUT (keep alive) or DELETE (close) a listenKey."""
    if method not in ("POST", "PUT", "DELETE") or (method != "POST") != (listen_key is not None):
        raise ValueError("POST takes no listenKey; PUT and DELETE need one")
    params = () if listen_key is None else (("listenKey", listen_key),)
    return Request(method, LISTEN_KEY_PATH, params, LISTEN_KEY_WEIGHT)


def parse_listen_key(raw: str | bytes, ts_local: int) -> str | Rejected:
    """``{"listenKey":"..."}`` -> the key."""
    try:
        body = json.loads(raw)
        key = body.get("listenKey") if type(body) is dict else None
        if type(key) is not str or not key.isalnum() or not 0 < len(key) <= 128:
            raise Bad("bad_field", "listenKey: not an alphanumeric string")
        return key
    except CATCH as x:
        return Rejected(VENUE, getattr(x, "reason", "bad_json"), str(x)[:120], ts_local)


def _response(msg: dict[str, Any]) -> Subscribed | Refused:
    """A WS API answer ``{"id","status","result"|"error"}`` to our subscribe (or unsubscribe) request."""
    rid = str(msg["id"])[:64]
    status = integer(msg["status"], "status")
    err = msg.get("error")
    if status != 200 or err is not None:
        if type(err) is not dict:
            raise Bad("bad_field", f"status {status} without an error object")
        code, text = integer(err["code"], "code", lo=-(2**31)), str(err.get("msg", ""))[:200]
        return Refused(error_reason(code, text), f"{code} {text}")
    result = msg["result"]
    sid = result.get("subscriptionId") if type(result) is dict else None
    return Subscribed(rid, integer(sid, "subscriptionId") if sid is not None else -1)


@dataclass
class UserStream:
    """One user data stream's reader: classifies frames, drops fills already seen, counts what it refuses."""

    max_seen: int = 100_000  # remembered fills (oldest forgotten first): far beyond any replay window
    rejects: RejectCounts = field(default_factory=RejectCounts)
    _seen: OrderedDict[tuple[str, str], None] = field(default_factory=OrderedDict)

    def on_frame(self, raw: str | bytes | Mapping[str, Any], ts_local: int) -> Item | None:
        """One frame; None for an event the engine does not need (balanceUpdate, externalLockUpdate)."""
        out = self._classify(raw, ts_local)
        if isinstance(out, Rejected):
            self.rejects.add(out)
        return out

    def _classify(self, raw: str | bytes | Mapping[str, Any], ts_local: int) -> Item | None:
        try:
            msg = json.loads(raw) if isinstance(raw, str | bytes | bytearray) else raw
            if type(msg) is not dict:
                raise Bad("bad_json", "not an object")
            if "id" in msg and "status" in msg:
                return _response(msg)
        except CATCH as x:
            return Rejected(VENUE, getattr(x, "reason", "bad_field"), str(x)[:160], ts_local)
        ev = parse_user_event(msg, ts_local)
        if isinstance(ev, Control):
            if ev.kind in _RESUBSCRIBE:
                return Resubscribe(ev.kind, ev.detail)
            return None if ev.kind in _IGNORED else Rejected(VENUE, "unknown_type", ev.kind, ts_local)
        if isinstance(ev, OrderEvent) and ev.fills:
            return self._dedupe(ev, ts_local)
        return ev

    def _dedupe(self, ev: OrderEvent, ts_local: int) -> OrderEvent | Rejected:
        keys = [(ev.symbol, f.trade_id) for f in ev.fills]
        if all(k in self._seen for k in keys):
            return Rejected(VENUE, "duplicate", f"{ev.symbol} trade {keys[0][1]} already seen", ts_local)
        for k in keys:
            self._seen[k] = None
        while len(self._seen) > self.max_seen:
            self._seen.popitem(last=False)
        return ev
