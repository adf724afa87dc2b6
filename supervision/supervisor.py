"""SupervisorActor: the supervisor tree over a run's actors, with health checks and restart intensity.

Who supervises whom is a tree (``default_tree``): a root over three supervisors -- ``core`` (alert,
portfolio, risk), ``market`` (the feeds and the FX aggregator) and ``routes``. Each child is pinged every
``interval_s``; a ping answered by a new process means the child died and Ray restarted it (the actors are
``max_restarts=-1``: the restart itself is Ray's, the decision is here); a child that has not answered for
``hung_after_s`` is hung and is killed so that it restarts. Every restart goes through the child's
supervisor policy (supervision.policy): ``rest_for_one`` restarts the later siblings too; too many restarts
within the window escalate to the root, which restarts the whole subtree, or, over its own limit, halts
trading safely: the RiskCoordinator pauses (no new opens), every route flattens, a P0 alert goes out.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from loguru import logger

from ..actors.recovery import ping, process_gone
from .policy import Action, ChildSpec, Intensity, Strategy, SupervisorPolicy


@dataclass(frozen=True)
class TreeSpec:
    """Supervisors under the root: name -> (strategy, its children's roles, intensity)."""

    groups: dict[str, tuple[Strategy, tuple[str, ...], Intensity]]
    root_intensity: Intensity = field(default_factory=lambda: Intensity(3, 60 * 1_000_000_000))


def default_tree(roles: list[str], intensity: Intensity | None = None) -> TreeSpec:
    per = intensity or Intensity(max_restarts=10, window_ns=60 * 1_000_000_000)
    core = tuple(r for r in ("alert", "portfolio", "risk") if r in roles)
    market = tuple(r for r in roles if r.startswith("feed:") or r == "fx")
    routes = tuple(r for r in roles if r.startswith("route:"))
    groups = {"core": (Strategy.ONE_FOR_ONE, core, per), "market": (Strategy.ONE_FOR_ONE, market, per),
              "routes": (Strategy.ONE_FOR_ONE, routes, per)}
    return TreeSpec({k: v for k, v in groups.items() if v[1]})


class SupervisorActor:
    def __init__(self, tree: TreeSpec, children: dict[str, Any], risk: Any | None = None, alerts: Any | None = None,
                 interval_s: float = 0.05, hung_after_s: float = 10.0, restart_grace_s: float = 60.0) -> None:
        """``hung_after_s``: a child whose process is alive but silent this long is hung and killed.
        ``restart_grace_s``: how long a child whose process is gone may take to come back (Ray is restarting
        it: killing the new incarnation would only start the restart over) before it is killed as well."""
        self.children, self.risk, self.alerts = children, risk, alerts
        self.interval_s, self.hung_after_s, self.restart_grace_s = interval_s, hung_after_s, restart_grace_s
        self.groups = {name: SupervisorPolicy(name, tuple(ChildSpec(c) for c in kids), strategy, intensity)
                       for name, (strategy, kids, intensity) in tree.groups.items()}
        self.root = SupervisorPolicy("root", tuple(ChildSpec(g) for g in self.groups), Strategy.ONE_FOR_ONE,
                                     tree.root_intensity, is_root=True)
        self.parent = {c: g for g, (_, kids, _) in tree.groups.items() for c in kids}
        self.pids: dict[str, int] = {}
        self.hosts: dict[str, str] = {}
        self.last_ok: dict[str, float] = {}
        self.events: list[dict[str, Any]] = []
        self.halted: str | None = None
        self._stop = asyncio.Event()
        self._forced: set[str] = set()  # siblings this supervisor restarted (their restart is not a new failure)
        self._hung: dict[str, str] = {}  # children killed for hanging: their restart is a failure, with this reason

    async def run(self) -> None:
        while not self._stop.is_set():
            await self.check_once()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.interval_s)

    async def check_once(self) -> None:
        names = list(self.children)
        answers = await asyncio.gather(*[ping(self.children[n], 1.0) for n in names])
        now = time.time()
        for name, ans in zip(names, answers, strict=True):
            if ans is None:
                silent = now - self.last_ok.setdefault(name, now)
                restarting = name in self.pids and process_gone(self.pids[name], self.hosts.get(name))
                limit = max(self.restart_grace_s, self.hung_after_s) if restarting else self.hung_after_s
                if silent > limit and name not in self._forced and name not in self._hung:
                    self._hung[name] = f"hung: no answer for {silent:.1f} s, killed to restart"
                    self._log("hung", name, self._hung[name])
                    self._kill(name, counted=True)
                continue
            self.last_ok[name] = now
            pid = int(ans["pid"])
            self.hosts[name] = str(ans.get("host"))
            old = self.pids.setdefault(name, pid)
            if pid != old:
                self.pids[name] = pid
                if name in self._forced:
                    self._forced.discard(name)
                    continue
                await self._on_restart(name, now, self._hung.pop(name, "process died; Ray restarted it"))
                self._after_restart(name)

    def _after_restart(self, name: str) -> None:
        """A restored child may owe its peers something its lost incarnation did not deliver (a halted
        portfolio: the flatten orders); a child with an ``after_restart`` method is asked to see to it."""
        try:
            hook = self.children[name].after_restart
        except AttributeError:
            return
        hook.remote()

    async def _on_restart(self, child: str, now: float, reason: str) -> None:
        group = self.parent[child]
        decision = self.groups[group].on_exit(child, int(now * 1e9), True, reason)
        self._log(decision.action.value, child, decision.reason)
        if self.alerts is not None:
            self.alerts.raise_alert.remote("restart", child, decision.reason, int(now * 1e9))
        if decision.action is Action.RESTART:
            for sibling in decision.restart:
                if sibling != child:
                    self._kill(sibling)
            return
        top = self.root.on_exit(group, int(now * 1e9), True, decision.reason)
        self._log(top.action.value, group, top.reason)
        if top.action is Action.RESTART:
            for c in self.groups[group].children:
                if c.name != child:
                    self._kill(c.name)
            return
        await self._halt(top.reason, now)

    async def _halt(self, reason: str, now: float) -> None:
        if self.halted is not None:
            return
        self.halted = reason
        logger.critical("supervisor halts trading: {}", reason)
        now_ns = int(now * 1e9)
        if self.alerts is not None:
            self.alerts.raise_alert.remote("supervisor_halt", "root", reason, now_ns)
        if self.risk is not None:
            # no time: the supervisor runs on the wall clock, risk on the market's (a replay is years behind)
            await self.risk.pause.remote(f"supervisor: {reason}")
        for name, h in self.children.items():
            if name.startswith("route:"):
                try:
                    h.flatten_all.remote()
                except AttributeError:
                    logger.error("{} cannot flatten (no flatten_all)", name)

    def _kill(self, name: str, counted: bool = False) -> None:
        """Kill ``name`` so that Ray restarts it; ``counted``: its restart is a failure of its own (hung).

        A hung child of this machine gets SIGKILL straight away: ``ray.kill`` asks the process to exit first
        and waits seconds for a stopped or stuck one before it forces it."""
        import ray

        if not counted:
            self._forced.add(name)
        pid, host = self.pids.get(name), self.hosts.get(name)
        if counted and pid is not None and host == socket.gethostname() and not process_gone(pid, host):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                return
        ray.kill(self.children[name], no_restart=False)

    def _log(self, action: str, who: str, reason: str) -> None:
        self.events.append({"at": time.time(), "action": action, "who": who, "reason": reason})

    def report(self) -> dict[str, Any]:
        return {"events": list(self.events), "halted": self.halted,
                "restarts": {g: p.restarts_total for g, p in self.groups.items()},
                "root_restarts": self.root.restarts_total}

    async def stop(self) -> dict[str, Any]:
        self._stop.set()
        return self.report()
