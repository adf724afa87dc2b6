"""Journal records: what the engine journals (intents, order events, fills, trade transitions, risk verdicts,
PnL snapshots, alerts), each keyed so that writing it twice changes nothing, and their exact JSON form."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum, IntEnum, StrEnum
from typing import TYPE_CHECKING, Any

from ..core.domain import Venue

if TYPE_CHECKING:
    from ..core.alerts import Alert
    from ..core.ledger import Fill
    from ..core.order_fsm import Order, OrderEvent
    from ..core.risk import RiskVerdict
    from ..core.trade_fsm import Trade


class Kind(StrEnum):
    INTENT = "intent"  # key: client order id
    ORDER_EVENT = "order_event"  # key: client id : event seq
    FILL = "fill"  # key: venue : venue trade id
    TRADE_TRANSITION = "trade_transition"  # key: trade id : step seq
    RISK_VERDICT = "risk_verdict"  # key: decision seq
    PNL_SNAPSHOT = "pnl_snapshot"  # key: route : ts_local
    ALERT = "alert"  # key: rule : alert key : now_ns


_I64 = 2**63 - 1


_AS_IS = frozenset({str, int, bool, type(None)})  # exact types: IntEnums are ints, but are mapped below


def plain(value: Any) -> Any:
    """A JSON-ready copy: Decimal -> exact plain string ("0.00000001"), Venue -> label, other IntEnums ->
    name, Enums -> value, tuples/sets -> lists. Floats must be finite; money belongs in Decimals."""
    kind = type(value)
    if kind in _AS_IS:
        return value
    if kind is Decimal:
        if not value.is_finite():
            raise ValueError(f"non-finite Decimal {value} in a journal payload")
        return format(value, "f")
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if type(k) is not str:
                raise TypeError(f"journal payload keys must be str, got {k!r}")
            out[k] = v if type(v) in _AS_IS else plain(v)
        return out
    if isinstance(value, Venue):
        return value.label
    if isinstance(value, IntEnum):
        return value.name
    if isinstance(value, Enum):
        return plain(value.value)
    if isinstance(value, Decimal | str | int):  # subclasses of the plain types
        return plain(Decimal(value) if isinstance(value, Decimal) else str(value) if isinstance(value, str)
                     else int(value))
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"non-finite float {value} in a journal payload")
        return value
    if isinstance(value, set | frozenset):
        return sorted((plain(v) for v in value), key=str)
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    raise TypeError(f"cannot journal a {type(value).__name__}: {value!r}")


@dataclass(frozen=True, slots=True)
class JournalRecord:
    """One journal row. ``payload`` is normalised by ``plain`` on construction, so a record read back equals
    the record written. ``payload["client_id"]``, when present, also fills the indexed client_id column."""

    kind: Kind
    key: str  # idempotency key within (run_id, kind)
    run_id: str
    route: str  # "*" when portfolio-wide
    ts_venue: int  # ns; -1 when unknown or local
    ts_local: int  # ns
    payload: dict[str, Any]
    payload_json: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", Kind(self.kind))
        for name in ("key", "run_id", "route"):
            text = getattr(self, name)
            if not isinstance(text, str) or not text or "\x00" in text:
                raise ValueError(f"journal record {name} must be a non-empty string without NUL, got {text!r}")
        for name, low in (("ts_venue", -1), ("ts_local", 0)):
            ts = getattr(self, name)
            if isinstance(ts, bool) or not isinstance(ts, int) or not low <= ts <= _I64:
                raise ValueError(f"journal record {name} must be an int64 ns >= {low}, got {ts!r}")
        payload = plain(dict(self.payload))
        text = json.dumps(payload, separators=(",", ":"), allow_nan=False)
        if "\\u0000" in text:  # PostgreSQL text/jsonb cannot hold NUL: refuse here, not in a failing batch
            raise ValueError("journal payload strings must not contain NUL")
        object.__setattr__(self, "payload", payload)
        object.__setattr__(self, "payload_json", text)

    @property
    def client_id(self) -> str | None:
        cid = self.payload.get("client_id")
        return cid if isinstance(cid, str) and cid else None

    def to_json(self) -> str:
        head = json.dumps([self.kind.value, self.key, self.run_id, self.route, self.ts_venue, self.ts_local])
        return f'{{"r":{head},"p":{self.payload_json}}}'

    @classmethod
    def from_json(cls, line: str | bytes) -> JournalRecord:
        obj = json.loads(line)
        kind, key, run_id, route, ts_venue, ts_local = obj["r"]
        return cls(Kind(kind), key, run_id, route, ts_venue, ts_local, obj["p"])


# builders: one per kind, from the core's own objects -------------------------------------------------------


def intent_record(run_id: str, route: str, order: Order, ts_local: int, *, trade_id: str = "", role: str = "entry",
                  **extra: Any) -> JournalRecord:
    """The order as decided, before it is sent (status INITIALIZED). Key: the client order id."""
    payload = {"client_id": order.client_id, "venue": order.venue, "symbol": order.symbol, "side": order.side,
               "qty": order.qty, "limit_price": order.limit_price, "trade_id": trade_id, "role": role, **extra}
    return JournalRecord(Kind.INTENT, order.client_id, run_id, route, -1, ts_local, payload)


def order_event_record(run_id: str, route: str, order: Order, seq: int | None = None) -> JournalRecord:
    """``order.events[seq - 1]`` (default: the last) with the status it led to. Key: client id : seq, so an
    event the FSM ignored (duplicate fill, stale report: ``order`` unchanged) maps onto the row already there."""
    seq = len(order.events) if seq is None else seq
    if not 1 <= seq <= len(order.events):
        raise ValueError(f"order {order.client_id} has no event #{seq}")
    ev = order.events[seq - 1]
    payload = {"client_id": order.client_id, "seq": seq, "event": ev.kind, "status": order.status,
               "terminal": order.is_terminal, "trade_id": ev.trade_id, "qty": ev.qty, "price": ev.price,
               "fee": ev.fee, "cum_qty": ev.cum_qty, "venue_status": ev.venue_status, "reason": ev.reason,
               "filled_qty": order.filled_qty, "venue_filled_qty": order.venue_filled_qty}
    return JournalRecord(Kind.ORDER_EVENT, f"{order.client_id}:{seq}", run_id, route, ev.ts_venue, ev.ts_local,
                         payload)


def fill_record(run_id: str, route: str, fill: Fill, *, trade_id: str, client_id: str = "") -> JournalRecord:
    """A ledger fill (paper, backtest). Key: venue : trade id, the same key as ``fill_event_record``."""
    payload = {"client_id": client_id, "trade_id": trade_id, "venue": fill.venue, "side": fill.side,
               "price": fill.price, "qty": fill.qty, "fee": fill.fee, "ref_price": fill.ref_price,
               "trip": fill.trip, "action": fill.action, "ts_decision": fill.ts_decision}
    return JournalRecord(Kind.FILL, f"{fill.venue.label}:{trade_id}", run_id, route, fill.ts_venue, fill.ts_local,
                         payload)


def fill_event_record(run_id: str, route: str, order: Order, event: OrderEvent) -> JournalRecord:
    """A venue fill report (a FILL ``OrderEvent`` of ``order``). Key: venue : trade id."""
    if not event.trade_id:
        raise ValueError("a fill record needs the venue's trade id")
    payload = {"client_id": order.client_id, "trade_id": event.trade_id, "venue": order.venue, "side": order.side,
               "price": event.price, "qty": event.qty, "fee": event.fee}
    return JournalRecord(Kind.FILL, f"{order.venue.label}:{event.trade_id}", run_id, route, event.ts_venue,
                         event.ts_local, payload)


def trade_transition_record(run_id: str, route: str, trade: Trade, seq: int | None = None) -> JournalRecord:
    """``trade.history[seq - 1]`` (default: the last step). Key: trade id : seq."""
    seq = len(trade.history) if seq is None else seq
    if not 1 <= seq <= len(trade.history):
        raise ValueError(f"trade {trade.trade_id} has no step #{seq}")
    step = trade.history[seq - 1]
    payload = {"trade_id": trade.trade_id, "seq": seq, "event": step.kind, "status": step.status,
               "legs": [leg.order.client_id for leg in trade.legs], "net_exposure": trade.net_exposure,
               "unhedged_notional": trade.unhedged_notional}
    return JournalRecord(Kind.TRADE_TRANSITION, f"{trade.trade_id}:{seq}", run_id, route, -1, step.ts_local, payload)


def risk_verdict_record(run_id: str, route: str, verdict: RiskVerdict, *, seq: int, action: str, ts_local: int,
                        **extra: Any) -> JournalRecord:
    """Key: the caller's decision sequence number (unique within the run)."""
    payload = {"seq": seq, "action": action, "allowed": verdict.allowed, "verdict": verdict.verdict,
               "first_trigger": verdict.first_trigger, "tier": verdict.tier, "reasons": verdict.reasons, **extra}
    return JournalRecord(Kind.RISK_VERDICT, str(seq), run_id, route, -1, ts_local, payload)


def pnl_snapshot_record(run_id: str, route: str, ts_local: int, values: Mapping[str, Any]) -> JournalRecord:
    """Key: route : ts_local (the trip's close time in market time, so a replay maps onto the same row)."""
    return JournalRecord(Kind.PNL_SNAPSHOT, f"{route}:{ts_local}", run_id, route, -1, ts_local, dict(values))


def alert_record(run_id: str, alert: Alert, route: str = "*") -> JournalRecord:
    """Key: rule : alert key : now_ns."""
    payload = {"rule": alert.rule, "severity": alert.severity, "key": alert.key, "message": alert.message,
               "suppressed": alert.suppressed}
    return JournalRecord(Kind.ALERT, f"{alert.rule}:{alert.key}:{alert.now_ns}", run_id, route, -1, alert.now_ns,
                         payload)
