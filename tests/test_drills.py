"""Chaos drills on the bundled real sample: an actor killed mid-run (ray.kill and SIGKILL), Redis down,
a corrupt snapshot, PostgreSQL down -- each against an undisturbed run of the same data, nothing lost,
nothing doubled, the same ledger. Real Redis and PostgreSQL; servers that go down are throwaway ones."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from arbitrage_lite.scenarios.drills import DrillRequest, run_drill

pytestmark = pytest.mark.timeout(420)
REDIS = "redis://127.0.0.1:6379/0"


def _assert_zero_loss(result: dict[str, Any]) -> None:
    assert result["kills"] >= 1, result["chaos"]
    assert result["recovered"] == result["kills"]
    assert result["lost_fills"] == 0 and result["duplicated_fills"] == 0
    assert result["fills_drill"] == result["fills_baseline"] > 0
    assert result["trades_identical"] and result["ledger_identical"]
    assert result["ledger_diff_krw"] in ("0", "0E-15") or float(result["ledger_diff_krw"]) == 0.0
    assert result["passed"]


@pytest.mark.parametrize("target", ["route:BTC", "portfolio", "risk", "fx"])
def test_kill_drill_loses_and_doubles_nothing(ray_session: Any, sample_stores: dict[str, Path], tmp_path: Path,
                                              target: str) -> None:
    result = run_drill(DrillRequest("kill", sample_stores["btc"], "BTC", tmp_path, target=target, times=2,
                                    seed=3, window_events=100, redis_url=REDIS))
    _assert_zero_loss(result)
    assert (tmp_path / "drill.json").exists()
