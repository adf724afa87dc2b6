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


@pytest.fixture(scope="module")
def baseline(ray_session: Any, sample_stores: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One undisturbed paper run of the sample that every in-session drill compares against."""
    from arbitrage_lite.scenarios.paper import PaperRequest, run_paper

    out = tmp_path_factory.mktemp("drill_baseline")
    run_paper(PaperRequest(sample_stores["btc"], "BTC", out, window_events=100, run_id="dbase"))
    return out


def _assert_zero_loss(result: dict[str, Any]) -> None:
    why = {k: result.get(k) for k in ("why", "supervisor", "chaos", "route_recovery")}
    assert result["kills"] >= 1, result["chaos"]
    assert result["recovered"] == result["kills"], why
    assert result["lost_fills"] == 0 and result["duplicated_fills"] == 0, why
    assert result["fills_drill"] == result["fills_baseline"] > 0, why
    assert result["trades_identical"] and result["ledger_identical"], why
    assert result["ledger_diff_krw"] in ("0", "0E-15") or float(result["ledger_diff_krw"]) == 0.0
    assert result["passed"]


@pytest.mark.parametrize("target", ["route:BTC", "portfolio", "risk", "fx", "feed:upbit"])
def test_kill_drill_loses_and_doubles_nothing(baseline: Path, sample_stores: dict[str, Path], tmp_path: Path,
                                              target: str) -> None:
    result = run_drill(DrillRequest("kill", sample_stores["btc"], "BTC", tmp_path, target=target, times=2,
                                    seed=3, window_events=100, redis_url=REDIS, baseline=baseline))
    _assert_zero_loss(result)
    assert (tmp_path / "drill.json").exists()
    page = (tmp_path / "drill.html").read_text()
    assert "PASSED" in page and page.count("constructor + restore:") == result["kills"]


def test_redis_down_drill_falls_back_to_files(baseline: Path, sample_stores: dict[str, Path],
                                              tmp_path: Path) -> None:
    result = run_drill(DrillRequest("redis-down", sample_stores["btc"], "BTC", tmp_path, window_events=100,
                                    baseline=baseline))
    _assert_zero_loss(result)
    assert result["checks"]["file_fallback_used"]


def test_corrupt_snapshot_drill_skips_it(baseline: Path, sample_stores: dict[str, Path], tmp_path: Path) -> None:
    result = run_drill(DrillRequest("corrupt-snapshot", sample_stores["btc"], "BTC", tmp_path, times=1,
                                    window_events=100, redis_url=REDIS, baseline=baseline))
    _assert_zero_loss(result)
    assert result["checks"] == {"corrupt_snapshot_skipped": True, "snapshot_corrupted": True}


def test_postgres_down_drill_journals_everything_once(baseline: Path, sample_stores: dict[str, Path],
                                                      tmp_path: Path) -> None:
    result = run_drill(DrillRequest("postgres-down", sample_stores["btc"], "BTC", tmp_path, window_events=100,
                                    redis_url=REDIS, baseline=baseline))
    _assert_zero_loss(result)
    journal = result["journal"]
    assert journal["expected"]["intent"] > 0 and journal["expected"]["fill"] > 0
    assert all(result["checks"].values()), journal
    assert result["checks"]["journal_dropped_nothing"] and result["checks"]["intents_fsynced_while_down"]


def test_node_loss_drill_moves_routes_and_loses_nothing(sample_stores: dict[str, Path], tmp_path: Path) -> None:
    """A two-node cluster of its own (a separate process: this session keeps its one Ray start)."""
    import json
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "arbitrage_lite.cli", "drill", "node-loss", "--target",
                           "route:BTC", "--window-events", "100", "--replay", str(sample_stores["btc"]), "--routes",
                           "BTC", "--redis", REDIS, "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=400, check=False)
    assert (tmp_path / "drill.json").exists(), proc.stderr[-3000:]
    result = json.loads((tmp_path / "drill.json").read_text())
    _assert_zero_loss(result)
    assert result["checks"] == {"routes_moved_off_the_lost_node": True, "worker_node_was_lost": True}
    assert proc.returncode == 0


def test_hung_actor_is_found_by_the_supervisor_and_restarted(baseline: Path, sample_stores: dict[str, Path],
                                                            tmp_path: Path) -> None:
    """SIGSTOP: the route is alive but silent. Only the health check can tell; the supervisor kills it after
    ``hung_after_s`` and Ray restarts it from its snapshot."""
    result = run_drill(DrillRequest("kill", sample_stores["btc"], "BTC", tmp_path, target="route:BTC", times=1,
                                    mode="hang", window_events=100, redis_url=REDIS, baseline=baseline))
    _assert_zero_loss(result)
    actions = [e["action"] for e in result["supervisor"]["events"]]
    assert actions[:2] == ["hung", "restart"] and "hung" in result["supervisor"]["events"][1]["reason"]
