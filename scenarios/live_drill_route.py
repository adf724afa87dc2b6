"""``live-route-kill``: the live host's process is killed (``ray.kill``) with orders in flight; a new host
(a new run id, the same journal) reconciles by client id and finds them, with their fills, and sends none again.

The fakes hold every order request ``HOLD_MS`` before they look at it (``delay_ms``), so the legs the killed
host had just sent reach the venue only after it died: nobody heard their answer. The drill waits until they
have landed (the venue's own book says which: orders of the killed run created after the kill), then starts
the new host with ``ReconcileSettings(prior_runs=(killed run,))``: its passes must resolve every one of them
(RESOLVED, the venue's filled quantity, fills to book), and the fakes must hold each client id once.
The killed host runs as a Ray actor (a process to kill); the new one in this process, so the drill reads its
reconciliation directly.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from decimal import Decimal
from typing import Any

from ..core.config import EngineConfig
from .live_drills import LiveDrillRequest, recover_figures, wait_for

HOLD_MS = 2500  # the fakes sit on each request this long while the kill lands (< Binance's 5 s recvWindow)
GRACE_S = 2.0  # not found is believed this long after the journal's last word (none expected here)


async def _route_kill(req: LiveDrillRequest) -> dict[str, Any]:
    import ray

    from ..actors.live_host import LiveHostActor, LiveSpec
    from ..infra.config_tree import apply_sets
    from ..infra.live.reconcile_loop import ReconcileSettings
    from ..infra.venues.fake.server import FakeVenues
    from ..infra.venues.fake.synthetic import SyntheticSpec
    from .live import _binance_rules, _endpoints_from_fakes

    journal = str(req.out / "journal")
    old_run, new_run = f"{req.run_id[:6]}k", f"{req.run_id[:6]}r"
    fakes = FakeVenues(synthetic=SyntheticSpec(coins=req.routes, seed=req.seed))
    info = await fakes.start()
    assert fakes.binance is not None and fakes.upbit is not None
    engines = {"binance": fakes.binance.engine, "upbit": fakes.upbit.engine}
    faults = [fakes.binance_faults, fakes.upbit_faults]
    binance, upbit = _endpoints_from_fakes(info)
    rules = await _binance_rules(binance, list(req.routes))
    cfg = apply_sets(EngineConfig(), list(req.sets))

    def spec(run_id: str, settings: ReconcileSettings) -> LiveSpec:
        return LiveSpec({b: (cfg, rules[b]) for b in req.routes}, binance, upbit, run_id, cfg.risk,
                        Decimal(100_000_000), journal_dir=journal, reconcile=settings)

    def ours(run_id: str) -> list[Any]:
        return [o for e in engines.values() for o in e.orders.values() if f"-{run_id}-" in o.client_id]

    new_host: Any = None
    result: dict[str, Any] = {}
    problem = None
    try:
        old: Any = ray.remote(LiveHostActor).remote(spec(old_run, ReconcileSettings(every_s=0)))
        await old.start.remote()
        if not await wait_for(lambda: bool(ours(old_run)), req.budget_s * 0.6):
            problem = "the first host sent no order: nothing to prove"
        else:
            kill = await _kill_in_flight(ray, old, faults, req.budget_s)
            result.update(kill)
            landed = await wait_for(lambda: bool(_in_flight(ours(old_run), kill["kill_ms"])), HOLD_MS / 1e3 + 3)
            for f in faults:
                f.delay_ms = 0
            in_flight = _in_flight(ours(old_run), kill["kill_ms"])
            if not landed:
                problem = "no order of the killed host reached a venue after the kill (none was in flight)"
            t0 = time.perf_counter()
            new_host = LiveHostActor(spec(new_run, ReconcileSettings(every_s=0, grace_s=GRACE_S,
                                                                     prior_runs=(old_run,))))
            await new_host.start()  # its first reconciliation pass runs in here, before any route trades
            result["restart_s"] = round(time.perf_counter() - t0, 3)
            found = await _reconcile_until_found(new_host, {o.client_id for o in in_flight}, old_run, req.budget_s,
                                                 t0)
            result.update(_figures(in_flight, found, engines, old_run, new_run))
            # the kill -> every order of the killed run has the venue's word (includes the HOLD_MS it waited)
            result["kill_to_reconciled_s"] = round((time.time_ns() // 1_000_000 - kill["kill_ms"]) / 1e3, 3)
            result["reconciliation"] = new_host.reconciler.summary() if new_host.reconciler else None
    finally:
        if new_host is not None:
            await new_host.stop()
        await fakes.stop()
    checks = {k: bool(v) for k, v in result.pop("checks", {}).items()}
    out = {"kind": req.kind, "host": "killed: LiveHostActor as a Ray actor (ray.kill); restarted: LiveHostActor "
           "in the drill's process, same journal, new run id; on the local fake venues (synthetic market)",
           "routes": list(req.routes), "seed": req.seed, "sets": list(req.sets), "run_ids": [old_run, new_run],
           "hold_ms": HOLD_MS, **result, "checks": checks}
    if problem is not None:
        out["problem"] = problem
    out["passed"] = problem is None and bool(checks) and all(checks.values())
    req.out.mkdir(parents=True, exist_ok=True)
    (req.out / "drill.json").write_text(json.dumps(out, indent=2, default=str) + "\n")
    return out


async def _kill_in_flight(ray: Any, host: Any, faults: list[Any], budget_s: float) -> dict[str, Any]:
    """Hold the venues' answers, wait for the host to issue a new leg, kill its process while it waits."""
    before = _issued((await host.status.remote())["routes"])
    for f in faults:
        f.delay_ms = HOLD_MS
    end = time.monotonic() + budget_s * 0.5
    issued = before
    while time.monotonic() < end and issued <= before:
        await asyncio.sleep(0.05)
        issued = _issued((await host.status.remote())["routes"])
    await asyncio.sleep(0.3)  # its requests are at the fakes now, each held HOLD_MS
    kill_ms = time.time_ns() // 1_000_000
    ray.kill(host, no_restart=True)
    return {"kill_ms": kill_ms, "legs_issued_before_hold": before, "legs_issued_at_kill": issued, "kills": 1}


def _issued(routes: dict[str, Any]) -> int:
    return sum(int(r["orders"]) for r in routes.values())


def _in_flight(orders: list[Any], kill_ms: int) -> list[Any]:
    """Orders of the killed run that the venue took after the kill: the host never saw their answer."""
    return [o for o in orders if o.created_ms >= kill_ms]


async def _reconcile_until_found(host: Any, cids: set[str], old_run: str, budget_s: float,
                                 t0: float) -> dict[str, dict[str, Any]]:
    """The new host's passes until each id in flight has a final word (and no order of the killed run is still
    pending): the first non-pending check per order of the killed run, timed from the new host's start (``t0``)."""
    from ..core.reconcile import Resolution

    found: dict[str, dict[str, Any]] = {}
    pending: set[str] = set()
    loop = host.reconciler

    def take(report: Any) -> None:
        for c in report.orders if report is not None else ():
            pending.discard(c.client_id) if c.resolution is not Resolution.PENDING else pending.add(c.client_id)
            if f"-{old_run}-" in c.client_id and c.client_id not in found and c.resolution is not Resolution.PENDING:
                found[c.client_id] = {"resolution": c.resolution.value, "venue_status": str(c.venue_status),
                                      "venue_filled_qty": c.venue_filled_qty, "resend": c.resend.value,
                                      "fills_to_book": sum((f.qty for f in c.fills_to_book), Decimal(0)),
                                      "unlisted_qty": c.unlisted_qty, "found_s": round(time.perf_counter() - t0, 3)}

    if loop is None:
        return found
    take(loop.last)
    end = time.monotonic() + budget_s
    while (not cids <= set(found) or pending) and time.monotonic() < end:
        await asyncio.sleep(0.2)
        take(await loop.run_pass())
    return found


def _figures(in_flight: list[Any], found: dict[str, dict[str, Any]], engines: dict[str, Any], old_run: str,
             new_run: str) -> dict[str, Any]:
    per_id = Counter(o.client_id for e in engines.values() for o in e.orders.values())
    rows = []
    for o in in_flight:
        f = found.get(o.client_id, {})
        rows.append({"client_id": o.client_id, "venue_status": o.status, "venue_filled": str(o.filled),
                     "resolution": f.get("resolution"), "reconciled_filled": str(f.get("venue_filled_qty")),
                     "fills_to_book": str(f.get("fills_to_book")), "unlisted_qty": str(f.get("unlisted_qty")),
                     "resend": f.get("resend"), "found_s_after_restart": f.get("found_s"),
                     "orders_at_venue": per_id[o.client_id]})
    landed = {o.client_id for o in in_flight}
    others = {cid: {k: str(v) for k, v in f.items()} for cid, f in found.items() if cid not in landed}

    def booked(r: dict[str, Any]) -> bool:  # the venue's executed quantity: as fills, or flagged unlisted
        listed = Decimal(r["fills_to_book"]) + Decimal(r["unlisted_qty"])
        return r["resolution"] == "resolved" and Decimal(r["reconciled_filled"]) == Decimal(r["venue_filled"]) \
            and listed == Decimal(r["venue_filled"])

    return {"in_flight_at_kill": rows, **recover_figures([r["found_s_after_restart"] for r in rows]),
            "other_orders_of_the_killed_run": others,
            "orders": {"at_fakes": sum(per_id.values()), "unique_client_ids": len(per_id),
                       "killed_run": sum(1 for c in per_id if f"-{old_run}-" in c),
                       "new_run": sum(1 for c in per_id if f"-{new_run}-" in c)},
            "duplicated_orders": sum(n - 1 for n in per_id.values() if n > 1),
            "checks": {"an_order_was_in_flight_at_the_kill": bool(in_flight),
                       "every_in_flight_order_found_by_client_id": all(r["resolution"] is not None for r in rows),
                       "resolved_as_the_venue_filled_it": all(booked(r) for r in rows if r["resolution"]),
                       "never_at_the_venue_is_not_found": all(o["resolution"] in ("not_found", "match")
                                                              for o in others.values()),
                       "nothing_resent": all(r["resend"] == "" and r["orders_at_venue"] == 1 for r in rows),
                       "no_duplicated_order": all(n == 1 for n in per_id.values())}}


def route_kill(req: LiveDrillRequest) -> dict[str, Any]:
    return asyncio.run(_route_kill(req))
