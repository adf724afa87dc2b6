"""Risk questions and facts of routes that run at their own pace, answered in market-time order.

Routes replayed in paper (each in its own actor) and the backtest's routes (one after another in one
process) reach a given market time at different moments. The RiskCoordinator's portfolio tiers (kill
switch, daily loss, portfolio breaker, venue exposure) couple them, so a verdict is only reproducible if it
is given once every route has reported what happened before it, and no earlier question is still open. The
sequencer keeps each route's progress (``done_through``: every fact and question at or before that market
time is in), buffers facts, and says when a question is ``ready``; ``answer`` books every fact up to the
question's time (a closed trip: equity first, then the trip, as the paper portfolio does) and asks
:meth:`risk.RiskCoordinator.check_open`. The backtest driver and the RiskCoordinator actor both use it.

Live trading has one clock: there the actor books facts as they arrive and answers at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from .domain import Venue
from .ledger import EXACT
from .risk import KILL_SWITCH, RiskCoordinator, RiskVerdict
from .risk_feed import NEVER_NS, Fact, TripOpened

NEVER = NEVER_NS
KINDS = ("open", "close")  # a trip's facts in the order they happen


def _order_in_route(kind: str, trip: int) -> tuple[int, int]:
    return trip, KINDS.index(kind)


def _high_waters(keys: Iterable[str]) -> dict[str, tuple[int, int]]:
    """The last fact booked per route, from booked fact keys (``route:kind:trip``; older snapshots hold every
    key booked, newer ones the last per route)."""
    out: dict[str, tuple[int, int]] = {}
    for key in keys:
        route, kind, trip = key.rsplit(":", 2)
        out[route] = max(out.get(route, (-1, -1)), _order_in_route(kind, int(trip)))
    return out


@dataclass(frozen=True, slots=True)
class RiskFact:
    """A trip's open (entry legs' KRW notionals) or close (net PnL), at its fill's market time."""

    kind: str  # "open" | "close"
    route: str
    trip: int
    ts_ns: int
    notionals: tuple[tuple[int, str], ...] = ()  # (venue code, KRW) for an open
    net_krw: str = "0"  # for a close

    @property
    def key(self) -> str:
        return f"{self.route}:{self.kind}:{self.trip}"

    def legs(self) -> dict[Venue, Decimal]:
        return {Venue(v): Decimal(a) for v, a in self.notionals}

    def to_list(self) -> list[Any]:
        return [self.kind, self.route, self.trip, self.ts_ns, [list(n) for n in self.notionals], self.net_krw]

    @classmethod
    def from_list(cls, x: Sequence[Any]) -> RiskFact:
        return cls(str(x[0]), str(x[1]), int(x[2]), int(x[3]), tuple((int(v), str(a)) for v, a in x[4]), str(x[5]))


def risk_facts(facts: Iterable[Fact]) -> list[RiskFact]:
    """The part of core.risk_feed's facts risk needs, in a form that crosses process boundaries."""
    out = []
    for f in facts:
        if isinstance(f, TripOpened):
            out.append(RiskFact("open", f.route, f.trip, f.ts_ns,
                                tuple((int(v), str(a)) for v, a in sorted(f.notionals.items()))))
        else:
            out.append(RiskFact("close", f.route, f.trip, f.ts_ns, net_krw=str(f.pnl.net_krw)))
    return out


@dataclass
class RiskSequencer:
    risk: RiskCoordinator
    routes: tuple[str, ...]  # their order breaks ties in market time
    capital_krw: Decimal
    net_krw: Decimal = Decimal(0)
    done_through: dict[str, int] = field(default_factory=dict)
    asking: dict[str, int] = field(default_factory=dict)  # route -> market time of its open question
    pending: dict[str, RiskFact] = field(default_factory=dict)  # by key, not booked yet
    # route -> (trip, kind rank) of the last fact booked. A route's facts are booked in its own order (open,
    # close, next open...), so a fact at or before it is a repeat: the seen-fact set, bounded to one per route
    # (a set of every key ever booked grew by two per round trip and went into every snapshot)
    booked: dict[str, tuple[int, int]] = field(default_factory=dict)
    flatten: set[str] = field(default_factory=set)  # routes the kill switch told to flatten
    ordered: bool = True  # False (live, one clock): facts are booked as they arrive, questions answered at once

    def __post_init__(self) -> None:
        self._order = {r: k for k, r in enumerate(self.routes)}
        for r in self.routes:
            self.done_through.setdefault(r, -1)

    def progress(self, route: str, done_through: int, facts: Iterable[RiskFact] = ()) -> None:
        """``route`` has reported every fact at or before ``done_through`` (repeats are ignored)."""
        self._known(route)
        for f in facts:
            if not self.is_booked(f):
                self.pending[f.key] = f
        self.done_through[route] = max(self.done_through.get(route, -1), done_through)
        self.book(self.safe_ns() if self.ordered else NEVER)

    def safe_ns(self) -> int:
        """Every fact at or before this market time is in, and no question at or before it is still to come."""
        return min((self.asking[r] - 1 if r in self.asking else self.done_through[r] for r in self.routes),
                   default=NEVER)

    def ask(self, route: str, now_ns: int, facts: Iterable[RiskFact] = ()) -> None:
        """``route`` asks at ``now_ns``: everything it did before then is in ``facts`` or already reported."""
        self.progress(route, now_ns - 1, facts)
        self.asking[route] = now_ns

    def finish(self, route: str, facts: Iterable[RiskFact] = ()) -> None:
        self.progress(route, NEVER, facts)

    def ready(self, route: str) -> bool:
        """May ``route``'s question be answered: every other route is past its time or asks later?"""
        if not self.ordered:
            return True
        mine = (self.asking[route], self._order[route])
        for other in self.routes:
            if other == route:
                continue
            if other in self.asking:
                if (self.asking[other], self._order[other]) < mine:
                    return False
            elif self.done_through[other] < mine[0]:
                return False
        return True

    def blocking(self, route: str) -> list[str]:
        """The routes ``route``'s question waits for (for a diagnostic when a wait times out)."""
        t = self.asking[route]
        return [o for o in self.routes if o != route and (
            (o in self.asking and (self.asking[o], self._order[o]) < (t, self._order[route]))
            or (o not in self.asking and self.done_through[o] < t))]

    def answer(self, route: str, notionals: Mapping[Venue, Decimal]) -> RiskVerdict:
        """Book every fact up to the question's time, then rule on it (call when ``ready``, or on a timeout)."""
        now = self.asking.pop(route)
        self.done_through[route] = max(self.done_through[route], now)  # asked flat, no leg out: nothing else at now
        self.book(now)
        return self.risk.check_open(route, route, notionals, now)

    def book(self, up_to_ns: int = NEVER) -> None:
        """Apply buffered facts at or before ``up_to_ns`` in market-time order (ties: route order, open first)."""
        due = sorted((f for f in self.pending.values() if f.ts_ns <= up_to_ns),
                     key=lambda f: (f.ts_ns, self._order.get(f.route, len(self._order)), f.kind != "open", f.trip))
        for f in due:
            del self.pending[f.key]
            self.booked[f.route] = max(self.booked.get(f.route, (-1, -1)), _order_in_route(f.kind, f.trip))
            if f.kind == "open":
                self.risk.on_position_opened(f.route, f.route, f.legs())
                continue
            net = Decimal(f.net_krw)
            self.net_krw = EXACT.add(self.net_krw, net)
            self.flatten.update(self.risk.on_equity(self.capital_krw + self.net_krw, f.ts_ns))
            self.risk.on_position_closed(f.route)
            if KILL_SWITCH in self.risk.on_round_trip_closed(f.route, net, f.ts_ns):  # the trip's own loss
                self.flatten.update(self.risk.state.positions)

    def is_booked(self, f: RiskFact) -> bool:
        last = self.booked.get(f.route)
        return last is not None and _order_in_route(f.kind, f.trip) <= last

    def _known(self, route: str) -> None:
        if self.ordered and route not in self._order:
            raise ValueError(f"route {route!r} is not one of the sequenced routes {list(self.routes)}")

    def snapshot(self) -> dict[str, Any]:
        return {"routes": list(self.routes), "capital_krw": str(self.capital_krw), "net_krw": str(self.net_krw),
                "done_through": dict(self.done_through), "asking": dict(self.asking),
                "pending": [f.to_list() for f in self.pending.values()],
                "booked": [f"{r}:{KINDS[k]}:{t}" for r, (t, k) in sorted(self.booked.items())],
                "flatten": sorted(self.flatten), "ordered": self.ordered}

    @classmethod
    def restore(cls, risk: RiskCoordinator, snap: Mapping[str, Any]) -> RiskSequencer:
        pending = [RiskFact.from_list(x) for x in snap["pending"]]
        return cls(risk, tuple(snap["routes"]), Decimal(snap["capital_krw"]), Decimal(snap["net_krw"]),
                   {k: int(v) for k, v in snap["done_through"].items()},
                   {k: int(v) for k, v in snap["asking"].items()}, {f.key: f for f in pending},
                   _high_waters(snap["booked"]), set(snap["flatten"]), bool(snap["ordered"]))
