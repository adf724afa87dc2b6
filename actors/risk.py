"""RiskCoordinatorActor: the tiers of core.risk behind one actor; every verdict is kept with its reason.

Routes report what they did (``progress``: trips opened and closed, and how far in market time they have
reported) and ask before each open (``check_open``). With ``configure(routes, ...)`` a replayed run's
questions are answered in market-time order (core.risk_sequencer): a question waits until every other route
has reported up to its time, so paper answers exactly as the backtest does. Without it (live: one clock)
facts are booked as they arrive and questions answered at once.

Restartable: with a RecoveryConfig it snapshots after every call that changes its state, before answering,
so an answered call is never lost. Questions carry keys (the route's verdict number) and facts theirs (route,
kind, trip): a call made again -- Ray retrying it after a restart, or a restored route replaying -- gets the
first answer and changes nothing.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from loguru import logger

from ..core.domain import Venue
from ..core.risk import RiskCoordinator, RiskLimits, RiskVerdict
from ..core.risk_sequencer import RiskFact, RiskSequencer
from .recovery import RecoveryConfig, Snapshots, incarnation, mark_ready, restarted

VERDICTS_KEPT = 64  # answered questions kept per route, for repeats after a restart
ORDER_WAIT_S = 60.0  # a question waits this long for slower routes before it is answered anyway


class RiskCoordinatorActor:
    def __init__(self, limits: RiskLimits | None = None, recovery: RecoveryConfig | None = None,
                 restore: bool | None = None) -> None:
        self._risk = RiskCoordinator(limits)
        self._verdicts: dict[str, RiskVerdict] = {}
        self._open_questions: dict[str, asyncio.Future[RiskVerdict]] = {}  # key -> its answer, while it waits
        self._answered: dict[str, deque[str]] = {}  # route -> the keys of its last VERDICTS_KEPT answers
        self.repeated_calls = 0
        self.order_timeouts: list[dict[str, Any]] = []  # questions answered before the routes they waited for
        self.wait_s = ORDER_WAIT_S
        self._seq = RiskSequencer(self._risk, (), Decimal(0), ordered=False)
        self._turn: asyncio.Condition | None = None
        self._portfolio: Any | None = None
        self._halt_told = False
        self._daily_told: int | None = None  # the UTC day whose daily loss limit the portfolio was told of
        self._recovery = recovery
        self.snaps = Snapshots(recovery, "risk", "coordinator") if recovery is not None else None
        if recovery is not None and (restore if restore is not None else (restarted() or recovery.resume)):
            self._restore()
        mark_ready()

    def configure(self, routes: Sequence[str], capital_krw: Decimal, ordered: bool = True,
                  portfolio: Any | None = None) -> None:
        """The run's routes (their order breaks ties in market time) and capital (equity = capital + booked
        net PnL); ``ordered``: answer in market-time order (replays); ``portfolio``: told when a kill switch
        is booked (it flattens the routes). A restored actor keeps its own routes and capital."""
        self._portfolio = portfolio if portfolio is not None else self._portfolio
        if self._seq.routes or self._seq.booked:
            return
        self._seq = RiskSequencer(self._risk, tuple(routes), capital_krw, ordered=ordered)
        self._save()

    async def progress(self, route: str, done_through_ns: int, facts: Sequence[RiskFact] = ()) -> None:
        """``route`` has reported every trip it opened or closed at or before ``done_through_ns``."""
        self._seq.progress(route, done_through_ns, facts)
        self._save()
        await self._wake()

    async def check_open(self, route: str, symbol: str, venue_notionals: Mapping[Venue, Decimal], now_ns: int,
                         fx_stale: bool = False, key: str | None = None,
                         facts: Sequence[RiskFact] = ()) -> RiskVerdict:
        """May ``route`` open at ``now_ns``? ``facts``: what it did since its last report. Waits for its turn in
        market time (ordered runs); a wait over ``wait_s`` is answered anyway and recorded."""
        if key is not None and key in self._verdicts:
            self.repeated_calls += 1
            return self._verdicts[key]
        if key is not None and key in self._open_questions:  # asked again while the first still waits (a
            # restarted route host repeats its last incarnation's question): one turn, one answer for both
            self.repeated_calls += 1
            return await asyncio.shield(self._open_questions[key])
        if key is None:
            return await self._check_open(route, symbol, venue_notionals, now_ns, fx_stale, key, facts)
        answer = self._open_questions[key] = asyncio.get_running_loop().create_future()
        try:
            verdict = await self._check_open(route, symbol, venue_notionals, now_ns, fx_stale, key, facts)
        except asyncio.CancelledError:
            answer.cancel()
            raise
        except Exception as exc:
            answer.set_exception(exc)
            answer.exception()  # retrieved: a repeat that never came must not log "never retrieved"
            raise
        finally:
            self._open_questions.pop(key, None)
        answer.set_result(verdict)
        return verdict

    async def _check_open(self, route: str, symbol: str, venue_notionals: Mapping[Venue, Decimal], now_ns: int,
                          fx_stale: bool, key: str | None, facts: Sequence[RiskFact]) -> RiskVerdict:
        if not self._seq.ordered:
            self._seq.progress(route, now_ns - 1, facts)
            verdict = self._risk.check_open(route, symbol, venue_notionals, now_ns, fx_stale=fx_stale)
        else:
            self._seq.ask(route, now_ns, facts)
            await self._wake()  # a question is progress too: an earlier one may have waited only for it
            await self._wait_turn(route, now_ns)
            verdict = self._seq.answer(route, venue_notionals)
        if key is not None:
            self._remember(route, key, verdict)
        self._save()
        await self._wake()
        return verdict

    def _remember(self, route: str, key: str, verdict: RiskVerdict) -> None:
        """Keep the answer for a repeat of the question, a route's last VERDICTS_KEPT only: a restarted route
        asks again only what it asked since its last snapshot (one per window). Every answer ever kept grew
        without end and went into every snapshot of this actor (one per question and per progress report)."""
        self._verdicts[key] = verdict
        keys = self._answered.setdefault(route, deque())
        keys.append(key)
        while len(keys) > VERDICTS_KEPT:
            self._verdicts.pop(keys.popleft(), None)

    async def _wait_turn(self, route: str, now_ns: int) -> None:
        if self._turn is None:
            self._turn = asyncio.Condition()
        async with self._turn:
            try:
                await asyncio.wait_for(self._turn.wait_for(lambda: self._seq.ready(route)), self.wait_s)
            except TimeoutError:
                waited_for = {r: self._seq.asking.get(r, self._seq.done_through[r]) for r in self._seq.blocking(route)}
                self.order_timeouts.append({"route": route, "now_ns": now_ns, "waited_for": waited_for})
                logger.warning("risk question of {} at {} answered after {} s without {}", route, now_ns,
                               self.wait_s, waited_for)

    async def _wake(self) -> None:
        self._tell_portfolio()
        if self._turn is not None:
            async with self._turn:
                self._turn.notify_all()

    def _tell_portfolio(self) -> None:
        """A kill switch booked from the routes' reports: the portfolio raises the P0 alert and flattens. A
        daily loss limit reached: the portfolio raises its P0 alert (once per UTC day)."""
        halted = self._risk.state.mode.value == "halted"
        st = self._risk.state
        daily = self._risk.daily_loss_hit() and self._daily_told != st.day
        if not self._seq.flatten and (not halted or self._halt_told) and not daily:
            return
        portfolio = self._find_portfolio()
        if portfolio is None:
            return
        if daily and hasattr(portfolio, "on_risk_alert"):  # a stand-in without it must not fail an answer
            self._daily_told = st.day
            limit = self._risk.limits.daily_loss_limit_krw
            portfolio.on_risk_alert.remote("daily_loss_limit", f"day pnl {st.day_pnl_krw} KRW <= -{limit} KRW: "
                                           "opens refused until the next UTC day", st.last_ns)
        if not self._seq.flatten and (not halted or self._halt_told):
            return
        routes = sorted(self._seq.flatten)
        self._seq.flatten.clear()
        self._halt_told = halted
        portfolio.on_risk_report.remote({"mode": st.mode.value, "flatten": routes, "halt_reason": st.halt_reason},
                                        st.last_ns)

    def _find_portfolio(self) -> Any | None:
        portfolio = self._portfolio
        if portfolio is None and self._recovery is not None:  # a restarted coordinator finds it by name
            import ray

            try:
                portfolio = self._portfolio = ray.get_actor(self._recovery.actor_name("portfolio"))
            except ValueError:
                portfolio = None
        return portfolio

    def check_close(self, route: str, symbol: str, venue_notionals: Mapping[Venue, Decimal],
                    now_ns: int) -> RiskVerdict:
        verdict = self._risk.check_close(route, symbol, venue_notionals, now_ns)
        self._save()
        return verdict

    def on_equity(self, equity_krw: Decimal, now_ns: int) -> dict[str, Any]:
        """Feed the portfolio's equity; returns the mode and the routes to flatten (kill switch). With routes
        reporting their trips (``progress``), equity is booked from them in market-time order, and this
        call only reads the mode and the positions to flatten."""
        if self._seq.routes or self._seq.booked:
            st = self._risk.state
            halted = st.mode.value == "halted"
            return {"mode": st.mode.value, "flatten": sorted(st.positions) if halted else [],
                    "halt_reason": st.halt_reason}
        flatten = self._risk.on_equity(equity_krw, now_ns)
        self._save()
        st = self._risk.state
        return {"mode": st.mode.value, "flatten": flatten, "halt_reason": st.halt_reason}

    def pause(self, reason: str, now_ns: int | None = None) -> None:
        """``now_ns``: market time, from whoever trades on it; a caller on the wall clock (the supervisor)
        passes none, so a replay's risk clock (daily PnL, cooldowns, breaker resets) is not moved to today."""
        self._risk.pause(reason, now_ns)
        self._save()

    def resume(self, now_ns: int) -> None:
        self._risk.resume(now_ns)
        self._save()

    def decisions(self) -> list[dict[str, Any]]:
        return [{"now_ns": d.now_ns, "route": d.route, "action": d.action, "verdict": d.verdict,
                 "first_trigger": d.first_trigger} for d in self._risk.decisions()]

    def snapshot(self) -> dict[str, Any]:
        return self._risk.snapshot()

    def report(self) -> dict[str, Any]:
        """Rejected opens by first trigger and the halt/breaker timeline (summary.json's ``risk``)."""
        self._seq.book()  # trips closed after the last question
        out = self._risk.report()
        if self.order_timeouts:
            out["order_timeouts"] = self.order_timeouts
        return out

    def mode(self) -> str:
        return str(self._risk.state.mode.value)

    def ping(self) -> dict[str, Any]:
        return incarnation()

    def recovery_stats(self) -> dict[str, Any]:
        return {"repeated_calls": self.repeated_calls,
                "snapshots": self.snaps.stats() if self.snaps is not None else None}

    # ---- snapshots
    def _save(self) -> None:
        if self.snaps is None:
            return
        self.snaps.save({"risk": self._risk.snapshot(),
                         "sequencer": self._seq.snapshot(),
                         "verdicts": {k: [v.allowed, v.first_trigger, v.tier, list(v.reasons), v.verdict]
                                      for k, v in self._verdicts.items()}})

    def _restore(self) -> None:
        assert self.snaps is not None
        snap = self.snaps.load()
        if snap is None:
            return
        self._risk.restore(snap["risk"])
        if "sequencer" in snap:  # snapshots of runs from before routes reported through progress have none
            self._seq = RiskSequencer.restore(self._risk, snap["sequencer"])
        self._verdicts = {}
        for k, (a, ft, tier, reasons, v) in snap["verdicts"].items():  # keys are "{route}:{n}", oldest first
            self._remember(k.rsplit(":", 1)[0], k, RiskVerdict(bool(a), ft, tier, tuple(reasons), str(v)))
