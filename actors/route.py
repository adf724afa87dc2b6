"""RouteActor: one per symbol route. A thin async shell over the same compiled kernel the backtest runs.

Events arrive from three sources (FX, Upbit, Binance), each with a promise "nothing before ``upto`` will
follow"; the route merges what all sources have covered in the backtest's order and runs ``route_step`` in
external mode. When the kernel asks for a risk verdict it asks the RiskCoordinator; when a leg is due it
waits for the simulated venue's execution report and injects its fills. Client order ids are made before a
leg is sent and never reused; every leg's lifecycle runs through the order state machine.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from collections import deque
from collections.abc import Callable, Coroutine
from decimal import Decimal
from typing import Any

import numpy as np
from loguru import logger

from ..core.alerts import ONE_LEG_UNHEDGED
from ..core.book import Q_MID
from ..core.client_ids import ClientIdFactory
from ..core.config import EngineConfig
from ..core.domain import Currency, Side, Venue
from ..core.driver import kernel_turns
from ..core.events import EventBatch, empty_batch
from ..core.kernel import ACTION_OPEN, resolve_candidate
from ..core.ledger import Fill, units_to_dec
from ..core.legs import out_legs, settled_legs
from ..core.order_fsm import EventKind, Order, OrderEvent
from ..core.order_reports import apply_execution_report
from ..core.paper_venue import NO_MORE_EVENTS, ExecutionReport, VenueOrder
from ..core.recent import Samples
from ..core.replay import RouteResult, build_result, fill_at, inject_report, kernel_params, new_state
from ..core.risk_feed import RiskFeed, candidate_notionals, facts_done_through
from ..core.risk_sequencer import RiskFact
from ..core.route_state import (
    L_ACTIVE,
    L_DONE,
    L_DUE,
    L_QTY,
    S_CAND_TS,
    S_FLATTEN,
    S_FUNDED,
    S_NS,
    S_PACT,
    S_PDEC,
    S_PTRIP,
)
from ..core.rules import InstrumentRules
from ..infra.journal import (
    fill_record,
    intent_record,
    order_event_record,
    risk_verdict_record,
    trade_transition_record,
)
from .inbox import SequencedInbox
from .journal import JournalClient
from .recovery import RecoveryConfig, Snapshots, ask_for_resend, mark_ready, restarted
from .route_kernel import load_compiled, merge_sources
from .route_report import report_trips, route_stats
from .route_snapshot import History, restore_route, route_snapshot
from .route_trades import TradeBook

SOURCES = ("fx", "upbit", "binance")  # merge order = the backtest's order for equal timestamps
# long runs stay bounded: client ids, latencies and refusals kept (the last of each), finished orders kept
RECENT_KEPT = 100_000
ORDERS_KEPT = 4096
FULL_GC_EVERY = 100  # windows (a RouteHostActor collects the young generations after every window)
class RouteActor:
    def __init__(self, route: str, cfg: EngineConfig, binance: InstrumentRules, run_id: str,
                 venues: dict[int, Any], risk: Any | None = None, portfolio: Any | None = None,
                 alerts: Any | None = None, metrics: Any | None = None, recovery: RecoveryConfig | None = None,
                 in_host: bool = False, restore: bool | None = None, journal: Any | None = None) -> None:
        """``recovery``: snapshot after every window and come back from the newest snapshot after a restart
        (or at the first start with ``recovery.resume``). ``in_host``: run inside a RouteHostActor, which asks
        the feeds to resend for all its routes at once; ``restore`` (hosts): whether this start restores."""
        self.route = route
        self.cfg = cfg
        self.params = kernel_params(cfg, binance)
        self.state = new_state(cfg)
        self.ids = ClientIdFactory(run_id)
        self.venues, self.risk, self.portfolio, self.alerts, self.metrics = venues, risk, portfolio, alerts, metrics
        self.net_krw = Decimal(0)
        self.wins = 0
        self.buffers: dict[str, list[EventBatch]] = {s: [] for s in SOURCES}
        self.upto = dict.fromkeys(SOURCES, -1)
        self.processed_until = -1
        # windows before this one are applied (and snapshotted, with recovery); the ones taken in after it wait
        # in ``buffers``, and a snapshot keeps them, so a restore neither loses nor needs them again
        self.applied_window = 0
        self.first_ts = self.last_ts = -1
        self.lock = asyncio.Lock()
        self.waiting_received_ns: int | None = None  # a window taken in while waiting for a risk turn
        self.waiting_for_risk = False
        self.asking = asyncio.Event()  # set while waiting for a risk turn: releases the senders (process)
        # a replay's RiskCoordinator answers in market-time order, so a question waits for the other routes; live
        # (unordered: answered at once) the live host sets False, and ``process`` runs without the task hop
        self.risk_waits_for_routes = True
        self.process_error: BaseException | None = None  # from a window applied after its sender was released
        self.finished = asyncio.Event()
        self.sent: dict[int, tuple[tuple[int, ...], str, Any]] = {}  # slot -> (leg key, client id, report ref)
        self.sent_orders: dict[int, VenueOrder] = {}
        self.orders: dict[str, Order] = {}
        # the client ids handed to a venue, the last RECENT_KEPT in order, and how many (bounded: long runs)
        self.issued: deque[str] = deque(maxlen=RECENT_KEPT)
        self.n_issued = 0
        self.feed = RiskFeed(route, cfg)  # the trips risk and the portfolio have been told about
        self.latencies_s = Samples(RECENT_KEPT)  # feed -> intent, the last RECENT_KEPT (percentiles read these)
        self.latencies_pushed = 0
        self.unhedged_ns_total = 0
        self.max_unhedged_krw = Decimal(0)
        self.risk_rejections: deque[str] = deque(maxlen=RECENT_KEPT)  # first triggers, the last RECENT_KEPT
        self.funded = False
        self.flatten_requests = 0
        # holds: key (who holds: "reconcile", an operator...) -> why. While any is set, new opens are refused
        # before risk is asked (closes and unwinds go on): each holder lifts its own
        self.holds: dict[str, str] = {}
        self.hold_rejections = 0
        self.events_in: dict[str, int] = {}
        self.inbox: SequencedInbox[tuple[int, EventBatch]] = SequencedInbox()
        self.log = logger.bind(run_id=run_id, route=route)
        self.risk_asks = 0  # numbers the verdicts: a verdict asked again after a restart gets the same answer
        self.outbox: list[Any] = []  # fire-and-forget calls, acknowledged before each snapshot
        self.saved_seqs: dict[str, int] = {}  # per source, the inbox position the newest snapshot holds
        self.resends: list[Any] = []  # after a restore: the senders' answers to its resend request
        self.resend_error: str | None = None
        self.recovering = False  # after a restore: an order is looked up at the venue before it is sent
        self.recovered_orders = 0
        self.resent_orders = 0
        self.restored_at_ns = -1
        self.restores = 0
        self.restore_sources: list[str] = []  # where each restore came from: redis | file | none
        self.snap_fallbacks_before = 0  # file fallbacks of earlier incarnations
        self.order_counts: dict[str, int] = {}  # terminal orders dropped from ``orders`` by a restore
        self.recovery = recovery
        # live: the co-located RiskCoordinator books each trip from the route's facts before its next verdict,
        # so the portfolio's ledger is told without waiting (a Ray round trip per closed trip)
        self.portfolio_waits = True
        self.run_id = run_id
        self.journal = JournalClient(journal) if journal is not None else None  # intents durable before a send
        self.snaps = Snapshots(recovery, "route", route) if recovery is not None else None
        self.history = History()  # the history segments the snapshots refer to
        self.trade_book = TradeBook(run_id, route, units_to_dec(binance.step_units), self._journal_step)
        self.tap: Any = None  # live: records the chunks run and the decisions (infra.live.run_record)
        self.unhedged_watch: asyncio.Future[None] | None = None
        # the trade book's clock (one_leg_unhedged, unhedged time): the market time the kernel has reached in a
        # replay (a compressed one runs many market seconds per wall second); the live host sets the wall clock
        self.market_ns = -1
        self.trade_clock: Callable[[], int] = self._market_clock
        # how a leg's journal-then-send coroutine is started: a task (next loop turn), or on the live host
        # infra.live.eager.start_now (at once, up to its first wait: one task hop less on the hot path)
        self.start_send: Callable[[Coroutine[Any, Any, ExecutionReport]], asyncio.Future[ExecutionReport]] = (
            asyncio.ensure_future)
        load_compiled()
        if recovery is not None and (restore if restore is not None else (restarted() or recovery.resume)):
            self._restore()
            if not in_host:
                self.request_resend()
                _call_self("apply_restored")
        mark_ready()

    # ---- events in
    async def on_events(self, source: str, seq: int, upto_ns: int, events: EventBatch,
                        received_ns: int | None = None) -> int:
        """One feed message. Latencies count from ``received_ns`` (``perf_counter_ns``) when a RouteHostActor
        took the message in for all its routes (so they include the other routes' turns), else from now.
        Returns ``durable(source)``: a sender keeps what it would have to resend after a restore."""
        received = time.perf_counter_ns() if received_ns is None else received_ns
        self.accept(source, seq, upto_ns, events)
        await self.process(received)
        return self.durable(source)

    def on_live(self, source: str, events: EventBatch, now_ns: int) -> bool:
        """Live: one venue message's events, taken in at once. Every source is read in this process on one
        clock, so nothing stamped before ``now_ns`` can still come: every source's promise moves to it (no
        window, no wait for a slower feed). True if the route has something new to run (``process``)."""
        self.events_in[source] = self.events_in.get(source, 0) + len(events)
        if len(events):
            self.buffers[source].append(events)
            if events.venue[0] < 2:
                self.first_ts = int(events.ts[0]) if self.first_ts < 0 else self.first_ts
                self.last_ts = int(events.ts[-1])
        upto = max(now_ns, int(events.ts[-1]) + 1 if len(events) else now_ns)
        for s in SOURCES:
            self.upto[s] = max(self.upto[s], upto)
        return upto > self.processed_until

    def durable(self, source: str) -> int:
        """The first message of ``source`` the newest snapshot does not hold (all of them without snapshots): a
        message taken in but not yet snapshotted is lost with this process and must be sent again."""
        return self.saved_seqs.get(source, 0) if self.snaps is not None else self.inbox.next_seq(source)

    def accept(self, source: str, seq: int, upto_ns: int, events: EventBatch) -> bool:
        """Take a feed message in (in the sender's order); True if there may be new events to process."""
        for upto, batch in self.inbox.accept(source, seq, (upto_ns, events)):
            self.events_in[source] = self.events_in.get(source, 0) + len(batch)
            if len(batch):
                self.buffers[source].append(batch)
                market = batch.ts[batch.venue < 2]
                if market.size:
                    self.first_ts = int(market[0]) if self.first_ts < 0 else self.first_ts
                    self.last_ts = int(market[-1])
            self.upto[source] = max(self.upto[source], upto)
        return min(self.upto.values()) > self.processed_until  # else _process would return at once

    async def process(self, received_ns: int) -> None:
        """Apply what has come in, window after window (a feed's pace is its slowest route's). A route waiting
        for its risk turn -- which waits for slower routes -- takes a new window in when it is done and does not
        hold the sender up: the feed would hold back the windows those slower routes need."""
        if self.process_error is not None:
            raise self.process_error
        if self.lock.locked() and self.waiting_for_risk:
            if self.waiting_received_ns is None:
                self.waiting_received_ns = received_ns
            return
        # The sender waits until the windows are applied or the route starts waiting for its risk turn. Held
        # until the answer, the message that started the processing (the windows taken in meanwhile are applied
        # in the same call, questions and all) kept its feed from sending more than FEED_LAG windows past it; a
        # route the question waited for, whose legs the next bar fills, could not get that window: a wait-for
        # cycle, broken only by the ORDER_WAIT_S timeout (issue 15 soak; tests/test_soak.py)
        if self.risk is None or not self.risk_waits_for_routes:  # no turn to wait for: no task hop
            await self._process_windows(received_ns)
            return
        work = asyncio.ensure_future(self._process_windows(received_ns))
        asking = asyncio.ensure_future(self.asking.wait())
        await asyncio.wait((work, asking), return_when=asyncio.FIRST_COMPLETED)
        asking.cancel()
        if work.done():
            work.result()
        else:  # goes on; a failure surfaces at the next message (and in result())
            work.add_done_callback(self._keep_error)

    def _keep_error(self, work: asyncio.Future[None]) -> None:
        if not work.cancelled() and work.exception() is not None:
            self.process_error = work.exception()
            self.finished.set()  # result() and wait_finished() raise it instead of waiting for ever

    async def _process_windows(self, received_ns: int) -> None:
        async with self.lock:
            await self._process(received_ns)
            while self.waiting_received_ns is not None:
                received, self.waiting_received_ns = self.waiting_received_ns, None
                await self._process(received)

    async def _process(self, received_ns: int) -> None:
        watermark = min(self.upto.values())
        if watermark <= self.processed_until:
            return
        parts = []
        for s in SOURCES:
            buffered = self.buffers[s]
            if not buffered:
                continue
            batch = buffered[0] if len(buffered) == 1 else EventBatch.concat_sorted(buffered)  # each one is sorted
            cut = int(np.searchsorted(batch.ts, watermark, side="left"))
            if cut == len(batch):
                parts.append(batch)
                self.buffers[s] = []
            else:
                parts.append(batch.slice_time(None, watermark))
                rest = batch.slice_time(watermark, None)
                self.buffers[s] = [rest] if len(rest) else []
        chunk = parts[0] if len(parts) == 1 else merge_sources(parts) if parts else empty_batch()
        if self.tap is not None:
            self.tap.chunk(chunk, watermark, received_ns)
        final = watermark >= NO_MORE_EVENTS
        self.processed_until = watermark
        # feeds share window edges, so the watermark is the end of the window before the lowest inbox position:
        # every window before it is in this chunk, wholly
        applying = self.resume_seq()
        for turn in kernel_turns(self.state, chunk, final, self.params):
            self._market_reached(turn.next_ts)
            self._fund_portfolio_once()
            self._send_new_legs(received_ns)
            if turn.needs_risk:  # risk must know every trip before ruling on a new open: sent with it
                await self._risk_verdict(await report_trips(self))
                self._send_new_legs(received_ns)  # the legs the next step would show, sent without waiting for it
            elif turn.needs_fills:
                await self._collect_due_fills(turn.next_ts)
        facts = await report_trips(self)
        if self.risk is not None:
            self._track(self.risk.progress.remote(self.route, facts_done_through(self.state, watermark, final),
                                                  facts))
        if self.journal is not None:
            self._track(self.journal.flush())
        if self.snaps is not None:
            await self._save()
        self.applied_window = applying
        if final:
            self.finished.set()

    def _market_reached(self, next_ts: int) -> None:
        """The kernel stopped before the event at ``next_ts`` (or at the chunk's end: the watermark)."""
        t = next_ts if next_ts < NO_MORE_EVENTS else (
            self.processed_until if self.processed_until < NO_MORE_EVENTS else self.last_ts)
        self.market_ns = max(self.market_ns, t)

    def _market_clock(self) -> int:
        return self.market_ns

    # ---- snapshots and restore
    async def _save(self) -> None:
        """Snapshot at a window's end: every call made so far is acknowledged first, so what the snapshot
        says was done, was done (a restart from it resends only what came after)."""
        if self.outbox:
            pending, self.outbox = self.outbox, []
            await asyncio.gather(*pending)
        assert self.snaps is not None
        snap = route_snapshot(self)
        self.snaps.save(snap)
        self.saved_seqs = dict(snap["next_seqs"])

    def _journal_step(self, trade: Any, seq: int) -> None:
        if self.journal is not None:
            self.journal.submit(trade_transition_record(self.run_id, self.route, trade, seq))

    def _track(self, ref: Any) -> None:
        """A fire-and-forget call whose delivery a snapshot must not get ahead of."""
        if self.snaps is not None and ref is not None:
            self.outbox.append(ref)

    def _restore(self) -> None:
        assert self.snaps is not None
        snap = self.snaps.load()
        self.restores += 1
        self.restored_at_ns = time.time_ns()  # also stamps the restored in-flight orders' local time
        self.recovering = True  # even from nothing: orders of the lost incarnation are looked up, not resent
        if snap is not None:
            restore_route(self, snap)
        self.restore_sources.append(self.snaps.loaded_from or "none")
        self.log.info("route restored from {} (resume at window {}, skipped {})", self.snaps.loaded_from,
                      self.resume_seq(), len(self.snaps.skipped))
        for slot, (key, cid, _) in list(self.sent.items()):  # legs in flight: outcome unknown, asked when due
            self.sent[slot] = (key, cid, None)

    async def apply_restored(self) -> None:
        """Apply what the snapshot had taken in but not applied: no message may come to trigger it (the route
        may already hold every window), and a finished run must finish again. Then make sure every sender
        could resend: one that could not would leave this route waiting forever, so it fails instead."""
        await self.process(time.perf_counter_ns())
        try:
            await asyncio.gather(*self.resends)
        except Exception as exc:  # whatever the sender raised: the run cannot go on without those windows
            self.resend_error = f"{self.route}: a sender could not resend after the restore: {exc}"
            self.log.error(self.resend_error)
            if self.alerts is not None:
                self.alerts.raise_alert.remote("resend_failed", self.route, self.resend_error, 0)
            self.finished.set()

    def resume_seq(self) -> int:
        """The first window this route needs (again) from every source: what it has not taken in. Windows
        taken in but not applied are in its buffers, and in its snapshot with them."""
        return min(self.inbox.next_seq(s) for s in SOURCES)

    def request_resend(self) -> None:
        """Ask the feeds and the FX aggregator for every window from this route's inbox position for each (they
        resend what they have sent since; this route drops what it already has)."""
        assert self.recovery is not None
        self.resends = ask_for_resend(self.recovery, self.route, {s: self.inbox.next_seq(s) for s in SOURCES})

    async def _journal_then_send(self, order: Order, vorder: VenueOrder) -> ExecutionReport:
        """The intent is durable (journal backend, or its fsync'ed overflow file) before the order goes out."""
        assert self.journal is not None
        action = {"o": "open", "c": "close", "u": "unwind"}[order.client_id.rsplit("-", 1)[1][0]]
        await self.journal.write_intent(intent_record(self.run_id, self.route, order, time.time_ns(), role=action,
                                                      arrive_ns=vorder.arrive_ns))
        if self.recovering:
            return await self._resolve(vorder)
        return await self.venues[0 if vorder.symbol.endswith("-KRW") else 1].submit.remote(vorder)

    async def _resolve(self, order: VenueOrder) -> ExecutionReport:
        """An order this route may have sent before a restart: the venue's record says what became of it; only
        an order the venue never got is sent (with the same client id: the venue has not seen it)."""
        venue = self.venues[0 if order.symbol.endswith("-KRW") else 1]
        report: ExecutionReport | None = await venue.lookup.remote(order.client_id)
        if report is not None:
            self.recovered_orders += 1
            return report
        self.recovering = False  # ids are made in sequence: the ones after this were never sent either
        self.resent_orders += 1
        return await venue.submit.remote(order)

    def _fund_portfolio_once(self) -> None:
        """The kernel fixes the route's inventory at its first valid quote; the ledger of record starts there."""
        if self.funded or self.portfolio is None or not self.state.si[S_FUNDED]:
            return
        self.funded = True
        u = self.state.init_units
        self._track(self.portfolio.fund.remote(self.route, {
            (Venue.UPBIT, Currency.KRW): units_to_dec(int(u[0])), (Venue.UPBIT, Currency.COIN): units_to_dec(int(u[1])),
            (Venue.BINANCE, Currency.USDT): units_to_dec(int(u[2])),
            (Venue.BINANCE, Currency.COIN): units_to_dec(int(u[3]))}))

    # ---- legs out
    def _send_new_legs(self, received_ns: int) -> None:
        legs, si = self.state.legs, self.state.si
        if self.tap is not None:
            self.tap.observe(self.state, self.risk_rejections)
        sent: list[tuple[str, str, Side, int]] = []
        fresh: dict[str, list[Order]] = {}  # action -> its new legs, for the trade book
        for leg in out_legs(legs):
            slot, v, side, qty = leg.slot, leg.venue, leg.side, leg.qty_units
            key = (int(si[S_PTRIP]), int(si[S_PDEC]), slot, leg.due_ns, qty)
            if slot in self.sent and self.sent[slot][0] == key:
                continue
            action = "u" if leg.is_unwind else ("o" if self._pending_is_open() else "c")
            cid = self.ids.next(self.route[:8], f"{action}{'u' if v == 0 else 'b'}")
            self.issued.append(cid)
            self.n_issued += 1
            symbol = f"{self.route}-{'KRW' if v == 0 else 'USDT'}"
            order = Order(cid, Venue(v), symbol, side, units_to_dec(qty))
            fresh.setdefault(action, []).append(order)
            self.orders[cid] = order.apply(OrderEvent(EventKind.SUBMIT, -1, time.time_ns()))
            if self.journal is not None:
                self.journal.submit(order_event_record(self.run_id, self.route, self.orders[cid], 1))
            vorder = VenueOrder(cid, symbol, side, qty, leg.due_ns, leg.deadline_ns)
            if self.journal is not None:
                ref = self.start_send(self._journal_then_send(order, vorder))
            else:
                ref = (asyncio.ensure_future(self._resolve(vorder)) if self.recovering
                       else self.venues[v].submit.remote(vorder))
            self.sent[slot] = (key, cid, ref)
            self.sent_orders[slot] = vorder
            self.latencies_s.append((time.perf_counter_ns() - received_ns) / 1e9)
            sent.append((cid, symbol, side, qty))
        if fresh:
            ref_price = Decimal(str(self.state.quotes[0, Q_MID]))
            for action, orders in fresh.items():
                self.trade_book.on_sent(int(si[S_PTRIP]), action, orders, ref_price, self.trade_clock())
        for cid, symbol, side, qty in sent:  # logged once every leg of the action is out
            self.log.bind(client_order_id=cid).debug("leg sent: {} {} {}", symbol, side.name, units_to_dec(qty))

    def issued_since(self, count: int) -> list[str]:
        """The client ids handed to a venue after the first ``count`` (those still kept)."""
        new = self.n_issued - count
        return [] if new <= 0 else list(self.issued)[-new:]

    def _pending_is_open(self) -> bool:
        return int(self.state.si[S_PACT]) == ACTION_OPEN

    async def _risk_verdict(self, facts: list[RiskFact]) -> None:
        s = self.state
        allowed = True
        if self.holds:  # held: no new open; risk still hears what the route did
            self.hold_rejections += 1
            if self.risk is not None and facts:
                self._track(self.risk.progress.remote(self.route, int(s.si[S_CAND_TS]) - 1, facts))
            allowed = False
        elif self.risk is not None:
            notionals = candidate_notionals(s)
            t = int(s.si[S_CAND_TS])  # the candidate's decision time, whatever the window cut
            self.risk_asks += 1
            self.waiting_for_risk = True
            self.asking.set()
            try:
                verdict = await self.risk.check_open.remote(self.route, self.route, notionals, t,
                                                            key=f"{self.route}:{self.risk_asks}", facts=facts)
            finally:
                self.waiting_for_risk = False
                self.asking.clear()
            allowed = verdict.allowed
            if self.journal is not None:
                rec = risk_verdict_record(self.run_id, self.route, verdict, seq=self.risk_asks, action="open",
                                          ts_local=time.time_ns(), route_key=f"{self.route}:{self.risk_asks}")
                self.journal.submit(dataclasses.replace(rec, key=f"{self.route}:{self.risk_asks}"))
            if not allowed:
                self.risk_rejections.append(verdict.first_trigger or "")
                if self.alerts is not None:
                    self._track(self.alerts.raise_alert.remote("risk_reject", self.route,
                                                                      "; ".join(verdict.reasons), t))
        resolve_candidate(s.si, s.sf, s.legs, s.counters, s.trips_i, s.trips_f, s.quotes, self.params, allowed)

    async def _collect_due_fills(self, now_ns: int) -> None:
        """The venue's answers for the legs whose outcome the kernel knows before the event at ``now_ns``: filled
        against the first quote stamped after their arrival, or expired past their wait. The paper venue decides
        each with the same rule (core.book.leg_outcome) on the same events, so its answer is that outcome."""
        s = self.state
        for leg in settled_legs(s.legs):
            slot = leg.slot
            _, cid, ref = self.sent[slot]
            report: ExecutionReport = await (ref if ref is not None else self._resolve(self.sent_orders[slot]))
            self._apply_report(cid, report)
            first_fill = inject_report(s, self.params, slot, report.fills)
            await self._to_portfolio(report, first_fill)
        self._measure_unhedged()
        if self.trade_book.unhedged:
            self._page_unhedged(self.trade_clock())

    def _page_unhedged(self, now_ns: int) -> None:
        """P0 ``one_leg_unhedged`` for each trade one-legged past the policy (risk.max_unhedged_s), once."""
        for trade in self.trade_book.overdue(now_ns, int(self.cfg.risk.max_unhedged_s * 1e9)):
            self._page_one_leg(trade, now_ns)

    def _page_one_leg(self, trade: Any, now_ns: int) -> None:
        if self.alerts is not None:
            self._track(self.alerts.raise_alert.remote(ONE_LEG_UNHEDGED, self.route, (
                f"{trade.trade_id}: {trade.net_exposure} base unhedged for "
                f"{trade.unhedged_ns(now_ns) / 1e9:.1f} s (policy {self.cfg.risk.max_unhedged_s:g} s)"), now_ns))

    def _watch_unhedged(self) -> None:
        """The timer behind ``_page_unhedged`` while a trade is one-legged (TradeBook.watch_unhedged)."""
        if not self.trade_book.unhedged or (self.unhedged_watch is not None and not self.unhedged_watch.done()):
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a restore in the constructor): the next report starts it
            return
        limit_s = self.cfg.risk.max_unhedged_s
        self.unhedged_watch = loop.create_task(self.trade_book.watch_unhedged(
            int(limit_s * 1e9), self._page_one_leg, self.trade_clock, min(1.0, limit_s / 4)))

    def _apply_report(self, cid: str, report: ExecutionReport) -> None:
        before = len(self.orders[cid].events)
        order = self.orders[cid] = apply_execution_report(self.orders[cid], report, time.time_ns())
        book_now = None if self.trade_clock is time.time_ns else self.trade_clock()
        for event in order.events[before:]:  # in a replay, stamped on the trade book's (market) clock
            self.trade_book.on_event(cid, event if book_now is None else dataclasses.replace(event, ts_local=book_now))
        self._watch_unhedged()
        if len(self.orders) > ORDERS_KEPT:
            self._retire_orders()
        if self.journal is not None:  # every order event, keyed client id : event number
            for seq in range(before + 1, len(order.events) + 1):
                self.journal.submit(order_event_record(self.run_id, self.route, order, seq))

    def _retire_orders(self) -> None:
        """Forget the oldest finished orders past ORDERS_KEPT (their final states stay counted in
        ``order_counts``, as a restore does): a report only ever comes for a slot's current order."""
        current = {cid for _, cid, _ in self.sent.values()}
        for cid in [c for c, o in self.orders.items() if o.is_terminal and c not in current][
                :len(self.orders) - ORDERS_KEPT]:
            name = self.orders.pop(cid).status.name
            self.order_counts[name] = self.order_counts.get(name, 0) + 1

    async def _to_portfolio(self, report: ExecutionReport, first_fill: int) -> None:
        if (self.portfolio is None and self.journal is None) or not report.fills:
            return
        fills = [(f"{report.client_id}:{tid}", self._fill_object(first_fill + j)) for j, (tid, *_)
                 in enumerate(report.fills)]
        if self.journal is not None:
            for (_fid, fill), (tid, *_) in zip(fills, report.fills, strict=True):
                self.journal.submit(fill_record(self.run_id, self.route, fill, trade_id=tid,
                                                client_id=report.client_id))
        if self.portfolio is not None:
            self._track(self.portfolio.on_fills.remote(self.route, fills))

    def _fill_object(self, row: int) -> Fill:
        return fill_at(self.state, row, self.cfg, ts_local=time.time_ns())

    def _measure_unhedged(self) -> None:
        """Time between the two legs' fills of an action, and the notional exposed meanwhile."""
        legs = self.state.legs
        if legs[0, L_DONE] and legs[1, L_DONE] and legs[0, L_ACTIVE]:
            gap = abs(int(legs[0, L_DUE]) - int(legs[1, L_DUE]))
            self.unhedged_ns_total += gap
            if gap:
                mid = Decimal(str(self.state.quotes[0, Q_MID]))
                self.max_unhedged_krw = max(self.max_unhedged_krw, units_to_dec(int(legs[0, L_QTY])) * mid)

    async def flatten(self, route: str | None = None) -> None:
        """Kill switch: close any open position at the next decision (the RiskCoordinator refuses new opens).
        ``route``: ignored here (this actor is one route); a RouteHostActor needs it."""
        self.state.si[S_FLATTEN] = 1
        self.flatten_requests += 1

    async def flatten_all(self) -> None:
        await self.flatten()

    # ---- results
    async def wait_finished(self) -> bool:
        await self.finished.wait()
        self._raise_if_broken()
        return True

    def _raise_if_broken(self) -> None:
        if self.resend_error is not None:
            raise RuntimeError(self.resend_error)
        if self.process_error is not None:
            raise self.process_error

    async def result(self) -> RouteResult:
        await self.finished.wait()
        self._raise_if_broken()
        return build_result(self.route, self.state, self.cfg, self.first_ts, self.last_ts)

    async def stats(self) -> dict[str, Any]:
        return route_stats(self)

    async def ping(self) -> dict[str, Any]:
        """Health check: answers only when the event loop is free (a hung route does not)."""
        from .recovery import incarnation

        return incarnation() | {"restored_at_ns": self.restored_at_ns, "finished": self.finished.is_set(),
                                "next_window": self.applied_window, "premium_bps": self.premium_bps()}

    def premium_bps(self) -> dict[str, float]:
        """{route: its latest premium} ({} before the first one, or while it has no FX: NaN)."""
        n = int(self.state.si[S_NS])
        last = float(self.state.series_f[n - 1, 0]) if n > 0 else math.nan
        return {self.route: last} if math.isfinite(last) else {}


def _call_self(method: str) -> None:
    """Queue a call of this actor's ``method``: it runs once the constructor has returned."""
    import ray

    getattr(ray.get_runtime_context().current_actor, method).remote()
