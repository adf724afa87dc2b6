"""Alert bookkeeping: severities, per-rule throttling, suppressed counts. Pure: it decides what to emit,
the caller delivers it (pager, chat, log) and nothing here waits on anything.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum

NS_PER_S = 1_000_000_000


class Severity(IntEnum):
    """Lower is more urgent, so ``severity <= Severity.P1`` selects what needs a human soon."""

    P0 = 0  # page now: kill switch, halted trading, a leg left unhedged
    P1 = 1  # urgent: trading on a route or on FX is impaired
    P2 = 2  # look today
    P3 = 3  # info


@dataclass(frozen=True, slots=True)
class AlertRule:
    name: str
    severity: Severity
    throttle_ns: int  # a rule+key emits at most once per window; 0 = never throttled

    def __post_init__(self) -> None:
        if self.throttle_ns < 0:
            raise ValueError(f"throttle_ns must be >= 0, got {self.throttle_ns}")


@dataclass(frozen=True, slots=True)
class Alert:
    rule: str
    severity: Severity
    key: str  # what the alert is about (a route, a venue, an FX pair); throttling is per rule+key
    message: str
    now_ns: int
    suppressed: int  # alerts of this rule+key throttled since the previous emitted one


# the engine's rules; throttles keep a flapping condition from paging every second
KILL_SWITCH, ONE_LEG_UNHEDGED, DAILY_LOSS_LIMIT = "kill_switch", "one_leg_unhedged", "daily_loss_limit"
FX_STALE, FEED_STALE, CIRCUIT_BREAKER = "fx_stale", "feed_stale", "circuit_breaker"
RESTART, RISK_REJECT = "restart", "risk_reject"
SNAPSHOT_CORRUPT = "snapshot_corrupt"  # a damaged snapshot passed over (not an outage: Redis answered)
RECONCILE_MISMATCH = "reconcile_mismatch"  # money moved without the engine knowing (core.reconcile): route halted
RECONCILE_UNVERIFIED = "reconcile_unverified"  # a venue did not answer, or a state was missed: route halted
FEED_DOWN = "feed_down"  # a live venue feed stopped (actors/live_host.py), even if it came back
JOURNAL_DOWN = "journal_down"  # the journal backend failing: records only reach the overflow file
SUPERVISOR_HALT = "supervisor_halt"  # the supervisor gave up restarting: the run is halted
RESEND_FAILED = "resend_failed"  # a leg could not be re-sent after a restart: exposure not known to be hedged
ROUTE_ERROR = "route_error"  # a live route's task died
UNKNOWN_RULE_SEVERITY = Severity.P0


def default_rules() -> tuple[AlertRule, ...]:
    return (
        AlertRule(KILL_SWITCH, Severity.P0, 300 * NS_PER_S),
        AlertRule(ONE_LEG_UNHEDGED, Severity.P0, 60 * NS_PER_S),
        AlertRule(DAILY_LOSS_LIMIT, Severity.P0, 3600 * NS_PER_S),
        AlertRule(FX_STALE, Severity.P1, 300 * NS_PER_S),
        AlertRule(FEED_STALE, Severity.P1, 300 * NS_PER_S),
        AlertRule(CIRCUIT_BREAKER, Severity.P1, 900 * NS_PER_S),
        AlertRule(RESTART, Severity.P2, 0),
        AlertRule(SNAPSHOT_CORRUPT, Severity.P1, 0),
        AlertRule(RECONCILE_MISMATCH, Severity.P0, 300 * NS_PER_S),
        AlertRule(RECONCILE_UNVERIFIED, Severity.P1, 300 * NS_PER_S),
        AlertRule(RISK_REJECT, Severity.P3, 60 * NS_PER_S),
        AlertRule(FEED_DOWN, Severity.P0, 300 * NS_PER_S),
        AlertRule(JOURNAL_DOWN, Severity.P0, 900 * NS_PER_S),
        AlertRule(SUPERVISOR_HALT, Severity.P0, 0),
        AlertRule(RESEND_FAILED, Severity.P0, 60 * NS_PER_S),
        AlertRule(ROUTE_ERROR, Severity.P1, 300 * NS_PER_S),
    )


class AlertBook:
    def __init__(self, rules: Iterable[AlertRule]) -> None:
        self.rules: dict[str, AlertRule] = {}
        for rule in rules:
            if rule.name in self.rules:
                raise ValueError(f"duplicate alert rule {rule.name!r}")
            self.rules[rule.name] = rule
        self._last_emitted: dict[tuple[str, str], int] = {}
        self._suppressed: dict[tuple[str, str], int] = {}

    @classmethod
    def default(cls) -> AlertBook:
        return cls(default_rules())

    def raise_alert(self, rule_name: str, key: str, message: str, now_ns: int) -> Alert | None:
        """The alert to deliver, or None when the same rule+key emitted less than ``throttle_ns`` ago (it is
        then counted and reported on the next emitted alert of that rule+key). An unknown rule name is a
        caller bug, but an alert must not be lost to it: it is emitted at P0, unthrottled, with the name kept."""
        rule = self.rules.get(rule_name)
        severity = rule.severity if rule else UNKNOWN_RULE_SEVERITY
        throttle_ns = rule.throttle_ns if rule else 0
        slot = (rule_name, key)
        last = self._last_emitted.get(slot)
        if last is not None and now_ns - last < throttle_ns:
            self._suppressed[slot] = self._suppressed.get(slot, 0) + 1
            return None
        self._last_emitted[slot] = now_ns
        if rule is None:
            message = f"[unknown alert rule {rule_name!r}] {message}"
        return Alert(rule_name, severity, key, message, now_ns, self._suppressed.pop(slot, 0))

    def suppressed(self, rule_name: str, key: str) -> int:
        """Alerts of this rule+key throttled and not yet reported."""
        return self._suppressed.get((rule_name, key), 0)
