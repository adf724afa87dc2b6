"""The dashboard's state, built in the driver from read-only questions, never on the trading path.

Every ``period_s`` the driver asks: the portfolio for the closed trips it has not read yet (exact Decimals:
PnL, equity, drawdown and win rate are computed here from them, as summary.json computes them from the
trips), the RiskCoordinator for its state (mode, open positions, breakers, cooldowns, last decision per
route), the AlertActor for its alerts, and the MetricsActor for its families (the latest premium per route).
A question that is not answered in time keeps the previous answer (the page says when it was updated).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, localcontext
from typing import Any

from ...core.ledger import EXACT

RECENT = 20  # trades and alerts on the page


@dataclass
class Sources:
    """The actors the dashboard reads (any may be None) and what the run knows up front."""

    routes: Sequence[str]
    capital_krw: Decimal
    portfolio: Any = None
    risk: Any = None
    alerts: Any = None
    metrics: Any = None
    guards: Mapping[str, Sequence[Any]] = field(default_factory=dict)  # route -> StatusPeriods (universe)
    mode: str = "paper"
    host: Any = None  # live: the LiveHostActor (its status gives each route's premium and position)


@dataclass
class _Seen:
    trips: list[dict[str, Any]] = field(default_factory=list)
    risk: dict[str, Any] | None = None
    alerts: list[dict[str, Any]] = field(default_factory=list)
    premium: dict[str, float] = field(default_factory=dict)
    open_positions: dict[str, float] = field(default_factory=dict)


def pnl_figures(trips: Sequence[Mapping[str, Any]], capital_krw: Decimal) -> dict[str, Any]:
    """Net PnL, equity, drawdown (exact; as core.metrics.max_drawdown_exact: trips in close-time order), wins."""
    peak = cum = worst = Decimal(0)
    wins = 0
    with localcontext(EXACT):
        for t in sorted(trips, key=lambda t: (int(t["ts_ns"]), str(t["route"]), t.get("trip") or 0)):
            net = Decimal(t["net_krw"])
            cum += net
            peak = max(peak, cum)
            worst = max(worst, peak - cum)
            wins += net > 0
        equity = capital_krw + cum
    n = len(trips)
    return {"net_pnl_krw": format(cum, "f"), "equity_krw": format(equity, "f"),
            "capital_krw": format(capital_krw, "f"), "max_drawdown_krw": format(worst, "f"),
            "drawdown_krw": format(peak - cum, "f"), "trades": n, "wins": wins,
            "win_rate": wins / n if n else None}


def _route_state(route: str, trips: Sequence[Mapping[str, Any]], seen: _Seen, now_ns: int,
                 guards: Sequence[Any]) -> dict[str, Any]:
    risk = seen.risk or {}
    mine = [t for t in trips if t["route"] == route]
    position = (risk.get("positions") or {}).get(route)
    last = next((d for d in reversed(risk.get("decisions") or []) if d[1] == route), None)
    cooldown = int((risk.get("cooldown_until_ns") or {}).get(route, 0))
    active = [p.reason for p in guards if p.start_ns <= now_ns and (p.end_ns is None or now_ns < p.end_ns)]
    open_trip = (position is not None) if seen.risk is not None else bool(seen.open_positions.get(route))
    return {"route": route, "premium_bps": seen.premium.get(route), "open_trip": open_trip,
            "position": None if position is None else {"symbol": position[0], "notionals": position[1]},
            "guard": {"state": "guarded" if active else "clear", "reasons": active},
            "risk": {"tripped": route in (risk.get("tripped_routes") or []), "cooldown": cooldown > now_ns,
                     "loss_streak": int((risk.get("loss_streak") or {}).get(route, 0)),
                     "last_decision": None if last is None else {"action": last[2], "verdict": last[3],
                                                                 "first_trigger": last[4]}},
            **{k: v for k, v in pnl_figures(mine, Decimal(0)).items() if k not in ("equity_krw", "capital_krw")}}


def build_state(src: Sources, seen: _Seen, phase: str) -> dict[str, Any]:
    """The JSON the page shows (``GET /api/state``)."""
    trips = seen.trips
    risk = seen.risk
    now_ns = max([int(t["ts_ns"]) for t in trips] + [int((risk or {}).get("last_ns") or 0)])
    head = pnl_figures(trips, src.capital_krw)
    return {"mode": src.mode, "phase": phase, "updated_at": time.time(), "market_time_ns": now_ns or None,
            **head,
            "risk": None if risk is None else {"mode": risk.get("mode"), "halt_reason": risk.get("halt_reason"),
                                               "pause_reason": risk.get("pause_reason"),
                                               "global_breaker": risk.get("global_breaker"),
                                               "day_pnl_krw": risk.get("day_pnl_krw"),
                                               "rejections": risk.get("rejections") or {}},
            "routes": [_route_state(r, trips, seen, now_ns, src.guards.get(r, ())) for r in src.routes],
            "recent_trades": list(reversed(trips[-RECENT:])),
            "alerts": list(reversed(seen.alerts[-RECENT:])), "alerts_total": len(seen.alerts)}


async def _ask(call: Any, timeout_s: float) -> Any:
    try:
        return await asyncio.wait_for(call, timeout_s)
    except Exception:  # not answering (busy, restarting): the previous answer stays
        return None


async def refresh(src: Sources, seen: _Seen, timeout_s: float = 2.0) -> None:
    """One round of questions; what answers replaces what was seen."""
    if src.portfolio is not None:
        got = await _ask(src.portfolio.trips_since.remote(len(seen.trips)), timeout_s)
        if isinstance(got, dict):
            if got["total"] < len(seen.trips):  # a restarted portfolio: its log starts over
                seen.trips = []
            seen.trips.extend(got["trips"])
    if src.risk is not None:
        got = await _ask(src.risk.snapshot.remote(), timeout_s)
        if isinstance(got, dict):
            seen.risk = got
    if src.alerts is not None:
        got = await _ask(src.alerts.alerts.remote(), timeout_s)
        if isinstance(got, list):
            seen.alerts = got
    if src.host is not None:
        status = await _ask(src.host.status.remote(), timeout_s)
        for route, r in (status or {}).get("routes", {}).items():
            premium = r.get("premium_bps")
            if premium is not None and premium == premium:  # NaN while the route has no FX
                seen.premium[route] = float(premium)
            seen.open_positions[route] = 1.0 if r.get("position") else 0.0
    if src.metrics is not None:
        got = await _ask(src.metrics.families.remote(), timeout_s)
        targets = {"arb_premium_bps": seen.premium, "arb_open_positions": seen.open_positions}
        for fam in got or []:
            for s in fam.samples if fam.name in targets else ():
                targets[fam.name][s.labels.get("route", "")] = float(s.value)


async def poll_state(src: Sources, server: Any, period_s: float = 0.5) -> None:
    """Driver side: refresh and hand the state to the server every ``period_s`` until cancelled."""
    seen = _Seen()
    while True:
        with contextlib.suppress(Exception):  # a failed round shows the previous state; the next tries again
            await refresh(src, seen)
            server.update(build_state(src, seen, "running"))
        await asyncio.sleep(period_s)


async def final_state(src: Sources, server: Any) -> dict[str, Any]:
    """The run's end: everything read again from the start, marked ``finished`` (what summary.json says)."""
    seen = _Seen()
    await refresh(src, seen, timeout_s=30.0)
    state = build_state(src, seen, "finished")
    server.update(state)
    return state


class RunBoard:
    """A run's dashboard in one piece (the live driver's): the server, and the poll feeding it on this loop."""

    def __init__(self, src: Sources, server: Any) -> None:
        self.src, self.server = src, server
        self._task = asyncio.ensure_future(poll_state(src, server))

    async def close(self) -> dict[str, int]:
        """The final state, then the server stops; returns its request counts."""
        self._task.cancel()
        with contextlib.suppress(Exception):
            await final_state(self.src, self.server)
        counts: dict[str, int] = self.server.close()
        return counts
