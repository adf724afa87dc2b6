"""``/healthz`` and ``/readyz`` over real HTTP: the live control server (no token for them, the token for the
rest) in front of a hand-written host whose ``status()`` each test sets, and the paper metrics exporter.
200 when ready, 503 with the reasons when not; nothing secret in the answers."""

from __future__ import annotations

import asyncio
import functools
import json
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp

from arbitrage_lite.actors.route_host import _Local
from arbitrage_lite.infra import health
from arbitrage_lite.infra.health import FeedFreshness
from arbitrage_lite.infra.live import control
from arbitrage_lite.infra.live.control import ControlServer
from arbitrage_lite.infra.metrics import EngineMetrics, start_exporter


def sync(fn: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run the async test on a fresh loop (the suite has no asyncio plugin)."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(fn(*args, **kwargs))
    return run


def _ready_status() -> dict[str, Any]:
    return {"uptime_s": 12.0, "fx": 1380.5,
            "feeds": {"binance": {"books": 10, "deltas": 500}, "upbit": {"books": 40, "deltas": 0}},
            "risk": {"mode": "active"}, "routes": {"BTC": {"premium_bps": 12.5}, "ETH": {"premium_bps": -3.0}},
            "errors": [], "reconciliation": {"passes": 1, "clean_passes": 1, "held": []}}


class FakeHost:
    """The live host's ``status``/``control`` shape; ``hang`` makes status never answer."""

    def __init__(self) -> None:
        self.st = _ready_status()
        self.hang = False

    async def status(self) -> dict[str, Any]:
        if self.hang:
            await asyncio.Event().wait()
        return json.loads(json.dumps(self.st))

    async def control(self, what: str, reason: str = "", route: str | None = None) -> dict[str, Any]:
        return {"mode": "active", "positions": []}


@asynccontextmanager
async def _server(tmp_path: Path, host: FakeHost) -> AsyncIterator[ControlServer]:
    server = ControlServer(_Local(host), tmp_path, "hc1", lambda: None)
    await server.start()
    try:
        yield server
    finally:
        await server.close()


async def _get(url: str, token: str | None = None) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as s, s.get(url, headers=headers) as r:
        return r.status, await r.json()


@sync
async def test_live_ready_then_not_as_the_feed_goes_quiet(tmp_path: Path) -> None:
    host, now = FakeHost(), [100.0]
    async with _server(tmp_path, host) as server:
        server.freshness = FeedFreshness(clock=lambda: now[0])
        code, body = await _get(f"{server.url}/readyz")  # no token: a probe has none
        assert (code, body["ok"], body["reasons"]) == (200, True, [])
        now[0] += health.MAX_FEED_SILENCE_S + 1  # upbit's count does not move, binance's does
        host.st["feeds"]["binance"]["deltas"] += 7
        code, body = await _get(f"{server.url}/readyz")
        assert code == 503 and body["reasons"] == [f"feed upbit: no message for {health.MAX_FEED_SILENCE_S + 1:.0f} s"]
        code, body = await _get(f"{server.url}/healthz")  # quiet feed: not ready, still alive
        assert code == 200 and body["ok"]


@sync
async def test_live_not_ready_names_every_reason(tmp_path: Path) -> None:
    host = FakeHost()
    host.st |= {"fx": None, "risk": {"mode": "halted"}, "errors": ["boom"],
                "reconciliation": {"passes": 2, "clean_passes": 0, "held": ["ETH"]}}
    host.st["feeds"]["upbit"]["books"] = 0
    host.st["routes"]["BTC"]["premium_bps"] = float("nan")
    async with _server(tmp_path, host) as server:
        code, body = await _get(f"{server.url}/readyz")
    assert code == 503 and not body["ok"]
    text = " | ".join(body["reasons"])
    for part in ("feed upbit: no message yet", "fx: no USDT/KRW rate", "no clean pass", "holds ETH", "risk: halted",
                 "BTC", "host errors: 1"):
        assert part in text, (part, text)
    assert "ETH" not in text.split("books missing")[-1]  # ETH has its premium


@sync
async def test_probes_need_no_token_the_rest_does_and_nothing_leaks(tmp_path: Path) -> None:
    async with _server(tmp_path, FakeHost()) as server:
        assert (await _get(f"{server.url}/status"))[0] == 401
        assert (await _get(f"{server.url}/status", server.token))[0] == 200
        for path in ("/healthz", "/readyz"):
            async with aiohttp.ClientSession() as s, s.get(f"{server.url}{path}") as r:
                text = await r.text()
            assert r.status == 200 and server.token not in text
        async with aiohttp.ClientSession() as s, s.post(f"{server.url}/healthz") as r:
            assert r.status == 401  # only GET of the probes is open


@sync
async def test_live_hung_host_is_unhealthy(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(control, "PROBE_TIMEOUT_S", 0.2)
    host = FakeHost()
    async with _server(tmp_path, host) as server:
        host.hang = True
        for path in ("/healthz", "/readyz"):
            code, body = await _get(f"{server.url}{path}")
            assert code == 503 and body["reasons"] == ["host not answering (TimeoutError)"]


def _http(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_paper_exporter_probes_follow_the_actor_system() -> None:
    ex = start_exporter(0)
    try:
        base = f"http://127.0.0.1:{ex.port}"
        assert _http(f"{base}/healthz")[0] == 200  # alive while starting
        code, body = _http(f"{base}/readyz")
        assert code == 503 and body["reasons"][0].startswith("starting")
        families = EngineMetrics().families()
        ex.update(families, {"watching": True, "actors": 5, "silent": []})
        assert _http(f"{base}/readyz") == (200, {"ok": True, "reasons": []})
        ex.update(families, {"watching": True, "actors": 5, "silent": ["route:ETH"]})
        code, body = _http(f"{base}/readyz")
        assert code == 503 and body["reasons"] == ["actors not answering: route:ETH"]
        assert ex.updated_at is not None
        ex.updated_at -= health.RELAY_STALL_S + 1  # the relay stopped: the driver's loop is stuck
        code, body = _http(f"{base}/healthz")
        assert code == 503 and "relay" in body["reasons"][0]
        assert "arb_net_pnl_krw" in ex.scrape()  # the metrics page is unchanged
    finally:
        ex.close()


@sync
async def test_real_live_host_becomes_ready_and_a_pause_makes_it_not(tmp_path: Path) -> None:
    """The real host's status (fake venues, in-process): /readyz reaches 200 on its own, 503 while paused."""
    from decimal import Decimal

    from arbitrage_lite.actors.live_host import LiveHostActor, LiveSpec
    from arbitrage_lite.core.config import EngineConfig
    from arbitrage_lite.infra.venues.fake.server import FakeVenues
    from arbitrage_lite.infra.venues.fake.synthetic import SyntheticSpec
    from arbitrage_lite.scenarios.live import _binance_rules, _endpoints_from_fakes

    fakes = FakeVenues(synthetic=SyntheticSpec(coins=("BTC", "ETH"), seed=1))
    binance, upbit = _endpoints_from_fakes(await fakes.start())
    host: LiveHostActor | None = None
    try:
        rules = await _binance_rules(binance, ["BTC", "ETH"])
        cfg = EngineConfig()
        host = LiveHostActor(LiveSpec({b: (cfg, rules[b]) for b in rules}, binance, upbit, "hc2", cfg.risk,
                                      Decimal(100_000_000), journal_dir=str(tmp_path / "journal")))
        await host.start()
        server = ControlServer(_Local(host), tmp_path, "hc2", lambda: None)
        await server.start()
        try:
            body: dict[str, Any] = {}
            for _ in range(300):  # 30 s at most: books, FX and the first reconciliation pass
                code, body = await _get(f"{server.url}/readyz")
                if code == 200:
                    break
                await asyncio.sleep(0.1)
            assert body["ok"], body
            status = await host.status()  # what it judged: the reconciliation part was there, and clean
            assert status["reconciliation"]["clean_passes"] >= 1 and set(body["feed_age_s"]) == set(status["feeds"])
            await host.control("pause", "drill")
            code, body = await _get(f"{server.url}/readyz")
            assert code == 503 and "risk: paused" in body["reasons"], body
            await host.control("resume")
            code, body = await _get(f"{server.url}/readyz")
            assert code == 200, body
        finally:
            await server.close()
    finally:
        if host is not None:
            await host.stop(on_stop="report", flatten_s=0.1)
        await fakes.stop()


def test_fx_age_counts_when_the_status_reports_it() -> None:
    """The host's status has the rate, not yet its age; once it reports ``fx_age_s``, an old rate is not ready."""
    st = _ready_status()
    ages = FeedFreshness(clock=lambda: 0.0).observe(st["feeds"])
    assert health.live_reasons(st | {"fx_age_s": health.MAX_FX_AGE_S - 1}, ages) == []
    assert health.live_reasons(st | {"fx_age_s": health.MAX_FX_AGE_S + 5}, ages) == [
        f"fx: rate is {health.MAX_FX_AGE_S + 5:.0f} s old"]
