"""A RouteActor's snapshot: the compiled engine's arrays plus what the actor shell keeps around them.

Taken at the end of a window (see ``RouteActor._save``): every event before ``processed_until`` is applied;
what was taken in but not applied (windows Ray delivered while the route awaited something) is kept with the
inbox position, so a restore resumes exactly there; and every order still in flight is listed with the
order itself, so that a restart can ask the venue what became of it.

The kernel's history (fills, trips, premium series) only grows, so it is not in every snapshot: once enough
settled rows have piled up they are saved once, as a *segment* beside the snapshots (``History``), and each
snapshot holds only the rows after the segments plus the newest segment's id. A window's snapshot then costs
what changed, not the run's length (issue 15 §5: multi-hour soaks saved the whole history every window, and
the route host stopped answering pings).
"""

from __future__ import annotations

import secrets
from collections import deque
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.domain import Side, Venue
from ..core.events import EventBatch
from ..core.ledger import units_to_dec
from ..core.order_fsm import EventKind, Order, OrderEvent
from ..core.paper_venue import NO_MORE_EVENTS, VenueOrder
from ..core.route_state import HISTORY, RouteState
from .feed import COLUMNS

if TYPE_CHECKING:
    from .recovery import Snapshots
    from .route import RouteActor

SOURCES = ("fx", "upbit", "binance")
SEGMENT_BYTES = 32 * 1024  # settled history rows kept in the snapshots until they are worth a segment


class HistoryBroken(RuntimeError):
    """A snapshot refers to history segments that no store holds (or that do not join up)."""


class History:
    """Where a route's saved history segments end. Each segment holds the settled rows [lo, hi) of every
    history group and the id of the segment before it; the snapshot names the newest (``head``) and how many
    rows the segments hold (``counts``). Ids are unique per incarnation (a random token), so a segment
    written by an incarnation that died before its snapshot is never mistaken for one a snapshot refers to,
    and nothing is ever overwritten. Segments are not trimmed with the snapshots: every kept snapshot needs
    all of its chain; they go with the run (Redis TTL, ``FileSnapshotStore.expire_runs``)."""

    def __init__(self) -> None:
        self.token = secrets.token_hex(6)
        self.n = 0
        self.head = ""  # the newest segment's id ("" before the first)
        self.counts = dict.fromkeys(HISTORY, 0)  # rows the segments hold, per group
        self.segments = 0  # written by this incarnation
        self.fallbacks = 0  # restores that fell back to an older snapshot: the newest one's chain was broken

    def save(self, state: RouteState, snaps: Snapshots) -> None:
        """Write the settled rows the segments lack as one segment, once they weigh ``SEGMENT_BYTES``."""
        settled = state.settled_rows()
        rows = state.rows(self.counts, settled)
        size = sum(a.nbytes for a in rows.values())
        if size == 0 or size < SEGMENT_BYTES:
            return
        part = f"{self.token}-{self.n}"
        self.n += 1
        seg = {"prev": self.head, "lo": [self.counts[g] for g in HISTORY], "hi": [settled[g] for g in HISTORY],
               **rows}
        if snaps.save_part(part, seg):  # else the rows stay in the snapshots until a segment is taken
            self.head, self.counts = part, settled
            self.segments += 1

    def manifest(self) -> dict[str, Any]:
        return {"head": self.head, "counts": [self.counts[g] for g in HISTORY]}

    def restore(self, manifest: dict[str, Any] | None, snaps: Snapshots) -> dict[str, np.ndarray] | None:
        """The rows the snapshot's segments hold, per history array (None without segments); the chain
        continues from them."""
        if manifest is None or not manifest["head"]:
            return None
        counts = [int(x) for x in manifest["counts"]]
        chain = _chain(manifest, snaps.load_parts(), snaps.name)
        self.head, self.counts = str(manifest["head"]), dict(zip(HISTORY, counts, strict=True))
        names = [name for group in HISTORY.values() for name in group]
        return {name: np.concatenate([np.asarray(seg[name]) for seg in chain]) for name in names}


def _chain(manifest: dict[str, Any], parts: dict[str, dict[str, Any]], name: str) -> list[dict[str, Any]]:
    """The segments a snapshot's history manifest refers to, oldest first; HistoryBroken if one is missing or
    they do not join up from row 0 to the snapshot's counts."""
    counts = [int(x) for x in manifest["counts"]]
    chain: list[dict[str, Any]] = []
    part = str(manifest["head"])
    while part:
        if part not in parts:
            raise HistoryBroken(f"route {name}: history segment {part} is in no store")
        chain.append(parts[part])
        part = str(parts[part]["prev"])
    chain.reverse()
    at = [0] * len(HISTORY)
    for seg in chain:
        if [int(x) for x in seg["lo"]] != at:
            raise HistoryBroken(f"route {name}: history segments do not join up at {at}")
        at = [int(x) for x in seg["hi"]]
    if at != counts:
        raise HistoryBroken(f"route {name}: history segments end at {at}, the snapshot at {counts}")
    return chain


def history_problem(snap: Any, parts: dict[str, dict[str, Any]], name: str) -> str | None:
    """Why a snapshot's history cannot be rebuilt from ``parts`` (None: it can, or it has none)."""
    manifest = snap.get("history") if isinstance(snap, dict) else None
    if manifest is None or not manifest["head"]:
        return None
    try:
        _chain(manifest, parts, name)
    except HistoryBroken as exc:
        return str(exc)
    return None


def route_snapshot(r: RouteActor) -> dict[str, Any]:
    in_flight = {slot: r.sent_orders[slot] for slot, (_, cid, _) in r.sent.items()
                 if not r.orders[cid].is_terminal}
    counts = dict(r.order_counts)
    for o in r.orders.values():
        if o.is_terminal:
            counts[o.status.name] = counts.get(o.status.name, 0) + 1
    if r.snaps is not None:
        r.history.save(r.state, r.snaps)
    return {
        "state": r.state.to_snapshot(r.history.counts),
        "history": r.history.manifest(),
        "next_seqs": {s: r.inbox.next_seq(s) for s in SOURCES},
        "upto": dict(r.upto),
        "buffered": {s: _columns(r.buffers[s]) for s in SOURCES},  # taken in, not applied yet
        "applied_window": r.applied_window,
        "processed_until": r.processed_until,
        "first_ts": r.first_ts, "last_ts": r.last_ts,
        "client_seq": r.ids.state(),
        "issued": list(r.issued), "n_issued": r.n_issued,
        "sent": [[slot, list(key), cid] for slot, (key, cid, _) in sorted(r.sent.items())],
        "in_flight": [[slot, o.client_id, o.symbol, int(o.side), o.qty_units, o.arrive_ns, o.expire_ns]
                      for slot, o in sorted(in_flight.items())],
        "order_counts": counts,
        "reported_opens": r.feed.reported_opens, "reported_closes": sorted(r.feed.reported_closes),
        "net_krw": r.net_krw, "wins": r.wins, "funded": r.funded, "risk_asks": r.risk_asks,
        "unhedged_ns_total": r.unhedged_ns_total, "max_unhedged_krw": r.max_unhedged_krw,
        "risk_rejections": list(r.risk_rejections), "flatten_requests": r.flatten_requests,
        "events_in": dict(r.events_in),
        "recovered_orders": r.recovered_orders, "resent_orders": r.resent_orders, "restores": r.restores,
        "restore_sources": list(r.restore_sources),
        "snapshot_fallbacks": r.snap_fallbacks_before + (r.snaps.fallbacks if r.snaps is not None else 0),
    }


def _columns(batches: list[EventBatch]) -> list[np.ndarray]:
    """A source's buffered batches as one batch's columns (they are in time order: one window after another)."""
    if not batches:
        return []
    return [np.concatenate([getattr(b, c) for b in batches]) for c in COLUMNS]


def _batches(columns: list[np.ndarray]) -> list[EventBatch]:
    return [EventBatch(*(np.asarray(c) for c in columns))] if columns else []


def restore_route(r: RouteActor, snap: dict[str, Any]) -> None:
    """Put ``snap`` back into a freshly built RouteActor (its constructor ran with the same arguments)."""
    assert r.snaps is not None
    snaps = r.snaps
    try:
        history = r.history.restore(snap.get("history"), snaps)
    except HistoryBroken as exc:  # a segment lost (both stores): an older snapshot whose chain is whole, whose
        # windows the feeds resend (as after a corrupt snapshot); none: the restart fails, loudly
        r.log.warning("route snapshot unusable ({}): falling back to an older one", exc)
        parts = snaps.load_parts()
        older = snaps.load(accept=lambda p: history_problem(p, parts, snaps.name))
        if older is None:
            raise
        snap = older
        r.history.fallbacks += 1
        history = r.history.restore(snap.get("history"), snaps)
    r.state = RouteState.from_snapshot(snap["state"], history)
    r.processed_until = int(snap["processed_until"])
    r.inbox.restore({str(k): int(v) for k, v in snap["next_seqs"].items()})  # the inbox as it was, with what
    r.upto = {str(k): int(v) for k, v in snap["upto"].items()}  # was taken in but not applied
    r.buffers = {s: _batches(snap["buffered"][s]) for s in SOURCES}
    r.applied_window = int(snap["applied_window"])
    r.saved_seqs = {str(k): int(v) for k, v in snap["next_seqs"].items()}
    r.first_ts, r.last_ts = int(snap["first_ts"]), int(snap["last_ts"])
    r.ids.restore(int(snap["client_seq"]))
    r.issued = deque(snap["issued"], maxlen=r.issued.maxlen)
    r.n_issued = int(snap.get("n_issued", len(snap["issued"])))
    r.order_counts = {str(k): int(v) for k, v in snap["order_counts"].items()}
    r.orders = {}
    r.sent_orders = {}
    r.sent = {}
    keys = {int(slot): (tuple(int(x) for x in key), str(cid)) for slot, key, cid in snap["sent"]}
    for slot, cid, symbol, side, qty, arrive, expire in snap["in_flight"]:
        order = VenueOrder(str(cid), str(symbol), Side(int(side)), int(qty), int(arrive), int(expire))
        venue = Venue.UPBIT if order.symbol.endswith("-KRW") else Venue.BINANCE
        o = Order(order.client_id, venue, order.symbol, order.side, units_to_dec(order.qty_units))
        now = r.restored_at_ns
        r.orders[order.client_id] = o.apply(OrderEvent(EventKind.SUBMIT, -1, now)).apply(
            OrderEvent(EventKind.TIMEOUT, -1, now))  # unknown until the venue's record says
        r.sent_orders[int(slot)] = order
        r.sent[int(slot)] = (keys[int(slot)][0], order.client_id, None)
    r.feed.reported_opens = int(snap["reported_opens"])
    r.feed.reported_closes = {int(t) for t in snap["reported_closes"]}
    r.net_krw = Decimal(snap["net_krw"])
    r.wins = int(snap["wins"])
    r.funded = bool(snap["funded"])
    r.risk_asks = int(snap["risk_asks"])
    r.unhedged_ns_total = int(snap["unhedged_ns_total"])
    r.max_unhedged_krw = Decimal(snap["max_unhedged_krw"])
    r.risk_rejections = deque((str(x) for x in snap["risk_rejections"]), maxlen=r.risk_rejections.maxlen)
    r.flatten_requests = int(snap["flatten_requests"])
    r.events_in = {str(k): int(v) for k, v in snap["events_in"].items()}
    r.recovered_orders = int(snap["recovered_orders"])
    r.resent_orders = int(snap["resent_orders"])
    r.restores += int(snap["restores"])
    r.restore_sources = [str(x) for x in snap["restore_sources"]] + r.restore_sources
    r.snap_fallbacks_before = int(snap["snapshot_fallbacks"])
    if r.processed_until >= NO_MORE_EVENTS:
        r.finished.set()  # a resumed run that had already ended
