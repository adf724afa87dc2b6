"""Reconciliation on the live path against the local fake venues: clean passes while trading; an external
order (orphan) or money moved behind the journal's back halts the routes it concerns until a pass is clean;
an order whose outcome an earlier run never learned is settled by query by client id, never sent again."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from arbitrage_lite.actors.live_host import LiveHostActor, LiveSpec
from arbitrage_lite.actors.route_host import _Local
from arbitrage_lite.core.alerts import RECONCILE_MISMATCH, RECONCILE_UNVERIFIED
from arbitrage_lite.core.config import EngineConfig
from arbitrage_lite.core.domain import Side
from arbitrage_lite.core.reconcile import Resolution
from arbitrage_lite.core.venue import CancelOrder, OrderState, OrderType, PlaceOrder
from arbitrage_lite.infra.config_tree import apply_sets
from arbitrage_lite.infra.journal import Kind
from arbitrage_lite.infra.live.reconcile_loop import ReconcileSettings
from arbitrage_lite.infra.reconcile_io import journal_orders
from arbitrage_lite.infra.venues.fake.server import FakeVenues
from arbitrage_lite.infra.venues.fake.synthetic import SyntheticSpec
from arbitrage_lite.scenarios.live import _binance_rules, _endpoints_from_fakes

EAGER = ["strategy.entry_bps=0.5", "strategy.exit_bps=0.1", "strategy.warmup_s=1", "strategy.min_edge_bps=-1000",
         "strategy.cooldown_s=0.5", "strategy.order_notional_krw=1000000", "strategy.position_limit_krw=1000000",
         "risk.loss_cooldown_s=0", "risk.circuit_breaker_losses=1000000",
         "risk.global_circuit_breaker_losses=1000000"]  # eager trips lose (fees): keep trading
BASES = ("BTC", "ETH")


@dataclass
class Alerts:
    """The Alert actor's shape: what was raised, in order."""

    raised: list[tuple[str, str, str]]

    def raise_alert(self, rule: str, key: str, message: str, now_ns: int) -> bool:
        self.raised.append((rule, key, message))
        return True

    def of(self, prefix: str) -> list[tuple[str, str, str]]:
        return [a for a in self.raised if a[0].startswith(prefix)]


async def wait_for(cond: Callable[[], Any], timeout_s: float) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if cond():
            return True
        await asyncio.sleep(0.05)
    return bool(cond())


@asynccontextmanager
async def live(tmp: Path, *, run_id: str = "rectest", prior: tuple[str, ...] = (), fakes: FakeVenues | None = None,
               timeout_s: float = 5.0) -> AsyncIterator[tuple[LiveHostActor, FakeVenues, Alerts]]:
    """A host on the fakes (eager strategy, a SQLite journal in ``tmp``, a pass every 0.5 s)."""
    own = fakes is None
    fakes = fakes or FakeVenues(synthetic=SyntheticSpec(coins=BASES, seed=1))
    info = await fakes.start() if own else fakes.info
    try:
        binance, upbit = _endpoints_from_fakes(info)
        rules = await _binance_rules(binance, list(BASES))
        cfg = apply_sets(EngineConfig(), EAGER)
        spec = LiveSpec({b: (cfg, rules[b]) for b in BASES}, binance, upbit, run_id, cfg.risk, Decimal(100_000_000),
                        journal_dir=str(tmp / "journal"),
                        reconcile=ReconcileSettings(every_s=0.5, grace_s=2.0, prior_runs=prior, timeout_s=timeout_s))
        alerts = Alerts([])
        host = LiveHostActor(spec, alerts=_Local(alerts))
        await host.start()
        try:
            yield host, fakes, alerts
        finally:
            host.stopped = await host.stop()  # type: ignore[attr-defined]
    finally:
        if own:
            await fakes.stop()


def as_dec(table: dict[str, dict[str, str]]) -> dict[tuple[str, str], Decimal]:
    return {(v, a): Decimal(x) for v, assets in table.items() for a, x in assets.items()}


def opens(host: LiveHostActor) -> int:
    """Open legs the routes have issued (an id's leg is action + venue: o = open)."""
    return sum(cid.rsplit("-", 1)[1].startswith("o") for r in host.routes.values() for cid in r.issued)


def test_clean_run_trades_and_every_pass_is_clean(tmp_path: Path) -> None:
    async def run() -> LiveHostActor:
        async with live(tmp_path) as (host, _fakes, alerts):
            loop = host.reconciler
            assert loop is not None and loop.passes == 1  # the first pass ran before any route traded
            assert not loop.baseline or all(v >= 0 for v in loop.baseline.values())
            trips = lambda: sum(len(r.feed.reported_closes) for r in host.routes.values())  # noqa: E731
            assert await wait_for(lambda: trips() >= 2 and loop.passes >= 4, 25.0)
            assert alerts.of("reconcile") == [], alerts.of("reconcile")
        return host

    host = asyncio.run(run())
    loop = host.reconciler
    assert loop is not None
    s = loop.summary()
    assert s["passes"] == s["clean_passes"] >= 5, s  # the last one at stop included
    assert s["halts"] == [] and s["mismatches"] == {}
    assert s["gate"]["holds"] == s["passes"]
    assert all(h == {} for r in host.routes.values() for h in [r.holds])
    # the venues hold what the baseline plus this run's fills say, to the unit
    assert as_dec(s["balances"]) == as_dec(s["expected"]), (s["balances"], s["expected"])
    assert as_dec(s["balances"]) != as_dec(s["baseline"])  # the run traded: balances moved


async def set_faults(fakes: FakeVenues, venue: str, **faults: int) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as s, s.post(f"{fakes.info[venue]['rest']}/fake/faults", json=faults) as r:
        assert r.status == 200, await r.text()


def upbit_client(fakes: FakeVenues) -> Any:
    from arbitrage_lite.infra.venues.upbit.client import UpbitClient

    u = fakes.info["upbit"]
    return UpbitClient(u["rest"] + "/v1", u["access_key"], u["secret"])


def test_external_order_halts_every_route_until_it_is_gone(tmp_path: Path) -> None:
    async def run() -> None:
        async with live(tmp_path) as (host, fakes, alerts):
            loop = host.reconciler
            assert loop is not None
            assert await wait_for(lambda: opens(host) >= 2, 20.0), "the eager strategy opens within 20 s"
            assert loop.held == {}
            book = host.market.book("upbit", "KRW-BTC")
            assert book is not None and book.bids
            price = (book.bids[0].price / 2 // 1000) * 1000  # far below the market: it rests, open
            client = upbit_client(fakes)
            try:
                ev = await client.place(PlaceOrder("external-1", "KRW-BTC", Side.BUY, OrderType.LIMIT,
                                                   Decimal("0.001"), price))
                assert ev.state is OrderState.ACCEPTED, ev
                assert await wait_for(lambda: set(loop.held) == set(BASES), 10.0), loop.summary()["last"]
                assert all("reconcile" in r.holds for r in host.routes.values())
                assert any(rule == RECONCILE_MISMATCH and key == "upbit" and "external-1" in msg
                           for rule, key, msg in alerts.raised), alerts.raised
                held_at = opens(host)
                passes = loop.passes
                assert await wait_for(lambda: loop.passes >= passes + 4, 10.0)
                assert opens(host) == held_at  # no new open while held (closes may go on)
                assert sum(r.hold_rejections for r in host.routes.values()) > 0  # opens were wanted, refused
                await client.cancel(CancelOrder("external-1", "KRW-BTC"))  # Upbit answers "wait": it is on its way
            finally:
                await client.close()
            assert await wait_for(lambda: not loop.held, 10.0), loop.summary()["last"]
            assert loop.last is not None and loop.last.clean
            assert await wait_for(lambda: opens(host) > held_at, 20.0), "trading resumes after a clean pass"
            halts = loop.summary()["halts"]
            assert {h["route"] for h in halts} == set(BASES) and all(h["until_ns"] for h in halts)

    asyncio.run(run())


def test_money_moved_behind_the_journal_halts_only_its_route(tmp_path: Path) -> None:
    async def run() -> None:
        async with live(tmp_path) as (host, fakes, alerts):
            loop = host.reconciler
            assert loop is not None and fakes.binance is not None
            assert await wait_for(lambda: opens(host) >= 2, 20.0)
            engine = fakes.binance.engine
            engine.free["ETH"] += Decimal("0.01")  # ETH arrived on Binance that no order of this run explains
            assert await wait_for(lambda: "ETH" in loop.held, 10.0), loop.summary()["last"]
            assert "BTC" not in loop.held and not host.routes["BTC"].holds
            assert any(rule == RECONCILE_MISMATCH and key == "ETH" for rule, key, _ in alerts.raised)
            eth_at, btc_at = count_opens(host, "ETH"), count_opens(host, "BTC")
            passes = loop.passes
            assert await wait_for(lambda: loop.passes >= passes + 4 and count_opens(host, "BTC") > btc_at, 20.0)
            assert count_opens(host, "ETH") == eth_at  # ETH held, BTC trades on
            engine.free["ETH"] -= Decimal("0.01")
            assert await wait_for(lambda: not loop.held, 10.0), loop.summary()["last"]

    asyncio.run(run())


def count_opens(host: LiveHostActor, route: str) -> int:
    return sum(cid.rsplit("-", 1)[1].startswith("o") for cid in host.routes[route].issued)


async def journal_unknown_order(tmp: Path, fakes: FakeVenues) -> str:
    """An earlier run ("prev") that sent an Upbit buy and never learned its outcome: the venue accepted it and
    answered 5xx (fault error_after_accept), the run died. Its journal holds the intent, SUBMIT and TIMEOUT."""
    from arbitrage_lite.actors.journal import JournalActor
    from arbitrage_lite.core.client_ids import ClientIdFactory
    from arbitrage_lite.core.domain import Venue
    from arbitrage_lite.core.order_fsm import EventKind, Order, OrderEvent
    from arbitrage_lite.infra.journal import intent_record, order_event_record

    jdir = tmp / "journal"
    jdir.mkdir(parents=True)
    journal = JournalActor(jdir / "prev.overflow.jsonl", sqlite_path=jdir / "journal.sqlite3")
    await journal.start()
    cid = ClientIdFactory("prev").next("BTC", "ou")
    order = Order(cid, Venue.UPBIT, "BTC-KRW", Side.BUY, Decimal("0.001"))
    await journal.write_intent(intent_record("prev", "BTC", order, time.time_ns(), role="open"))
    order = order.apply(OrderEvent(EventKind.SUBMIT, -1, time.time_ns()))
    await journal.submit([order_event_record("prev", "BTC", order)])
    client = upbit_client(fakes)
    try:
        assert fakes.upbit is not None
        ask = fakes.upbit.engine.books["KRW-BTC"].asks[0][0]
        price = (ask * Decimal("1.01") // 1000 + 1) * 1000  # marketable (BTC's tick is 1,000 KRW): it fills
        await set_faults(fakes, "upbit", error_after_accept=1)
        ev = await client.place(PlaceOrder(cid, "KRW-BTC", Side.BUY, OrderType.IOC, Decimal("0.001"), price))
    finally:
        await client.close()
    assert ev.state is OrderState.UNKNOWN, ev  # accepted, but the answer was a 5xx
    order = order.apply(OrderEvent(EventKind.TIMEOUT, -1, time.time_ns()))
    await journal.submit([order_event_record("prev", "BTC", order)])
    await journal.close()
    return cid


def engine_orders(fakes: FakeVenues, cid: str) -> list[Any]:
    return [o for f in (fakes.upbit, fakes.binance) if f is not None for o in f.engine.orders.values()
            if o.client_id == cid]


def test_unknown_outcomes_are_settled_by_client_id_and_never_resent(tmp_path: Path) -> None:
    async def run() -> None:
        fakes = FakeVenues(synthetic=SyntheticSpec(coins=BASES, seed=1))
        await fakes.start()
        try:
            cid = await journal_unknown_order(tmp_path, fakes)
            [venue_order] = engine_orders(fakes, cid)
            async with live(tmp_path, prior=("prev",), fakes=fakes) as (host, _f, alerts):
                loop = host.reconciler
                assert loop is not None and loop.last is not None
                [check] = [c for c in loop.last.orders if c.client_id == cid]  # settled by the first pass
                assert check.resolution is Resolution.RESOLVED and check.venue_filled_qty == venue_order.filled
                assert loop.booked == 1 and not loop.held
                # booked under its own run: a later pass finds the journal and the venue agreeing (then no more
                # asks about it)
                assert await wait_for(lambda: cid in loop.state.verified, 10.0)
                rows = [r for k in (Kind.INTENT, Kind.ORDER_EVENT, Kind.FILL)
                        for r in await host.journal.records.remote("prev", k)]
                booked = journal_orders(rows)[cid]
                assert booked.status is check.venue_status and booked.status.is_terminal
                assert booked.filled_qty == venue_order.filled > 0 and len(booked.trade_ids) == len(venue_order.fills)
                # this run's own unknown outcome: Binance accepts the next order and answers 5xx; the gateway
                # asks by client id until it knows, the route books it, reconciliation agrees
                sent = host.gateways[1].stats.sent
                await set_faults(fakes, "binance", error_after_accept=1)
                assert await wait_for(lambda: host.gateways[1].stats.sent > sent + 1, 20.0)
                passes = loop.passes
                assert await wait_for(lambda: loop.passes >= passes + 3, 10.0)
                assert alerts.of("reconcile") == [], alerts.of("reconcile")
            issued = [c for r in host.routes.values() for c in r.issued]
            assert cid not in issued and len(engine_orders(fakes, cid)) == 1  # never sent again
            for c in issued:
                assert len(engine_orders(fakes, c)) <= 1, c  # no id reached a venue twice
            s = loop.summary()
            assert s["passes"] == s["clean_passes"], s["last"]
            gw = host.gateways[1].stats
            assert gw.queries >= 1 and gw.estimated_fills >= 1  # the 5xx: asked by id; Binance lists no fills
            assert s["adjustments"], "the estimated fill's price is taken from the venue's balance, within its band"
        finally:
            await fakes.stop()

    asyncio.run(run())


class Rows:
    """A journal's ``records(run_id, kind, since_ns)`` over a list, counting the rows it hands out."""

    def __init__(self) -> None:
        self.rows: list[Any] = []

    async def records(self, run_id: str, kind: Any = None, since_ns: int | None = None) -> list[Any]:
        return [r for r in self.rows if r.run_id == run_id and (kind is None or r.kind is kind)
                and (since_ns is None or r.ts_local >= since_ns)]


def filled_order_rows(n: int, ts: int) -> list[Any]:
    """Order ``n`` of run "r1": a Binance buy of 0.01 BTC at 100 USDT, fee 0.00001 BTC, filled at ``ts``."""
    from arbitrage_lite.core.client_ids import ClientIdFactory
    from arbitrage_lite.core.domain import Venue
    from arbitrage_lite.core.order_fsm import EventKind, Order, OrderEvent
    from arbitrage_lite.infra.journal import intent_record, order_event_record

    cid = ClientIdFactory("r1").next("BTC", "ob") if n == 0 else f"al-r1-{n + 1}-BTC-ob"
    o = Order(cid, Venue.BINANCE, "BTC-USDT", Side.BUY, Decimal("0.01"))
    rows = [intent_record("r1", "BTC", o, ts)]
    for ev in (OrderEvent(EventKind.SUBMIT, -1, ts), OrderEvent(EventKind.ACK, ts, ts),
               OrderEvent.fill(f"t{n}", Decimal("0.01"), Decimal(100), ts, ts, fee=Decimal("0.00001"))):
        o = o.apply(ev)
        rows.append(order_event_record("r1", "BTC", o))
    return rows


def test_the_journal_is_read_incrementally_and_forgotten_orders_keep_their_fills() -> None:
    from arbitrage_lite.infra.live.reconcile_loop import JournalState

    async def run() -> None:
        rows = Rows()
        journal = _Local(rows)
        state = JournalState("r1", ("r1",), {"binance": "received"})
        s = 1_000_000_000
        for n in range(50):  # one order a second for 50 s; a pass every 10 s, recent window 20 s, margin 5 s
            rows.rows += filled_order_rows(n, n * s)
            if n % 10 == 9:
                now = n * s + s // 2
                await state.read(journal, now, 5 * s)
                state.forget_old(now, 20 * s)
                assert len(state.fold.intents) <= 21  # the recent window, not the whole run
        assert state.deltas == {("binance", "BTC"): Decimal("0.01") * 50 - Decimal("0.00001") * 50,
                                ("binance", "USDT"): Decimal(-50)}  # each fill once, though rows were re-read
        assert state.rows_read < 2 * len(rows.rows)  # each read took the new rows and a margin, not everything

    asyncio.run(run())


def test_the_gate_holds_new_sends_and_waits_for_those_in_flight() -> None:
    from arbitrage_lite.infra.live.reconcile_loop import SendGate

    async def run() -> None:
        gate = SendGate()
        order: list[str] = []

        async def send(name: str, hold_s: float) -> None:
            await gate.enter()
            order.append(f"{name} out")
            await asyncio.sleep(hold_s)
            order.append(f"{name} done")
            gate.leave()

        first = asyncio.create_task(send("a", 0.2))
        await asyncio.sleep(0.05)
        async with gate.hold(5.0) as drained:
            order.append("pass reads")
            assert drained
            second = asyncio.create_task(send("b", 0.0))
            await asyncio.sleep(0.1)
            assert "b out" not in order  # held at the gate while the pass reads
        await asyncio.gather(first, second)
        assert order == ["a out", "a done", "pass reads", "b out", "b done"], order
        assert gate.stats()["orders_delayed"] == 1 and gate.in_flight == 0

    asyncio.run(run())


def test_a_venue_that_does_not_answer_holds_every_route_until_it_does(tmp_path: Path) -> None:
    async def run() -> None:
        async with live(tmp_path, timeout_s=0.3) as (host, fakes, alerts):
            loop = host.reconciler
            assert loop is not None and not loop.held
            await set_faults(fakes, "binance", delay_ms=600)  # every answer later than the pass waits for it
            assert await wait_for(lambda: set(loop.held) == set(BASES), 10.0), loop.summary()["last"]
            assert any(rule == RECONCILE_UNVERIFIED and key == "binance" for rule, key, _ in alerts.raised)
            assert loop.mismatches.get("venue_issue", 0) > 0
            await set_faults(fakes, "binance", delay_ms=0)
            assert await wait_for(lambda: not loop.held, 10.0), loop.summary()["last"]
            assert not alerts.of(RECONCILE_MISMATCH)  # nothing was wrong, only unverified

    asyncio.run(run())
