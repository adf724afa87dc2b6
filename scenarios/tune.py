"""Walk-forward tuning on Ray Tune: a search per train block, judged on the block after it; a held-out block last.

Every trial is the backtest core (``sweep.evaluate``) on its fold's train block, replayed in ``slices``
consecutive slices (each a separate replay that starts flat); after each slice the trial reports its
cumulative train net PnL. Early stopping (ASHA, ``early_stop``) cuts trials whose running train PnL is in the
bottom half at a slice: it only ever looks at train data before the slice's end, and a stopped trial is never
chosen (only trials that ran every slice are). The pick of each fold is the best train net PnL; it is judged
on the next block (and so is every completed trial, for the heatmaps: reporting only, the pick is made
already). The final block is read once, by the driver, for the config picked on the block before it.

Trials, folds and the spec live in a study database (``infra.study_db``), written by this driver only:
``resume`` skips finished folds and finished trials (Optuna is told their results instead of running them).
Sharing a cluster: trials take ``trial_cpus`` CPUs each and at most (cluster CPUs - ``reserve_cpus``) in all,
so a paper or live system keeps its reserved CPUs; where the cluster has a ``tune_cpu`` custom resource
(``ray start --resources``), trials also need it, so the scheduler caps all tuning jobs together. Those are
logical CPUs: trials also run at a lower OS priority (nice 10), so the cores they share with a paper or live
actor go to the actor first, and off the first ``reserve_cpus`` cores of their node (rounded up; CPU affinity),
so the kernel never puts a trial on them.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from ray.tune import Callback

from ..core.config import EngineConfig
from ..errors import UserError
from ..infra.data.ship import ShippedStore, local_store, store_for_tasks
from ..infra.study_db import StudyDB
from .market_data import DataError, resolve_routes
from .sweep import HEADLINE, data_span, evaluate
from .tune_space import Dim, describe, fixed_points, from_description, point_config, tune_domains
from .walk_forward import Fold, holdout_start, make_folds, slices

SEARCHES = ("optuna", "random", "grid")
INVALID_SCORE = -1e18  # a point that breaks a config rule (exit above entry): the searcher learns it is bad
SUMS = ("trades", "wins", "gross_pnl_krw", "fees_krw", "slippage_krw", "net_pnl_krw")
TUNE_RESOURCE = "tune_cpu"
TRIAL_NICE = 10  # trials and judging tasks yield the cores to the system they share the node with


def lower_priority(reserve_cores: int = 0) -> None:
    """Run this process at niceness TRIAL_NICE or lower priority and off the node's first ``reserve_cores``
    cores: Ray's reservation is of logical CPUs, and on a node with few cores a replay at full speed still takes
    time from a paper/live actor beside it. A node with no more cores than that keeps them all (and nice)."""
    current = os.nice(0)
    if current < TRIAL_NICE:
        os.nice(TRIAL_NICE - current)
    cores = sorted(os.sched_getaffinity(0))
    if 0 < reserve_cores < len(cores):
        os.sched_setaffinity(0, cores[reserve_cores:])


@dataclass(frozen=True)
class TuneRequest:
    out: Path
    db: str  # SQLite file or postgresql:// DSN
    study: str
    resume: bool = False
    store: Path | None = None  # the rest is the study's spec: taken from the database on resume
    routes: str = ""
    space: list[Dim] = field(default_factory=list)
    search: str = "optuna"
    folds: int = 4
    trials: int | None = None  # per fold (grid: every point)
    holdout: float = 0.2
    slices: int = 4
    early_stop: bool = True
    seed: int = 0
    config: EngineConfig = field(default_factory=EngineConfig)
    start_ns: int | None = None
    end_ns: int | None = None
    reserve_cpus: float = 0.0
    trial_cpus: float = 1.0
    progress: bool = True
    ship_store: str = "auto"  # auto | always | never: infra.data.ship (a cluster whose nodes do not share the disk)


def new_spec(req: TuneRequest) -> dict[str, Any]:
    """What a study is: fixed at its start, stored in the database, read back on resume."""
    if req.store is None or req.search not in SEARCHES:
        raise UserError(f"a new study needs a store and a search in {SEARCHES}")
    routes = resolve_routes(req.store, req.routes)
    lo, hi = data_span(req.store, routes)
    lo, hi = max(lo, req.start_ns or lo), min(hi, req.end_ns or hi)
    folds = make_folds(lo, hi, req.folds, req.holdout)
    points = fixed_points(req.space, req.search, req.trials or 20, req.seed) if req.search != "optuna" else None
    n = len(points) if points is not None else (req.trials or 20)
    for f in folds:
        slices(f.train, req.slices)
    return {"store": str(req.store.resolve()), "routes": routes, "space": describe(req.space), "search": req.search,
            "trials": n, "points": points, "holdout": req.holdout, "slices": req.slices,
            "early_stop": req.early_stop, "seed": req.seed, "config": req.config.model_dump(mode="json"),
            "span": [lo, hi], "folds": [dataclasses.asdict(f) for f in folds]}


def _folds(spec: dict[str, Any]) -> list[Fold]:
    return [Fold(f["index"], tuple(f["train"]), tuple(f["test"]), f["final"]) for f in spec["folds"]]


def _trial(config: dict[str, Any], ctx: dict[str, Any]) -> None:
    """One Ray Tune trial: the point on its train block, slice by slice (never past ``guard``)."""
    import ray
    from ray import tune

    lower_priority(ctx["reserve_cores"])
    started = time.time()
    node = ray.get_runtime_context().get_node_id()
    values = ctx["points"][config["point"]] if ctx["points"] is not None else {
        d["key"]: float(config[d["key"].replace(".", "__")]) for d in ctx["space"]}
    base = EngineConfig.model_validate(ctx["config"])
    try:
        cfg = point_config(base, values)
    except UserError:
        tune.report({"score": INVALID_SCORE, "slice": 0, "invalid": True, "values": values, "started_at": started,
                     "node_id": node})
        return
    total = dict.fromkeys(SUMS, Decimal(0))
    where = local_store(ctx["store"])  # the store's folder on this node (a shipped copy off the driver's node)
    for j, (a, b) in enumerate(ctx["slices"]):
        if b > ctx["guard"]:  # the held-out block is never read by a search
            raise RuntimeError(f"search window ends at {b}, inside the held-out block (from {ctx['guard']})")
        m = evaluate_window(where, ctx["routes"], cfg, a, b)
        for k in SUMS:
            total[k] += Decimal(str(m[k]))
        tune.report({"score": float(total["net_pnl_krw"]), "slice": j + 1, "invalid": False, "values": values,
                     "started_at": started, "node_id": node, "store_read": str(where),
                     **{k: str(v) for k, v in total.items()}})


def _judge_task(store: Path | ShippedStore, routes: list[str], cfg: EngineConfig, a: int, b: int,
                reserve_cores: int = 0) -> dict[str, Any]:
    lower_priority(reserve_cores)  # a worker of this job only: Ray does not lend workers to other jobs
    return evaluate_window(local_store(store), routes, cfg, a, b)



def evaluate_window(store: Path, routes: list[str], cfg: EngineConfig, a: int, b: int) -> dict[str, Any]:
    """``sweep.evaluate``; a window the data has nothing in (a gap) is a window with no trade."""
    try:
        return evaluate(store, routes, cfg, a, b)
    except DataError as exc:
        if "no market data" not in str(exc):
            raise
        return {**dict.fromkeys(HEADLINE, "0"), "trades": 0, "wins": 0, "win_rate": None}


class _Bar:
    def __init__(self, total: int, initial: int, on: bool) -> None:
        self.bar = None
        if on:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, desc="tune", unit="trial")

    def update(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class Recorder(Callback):
    """A Tune callback in the driver: each finished trial becomes one row of the study database."""

    def __init__(self, db: StudyDB, study: str, fold: int, session: int, n_slices: int, next_no: int,
                 bar: _Bar) -> None:
        self.db, self.study, self.fold, self.session, self.n_slices = db, study, fold, session, n_slices
        self.next_no, self.bar = next_no, bar

    def __getstate__(self) -> dict[str, Any]:  # Tune pickles its state: the open database stays here
        return {"next_no": self.next_no}

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        r = trial.last_result or {}
        if "score" not in r:
            return
        if "point" in trial.config:
            no = int(trial.config["point"])
        else:
            no, self.next_no = self.next_no, self.next_no + 1
        status = "invalid" if r["invalid"] else "complete" if r["slice"] == self.n_slices else "stopped"
        metrics = {k: r[k] for k in (*SUMS, "node_id", "store_read") if k in r} | {"slices_done": r["slice"]}
        self.db.add_trial(self.study, self.fold, no, self.session, status, {"values": r["values"]}, metrics,
                          float(r["score"]), float(r["started_at"]), time.time())
        self.bar.update()


def _share(req: TuneRequest) -> tuple[dict[str, float], int]:
    """Each trial's resources and how many may run at once: the cluster's CPUs less the reserved ones."""
    from ..infra.ray_runtime import ensure_ray

    ray = ensure_ray()
    have = ray.cluster_resources()
    budget = float(have.get("CPU", 0)) - req.reserve_cpus
    if req.trial_cpus <= 0 or budget < req.trial_cpus:
        raise UserError(f"the cluster has {have.get('CPU', 0):g} CPUs; with --reserve-cpus {req.reserve_cpus:g} "
                        f"there is no room for one trial of {req.trial_cpus:g} CPU")
    res = {"cpu": req.trial_cpus}
    if TUNE_RESOURCE in have:
        res[TUNE_RESOURCE] = req.trial_cpus
    return res, max(1, int(budget // req.trial_cpus))


def _search(req: TuneRequest, spec: dict[str, Any], db: StudyDB, fold: Fold, session: int, guard: int,
            share: tuple[dict[str, float], int], bar: _Bar) -> None:
    """Run the fold's trials that the database does not have yet."""
    from ray import tune

    done = db.trials(req.study, fold.index)
    space = from_description(spec["space"])
    ctx = {"store": spec["store_arg"], "routes": spec["routes"], "config": spec["config"], "points": spec["points"],
           "space": spec["space"], "slices": slices(fold.train, spec["slices"]), "guard": guard,
           "reserve_cores": spec["reserve_cores"]}
    search_alg = None
    if spec["points"] is not None:
        have = {t["trial"] for t in done}
        todo = [i for i in range(len(spec["points"])) if i not in have]
        param_space: dict[str, Any] = {"point": tune.grid_search(todo)}
        num_samples = 1
    else:
        import optuna
        from ray.tune.search.optuna import OptunaSearch

        optuna.logging.set_verbosity(optuna.logging.WARNING)  # one line per study otherwise, over the progress bar

        todo = list(range(spec["trials"] - len(done)))
        param_space, num_samples = tune_domains(space), len(todo)
        prior = [({d.safe(): t["config"]["values"][d.key] for d in space}, t["score"]) for t in done]
        search_alg = OptunaSearch(seed=spec["seed"] + fold.index, points_to_evaluate=[p for p, _ in prior] or None,
                                  evaluated_rewards=[s for _, s in prior] or None)
    if not todo:
        return
    scheduler = None
    if spec["early_stop"] and spec["slices"] > 1:
        from ray.tune.schedulers import ASHAScheduler

        scheduler = ASHAScheduler(time_attr="slice", max_t=spec["slices"], grace_period=1, reduction_factor=2)
    resources, concurrent = share
    recorder = Recorder(db, req.study, fold.index, session, spec["slices"],
                         max([t["trial"] for t in done], default=-1) + 1, bar)
    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(_trial, ctx=ctx), resources), param_space=param_space,
        tune_config=tune.TuneConfig(metric="score", mode="max", search_alg=search_alg, scheduler=scheduler,
                                    num_samples=num_samples, max_concurrent_trials=concurrent, reuse_actors=True),
        run_config=tune.RunConfig(name=f"{req.study}-{fold.name}-s{session}", verbose=0, callbacks=[recorder],
                                  storage_path=str((req.out / "ray_tune").resolve())))
    errors = tuner.fit().errors
    if errors:
        raise RuntimeError(f"{len(errors)} trial(s) of {fold.name} failed: {errors[0]}")


def _evaluate_all(spec: dict[str, Any], jobs: list[tuple[dict[str, float], tuple[int, int]]],
                  share: tuple[dict[str, float], int]) -> list[dict[str, Any]]:
    """``evaluate`` of each (point, window) as Ray tasks, no more at once than the trials' share."""
    from ..infra.ray_runtime import ensure_ray

    ray = ensure_ray()
    resources, concurrent = share
    extra = {k: v for k, v in resources.items() if k != "cpu"}
    task = ray.remote(_judge_task).options(num_cpus=resources["cpu"], resources=extra or None)
    base = EngineConfig.model_validate(spec["config"])
    store, routes = spec["store_arg"], spec["routes"]
    refs: list[Any] = []
    for values, (a, b) in jobs:
        if len(refs) - len(ray.wait(refs, num_returns=len(refs), timeout=0)[0]) >= concurrent:
            ray.wait(refs, num_returns=len(refs) - concurrent + 1)
        refs.append(task.remote(store, routes, point_config(base, values), a, b, spec["reserve_cores"]))
    return list(ray.get(refs))


def _judge(req: TuneRequest, spec: dict[str, Any], db: StudyDB, fold: Fold, guard: int,
           share: tuple[dict[str, float], int]) -> None:
    """Pick the fold's best complete trial on train; judge it (and, but the held-out fold, every complete
    trial) on the block after."""
    trials = db.trials(req.study, fold.index)
    complete = [t for t in trials if t["status"] == "complete"]
    if not complete:
        raise UserError(f"no trial of {fold.name} ran to the end (all invalid or stopped): widen the space")
    best = max(complete, key=lambda t: (t["score"], -t["trial"]))
    if not fold.final and fold.test[1] > guard:
        raise RuntimeError(f"{fold.name}'s test block reaches into the held-out block")
    judged = [best] if fold.final else complete
    results = _evaluate_all(spec, [(t["config"]["values"], fold.test) for t in judged], share)
    by_trial = {str(t["trial"]): r["net_pnl_krw"] for t, r in zip(judged, results, strict=True)}
    chosen = {"trial": best["trial"], "values": best["config"]["values"]}
    db.add_fold(req.study, fold.index, "holdout" if fold.final else "walk_forward", fold.train, fold.test, chosen,
                best["metrics"], {"chosen": results[judged.index(best)], "by_trial": by_trial})


def run_tune(req: TuneRequest) -> dict[str, Any]:
    """Run (or continue) a study to the end; returns the study's result (also in the database and ``out``)."""
    from .tune_result import study_result, write_outputs

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # no Tune tables on the console: the progress bar says it
    with StudyDB(req.db) as db:
        if req.resume:
            spec = db.spec(req.study)
            if spec is None:
                known = ", ".join(db.studies()) or "none"
                raise UserError(f"no study {req.study!r} in {req.db} to resume (studies there: {known})")
            session = db.sessions(req.study) + 1
        else:
            spec = new_spec(req)
            db.create_study(req.study, spec)
            session = 1
        folds = _folds(spec)
        guard = holdout_start(folds)
        share = _share(req)
        run_spec = {**spec, "store_arg": store_for_tasks(spec["store"], req.ship_store),  # this session's: not
                    "reserve_cores": math.ceil(req.reserve_cpus)}  # stored
        done_folds = {f["fold"] for f in db.folds(req.study)}
        bar = _Bar(len(folds) * spec["trials"], len(db.trials(req.study)), req.progress)
        try:
            for fold in folds:
                if fold.index in done_folds:
                    continue
                _search(req, run_spec, db, fold, session, guard, share, bar)
                _judge(req, run_spec, db, fold, guard, share)
        finally:
            bar.close()
        result = study_result(req.study, spec, db.folds(req.study), db.trials(req.study))
        db.set_result(req.study, result)
    write_outputs(req.out, result)
    return result
