"""RiskCoordinatorActor: the tiers of core.risk behind one actor; every verdict is kept with its reason.

Restartable: with a RecoveryConfig it snapshots after every call that changes its state, before answering,
so an answered call is never lost. Calls carry keys (the route's verdict number, the route's trip number): a
call made again -- Ray retrying it after a restart, or a restored route replaying -- gets the first answer
and changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from ..core.domain import Venue
from ..core.risk import RiskCoordinator, RiskLimits, RiskVerdict
from .recovery import RecoveryConfig, Snapshots, incarnation, mark_ready, restarted


class RiskCoordinatorActor:
    def __init__(self, limits: RiskLimits | None = None, recovery: RecoveryConfig | None = None,
                 restore: bool | None = None) -> None:
        self._risk = RiskCoordinator(limits)
        self._verdicts: dict[str, RiskVerdict] = {}
        self._applied: set[str] = set()
        self.repeated_calls = 0
        self.snaps = Snapshots(recovery, "risk", "coordinator") if recovery is not None else None
        if recovery is not None and (restore if restore is not None else (restarted() or recovery.resume)):
            self._restore()
        mark_ready()

    def check_open(self, route: str, symbol: str, venue_notionals: Mapping[Venue, Decimal], now_ns: int,
                   fx_stale: bool = False, key: str | None = None) -> RiskVerdict:
        if key is not None and key in self._verdicts:
            self.repeated_calls += 1
            return self._verdicts[key]
        verdict = self._risk.check_open(route, symbol, venue_notionals, now_ns, fx_stale=fx_stale)
        if key is not None:
            self._verdicts[key] = verdict
        self._save()
        return verdict

    def check_close(self, route: str, symbol: str, venue_notionals: Mapping[Venue, Decimal],
                    now_ns: int) -> RiskVerdict:
        verdict = self._risk.check_close(route, symbol, venue_notionals, now_ns)
        self._save()
        return verdict

    def on_position_opened(self, route: str, symbol: str, venue_notionals: Mapping[Venue, Decimal],
                           key: str | None = None) -> None:
        if self._seen(f"open:{key}" if key is not None else None):
            return
        self._risk.on_position_opened(route, symbol, venue_notionals)
        self._save()

    def on_round_trip_closed(self, route: str, net_pnl_krw: Decimal, now_ns: int,
                             key: str | None = None) -> tuple[str, ...]:
        if self._seen(f"close:{key}" if key is not None else None):
            return ()
        self._risk.on_position_closed(route)
        out = self._risk.on_round_trip_closed(route, net_pnl_krw, now_ns)
        self._save()
        return out

    def on_equity(self, equity_krw: Decimal, now_ns: int) -> dict[str, Any]:
        """Feed the portfolio's equity; returns the mode and the routes to flatten (kill switch)."""
        flatten = self._risk.on_equity(equity_krw, now_ns)
        self._save()
        st = self._risk.state
        return {"mode": st.mode.value, "flatten": flatten, "halt_reason": st.halt_reason}

    def pause(self, reason: str, now_ns: int) -> None:
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
        return self._risk.report()

    def mode(self) -> str:
        return str(self._risk.state.mode.value)

    def ping(self) -> dict[str, Any]:
        return incarnation()

    def recovery_stats(self) -> dict[str, Any]:
        return {"repeated_calls": self.repeated_calls,
                "snapshots": self.snaps.stats() if self.snaps is not None else None}

    # ---- snapshots
    def _seen(self, key: str | None) -> bool:
        if key is None:
            return False
        if key in self._applied:
            self.repeated_calls += 1
            return True
        self._applied.add(key)
        return False

    def _save(self) -> None:
        if self.snaps is None:
            return
        self.snaps.save({"risk": self._risk.snapshot(), "applied": sorted(self._applied),
                         "verdicts": {k: [v.allowed, v.first_trigger, v.tier, list(v.reasons), v.verdict]
                                      for k, v in self._verdicts.items()}})

    def _restore(self) -> None:
        assert self.snaps is not None
        snap = self.snaps.load()
        if snap is None:
            return
        self._risk.restore(snap["risk"])
        self._applied = set(snap["applied"])
        self._verdicts = {k: RiskVerdict(bool(a), ft, tier, tuple(reasons), str(v))
                          for k, (a, ft, tier, reasons, v) in snap["verdicts"].items()}
