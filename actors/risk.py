"""RiskCoordinatorActor: the tiers of core.risk behind one actor; every verdict is kept with its reason."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from ..core.domain import Venue
from ..core.risk import RiskCoordinator, RiskLimits, RiskVerdict


class RiskCoordinatorActor:
    def __init__(self, limits: RiskLimits | None = None) -> None:
        self._risk = RiskCoordinator(limits)

    def check_open(self, route: str, symbol: str, venue_notionals: Mapping[Venue, Decimal], now_ns: int,
                   fx_stale: bool = False) -> RiskVerdict:
        return self._risk.check_open(route, symbol, venue_notionals, now_ns, fx_stale=fx_stale)

    def check_close(self, route: str, symbol: str, venue_notionals: Mapping[Venue, Decimal],
                    now_ns: int) -> RiskVerdict:
        return self._risk.check_close(route, symbol, venue_notionals, now_ns)

    def on_position_opened(self, route: str, symbol: str, venue_notionals: Mapping[Venue, Decimal]) -> None:
        self._risk.on_position_opened(route, symbol, venue_notionals)

    def on_round_trip_closed(self, route: str, net_pnl_krw: Decimal, now_ns: int) -> tuple[str, ...]:
        self._risk.on_position_closed(route)
        return self._risk.on_round_trip_closed(route, net_pnl_krw, now_ns)

    def on_equity(self, equity_krw: Decimal, now_ns: int) -> dict[str, Any]:
        """Feed the portfolio's equity; returns the mode and the routes to flatten (kill switch)."""
        flatten = self._risk.on_equity(equity_krw, now_ns)
        st = self._risk.state
        return {"mode": st.mode.value, "flatten": flatten, "halt_reason": st.halt_reason}

    def pause(self, reason: str, now_ns: int) -> None:
        self._risk.pause(reason, now_ns)

    def resume(self, now_ns: int) -> None:
        self._risk.resume(now_ns)

    def decisions(self) -> list[dict[str, Any]]:
        return [{"now_ns": d.now_ns, "route": d.route, "action": d.action, "verdict": d.verdict,
                 "first_trigger": d.first_trigger} for d in self._risk.decisions()]

    def snapshot(self) -> dict[str, Any]:
        return self._risk.snapshot()
