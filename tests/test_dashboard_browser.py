"""The web dashboard (infra/dashboard): a real headless Chromium loads the page during a paper run, sees its
numbers change, and after the run reads the numbers summary.json has; the server refuses a request without
the token and a non-loopback bind.

Needs Debian's ``chromium`` and ``chromium-driver`` and the ``selenium`` package (dev extras): skipped where
they are missing, a failure in CI (``CI`` set), where .ci/run installs them.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from arbitrage_lite.infra.dashboard.server import DashboardServer
from arbitrage_lite.infra.dashboard.state import pnl_figures
from arbitrage_lite.infra.live.killswitch import ControlError


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return int(resp.status), bytes(resp.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), bytes(exc.read())


def test_the_dashboard_answers_only_with_its_token_and_binds_loopback_only(tmp_path: Path) -> None:
    for host in ("0.0.0.0", "192.168.1.10", "localhost"):
        with pytest.raises(ControlError):
            DashboardServer(tmp_path, "r1", host=host)
    server = DashboardServer(tmp_path, "r1").start()
    try:
        info = json.loads(server.path.read_text())
        assert stat.S_IMODE(server.path.stat().st_mode) == 0o600
        assert info["token"] == server.token and info["port"] == server.port > 0
        base = f"http://127.0.0.1:{server.port}"
        refused = [_get(f"{base}/")[0], _get(f"{base}/api/state")[0], _get(f"{base}/api/state?token=wrong")[0],
                   _get(f"{base}/api/state", {"Authorization": "Bearer wrong"})[0]]
        assert refused == [401] * 4
        server.update({"phase": "running", "net_pnl_krw": "12.5"})
        status, body = _get(f"{base}/api/state", {"Authorization": f"Bearer {server.token}"})
        assert status == 200 and json.loads(body)["net_pnl_krw"] == "12.5"
        status, page = _get(info["page"])
        assert status == 200 and b'id="net-pnl"' in page
        assert server.counts["unauthorized"] == 4
    finally:
        counts = server.close()
    assert counts["requests"] == 6
    assert "token" not in json.loads(server.path.read_text())  # the ended run's file keeps no token
    with pytest.raises(OSError):
        _get(f"http://127.0.0.1:{server.port}/api/state?token={server.token}")


def test_pnl_figures_are_exact_and_in_close_time_order() -> None:
    trips = [{"route": "BTC", "trip": 2, "ts_ns": 30, "net_krw": "-0.3"},
             {"route": "BTC", "trip": 1, "ts_ns": 10, "net_krw": "100.1"},
             {"route": "ETH", "trip": 1, "ts_ns": 20, "net_krw": "-50.2"}]
    got = pnl_figures(trips, Decimal("1000000"))
    assert got["net_pnl_krw"] == "49.6" and got["equity_krw"] == "1000049.6"
    assert got["max_drawdown_krw"] == "50.5" and got["drawdown_krw"] == "50.5"  # 100.1 -> 49.6
    assert (got["trades"], got["wins"], got["win_rate"]) == (3, 1, 1 / 3)
    assert pnl_figures([], Decimal(5))["win_rate"] is None


def _browser() -> Any:
    """A headless Chromium driven by chromedriver; skip (locally) or fail (CI) when something is missing."""
    missing = [name for name in ("chromium", "chromedriver") if shutil.which(name) is None]
    try:
        from selenium import webdriver
    except ImportError:
        missing.append("selenium (pip)")
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser test: missing {missing} (.ci/run installs them)")
        pytest.skip(f"missing {missing}: apt-get install chromium chromium-driver; pip install selenium")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(shutil.which("chromium"))
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,900"):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(str(shutil.which("chromedriver"))), options=opts)


def _read(driver: Any) -> dict[str, str]:
    """The page's numbers as it shows them (data-value: the exact value behind the formatted text)."""
    values: dict[str, str] = driver.execute_script(
        "const out = {phase: document.getElementById('phase').dataset.phase,"
        " polls: document.getElementById('polls').dataset.polls};"
        "for (const id of ['net-pnl', 'equity', 'trades', 'win-rate', 'max-drawdown', 'risk-mode'])"
        "  out[id] = document.getElementById(id).dataset.value;"
        "out.routes = document.querySelectorAll('#routes tbody tr[data-route]').length;"
        "const p = document.querySelector('#routes tr[data-route=\"BTC\"] [data-field=premium]');"
        "out.premium = p ? p.textContent : '';"
        "return out;")
    return values


def _until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.mark.ray
def test_a_browser_sees_the_paper_run_move_and_end_on_summary_json(sample_stores: dict[str, Path], tmp_path: Path,
                                                                    ray_session: object) -> None:
    from arbitrage_lite.scenarios.paper import PaperRequest, run_paper

    driver = _browser()
    server = DashboardServer(tmp_path / "paper", "board1").start()
    result: dict[str, Any] = {}
    req = PaperRequest(store=sample_stores["btc"], routes="BTC", out=tmp_path / "paper", run_id="board1",
                       window_events=150, speed=SPEED, start_ns=START_NS, dashboard_server=server)
    run = threading.Thread(target=lambda: result.update(summary=run_paper(req)))
    try:
        driver.get(server.page_url)
        run.start()
        seen: list[dict[str, str]] = []
        while run.is_alive():
            now = _read(driver)
            if now["phase"] == "running":
                seen.append(now)
            time.sleep(0.5)
        run.join()
        _until(lambda: _read(driver)["phase"] == "finished", 10, "the page to show the finished run")
        final = _read(driver)
        shot = tmp_path / "dashboard.png"
        assert driver.save_screenshot(str(shot))
    finally:
        driver.quit()
        server.close()
    assert "summary" in result, "the paper run failed"
    summary = json.loads((tmp_path / "paper" / "summary.json").read_text())
    trades_seen = sorted({int(s["trades"]) for s in seen if s["trades"]})
    assert len(trades_seen) >= 2, f"the page did not update during the run: trades seen {trades_seen}"
    assert trades_seen[-1] <= summary["trades"]
    assert Decimal(final["net-pnl"]) == Decimal(summary["net_pnl_krw"])
    assert int(final["trades"]) == summary["trades"] > 0
    assert float(final["win-rate"]) == summary["win_rate"]
    assert Decimal(final["max-drawdown"]) == Decimal(summary["max_drawdown_krw"])
    assert Decimal(final["equity"]) == Decimal(summary["capital_krw"]) + Decimal(summary["net_pnl_krw"])
    assert final["routes"] == 1
    premiums = {float(s["premium"]) for s in seen if s["premium"] not in ("", "-")}
    assert len(premiums) >= 2 and all(-2_000 < p < 2_000 for p in premiums)  # the route's premium moves too
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


# The BTC sample's last 1m bars (2024-12-02 22:28 to 12-04 11:07), at 4000 x market time: ~33 s, its first trips
# ~13 s before its last, so a page polling every second sees the count move during the run.
START_NS = 1_733_176_800_000_000_000  # 2024-12-02T22:00:00Z
SPEED = 4_000.0
