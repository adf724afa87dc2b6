"""Reconciliation's I/O shell: the journal's orders and fills, each venue's answers, then ``core.reconcile``.

Reading: ``JournalBackend.records`` (or ``JournalActor.records``, same signature) for the run ids given -- a
restarted host has a new run id, and the previous runs' orders are still its own. Asking: every order that is
not terminal, and those that ended within ``recent_ns`` (for fills the journal may lack), is queried by client
id, at most ``concurrency`` at a time; open orders and balances once per venue. Every call has a timeout; a
call that times out or raises is an answer too (UNKNOWN / unavailable), which the core reports as unverified:
a reconciliation never hangs on a venue and never invents its answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol, TypeVar

from ..core.domain import Side
from ..core.order_fsm import OrderStatus
from ..core.reconcile import (
    EngineView,
    JournalOrder,
    ReconcileConfig,
    ReconcileReport,
    VenueView,
    merge,
    reconcile_venue,
)
from ..core.venue import Fill, OrderEvent, OrderState, QueryOrder, VenueClient
from .journal import JournalRecord, Kind

T = TypeVar("T")
ESTIMATE_SUFFIX = ":est"  # infra.live.gateway books a fill the venue did not detail under "<client id>:est"


class JournalReader(Protocol):
    async def records(self, run_id: str, kind: Kind | str | None = None,
                      since_ns: int | None = None) -> list[JournalRecord]: ...


@dataclass(frozen=True, slots=True)
class VenueAccess:
    client: VenueClient
    symbol_of: Callable[[str], str]  # the engine's BASE-QUOTE -> the venue's symbol (as infra.live.gateway)


# ---- the journal (pure: records in, orders out)
class OrderFold:
    """Orders by client id from intents, order events and fills, folded a batch at a time (a live run reads
    only the records since its last pass; a record read twice changes nothing). An order is its intent
    (venue, symbol, side, qty), the status of its last event (none: INITIALIZED), and the fills booked for it:
    the trade ids of its FILL events and FILL records, their quantities summed. Events of an id with no
    intent are kept until it comes, and skipped by ``orders`` (the intent is written before the order is
    sent, so there is none only for an order never sent)."""

    def __init__(self) -> None:
        self.intents: dict[str, JournalRecord] = {}
        self.last: dict[str, JournalRecord] = {}
        self.fills: dict[str, dict[str, JournalRecord]] = {}
        self.last_ns: dict[str, int] = {}

    def add(self, records: Iterable[JournalRecord]) -> OrderFold:
        for r in records:
            cid = r.client_id
            if cid is None:
                continue
            self.last_ns[cid] = max(self.last_ns.get(cid, 0), r.ts_local)
            if r.kind is Kind.INTENT:
                self.intents[cid] = r
            elif r.kind is Kind.ORDER_EVENT:
                last = self.last.get(cid)
                if last is None or r.payload["seq"] > last.payload["seq"]:
                    self.last[cid] = r
                if r.payload.get("event") == "fill" and r.payload.get("trade_id"):
                    self.fills.setdefault(cid, {}).setdefault(r.payload["trade_id"], r)
            elif r.kind is Kind.FILL and r.payload.get("trade_id"):
                self.fills.setdefault(cid, {})[r.payload["trade_id"]] = r
        return self

    def order(self, cid: str) -> JournalOrder:
        return _order(self.intents[cid], self.last.get(cid), self.fills.get(cid, {}), self.last_ns[cid])

    def orders(self) -> dict[str, JournalOrder]:
        return {cid: self.order(cid) for cid in self.intents}

    def last_seq(self, cid: str) -> int:
        last = self.last.get(cid)
        return int(last.payload["seq"]) if last is not None else 0

    def forget(self, cid: str) -> None:
        for table in (self.intents, self.last, self.fills, self.last_ns):
            table.pop(cid, None)


def journal_orders(records: Iterable[JournalRecord]) -> dict[str, JournalOrder]:
    """Orders by client id from a run's records (``OrderFold`` over all of them at once)."""
    return OrderFold().add(records).orders()


def _order(intent: JournalRecord, last: JournalRecord | None, fills: Mapping[str, JournalRecord],
           last_ns: int) -> JournalOrder:
    p = intent.payload
    booked = sum((Decimal(f.payload["qty"]) for f in fills.values()), Decimal(0))
    status = OrderStatus(last.payload["status"]) if last else OrderStatus.INITIALIZED
    filled = max(booked, Decimal(last.payload["filled_qty"])) if last else booked
    quote = p["symbol"].partition("-")[2]
    estimated = tuple(Fill(tid, Decimal(f.payload["price"]), Decimal(f.payload["qty"]),
                           Decimal(f.payload.get("fee") or 0), quote, f.ts_venue)
                      for tid, f in fills.items() if tid.endswith(ESTIMATE_SUFFIX))
    return JournalOrder(p["client_id"], p["venue"], intent.route, p["symbol"], Side[p["side"]], Decimal(p["qty"]),
                        status, filled, frozenset(fills), last_ns, estimated)


async def engine_view(reader: JournalReader, run_ids: Sequence[str], balances: Mapping[tuple[str, str], Decimal],
                      routes: Iterable[str] = ()) -> EngineView:
    """The engine's side: every order the runs journaled, the ledger's expected totals, the live routes."""
    records: list[JournalRecord] = []
    for run_id in run_ids:
        for kind in (Kind.INTENT, Kind.ORDER_EVENT, Kind.FILL):
            records += await reader.records(run_id, kind)
    return EngineView(journal_orders(records), dict(balances), frozenset(routes))


def to_ask(orders: Iterable[JournalOrder], now_ns: int, recent_ns: int) -> list[JournalOrder]:
    """The orders to query: not terminal, or last acted on within ``recent_ns``."""
    return [o for o in orders if not o.status.is_terminal or now_ns - o.last_ns <= recent_ns]


# ---- a venue
async def _timed(call: Awaitable[T], timeout_s: float) -> T | str:
    """The call's result, or why it has none (timed out, raised): reconciliation reports, it does not crash."""
    try:
        return await asyncio.wait_for(call, timeout_s)
    except TimeoutError:
        return f"timed out after {timeout_s:g} s"
    except Exception as exc:  # any failure of the venue call is an answer: unverified
        return f"{type(exc).__name__}: {exc}"


async def ask_orders(access: VenueAccess, orders: Iterable[JournalOrder], now_ns: int, *, timeout_s: float = 5.0,
                     concurrency: int = 4) -> dict[str, OrderEvent]:
    """Query ``orders`` (those of this venue) by client id, ``concurrency`` at a time: the answer per client id
    (UNKNOWN with the reason when the call timed out or failed)."""
    client = access.client
    gate = asyncio.Semaphore(concurrency)
    mine = [o for o in orders if o.venue == client.venue]

    async def ask(o: JournalOrder) -> OrderEvent:
        symbol = access.symbol_of(o.symbol)
        async with gate:
            got = await _timed(client.query(QueryOrder(o.client_id, symbol, now_ns)), timeout_s)
        if isinstance(got, str):
            return OrderEvent(client.venue, o.client_id, None, symbol, OrderState.UNKNOWN, Decimal(0), detail=got)
        return got

    answers = await asyncio.gather(*(ask(o) for o in mine))
    return {o.client_id: a for o, a in zip(mine, answers, strict=True)}


async def venue_view(access: VenueAccess, orders: Iterable[JournalOrder], now_ns: int, *, timeout_s: float = 5.0,
                     concurrency: int = 4) -> VenueView:
    """Query ``orders`` (those of this venue) by client id, then open orders and balances."""
    client = access.client
    answers = await ask_orders(access, orders, now_ns, timeout_s=timeout_s, concurrency=concurrency)
    listed = await _timed(client.open_orders(), timeout_s)
    held = await _timed(client.balances(), timeout_s)
    errors = tuple(f"{what}: {got}" for what, got in (("open orders", listed), ("balances", held))
                   if isinstance(got, str))
    return VenueView(client.venue, now_ns, answers, None if isinstance(listed, str) else list(listed),
                     None if isinstance(held, str) else list(held), errors=errors)


async def reconcile(venues: Sequence[VenueAccess], reader: JournalReader, run_ids: Sequence[str],
                    balances: Mapping[tuple[str, str], Decimal], cfg: ReconcileConfig, clock: Callable[[], int], *,
                    routes: Iterable[str] = (), recent_ns: int = 300_000_000_000, timeout_s: float = 5.0,
                    concurrency: int = 4) -> ReconcileReport:
    """One pass over every venue (in parallel). ``balances``: (venue, asset) -> the total the ledger expects
    (``core.reconcile.ledger_balances``). The clock is read once, before asking: a "not found" is measured
    against the grace period from then, never from a later moment."""
    engine = await engine_view(reader, run_ids, balances, routes)
    now = clock()
    ask = to_ask(engine.orders.values(), now, recent_ns)
    views = await asyncio.gather(*(venue_view(v, ask, now, timeout_s=timeout_s, concurrency=concurrency)
                                   for v in venues))
    return merge([reconcile_venue(engine, view, cfg) for view in views])
