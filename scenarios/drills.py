"""Chaos drills: run a paper replay undisturbed, run it again while something breaks, compare the two.

Kinds:
- ``kill``: kill one actor (route, feed, portfolio, risk, fx, alert) N times at random moments.
- ``redis-down``: snapshots go to a throwaway Redis that is stopped for a while mid-run; the target is
  killed once while Redis is down (it must come back from the file fallback) and once after it is back.
- ``corrupt-snapshot``: the target is killed and, while it is down, its newest snapshot is overwritten with
  garbage: it must skip it (checksum) and come back from the previous one, the feeds resending the rest.
- ``postgres-down``: the journal goes to a throwaway PostgreSQL that is stopped for a while mid-run (with a
  kill of the target while it is down); at the end every intent and fill is in it exactly once.
- ``stores-down``: Redis (snapshots) and PostgreSQL (journal), both throwaway, are stopped together mid-run;
  while both are down the target is killed, then the portfolio (or the route, when the portfolio is the
  target); both come back later. The run must end as the undisturbed one did, every journal record in
  PostgreSQL once, the overflow file empty.
- ``node-loss``: a two-node Ray cluster on this machine (``ray.cluster_utils.Cluster``, started by the drill:
  run it in a fresh process); the routes live on the worker node, everything else on the head; mid-run the
  worker node is removed and the routes must come back on the head from their snapshots.

Every drill writes ``drill.json``: kills, restarts, recover_s_p50 / recover_s_max, lost_fills,
duplicated_fills and ledger_diff_krw versus the undisturbed run, and ``passed``.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

from ..actors.recovery import RecoveryConfig
from ..core.config import EngineConfig
from ..errors import UserError
from .chaos import ChaosPlan
from .drill_report import render_drill_report
from .paper import PaperRequest, run_paper

KINDS = ("kill", "redis-down", "corrupt-snapshot", "postgres-down", "node-loss", "stores-down")
TARGETS = ("route", "feed", "portfolio", "risk", "fx", "alert")


@dataclass(frozen=True)
class DrillRequest:
    kind: str
    store: Path
    routes: str
    out: Path
    target: str = "route:BTC"
    times: int = 3
    seed: int = 0
    mode: str = "mixed"  # ray_kill | sigkill | mixed
    config: EngineConfig = field(default_factory=EngineConfig)
    window_events: int = 200
    route_hosts: int = 0
    redis_url: str | None = None  # kill drills: snapshots here (None: the embedded file store)
    run_id: str = ""
    baseline: Path | None = None  # an undisturbed run of the same data and settings already made (its out dir)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise UserError(f"drill kind must be one of {KINDS}, got {self.kind!r}")
        if self.target.split(":", 1)[0] not in TARGETS:
            raise UserError(f"target must be route:SYM, feed:VENUE, portfolio, risk, fx or alert; got {self.target!r}")
        if self.times < 0 or self.window_events < 1:
            raise UserError("times must be >= 0 and window_events >= 1")


def _child_role(req: DrillRequest, routes: list[str]) -> str:
    """The actor the target names: with co-located routes, a route is its host."""
    if req.target.startswith("route:") and req.route_hosts > 0:
        sym = req.target.split(":", 1)[1]
        if sym not in routes:
            raise UserError(f"route {sym} is not in this run ({routes})")
        return f"route:host{routes.index(sym) % req.route_hosts}"
    return req.target


def _fills(out: Path) -> Counter[str]:
    lines = (out / "fills.csv").read_text().splitlines()[1:]
    return Counter(lines)


def compare(baseline: Path, disturbed: Path, base_extra: dict[str, Any], dist_extra: dict[str, Any]) -> dict[str, Any]:
    """What the disturbed run lost, doubled or changed against the undisturbed one."""
    a, b = _fills(baseline), _fills(disturbed)
    base_net = Decimal(base_extra["portfolio"]["net_pnl_krw"])
    dist_net = Decimal(dist_extra["portfolio"]["net_pnl_krw"])
    return {
        "fills_baseline": sum(a.values()), "fills_drill": sum(b.values()),
        "lost_fills": sum((a - b).values()), "duplicated_fills": sum((b - a).values()),
        "trades_identical": (baseline / "trades.csv").read_bytes() == (disturbed / "trades.csv").read_bytes(),
        "ledger_identical": base_extra["ledger"] == dist_extra["ledger"],
        "ledger_diff_krw": format(abs(dist_net - base_net), "f"),
        "net_pnl_krw_baseline": format(base_net, "f"), "net_pnl_krw_drill": format(dist_net, "f"),
    }


def _recovery_figures(kills: list[dict[str, Any]]) -> dict[str, Any]:
    times = [k["recover_s"] for k in kills if k.get("recover_s") is not None]
    return {"kills": len(kills), "recovered": len(times),
            "recover_s_p50": float(np.percentile(times, 50)) if times else None,
            "recover_s_max": float(max(times)) if times else None}


def _why(baseline: dict[str, Any], drilled: dict[str, Any], routes_stats: list[dict[str, Any]]) -> dict[str, Any]:
    """What to look at first when the two runs differ: the decision funnels, the rejections that differ, and
    what each route took in and asked for."""
    rej_b, rej_d = baseline.get("rejections", {}), drilled.get("rejections", {})
    return {"funnel": {"baseline": baseline.get("funnel"), "drill": drilled.get("funnel")},
            "rejections_differing": {k: [rej_b.get(k), rej_d.get(k)] for k in sorted({*rej_b, *rej_d})
                                     if rej_b.get(k) != rej_d.get(k)},
            "routes": {r["route"]: {"events_in": r.get("events_in"), "order_status": r.get("order_status"),
                                    "risk_rejections": len(r.get("risk_rejections", [])),
                                    "flatten_requests": r.get("flatten_requests")} for r in routes_stats}}


def nothing_proved(kind: str, times: int, kills: int, windows: int) -> str | None:
    """Why a drill proves nothing, if it does not: a kill drill in which no kill landed (the run ended first)."""
    if kind == "kill" and times > 0 and kills == 0:
        return (f"no kill landed before the run ended ({windows} feed windows): use a smaller --window-events "
                "(more, shorter windows) or a longer replay")
    return None


def run_drill(req: DrillRequest) -> dict[str, Any]:
    """Both runs, the comparison, ``drill.json``; returns what it wrote."""
    from .market_data import resolve_routes

    routes = resolve_routes(req.store, req.routes)
    cluster = _TwoNodes() if req.kind == "node-loss" else None
    try:
        return _run_drill(req, routes, cluster)
    finally:
        if cluster is not None:
            cluster.shutdown()


def _run_drill(req: DrillRequest, routes: list[str], cluster: _TwoNodes | None) -> dict[str, Any]:
    run_id = req.run_id or f"d{int(time.time() * 1000) % 10**7}"
    req.out.mkdir(parents=True, exist_ok=True)
    snap_dir = req.out / "snapshots"
    shutil.rmtree(snap_dir, ignore_errors=True)
    base_req = PaperRequest(req.store, req.routes, req.out / "baseline", config=req.config,
                            window_events=req.window_events, route_hosts=req.route_hosts, run_id=f"{run_id[:6]}b")
    t0 = time.time()
    if req.baseline is not None:  # reuse: several drills against one undisturbed run
        baseline = json.loads((req.baseline / "summary.json").read_text())
        base_dir = req.baseline
    else:
        baseline = run_paper(base_req)
        base_dir = req.out / "baseline"
    role = _child_role(req, routes)
    rec = RecoveryConfig(run_id, env="drill", redis_url=req.redis_url, dir=str(snap_dir))
    drill_req = replace(base_req, out=req.out / "drill", recovery=rec, supervise=True, run_id=run_id)
    servers: list[Any] = []
    try:
        if req.kind == "kill":
            drill_req = replace(drill_req, chaos=ChaosPlan(role, req.times, req.seed, req.mode))
        elif cluster is not None:
            from .chaos import ScriptStep

            drill_req = replace(drill_req, route_node=cluster.worker_id, home_node=cluster.head_id,
                                chaos=ChaosPlan(role, 0, req.seed, req.mode,
                                                script=(ScriptStep(0.4, "crash", cluster.lose_worker_node),)))
        else:
            drill_req = _scripted(req, drill_req, role, servers)
        t1 = time.time()
        drilled = run_paper(drill_req)
        ids = (cluster.head_id, cluster.worker_id, cluster.lost) if cluster is not None else None
        extra = _server_checks(req, drill_req, drilled, servers, ids)
    finally:
        for s in servers:
            s.close()
    base_paper: dict[str, Any] = baseline["paper"]
    paper: dict[str, Any] = drilled["paper"]  # type: ignore[assignment]
    chaos = paper.get("chaos") or {}
    sup = paper.get("supervisor") or {}
    routes_stats = paper["routes"]
    result = {
        "kind": req.kind, "target": req.target, "actor": role, "mode": req.mode, "seed": req.seed,
        "routes": routes, "run_id": run_id, "window_events": req.window_events,
        **_recovery_figures(chaos.get("kills", [])),
        "restarts": sum(1 for e in sup.get("events", []) if e["action"] in ("restart", "escalate")),
        "supervisor": sup,
        **compare(base_dir, req.out / "drill", base_paper, paper),
        "route_recovery": {r["route"]: r.get("recovery") for r in routes_stats},
        "why": _why(baseline, drilled, routes_stats),
        "venues": paper.get("venues"),
        "chaos": chaos, **extra,
        "wall_s": {"baseline": round(t1 - t0, 2), "drill": round(time.time() - t1, 2)},
    }
    windows = max((int(f.get("windows", 0)) for f in paper.get("feeds", [])), default=0)
    result["windows"] = windows
    problem = nothing_proved(req.kind, req.times, int(result["kills"]), windows)
    if problem is not None:
        result["problem"] = problem
    result["passed"] = bool("problem" not in result and result["lost_fills"] == 0 and result["duplicated_fills"] == 0
                            and result["ledger_identical"] and result["trades_identical"]
                            and result["recovered"] == result["kills"]
                            and all(result.get("checks", {}).values()))
    (req.out / "drill.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    (req.out / "drill.html").write_text(render_drill_report(result))
    return result


def _scripted(req: DrillRequest, drill_req: PaperRequest, role: str, servers: list[Any]) -> PaperRequest:
    """The drill's script: which server goes down when, where the kills land."""
    from .chaos import ScriptStep

    if req.kind == "redis-down":
        from ..infra.throwaway import ThrowawayRedis

        redis = ThrowawayRedis()
        redis.start()
        servers.append(redis)
        rec = replace(drill_req.recovery, redis_url=redis.url) if drill_req.recovery else None
        steps: tuple[ScriptStep, ...] = (ScriptStep(0.05, "call", redis.stop), ScriptStep(0.4, "kill"),
                                         ScriptStep(0.6, "call", redis.start), ScriptStep(0.8, "kill"))
        return replace(drill_req, recovery=rec, chaos=ChaosPlan(role, 0, req.seed, req.mode, script=steps))
    if req.kind == "stores-down":
        return _stores_down(req, drill_req, role, servers)
    if req.kind == "corrupt-snapshot":
        assert drill_req.recovery is not None
        corrupt = _Corrupter(drill_req.recovery, role)
        steps = tuple(ScriptStep(f, "kill", corrupt) for f in (0.3, 0.6)[: max(req.times, 1)])
        return replace(drill_req, chaos=ChaosPlan(role, 0, req.seed, req.mode, script=steps))
    from ..infra.throwaway import ThrowawayPostgres

    pg = ThrowawayPostgres()
    pg.start()
    servers.append(pg)
    steps = (ScriptStep(0.05, "call", lambda: pg.stop(hard=True)), ScriptStep(0.5, "kill"),
             ScriptStep(0.98, "call", pg.start))  # down for most of the run, trading included: intents go to
    # the overflow file
    return replace(drill_req, journal_dsn=pg.dsn, journal_dir=str(req.out / "journal"),
                   chaos=ChaosPlan(role, 0, req.seed, req.mode, script=steps))


def _stores_down(req: DrillRequest, drill_req: PaperRequest, role: str, servers: list[Any]) -> PaperRequest:
    """Both stores stop at 10 % of the run; the target is killed at once (before it saved anything since:
    its newest snapshot is the one Redis took), a second actor at 40 %; both stores are back at 80 %."""
    from ..infra.throwaway import ThrowawayPostgres, ThrowawayRedis
    from .chaos import ScriptStep

    redis, pg = ThrowawayRedis(), ThrowawayPostgres()
    servers += [redis, pg]
    redis.start()
    pg.start()

    def stores_down() -> None:
        redis.stop()
        pg.stop(hard=True)

    def stores_up() -> None:
        redis.start()
        pg.start()

    assert drill_req.recovery is not None
    rec = replace(drill_req.recovery, redis_url=redis.url)
    if role != "portfolio":
        other = "portfolio"
    else:
        from .market_data import resolve_routes

        other = _child_role(replace(req, target=f"route:{resolve_routes(req.store, req.routes)[0]}"),
                            resolve_routes(req.store, req.routes))
    steps = (ScriptStep(0.1, "call", stores_down), ScriptStep(0.11, "kill"),
             ScriptStep(0.4, "call", _Killer(rec, other)), ScriptStep(0.8, "call", stores_up))
    return replace(drill_req, recovery=rec, journal_dsn=pg.dsn, journal_dir=str(req.out / "journal"),
                   chaos=ChaosPlan(role, 0, req.seed, req.mode, script=steps))


class _Killer:
    """Kills a run's actor by name (Ray restarts it): a second casualty in a scripted drill."""

    def __init__(self, rec: RecoveryConfig, role: str) -> None:
        self.rec, self.role = rec, role
        self.__name__ = f"kill {role}"
        self.killed = 0

    def __call__(self) -> None:
        import ray

        ray.kill(ray.get_actor(self.rec.actor_name(self.role)), no_restart=False)
        self.killed += 1


SNAPSHOT_OF = {"portfolio": ("portfolio", "ledger"), "risk": ("risk", "coordinator"), "fx": ("fx", "USDTKRW"),
               "alert": ("alert", "sent")}


class _Corrupter:
    """Overwrites the newest snapshot of an actor with garbage (in Redis, or the file store): what a torn
    write or a bad disk leaves. Called right after the kill, so the restarted actor must skip it."""

    def __init__(self, rec: RecoveryConfig, role: str) -> None:
        kind, _, name = role.partition(":")
        if kind == "route" and name.startswith("host"):
            raise UserError("corrupt-snapshot drills name a route, not a host: run them without route hosts")
        self.rec = rec
        self.domain, self.name = SNAPSHOT_OF.get(role, (kind, name))
        self.corrupted: list[int] = []

    def __call__(self) -> None:
        from ..infra.snapshots import FileSnapshotStore, RedisSnapshotStore

        if self.rec.redis_url:
            store = RedisSnapshotStore(self.rec.redis_url, self.rec.env, self.rec.run_id)
            seqs = store._seqs(self.domain, self.name)
            if seqs:
                store.client.hset(store._key(self.domain, self.name), str(seqs[0]), b"ALSNAP1\ngarbage")
        else:
            files = FileSnapshotStore(self.rec.dir, self.rec.env, self.rec.run_id)
            seqs = files._seqs(self.domain, self.name)
            if seqs:
                (files._dir(self.domain, self.name) / f"{seqs[0]:012d}.snap").write_bytes(b"ALSNAP1\ngarbage")
        if seqs:  # none yet: nothing corrupted, and the drill's check says so
            self.corrupted.append(seqs[0])


def _server_checks(req: DrillRequest, drill_req: PaperRequest, drilled: dict[str, Any], servers: list[Any],
                   cluster_ids: tuple[str, str, bool] | None = None) -> dict[str, Any]:
    if req.kind == "postgres-down":
        journal, checks = _journal_checks(drilled)
        checks["intents_fsynced_while_down"] = journal.get("stats", {}).get("intents_fsynced", 0) > 0
        return {"journal": journal, "checks": checks}
    if req.kind == "redis-down":
        return {"checks": {"file_fallback_used": _file_fallback_used(drilled)}}
    if req.kind == "stores-down":
        journal, checks = _journal_checks(drilled)
        overflow = Path(drill_req.journal_dir or "") / f"{drill_req.run_id}.overflow.jsonl"
        checks["overflow_file_emptied"] = journal.get("left_in_overflow") == 0 and (
            not overflow.exists() or overflow.stat().st_size == 0)
        checks["error_names_postgres"] = str(journal.get("stats", {}).get("last_error")).startswith("PostgreSQL at")
        checks["file_fallback_used"] = _file_fallback_used(drilled)
        killer = next((st.fn for st in drill_req.chaos.script if isinstance(st.fn, _Killer)), None) \
            if drill_req.chaos is not None else None
        checks["second_kill_landed"] = killer is not None and killer.killed == 1
        return {"journal": journal, "checks": checks}
    if req.kind == "node-loss":
        nodes = {r["route"]: r["node_id"] for r in drilled["paper"]["routes"]}
        assert cluster_ids is not None
        return {"route_nodes_at_end": nodes,
                "checks": {"routes_moved_off_the_lost_node": all(n != cluster_ids[1] for n in nodes.values()),
                           "worker_node_was_lost": cluster_ids[2]}}
    if req.kind == "corrupt-snapshot":
        snaps = [((r.get("recovery") or {}).get("snapshots") or {}) for r in drilled["paper"]["routes"]]
        skipped = sum(s.get("skipped", 0) for s in snaps)
        corrupter = drill_req.chaos.script[0].fn if drill_req.chaos is not None and drill_req.chaos.script else None
        corrupted = list(getattr(corrupter, "corrupted", []))
        return {"corrupted_seqs": corrupted,
                "checks": {"corrupt_snapshot_skipped": skipped > 0, "snapshot_corrupted": bool(corrupted)},
                "snapshots": snaps}
    return {}


def _journal_checks(drilled: dict[str, Any]) -> tuple[dict[str, Any], dict[str, bool]]:
    """Every intent and fill in the journal's backend once, the other kinds written, nothing dropped."""
    journal = drilled["paper"].get("journal") or {}
    expected = journal.get("expected", {})
    counts = journal.get("counts") or {}
    stats = journal.get("stats", {})
    checks = {f"journal_{k}_exactly_once": counts.get(k) == v for k, v in expected.items()}
    checks["journal_order_events_written"] = counts.get("order_event", 0) >= 2 * expected.get("intent", 0)
    trips = max(1, expected.get("fill", 0) // 4)
    checks["journal_trade_transitions_written"] = counts.get("trade_transition", 0) >= trips
    checks["journal_pnl_snapshot_per_trip"] = counts.get("pnl_snapshot", 0) == int(drilled.get("trades", -1))
    checks["journal_dropped_nothing"] = stats.get("dropped", 0) == 0
    checks["outage_reached_the_journal"] = stats.get("spilled", 0) + stats.get("retries", 0) > 0
    return journal, checks


def _file_fallback_used(drilled: dict[str, Any]) -> bool:
    recs = [r.get("recovery") or {} for r in drilled["paper"]["routes"]]
    return any(x.get("snapshot_fallbacks_total", 0) > 0 or "file" in x.get("restore_sources", []) for x in recs)


class _TwoNodes:
    """A head node (the driver, feeds, venues, risk, portfolio) and a worker node (the routes)."""

    def __init__(self) -> None:
        import ray
        from ray.cluster_utils import Cluster

        if ray.is_initialized():
            raise UserError("the node-loss drill starts its own two-node cluster: run it in a fresh process "
                             "(arbitrage-lite drill node-loss ...)")
        self.cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False})
        self.worker = self.cluster.add_node(num_cpus=1)
        ray.init(address=self.cluster.address, log_to_driver=False)
        self.head_id = ray.get_runtime_context().get_node_id()
        self.worker_id = str(self.worker.node_id)
        self.lost = False

    def lose_worker_node(self) -> None:
        """The whole worker node goes (its raylet and every worker process on it)."""
        self.cluster.remove_node(self.worker)
        self.lost = True

    def shutdown(self) -> None:
        import ray

        ray.shutdown()
        self.cluster.shutdown()  # type: ignore[no-untyped-call]


def drill_main(req: DrillRequest) -> int:
    result = run_drill(req)
    print(json.dumps({k: result[k] for k in ("kind", "target", "kills", "restarts", "recover_s_p50",
                                             "recover_s_max", "lost_fills", "duplicated_fills",
                                             "ledger_diff_krw", "passed")}, indent=1))
    if "problem" in result:
        print(f"error: {result['problem']}", file=sys.stderr)
    return 0 if result["passed"] else 1
