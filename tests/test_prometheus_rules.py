"""The Prometheus rules and config in deploy/prometheus: valid for promtool, unit-tested, and about real metrics.

promtool comes from Debian's ``prometheus`` package (.ci/run installs it): skipped locally without it, failed
in CI. The unit tests (deploy/prometheus/tests) feed series to every alert and check it fires, or stays quiet.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from arbitrage_lite.infra.metrics import EngineMetrics

PROM = Path(__file__).resolve().parents[1] / "deploy" / "prometheus"
SUFFIXES = ("_total", "_bucket", "_sum", "_count", "_created")


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("promtool not found (Debian package prometheus; .ci/run installs it)")
        pytest.skip("promtool not found (apt-get install prometheus)")
    return path


def run(*args: str) -> str:
    done = subprocess.run([promtool(), *args], cwd=PROM, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_rules_and_config_are_valid() -> None:
    assert "SUCCESS" in run("check", "rules", *sorted(str(p.relative_to(PROM)) for p in PROM.glob("rules/*.yml")))
    run("check", "config", "prometheus.yml")


def test_alert_unit_tests_pass() -> None:
    tests = sorted(str(p.relative_to(PROM)) for p in PROM.glob("tests/*.yml"))
    assert tests
    run("test", "rules", *tests)


def referenced_metrics(text: str) -> set[str]:
    """The engine's metric families an expression names (``arb_x_total`` -> ``arb_x``), recording rules aside."""
    names = set()
    for raw in re.findall(r"(?<![:\w])arb_[a-z_]+", text):
        for suffix in SUFFIXES:
            if raw.endswith(suffix):
                raw = raw[: -len(suffix)]
                break
        names.add(raw)
    return names


def test_rules_only_name_metrics_the_engine_exports() -> None:
    exported = set(EngineMetrics().names())
    text = "\n".join(p.read_text() for p in PROM.glob("rules/*.yml"))
    named = referenced_metrics(text)
    assert named and named <= exported, sorted(named - exported)


def test_every_alert_names_a_runbook_section_that_exists() -> None:
    runbook = (PROM.parents[1] / "docs" / "runbook.md").read_text()
    anchors = {line[3:].strip() for line in runbook.splitlines() if line.startswith("## ")}
    text = "\n".join(p.read_text() for p in PROM.glob("rules/*.yml"))
    named = set(re.findall(r"runbook: docs/runbook\.md#([a-z-]+)", text))
    alerts = re.findall(r"- alert: ", text)
    assert len(named) >= 5 and len(re.findall(r"runbook: ", text)) == len(alerts)
    assert named <= anchors, sorted(named - anchors)
