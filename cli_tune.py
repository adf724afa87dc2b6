"""``arbitrage-lite tune``: walk-forward parameter search on Ray Tune, every trial in a study database.

Checks before anything expensive (Ray, Tune, the store): a bad flag is one line and exit 2.
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path
from typing import Any

from . import cli_checks as chk
from .cli_checks import UsageError

SEARCHES = ("optuna", "random", "grid")  # scenarios.tune.SEARCHES
_STUDY = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_SPEC_FLAGS = ("store", "routes", "space", "search", "folds", "trials", "holdout", "slices", "seed", "config", "set",
               "start", "end")
_FLAG = {"start": "from", "end": "to"}


def _study(text: str) -> str:
    if _STUDY.fullmatch(text) is None:
        raise argparse.ArgumentTypeError(f"{text!r}: a study name is 1-64 letters, digits, '_', '.' or '-'")
    return text


def _request(args: argparse.Namespace) -> Any:
    from .scenarios.tune import TuneRequest

    out = chk.output_dir(args.out)
    db = args.db or str(out / "study.sqlite3")
    common = {"out": out, "db": db, "reserve_cpus": args.reserve_cpus, "trial_cpus": args.trial_cpus,
              "progress": not args.no_progress, "ship_store": args.ship_store}
    if args.resume:
        given = [f"--{_FLAG.get(f, f)}" for f in _SPEC_FLAGS if getattr(args, f, None) not in (None, [])]
        if given or args.study:
            raise UsageError(f"--resume takes the study's settings from {db}: drop {', '.join(given or ['--study'])}")
        return TuneRequest(study=args.resume, resume=True, **common)
    if not args.store or not args.routes or not args.space:
        raise UsageError("a new study needs --store, --routes and --space (or --resume STUDY)")
    store = chk.existing_store(args.store)
    start, end = chk.time_range(args.start, args.end)
    cfg = chk.engine_config(args)
    search = args.search or "optuna"
    if search == "grid" and args.trials is not None:
        raise UsageError("--trials is for optuna and random searches: a grid runs every point of the space")
    from .scenarios.tune_space import load_space

    space = load_space(Path(args.space), cfg)
    study = args.study or f"t{int(time.time())}"
    return TuneRequest(study=study, store=store, routes=args.routes, space=space, search=search,
                       folds=args.folds or 4, trials=args.trials, holdout=args.holdout or 0.2,
                       slices=args.slices or 4, early_stop=not args.no_early_stop, seed=args.seed or 0, config=cfg,
                       start_ns=start, end_ns=end, **common)


def _cmd_tune(args: argparse.Namespace) -> int:
    req = _request(args)
    from .infra.ray_runtime import configure

    configure(args.ray_address)
    from .scenarios.tune import run_tune

    result = run_tune(req)
    _print_result(result, req.db)
    return 0


def _print_result(r: dict[str, Any], db: str) -> None:
    keys = [d["key"] for d in r["space"]]
    print(f"study {r['study']} ({r['search']}, {r['trials_per_fold']} trials per fold; trials {r['trials']})")
    print(f"{'fold':<8} {'test block':<46} {'picked':<32} {'train net':>12} {'test trips':>10} {'test net':>12}")
    for f in r["folds"]:
        picked = ", ".join(f"{k.split('.')[-1]}={f[k]:g}" for k in keys)
        print(f"{f['fold']!s:<8} {f['test_from'] + ' -> ' + f['test_to']:<46} {picked:<32} "
              f"{float(f['train_net_pnl_krw']):>12,.0f} {f['test_trades']:>10} {float(f['test_net_pnl_krw']):>12,.0f}")
    wf = r["walk_forward"]
    print(f"walk-forward out of sample: {float(wf['oos_net_pnl_krw']):,.0f} KRW over {wf['oos_trades']} round trips, "
          f"{wf['folds_positive']} of {wf['folds']} folds positive")
    if wf["small_sample_warning"]:
        print(f"  WARNING: {wf['small_sample_warning']}")
    for s in r["stability"]:
        picks = ", ".join(f"{v:g}" for v in s["picks"])
        print(f"  {s['key']}: picks {picks} (stdev/range {s['stdev_over_range']:.2f})")
    h = r.get("holdout")
    if h:
        fig = h["figures"]
        print(f"held-out block {h['from']} -> {h['to']} (never searched): trades {fig['trades']}, net "
              f"{float(fig['net_pnl_krw']):,.0f} KRW, zero-cost {float(fig['zero_cost_net_pnl_krw']):,.0f}")
        if h["small_sample_warning"]:
            print(f"  WARNING: {h['small_sample_warning']}")
    print(f"study database: {db}; wrote tune.json, folds.csv, report.html")


def add_tune(sub: Any, common: Any) -> None:
    """Register the ``tune`` command."""
    tu = sub.add_parser("tune", help="walk-forward parameter search on Ray Tune (optuna, random or grid); every "
                        "trial in a study database; a held-out final block")
    tu.add_argument("--store", help="the store (new study)")
    tu.add_argument("--routes", type=chk.routes, help="comma list of bases (BTC,ETH) or top:N (new study)")
    tu.add_argument("--space", help="TOML/JSON search space: [section.field] low/high/step or values "
                    "(docs/research.md)")
    tu.add_argument("--search", choices=SEARCHES, help="optuna (TPE, default), random or grid")
    tu.add_argument("--folds", type=chk.count(1), help="walk-forward folds (default 4)")
    tu.add_argument("--trials", type=chk.count(1), help="trials per fold (optuna/random; default 20)")
    tu.add_argument("--holdout", type=chk.finite(0.0, 1.0, "between 0 and 1 (the held-out share)"),
                    help="share of the span held out, judged once at the end (default 0.2)")
    tu.add_argument("--slices", type=chk.count(1), help="train block replayed in N slices, reported after each: "
                    "what early stopping looks at (default 4)")
    tu.add_argument("--no-early-stop", action="store_true", help="run every trial over every slice (no ASHA)")
    tu.add_argument("--seed", type=chk.count(0), help="random/optuna seed (default 0)")
    tu.add_argument("--from", dest="start", help="UTC, ISO (2024-12-01 or 2024-12-01T09:30); default: the data's")
    tu.add_argument("--to", dest="end", help="end of the span, UTC (default: the data's)")
    tu.add_argument("--study", type=_study, help="name of a new study (default: t<unix time>)")
    tu.add_argument("--resume", type=_study, metavar="STUDY", help="continue STUDY from the database: finished "
                    "trials and folds are not run again")
    tu.add_argument("--db", help="study database: a SQLite file or postgresql://... (default: OUT/study.sqlite3)")
    tu.add_argument("--reserve-cpus", type=chk.count(0), default=0, metavar="N",
                    help="CPUs of the cluster that trials leave free (a running paper or live system's)")
    tu.add_argument("--trial-cpus", type=chk.finite(0.0, 1e6, "a positive number of CPUs"), default=1.0, metavar="N",
                    help="CPUs per trial (default 1)")
    tu.add_argument("--ship-store", choices=("auto", "always", "never"), default="auto",
                    help="send the store to the trials through Ray's object store, unpacked once per node: auto "
                    "(default) when the cluster has several nodes; never when it is on shared storage")
    tu.add_argument("--out", required=True)
    tu.add_argument("--no-progress", action="store_true")
    common(tu)
    tu.set_defaults(func=_cmd_tune)
