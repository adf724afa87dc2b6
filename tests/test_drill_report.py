"""drill.html: the verdict, one bar per kill split into its recovery parts, and what differed on failure."""

from __future__ import annotations

from typing import Any

from arbitrage_lite.scenarios.drill_report import PARTS, render_drill_report


def _result(passed: bool, kills: list[dict[str, Any]]) -> dict[str, Any]:
    return {"kind": "kill", "target": "route:BTC", "passed": passed, "kills": len(kills),
            "lost_fills": 0 if passed else 8,
            "chaos": {"kills": kills}, "supervisor": {"events": [{"action": "restart", "who": "route:BTC",
                                                                  "reason": "process died"}], "halted": None},
            "why": {"funnel": {"baseline": {"closed": 2}, "drill": {"closed": 0}}}}


def test_each_kill_is_a_bar_of_its_recovery_parts() -> None:
    kills = [{"window": 16, "how": "ray_kill", "recover_s": 1.02,
              "recover_parts_s": {"to_new_process": 0.1, "imports": 0.6, "constructor": 0.3, "to_first_ping": 0.02}},
             {"window": 30, "how": "sigkill", "recover_s": None, "recover_parts_s": None}]
    page = render_drill_report(_result(True, kills))
    assert "PASSED" in page and "What differed" not in page
    assert page.count("<title>imports: 0.600 s</title>") == 1
    assert page.count("<rect") == len(PARTS) + len(PARTS)  # one kill's parts + the legend's swatches
    assert "did not recover" in page and "1.02 s" in page and "target 2 s" in page


def test_a_failed_drill_says_what_differed() -> None:
    page = render_drill_report(_result(False, []))
    assert "FAILED" in page and "What differed" in page and "&quot;closed&quot;: 0" in page
    assert "No kill landed" in page


def test_a_kill_drill_without_a_kill_proves_nothing() -> None:
    from arbitrage_lite.scenarios.drills import nothing_proved

    problem = nothing_proved("kill", 3, 0, 4)
    assert problem is not None and "4 feed windows" in problem
    assert nothing_proved("kill", 3, 1, 4) is None
    assert nothing_proved("redis-down", 0, 0, 40) is None
    page = render_drill_report(_result(False, []) | {"problem": problem})
    assert "no kill landed" in page
