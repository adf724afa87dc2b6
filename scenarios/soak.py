"""Soak: one long compressed-time paper run with periodic chaos, watched hour by hour of market time.

The paper actor system (``paper._run_actors``, restartable and supervised, journal on SQLite, alerts through a
file outbox to a local webhook) replays the routes as fast as the machine allows, while:

- the chaos machinery (``chaos.run_chaos``) kills one actor at evenly spaced points of the run, the targets
  taking turns (``mixed``: ``ray.kill`` and SIGKILL alternating);
- a watcher pings every actor about once a second: its pid (restarts), its RSS (/proc), how far market time has
  got, and the feed-to-intent latencies the routes recorded since the last look (``take_latencies``).

The report counts crashes (restarts nobody planned, a run that raised, a supervisor that halted), restarts,
alerts (raised by the AlertActor, queued in its outbox, received by the webhook), and what was lost: every
route's fills and round trips against the backtest of the same events (``parity``) and the journal's intents
and fills against what the routes sent and got. Memory: per actor, the slope of its private resident memory
(RssAnon) in MB per market hour, fitted within each incarnation (a restart starts a process afresh; a leak
shows as the slope inside each).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

from ..actors.recovery import RecoveryConfig, ping
from ..core.alerts_config import AlertsConfig, QueueConfig, WebhookConfig
from ..core.config import EngineConfig
from ..core.replay import RouteResult, run_route
from ..core.risk import RiskLimits
from .chaos import ChaosPlan, ScriptStep, run_chaos
from .market_data import RouteData
from .paper import PaperRequest, _run_actors

HOUR_NS = 3_600_000_000_000
CHAOS_TARGETS = ("route:host0", "portfolio", "fx", "alert", "feed:upbit", "risk")
OTHER_ACTORS = ("PaperVenueActor", "JournalActor", "SupervisorActor")  # no ping: found by process title


@dataclass(frozen=True)
class SoakPlan:
    out: Path
    config: EngineConfig = field(default_factory=EngineConfig)
    risk: RiskLimits | None = None  # None: every open allowed (paper = backtest holds route by route)
    window_ns: int = 5_000_000_000  # feed windows of market time
    kills: int = 12  # chaos kills over the run, evenly spaced, the targets taking turns
    targets: tuple[str, ...] = CHAOS_TARGETS
    seed: int = 0
    sample_s: float = 1.0  # watcher period (wall time)
    progress_s: float | None = None  # print the market hour reached and RSS this often (wall s)
    run_id: str = "soak"  # the run's Ray names and snapshot keys: a fresh one per run (Redis outlives runs)
    redis_url: str | None = None  # snapshots to Redis (the file store mirrors them, unsynced); None: files, fsync'd

    def __post_init__(self) -> None:
        if self.kills < 0 or self.window_ns <= 0 or self.sample_s <= 0:
            raise ValueError("kills must be >= 0, window_ns and sample_s > 0")


# ---------------------------------------------------------------------------------------------- alerts
class _Counter(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.received += 1  # type: ignore[attr-defined]
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def webhook_counter() -> ThreadingHTTPServer:
    """A local webhook that counts what it receives (the channel the soak's alerts are delivered to)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Counter)
    server.received = 0  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def alerts_config(out: Path, url: str) -> AlertsConfig:
    """Every severity to the webhook, through a file outbox in the soak's directory."""
    every = ("webhook",)
    return AlertsConfig(webhook=WebhookConfig(url=url),
                        queue=QueueConfig(path=str(out / "alerts" / "outbox.jsonl"), fsync=False),
                        route_p0=every, route_p1=every, route_p2=every, route_p3=every).anchored()


# ---------------------------------------------------------------------------------------------- watching
def rss_mb(pid: int) -> float | None:
    """The process's private resident memory (RssAnon, MB): its heap. Not RSS: that also counts the pages of
    Ray's shared object store a process has touched (a feed's RSS grows with the messages it wrote there), and
    shared libraries."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    kb = [line.split()[1] for line in status.splitlines() if line.startswith("RssAnon:")]
    return int(kb[0]) / 1e3 if kb else None


def titled_workers(titles: tuple[str, ...]) -> dict[int, str]:
    """pid -> actor class of this machine's Ray workers whose process title starts with ``ray::<title>``, among
    this process's descendants (Ray started here: not another session's)."""
    children: dict[int, list[int]] = defaultdict(list)
    for d in os.listdir("/proc"):
        if d.isdigit():
            with contextlib.suppress(OSError):
                st = Path(f"/proc/{d}/stat").read_text()
                children[int(st[st.rfind(")") + 2:].split()[1])].append(int(d))
    out, todo = {}, [os.getpid()]
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        with contextlib.suppress(OSError):
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            for t in titles:
                if cmd.startswith(f"ray::{t}"):
                    out[pid] = t
    return out


@dataclass
class Watch:
    """What the watcher saw: samples of (wall s, market hour, {role: (pid, RSS MB)}) and latencies by hour."""

    samples: list[tuple[float, float, dict[str, tuple[int, float]]]] = field(default_factory=list)
    latencies: dict[int, list[float]] = field(default_factory=lambda: defaultdict(list))
    pids: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))  # role -> its pids in order


async def watch(rec: RecoveryConfig, roles: list[str], plan: SoakPlan, done: asyncio.Event, seen: Watch) -> None:
    """Until ``done``: ping each role (pid, progress), read RSS, drain the route host's latencies; print where
    the run is every ``plan.progress_s``."""
    import ray

    handles: dict[str, Any] = {}
    others: dict[int, str] = {}
    n = 0
    window_ns, every_s, t0, told = plan.window_ns, plan.sample_s, time.time(), time.time()
    while not done.is_set():
        for role in roles:
            if role not in handles:
                with contextlib.suppress(ValueError):
                    handles[role] = ray.get_actor(rec.actor_name(role))
        answers = await asyncio.gather(*[ping(h, 2.0) for h in handles.values()])
        got = {role: a for role, a in zip(handles, answers, strict=True) if a is not None}
        hosts = [r for r in handles if r.startswith("route:")]
        progress = got.get("feed:binance")  # windows sent (the routes' own counters are inbox positions)
        hour = (int(progress["next_window"]) * window_ns / HOUR_NS if progress is not None
                else seen.samples[-1][1] if seen.samples else 0.0)
        for r in hosts:
            with contextlib.suppress(Exception):  # restarting or busy: its samples come next time
                seen.latencies[int(hour)].extend(await asyncio.wait_for(handles[r].take_latencies.remote(),
                                                                        every_s * 5))
        if n % 10 == 0:  # the pid scan walks /proc: not every sample
            others = titled_workers(OTHER_ACTORS)
        procs = {role: (int(a["pid"]), rss_mb(int(a["pid"]))) for role, a in got.items()}
        procs |= {f"{title}:{pid}": (pid, rss_mb(pid)) for pid, title in others.items()}
        procs["driver"] = (os.getpid(), rss_mb(os.getpid()))
        for role, (pid, _) in procs.items():
            if not seen.pids[role] or seen.pids[role][-1] != pid:
                seen.pids[role].append(pid)
        seen.samples.append((time.time(), hour, {r: (p, m) for r, (p, m) in procs.items() if m is not None}))
        n += 1
        if plan.progress_s is not None and time.time() - told >= plan.progress_s:
            told = time.time()
            main = {r: round(m) for r, (_, m) in procs.items() if m is not None and r in (*roles, "driver")}
            print(f"soak: market hour {hour:.2f} after {told - t0:.0f} s; RSS MB {main}", flush=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), every_s)


def memory_slopes(samples: list[tuple[float, float, dict[str, tuple[int, float]]]]) -> dict[str, dict[str, Any]]:
    """Per role: private RSS MB per market hour (least squares within each incarnation, pooled), mean RSS of the first
    and the last market hour, and the peak."""
    per: dict[str, list[tuple[int, float, float]]] = defaultdict(list)
    for _, hour, procs in samples:
        for role, (pid, mb) in procs.items():
            per[role].append((pid, hour, mb))
    out = {}
    for role, rows in per.items():
        num = den = 0.0
        for pid in {p for p, _, _ in rows}:
            x = np.array([h for p, h, _ in rows if p == pid])
            y = np.array([m for p, _, m in rows if p == pid])
            num += float(((x - x.mean()) * (y - y.mean())).sum())
            den += float(((x - x.mean()) ** 2).sum())
        hours = np.array([h for _, h, _ in rows])
        rss = np.array([m for _, _, m in rows])
        first, last = rss[hours < hours.min() + 1], rss[hours >= hours.max() - 1]
        out[role] = {"mb_per_hour": round(num / den, 3) if den > 0 else None,
                     "first_hour_mb": round(float(first.mean()), 1), "last_hour_mb": round(float(last.mean()), 1),
                     "peak_mb": round(float(rss.max()), 1), "incarnations": len({p for p, _, _ in rows})}
    return out


def rss_by_hour(samples: list[tuple[float, float, dict[str, tuple[int, float]]]]) -> dict[int, dict[str, float]]:
    """Per market hour, each role's mean RSS (MB)."""
    acc: dict[int, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for _, hour, procs in samples:
        for role, (_, mb) in procs.items():
            acc[int(hour)][role].append(mb)
    return {h: {r: round(sum(v) / len(v), 1) for r, v in roles.items()} for h, roles in sorted(acc.items())}


def latency_by_hour(lat: dict[int, list[float]]) -> dict[int, dict[str, float]]:
    return {h: {"legs": len(v), "p50_ms": round(float(np.percentile(v, 50)) * 1e3, 3),
                "p99_ms": round(float(np.percentile(v, 99)) * 1e3, 3)} for h, v in sorted(lat.items()) if v}


# ---------------------------------------------------------------------------------------------- nothing lost
def parity(data: dict[str, RouteData], results: dict[str, RouteResult], cfg: EngineConfig,
           stats: dict[str, dict[str, Any]] | None = None) -> tuple[list[str], int, dict[str, Any]]:
    """Paper = backtest, route by route: the same fills, round trips and funnel counters. Returns the routes
    that differ, the round trips, and per differing route where it differs (``stats``: the routes' own
    ``stats()``, for their order statuses)."""
    bad, trips, why = [], 0, {}
    for name, d in data.items():
        bt, pa = run_route(name, d.events, cfg, d.binance), results[name]
        trips += len(pa.trips)
        bt_trips = [(t.trip, t.ts, t.qty, t.exit_reason, t.pnl.net_krw) for t in bt.trips]
        pa_trips = [(t.trip, t.ts, t.qty, t.exit_reason, t.pnl.net_krw) for t in pa.trips]
        if bt.fills == pa.fills and bt.counters == pa.counters and bt_trips == pa_trips:
            continue
        bad.append(name)
        first = next((i for i, (a, b) in enumerate(zip(bt.fills, pa.fills, strict=False)) if a != b),
                     min(len(bt.fills), len(pa.fills)))
        why[name] = {"fills": [len(bt.fills), len(pa.fills)], "trips": [len(bt_trips), len(pa_trips)],
                     "first_fill_differing": first,
                     "fill_backtest": repr(bt.fills[first]) if first < len(bt.fills) else None,
                     "fill_paper": repr(pa.fills[first]) if first < len(pa.fills) else None,
                     "counters": {k: [bt.counters.get(k), pa.counters.get(k)]
                                  for k in sorted(set(bt.counters) | set(pa.counters))
                                  if bt.counters.get(k) != pa.counters.get(k)},
                     "order_status": (stats or {}).get(name, {}).get("order_status")}
    return bad, trips, why


def chaos_schedule(plan: SoakPlan, roles: list[str]) -> list[ChaosPlan]:
    """``plan.kills`` kills at evenly spaced fractions of the run (5 % .. 75 %: the run's end is left alone, as
    run_chaos does), the targets taking turns, ``ray.kill`` and SIGKILL alternating: one single-kill plan each."""
    targets = [t for t in plan.targets if t in roles]
    if not targets:
        return []
    at = [0.05 + 0.7 * k / max(plan.kills - 1, 1) for k in range(plan.kills)]
    return [ChaosPlan(targets[k % len(targets)], 0, plan.seed + k, "ray_kill" if k % 2 == 0 else "sigkill",
                      recover_timeout_s=120.0, script=(ScriptStep(a, "kill"),)) for k, a in enumerate(at)]


async def periodic_chaos(rec: RecoveryConfig, plans: list[ChaosPlan], every_s: float,
                         run: asyncio.Future[Any]) -> list[dict[str, Any]]:
    """Each plan in turn, started shortly before its moment (run_chaos polls its target closely while it waits:
    only one does at a time). Progress is read from the plans' progress feed about every ``every_s``."""
    import ray

    out: list[dict[str, Any]] = []
    for p in plans:
        at = p.script[0].at
        while not run.done():
            with contextlib.suppress(ValueError):
                feed, target = (ray.get_actor(rec.actor_name(p.progress)), ray.get_actor(rec.actor_name(p.target)))
                state = await ping(feed, 5.0)
                if state is not None and state["next_window"] + 3 >= int(at * int(state["windows"])):
                    out.append(await run_chaos(p, {p.target: target, p.progress: feed}))
                    break
            await asyncio.sleep(every_s)
    return out


# ---------------------------------------------------------------------------------------------- the run
async def _soak(req: PaperRequest, data: dict[str, RouteData], plan: SoakPlan, roles: list[str],
                seen: Watch) -> tuple[dict[str, RouteResult] | None, dict[str, Any], list[dict[str, Any]], str | None]:
    assert req.recovery is not None
    done = asyncio.Event()
    watcher = asyncio.ensure_future(watch(req.recovery, roles, plan, done, seen))
    run = asyncio.ensure_future(_run_actors(req, data))
    kills = asyncio.ensure_future(periodic_chaos(req.recovery, chaos_schedule(plan, roles), plan.sample_s, run))
    error = None
    results: dict[str, RouteResult] | None = None
    extras: dict[str, Any] = {}
    try:
        results, extras = await run
    except Exception as exc:  # a crash of the run itself: counted, reported, never a traceback
        error = f"{type(exc).__name__}: {exc}"
    try:
        chaos_out = await kills
    except Exception as exc:  # the chaos machinery failing is reported, not a crash of the system under test
        chaos_out = [{"error": f"{type(exc).__name__}: {exc}", "kills": []}]
    done.set()
    await watcher
    return results, extras, chaos_out, error


def run_soak(data: dict[str, RouteData], plan: SoakPlan) -> dict[str, Any]:
    """The soak run and its accounting (see the module docstring)."""
    plan.out.mkdir(parents=True, exist_ok=True)
    hook = webhook_counter()
    cfg = plan.config.model_copy(update={"alerts": alerts_config(plan.out, f"http://127.0.0.1:{hook.server_port}/")})
    rec = RecoveryConfig(plan.run_id, env="soak", redis_url=plan.redis_url, dir=str(plan.out / "snapshots"))
    req = PaperRequest(store=plan.out, routes=",".join(data), out=plan.out, config=cfg, risk=plan.risk,
                       window_ns=plan.window_ns, route_hosts=1, recovery=rec, supervise=True,
                       journal_dir=str(plan.out / "journal"), run_id=plan.run_id)
    roles = ["alert", "portfolio", "fx", "feed:fx", "feed:upbit", "feed:binance", "route:host0",
             *(["risk"] if plan.risk is not None else [])]
    seen = Watch()
    t0 = time.time()
    try:
        results, extras, chaos_out, error = asyncio.run(_soak(req, data, plan, roles, seen))
        time.sleep(1.0)  # the outbox's dispatcher (in the alert actor) has had its last go; count what came
        received = int(hook.received)  # type: ignore[attr-defined]
    finally:
        hook.shutdown()
    return account(data, plan, replace(req, config=cfg), results, extras, chaos_out, error, seen, received,
                   time.time() - t0)


def account(data: dict[str, RouteData], plan: SoakPlan, req: PaperRequest, results: dict[str, RouteResult] | None,
            extras: dict[str, Any], chaos_out: list[dict[str, Any]], error: str | None, seen: Watch,
            webhook_received: int, wall_s: float) -> dict[str, Any]:
    """The report: crashes, restarts, alerts, nothing lost, memory, latency by market hour."""
    kills = [k for c in chaos_out for k in c.get("kills", [])]
    sup = extras.get("supervisor") or {}
    restarts = sum(1 for e in sup.get("events", []) if e["action"] in ("restart", "escalate"))
    seen_restarts = {r: len(p) - 1 for r, p in seen.pids.items() if len(p) > 1}
    stats = {r["route"]: r for r in extras.get("routes") or [] if isinstance(r, dict) and "route" in r}
    bad, trips, why = parity(data, results, req.config, stats) if results is not None else (list(data), 0, {})
    journal = extras.get("journal") or {}
    counts, expected = journal.get("counts") or {}, journal.get("expected") or {}
    journal_ok = bool(expected) and all(counts.get(k) == v for k, v in expected.items())
    crashes = (error is not None) + max(restarts - len(kills), 0) + (sup.get("halted") is not None)
    hours = latency_by_hour(seen.latencies)
    return {
        "routes": len(data), "events": sum(len(d.events) for d in data.values()),
        "market_hours": round(max((h for _, h, _ in seen.samples), default=0.0), 3), "wall_s": round(wall_s, 1),
        "crashes": crashes, "error": error, "halted": sup.get("halted"),
        "kills": len(kills), "recovered": sum(1 for k in kills if k.get("recover_s") is not None),
        "restarts": restarts, "restarts_seen_by_pid": seen_restarts,
        "risk_order_timeouts": len((extras.get("risk_report") or {}).get("order_timeouts", [])),
        "chaos_errors": [c["error"] for c in chaos_out if "error" in c],
        "alerts_raised": len(extras.get("alerts", [])),
        "alerts_by_rule": dict(sorted(Counter(a["rule"] for a in extras.get("alerts", [])).items())),
        "alerts_delivered": webhook_received,
        "lost": {"routes_differing_from_backtest": bad, "how_they_differ": why, "round_trips": trips,
                 "fills": sum(len(r.fills) for r in (results or {}).values()),
                 "journal_expected": expected, "journal_counts": counts, "journal_complete": journal_ok,
                 "journal_left_in_overflow": journal.get("left_in_overflow")},
        "nothing_lost": results is not None and not bad and journal_ok,
        "memory": memory_slopes(seen.samples), "latency_by_hour": hours, "rss_by_hour": rss_by_hour(seen.samples),
        "recover_s_max": max((k["recover_s"] for k in kills if k.get("recover_s") is not None), default=None),
    }

