"""MetricsActor: keeps the run's Prometheus metrics, fed where each fact exists.

Pushed by the routes (PnL, round trips, wins, open positions, feed-to-intent latencies). Pulled, every
``period_s``, from the health pings of the actors it watches: feeds (events delivered, stale stretches),
the FX aggregator (age of the rate in use), every actor's process (snapshot outcomes; a new process id is a
restart), and the RiskCoordinator's decisions (rejections by first trigger). The driver serves what
``families()`` returns (infra/metrics.Exporter), so the page is up before this actor is.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Iterable
from typing import Any

from prometheus_client.metrics_core import Metric

from ..core import risk as risk_codes
from ..infra.metrics import SNAPSHOT_OUTCOMES, EngineMetrics, Totals

FEED_ROLES = {"feed:upbit": "upbit", "feed:binance": "binance", "feed:fx": "fx"}
RISK_TRIGGERS = (risk_codes.HALTED, risk_codes.PAUSED, risk_codes.DAILY_LOSS, risk_codes.GLOBAL_BREAKER,
                 risk_codes.FX_STALE, risk_codes.INVALID, risk_codes.ORDER_NOTIONAL, risk_codes.VENUE_EXPOSURE,
                 risk_codes.ROUTE_BREAKER, risk_codes.COOLDOWN, risk_codes.ROUTE_POSITION,
                 risk_codes.SYMBOL_POSITION, risk_codes.IMBALANCE)
FX_PAIR = "USDT/KRW"


class MetricsActor:
    def __init__(self) -> None:
        self._m = EngineMetrics()
        self._totals = Totals()
        self._seen = self._totals.seen  # (source, what) -> the monotone total counted so far
        self._pids: dict[str, int] = {}
        self._pinged: dict[str, float] = {}  # role -> monotonic time of its last answered ping (readiness)
        self._task: asyncio.Task[None] | None = None
        self._children: dict[str, Any] = {}
        for outcome in SNAPSHOT_OUTCOMES:
            self._m.snapshots.labels(outcome)
        for trigger in RISK_TRIGGERS:
            self._m.risk_triggers.labels(trigger)

    # ---- pushed by the routes
    def latencies(self, seconds: Iterable[float]) -> None:
        for s in seconds:
            self._m.latency.observe(s)

    def route_stats(self, route: str, net_pnl_krw: float, trades: int, wins: int, open_positions: int,
                    market_hours: float) -> None:
        self._m.pnl.labels(route).set(net_pnl_krw)
        self._advance(self._m.trades.labels(route), ("trades", route), trades)
        self._advance(self._m.wins.labels(route), ("wins", route), wins)
        self._m.win_rate.labels(route).set(wins / trades if trades else 0.0)
        self._m.trades_per_hour.labels(route).set(trades / market_hours if market_hours > 0 else 0.0)
        self._m.open_positions.labels(route).set(open_positions)

    # ---- facts taken from the watched actors (also callable directly)
    def risk_trigger(self, trigger: str, n: int = 1) -> None:
        self._m.risk_triggers.labels(trigger).inc(n)

    def snapshot(self, outcome: str, n: int = 1) -> None:
        self._m.snapshots.labels(outcome).inc(n)

    def restart(self, actor: str) -> None:
        self._m.restarts.labels(actor).inc()

    def fx_staleness(self, pair: str, seconds: float) -> None:
        self._m.fx_staleness.labels(pair).set(seconds)

    def feed(self, venue: str, events: int, gaps: int) -> None:
        self._m.events.labels(venue).inc(events)
        if gaps:
            self._m.feed_gaps.labels(venue, "stale").inc(gaps)

    def _advance(self, counter: Any, key: tuple[str, str], total: float) -> None:
        """Count a monotone total reported again and again: add what is new since the last report."""
        self._totals.advance(counter, key, total)

    # ---- the poll of the watched actors
    async def watch(self, children: dict[str, Any], routes: list[str], period_s: float = 0.5) -> None:
        """Poll ``children`` (role -> handle) every ``period_s`` until ``stop``; declare every label now."""
        for role in children:
            self._m.restarts.labels(role)
        for route in routes:
            for g in (self._m.pnl, self._m.win_rate, self._m.trades_per_hour, self._m.open_positions,
                      self._m.premium):
                g.labels(route)
            self._m.trades.labels(route)
            self._m.wins.labels(route)
        for venue in FEED_ROLES.values():
            self._m.events.labels(venue)
            self._m.feed_gaps.labels(venue, "stale")
        self._m.fx_staleness.labels(FX_PAIR)
        self._children = children
        self._task = asyncio.get_running_loop().create_task(self._poll_forever(children, period_s))

    async def _poll_forever(self, children: dict[str, Any], period_s: float) -> None:
        while True:
            await self.poll(children)
            await asyncio.sleep(period_s)

    async def poll(self, children: dict[str, Any], timeout_s: float = 1.0) -> None:
        """One round: every child's ping (a hung one just misses it), and the risk decisions."""
        roles = list(children)
        pings = await asyncio.gather(*[self._ask(children[r].ping, timeout_s) for r in roles])
        for role, ping in zip(roles, pings, strict=True):
            if isinstance(ping, dict):
                self._take_ping(role, ping)
        risk = children.get("risk")
        if risk is not None and hasattr(risk, "decisions"):
            decisions = await self._ask(risk.decisions, timeout_s)
            counts: dict[str, int] = {}
            for d in decisions if isinstance(decisions, list) else []:
                if d.get("verdict") != risk_codes.ALLOW and d.get("first_trigger"):
                    counts[d["first_trigger"]] = counts.get(d["first_trigger"], 0) + 1
            for trigger, n in counts.items():
                self._advance(self._m.risk_triggers.labels(trigger), ("risk", trigger), n)

    @staticmethod
    async def _ask(method: Any, timeout_s: float) -> Any:
        try:
            return await asyncio.wait_for(method.remote(), timeout_s)
        except Exception:  # not answering (dead, hung, restarting) is skipped: the next round asks again
            return None

    def _take_ping(self, role: str, ping: dict[str, Any]) -> None:
        self._pinged[role] = time.monotonic()
        pid = ping.get("pid")
        if isinstance(pid, int):
            if role in self._pids and self._pids[role] != pid:
                self._m.restarts.labels(role).inc()
                for key in [k for k in self._seen if k[0] == f"proc:{role}"]:
                    del self._seen[key]  # a new process counts its snapshots from 0
            self._pids[role] = pid
        for outcome, n in (ping.get("snapshot_outcomes") or {}).items():
            self._advance(self._m.snapshots.labels(outcome), (f"proc:{role}", outcome), n)
        for route, bps in (ping.get("premium_bps") or {}).items():
            self._m.premium.labels(route).set(float(bps))
        venue = FEED_ROLES.get(role)
        if venue is not None:
            self._advance(self._m.events.labels(venue), (f"proc:{role}", "events"), ping.get("events", 0))
            self._advance(self._m.feed_gaps.labels(venue, "stale"), ("stale", venue), ping.get("stale_stretches", 0))
        if role == "fx" and ping.get("fx_age_s") is not None:
            self._m.fx_staleness.labels(FX_PAIR).set(float(ping["fx_age_s"]))

    async def stop(self) -> None:
        """Stop polling after one last round (the final page holds the run's end)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.poll(self._children)

    def families(self) -> list[Metric]:
        return self._m.families()

    def health(self, max_silence_s: float = 5.0) -> dict[str, Any]:
        """Which watched actors have not answered a ping for ``max_silence_s`` (the paper run's /readyz)."""
        children = self._children
        now = time.monotonic()
        silent = sorted(r for r in children if now - self._pinged.get(r, -math.inf) > max_silence_s)
        return {"watching": bool(children), "actors": len(children), "silent": silent}

    def names(self) -> list[str]:
        return self._m.names()


async def relay(metrics: Any, exporter: Any, period_s: float = 0.5) -> None:
    """Driver side: hand what the MetricsActor collected to the page (infra/metrics.Exporter) until cancelled."""
    while True:
        with contextlib.suppress(Exception):  # a missed round shows the previous one; the next tries again
            exporter.update(await metrics.families.remote(), await metrics.health.remote())
        await asyncio.sleep(period_s)
