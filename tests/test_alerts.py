import pytest

from arbitrage_lite.core.alerts import AlertBook, AlertRule, Severity, default_rules

S = 1_000_000_000
T0 = 1_735_689_600 * S


def test_throttle_and_suppressed_count_per_rule_and_key() -> None:
    book = AlertBook([AlertRule("feed_stale", Severity.P1, 60 * S)])
    first = book.raise_alert("feed_stale", "upbit", "no book for 12 s", T0)
    assert first is not None and (first.severity, first.suppressed) == (Severity.P1, 0)
    assert book.raise_alert("feed_stale", "upbit", "no book for 20 s", T0 + 10 * S) is None
    assert book.raise_alert("feed_stale", "upbit", "no book for 30 s", T0 + 59 * S) is None
    assert book.suppressed("feed_stale", "upbit") == 2
    other_key = book.raise_alert("feed_stale", "binance", "no book for 12 s", T0 + 20 * S)
    assert other_key is not None and other_key.suppressed == 0  # keys throttle separately
    after = book.raise_alert("feed_stale", "upbit", "no book for 61 s", T0 + 60 * S)  # window over
    assert after is not None and after.suppressed == 2 and after.message == "no book for 61 s"
    assert book.suppressed("feed_stale", "upbit") == 0
    again = book.raise_alert("feed_stale", "upbit", "still stale", T0 + 121 * S)
    assert again is not None and again.suppressed == 0  # the count was reported once, then reset


def test_zero_throttle_never_suppresses() -> None:
    book = AlertBook.default()
    assert book.raise_alert("restart", "risk", "actor restarted", T0) is not None
    assert book.raise_alert("restart", "risk", "actor restarted", T0) is not None


def test_default_rule_severities() -> None:
    severities = {r.name: r.severity for r in default_rules()}
    assert severities == {
        "kill_switch": Severity.P0, "one_leg_unhedged": Severity.P0, "daily_loss_limit": Severity.P0,
        "fx_stale": Severity.P1, "feed_stale": Severity.P1, "circuit_breaker": Severity.P1,
        "snapshot_corrupt": Severity.P1, "restart": Severity.P2, "risk_reject": Severity.P3,
        "reconcile_mismatch": Severity.P0, "reconcile_unverified": Severity.P1,
        "feed_down": Severity.P0, "journal_down": Severity.P0, "supervisor_halt": Severity.P0,
        "resend_failed": Severity.P0, "route_error": Severity.P1,
    }
    assert Severity.P0 < Severity.P3  # lower = more urgent
    alert = AlertBook.default().raise_alert("kill_switch", "*", "drawdown 2.1M from peak", T0)
    assert alert is not None and alert.severity is Severity.P0


def test_unknown_rule_is_emitted_at_p0_not_lost() -> None:
    alert = AlertBook.default().raise_alert("kil_switch", "*", "typo in the caller", T0)
    assert alert is not None and alert.severity is Severity.P0 and "unknown alert rule" in alert.message


def test_bad_rules_refused() -> None:
    with pytest.raises(ValueError):
        AlertRule("x", Severity.P3, -1)
    with pytest.raises(ValueError, match="duplicate"):
        AlertBook([AlertRule("x", Severity.P3, 0), AlertRule("x", Severity.P2, 0)])
