"""The live host's kill switch, pause/resume of opens, and its shutdown policy.

Flattening is the route's own close, not a side channel: the route's kernel is told to flatten
(``RouteActor.flatten``) and closes its position at its next decision with the same IOC legs at a protective
price, through the same gateways, caps and journal as any close. That needs market data, so a shutdown
flattens *before* the feeds stop. New opens are refused meanwhile by the RiskCoordinator (PAUSED, or HALTED
after its own kill switch): closes are reducing and always allowed.

Shutdown (``wind_down`` then ``finish``): no new opens; with ``on_stop="flatten"`` every open position is
flattened and waited for (bounded); after the feeds stop, each venue is asked for the open orders of this run
(its client id prefix) and they are cancelled; what is still open is listed. The default is ``flatten``: a
live host starts flat (``restore=False``: a later run does not take an earlier run's position over), so a
position left at exit is managed by nobody until an operator closes it by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from decimal import Decimal
from typing import Any

from loguru import logger

from ...core.book import Q_MID
from ...core.client_ids import parse_client_id
from ...core.ledger import units_to_dec
from ...core.route_state import L_ACTIVE, L_DONE, S_FLATTEN, S_PEND, S_POS_DIR, S_POS_QTY
from ...core.venue import CancelOrder, OrderState

ON_STOP = ("flatten", "report")
CLOSE_ACTIONS = ("c", "u")  # client id leg = action + venue: c(lose) and u(nwind) legs reduce a position


class ControlError(ValueError):
    """A control request that cannot be done as asked (unknown route, no RiskCoordinator): the message says why."""


class KillSwitch:
    """One per live host: the operator's and the risk coordinator's words on opens and positions, logged."""

    def __init__(self, host: Any) -> None:
        self.host = host
        self.events: list[dict[str, Any]] = []  # every pause / resume / flatten, with who asked
        self.marks: dict[str, int] = {}  # route -> its issued-id count at its first flatten request

    # ---- operator words
    def pause(self, reason: str, source: str = "operator") -> dict[str, Any]:
        """No new opens until ``resume``; closes go on."""
        self._coordinator().pause(reason or "paused", time.time_ns())
        self._log("pause", source, reason)
        return self.state()

    def resume(self, source: str = "operator") -> dict[str, Any]:
        """Opens allowed again. A flatten still waiting on a position goes on; a flat route forgets it."""
        self._coordinator().resume(time.time_ns())
        for route in self.host.routes.values():
            if _idle_flat(route):
                route.state.si[S_FLATTEN] = 0
        self._log("resume", source, "")
        return self.state()

    async def flatten(self, routes: list[str] | None, reason: str, source: str = "operator",
                      pause: bool = True) -> dict[str, Any]:
        """The kill switch: no new opens (``pause``), and every route named (None: all) closes its position at
        its next decision with real orders. A flat route with no leg out has nothing to close and is not told:
        the kernel keeps the word until a close clears it, so it would close its next position at once."""
        names = list(self.host.routes) if routes is None else routes
        unknown = [r for r in names if r not in self.host.routes]
        if unknown:
            raise ControlError(f"unknown route {', '.join(unknown)} (routes: {', '.join(self.host.routes)})")
        if pause and self.host.risk is not None:
            self.host.risk.pause(reason or "kill switch", time.time_ns())
        for name in names:
            route = self.host.routes[name]
            self.marks.setdefault(name, route.n_issued)
            if not _idle_flat(route):
                await route.flatten()
        self._log("flatten", source, reason, names)
        return self.state()

    def on_risk_report(self, report: dict[str, Any]) -> None:
        """The RiskCoordinator booked its kill switch (HALTED): flatten the routes it names and every route the
        kernels say holds a position (the coordinator knows only the positions it was told of)."""
        held = [name for name, r in self.host.routes.items() if int(r.state.si[S_POS_DIR]) != 0]
        names = sorted(set(report.get("flatten") or ()) | set(held))
        names = [n for n in names if n in self.host.routes]
        if report.get("mode") != "halted" and not names:
            return
        task = asyncio.ensure_future(self.flatten(names, f"risk: {report.get('halt_reason')}", "risk", pause=False))
        task.add_done_callback(_log_failure)

    # ---- what is open
    def positions(self) -> list[dict[str, Any]]:
        """Every route holding a position (or with legs in flight): direction per venue, quantity, notional."""
        out = []
        for name, r in self.host.routes.items():
            si, legs = r.state.si, r.state.legs
            direction = int(si[S_POS_DIR])
            in_flight = bool(si[S_PEND]) or any(legs[s, L_ACTIVE] and not legs[s, L_DONE] for s in range(4))
            if direction == 0 and not in_flight:
                continue
            qty = units_to_dec(int(si[S_POS_QTY]))
            mid = float(r.state.quotes[0, Q_MID])
            notional = (qty * Decimal(repr(mid))).quantize(Decimal(1)) if mid == mid and mid > 0 else None
            out.append({"route": name, "direction": direction,
                        "upbit": "short" if direction > 0 else "long" if direction < 0 else "flat",
                        "binance": "long" if direction > 0 else "short" if direction < 0 else "flat",
                        "qty": format(qty, "f"), "notional_krw": None if notional is None else format(notional, "f"),
                        "legs_in_flight": in_flight, "flatten_pending": bool(si[S_FLATTEN])})
        return out

    def flatten_orders(self) -> dict[str, Any]:
        """The close and unwind legs routes sent since they were told to flatten, and how many got fills."""
        sent = filled = 0
        ids: list[str] = []
        for name, mark in self.marks.items():
            route = self.host.routes[name]
            for cid in route.issued_since(mark):
                leg = cid.rsplit("-", 1)[-1]
                if not leg.startswith(CLOSE_ACTIONS):
                    continue
                sent += 1
                ids.append(cid)
                order = route.orders.get(cid)
                filled += order is not None and order.filled_qty > 0
        return {"sent": sent, "filled": filled, "client_ids": ids[-50:]}

    def state(self) -> dict[str, Any]:
        risk = self.host.risk
        return {"mode": risk.mode() if risk is not None else None, "positions": self.positions(),
                "flatten_orders": self.flatten_orders(), "events": self.events[-20:]}

    async def wait_flat(self, routes: list[str] | None, timeout_s: float, poll_s: float = 0.05) -> bool:
        """True once every route named (None: all) is flat with no leg in flight; False at the timeout."""
        names = set(self.host.routes if routes is None else routes)
        end = time.monotonic() + timeout_s
        while True:
            if not [p for p in self.positions() if p["route"] in names]:
                return True
            if time.monotonic() >= end:
                return False
            await asyncio.sleep(poll_s)

    # ---- shutdown
    async def wind_down(self, on_stop: str, timeout_s: float) -> dict[str, Any]:
        """Before the feeds stop: no new opens; ``flatten``: close every position and wait up to ``timeout_s``."""
        if on_stop not in ON_STOP:
            raise ControlError(f"on_stop must be one of {', '.join(ON_STOP)}, not {on_stop!r}")
        t0 = time.monotonic()
        if self.host.risk is not None:
            self.host.risk.pause("shutdown", time.time_ns())
            self._log("pause", "shutdown", "shutdown")
        flat = not self.positions()
        if on_stop == "flatten" and not flat:
            await self.flatten(None, "shutdown", "shutdown", pause=False)
            flat = await self.wait_flat(None, timeout_s)
        return {"on_stop": on_stop, "flat_before_stop": flat, "wind_down_s": round(time.monotonic() - t0, 3)}

    async def finish(self, wound: dict[str, Any], timeout_s: float = 10.0) -> dict[str, Any]:
        """After the feeds stopped and the routes finished their legs: cancel this run's open orders on every
        venue, list what is left. A venue that does not answer is reported, never waited for beyond ``timeout_s``."""
        cancelled: list[dict[str, str]] = []
        errors: list[str] = []
        for venue, client in self.host.clients.items():
            try:
                cancelled += await asyncio.wait_for(self._cancel_open(venue, client), timeout_s)
            except Exception as exc:  # reported in the summary: an operator must look at that venue
                errors.append(f"{venue}: {type(exc).__name__}: {exc}")
        out = dict(wound) | {"positions_left": self.positions(), "orders_cancelled": cancelled,
                             "flatten_orders": self.flatten_orders(), "events": self.events}
        if errors:
            out["errors"] = errors
        return out

    async def _cancel_open(self, venue: str, client: Any) -> list[dict[str, str]]:
        run_id = self.host.spec.run_id
        out = []
        for ev in await client.open_orders(None):
            parsed = parse_client_id(ev.client_id or "")
            if parsed is None or parsed.run_id != run_id:
                continue  # not this run's: an operator's or another run's order is left alone
            answer = await client.cancel(CancelOrder(ev.client_id, ev.symbol, time.time_ns()))
            out.append({"venue": venue, "client_id": ev.client_id, "symbol": ev.symbol,
                        "state": answer.state.value if answer.state is not OrderState.REJECTED else
                        f"rejected: {answer.detail}"})
        return out

    # ---- helpers
    def _coordinator(self) -> Any:
        if self.host.risk is None:
            raise ControlError("this live host runs without a RiskCoordinator: opens cannot be paused")
        return self.host.risk

    def _log(self, what: str, source: str, reason: str, routes: list[str] | None = None) -> None:
        self.events.append({"ts_ns": time.time_ns(), "what": what, "source": source, "reason": reason}
                           | ({"routes": routes} if routes is not None else {}))
        logger.info("live control: {} by {} ({}){}", what, source, reason, f" routes {routes}" if routes else "")


class RiskTap:
    """What the host's RiskCoordinator is given as its portfolio: its kill switch word reaches the host's
    flatten path at once, in-process, and the real portfolio (alerts, its own flatten calls) as before."""

    def __init__(self, kill: KillSwitch, portfolio: Any | None) -> None:
        self.kill, self.portfolio = kill, portfolio
        self.on_risk_report = _TapMethod(self)
        self.on_risk_alert = _AlertMethod(self)  # the coordinator's daily-loss page reaches the portfolio's alerts


class _TapMethod:
    def __init__(self, tap: RiskTap) -> None:
        self.tap = tap

    def remote(self, report: dict[str, Any], now_ns: int) -> None:
        self.tap.kill.on_risk_report(report)
        if self.tap.portfolio is not None:
            self.tap.portfolio.on_risk_report.remote(report, now_ns)


class _AlertMethod:
    def __init__(self, tap: RiskTap) -> None:
        self.tap = tap

    def remote(self, rule: str, message: str, now_ns: int) -> None:
        if self.tap.portfolio is not None:
            self.tap.portfolio.on_risk_alert.remote(rule, message, now_ns)


def _idle_flat(route: Any) -> bool:
    """No position and no action in flight (an open in flight becomes a position: it must be told)."""
    si = route.state.si
    return int(si[S_POS_DIR]) == 0 and not si[S_PEND]


def _log_failure(task: asyncio.Future[Any]) -> None:
    with contextlib.suppress(asyncio.CancelledError):
        if task.exception() is not None:
            logger.error("kill switch flatten failed: {}", task.exception())
