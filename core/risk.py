"""Pre-trade risk: the RiskCoordinator's brain. A Ray actor wraps it later; this module stays pure.

Every check walks the tiers in one fixed order -- global, venue, route, symbol -- and reports the first
trigger (the most senior cause) plus every reason that fired, so the journal shows the whole picture.
Time comes in as int ns UTC; money is Decimal KRW; inputs are facts, never looked up.

Modes: ACTIVE; PAUSED (operator); HALTED (kill switch on drawdown from the equity peak). PAUSED and HALTED
are reducing-only: opens are refused, closes of open positions are allowed. Only an explicit ``resume``
leaves them. Resuming after a kill switch resets the peak to the current equity: the next drawdown is
measured from where the operator restarted (measured from the old peak it would halt again at once).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .domain import Venue

SNAPSHOT_VERSION = 2
NS_PER_DAY = 86_400 * 1_000_000_000
TIERS = ("global", "venue", "route", "symbol")  # evaluation order = precedence

# trigger codes (the alert rules in core/alerts.py reuse the names where they page someone)
HALTED, PAUSED, DAILY_LOSS, GLOBAL_BREAKER = "halted", "paused", "daily_loss_limit", "global_circuit_breaker"
KILL_SWITCH = "kill_switch"
FX_STALE, INVALID, ORDER_NOTIONAL = "fx_stale", "invalid_input", "max_order_notional"
VENUE_EXPOSURE = "venue_exposure"
ROUTE_BREAKER, COOLDOWN, ROUTE_POSITION = "circuit_breaker", "loss_cooldown", "route_position"
NO_POSITION = "no_position"
SYMBOL_POSITION, IMBALANCE = "symbol_position", "inventory_imbalance"

ALLOW, REDUCE_ONLY, REJECT = "allow", "reduce_only", "reject"


class RiskLimits(BaseModel):
    """Risk limits, the ``risk`` section of the engine config. Defaults sized for the default config: a
    10M KRW order per leg, 120M KRW of pre-funded inventory per route (config.InventoryConfig). A leg's KRW
    value is its quantity at that venue's price, so the Binance leg of a 10M order is 10M x (1 - premium):
    order and position limits leave 20 % of headroom over the order size, so a default order passes default
    limits at any premium within +-20 %. A limit trips when a loss *reaches* it; exposure and position limits
    may be reached but not exceeded."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    daily_loss_limit_krw: Decimal = Field(Decimal(2_000_000), gt=0, description="portfolio realized net loss "
                                          "per UTC day (resets at 00:00 UTC of the passed-in time)")
    max_drawdown_krw: Decimal = Field(Decimal(5_000_000), gt=0, description="kill switch: equity this far below "
                                      "its peak halts trading")
    max_trip_loss_krw: Decimal | None = Field(
        Decimal(500_000), gt=0, description="kill switch: one round trip losing this much halts trading (a "
        "hedged trip stopped at strategy.stop_loss_bps loses about 100,000 KRW at the default size; five times "
        "that means the market gapped through the stop: a flash crash, a bad print, a broken venue); None = off")
    max_unhedged_s: float = Field(10.0, gt=0, description="one leg filled and not offset by the other (or its "
                                  "unwind) for longer than this pages one_leg_unhedged (P0), once per trade")
    max_venue_exposure_krw: Decimal = Field(Decimal(50_000_000), gt=0, description="per venue: sum of the open "
                                            "positions' entry notionals on it")
    max_route_position_krw: Decimal = Field(
        Decimal(12_000_000), gt=0, description="per route: open notional in KRW (largest leg); at least "
        "strategy.position_limit_krw plus headroom for the premium")
    max_symbol_position_krw: Decimal = Field(
        Decimal(24_000_000), gt=0,
        description="per symbol, in KRW (not coin qty, so one figure fits every coin): sum over the routes "
                    "trading it of their open notional")
    max_inventory_imbalance: float = Field(
        0.5, gt=0, le=1,
        description="per symbol: |coin on Upbit - coin on Binance| / total coin; 0.5 = a 75/25 split. "
                    "The check does not know a trade's direction, so past it every open of the symbol waits")
    loss_cooldown_s: float = Field(900.0, ge=0, description="per route: no open this long after a losing round trip")
    circuit_breaker_losses: int = Field(
        3, ge=1, description="per route: this many consecutive losing round trips trip the route's breaker")
    global_circuit_breaker_losses: int | None = Field(
        6, ge=1, description="portfolio: this many consecutive losing round trips (any route) trip the "
        "portfolio breaker; None = off")
    circuit_breaker_reset_s: float | None = Field(
        86_400.0, gt=0, description="seconds of market time after which a tripped route or portfolio breaker "
        "resets by itself (its losing streak starts again from 0); None = only an operator reset")
    max_order_notional_krw: Decimal = Field(Decimal(12_000_000), gt=0, description="per order leg, KRW")

    @property
    def loss_cooldown_ns(self) -> int:
        return round(self.loss_cooldown_s * 1e9)

    @property
    def breaker_reset_ns(self) -> int | None:
        return None if self.circuit_breaker_reset_s is None else round(self.circuit_breaker_reset_s * 1e9)

    @model_validator(mode="after")
    def _check(self) -> RiskLimits:
        if self.max_order_notional_krw > self.max_route_position_krw:
            raise ValueError("max_order_notional_krw exceeds max_route_position_krw: no open could pass")
        return self


class RiskMode(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    HALTED = "halted"


@dataclass(frozen=True, slots=True)
class RiskVerdict:
    """``reasons`` hold ``"<tier>.<code>: <detail>"`` in evaluation order; ``first_trigger`` is the first code."""

    allowed: bool
    first_trigger: str | None
    tier: str | None
    reasons: tuple[str, ...]
    verdict: str  # allow | reduce_only (a close allowed under restrictions) | reject

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(r.split(":", 1)[0] for r in self.reasons)


@dataclass(frozen=True, slots=True)
class Decision:
    now_ns: int
    route: str  # "*" for portfolio-wide actions
    action: str  # open | close | kill_switch | pause | resume | reset_route
    verdict: str
    first_trigger: str | None = None


@dataclass(frozen=True, slots=True)
class RiskEvent:
    """A change of what risk allows, in market time: the report's risk timeline and the summary's counts."""

    now_ns: int
    action: str  # kill_switch | pause | resume | breaker_trip | breaker_reset | global_breaker_trip | ...
    route: str  # "*" for the portfolio
    reason: str


MAX_EVENTS = 10_000


@dataclass
class OpenPosition:
    symbol: str
    notionals: dict[Venue, Decimal]  # KRW entry notional per venue leg

    @property
    def size_krw(self) -> Decimal:
        return max(self.notionals.values(), default=Decimal(0))


def _dec(x: object, signed: bool = False) -> Decimal:
    """Money must be Decimal (or int) and finite; non-negative unless ``signed``."""
    if isinstance(x, bool) or not isinstance(x, Decimal | int):
        raise ValueError(f"amount must be Decimal, got {type(x).__name__}")
    d = Decimal(x)
    if not d.is_finite() or (d < 0 and not signed):
        raise ValueError(f"amount must be finite{'' if signed else ' and >= 0'}, got {d}")
    return d


def _notionals(raw: Mapping[Venue, Decimal]) -> dict[Venue, Decimal]:
    if not raw or not all(isinstance(v, Venue) for v in raw):
        raise ValueError(f"venue notionals must be a non-empty mapping of Venue to Decimal, got {raw!r}")
    return {v: _dec(amount) for v, amount in raw.items()}


@dataclass
class RiskCoordinatorState:
    mode: RiskMode = RiskMode.ACTIVE
    halt_reason: str | None = None
    pause_reason: str | None = None
    last_ns: int = 0
    day: int | None = None  # UTC day index (now_ns // NS_PER_DAY) of day_pnl_krw
    day_pnl_krw: Decimal = Decimal(0)
    peak_equity_krw: Decimal | None = None
    last_equity_krw: Decimal | None = None
    loss_streak: dict[str, int] = field(default_factory=dict)
    tripped_routes: set[str] = field(default_factory=set)
    cooldown_until_ns: dict[str, int] = field(default_factory=dict)
    global_loss_streak: int = 0
    global_breaker: bool = False
    positions: dict[str, OpenPosition] = field(default_factory=dict)
    inventory: dict[str, tuple[Decimal, Decimal]] = field(default_factory=dict)  # symbol -> (upbit, binance) coin
    decisions: deque[Decision] = field(default_factory=lambda: deque(maxlen=1000))
    tripped_at_ns: dict[str, int] = field(default_factory=dict)  # route -> market time its breaker tripped
    global_breaker_at_ns: int | None = None
    rejections: dict[str, int] = field(default_factory=dict)  # first trigger -> rejected opens
    events: list[RiskEvent] = field(default_factory=list)  # halts, resumes, breaker trips and resets
    events_dropped: int = 0

    def to_dict(self) -> dict[str, Any]:
        def opt(d: Decimal | None) -> str | None:
            return None if d is None else str(d)
        return {
            "version": SNAPSHOT_VERSION, "mode": self.mode.value, "halt_reason": self.halt_reason,
            "pause_reason": self.pause_reason, "last_ns": self.last_ns, "day": self.day,
            "day_pnl_krw": str(self.day_pnl_krw), "peak_equity_krw": opt(self.peak_equity_krw),
            "last_equity_krw": opt(self.last_equity_krw), "loss_streak": dict(sorted(self.loss_streak.items())),
            "tripped_routes": sorted(self.tripped_routes),
            "cooldown_until_ns": dict(sorted(self.cooldown_until_ns.items())),
            "global_loss_streak": self.global_loss_streak, "global_breaker": self.global_breaker,
            "positions": {r: [p.symbol, {v.label: str(a) for v, a in sorted(p.notionals.items())}]
                          for r, p in sorted(self.positions.items())},
            "inventory": {s: [str(u), str(b)] for s, (u, b) in sorted(self.inventory.items())},
            "decisions": [[d.now_ns, d.route, d.action, d.verdict, d.first_trigger] for d in self.decisions],
            "decisions_maxlen": self.decisions.maxlen,
            "tripped_at_ns": dict(sorted(self.tripped_at_ns.items())),
            "global_breaker_at_ns": self.global_breaker_at_ns,
            "rejections": dict(sorted(self.rejections.items())),
            "events": [[e.now_ns, e.action, e.route, e.reason] for e in self.events],
            "events_dropped": self.events_dropped,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RiskCoordinatorState:
        if d.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"unsupported risk snapshot version {d.get('version')!r}, expected {SNAPSHOT_VERSION}")

        def opt(s: str | None) -> Decimal | None:
            return None if s is None else Decimal(s)
        return cls(
            mode=RiskMode(d["mode"]), halt_reason=d["halt_reason"], pause_reason=d["pause_reason"],
            last_ns=int(d["last_ns"]), day=d["day"], day_pnl_krw=Decimal(d["day_pnl_krw"]),
            peak_equity_krw=opt(d["peak_equity_krw"]), last_equity_krw=opt(d["last_equity_krw"]),
            loss_streak={k: int(v) for k, v in d["loss_streak"].items()}, tripped_routes=set(d["tripped_routes"]),
            cooldown_until_ns={k: int(v) for k, v in d["cooldown_until_ns"].items()},
            global_loss_streak=int(d["global_loss_streak"]), global_breaker=bool(d["global_breaker"]),
            positions={r: OpenPosition(sym, {Venue.parse(v): Decimal(a) for v, a in legs.items()})
                       for r, (sym, legs) in d["positions"].items()},
            inventory={s: (Decimal(u), Decimal(b)) for s, (u, b) in d["inventory"].items()},
            decisions=deque((Decision(*e) for e in d["decisions"]), maxlen=d["decisions_maxlen"]),
            tripped_at_ns={k: int(v) for k, v in d["tripped_at_ns"].items()},
            global_breaker_at_ns=d["global_breaker_at_ns"],
            rejections={k: int(v) for k, v in d["rejections"].items()},
            events=[RiskEvent(int(t), a, r, why) for t, a, r, why in d["events"]],
            events_dropped=int(d["events_dropped"]),
        )


Hit = tuple[str, str, str]  # tier, code, detail


class RiskCoordinator:
    """Risk state machine fed with explicit facts. Checks fail closed: a bad input is a rejection, never an
    exception; the bookkeeping methods (``on_*``) raise ``ValueError`` on bad input instead."""

    def __init__(self, limits: RiskLimits | None = None, state: RiskCoordinatorState | None = None,
                 decision_log_size: int = 1000) -> None:
        self.limits = limits or RiskLimits()
        self.state = state or RiskCoordinatorState(decisions=deque(maxlen=decision_log_size))

    def check_open(self, route: str, symbol: str, venue_notionals: Mapping[Venue, Decimal], now_ns: int,
                   *, fx_stale: bool = False) -> RiskVerdict:
        """May ``route`` open (or grow) a position of ``venue_notionals`` (KRW per order leg) in ``symbol``?"""
        self._advance(now_ns)
        lim, st = self.limits, self.state
        hits = self._restrictions(route, now_ns)
        if fx_stale:
            hits.append(("global", FX_STALE, "FX reading is stale"))
        try:
            legs = _notionals(venue_notionals)
        except ValueError as exc:
            hits.append(("global", INVALID, str(exc)))
            return self._verdict(route, "open", hits, reducing=False)
        for v, amount in legs.items():
            if amount > lim.max_order_notional_krw:
                hits.append(("global", ORDER_NOTIONAL, f"{v.label} leg {amount} > {lim.max_order_notional_krw}"))
        for v in Venue:  # fixed order
            if v in legs and (after := self.venue_exposure(v) + legs[v]) > lim.max_venue_exposure_krw:
                hits.append(("venue", VENUE_EXPOSURE, f"{v.label} exposure {after} > {lim.max_venue_exposure_krw}"))
        pos = st.positions.get(route)
        current = pos.notionals if pos else {}
        route_after = max(current.get(v, Decimal(0)) + legs.get(v, Decimal(0)) for v in Venue)
        if route_after > lim.max_route_position_krw:
            hits.append(("route", ROUTE_POSITION, f"position {route_after} > {lim.max_route_position_krw}"))
        symbol_after = route_after + sum((p.size_krw for r, p in st.positions.items()
                                          if p.symbol == symbol and r != route), Decimal(0))
        if symbol_after > lim.max_symbol_position_krw:
            hits.append(("symbol", SYMBOL_POSITION, f"{symbol} {symbol_after} > {lim.max_symbol_position_krw}"))
        imbalance = self.inventory_imbalance(symbol)
        if imbalance is not None and imbalance > lim.max_inventory_imbalance:
            hits.append(("symbol", IMBALANCE, f"{symbol} imbalance {imbalance:.4f} > {lim.max_inventory_imbalance}"))
        return self._verdict(route, "open", hits, reducing=False)

    def check_close(self, route: str, symbol: str, venue_notionals: Mapping[Venue, Decimal],
                    now_ns: int) -> RiskVerdict:
        """Closing is reducing, so it is allowed in every mode. Refused only when ``route`` holds no ``symbol``
        position on the venues named. KRW amounts cannot tell a coin quantity (prices moved since entry), so
        sizing the close to the held quantity is the caller's job; the amounts are only validated."""
        self._advance(now_ns)
        hits: list[Hit] = []
        try:
            legs = _notionals(venue_notionals)
        except ValueError as exc:
            hits.append(("global", INVALID, str(exc)))
            return self._verdict(route, "close", hits, reducing=False)
        pos = self.state.positions.get(route)
        if pos is None or pos.symbol != symbol:
            hits.append(("route", NO_POSITION, f"{route} holds no {symbol} position"))
        else:
            hits += [("route", NO_POSITION, f"{route} holds no {symbol} leg on {v.label}")
                     for v in legs if v not in pos.notionals]
        if hits:
            return self._verdict(route, "close", hits, reducing=False)
        return self._verdict(route, "close", self._restrictions(route, now_ns), reducing=True)

    def on_round_trip_closed(self, route: str, net_pnl_krw: Decimal, now_ns: int) -> tuple[str, ...]:
        """Book a finished round trip. Returns the codes newly tripped by it (alert rule names)."""
        pnl = _dec(net_pnl_krw, signed=True)
        self._advance(now_ns)
        lim, st = self.limits, self.state
        was_daily = self._daily_hit()
        st.day_pnl_krw += pnl
        events: list[str] = []
        if not was_daily and self._daily_hit():
            events.append(DAILY_LOSS)
            self._event("daily_loss_limit", "*", f"day pnl {st.day_pnl_krw} <= -{lim.daily_loss_limit_krw}")
        if lim.max_trip_loss_krw is not None and -pnl >= lim.max_trip_loss_krw and st.mode is not RiskMode.HALTED:
            events.append(KILL_SWITCH)
            self._halt(f"round trip on {route} lost {-pnl} >= {lim.max_trip_loss_krw} (a gap through the stop)")
        if pnl < 0:
            st.cooldown_until_ns[route] = now_ns + lim.loss_cooldown_ns
            st.loss_streak[route] = st.loss_streak.get(route, 0) + 1
            st.global_loss_streak += 1
            if st.loss_streak[route] >= lim.circuit_breaker_losses and route not in st.tripped_routes:
                st.tripped_routes.add(route)
                st.tripped_at_ns[route] = now_ns
                events.append(ROUTE_BREAKER)
                self._event("breaker_trip", route, f"{st.loss_streak[route]} consecutive losing round trips", now_ns)
            n_global = lim.global_circuit_breaker_losses
            if n_global is not None and st.global_loss_streak >= n_global and not st.global_breaker:
                st.global_breaker = True
                st.global_breaker_at_ns = st.last_ns
                events.append(GLOBAL_BREAKER)
                self._event("global_breaker_trip", "*", f"{st.global_loss_streak} consecutive losing round trips")
        else:  # a win (or break-even) ends both losing streaks
            st.loss_streak[route] = 0
            st.global_loss_streak = 0
        return tuple(events)

    def on_equity(self, equity_krw: Decimal, now_ns: int) -> list[str]:
        """Track the equity peak; a drawdown reaching ``max_drawdown_krw`` halts trading (kill switch).
        Returns the routes to flatten: every route with an open position, on each call while HALTED, so an
        instruction lost in a crash is issued again."""
        equity = _dec(equity_krw, signed=True)
        self._advance(now_ns)
        st = self.state
        st.last_equity_krw = equity
        if st.peak_equity_krw is None or equity > st.peak_equity_krw:
            st.peak_equity_krw = equity
        drawdown = st.peak_equity_krw - equity
        if st.mode is not RiskMode.HALTED and drawdown >= self.limits.max_drawdown_krw:
            self._halt(f"drawdown {drawdown} from equity peak {st.peak_equity_krw} >= {self.limits.max_drawdown_krw}")
        return sorted(st.positions) if st.mode is RiskMode.HALTED else []

    def _halt(self, reason: str) -> None:
        """The kill switch: HALTED (reducing-only) until an operator resumes; open positions are to be flattened."""
        st = self.state
        st.mode, st.halt_reason = RiskMode.HALTED, reason
        self._log("*", "kill_switch", RiskMode.HALTED.value, HALTED)
        self._event("kill_switch", "*", reason)

    def on_inventory(self, symbol: str, upbit_coin: Decimal, binance_coin: Decimal) -> None:
        self.state.inventory[symbol] = (_dec(upbit_coin), _dec(binance_coin))

    def on_position_opened(self, route: str, symbol: str, venue_notionals: Mapping[Venue, Decimal]) -> None:
        """Add filled entry notionals (KRW per venue) to the route's open position."""
        legs = _notionals(venue_notionals)
        pos = self.state.positions.setdefault(route, OpenPosition(symbol, {}))
        if pos.symbol != symbol:
            raise ValueError(f"route {route} already holds {pos.symbol}, not {symbol}")
        for v, amount in legs.items():
            pos.notionals[v] = pos.notionals.get(v, Decimal(0)) + amount

    def on_position_closed(self, route: str, venue_notionals: Mapping[Venue, Decimal] | None = None) -> None:
        """Release exposure. ``None`` = fully closed. Amounts are the entry notionals released (the cost basis,
        not the close's fill value); a leg is clamped at zero and the position dropped when all legs are."""
        pos = self.state.positions.get(route)
        if pos is None:
            return
        released = dict(pos.notionals) if venue_notionals is None else _notionals(venue_notionals)
        for v, amount in released.items():
            left = pos.notionals.get(v, Decimal(0)) - amount
            if left > 0:
                pos.notionals[v] = left
            else:
                pos.notionals.pop(v, None)
        if not pos.notionals:
            del self.state.positions[route]

    def pause(self, reason: str, now_ns: int | None = None) -> None:
        """Reducing-only until ``resume``. A pause does not downgrade a HALTED state."""
        if now_ns is not None:
            self._advance(now_ns)
        if self.state.mode is RiskMode.ACTIVE:
            self.state.mode = RiskMode.PAUSED
        self.state.pause_reason = reason
        self._log("*", "pause", self.state.mode.value, PAUSED)
        self._event("pause", "*", reason)

    def resume(self, now_ns: int, equity_krw: Decimal | None = None) -> None:
        """Explicit operator resume: clears PAUSED / HALTED and the portfolio circuit breaker. After a kill
        switch the peak restarts at the current equity (``equity_krw`` if given, else the last reported).
        The daily loss limit, route breakers (``reset_route``) and cooldowns are not cleared."""
        self._advance(now_ns)
        st = self.state
        if equity_krw is not None:
            st.last_equity_krw = _dec(equity_krw, signed=True)
        if st.mode is RiskMode.HALTED:
            st.peak_equity_krw = st.last_equity_krw
        st.mode, st.halt_reason, st.pause_reason = RiskMode.ACTIVE, None, None
        st.global_breaker, st.global_loss_streak, st.global_breaker_at_ns = False, 0, None
        self._log("*", "resume", st.mode.value)
        self._event("resume", "*", "operator")

    def reset_route(self, route: str, now_ns: int) -> None:
        """Operator reset of a route's circuit breaker and losing streak."""
        self._advance(now_ns)
        self.state.tripped_routes.discard(route)
        self.state.tripped_at_ns.pop(route, None)
        self.state.loss_streak[route] = 0
        self._log(route, "reset_route", RiskMode.ACTIVE.value)
        self._event("breaker_reset", route, "operator")

    def venue_exposure(self, venue: Venue) -> Decimal:
        return sum((p.notionals.get(venue, Decimal(0)) for p in self.state.positions.values()), Decimal(0))

    def inventory_imbalance(self, symbol: str) -> float | None:
        """|upbit - binance| / total coin; 1.0 with no coin at all; None when never reported (not checked)."""
        if symbol not in self.state.inventory:
            return None
        upbit, binance = self.state.inventory[symbol]
        total = upbit + binance
        return 1.0 if total <= 0 else float(abs(upbit - binance) / total)

    def decisions(self) -> tuple[Decision, ...]:
        return tuple(self.state.decisions)

    def snapshot(self) -> dict[str, Any]:
        """JSON-serializable state (Decimals as strings) with a ``version``; limits come from config."""
        return self.state.to_dict()

    def restore(self, snapshot: Mapping[str, Any]) -> None:
        self.state = RiskCoordinatorState.from_dict(snapshot)

    def _advance(self, now_ns: int) -> None:
        """Time only moves forward; a new UTC day starts a new daily PnL; breakers reset after
        ``circuit_breaker_reset_s`` of market time."""
        st = self.state
        st.last_ns = max(st.last_ns, now_ns)
        day = st.last_ns // NS_PER_DAY
        if st.day is None or day > st.day:
            if self._daily_hit():
                self._event("daily_loss_reset", "*", "new UTC day")
            st.day, st.day_pnl_krw = day, Decimal(0)
        reset = self.limits.breaker_reset_ns
        if reset is None:
            return
        if st.global_breaker and st.global_breaker_at_ns is not None and st.last_ns >= st.global_breaker_at_ns + reset:
            st.global_breaker, st.global_loss_streak, st.global_breaker_at_ns = False, 0, None
            self._event("global_breaker_reset", "*", f"{self.limits.circuit_breaker_reset_s:g} s of market time")

    def _event(self, action: str, route: str, reason: str, now_ns: int | None = None) -> None:
        st = self.state
        if len(st.events) >= MAX_EVENTS:
            st.events_dropped += 1
            return
        st.events.append(RiskEvent(st.last_ns if now_ns is None else now_ns, action, route, reason))

    def _route_reset(self, route: str, now_ns: int) -> None:
        """A route's breaker resets at the route's own market time (routes replayed in paper run at their own
        pace: the coordinator's latest time may be another route's)."""
        st, reset = self.state, self.limits.breaker_reset_ns
        at = st.tripped_at_ns.get(route)
        if reset is not None and at is not None and now_ns >= at + reset:
            del st.tripped_at_ns[route]
            st.tripped_routes.discard(route)
            st.loss_streak[route] = 0
            self._event("breaker_reset", route, f"{self.limits.circuit_breaker_reset_s:g} s of market time", now_ns)

    def report(self) -> dict[str, Any]:
        """What risk did over a run, for summary.json: rejected opens by first trigger and the timeline."""
        st = self.state
        return {"mode": st.mode.value, "halt_reason": st.halt_reason,
                "rejections_by_reason": dict(sorted(st.rejections.items())),
                "rejected_opens": sum(st.rejections.values()),
                "events": [{"ts_ns": e.now_ns, "action": e.action, "route": e.route, "reason": e.reason}
                           for e in st.events],
                "events_dropped": st.events_dropped,
                "tripped_routes": sorted(st.tripped_routes), "global_breaker": st.global_breaker}

    def _daily_hit(self) -> bool:
        return self.state.day_pnl_krw <= -self.limits.daily_loss_limit_krw

    def daily_loss_hit(self) -> bool:
        """Today's realized net loss is at the limit: opens are refused until the next UTC day (a P0 alert)."""
        return self._daily_hit()

    def _restrictions(self, route: str, now_ns: int) -> list[Hit]:
        """What blocks opens but not closes, in tier order (the global and route entries). Route-tier clocks
        (cooldown, breaker reset) read the asking route's own time ``now_ns``."""
        self._route_reset(route, now_ns)
        st, hits = self.state, []
        if st.mode is RiskMode.HALTED:
            hits.append(("global", HALTED, st.halt_reason or "halted"))
        if st.pause_reason is not None:
            hits.append(("global", PAUSED, st.pause_reason))
        if self._daily_hit():
            hits.append(("global", DAILY_LOSS, f"day pnl {st.day_pnl_krw} <= -{self.limits.daily_loss_limit_krw}"))
        if st.global_breaker:
            hits.append(("global", GLOBAL_BREAKER, f"{st.global_loss_streak} consecutive losing round trips"))
        if route in st.tripped_routes:
            hits.append(("route", ROUTE_BREAKER, f"{st.loss_streak.get(route, 0)} consecutive losing round trips"))
        until = st.cooldown_until_ns.get(route)
        if until is not None and now_ns < until:
            hits.append(("route", COOLDOWN, f"cooling down after a loss until {until} ns"))
        return hits

    def _verdict(self, route: str, action: str, hits: list[Hit], *, reducing: bool) -> RiskVerdict:
        hits = sorted(hits, key=lambda h: TIERS.index(h[0]))  # stable: keeps the order within a tier
        reasons = tuple(f"{tier}.{code}: {detail}" for tier, code, detail in hits)
        first, tier = (hits[0][1], hits[0][0]) if hits else (None, None)
        allowed = reducing or not hits
        verdict = REJECT if not allowed else (REDUCE_ONLY if hits else ALLOW)
        if not allowed and first is not None:
            key = first if action == "open" else f"{action}:{first}"
            self.state.rejections[key] = self.state.rejections.get(key, 0) + 1
        self._log(route, action, verdict, first)
        return RiskVerdict(allowed, first, tier, reasons, verdict)

    def _log(self, route: str, action: str, verdict: str, first_trigger: str | None = None) -> None:
        self.state.decisions.append(Decision(self.state.last_ns, route, action, verdict, first_trigger))
