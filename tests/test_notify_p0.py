"""P0s the engine raises on its own: the daily loss limit (risk -> portfolio -> alerts) and a journal whose
backend keeps failing (the JournalActor's watch)."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import pytest

from arbitrage_lite.actors.alert import AlertActor
from arbitrage_lite.actors.journal import JournalActor
from arbitrage_lite.actors.portfolio import PortfolioActor
from arbitrage_lite.actors.risk import RiskCoordinatorActor
from arbitrage_lite.actors.route_host import _Local
from arbitrage_lite.core.alerts import Severity, default_rules
from arbitrage_lite.core.risk import RiskLimits
from arbitrage_lite.core.risk_sequencer import RiskFact
from arbitrage_lite.infra.live.killswitch import RiskTap

DAY_NS = 86_400 * 1_000_000_000


class _NoKill:
    """The live host's kill switch stand-in: the daily-loss page must not need it."""

    def on_risk_report(self, report: dict[str, object]) -> None:
        raise AssertionError("not a kill switch report")


@pytest.mark.parametrize("path", ["portfolio", "live_tap"])
def test_daily_loss_limit_raises_one_p0_per_day(path: str) -> None:
    """``live_tap``: as the live host wires it, the coordinator's portfolio is infra.live.killswitch.RiskTap."""
    alerts = AlertActor("daily", None, None)
    risk = RiskCoordinatorActor(RiskLimits(daily_loss_limit_krw=Decimal(1000), max_drawdown_krw=Decimal(10**9)))
    portfolio = PortfolioActor(None)
    portfolio.connect(_Local(risk), {}, _Local(alerts), Decimal(10**6))
    told = _Local(portfolio) if path == "portfolio" else RiskTap(_NoKill(), _Local(portfolio))  # type: ignore[arg-type]
    risk.configure(("BTC",), Decimal(10**6), ordered=False, portfolio=told)

    def trip(n: int, ts: int, net: str) -> list[RiskFact]:
        return [RiskFact("open", "BTC", n, ts, ((0, "5000"),)), RiskFact("close", "BTC", n, ts + 1, net_krw=net)]

    async def run() -> list[str]:
        await risk.progress("BTC", 2, trip(0, 1, "-600"))
        seen = [a["rule"] for a in alerts.alerts()]
        await risk.progress("BTC", 4, trip(1, 3, "-600"))  # day pnl -1200: the limit
        await risk.progress("BTC", 6, trip(2, 5, "-600"))  # still hit the same day: no second page
        await risk.progress("BTC", DAY_NS + 2, trip(3, DAY_NS + 1, "-1500"))  # next day, hit again
        return seen

    before = asyncio.run(run())
    daily = [a for a in alerts.alerts() if a["rule"] == "daily_loss_limit"]
    assert before == [] and len(daily) == 2 and {a["severity"] for a in daily} == {"P0"}
    assert "-1200" in daily[0]["message"] and "-1500" in daily[1]["message"]


class _Alerts:
    def __init__(self) -> None:
        self.raised: list[tuple[str, str, str]] = []

    def raise_alert(self, rule: str, key: str, message: str, now_ns: int) -> None:
        self.raised.append((rule, key, message))


def test_journal_backend_down_raises_journal_down_once(tmp_path: Path) -> None:
    async def run() -> list[tuple[str, str, str]]:
        journal = JournalActor(tmp_path / "r.overflow.jsonl", "postgresql://nobody@127.0.0.1:1/none",
                               retry_max=0.05)
        await journal.start()
        alerts = _Alerts()
        await journal.watch_backend(_Local(alerts), down_after_s=0.3, every_s=0.02)
        for _ in range(100):
            if alerts.raised:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)  # a second raise would come within this if the watch repeated itself
        await journal.close(timeout=0.5)
        return alerts.raised

    raised = asyncio.run(run())
    assert len(raised) == 1 and raised[0][:2] == ("journal_down", "journal") and "127.0.0.1" in raised[0][2]


def test_every_p0_the_engine_raises_has_a_p0_rule() -> None:
    p0 = {r.name for r in default_rules() if r.severity is Severity.P0}
    assert {"kill_switch", "one_leg_unhedged", "daily_loss_limit", "reconcile_mismatch", "feed_down",
            "journal_down", "supervisor_halt", "resend_failed"} <= p0
