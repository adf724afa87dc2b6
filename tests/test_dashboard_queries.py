"""Every Grafana panel query returns data from a real Prometheus scraping a real paper run.

Prometheus (Debian's package; .ci/run installs it) scrapes the run's exporter every second with the repo's
recording rules loaded; after the run, each panel's expression is asked over the run's span
(``/api/v1/query_range``): each must return at least one finite sample. Skipped locally without the binary,
failed in CI.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
DASHBOARDS = ROOT / "deploy" / "grafana" / "dashboards"
RULES = ROOT / "deploy" / "prometheus" / "rules"
VARIABLES = {"$route": ".*", "$__rate_interval": "1m", "$__interval": "1s"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def panel_queries() -> list[tuple[str, str]]:
    out = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                expr = target["expr"]
                for name, value in VARIABLES.items():
                    expr = expr.replace(name, value)
                out.append((f"{path.stem}: {panel['title']} [{target['refId']}]", expr))
    return out


def api(port: int, path: str, **params: Any) -> Any:
    url = f"http://127.0.0.1:{port}/api/v1/{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=10) as r:
        body = json.loads(r.read())
    assert body["status"] == "success", body
    return body["data"]


def evaluated_after(port: int, t: float) -> bool:
    """Whether the recording rules have a sample newer than ``t`` (unix seconds)."""
    got = api(port, "query", query="timestamp(arb:net_pnl_krw:sum)")["result"]
    return bool(got) and float(got[0]["value"][1]) > t


def wait_for(check: Any, timeout_s: float, what: str) -> Any:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        try:
            got = check()
            if got:
                return got
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_dashboard_panels_name_only_recorded_or_exported_series() -> None:
    from arbitrage_lite.infra.metrics import EngineMetrics

    recorded = {line.split(":", 1)[1].strip() for p in RULES.glob("*.yml") for line in p.read_text().splitlines()
                if line.strip().startswith("- record:")}
    exported = set(EngineMetrics().names())
    queries = panel_queries()
    assert len(queries) >= 14
    import re

    for title, expr in queries:
        for name in re.findall(r"(?<![\w:])(arb[:_][a-z0-9_:]+)", expr):
            base = re.sub(r"_(total|bucket|sum|count)$", "", name)
            assert name in recorded or base in exported, f"{title}: {name} is neither recorded nor exported"


@pytest.mark.ray
def test_every_panel_returns_data_from_a_paper_run(sample_stores: dict[str, Path], tmp_path: Path,
                                                   ray_session: object) -> None:
    binary = shutil.which("prometheus")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("prometheus not found (Debian package prometheus; .ci/run installs it)")
        pytest.skip("prometheus not found (apt-get install prometheus)")
    from arbitrage_lite.infra.metrics import start_exporter
    from arbitrage_lite.scenarios.paper import PaperRequest, run_paper

    exporter, prom_port = free_port(), free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: [{json.dumps(str(RULES / '*.yml'))}]\n"
        "scrape_configs:\n  - job_name: arbitrage-lite\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{exporter}']}}]\n")
    prom = subprocess.Popen([binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{prom_port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # the test owns the exporter (as the CLI does) so the run's last page stays up for a few more scrapes: the
    # replay ends in seconds, and a target that is gone leaves only stale series
    page = start_exporter(exporter)
    try:
        wait_for(lambda: api(prom_port, "status/runtimeinfo"), 30, "prometheus to answer")
        # the page answers before the run starts: a first scrape of the declared (zero) series
        wait_for(lambda: api(prom_port, "query", query='up{job="arbitrage-lite"} == 1')["result"], 60,
                 "a first successful scrape")
        result: dict[str, Any] = {}
        req = PaperRequest(store=sample_stores["btc"], routes="BTC", out=tmp_path / "paper", window_events=150,
                           metrics_port=exporter, exporter=page)
        t0 = time.time() - 5
        run = threading.Thread(target=lambda: result.update(summary=run_paper(req)))
        run.start()
        run.join(timeout=600)
        assert "summary" in result
        ended = time.time()
        wait_for(lambda: evaluated_after(prom_port, ended + 2), 30, "rules evaluated on the run's last page")
        t1 = time.time()
        empty = []
        for title, expr in panel_queries():
            data = api(prom_port, "query_range", query=expr, start=t0, end=t1, step=1)
            values = [float(v) for series in data["result"] for _, v in series["values"]]
            if not any(math.isfinite(v) for v in values):
                empty.append(f"{title}: {expr}")
        assert not empty, "panels without data:\n" + "\n".join(empty)
    finally:
        page.close()
        prom.terminate()
        prom.wait(timeout=30)
