"""LiveHostActor: routes trading real venues (or the local fakes) event at a time, all of the hot path in-process.

One process holds, for its routes: both venues' market-data connections (infra.live.market), the routes' kernels
(each a plain :class:`RouteActor` object: the one driver loop of backtest and paper), the order gateways
(infra.live.gateway over the venue adapters), the RiskCoordinator and the journal. A book message reaches its
route's decision, a verdict, the durable intent and the order request without leaving this process: a Ray hop
between two actors costs 1.2 ms at p50 on this machine (measured, one way), more than the whole live budget.
The Portfolio, Alert and metrics actors are told fire-and-forget; they reconcile, they are not asked.

A route that waits for its legs' fills holds only itself: the feed goes on for the other routes, and what came
for it meanwhile waits in its buffers, in order, and runs when the fills are in (``_pump``).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from loguru import logger

from ..core.config import EngineConfig
from ..core.events import EventBatch
from ..core.live_orders import CapBook, OrderCaps
from ..core.replay import RouteResult
from ..core.risk import RiskLimits
from ..core.route_state import S_POS_DIR
from ..core.rules import InstrumentRules, upbit_krw_rules
from ..infra.journal_intents import INTENTS_SUFFIX
from ..infra.live.eager import start_now
from ..infra.live.gateway import LiveGateway
from ..infra.live.killswitch import KillSwitch, RiskTap
from ..infra.live.market import FX_CODE, LiveMarket, binance_symbol, upbit_code
from ..infra.live.reconcile_loop import GatedVenue, ReconcileLoop, ReconcileSettings, SendGate, start_reconciliation
from ..infra.live.trace import LiveTracer
from .risk import RiskCoordinatorActor
from .route import RouteActor
from .route_host import RiskFacade, _Local, _LocalMethod

FEED_RESTART_S, FEED_RESTART_MAX_S = 0.1, 5.0  # a stopped feed is started again after this, doubling to the max


@dataclass(frozen=True)
class VenueEndpoint:
    rest: str
    ws: str
    key: str
    secret: str


@dataclass(frozen=True)
class LiveSpec:
    """What a host runs. ``routes``: base -> (its config, Binance rules); ``risk``: None = no coordinator."""

    routes: dict[str, tuple[EngineConfig, InstrumentRules]]
    binance: VenueEndpoint
    upbit: VenueEndpoint
    run_id: str = "live1"
    risk: RiskLimits | None = None
    capital_krw: Decimal = Decimal(0)
    shadow: bool = False
    caps: OrderCaps = field(default_factory=OrderCaps)
    slippage_bps: Decimal = Decimal(30)
    journal_dir: str | None = None
    journal_dsn: str | None = None
    trace: bool = False  # wire-to-wire stamps per order (infra.live.trace; benchmarks/live_latency.py)
    reconcile: ReconcileSettings = field(default_factory=ReconcileSettings)  # needs a journal (else off)
    record_dir: str | None = None  # record what the routes ran and decided (infra.live.run_record)
    intent_log: bool = True  # intents durable by fdatasync of an append-only log, SQL filled after (journal_intents)
    intent_log_inline: bool = False  # the intent log's sync on the loop's thread (no hand-off; the loop waits)
    eager: bool = True  # the route's turn, the journal and the gateway start at once, not a loop turn later
    # the host process's GIL switch interval (sys.setswitchinterval; Python's default 5 ms): the intent log's
    # worker thread, back from fdatasync, waits for the GIL while the loop thread parses frames -- up to a whole
    # interval per hand-off (a suspect for the journal stage's 8-9 ms at p50, not measured yet: benchmarks/
    # live_latency.py --gil-switch-ms). None: leave the interpreter's
    gil_switch_s: float | None = None


class LiveHostActor(RiskFacade):
    def __init__(self, spec: LiveSpec, portfolio: Any | None = None, alerts: Any | None = None) -> None:
        self.spec = spec
        self.portfolio, self.alerts = portfolio, alerts
        self.market = LiveMarket(list(spec.routes), self._deliver)
        self.tracer = LiveTracer() if spec.trace else None
        self.risk = RiskCoordinatorActor(spec.risk) if spec.risk is not None else None
        self.routes: dict[str, RouteActor] = {}
        self.gateways: dict[int, LiveGateway] = {}
        self.clients: dict[str, Any] = {}
        self.journal: Any = None
        self.tasks: list[asyncio.Task[None]] = []  # the feeds' supervisors
        self.feed_tasks: dict[str, asyncio.Task[None]] = {}  # venue -> its running feed (a drill may cancel it)
        self.feed_restarts = {"upbit": 0, "binance": 0}
        self._pumping: dict[str, int] = {}  # route -> perf_counter_ns of the oldest message not yet run
        self._pumps: set[asyncio.Future[None]] = set()
        self.recorder: Any = None
        self.record_stats: dict[str, int] | None = None
        self.started_ns = 0
        self.errors: list[str] = []
        self.kill = KillSwitch(self)  # pause/resume opens, flatten (kill switch), shutdown policy
        self.gate = SendGate()  # orders wait here while a reconciliation pass reads the venues
        self.reconciler: ReconcileLoop | None = None

    async def start(self) -> dict[str, Any]:
        """Connect, load the venues' rules, build the routes and start reading the streams."""
        from ..infra.venues.binance.client import BinanceClient
        from ..infra.venues.upbit.client import UpbitClient

        s = self.spec
        if s.gil_switch_s is not None:
            sys.setswitchinterval(s.gil_switch_s)
        b = BinanceClient(s.binance.rest, s.binance.key, s.binance.secret, ws_url=s.binance.ws)
        u = UpbitClient(s.upbit.rest, s.upbit.key, s.upbit.secret, ws_url=s.upbit.ws)
        self.clients = {"binance": b, "upbit": u}
        info = await b.load_rules()
        self.market.binance_client = b
        fx_krw = self._usdt_krw
        caps = CapBook(s.caps)  # one day's total across both venues
        alert = self._alert
        self.gateways = {
            0: LiveGateway(u, lambda _sym: upbit_krw_rules(), lambda sym: self.market.book("upbit", sym),
                           lambda sym: upbit_code(sym.split("-")[0]), lambda: Decimal(1), caps, s.slippage_bps,
                           shadow=s.shadow, alert=alert),
            1: LiveGateway(b, lambda sym: s.routes[sym.split("-")[0]][1], lambda sym: self.market.book("binance", sym),
                           lambda sym: binance_symbol(sym.split("-")[0]), fx_krw, caps, s.slippage_bps,
                           shadow=s.shadow, alert=alert)}
        missing = [base for base in s.routes if binance_symbol(base) not in info.symbols]
        if missing:
            raise ValueError(f"Binance does not list {', '.join(missing)}USDT")
        await self._start_journal()
        risk = _Local(self.risk) if self.risk is not None else None
        local = _Now if s.eager else _Local
        venues = {v: local(GatedVenue(g, self.gate)) for v, g in self.gateways.items()}
        for base, (cfg, rules) in s.routes.items():
            route = RouteActor(base, cfg, rules, s.run_id, venues, risk, self.portfolio, self.alerts, None, None,
                               in_host=True, restore=False, journal=self.journal)
            route.portfolio_waits = False
            route.trade_clock = time.time_ns  # live: a leg's unhedged time is wall time
            route.risk_waits_for_routes = False  # the coordinator here answers at once: no task hop per message
            if s.eager:  # the intent write and the send start inside the route's turn, not a loop turn later
                route.start_send = start_now
            self.routes[base] = route
        self._record()
        if self.risk is not None:
            tap = RiskTap(self.kill, self.portfolio)  # its kill switch flattens here at once, and tells the portfolio
            self.risk.configure(list(s.routes), s.capital_krw, ordered=False, portfolio=tap)
        if self.tracer is not None:
            self.tracer.attach(self)
        self.reconciler = await start_reconciliation(self, s.reconcile)  # its first pass: before any route trades
        self.started_ns = time.time_ns()
        codes = [upbit_code(base) for base in s.routes] + [FX_CODE]
        streams = [f"{binance_symbol(base).lower()}@depth@100ms" for base in s.routes]
        feeds: dict[str, Callable[[], Coroutine[Any, Any, None]]] = {
            "upbit": lambda: self.market.run_upbit(u.stream(codes, ("orderbook",))),
            "binance": lambda: self.market.run_binance(b.market_data(streams))}
        self.tasks = [asyncio.create_task(self._supervise(venue, make)) for venue, make in feeds.items()]
        return {"routes": list(s.routes), "binance_symbols": len(info.symbols)}

    def _record(self) -> None:
        """With ``record_dir``: every route's chunks and decisions to disk, for ``replay-check``."""
        if self.spec.record_dir is None:
            return
        from ..infra.live.run_record import RunRecorder

        self.recorder = RunRecorder(Path(self.spec.record_dir), self.spec.routes, self.spec.run_id)
        for base, route in self.routes.items():
            route.tap = self.recorder.tap(base, route.state)
        self.market.recorder = self.recorder.venues
        self.recorder.start()

    async def _start_journal(self) -> None:
        if self.spec.journal_dir is None:
            return
        from .journal import JournalActor

        jdir = Path(self.spec.journal_dir)
        jdir.mkdir(parents=True, exist_ok=True)
        log = jdir / f"{self.spec.run_id}{INTENTS_SUFFIX}" if self.spec.intent_log else None
        actor = JournalActor(jdir / f"{self.spec.run_id}.overflow.jsonl", self.spec.journal_dsn,
                             sqlite_path=jdir / "journal.sqlite3", intent_log=log,
                             intent_log_inline=self.spec.intent_log_inline)
        await actor.start()
        if self.alerts is not None:
            await actor.watch_backend(self.alerts)  # a journal that cannot write is a P0 (journal_down)
        self.journal = _Now(actor) if self.spec.eager else _Local(actor)

    async def _supervise(self, venue: str, make: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run a venue's feed and start it again whenever it ends: an error, a stream that gave up reconnecting
        (Upbit's stops after 5) or a cancelled feed task would otherwise leave its routes blind for good. The
        restart backs off (0.1 s doubling to 5 s, reset after a feed that ran a minute); the market clears the
        routes' books of the venue until its fresh ones come (LiveMarket.mark_broken)."""
        delay = FEED_RESTART_S
        while True:
            began = time.monotonic()
            task = self.feed_tasks[venue] = asyncio.create_task(make())
            await asyncio.wait([task])  # the task may end alone or be cancelled (a drill); this loop goes on
            if task.cancelled():
                why = "cancelled"
            elif (exc := task.exception()) is not None:
                why = f"{type(exc).__name__}: {exc}"
                logger.opt(exception=exc).error("{} feed stopped", venue)
            else:
                why = "ended"
            self.feed_restarts[venue] += 1
            self.errors.append(f"{venue} feed {why}: restart {self.feed_restarts[venue]} in {delay:.1f} s")
            self._alert("feed_down", self.errors[-1])  # a feed that stops is a P0 even when it comes back
            self.market.mark_broken(venue, f"feed {why}")
            delay = FEED_RESTART_S if time.monotonic() - began > 60 else delay
            await asyncio.sleep(delay)
            delay = min(delay * 2, FEED_RESTART_MAX_S)

    def _usdt_krw(self) -> Decimal:
        rate = self.market.fx_rate
        if rate is None:
            raise ValueError("no USDT/KRW rate yet")
        return Decimal(repr(rate))

    def _alert(self, kind: str, message: str) -> None:
        if self.alerts is not None:
            self.alerts.raise_alert.remote(kind, "live", message, time.time_ns())

    # ---- the hot path
    def _deliver(self, base: str, source: str, events: EventBatch, received_ns: int) -> None:
        route = self.routes.get(base)
        if route is None or not route.on_live(source, events, time.time_ns()):
            return
        if base in self._pumping:
            return  # its pump is running (maybe waiting for fills): it takes these events in when it gets there
        self._pumping[base] = received_ns
        task = start_now(self._pump(base, route)) if self.spec.eager else asyncio.ensure_future(self._pump(base, route))
        self._pumps.add(task)
        task.add_done_callback(self._pumps.discard)

    async def _pump(self, base: str, route: RouteActor) -> None:
        try:
            while min(route.upto.values()) > route.processed_until:
                received = self._pumping[base]
                self._pumping[base] = time.perf_counter_ns()  # what arrives from now on waited for this turn
                if self.tracer is not None:
                    self.tracer.turn(base)
                await route.process(received)
        except Exception as exc:  # a route that breaks stops alone, loudly
            self.errors.append(f"{base}: {type(exc).__name__}: {exc}")
            logger.exception("route {} stopped", base)
            self._alert("route_error", self.errors[-1])
        finally:
            self._pumping.pop(base, None)

    # ---- control and results
    async def status(self) -> dict[str, Any]:
        routes = {}
        for base, r in self.routes.items():
            st = r.state
            routes[base] = {"premium_bps": r.premium_bps().get(base), "position": int(st.si[S_POS_DIR]),
                            "net_krw": str(r.net_krw), "trips": len(r.feed.reported_closes), "wins": r.wins,
                            "orders": r.n_issued}
        fx_ts = self.market.fx_ts_venue  # the venue time the rate in use came with (-1: none yet)
        return {"uptime_s": (time.time_ns() - self.started_ns) / 1e9, "pid": os.getpid(), "fx": self.market.fx_rate,
                "fx_age_s": (time.time_ns() - fx_ts) / 1e9 if fx_ts > 0 else None,
                "feeds": {v: {"books": c.books, "deltas": c.deltas, "rejected": dict(c.rejected),
                              "restarts": self.feed_restarts[v]} for v, c in self.market.counts.items()},
                "risk": self.risk.report() if self.risk is not None else None, "routes": routes,
                "errors": list(self.errors),
                "reconciliation": self.reconciler.status() if self.reconciler is not None else None}

    async def flatten(self, route: str) -> None:
        """Kill switch (the portfolio's word): the route closes its position at its next decision."""
        await self.kill.flatten([route], "portfolio kill switch", "portfolio", pause=False)

    async def flatten_all(self) -> None:
        await self.kill.flatten(None, "flatten all", "portfolio", pause=False)

    async def control(self, what: str, reason: str = "", route: str | None = None) -> dict[str, Any]:
        """The operator's words (infra.live.control): pause | resume | flatten (route None: all) | state."""
        k = self.kill
        if what == "flatten":
            return await k.flatten(None if route is None else [route], reason or "operator kill switch")
        return k.pause(reason) if what == "pause" else k.resume() if what == "resume" else k.state()

    async def stop(self, timeout_s: float = 30.0, on_stop: str = "report", flatten_s: float = 20.0) -> dict[str, Any]:
        """No new opens, flatten per ``on_stop`` (infra.live.killswitch), stop reading, let every route finish what
        it started (legs in flight get their fills), cancel this run's open orders, close."""
        wound = await self.kill.wind_down(on_stop, flatten_s)
        for t in [*self.tasks, *self.feed_tasks.values()]:
            t.cancel()
        for t in [*self.tasks, *self.feed_tasks.values()]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if self._pumps:
            await asyncio.wait(list(self._pumps), timeout=timeout_s)
        if self.recorder is not None:  # the routes are done: nothing more to record
            self.record_stats = await self.recorder.close()
        for r in self.routes.values():
            r.finished.set()
        if self.journal is not None:
            await self.journal.flush.remote(10.0)
        shutdown = await self.kill.finish(wound)  # leftover orders cancelled before the last reconciliation
        if self.reconciler is not None:  # the last pass: the run ends reconciled, or its summary says what is not
            await self.reconciler.stop()
        for c in self.clients.values():
            await c.close()
        return {"reconciliation": self.reconciler.summary() if self.reconciler is not None else None,
                "gateways": {v: vars(g.stats) | {"send_ms": None} for v, g in self.gateways.items()},
                "caps_refused": dict(self.gateways[0].caps.refused) if self.gateways else {},
                "caps_overridden_by_closes": dict(self.gateways[0].caps.overridden) if self.gateways else {},
                "shutdown": shutdown}

    async def result(self, base: str) -> RouteResult:
        return await self.routes[base].result()

    async def stats(self, base: str) -> dict[str, Any]:
        return await self.routes[base].stats()

    async def trace(self) -> list[dict[str, Any]]:
        """Every order's wire-to-wire stamps (spec.trace), for infra.live.trace.join."""
        return self.tracer.export() if self.tracer is not None else []

    async def send_ms(self) -> list[float]:
        return [x for g in self.gateways.values() for x in g.stats.send_ms]



class _Now(_Local):
    """``_Local`` whose async methods start at once (infra.live.eager.start_now), not a loop turn later: the
    gateway's request leaves, the intent's write starts, on the caller's stack."""

    def __getattr__(self, name: str) -> _LocalMethod:
        return _NowMethod(getattr(self._obj, name))


class _NowMethod(_LocalMethod):
    def remote(self, *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        if inspect.iscoroutinefunction(self._fn):
            return start_now(self._fn(*args, **kwargs))
        return super().remote(*args, **kwargs)
