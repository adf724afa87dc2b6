"""Supervision policy (pure, time passed in): who restarts with whom, how often, and when to give up.

Modelled on Erlang/OTP supervisors: each supervisor has ordered children and a strategy —
``one_for_one`` restarts only the failed child; ``rest_for_one`` restarts it and every child declared after
it (the children that depend on it). Restart intensity: more than ``max_restarts`` within ``window_ns``
escalates to the parent; a root that escalates halts trading safely (the caller pauses risk, flattens and
raises a P0 alert).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum


class Strategy(StrEnum):
    ONE_FOR_ONE = "one_for_one"
    REST_FOR_ONE = "rest_for_one"


class Action(StrEnum):
    RESTART = "restart"
    ESCALATE = "escalate"  # to the parent supervisor
    HALT = "halt"  # the root gave up: stop opening trades, flatten, P0 alert
    IGNORE = "ignore"  # a transient child that ended normally


@dataclass(frozen=True, slots=True)
class ChildSpec:
    name: str
    transient: bool = False  # transient: restarted only after a failure, not after a normal exit

    def __post_init__(self) -> None:
        if not self.name or any(c.isspace() for c in self.name):
            raise ValueError(f"child name must be non-empty without spaces, got {self.name!r}")


@dataclass(frozen=True, slots=True)
class Intensity:
    max_restarts: int = 3
    window_ns: int = 60 * 1_000_000_000

    def __post_init__(self) -> None:
        if self.max_restarts < 0 or self.window_ns <= 0:
            raise ValueError("max_restarts must be >= 0 and window_ns > 0")


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    restart: tuple[str, ...]  # children to restart, in start order
    reason: str


@dataclass
class SupervisorPolicy:
    name: str
    children: tuple[ChildSpec, ...]
    strategy: Strategy = Strategy.ONE_FOR_ONE
    intensity: Intensity = field(default_factory=Intensity)
    is_root: bool = False
    _recent: deque[int] = field(default_factory=deque, init=False)
    restarts_total: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        names = [c.name for c in self.children]
        if len(set(names)) != len(names):
            raise ValueError(f"supervisor {self.name}: duplicate child names in {names}")

    def index(self, child: str) -> int:
        for i, c in enumerate(self.children):
            if c.name == child:
                return i
        raise KeyError(f"supervisor {self.name} has no child {child!r}")

    def on_exit(self, child: str, now_ns: int, failed: bool, reason: str) -> Decision:
        """What to do after ``child`` died (``failed``) or ended normally."""
        spec = self.children[self.index(child)]
        if not failed and spec.transient:
            return Decision(Action.IGNORE, (), f"{child} ended normally")
        while self._recent and now_ns - self._recent[0] > self.intensity.window_ns:
            self._recent.popleft()
        if len(self._recent) >= self.intensity.max_restarts:
            action = Action.HALT if self.is_root else Action.ESCALATE
            return Decision(action, (), f"{self.name}: {len(self._recent) + 1} restarts within "
                                        f"{self.intensity.window_ns / 1e9:g} s (limit {self.intensity.max_restarts}); "
                                        f"last: {child}: {reason}")
        self._recent.append(now_ns)
        self.restarts_total += 1
        if self.strategy is Strategy.REST_FOR_ONE:
            group = tuple(c.name for c in self.children[self.index(child):])
        else:
            group = (child,)
        return Decision(Action.RESTART, group, f"{child}: {reason}")


@dataclass
class HealthTracker:
    """Dead or hung: a child that failed its last ping, or has not answered one for ``hung_after_ns``."""

    hung_after_ns: int
    _last_ok: dict[str, int] = field(default_factory=dict)
    _dead: set[str] = field(default_factory=set)

    def register(self, child: str, now_ns: int) -> None:
        self._last_ok[child] = now_ns
        self._dead.discard(child)

    def ok(self, child: str, now_ns: int) -> None:
        self._last_ok[child] = max(self._last_ok.get(child, now_ns), now_ns)

    def died(self, child: str) -> None:
        self._dead.add(child)

    def unhealthy(self, now_ns: int) -> list[tuple[str, str]]:
        out = [(c, "dead") for c in sorted(self._dead)]
        out += [(c, "hung") for c, t in sorted(self._last_ok.items())
                if c not in self._dead and now_ns - t > self.hung_after_ns]
        return out
