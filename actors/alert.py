"""AlertActor: rules with severities and throttling (core.alerts); delivers to the log, and with channels
configured (``alerts`` config section) also to people through a durable outbox (infra.notify)."""

from __future__ import annotations

from typing import Any

from loguru import logger

from ..core.alerts import Alert, AlertBook, Severity
from ..core.alerts_config import AlertsConfig
from ..infra.notify import build_notifier
from .recovery import RecoveryConfig, Snapshots, incarnation, mark_ready, restarted


class AlertActor:
    """Fire-and-forget: callers never wait on it, so an alert can never block trading. With a RecoveryConfig
    the alerts sent so far are snapshotted and come back after a restart."""

    def __init__(self, run_id: str, recovery: RecoveryConfig | None = None, journal: Any | None = None,
                 notify: AlertsConfig | None = None) -> None:
        self._book = AlertBook.default()
        # channels configured: raising appends to the outbox, a dispatcher thread delivers (never the caller)
        self._notifier = None
        if notify is not None:
            try:
                self._notifier = build_notifier(notify, run_id)
            except Exception as exc:  # an outbox that cannot open must not stop the engine: log-only, loudly
                logger.critical("alert channels off, alerts reach the log only: outbox {} failed to open: {}",
                                notify.queue.backend, exc)
        if self._notifier is not None:
            self._notifier.start()
        self._journal = journal  # a JournalActor: every alert sent is journalled
        self._run_id = run_id
        self._sent: list[Alert] = []
        self.snaps = Snapshots(recovery, "alert", "sent") if recovery is not None else None
        if self.snaps is not None and recovery is not None and (restarted() or recovery.resume):
            snap = self.snaps.load()
            if snap is not None:
                self._sent = [Alert(r, Severity(int(sev)), k, m, int(t), int(n)) for r, sev, k, m, t, n in snap["sent"]]
        mark_ready()

    def raise_alert(self, rule: str, key: str, message: str, now_ns: int) -> bool:
        alert = self._book.raise_alert(rule, key, message, now_ns)
        if alert is None:
            return False
        self._sent.append(alert)
        if self._notifier is not None:
            text = f"{alert.message} (suppressed {alert.suppressed})" if alert.suppressed else alert.message
            self._notifier.enqueue(alert.rule, int(alert.severity), alert.key, text, alert.now_ns)
        if self._journal is not None:
            from ..infra.journal import alert_record

            self._journal.submit.remote([alert_record(self._run_id, alert)])
        if self.snaps is not None:
            self.snaps.save({"sent": [[a.rule, int(a.severity), a.key, a.message, a.now_ns, a.suppressed]
                                      for a in self._sent]})
        logger.bind(run_id=self._run_id, rule=alert.rule, key=alert.key).log(
            "CRITICAL" if alert.severity <= 1 else "WARNING" if alert.severity == 2 else "INFO",
            "[{}] {} {}: {} (suppressed {})", alert.severity.name, alert.rule, alert.key, alert.message,
            alert.suppressed)
        return True

    def alerts(self) -> list[dict[str, Any]]:
        return [{"rule": a.rule, "severity": a.severity.name, "key": a.key, "message": a.message,
                 "now_ns": a.now_ns, "suppressed": a.suppressed} for a in self._sent]

    def delivery(self) -> dict[str, Any]:
        """The outbox's state: channels, undelivered per channel, dead letters, counters (empty: log only)."""
        if self._notifier is None:
            return {}
        return {**self._notifier.status(), "dead_letters": self._notifier.dead_letters()}

    def close(self) -> None:
        if self._notifier is not None:
            self._notifier.stop()

    def ping(self) -> dict[str, Any]:
        return incarnation()
