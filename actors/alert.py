"""AlertActor: rules with severities and throttling (core.alerts); delivers to the log for now."""

from __future__ import annotations

from typing import Any

from loguru import logger

from ..core.alerts import Alert, AlertBook


class AlertActor:
    """Fire-and-forget: callers never wait on it, so an alert can never block trading."""

    def __init__(self, run_id: str) -> None:
        self._book = AlertBook.default()
        self._run_id = run_id
        self._sent: list[Alert] = []

    def raise_alert(self, rule: str, key: str, message: str, now_ns: int) -> bool:
        alert = self._book.raise_alert(rule, key, message, now_ns)
        if alert is None:
            return False
        self._sent.append(alert)
        logger.bind(run_id=self._run_id, rule=alert.rule, key=alert.key).log(
            "CRITICAL" if alert.severity <= 1 else "WARNING" if alert.severity == 2 else "INFO",
            "[{}] {} {}: {} (suppressed {})", alert.severity.name, alert.rule, alert.key, alert.message,
            alert.suppressed)
        return True

    def alerts(self) -> list[dict[str, Any]]:
        return [{"rule": a.rule, "severity": a.severity.name, "key": a.key, "message": a.message,
                 "now_ns": a.now_ns, "suppressed": a.suppressed} for a in self._sent]
