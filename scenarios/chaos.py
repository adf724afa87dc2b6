"""Chaos: kill a run's actor at random moments while it trades, and time how long it takes to come back.

A kill is either ``ray.kill(handle, no_restart=False)`` (Ray's own way to kill an actor that may restart)
or SIGKILL to the actor's worker process (what a crash or the OOM killer does); ``mixed`` alternates. The
moments are feed windows, drawn with a seed (the run's progress, not wall time, so a kill lands inside the
run on a slow machine and a fast one alike). Recovery time: from the kill to the first health ping answered
by the new incarnation (it has restored its snapshot by then: that happens in its constructor).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..actors.recovery import ping
from ..infra.throwaway import pid_alive

MODES = ("ray_kill", "sigkill", "mixed", "hang")  # hang: SIGSTOP, the supervisor must notice


@dataclass(frozen=True)
class ScriptStep:
    """At ``at`` (fraction of the run's windows): ``kill`` the target (then call ``fn``, if any, while it is
    down), ``crash``: ``fn`` takes the target down some other way (e.g. removes its node), or ``call`` ``fn``
    (stop or start a server, ...). After ``kill`` and ``crash`` the time to recover is measured."""

    at: float
    action: str
    fn: Callable[[], Any] | None = None

    def __post_init__(self) -> None:
        if (self.action not in ("kill", "call", "crash") or not 0 < self.at < 1
                or (self.action in ("call", "crash") and self.fn is None)):
            raise ValueError(f"bad script step {self}")


@dataclass(frozen=True)
class ChaosPlan:
    target: str  # a child's role: route:BTC (or route:host0), feed:upbit, portfolio, risk, fx, alert
    times: int
    seed: int = 0
    mode: str = "mixed"
    progress: str = "feed:binance"  # the feed whose windows say how far the run is
    recover_timeout_s: float = 60.0
    script: tuple[ScriptStep, ...] = ()  # scripted steps, in addition to ``times`` random kills

    def __post_init__(self) -> None:
        if self.times < 0:
            raise ValueError(f"times must be >= 0, got {self.times}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")


def _breakdown(t0: float, now: dict[str, Any]) -> dict[str, float] | None:
    """Where a restart's time went: Ray noticing and starting a process, the process importing the package,
    the constructor (compiled code loaded, snapshot restored), and the first answered ping."""
    start, imported, ready = now.get("process_start"), now.get("imported_at"), now.get("ready_at")
    if start is None or imported is None or ready is None:
        return None
    return {"to_new_process": round(start - t0, 3), "imports": round(imported - start, 3),
            "constructor": round(ready - imported, 3), "to_first_ping": round(float(now["at"]) - ready, 3)}


async def run_chaos(plan: ChaosPlan, children: dict[str, Any]) -> dict[str, Any]:
    """Kill ``plan.target`` ``plan.times`` times during the run; returns what happened, kill by kill. The
    progress feed holds the run at each scripted call until the call has returned."""
    if plan.target not in children:
        raise ValueError(f"no actor {plan.target!r} in this run; there are {sorted(children)}")
    target, progress = children[plan.target], children[plan.progress]
    rng = random.Random(plan.seed)
    first = await ping(progress, 30.0)
    if first is None:
        raise RuntimeError(f"{plan.progress} does not answer")
    total = int(first["windows"])
    last = max(2, int(total * 0.8))  # leave the run's end alone: a kill there may find the run already over
    points = sorted(rng.sample(range(1, last), min(plan.times, last - 1)))
    steps = sorted([(p, ScriptStep(0.5, "kill")) for p in points]
                   + [(max(1, int(st.at * total)), st) for st in plan.script], key=lambda x: x[0])
    held = [p for p, st in steps if st.action == "call"]  # the run waits there while the call runs
    if held:
        await progress.hold.remote(held)
    try:
        kills, calls = await _steps(plan, target, progress, steps)
    finally:
        for p in held:
            with contextlib.suppress(Exception):
                await progress.release.remote(p)
    return {"target": plan.target, "planned": len(steps), "kills": kills, "calls": calls}


async def _steps(plan: ChaosPlan, target: Any, progress: Any, steps: list[tuple[int, ScriptStep]]
                 ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    import ray

    kills: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    for j, (point, step) in enumerate(steps):
        over = False
        while True:  # the run has got this far: the feed has sent it, and the target (if it says) applied it
            state = await ping(progress, 5.0)
            if state is None:
                over = True  # the feed is gone: the run ended
                break
            if state["next_window"] < point:
                await asyncio.sleep(0.005)
                continue
            mine = await ping(target, 5.0)
            if mine is not None and mine.get("finished"):
                over = True
                break
            if mine is not None and mine.get("next_window", point) >= point:
                break
            await asyncio.sleep(0.005)
        before = None
        if not over and step.action != "call":
            before = await ping(target, 30.0)  # a loaded 2-core machine can keep an actor busy for seconds
            if before is None:
                over = await ping(progress, 5.0) is None  # the run ended meanwhile (its actors are gone)
                if not over:
                    raise RuntimeError(f"{plan.target} does not answer before kill {len(kills) + 1}")
        if over:
            for _, later in steps[j:]:  # no kill lands any more, but servers that went down come back
                if later.action == "call" and later.fn is not None:
                    await asyncio.to_thread(later.fn)
                    calls.append({"window": None, "call": getattr(later.fn, "__name__", "fn"), "after_end": True})
            break
        if step.action == "call":
            assert step.fn is not None
            t0 = time.time()
            await asyncio.to_thread(step.fn)
            calls.append({"window": point, "call": getattr(step.fn, "__name__", "fn"), "s": time.time() - t0})
            with contextlib.suppress(Exception):
                await progress.release.remote(point)
            continue
        assert before is not None
        how = plan.mode if plan.mode != "mixed" else ("ray_kill" if len(kills) % 2 == 0 else "sigkill")
        t0 = time.time()
        if step.action == "crash":
            assert step.fn is not None
            how = getattr(step.fn, "__name__", "crash")
            await asyncio.to_thread(step.fn)
        elif how == "ray_kill":
            ray.kill(target, no_restart=False)
        elif how == "hang":
            os.kill(int(before["pid"]), signal.SIGSTOP)  # alive but silent: only a health check can tell
        else:
            os.kill(int(before["pid"]), signal.SIGKILL)
        if step.fn is not None and step.action == "kill":
            gone = time.time() + 10.0
            while pid_alive(int(before["pid"])) and time.time() < gone:  # ray.kill returns before the process ends
                await asyncio.sleep(0.005)
            step.fn()  # e.g. corrupt its newest snapshot while it is down
        recovered = None
        parts: dict[str, float] | None = None
        while time.time() - t0 < plan.recover_timeout_s:
            now = await ping(target, 2.0)
            if now is not None and now["pid"] != before["pid"]:
                recovered = time.time() - t0
                parts = _breakdown(t0, now)
                break
            await asyncio.sleep(0.01)
        kills.append({"window": point, "how": how, "pid_before": before["pid"], "recover_s": recovered,
                      "recover_parts_s": parts})
    return kills, calls


def stop_run(run_id: str) -> int:
    """Kill every named actor of run ``run_id`` for good (``no_restart``): what a crash of the whole system,
    or an operator's stop, leaves behind -- its snapshots and journal only. Returns how many were killed."""
    import ray

    names = [a["name"] if isinstance(a, dict) else a for a in ray.util.list_named_actors()]
    mine = [n for n in names if n.startswith(f"{run_id}:")]
    for name in mine:
        with contextlib.suppress(ValueError):  # gone meanwhile
            ray.kill(ray.get_actor(name), no_restart=True)
    return len(mine)
