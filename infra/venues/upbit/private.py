"""Upbit private WebSocket (brief §A8), sans-IO: the subscription and one reader of ``myOrder`` / ``myAsset``.

``/websocket/v1/private`` takes the JWT at the handshake (``Authorization: Bearer``; the token of a request
without parameters: ``access_key`` + ``nonce`` only, ``auth.authorization``). One subscription frame:
``[{"ticket"},{"type":"myOrder","codes":[..]},{"type":"myAsset"},{"format":"DEFAULT"}]``; ``codes`` is optional
for myOrder (all markets) and not allowed for myAsset. Realtime only: no snapshot, so after any (re)connect the
caller reconciles by REST.

A ``myOrder`` frame becomes a ``core.venue.OrderEvent``: ``state=trade`` is one fill (``price``/``volume`` are the
fill's there, the fee is ``trade_fee``; a ``trade_uuid`` already seen is a counted ``duplicate``); ``wait`` /
``watch`` open; ``done`` / ``cancel`` close, with the state decided as for a REST order body
(``parse.order_state``: a cancelled market buy with executions is filled); the filled quantity is always
``executed_volume``. ``prevented`` (self-trade prevention, brief §A8) is read as an update of an open order
(assumption: a following ``cancel``/``done`` closes it). ``myAsset`` becomes the balances it lists.
"""

from __future__ import annotations

import json
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ....core.venue import Balance, Fill, OrderEvent, OrderState, RejectCounts, Rejected, RejectReason
from ..stream_loop import Refused
from .numbers import VENUE, Bad, dec, ident, loads, ms_to_ns, text
from .parse import _code, error_text, order_state

PATH = "/websocket/v1/private"
_OPEN = ("wait", "watch", "prevented")


Item = OrderEvent | tuple[Balance, ...] | Refused | Rejected


def subscribe_message(codes: Sequence[str] | None = None, *, my_asset: bool = True, ticket: str | None = None) -> str:
    """The one subscription frame (``codes`` None or empty: every market's orders)."""
    order: dict[str, Any] = {"type": "myOrder"}
    if codes:
        order["codes"] = [c.upper() for c in codes]
    req: list[dict[str, Any]] = [{"ticket": ticket or str(uuid.uuid4())}, order]
    if my_asset:
        req.append({"type": "myAsset"})
    req.append({"format": "DEFAULT"})
    return json.dumps(req, separators=(",", ":"))


def _my_order(m: dict[str, Any], ts_local: int) -> OrderEvent:
    market = _code(m, {"code": "code"})
    if m.get("ask_bid") not in ("ASK", "BID"):
        raise Bad("bad_field", "ask_bid is not ASK/BID")
    kind = m.get("order_type")
    if kind not in ("limit", "price", "market", "best"):
        raise Bad("bad_field", "order_type is not limit/price/market/best")
    state = m.get("state")
    executed = dec(m, "executed_volume")
    remaining = dec(m, "remaining_volume") if m.get("remaining_volume") is not None else None
    ts = ms_to_ns(m, "timestamp")
    fills: tuple[Fill, ...] = ()
    if state == "trade":  # price/volume are the fill's; the order's own figures are not in this frame
        fills = (Fill(ident(m, "trade_uuid"), dec(m, "price", positive=True), dec(m, "volume", positive=True),
                      dec(m, "trade_fee", optional=True), market.partition("-")[0],
                      ms_to_ns(m, "trade_timestamp") if "trade_timestamp" in m else ts),)
        if executed <= 0:
            raise Bad("bad_field", "a trade without executed_volume")
        st = OrderState.PARTIALLY_FILLED  # the order closes with its own done/cancel frame
    elif state in _OPEN:
        st = OrderState.PARTIALLY_FILLED if executed > 0 else OrderState.ACCEPTED
    else:
        volume = dec(m, "volume") if m.get("volume") is not None else None
        if volume is not None and kind != "price" and executed > volume:
            raise Bad("bad_field", f"executed_volume {executed} > volume {volume}")
        st = order_state(state, kind, m.get("time_in_force"), volume, remaining, executed)
    return OrderEvent(VENUE, text(m, "identifier", optional=True), ident(m, "uuid"), market, st, executed, fills,
                      RejectReason.NONE, f"state={state} order_type={kind}", ts, ts_local)


def _my_asset(m: dict[str, Any]) -> tuple[Balance, ...]:
    assets = m.get("assets")
    if not isinstance(assets, list):
        raise Bad("bad_field", "assets is not a list")
    return tuple(Balance(text(a, "currency", max_len=16), dec(a, "balance"), dec(a, "locked", optional=True))
                 for a in assets)


def parse_private(raw: bytes | str, ts_local: int) -> Item | None:
    """One private WS frame (text or binary UTF-8 JSON); None: a keep-alive (``{"status":"UP"}``)."""
    try:
        msg = loads(raw)
        if not isinstance(msg, dict):
            raise Bad("bad_field", f"expected an object, got {type(msg).__name__}")
        if "error" in msg:
            name = msg["error"].get("name") if isinstance(msg["error"], dict) else None
            if name == "INVALID_AUTH":
                return Refused(RejectReason.AUTH, error_text(msg))
            return Rejected(VENUE, "venue_error", error_text(msg), ts_local)
        kind = msg.get("type", msg.get("ty"))
        if kind == "myOrder":
            return _my_order(msg, ts_local)
        if kind == "myAsset":
            return _my_asset(msg)
        if msg.get("status") == "UP":
            return None
        raise Bad("unknown_type", f"type {str(kind)[:20]!r}")
    except Bad as bad:
        return Rejected(VENUE, bad.reason, bad.detail, ts_local)
    except Exception as exc:  # a parser bug: counted apart (the fuzz test requires none)
        return Rejected(VENUE, "parser_error", f"{type(exc).__name__}: {exc}"[:120], ts_local)


@dataclass
class PrivateStream:
    """One private connection's reader: parses, drops trades already seen (by ``trade_uuid``), counts rejects."""

    max_seen: int = 100_000
    rejects: RejectCounts = field(default_factory=RejectCounts)
    _seen: OrderedDict[str, None] = field(default_factory=OrderedDict)

    def on_frame(self, raw: bytes | str, ts_local: int) -> Item | None:
        out = parse_private(raw, ts_local)
        if isinstance(out, OrderEvent) and out.fills:
            tid = out.fills[0].trade_id
            if tid in self._seen:
                out = Rejected(VENUE, "duplicate", f"{out.symbol} trade {tid} already seen", ts_local)
            else:
                self._seen[tid] = None
                while len(self._seen) > self.max_seen:
                    self._seen.popitem(last=False)
        if isinstance(out, Rejected):
            self.rejects.add(out)
        return out

