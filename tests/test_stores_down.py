"""Redis (snapshots) and PostgreSQL (journal) taken away together mid-run, an actor killed while both are
down and another one later: the run ends as the undisturbed one did and the journal is whole. The servers
that go down are throwaway ones (infra/throwaway.py); the shared ones are never touched."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from arbitrage_lite.infra.journal_sqlite import SqliteJournal
from arbitrage_lite.scenarios.drills import DrillRequest, run_drill
from arbitrage_lite.scenarios.paper import PaperRequest, run_paper

pytestmark = [pytest.mark.ray, pytest.mark.timeout(400)]


async def _counts(path: Path, run_id: str) -> dict[str, int]:
    backend = SqliteJournal(path)
    await backend.open()
    try:
        return {kind.value: n for kind, n in (await backend.counts(run_id)).items()}
    finally:
        await backend.close()


def test_a_run_survives_redis_and_postgres_going_away_together(ray_session: Any, sample_stores: dict[str, Path],
                                                               tmp_path: Path) -> None:
    """The portfolio is killed right after both stores went down (its newest snapshot is the one Redis
    took), the route later while they are still down. Before, the portfolio came back empty and the run
    died with 'route BTC was never funded'."""
    base = tmp_path / "base"
    run_paper(PaperRequest(sample_stores["btc"], "BTC", base, window_events=100, run_id="sdbase",
                           journal_dir=str(tmp_path / "base_journal")))
    result = run_drill(DrillRequest("stores-down", sample_stores["btc"], "BTC", tmp_path / "drill",
                                    target="portfolio", window_events=100, baseline=base))
    why = {k: result.get(k) for k in ("why", "supervisor", "chaos", "route_recovery", "journal")}
    assert result["kills"] == result["recovered"] == 1, why
    assert result["lost_fills"] == 0 and result["duplicated_fills"] == 0, why
    assert result["fills_drill"] == result["fills_baseline"] > 0, why
    assert result["trades_identical"] and result["ledger_identical"], why
    assert all(result["checks"].values()), result["checks"]
    assert result["passed"]
    journal = result["journal"]
    assert journal["stats"]["spilled"] > 0 and journal["stats"]["dropped"] == 0  # the outage hit the journal
    expected = asyncio.run(_counts(tmp_path / "base_journal" / "journal.sqlite3", "sdbase"))
    # every record of the undisturbed run, exactly once (rows are unique on their key); alerts differ (restarts)
    assert {k: n for k, n in journal["counts"].items() if k != "alert"} == \
        {k: n for k, n in expected.items() if k != "alert"}
    overflow = tmp_path / "drill" / "journal" / f"{result['run_id']}.overflow.jsonl"
    assert overflow.stat().st_size == 0
