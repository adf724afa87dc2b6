"""Chaos drills on the LIVE path: a LiveHostActor trading the local fake venues (synthetic market, the real
protocols on 127.0.0.1) while something breaks; each drill writes ``drill.json`` and says ``passed``.

Kinds:
- ``live-feed-kill``: the market feed is killed twice: the fakes drop every WS connection of both venues (the
  adapters reconnect), then the host's feed tasks are cancelled (its supervisor starts them again). Recovery
  = kill -> every route holds a fresh full book of each venue again.
- ``live-5xx``: both fakes accept orders and answer 5xx (Binance 503 -1007, Upbit 500): the outcome is
  unknown to the engine, the gateway asks by client id until it is final; it must resolve to what the venue
  did, and never be sent twice.
- ``live-ws-gap``: the fake Binance skips a depth diff (a sequence gap) while its REST depth answers slowly:
  the adapter resyncs; between the gap and the resync the route gets no book of that symbol and decides
  nothing (the trace of deliveries and of the legs' decision times proves it).
- ``live-route-kill``: scenarios.live_drill_route (the host process is killed with an order in flight).

The host runs in this process (as in tests/test_live.py), so the drill can wrap what it measures from the
outside: every message delivered to a route, every leg handed to a gateway (with its kernel decision time),
every order call to a venue client, every fault the fakes applied. Invariants checked in every drill: each
client id sent once (client calls and the fakes' own order books), no decision and no order on a broken book.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from ..core.config import EngineConfig
from ..core.events import K_CLEAR, EventBatch
from ..core.route_state import S_NS, S_PDEC
from ..errors import UserError
from ..infra.venues.fake.faults import Faults

KINDS = ("live-feed-kill", "live-5xx", "live-ws-gap", "live-route-kill")
# thresholds that trade the synthetic market within seconds (tests/test_live.py): a drill must see orders
EAGER = ("strategy.entry_bps=0.5", "strategy.exit_bps=0.1", "strategy.warmup_s=1", "strategy.min_edge_bps=-1000",
         "strategy.cooldown_s=0.5", "strategy.order_notional_krw=1000000", "strategy.position_limit_krw=1000000")
GAP_REST_DELAY_MS = 1500  # ws-gap: the resync's REST depth answers this late, so the broken window is long
Outcome = tuple[dict[str, Any], dict[str, bool], str | None]  # a drill's figures, checks, why it proves nothing


@dataclass(frozen=True)
class LiveDrillRequest:
    kind: str
    out: Path
    routes: tuple[str, ...] = ("BTC", "ETH")
    times: int = 2  # faults per venue (feed kills: rounds; 5xx: answers per venue; gaps)
    seed: int = 1
    sets: tuple[str, ...] = EAGER  # config overrides (on the defaults)
    budget_s: float = 25.0  # wall time the drill may take waiting for trades and recoveries
    run_id: str = "ldrill"
    journal_dir: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise UserError(f"live drill kind must be one of {KINDS}, got {self.kind!r}")
        if self.times < 1 or self.budget_s <= 0 or not self.routes:
            raise UserError("a live drill needs times >= 1, a positive budget and at least one route")


class DrillFaults(Faults):
    """The fakes' fault counters, remembering each fault they applied (when; for 5xx, the order it hit)."""

    def __init__(self) -> None:
        super().__init__()
        self.engine: Any = None  # the fake's matching engine (set once started)
        self.applied: list[dict[str, Any]] = []

    def take(self, name: str) -> bool:
        hit = super().take(name)
        if hit:
            rec: dict[str, Any] = {"fault": name, "at": time.perf_counter_ns()}
            if name.endswith("_after_accept") and self.engine is not None and self.engine.orders:
                rec["client_id"] = next(reversed(self.engine.orders.values())).client_id  # just placed
            self.applied.append(rec)
        return hit


@dataclass
class Probe:
    """What the drill measures around an in-process host (wrapping, never changing, what it calls)."""

    t0: int = field(default_factory=time.perf_counter_ns)
    deliveries: dict[tuple[str, str], list[tuple[int, str]]] = field(default_factory=dict)  # (base, source)
    legs: list[dict[str, Any]] = field(default_factory=list)  # one per gateway submit
    places: list[dict[str, Any]] = field(default_factory=list)  # one per venue client place() call

    def wrap_market(self, host: Any) -> None:
        """Before ``start``: every message the market hands a route, when and what (book / empty / delta)."""
        deliver = host.market.deliver

        def traced(base: str, source: str, events: EventBatch, received: int) -> None:
            kind = ("fx" if source == "fx" else
                    ("empty" if len(events) <= 2 else "book") if int(events.kind[0]) == K_CLEAR else "delta")
            self.deliveries.setdefault((base, source), []).append((time.perf_counter_ns(), kind))
            deliver(base, source, events, received)

        host.market.deliver = traced

    def wrap_orders(self, host: Any) -> None:
        """After ``start`` (before the loop runs again): each leg and its kernel decision time, each venue call."""
        for v, gw in host.gateways.items():
            gw.submit = self._submit(host, "upbit" if v == 0 else "binance", gw.submit)
        for venue, client in host.clients.items():
            client.place = self._place(venue, client.place)

    def _submit(self, host: Any, venue: str, submit: Callable[[Any], Awaitable[Any]]) -> Callable[[Any], Any]:
        async def traced(order: Any) -> Any:
            base = order.symbol.split("-")[0]
            leg = {"venue": venue, "client_id": order.client_id, "base": base, "at": time.perf_counter_ns(),
                   "decision_ts": int(host.routes[base].state.si[S_PDEC])}
            self.legs.append(leg)
            report = await submit(order)
            leg.update(answered=time.perf_counter_ns(), status=report.status.name,
                       filled_units=sum(q for _, _, q, _ in report.fills), reason=report.reason[:80])
            return report
        return traced

    def _place(self, venue: str, place: Callable[[Any], Awaitable[Any]]) -> Callable[[Any], Any]:
        async def traced(cmd: Any) -> Any:
            call = {"venue": venue, "client_id": cmd.client_id, "symbol": cmd.symbol, "at": time.perf_counter_ns()}
            self.places.append(call)
            ev = await place(cmd)
            call.update(answered=time.perf_counter_ns(), state=ev.state.name)
            return ev
        return traced

    def s(self, at: int) -> float:
        return round((at - self.t0) / 1e9, 4)


@dataclass
class LiveRun:
    """One drill's fakes, host and probe (the host in this process)."""

    req: LiveDrillRequest
    fakes: Any
    host: Any
    probe: Probe
    faults: dict[str, DrillFaults]
    config: EngineConfig
    engines: dict[str, Any]  # venue -> the fake's matching engine (its own book of every order, by client id)


async def start_run(req: LiveDrillRequest, journal_dir: str | None = None) -> LiveRun:
    from ..actors.live_host import LiveHostActor, LiveSpec
    from ..infra.config_tree import apply_sets
    from ..infra.venues.fake.server import FakeVenues
    from ..infra.venues.fake.synthetic import SyntheticSpec
    from .live import _binance_rules, _endpoints_from_fakes

    faults = {"binance": DrillFaults(), "upbit": DrillFaults()}
    fakes = FakeVenues(synthetic=SyntheticSpec(coins=req.routes, seed=req.seed), binance_faults=faults["binance"],
                       upbit_faults=faults["upbit"])
    info = await fakes.start()
    assert fakes.binance is not None and fakes.upbit is not None
    engines = {"binance": fakes.binance.engine, "upbit": fakes.upbit.engine}
    for venue, f in faults.items():
        f.engine = engines[venue]
    binance, upbit = _endpoints_from_fakes(info)
    rules = await _binance_rules(binance, list(req.routes))
    cfg = apply_sets(EngineConfig(), list(req.sets))
    spec = LiveSpec({b: (cfg, rules[b]) for b in req.routes}, binance, upbit, req.run_id, cfg.risk,
                    Decimal(100_000_000), journal_dir=journal_dir)
    host = LiveHostActor(spec)
    probe = Probe()
    probe.wrap_market(host)
    await host.start()
    probe.wrap_orders(host)
    return LiveRun(req, fakes, host, probe, faults, cfg, engines)


async def wait_for(cond: Callable[[], bool], timeout_s: float, every_s: float = 0.05) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if cond():
            return True
        await asyncio.sleep(every_s)
    return cond()


def sent_since(run: LiveRun, at: int) -> int:
    return sum(1 for p in run.probe.places if p["at"] > at)


# ---- what every drill checks
def order_figures(run: LiveRun) -> dict[str, Any]:
    """Orders sent vs unique client ids, at the client and in the fakes' books: a duplicate is an id sent twice."""
    calls = Counter(p["client_id"] for p in run.probe.places)
    at_fakes = Counter(o.client_id for e in run.engines.values() for o in e.orders.values())
    issued = [cid for r in run.host.routes.values() for cid in r.issued]
    open_orders = [cid for r in run.host.routes.values() for cid, o in r.orders.items() if not o.status.is_terminal]
    return {"issued_by_routes": len(issued), "client_ids_unique": len(issued) == len(set(issued)),
            "sent": sum(calls.values()), "unique_client_ids_sent": len(calls),
            "duplicated_orders": sum(n - 1 for n in calls.values() if n > 1),
            "orders_at_fakes": sum(at_fakes.values()),
            "duplicated_at_fakes": sum(n - 1 for cid, n in at_fakes.items() if cid in calls and n > 1),
            "sent_not_at_fakes": sorted(set(calls) - set(at_fakes))[:20],
            "route_orders_not_final": open_orders}


def broken_books(run: LiveRun) -> list[dict[str, Any]]:
    """Every broken -> repaired interval of a route's book, and what reached the route or the venues inside it:
    book events (must be none but the empty book), legs decided on it, orders sent on that venue's symbol."""
    p = run.probe
    out: list[dict[str, Any]] = []
    open_: dict[tuple[str, str], Any] = {}
    end = time.perf_counter_ns()
    for b in run.host.market.breaks:
        key = (b.venue, b.base)
        if b.kind == "broken":
            open_[key] = b
        elif key in open_:
            out.append(_interval(p, open_.pop(key), b.at, b.ts))
    out += [_interval(p, b, end, time.time_ns(), repaired=False) for b in open_.values()]
    return out


def _interval(p: Probe, b: Any, end_at: int, end_ts: int, repaired: bool = True) -> dict[str, Any]:
    inside = [k for at, k in p.deliveries.get((b.base, b.venue), []) if b.at < at < end_at]
    other = "upbit" if b.venue == "binance" else "binance"
    symbol = f"{b.base}USDT" if b.venue == "binance" else f"KRW-{b.base}"
    return {"venue": b.venue, "route": b.base, "why": b.why, "broken_s": p.s(b.at),
            "repaired_s": p.s(end_at) if repaired else None, "repaired": repaired,
            "broken_for_ms": round((end_at - b.at) / 1e6, 2),
            "book_events_delivered": sum(1 for k in inside if k in ("book", "delta")),
            "empty_books_delivered": inside.count("empty"),
            "legs_decided_on_it": [leg["client_id"] for leg in p.legs
                                   if leg["base"] == b.base and b.ts <= leg["decision_ts"] < end_ts],
            "orders_sent_on_it": [c["client_id"] for c in p.places
                                  if c["venue"] == b.venue and c["symbol"] == symbol and b.at < c["at"] < end_at],
            f"{other}_messages_meanwhile": sum(1 for at, _ in p.deliveries.get((b.base, other), [])
                                               if b.at < at < end_at)}


def trades_on_broken_books(intervals: list[dict[str, Any]]) -> int:
    return sum(len(i["legs_decided_on_it"]) + len(i["orders_sent_on_it"]) + i["book_events_delivered"]
               for i in intervals)


def recover_figures(times: list[float | None]) -> dict[str, Any]:
    got = sorted(t for t in times if t is not None)
    return {"recovered": len(got), "recover_s_p50": got[len(got) // 2] if got else None,
            "recover_s_max": got[-1] if got else None}


async def finish(run: LiveRun, result: dict[str, Any], checks: dict[str, bool], problem: str | None) -> dict[str, Any]:
    """Stop the host and the fakes (once every order the routes sent is final, or 10 s), add the common figures
    and checks, write drill.json."""
    await wait_for(lambda: not order_figures(run)["route_orders_not_final"], 10.0)
    try:
        stopped = await run.host.stop()
    finally:
        await run.fakes.stop()
    orders = order_figures(run)
    intervals = broken_books(run)
    trips = sum(len(r.feed.reported_closes) for r in run.host.routes.values())
    checks = {**checks, "no_duplicated_order": orders["duplicated_orders"] == 0 and orders["duplicated_at_fakes"] == 0,
              "client_ids_unique": orders["client_ids_unique"],
              "every_route_order_final": not orders["route_orders_not_final"],
              "no_trade_on_a_broken_book": trades_on_broken_books(intervals) == 0,
              "every_broken_book_repaired": all(i["repaired"] for i in intervals)}
    result = {"kind": run.req.kind, "host": "LiveHostActor in the drill's process, on the local fake venues "
              "(synthetic market)", "routes": list(run.req.routes), "seed": run.req.seed, "sets": list(run.req.sets),
              **result, "orders": orders, "duplicated_orders": orders["duplicated_orders"],
              "trades_on_broken_book": trades_on_broken_books(intervals), "broken_books": intervals,
              "round_trips": trips, "gateways": {v: {k: x for k, x in g.items() if k != "send_ms"}
                                                 for v, g in stopped["gateways"].items()},
              "feed_restarts": dict(run.host.feed_restarts), "host_errors": list(run.host.errors)[:50],
              "checks": checks}
    if problem is not None:
        result["problem"] = problem
    result["passed"] = problem is None and all(checks.values())
    run.req.out.mkdir(parents=True, exist_ok=True)
    (run.req.out / "drill.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    return result


def route_errors(run: LiveRun) -> list[str]:
    """Host errors other than the feed restarts a drill causes on purpose."""
    return [e for e in run.host.errors if " feed " not in e]


async def warm(run: LiveRun) -> str | None:
    """Until the routes trade (an order sent): a drill on a host that sends nothing proves nothing."""
    if await wait_for(lambda: bool(run.probe.places), run.req.budget_s * 0.6):
        return None
    return f"no order sent within {run.req.budget_s * 0.6:.0f} s of trading: nothing to prove"


# ---- the drills
async def feed_kill(run: LiveRun) -> Outcome:
    req, kills = run.req, []
    for i in range(req.times):
        kills.append(await _kill_feeds(run, "ws_drop" if i % 2 == 0 else "feed_task_cancel"))
        await asyncio.sleep(0.5)  # trading goes on between kills
    routes = run.host.routes
    seen = {b: int(r.state.si[S_NS]) for b, r in routes.items()}  # decision points evaluated so far
    resumed = await wait_for(lambda: all(int(r.state.si[S_NS]) > seen[b] for b, r in routes.items()),
                             req.budget_s * 0.2)
    await wait_for(lambda: sent_since(run, kills[-1]["at"]) > 0, req.budget_s * 0.2)  # orders: if the market offers
    restarts = run.host.feed_restarts
    checks = {"every_kill_recovered": all(k["recover_s"] is not None for k in kills),
              "every_route_deciding_again": resumed, "no_route_error": not route_errors(run),
              "feed_tasks_restarted": min(restarts.values()) >= req.times // 2}
    after = sent_since(run, kills[0]["at"])
    for k in kills:
        k["at_s"] = run.probe.s(k.pop("at"))
    return ({"kills": len(kills), "kill_log": kills, **recover_figures([k["recover_s"] for k in kills]),
             "restarts": sum(restarts.values()), "orders_sent_after_the_kills": after},
            checks, None)


async def _kill_feeds(run: LiveRun, how: str) -> dict[str, Any]:
    """Kill both venues' feeds; recovery = every route has a full book of each venue again (a repair after)."""
    host, at = run.host, time.perf_counter_ns()
    if how == "ws_drop":
        for f in run.faults.values():
            f.ws_drop = 1
    else:
        for task in host.feed_tasks.values():
            task.cancel()
    want = {(v, b) for v in ("binance", "upbit") for b in run.req.routes}

    def repaired() -> set[tuple[str, str]]:
        return {(b.venue, b.base) for b in host.market.breaks if b.kind == "repaired" and b.at > at}

    ok = await wait_for(lambda: want <= repaired() and not host.market.broken, run.req.budget_s * 0.4)
    last = max((b.at for b in host.market.breaks if b.kind == "repaired" and b.at > at), default=None)
    noticed = {(b.venue, b.base) for b in host.market.breaks if b.kind == "broken" and b.at > at}
    return {"how": how, "window": "-", "at": at, "books_broken": len(noticed), "books_repaired": len(repaired()),
            "recover_s": round((last - at) / 1e9, 3) if ok and last is not None and want <= noticed else None}


async def five_xx(run: LiveRun) -> Outcome:
    for f in run.faults.values():
        f.error_after_accept = run.req.times
    hit = await wait_for(lambda: all(f.error_after_accept == 0 for f in run.faults.values()), run.req.budget_s)
    await wait_for(lambda: _unknowns_settled(run), 15.0)
    unknowns = _unknown_outcomes(run)
    checks = {"every_unknown_resolved": bool(unknowns) and all(u["resolved"] for u in unknowns),
              "resolved_as_the_venue_did": all(u["matches_venue"] for u in unknowns),
              "each_unknown_sent_once": all(u["sent"] == 1 and u["orders_at_venue"] == 1 for u in unknowns),
              "no_route_error": not route_errors(run)}
    problem = None if hit else "not every 5xx fault landed within the budget (too few orders)"
    return ({"faults": len(unknowns), "unknown_outcomes": unknowns,
             **recover_figures([u["resolve_s"] for u in unknowns])}, checks, problem)


def _unknowns_settled(run: LiveRun) -> bool:
    return all(u["resolved"] for u in _unknown_outcomes(run))


def _unknown_outcomes(run: LiveRun) -> list[dict[str, Any]]:
    """Each order a fake accepted then answered 5xx: what the venue did, what the route booked, how long the
    engine took to know, how often it was sent."""
    out = []
    for venue, faults in run.faults.items():
        engine = run.engines[venue]
        for rec in (a for a in faults.applied if a["fault"] == "error_after_accept"):
            cid = rec.get("client_id", "")
            at_venue = [o for o in engine.orders.values() if o.client_id == cid]
            leg = next((x for x in run.probe.legs if x["client_id"] == cid), {})
            route = run.host.routes.get(leg.get("base", ""))
            order = route.orders.get(cid) if route is not None else None
            booked = None if order is None else order.filled_qty
            venue_filled = at_venue[0].filled if at_venue else None
            resolved = order is not None and order.status.is_terminal and "answered" in leg
            out.append({"venue": venue, "client_id": cid, "first_answer": "5xx (accepted, outcome unknown)",
                        "resolved": resolved, "resolved_as": leg.get("status"),
                        "venue_status": at_venue[0].status if at_venue else None,
                        "venue_filled": str(venue_filled), "route_booked": str(booked),
                        "matches_venue": resolved and venue_filled is not None and booked == venue_filled,
                        "resolve_s": round((leg["answered"] - rec["at"]) / 1e9, 3) if resolved else None,
                        "sent": sum(1 for p in run.probe.places if p["client_id"] == cid),
                        "orders_at_venue": len(at_venue)})
    return out


async def ws_gap(run: LiveRun) -> Outcome:
    gaps = [await _one_gap(run) for _ in range(run.req.times)]
    gap_books = [i for i in broken_books(run) if "gap" in i["why"]]
    checks = {"every_gap_noticed_and_resynced": all(g["recover_s"] is not None for g in gaps),
              "broken_window_was_exercised": any(i.get("upbit_messages_meanwhile", 0) > 0 for i in gap_books),
              "no_route_error": not route_errors(run)}
    return ({"gaps": len(gaps), "gap_log": gaps, **recover_figures([g["recover_s"] for g in gaps]),
             "rest_delay_ms_during_resync": GAP_REST_DELAY_MS}, checks, None)


async def _one_gap(run: LiveRun) -> dict[str, Any]:
    """Skip one Binance diff with a slow REST depth: recovery = the fault -> the gapped book repaired."""
    f, market = run.faults["binance"], run.host.market
    f.delay_ms, f.ws_gap = GAP_REST_DELAY_MS, 1
    n = len(f.applied)
    await wait_for(lambda: len(f.applied) > n, 5.0)
    at = f.applied[n]["at"] if len(f.applied) > n else time.perf_counter_ns()
    broke = await wait_for(lambda: any(b.kind == "broken" and b.at > at for b in market.breaks), 5.0)
    hit = next((b for b in market.breaks if b.kind == "broken" and b.at > at), None)
    ok = hit is not None and await wait_for(
        lambda: any(b.kind == "repaired" and b.base == hit.base and b.venue == "binance" and b.at > hit.at
                    for b in market.breaks), 10.0)
    f.delay_ms = 0
    rep = next((b for b in market.breaks if hit is not None and b.kind == "repaired" and b.base == hit.base
                and b.venue == "binance" and b.at > hit.at), None)
    await asyncio.sleep(0.5)  # trading goes on between gaps
    return {"how": "ws_gap", "window": "-", "at_s": run.probe.s(at), "route": hit.base if hit else None,
            "noticed": broke, "noticed_after_ms": round((hit.at - at) / 1e6, 2) if hit else None,
            "recover_s": round((rep.at - at) / 1e9, 3) if ok and rep is not None else None}


DRILLS: dict[str, Callable[[LiveRun], Coroutine[Any, Any, Outcome]]] = {
    "live-feed-kill": feed_kill, "live-5xx": five_xx, "live-ws-gap": ws_gap}


async def drill(req: LiveDrillRequest) -> dict[str, Any]:
    """Start the fakes and the host, wait until the routes trade, break things (the kind's body), write it up."""
    run = await start_run(req)
    try:
        problem = await warm(run)
        result, checks, late = await DRILLS[req.kind](run) if problem is None else ({}, {}, None)
    except BaseException:
        await run.host.stop()
        await run.fakes.stop()
        raise
    return await finish(run, result, checks, problem or late)


def run_live_drill(req: LiveDrillRequest) -> dict[str, Any]:
    if req.kind == "live-route-kill":
        from .live_drill_route import route_kill

        return route_kill(req)
    return asyncio.run(drill(req))


def live_drill_main(req: LiveDrillRequest) -> int:
    result = run_live_drill(req)
    keys = ("kind", "kills", "faults", "gaps", "recover_s_p50", "recover_s_max", "duplicated_orders",
            "trades_on_broken_book", "passed")
    print(json.dumps({k: result[k] for k in keys if k in result}, indent=1))
    if "problem" in result:
        print(f"error: {result['problem']}")
    elif not result["passed"]:
        print("failed checks: " + ", ".join(k for k, v in result["checks"].items() if not v))
    return 0 if result["passed"] else 1
