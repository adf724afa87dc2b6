"""Reconciliation on the live path (issue 13): at start, on a schedule and at stop, the journal's orders and
fills and each venue's balances against what the venues say (``core.reconcile`` through ``infra.reconcile_io``).

Why it is built so:

* A pass reads with no order in flight: new sends wait at a :class:`SendGate` while it reads, so the journal
  plus the venues' answers by client id explain the balances exactly (a fill landing between two reads would
  look like money moved unseen). A leg the gateway has settled but its route has not booked yet is asked like
  any other, and the gateway's answer (its fills, with prices) stands for the fills the query may not list.
* The first pass runs before any route trades; the balances it reads are the run's inventory baseline. Later
  passes expect baseline + the fills this run booked, per venue and asset (fees in the asset the venue charges:
  Upbit the quote, Binance the asset received). A fill the gateway had to estimate (no price detail: ``:est``)
  is known only within a band; the balance it moves is taken from the venue when within it (an
  ``adjustment`` in the summary), a mismatch beyond it.
* Bounded: the journal is read incrementally (rows since the last pass, minus a margin for late writes) and
  folded; an order is forgotten once terminal and older than ``recent_s`` (its fills stay in the running
  balance), so a pass asks about the non-terminal and the recent orders, never the whole run.
* Effects: a halting mismatch (P0/P1) alerts (``reconcile_mismatch`` / ``reconcile_unverified``) and holds the
  routes it names -- every route for one that names only a venue -- until a pass no longer names them. An
  unknown outcome of an order no live route owns (an earlier run's: found by client id, never resent) is
  booked into the journal; a live route books its own from its gateway's answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from loguru import logger

from ...core.order_fsm import EXACT
from ...core.reconcile import (
    HALTING,
    BalanceCheck,
    EngineView,
    JournalOrder,
    OrderCheck,
    ReconcileConfig,
    ReconcileReport,
    Resolution,
    VenueIssue,
    build_report,
    describe,
    merge,
    reconcile_venue,
)
from ...core.venue import Balance, Fill
from ..journal import JournalRecord, Kind
from ..reconcile_io import ESTIMATE_SUFFIX, OrderFold, VenueAccess, ask_orders, to_ask, venue_view

ZERO = Decimal(0)
NS = 1_000_000_000


@dataclass(frozen=True)
class ReconcileSettings:
    """How a live host reconciles. ``every_s`` <= 0: only at start and stop."""

    every_s: float = 30.0
    recent_s: float = 120.0  # a terminal order is asked about this long after it last moved (late fills)
    grace_s: float = 10.0  # "not found" is believed this long after the engine last acted on an order
    timeout_s: float = 5.0  # per venue call
    drain_s: float = 5.0  # a pass waits this long for the orders in flight before reading the balances
    margin_s: float = 60.0  # journal rows are re-read this far back (a row written late with an earlier stamp)
    tolerance: Mapping[str, Decimal] = field(default_factory=dict)  # per asset (dust); exact otherwise
    estimate_band: Decimal = Decimal("0.05")  # an estimated fill's price/fee known within this share of it
    prior_runs: tuple[str, ...] = ()  # earlier incarnations' run ids: their orders are checked (and booked) too
    fee_in: Mapping[str, str] = field(default_factory=lambda: {"upbit": "quote", "binance": "received"})


# ---- the send gate
class SendGate:
    """New orders wait here while a pass reads the venues; ``hold`` waits for the ones in flight to finish."""

    def __init__(self) -> None:
        self._open = asyncio.Event()
        self._open.set()
        self._idle = asyncio.Event()
        self._idle.set()
        self.in_flight = 0
        self.holds = self.delayed = 0
        self.held_ms_max = self.held_ms_total = 0.0

    async def enter(self) -> None:
        if not self._open.is_set():
            self.delayed += 1
        while not self._open.is_set():  # re-checked: a new hold may close it between the wake-up and now
            await self._open.wait()
        self.in_flight += 1
        self._idle.clear()

    def leave(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            self._idle.set()

    @contextlib.asynccontextmanager
    async def hold(self, drain_s: float) -> AsyncIterator[bool]:
        """Closed for the block; yields whether every order in flight finished within ``drain_s``."""
        self._open.clear()
        t0 = time.perf_counter()
        try:
            try:
                await asyncio.wait_for(self._idle.wait(), drain_s)
                drained = True
            except TimeoutError:
                drained = False
            yield drained
        finally:
            self._open.set()
            held = (time.perf_counter() - t0) * 1e3
            self.holds += 1
            self.held_ms_total += held
            self.held_ms_max = max(self.held_ms_max, held)

    def stats(self) -> dict[str, Any]:
        return {"holds": self.holds, "orders_delayed": self.delayed, "held_ms_max": round(self.held_ms_max, 3),
                "held_ms_mean": round(self.held_ms_total / self.holds, 3) if self.holds else None}


class GatedVenue:
    """A LiveGateway behind the gate, with the gateway's shape for the route (``submit``, ``lookup``)."""

    def __init__(self, gateway: Any, gate: SendGate) -> None:
        self.gateway, self.gate = gateway, gate

    async def submit(self, order: Any) -> Any:
        await self.gate.enter()
        try:
            return await self.gateway.submit(order)
        finally:
            self.gate.leave()

    async def lookup(self, client_id: str) -> Any:
        return await self.gateway.lookup(client_id)


# ---- the journal, folded incrementally
class JournalState:
    """The journal's orders still worth asking about, and what this run's booked fills did to each balance."""

    def __init__(self, run_id: str, run_ids: Sequence[str], fee_in: Mapping[str, str]) -> None:
        self.run_id, self.run_ids, self.fee_in = run_id, tuple(run_ids), fee_in
        self.fold = OrderFold()
        self.cursor_ns: int | None = None
        self.deltas: dict[tuple[str, str], Decimal] = {}  # (venue, asset) -> change booked by this run
        self.estimated: dict[tuple[str, str], Decimal] = {}  # (venue, asset) -> estimated amounts since last pass
        self._counted: dict[str, set[str]] = {}  # client id -> trade ids already in ``deltas``
        # client id -> trade id -> its FILL order event: the venue's fee (a FILL record's is the model's)
        self._venue_fills: dict[str, dict[str, JournalRecord]] = {}
        self.verified: set[str] = set()  # terminal orders a pass found as the journal has them: not asked again
        self.rows_read = 0

    async def read(self, journal: Any, now_ns: int, margin_ns: int) -> None:
        """Fold the rows written since the last read (``journal``: a JournalActor handle, or ``_Local``)."""
        since = None if self.cursor_ns is None else self.cursor_ns - margin_ns
        for run_id in self.run_ids:
            for kind in (Kind.INTENT, Kind.ORDER_EVENT, Kind.FILL):
                rows = await journal.records.remote(run_id, kind, since)
                self.rows_read += len(rows)
                self.fold.add(rows)
                for r in rows:
                    if kind is Kind.ORDER_EVENT and r.payload.get("event") == "fill" and r.client_id:
                        self._venue_fills.setdefault(r.client_id, {})[r.payload.get("trade_id") or ""] = r
        self.cursor_ns = now_ns
        for cid, intent in self.fold.intents.items():
            if intent.run_id == self.run_id:
                self._count(cid, intent.payload)

    def _count(self, cid: str, intent: Mapping[str, Any]) -> None:
        """Book this run's new fills of ``cid`` into the running balance changes (once per trade id)."""
        counted = self._counted.setdefault(cid, set())
        for tid, rec in self.fold.fills.get(cid, {}).items():
            if tid in counted:
                continue
            counted.add(tid)
            p = self._venue_fills.get(cid, {}).get(tid, rec).payload
            fill = Fill(tid, Decimal(p["price"]), Decimal(p["qty"]), Decimal(p.get("fee") or 0),
                        str(p.get("fee_asset") or ""), rec.ts_venue)
            self.apply(intent["venue"], intent["symbol"], intent["side"], fill)

    def fee_asset(self, venue: str, symbol: str, side: str) -> str:
        """The asset a venue takes its fee in when the fill does not say: the quote, or the asset received."""
        base, _, quote = symbol.partition("-")
        return quote if self.fee_in.get(venue) == "quote" or side != "BUY" else base

    def apply(self, venue: str, symbol: str, side: str, f: Fill, into: dict[tuple[str, str], Decimal] | None = None
              ) -> None:
        """A fill's change to the venue's balances (``into``: another table than the booked one)."""
        out = self.deltas if into is None else into
        base, _, quote = symbol.partition("-")
        buy = side == "BUY"
        notional = EXACT.multiply(f.price, f.qty)
        fee_asset = f.fee_asset or self.fee_asset(venue, symbol, side)
        for asset, amount in ((base, f.qty if buy else -f.qty), (quote, -notional if buy else notional),
                              (fee_asset, -f.fee)):
            if amount:
                out[(venue, asset)] = EXACT.add(out.get((venue, asset), ZERO), amount)
        if f.trade_id.endswith(ESTIMATE_SUFFIX):  # price and fee unknown: the base within the fee, the quote
            for asset, amount in ((base, f.qty), (quote, notional)):  # within the price band
                self.estimated[(venue, asset)] = EXACT.add(self.estimated.get((venue, asset), ZERO), amount)

    def forget_old(self, now_ns: int, recent_ns: int) -> None:
        """Orders terminal and older than ``recent_ns`` are done: their fills stay in ``deltas``."""
        for cid, order in list(self.fold.orders().items()):
            if order.status.is_terminal and now_ns - order.last_ns > recent_ns:
                self.fold.forget(cid)
                self._counted.pop(cid, None)
                self._venue_fills.pop(cid, None)
                self.verified.discard(cid)


# ---- the loop
@dataclass
class Halt:
    route: str
    since_ns: int
    reasons: list[str]
    until_ns: int | None = None


class ReconcileLoop:
    """One live host's reconciliation. ``journal``: the run's JournalActor handle (``_Local`` in-process);
    ``hold``/``release``: stop / allow a route's new opens; ``owned``:
    whether a live route owns a client id (it books its own answers); ``gateway_fills``: the settled answer's
    fills of a client id the host's gateway holds; ``flush``: the journal has every record submitted so far."""

    def __init__(self, venues: Sequence[VenueAccess], journal: Any, flush: Callable[[], Awaitable[bool]],
                 run_id: str, routes: Sequence[str], gate: SendGate, settings: ReconcileSettings, *,
                 hold: Callable[[str, str], None], release: Callable[[str], None],
                 alert: Callable[[str, str, str], None], owned: Callable[[str], bool] = lambda _cid: False,
                 gateway_fills: Callable[[str], Sequence[Fill]] = lambda _cid: (),
                 clock: Callable[[], int] = time.time_ns) -> None:
        self.venues, self.journal, self.flush, self.run_id = venues, journal, flush, run_id
        self.routes, self.gate, self.settings, self.clock = tuple(routes), gate, settings, clock
        self._hold, self._release, self._alert, self.owned, self.gateway_fills = hold, release, alert, owned, \
            gateway_fills
        self.cfg = ReconcileConfig(int(settings.grace_s * NS), dict(settings.tolerance))
        self.state = JournalState(run_id, (run_id, *settings.prior_runs), settings.fee_in)
        self.baseline: dict[tuple[str, str], Decimal] = {}
        self.balances: dict[tuple[str, str], Decimal] = {}  # the latest balances read (route assets)
        self.baseline_ns = 0
        self.based: set[str] = set()  # venues whose baseline is taken
        self.passes = self.clean_passes = self.booked = 0
        self.mismatches: dict[str, int] = {}
        self.adjustments: list[dict[str, str]] = []
        self.halts: list[Halt] = []
        self.held: dict[str, Halt] = {}
        self.last: ReconcileReport | None = None
        self.pass_ms: list[float] = []
        self.errors: list[str] = []
        self._task: asyncio.Task[None] | None = None
        self.final = False
        self._one = asyncio.Lock()  # one pass at a time (the schedule, a drill's call, the stop)

    # ---- running
    async def start(self) -> ReconcileReport:
        """The first pass (the baseline), before any route trades; then the schedule."""
        report = await self.run_pass()
        if self.settings.every_s > 0:
            self._task = asyncio.create_task(self._every())
        return report

    async def _every(self) -> None:
        while True:
            await asyncio.sleep(self.settings.every_s)
            await asyncio.shield(self.run_pass())  # a stop waits for a pass under way, never cuts it

    async def stop(self) -> ReconcileReport:
        """The last pass (the routes have stopped): the run ends reconciled, or says what is not."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.final = True  # the routes are done: what they did not book, this pass books
        return await self.run_pass()

    async def run_pass(self) -> ReconcileReport:
        """One pass; a pass that fails (journal unreadable...) is itself unverified: every route holds."""
        async with self._one:
            return await self._run_pass()

    async def _run_pass(self) -> ReconcileReport:
        t0 = time.perf_counter()
        try:
            report = await self._pass()
        except Exception as exc:  # whatever failed, nothing was verified: say it and hold, never crash the host
            logger.exception("reconciliation pass failed")
            self.errors.append(f"{type(exc).__name__}: {exc}"[:300])
            issue = VenueIssue("journal", f"pass failed: {self.errors[-1]}")
            report = build_report(self.clock(), (), (), (issue,), frozenset(self.routes))
        self.pass_ms.append((time.perf_counter() - t0) * 1e3)
        for kept in (self.pass_ms, self.adjustments, self.errors):  # a long run keeps the latest, not all
            del kept[:-1000]
        self._effects(report)
        return report

    async def _pass(self) -> ReconcileReport:
        s = self.settings
        async with self.gate.hold(s.drain_s) as drained:  # what can still move: asked with no order in flight
            flushed = await self.flush()
            now = self.clock()
            await self.state.read(self.journal, now, int(s.margin_s * NS))
            orders = self.state.fold.orders()
            ask = [o for o in to_ask(orders.values(), now, int(s.recent_s * NS))
                   if o.client_id not in self.state.verified]
            unsure = [o for o in ask if not o.status.is_terminal]
            views = await asyncio.gather(*(venue_view(v, unsure, now, timeout_s=s.timeout_s) for v in self.venues))
        # orders the journal has settled cannot move at the venue any more: asked after the gate reopens
        settled = [o for o in ask if o.status.is_terminal]
        later = await asyncio.gather(*(ask_orders(v, settled, now, timeout_s=s.timeout_s) for v in self.venues))
        views = [replace(v, answers={**v.answers, **more}, fills=self._settled_fills(ask, v.venue))
                 for v, more in zip(views, later, strict=True)]
        engine = EngineView(orders, self._expected(), frozenset(self.routes))
        based = set(self.based)  # venues whose baseline is taken: the others' balances become it now
        report = merge([reconcile_venue(engine, v, self.cfg, with_balances=v.venue in based) for v in views])
        self._read_balances(views, now)
        report = self._within_estimates(report)
        issues = [VenueIssue("*", what) for what, ok in (
            ("orders still in flight after the drain: balances may move under the pass", drained),
            ("the journal did not flush in time: its newest rows may be missing", flushed)) if not ok]
        if issues:
            report = build_report(report.ts_local, report.orders, report.balances, (*report.issues, *issues),
                                  frozenset(self.routes))
        await self._book(report, orders, now)
        self.state.verified |= {c.client_id for c in report.orders
                                if c.resolution is Resolution.MATCH and orders[c.client_id].status.is_terminal}
        self.state.forget_old(now, int(s.recent_s * NS))
        return report

    def _settled_fills(self, ask: Iterable[JournalOrder], venue: str) -> dict[str, Sequence[Fill]]:
        """The gateway's fills of this run's unsettled orders on ``venue`` (their route has not booked them)."""
        out: dict[str, Sequence[Fill]] = {}
        scratch: dict[tuple[str, str], Decimal] = {}  # the core books these as ``unbooked``; only estimates count
        for o in ask:
            if o.venue == venue and not o.status.is_terminal and (fills := self.gateway_fills(o.client_id)):
                asset = self.state.fee_asset(venue, o.symbol, o.side.name)
                out[o.client_id] = fills = [f if f.fee_asset else replace(f, fee_asset=asset) for f in fills]
                for f in fills:
                    self.state.apply(venue, o.symbol, o.side.name, f, into=scratch)
        return out

    def _expected(self) -> dict[tuple[str, str], Decimal]:
        out = dict(self.baseline)
        for key, amount in self.state.deltas.items():
            out[key] = EXACT.add(out.get(key, ZERO), amount)
        return out

    def _read_balances(self, views: Sequence[Any], now: int) -> None:
        """Keep the route assets' balances. A venue's first balances read (normally at the first pass, before
        any route trades) are its baseline, less what this run booked there already (nothing, normally)."""
        for v in views:
            if v.balances is None:
                continue
            assets = {*self.routes, "KRW" if v.venue == "upbit" else "USDT"}
            for a in assets:
                self.balances[(v.venue, a)] = _total(v.balances, a)
            if v.venue not in self.based:
                self.based.add(v.venue)
                self.baseline_ns = self.baseline_ns or now
                for a in assets:
                    booked = self.state.deltas.get((v.venue, a), ZERO)
                    self.baseline[(v.venue, a)] = EXACT.subtract(self.balances[(v.venue, a)], booked)

    def _within_estimates(self, report: ReconcileReport) -> ReconcileReport:
        """A balance off only by what estimated fills leave unknown is the venue's figure: adopted, reported."""
        est, self.state.estimated = self.state.estimated, {}
        checks = []
        for b in report.balances:
            allow = EXACT.multiply(est.get((b.venue, b.asset), ZERO), self.settings.estimate_band)
            if b.severity is not None and allow and abs(b.diff) <= allow:
                self.baseline[(b.venue, b.asset)] = EXACT.add(self.baseline.get((b.venue, b.asset), ZERO), b.diff)
                self.adjustments.append({"venue": b.venue, "asset": b.asset, "diff": format(b.diff, "f"),
                                         "allowed": format(allow, "f")})
                b = replace(b, severity=None)
            checks.append(b)
        return build_report(report.ts_local, report.orders, tuple(checks), report.issues, frozenset(self.routes))

    async def _book(self, report: ReconcileReport, orders: Mapping[str, JournalOrder], now: int) -> None:
        """Journal the venue's answer for unsettled orders no live route will book: earlier runs', and at the
        last pass (the routes stopped) this run's too -- a leg sent as the feeds stopped is never booked by its
        route. Then fold them in, so the balances expected include them."""
        records: list[JournalRecord] = []
        for c in report.orders:
            if c.resolution not in (Resolution.RESOLVED, Resolution.NOT_FOUND) or (
                    not self.final and self.owned(c.client_id)):
                continue
            intent = self.state.fold.intents.get(c.client_id)
            if intent is None:
                continue
            records += booking_records(c, orders[c.client_id], intent, self.state.fold.last_seq(c.client_id),
                                       self.clock())
            self.booked += 1
        if records:
            await self.journal.submit.remote(records)
            await self.flush()
            await self.state.read(self.journal, now, int(self.settings.margin_s * NS))

    # ---- effects
    def _effects(self, report: ReconcileReport) -> None:
        self.passes += 1
        self.clean_passes += report.clean
        self.last = report
        for m in report.mismatches:
            kind = m.resolution.value if isinstance(m, OrderCheck) else (
                "balance" if isinstance(m, BalanceCheck) else "venue_issue")
            self.mismatches[kind] = self.mismatches.get(kind, 0) + 1
        for rule, key, message in report.alerts():
            self._alert(rule, key, message)
        named = self._routes_named(report)
        now = self.clock()
        for route in self.routes:
            if route in named and route not in self.held:
                why = [describe(m) for m in report.mismatches if _names(m, route)][:5]
                self.held[route] = h = Halt(route, now, why)
                self.halts.append(h)
                del self.halts[:-1000]
                self._hold(route, "; ".join(why)[:500])
            elif route not in named and route in self.held:
                self.held.pop(route).until_ns = now
                self._release(route)

    def _routes_named(self, report: ReconcileReport) -> set[str]:
        """The host's routes a report halts (a client id carries the route's first 8 characters)."""
        return {r for r in self.routes if r in report.halt_routes or r[:8] in report.halt_routes}

    # ---- reporting
    def status(self) -> dict[str, Any]:
        return {"passes": self.passes, "clean_passes": self.clean_passes, "held": sorted(self.held),
                "last_clean": self.last.clean if self.last is not None else None}

    def summary(self) -> dict[str, Any]:
        ms = sorted(self.pass_ms)
        return {"passes": self.passes, "clean_passes": self.clean_passes, "mismatches": dict(self.mismatches),
                "halts": [{"route": h.route, "since_ns": h.since_ns, "until_ns": h.until_ns, "reasons": h.reasons}
                          for h in self.halts],
                "held": sorted(self.held), "booked": self.booked, "adjustments": self.adjustments[-100:],
                "baseline_ns": self.baseline_ns, "baseline": _by_venue(self.baseline),
                "balances": _by_venue(self.balances), "expected": _by_venue(self._expected()),
                "pass_ms": {"n": len(ms), "p50": ms[len(ms) // 2], "max": ms[-1]} if ms else None,
                "gate": self.gate.stats(), "orders_kept": len(self.state.fold.intents),
                "journal_rows_read": self.state.rows_read, "errors": self.errors[-20:],
                "last": report_dict(self.last) if self.last is not None else None}


def _names(m: Any, route: str) -> bool:
    """Whether halting mismatch ``m`` holds ``route`` (one naming no route holds every route)."""
    who = getattr(m, "route", None)
    return m.severity is not None and m.severity <= HALTING and who in (None, route, route[:8])


def booking_records(c: OrderCheck, order: JournalOrder, intent: JournalRecord, seq: int,
                    now_ns: int) -> list[JournalRecord]:
    """The venue's answer as journal rows of the order's own run: a FILL event per fill to book, then the
    RECONCILE event with the venue's state (not found: REJECTED), so the next pass sees it settled."""
    out = []
    base = {"client_id": c.client_id, "source": "reconcile", "terminal": False}
    filled = order.filled_qty
    for f in c.fills_to_book:
        seq += 1
        filled = EXACT.add(filled, f.qty)
        out.append(JournalRecord(Kind.ORDER_EVENT, f"{c.client_id}:{seq}", intent.run_id, intent.route,
                                 f.ts_venue if f.ts_venue > 0 else -1, now_ns,
                                 base | {"seq": seq, "event": "fill", "trade_id": f.trade_id, "qty": f.qty,
                                         "price": f.price, "fee": f.fee, "fee_asset": f.fee_asset,
                                         "status": order.status, "filled_qty": filled}))
    ev = c.fsm_event(now_ns)
    if ev is not None and ev.venue_status is not None:
        seq += 1
        out.append(JournalRecord(Kind.ORDER_EVENT, f"{c.client_id}:{seq}", intent.run_id, intent.route, c.ts_venue,
                                 now_ns, base | {"seq": seq, "event": "reconcile", "status": ev.venue_status,
                                                 "terminal": ev.venue_status.is_terminal, "reason": ev.reason,
                                                 "filled_qty": max(filled, c.venue_filled_qty)}))
    return out


def report_dict(r: ReconcileReport) -> dict[str, Any]:
    """A report as summary.json holds it: counts, and each mismatch in a line."""
    return {"ts_ns": r.ts_local, "clean": r.clean, "orders": len(r.orders), "balances": len(r.balances),
            "resolutions": _count(c.resolution.value for c in r.orders),
            "mismatches": [{"severity": m.severity.name if m.severity is not None else None,
                            "detail": describe(m)} for m in r.mismatches][:50],
            "halt_routes": sorted(r.halt_routes), "halt_venues": sorted(r.halt_venues)}


def _count(xs: Iterable[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for x in xs:
        out[x] = out.get(x, 0) + 1
    return out


def _total(balances: Sequence[Balance], asset: str) -> Decimal:
    return next((EXACT.add(b.free, b.locked) for b in balances if b.asset == asset), ZERO)


def _by_venue(table: Mapping[tuple[str, str], Decimal]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for (venue, asset), amount in sorted(table.items()):
        out.setdefault(venue, {})[asset] = format(amount, "f")
    return out



# ---- a live host's loop
async def start_reconciliation(host: Any, settings: ReconcileSettings) -> ReconcileLoop | None:
    """Build ``host``'s loop (a LiveHostActor: its venue clients, gateways, routes, journal and alerts) and run
    the first pass; None without a journal (nothing to reconcile against) or with ``every_s`` < 0 (off)."""
    from ...core.ledger import units_to_dec
    from .market import binance_symbol, upbit_code

    if host.journal is None or settings.every_s < 0:
        return None
    c = host.clients
    venues = [VenueAccess(c["upbit"], lambda sym: upbit_code(sym.split("-")[0])),
              VenueAccess(c["binance"], lambda sym: binance_symbol(sym.split("-")[0]))]

    async def flush() -> bool:
        for r in host.routes.values():
            if r.journal is not None and (ref := r.journal.flush()) is not None:
                await ref
        return bool(await host.journal.flush.remote(settings.timeout_s))

    def gateway_fills(cid: str) -> list[Fill]:
        for g in host.gateways.values():
            if (rep := g.settled(cid)) is not None:
                return [Fill(tid, units_to_dec(px), units_to_dec(q), fee, "", rep.ts_venue) for tid, px, q, fee
                        in rep.fills]
        return []

    def alert(rule: str, key: str, message: str) -> None:
        if host.alerts is not None:
            host.alerts.raise_alert.remote(rule, key, message, time.time_ns())

    def hold(route: str, why: str) -> None:
        host.routes[route].holds["reconcile"] = why

    def release(route: str) -> None:
        host.routes[route].holds.pop("reconcile", None)

    loop = ReconcileLoop(venues, host.journal, flush, host.spec.run_id, list(host.routes), host.gate, settings,
                         hold=hold, release=release, alert=alert,
                         owned=lambda cid: any(cid in r.orders for r in host.routes.values()),
                         gateway_fills=gateway_fills)
    await loop.start()
    return loop
