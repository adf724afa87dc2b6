"""Several routes in one process (co-location), and an in-process object behind an actor handle's shape."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from ..core.config import EngineConfig
from ..core.domain import Venue
from ..core.replay import RouteResult
from ..core.risk import RiskLimits, RiskVerdict
from ..core.risk_sequencer import RiskFact
from ..core.rules import InstrumentRules
from .feed import Batches
from .recovery import RecoveryConfig, ask_for_resend, mark_ready, restarted
from .risk import RiskCoordinatorActor
from .route import FULL_GC_EVERY, SOURCES, RouteActor, _call_self


class RiskFacade:
    """The RiskCoordinator methods of a host that runs its coordinator in-process (``self.risk``): the portfolio
    and the run reach the coordinator through the host's handle, the routes through a direct call."""

    risk: RiskCoordinatorActor | None

    def _coordinator(self) -> RiskCoordinatorActor:
        if self.risk is None:
            raise RuntimeError("this route host has no co-located RiskCoordinator (local_risk)")
        return self.risk

    async def check_open(self, route: str, symbol: str, venue_notionals: Mapping[Venue, Decimal], now_ns: int,
                         fx_stale: bool = False, key: str | None = None,
                         facts: Sequence[RiskFact] = ()) -> RiskVerdict:
        return await self._coordinator().check_open(route, symbol, venue_notionals, now_ns, fx_stale, key, facts)

    async def configure(self, routes: Sequence[str], capital_krw: Decimal, ordered: bool = True,
                        portfolio: Any | None = None) -> None:
        self._coordinator().configure(routes, capital_krw, ordered, portfolio)

    async def progress(self, route: str, done_through_ns: int, facts: Sequence[RiskFact] = ()) -> None:
        await self._coordinator().progress(route, done_through_ns, facts)

    async def check_close(self, route: str, symbol: str, venue_notionals: Mapping[Venue, Decimal],
                          now_ns: int) -> RiskVerdict:
        return self._coordinator().check_close(route, symbol, venue_notionals, now_ns)

    async def on_equity(self, equity_krw: Decimal, now_ns: int) -> dict[str, Any]:
        return self._coordinator().on_equity(equity_krw, now_ns)

    async def pause(self, reason: str, now_ns: int | None = None) -> None:
        self._coordinator().pause(reason, now_ns)

    async def resume(self, now_ns: int) -> None:
        self._coordinator().resume(now_ns)

    async def decisions(self) -> list[dict[str, Any]]:
        return self._coordinator().decisions()

    async def report(self) -> dict[str, Any]:
        return self._coordinator().report()

    async def snapshot(self) -> dict[str, Any]:
        return self._coordinator().snapshot()


class RouteHostActor(RiskFacade):
    """Several routes in one process (co-location), for machines with fewer cores than routes.

    Each route is a plain :class:`RouteActor` object, run as a coroutine of this one async actor, so its
    decisions, orders and fills are exactly those of a route in its own actor. What changes: one process
    (one interpreter, one copy of numpy/numba/Ray) for all of them instead of one each, and one feed message
    per window for all of them instead of one per route. Latencies count from this actor's receipt of a
    message, so a route's figure includes the turns of the routes before it in that message.
    """

    def __init__(self, routes: dict[str, tuple[EngineConfig, InstrumentRules]], run_id: str,
                 venues: dict[int, Any], risk: Any | None = None, portfolio: Any | None = None,
                 alerts: Any | None = None, metrics: Any | None = None,
                 local_risk: RiskLimits | None = None, recovery: RecoveryConfig | None = None,
                 host_key: str = "host0", journal: Any | None = None) -> None:
        """``local_risk``: run the RiskCoordinator here, with these limits, instead of asking the ``risk`` actor
        (only when this host runs every route of the run: one coordinator must see them all). A verdict is
        then a function call, not a Ray round trip; the other actors reach the coordinator through this host's
        RiskCoordinator methods below. ``recovery``: every route (and the co-located coordinator) snapshots
        and comes back after a restart; ``host_key`` is the name the feeds know this host by."""
        restore = recovery is not None and (restarted() or recovery.resume)
        self.risk = (RiskCoordinatorActor(local_risk, recovery, restore) if local_risk is not None else None)
        route_risk = _Local(self.risk) if self.risk is not None else risk
        self.routes = {name: RouteActor(name, cfg, rules, run_id, venues, route_risk, portfolio, alerts, metrics,
                                        recovery, in_host=True, restore=restore, journal=journal)
                       for name, (cfg, rules) in routes.items()}
        self.host_key, self.recovery = host_key, recovery
        if restore:
            self.request_resend()
            _call_self("apply_restored")
        mark_ready()
        # Garbage collection between windows, not in the middle of one: a collection pauses every coroutine of
        # this process (a full one here took up to tens of ms). What start-up made is frozen (never scanned
        # again); automatic collections are off; on_events_many collects the young generations once a window
        # is done, and everything every FULL_GC_EVERY windows.
        gc.freeze()
        gc.disable()
        self.windows_done = 0
        self._latencies_taken: dict[str, int] = {}  # route -> latencies take_latencies handed out

    async def on_events_many(self, source: str, seq: int, upto_ns: int, parts: Batches) -> int:
        """One feed message for several routes (each route keeps its own per-source order). Every route takes
        its events in; those whose watermark moved then run, concurrently (one may wait on a verdict or a fill
        while the others go on). Returns the lowest of the routes' ``durable(source)``."""
        received = time.perf_counter_ns()
        due = [route for name, events in parts.items()
               if (route := self.routes[name]).accept(source, seq, upto_ns, events)]
        if len(due) == 1:
            await due[0].process(received)
        elif due:
            await asyncio.gather(*[route.process(received) for route in due])
        if due:
            self.windows_done += 1  # this window's intents are out: collect now, before the next window comes
            gc.collect(2 if self.windows_done % FULL_GC_EVERY == 0 else 1)
        return min(r.durable(source) for r in self.routes.values())

    def request_resend(self) -> None:
        """After a restore: one resend per sender for all this host's routes, from the earliest they need."""
        assert self.recovery is not None
        resends = ask_for_resend(self.recovery, self.host_key,
                                 {s: min(r.inbox.next_seq(s) for r in self.routes.values()) for s in SOURCES})
        for r in self.routes.values():
            r.resends = resends

    async def apply_restored(self) -> None:
        await asyncio.gather(*[r.apply_restored() for r in self.routes.values()])

    async def ping(self) -> dict[str, Any]:
        from .recovery import incarnation

        return incarnation() | {"restored_at_ns": max(r.restored_at_ns for r in self.routes.values()),
                                "next_window": min(r.applied_window for r in self.routes.values()),
                                "finished": all(r.finished.is_set() for r in self.routes.values()),
                                "premium_bps": {k: v for r in self.routes.values() for k, v in r.premium_bps().items()}}

    def take_latencies(self) -> list[float]:
        """The feed-to-intent latencies the routes recorded since the last call (a watcher buckets them by
        market time, the soak's)."""
        taken = self._latencies_taken
        out: list[float] = []
        for name, r in self.routes.items():
            out += r.latencies_s.since(taken.get(name, 0))
            taken[name] = r.latencies_s.total
        return out

    async def flatten(self, route: str) -> None:
        await self.routes[route].flatten()

    async def flatten_all(self) -> None:
        for r in self.routes.values():
            await r.flatten()

    async def wait_finished(self, route: str) -> bool:
        return await self.routes[route].wait_finished()

    async def result(self, route: str) -> RouteResult:
        return await self.routes[route].result()

    async def stats(self, route: str) -> dict[str, Any]:
        return await self.routes[route].stats()


class _Local:
    """An object of this process behind the shape of a Ray actor handle: ``h.method.remote(*args)`` runs the
    method at once and returns a done future (awaited for a verdict, ignored for fire-and-forget calls, as
    with Ray). Calls run in the order they are made, as Ray runs one caller's calls to a threaded actor."""

    def __init__(self, obj: Any) -> None:
        self._obj = obj

    def __getattr__(self, name: str) -> _LocalMethod:
        return _LocalMethod(getattr(self._obj, name))


class _LocalMethod:
    def __init__(self, fn: Any) -> None:
        self._fn = fn

    def remote(self, *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        try:
            result = self._fn(*args, **kwargs)
        except Exception as exc:  # delivered where it is awaited, as a Ray task error would be
            fut.set_exception(exc)
            return fut
        if asyncio.iscoroutine(result):  # an async method (a risk question waiting for its turn): runs on
            return asyncio.ensure_future(result)
        fut.set_result(result)
        return fut
