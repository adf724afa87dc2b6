"""The live control surface (loopback HTTP + token), pause/resume, the kill switch and the shutdown policy.

The host runs in-process on the local fake venues (synthetic market, real protocols), as in tests/test_live.py;
the control server talks to it through the same handle shape as a Ray actor (``_Local``), and requests go
through the CLI's own client (``send``, urllib) from a thread, over real HTTP.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from arbitrage_lite.actors.live_host import LiveHostActor, LiveSpec
from arbitrage_lite.actors.route_host import _Local
from arbitrage_lite.cli import main
from arbitrage_lite.core.config import EngineConfig
from arbitrage_lite.core.domain import Side
from arbitrage_lite.core.route_state import S_PEND, S_POS_DIR, S_POS_TRIP, TI_REASON
from arbitrage_lite.core.strategy import EXIT_FLATTEN
from arbitrage_lite.core.venue import OrderType, PlaceOrder
from arbitrage_lite.infra.config_tree import apply_sets
from arbitrage_lite.infra.live.control import ControlServer, check_loopback, send
from arbitrage_lite.infra.live.killswitch import ControlError
from arbitrage_lite.infra.venues.fake.server import FakeVenues
from arbitrage_lite.infra.venues.fake.synthetic import SyntheticSpec
from arbitrage_lite.scenarios.live import LiveError, LiveRequest, _binance_rules, _endpoints_from_fakes

RISK = ["risk.loss_cooldown_s=0", "risk.circuit_breaker_losses=1000", "risk.global_circuit_breaker_losses=1000"]
EAGER = ["strategy.entry_bps=0.5", "strategy.exit_bps=0.1", "strategy.warmup_s=1", "strategy.min_edge_bps=-1000",
         "strategy.cooldown_s=0.5", "strategy.order_notional_krw=1000000", "strategy.position_limit_krw=1000000",
         *RISK]
# opens as eagerly, never closes by itself: only a flatten (kill switch, shutdown) ends its position
HOLD = [*EAGER, "strategy.exit_bps=-100000", "strategy.take_profit_bps=100000", "strategy.stop_loss_bps=100000",
        "strategy.max_hold_s=36000"]
ROUTES = ("BTC", "ETH")
RUN = "ctltest"


async def _until(cond: Callable[[], bool], timeout_s: float, what: str) -> None:
    end = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        await asyncio.sleep(0.05)


class Run:
    def __init__(self, host: LiveHostActor, fakes: FakeVenues, server: ControlServer, out: Path,
                 stop: asyncio.Event) -> None:
        self.host, self.fakes, self.server, self.out, self.stop = host, fakes, server, out, stop
        self.stopped = False

    async def stop_host(self, on_stop: str) -> dict[str, Any]:
        self.stopped = True
        out: dict[str, Any] = (await self.host.stop(on_stop=on_stop, flatten_s=20.0))["shutdown"]
        return out

    def trip(self, base: str) -> int:
        return int(self.host.routes[base].state.si[S_POS_TRIP])

    def trip_reason(self, base: str, trip: int) -> int:
        return int(self.host.routes[base].state.trips_i[trip, TI_REASON])

    def refused(self, trigger: str) -> int:
        return sum(t == trigger for r in self.host.routes.values() for t in r.risk_rejections)

    async def ctl(self, command: str, **body: Any) -> dict[str, Any]:
        """What ``arbitrage-lite live-ctl`` sends, from a thread (the server runs on this loop)."""
        return await asyncio.to_thread(send, self.out, command, body)

    def opens(self, base: str | None = None) -> list[str]:
        routes = self.host.routes.values() if base is None else [self.host.routes[base]]
        return [cid for r in routes for cid in r.issued if cid.rsplit("-", 1)[1].startswith("o")]

    def holding(self, base: str) -> bool:
        si = self.host.routes[base].state.si
        return int(si[S_POS_DIR]) != 0 and not si[S_PEND]

    def flat(self, base: str) -> bool:
        si = self.host.routes[base].state.si
        return int(si[S_POS_DIR]) == 0 and not si[S_PEND]

    def venue_orders(self) -> dict[str, Any]:
        assert self.fakes.upbit is not None and self.fakes.binance is not None
        return {o.client_id: o for fake in (self.fakes.upbit, self.fakes.binance) for o in fake.engine.orders.values()}


@asynccontextmanager
async def _live(tmp_path: Path, cfgs: dict[str, list[str]]) -> AsyncIterator[Run]:
    fakes = FakeVenues(synthetic=SyntheticSpec(coins=ROUTES, seed=1))
    info = await fakes.start()
    host: LiveHostActor | None = None
    server: ControlServer | None = None
    run: Run | None = None
    try:
        binance, upbit = _endpoints_from_fakes(info)
        rules = await _binance_rules(binance, list(cfgs))
        configs = {b: apply_sets(EngineConfig(), sets) for b, sets in cfgs.items()}
        spec = LiveSpec({b: (configs[b], rules[b]) for b in cfgs}, binance, upbit, RUN, configs[ROUTES[0]].risk,
                        Decimal(100_000_000))
        host = LiveHostActor(spec)
        await host.start()
        stop = asyncio.Event()
        server = ControlServer(_Local(host), tmp_path, RUN, stop.set)
        await server.start()
        run = Run(host, fakes, server, tmp_path, stop)
        yield run
    finally:
        if server is not None:
            await server.close()
        if host is not None and (run is None or not run.stopped):
            await host.stop(on_stop="report", flatten_s=0.1)
        await fakes.stop()


# ---- the surface itself (a hand-written host: no venue needed)
class _FakeHost:
    """The two methods the server forwards to, behind the ``.remote`` shape; records the words it got."""

    def __init__(self) -> None:
        self.words: list[tuple[str, str, str | None]] = []
        self.status = _Remote(lambda: {"routes": {}, "errors": []})
        self.control = _Remote(self._control)

    def _control(self, what: str, reason: str = "", route: str | None = None) -> dict[str, Any]:
        if route == "NOPE":
            raise ControlError("unknown route NOPE")
        self.words.append((what, reason, route))
        return {"mode": "paused" if what == "pause" else "active", "positions": [], "flatten_orders": {}}


class _Remote:
    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn

    async def remote(self, *args: Any) -> Any:
        return self.fn(*args)


def test_token_loopback_and_control_file(tmp_path: Path) -> None:
    async def go() -> None:
        target, stop = _FakeHost(), asyncio.Event()
        server = ControlServer(target, tmp_path, RUN, stop.set)
        path = await server.start()
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        info = json.loads(path.read_text())
        assert info["port"] == server.port and len(info["token"]) >= 40
        assert server._runner is not None
        assert {a[0] for a in server._runner.addresses} == {"127.0.0.1"}
        async with aiohttp.ClientSession() as http:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": info["token"]}):
                async with http.post(f"{info['url']}/pause", headers=headers, json={"reason": "x"}) as resp:
                    assert resp.status == 401
            assert not target.words and server.counts["unauthorized"] == 3
            auth = {"Authorization": f"Bearer {info['token']}"}
            async with http.post(f"{info['url']}/pause", headers=auth, data=b"{not json") as resp:
                assert resp.status == 400
            async with http.get(f"{info['url']}/nothing", headers=auth) as resp:
                assert resp.status == 404
        assert server.counts["bad_request"] == 2 and not target.words
        answer = await asyncio.to_thread(send, tmp_path, "pause", {"reason": "lunch"})
        assert answer["mode"] == "paused" and target.words == [("pause", "lunch", None)]
        with pytest.raises(ControlError, match="unknown route NOPE"):
            await asyncio.to_thread(send, tmp_path, "flatten", {"route": "nope"})
        with pytest.raises(ControlError, match="bad token"):
            await asyncio.to_thread(send, tmp_path, "status", None, 5.0, "forged")
        assert await asyncio.to_thread(main, ["live-ctl", "--out", str(tmp_path), "resume"]) == 0
        assert target.words[-1] == ("resume", "", None)
        assert not stop.is_set()
        assert (await asyncio.to_thread(send, tmp_path, "stop"))["stopping"] and stop.is_set()
        await server.close()
        ended = json.loads(path.read_text())
        assert "token" not in ended and "ended_ns" in ended and stat.S_IMODE(os.stat(path).st_mode) == 0o600
        with pytest.raises(ControlError, match="ended"):
            send(tmp_path, "status")
        assert main(["live-ctl", "--out", str(tmp_path), "status"]) == 2

    asyncio.run(go())


def test_only_loopback_binds() -> None:
    for bad in ("0.0.0.0", "192.168.1.10", "localhost", "::", ""):
        with pytest.raises(ControlError, match="loopback"):
            check_loopback(bad)
        with pytest.raises(ControlError, match="loopback"):
            ControlServer(_FakeHost(), Path("."), RUN, lambda: None, host=bad)
    assert check_loopback("127.0.0.1") == "127.0.0.1" and check_loopback("::1") == "::1"


def test_bad_stop_policy_is_refused_before_the_run(tmp_path: Path) -> None:
    with pytest.raises(LiveError, match="on_stop"):
        LiveRequest("BTC", tmp_path, on_stop="later")
    assert main(["live", "--routes", "BTC", "--out", str(tmp_path), "--on-stop", "later"]) == 2


def test_no_run_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ControlError, match="no live run"):
        send(tmp_path, "status")
    (tmp_path / "control.json").write_text(json.dumps({"url": "http://127.0.0.1:9", "token": "t"}))
    with pytest.raises(ControlError, match="does not answer"):
        send(tmp_path, "status", timeout_s=2.0)


# ---- on the fake venues
def test_pause_stops_new_opens_and_resume_restarts_them(tmp_path: Path) -> None:
    async def go() -> None:
        async with _live(tmp_path, dict.fromkeys(ROUTES, EAGER)) as run:
            await _until(lambda: len(run.opens()) >= 2, 25, "first opens")
            answer = await run.ctl("pause", reason="test pause")
            assert answer["mode"] == "paused"
            await _until(lambda: all(not r.state.si[S_PEND] for r in run.host.routes.values()), 10, "legs done")
            opens = len(run.opens())
            refused = run.refused("paused")
            await _until(lambda: run.refused("paused") >= refused + 3, 20, "opens refused while paused")
            assert len(run.opens()) == opens  # signals came and were refused: not one open leg sent
            status = await run.ctl("status")
            assert status["control"]["mode"] == "paused"
            assert (await run.ctl("resume"))["mode"] == "active"
            await _until(lambda: len(run.opens()) > opens, 20, "an open after resume")

    asyncio.run(go())


def test_flatten_one_route_closes_it_with_real_orders(tmp_path: Path) -> None:
    async def go() -> None:
        async with _live(tmp_path, dict.fromkeys(ROUTES, HOLD)) as run:
            await _until(lambda: run.holding("BTC") and run.holding("ETH"), 25, "both routes hold a position")
            before, trip = set(run.host.routes["BTC"].issued), run.trip("BTC")
            answer = await run.ctl("flatten", route="btc", reason="test kill")
            assert answer["mode"] == "paused"  # the kill switch stops new opens
            await _until(lambda: run.flat("BTC"), 20, "BTC flat")
            route = run.host.routes["BTC"]
            closes = [c for c in route.issued if c not in before]
            assert closes and all(c.rsplit("-", 1)[1][0] in "cu" for c in closes)
            venue = run.venue_orders()
            assert all(c in venue for c in closes)  # real orders: the fake venues got them
            assert sum(venue[c].filled for c in closes) > 0
            assert run.trip_reason("BTC", trip) == EXIT_FLATTEN
            assert run.holding("ETH")  # one route named: the other keeps its position
            state = (await run.ctl("status"))["control"]
            assert [p["route"] for p in state["positions"]] == ["ETH"]
            assert state["flatten_orders"]["sent"] == len(closes) and state["flatten_orders"]["filled"] >= 1
            # flat now: flattening it again sends nothing; after resume it opens and holds (no stale flatten word)
            await run.ctl("flatten", route="BTC")
            assert (await run.ctl("resume"))["mode"] == "active"
            await _until(lambda: run.holding("BTC"), 20, "BTC opens again after resume")
            seen = sum(route.events_in.values())
            await _until(lambda: sum(route.events_in.values()) > seen + 100, 20, "100 more events for BTC")
            later = range(trip + 1, run.trip("BTC") + 1)
            assert run.holding("BTC") and later and all(run.trip_reason("BTC", t) != EXIT_FLATTEN for t in later)

    asyncio.run(go())


@pytest.mark.parametrize("on_stop", ["flatten", "report"])
def test_stop_policy(tmp_path: Path, on_stop: str) -> None:
    async def go() -> None:
        async with _live(tmp_path, dict.fromkeys(ROUTES, HOLD)) as run:
            await _until(lambda: run.holding("BTC") and run.holding("ETH"), 25, "both routes hold a position")
            await run.ctl("stop")
            assert run.stop.is_set()
            held = {b: int(run.host.routes[b].state.si[S_POS_DIR]) for b in ROUTES}
            # a resting order of this run (a leftover) and one of another run: only ours is cancelled
            client = run.host.clients["binance"]
            r = (await client.load_rules()).symbols["BTCUSDT"]
            book = run.host.market.book("binance", "BTCUSDT")
            assert book is not None
            px = r.round_price(book.bids[0].price * Decimal("0.8"), Side.BUY)
            for cid in (f"al-{RUN}-zz1-BTC-ob", "al-other-zz1-BTC-ob"):
                await client.place(PlaceOrder(cid, "BTCUSDT", Side.BUY, OrderType.LIMIT, Decimal("0.001"), px))
            out = await run.stop_host(on_stop)
            assert out["on_stop"] == on_stop
            assert [c["client_id"] for c in out["orders_cancelled"]] == [f"al-{RUN}-zz1-BTC-ob"]
            venue = run.venue_orders()
            assert venue[f"al-{RUN}-zz1-BTC-ob"].status == "cancelled" and venue["al-other-zz1-BTC-ob"].is_open
            if on_stop == "flatten":
                assert out["positions_left"] == [] and all(run.flat(b) for b in ROUTES)
                assert out["flatten_orders"]["sent"] >= 4 and out["flatten_orders"]["filled"] >= 2
                assert all(c in venue for c in out["flatten_orders"]["client_ids"])
            else:
                left = {p["route"]: p for p in out["positions_left"]}
                assert set(left) == set(ROUTES) and out["flatten_orders"]["sent"] == 0
                for b in ROUTES:
                    assert left[b]["direction"] == held[b] and Decimal(left[b]["qty"]) > 0
                    assert Decimal(left[b]["notional_krw"]) > 0

    asyncio.run(go())


def test_risk_kill_switch_flattens_in_live(tmp_path: Path) -> None:
    """ETH opens and holds; BTC starts later and trades quick round trips that lose their fees. A drawdown limit
    of 1 KRW trips the coordinator's kill switch at the first trip booked below the equity peak (the first trip
    sets the peak): ETH must be flattened by it (it never closes alone)."""
    async def go() -> None:
        kill = ["risk.max_drawdown_krw=1"]
        quick = ["strategy.warmup_s=4", "strategy.exit_bps=0.4", "strategy.take_profit_bps=1",
                 "strategy.stop_loss_bps=1"]
        async with _live(tmp_path, {"BTC": [*EAGER, *kill, *quick], "ETH": [*HOLD, *kill]}) as run:
            await _until(lambda: run.holding("ETH"), 25, "ETH holds a position")
            trip = run.trip("ETH")
            assert run.host.risk is not None
            await _until(lambda: run.host.risk is not None and run.host.risk.mode() == "halted", 25, "kill switch")
            assert any(e["what"] == "flatten" and e["source"] == "risk" for e in run.host.kill.events)
            await _until(lambda: all(run.flat(b) for b in ROUTES), 20, "every route flat after the kill switch")
            assert run.trip_reason("ETH", trip) == EXIT_FLATTEN
            opens, refused = len(run.opens()), run.refused("halted")
            await _until(lambda: run.refused("halted") >= refused + 2, 20, "opens refused while halted")
            assert len(run.opens()) == opens

    asyncio.run(go())
