"""PortfolioActor: the ledger of record — balances per venue and route, fills, PnL per route and in total.

Exact money (core.ledger, Decimal). Every fill carries an id and every closed trip its route's trip number:
seen twice, applied once. With a RecoveryConfig it snapshots after every change, before answering, and
comes back from the newest snapshot after a restart; its peers are then found by name (``wiring``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from decimal import Decimal, localcontext
from typing import Any

from ..core.domain import Currency, Venue
from ..core.ledger import EXACT, Fill, Ledger
from ..core.recent import RecentIds
from .recovery import Named, RecoveryConfig, Snapshots, incarnation, mark_ready, restarted

SEEN_KEPT = 4096  # fill ids and closed trips remembered per route (a restarted route resends since its snapshot)
TRIP_LOG_KEPT = 10_000  # closed trips kept for the dashboard's reader


class PortfolioActor:
    def __init__(self, recovery: RecoveryConfig | None = None, wiring: dict[str, Any] | None = None) -> None:
        """``wiring``: Ray names of the peers ({"risk": name | None, "routes": {route: name}, "alerts": name,
        "capital_krw": str}) — what ``connect`` is given as handles, in a form that survives a restart."""
        self._ledgers: dict[str, Ledger] = {}
        # fill ids and closed trips already applied, per route its last SEEN_KEPT (repeats come from a restarted
        # route's recent past); ids from an older snapshot that kept them all: _legacy, never added to
        self._seen = RecentIds(SEEN_KEPT)
        self._closed = RecentIds(SEEN_KEPT)
        self._legacy: set[str] = set()
        self._fills_applied = 0
        self._pnl: dict[str, dict[str, Decimal]] = {}
        self._trips: dict[str, int] = {}
        self._trip_log: deque[dict[str, Any]] = deque(maxlen=TRIP_LOG_KEPT)  # the last closed trips, in arrival
        self._trip_log_total = 0  # order (the dashboard reads them), and how many there were
        self.duplicates = 0
        self._risk: Any = None
        self._routes: dict[str, Any] = {}
        self._alerts: Any = None
        self._capital = Decimal(0)
        self.halted = False
        self._last_now_ns = 0  # market time of the last equity update (the kill switch's clock)
        self.snaps = Snapshots(recovery, "portfolio", "ledger") if recovery is not None else None
        if wiring is not None:
            self.connect(Named(wiring["risk"]) if wiring.get("risk") else None,
                         {r: Named(n) for r, n in wiring["routes"].items()},
                         Named(wiring["alerts"]) if wiring.get("alerts") else None, Decimal(wiring["capital_krw"]))
        if recovery is not None and (restarted() or recovery.resume):
            self._restore()
        mark_ready()

    def connect(self, risk: Any, routes: dict[str, Any], alerts: Any, capital_krw: Decimal) -> None:
        """Who hears about equity: the RiskCoordinator (kill switch), then the routes it says to flatten."""
        self._risk, self._routes, self._alerts, self._capital = risk, routes, alerts, capital_krw

    def fund(self, route: str, initial: dict[tuple[Venue, Currency], Decimal]) -> None:
        if route in self._ledgers:
            return  # funding is idempotent: a restarted route must not double its inventory
        self._ledgers[route] = Ledger.funded(initial)
        self._save()

    def on_fills(self, route: str, fills: Iterable[tuple[str, Fill]]) -> int:
        """Apply ``(fill_id, fill)`` pairs; returns how many were new."""
        ledger = self._ledgers.get(route)
        if ledger is None:  # say where this incarnation's state came from: a lost snapshot shows here
            came = "no snapshots" if self.snaps is None else (
                f"restored from {self.snaps.loaded_from or 'nothing'}, snapshot problems: {self.snaps.problems}")
            raise ValueError(f"route {route} was never funded (portfolio: {came})")
        new = 0
        for fill_id, fill in fills:
            if self._seen.seen(route, fill_id) or fill_id in self._legacy:
                self.duplicates += 1
                continue
            self._seen.add(route, fill_id)
            self._fills_applied += 1
            ledger.apply(fill)
            new += 1
        if new:
            self._save()
        return new

    async def on_trip_closed(self, route: str, gross: Decimal, fees: Decimal, slippage: Decimal, net: Decimal,
                             now_ns: int = 0, trip: int | None = None) -> None:
        if trip is not None:
            key = f"{route}:{trip}"
            if self._closed.seen(route, key) or key in self._legacy:
                self.duplicates += 1
                return
            self._closed.add(route, key)
        acc = self._pnl.setdefault(route, dict.fromkeys(("gross", "fees", "slippage", "net"), Decimal(0)))
        with localcontext(EXACT):
            acc["gross"] += gross
            acc["fees"] += fees
            acc["slippage"] += slippage
            acc["net"] += net
        self._trips[route] = self._trips.get(route, 0) + 1
        self._trip_log_total += 1
        self._trip_log.append({"route": route, "trip": trip, "ts_ns": now_ns, "gross_krw": format(gross, "f"),
                               "fees_krw": format(fees, "f"), "slippage_krw": format(slippage, "f"),
                               "net_krw": format(net, "f")})
        self._last_now_ns = max(self._last_now_ns, now_ns)
        self._save()
        await self._equity_to_risk(now_ns)

    async def after_restart(self) -> int:
        """Called by the supervisor once this actor is back: a halted portfolio tells the RiskCoordinator its
        equity again, so that the flatten orders the lost incarnation may not have delivered go out again
        (without a new closed trip nothing else would send them). Returns how many routes were told."""
        if not self.halted:
            return 0
        return await self._equity_to_risk(self._last_now_ns)

    async def _equity_to_risk(self, now_ns: int) -> int:
        if self._risk is None:
            return 0
        report = await self._risk.on_equity.remote(self._capital + self.net_pnl_krw(), now_ns)
        return self.on_risk_report(report, now_ns)

    def on_risk_alert(self, rule: str, message: str, now_ns: int) -> None:
        """A risk condition that pages without halting (the daily loss limit), told by the coordinator."""
        if self._alerts is not None:
            self._alerts.raise_alert.remote(rule, "portfolio", message, now_ns)

    def on_risk_report(self, report: dict[str, Any], now_ns: int) -> int:
        """The RiskCoordinator's mode and the routes to flatten: asked after each closed trip, and told by the
        coordinator when it books a kill switch in market-time order. Returns how many routes were told."""
        if report["mode"] == "halted" and not self.halted:
            self.halted = True
            self._last_now_ns = max(self._last_now_ns, now_ns)
            self._save()
            if self._alerts is not None:
                self._alerts.raise_alert.remote("kill_switch", "portfolio", str(report["halt_reason"]), now_ns)
        told = 0
        for name in report["flatten"]:
            if name in self._routes:
                self._routes[name].flatten.remote(name)  # a route actor, or the host running that route
                told += 1
        return told

    def net_pnl_krw(self) -> Decimal:
        with localcontext(EXACT):
            return sum((acc["net"] for acc in self._pnl.values()), Decimal(0))

    def balances(self, route: str) -> dict[str, str]:
        ledger = self._ledgers[route]
        return {f"{v.label}.{c.name}": format(b, "f") for (v, c), b in sorted(ledger.balances.items())}

    def all_balances(self) -> dict[str, dict[str, str]]:
        return {route: self.balances(route) for route in sorted(self._ledgers)}

    def report(self) -> dict[str, Any]:
        per_route = {r: {k: format(v, "f") for k, v in acc.items()} | {"trades": self._trips.get(r, 0)}
                     for r, acc in sorted(self._pnl.items())}
        return {"routes": per_route, "net_pnl_krw": format(self.net_pnl_krw(), "f"), "halted": self.halted,
                "fills_applied": self._fills_applied, "duplicates_ignored": self.duplicates}

    def trips_since(self, start: int) -> dict[str, Any]:
        """Closed trips from the ``start``-th on, in arrival order, and how many there are: a reader polls only
        what is new. Not in the snapshot: a restarted portfolio starts a new log (``total`` < what the reader
        has read: it starts over with the trips given, all of them). Only the last TRIP_LOG_KEPT are kept: a
        reader further behind gets those."""
        n, first = self._trip_log_total, self._trip_log_total - len(self._trip_log)
        log = list(self._trip_log)
        return {"total": n, "trips": log[max(start - first, 0):] if start <= n else log}

    def ping(self) -> dict[str, Any]:
        return incarnation()

    # ---- snapshots
    def _save(self) -> None:
        if self.snaps is None:
            return
        ledgers = {route: {"balances": [[int(v), int(c), b] for (v, c), b in lg.balances.items()],
                           "fees": [[int(v), int(c), b] for (v, c), b in lg.fees_paid.items()],
                           "applied": lg.applied} for route, lg in self._ledgers.items()}
        self.snaps.save({"ledgers": ledgers, "seen_by_route": self._seen.to_dict(),
                         "closed_by_route": self._closed.to_dict(), "legacy_seen": sorted(self._legacy),
                         "fills_applied": self._fills_applied,
                         "pnl": self._pnl, "trips": self._trips, "duplicates": self.duplicates,
                         "halted": self.halted, "last_now_ns": self._last_now_ns})

    def _restore(self) -> None:
        assert self.snaps is not None
        snap = self.snaps.load()
        if snap is None:
            return
        self._ledgers = {}
        for route, lg in snap["ledgers"].items():
            ledger = Ledger()
            ledger.balances = {(Venue(v), Currency(c)): Decimal(b) for v, c, b in lg["balances"]}
            ledger.fees_paid = {(Venue(v), Currency(c)): Decimal(b) for v, c, b in lg["fees"]}
            ledger.applied = int(lg["applied"])
            self._ledgers[route] = ledger
        self._seen = RecentIds.from_dict(SEEN_KEPT, snap.get("seen_by_route", {}))
        self._closed = RecentIds.from_dict(SEEN_KEPT, snap.get("closed_by_route", {}))
        self._legacy = {*snap.get("legacy_seen", ()), *snap.get("seen", ()), *snap.get("closed", ())}
        self._fills_applied = int(snap.get("fills_applied", len(snap.get("seen", ()))))
        self._pnl = {r: {k: Decimal(v) for k, v in acc.items()} for r, acc in snap["pnl"].items()}
        self._trips = {r: int(n) for r, n in snap["trips"].items()}
        self.duplicates, self.halted = int(snap["duplicates"]), bool(snap["halted"])
        self._last_now_ns = int(snap.get("last_now_ns", 0))
