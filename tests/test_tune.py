"""Walk-forward tuning: the blocks, the space, the study database, a grid study on the real sample, the held-out
block never read by a search, and a study killed midway then resumed without re-running a finished trial."""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path

import pytest

from arbitrage_lite.core.config import EngineConfig
from arbitrage_lite.errors import UserError
from arbitrage_lite.infra.study_db import StudyDB
from arbitrage_lite.scenarios.tune import TuneRequest, evaluate_window, run_tune
from arbitrage_lite.scenarios.tune_space import fixed_points, load_space, point_config
from arbitrage_lite.scenarios.walk_forward import holdout_start, make_folds, slices

SPACE = """
[strategy.entry_bps]
low = 30
high = 50
step = 20
[strategy.exit_bps]
values = [0, 10]
"""


@pytest.fixture
def space_file(tmp_path: Path) -> Path:
    p = tmp_path / "space.toml"
    p.write_text(SPACE)
    return p


def test_folds_roll_forward_and_the_last_block_is_held_out() -> None:
    lo, hi = 1_000, 1_000_000
    folds = make_folds(lo, hi, 4, 0.2)
    cut = holdout_start(folds)
    assert cut == hi - int((hi - lo) * 0.2) and folds[-1].final and folds[-1].test == (cut, hi)
    for f in folds[:-1]:
        assert f.train[0] < f.train[1] == f.test[0] < f.test[1] <= cut  # judged on the block right after
    for a, b in itertools.pairwise(folds):
        assert b.train == a.test  # rolling: the next search window is the block just judged
    assert folds[0].train[0] == lo and folds[-1].train[1] == cut
    parts = slices(folds[0].train, 3)
    assert parts[0][0] == folds[0].train[0] and parts[-1][1] == folds[0].train[1]
    assert all(x[1] == y[0] for x, y in itertools.pairwise(parts))
    with pytest.raises(UserError, match="holdout"):
        make_folds(lo, hi, 2, 1.0)
    with pytest.raises(UserError, match="folds"):
        make_folds(lo, hi, 0, 0.2)


def test_space_grid_random_and_invalid_points(space_file: Path, tmp_path: Path) -> None:
    dims = load_space(space_file, EngineConfig())
    grid = fixed_points(dims, "grid", 0, 0)
    assert grid == [{"strategy.entry_bps": e, "strategy.exit_bps": x} for e in (30.0, 50.0) for x in (0.0, 10.0)]
    rnd = fixed_points(dims, "random", 20, 7)
    assert rnd == fixed_points(dims, "random", 20, 7)  # seeded: a resumed study draws the same points
    assert all(p["strategy.entry_bps"] in (30.0, 50.0) and p["strategy.exit_bps"] in (0.0, 10.0) for p in rnd)
    cfg = point_config(EngineConfig(), {"strategy.entry_bps": 30.0, "costs.binance.taker_fee": 0.0005})
    assert cfg.strategy.entry_bps == 30.0 and cfg.costs.binance.taker_fee == Decimal("0.0005")
    with pytest.raises(UserError, match="not a valid config"):
        point_config(EngineConfig(), {"strategy.entry_bps": 30.0, "strategy.exit_bps": 35.0})
    bad = tmp_path / "bad.toml"
    bad.write_text("[strategy.nope]\nlow = 1\nhigh = 2\n")
    with pytest.raises(UserError, match="no such config field"):
        load_space(bad, EngineConfig())
    bad.write_text("[strategy.entry_bps]\nlow = 5\nhigh = 2\n")
    with pytest.raises(UserError, match="low must be below high"):
        load_space(bad, EngineConfig())


def _db_url(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    return str(tmp_path / "s.sqlite3") if kind == "sqlite" else request.getfixturevalue("pg_dsn")


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_study_db_keeps_trials_once(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    url, study = _db_url(kind, tmp_path, request), f"st_{uuid.uuid4().hex[:10]}"
    with StudyDB(url) as db:
        db.create_study(study, {"search": "grid", "folds": []})
        with pytest.raises(UserError, match="already exists"):
            db.create_study(study, {})
        db.add_trial(study, 0, 0, 1, "complete", {"values": {"a": 1.0}}, {"net_pnl_krw": "-5"}, -5.0, 1.0, 2.0)
        db.add_trial(study, 0, 1, 1, "stopped", {"values": {"a": 2.0}}, {}, -9.0, 1.0, 3.0)
        with pytest.raises(Exception, match=r"(?i)unique|duplicate"):  # a finished trial is never written twice
            db.add_trial(study, 0, 0, 2, "complete", {"values": {"a": 1.0}}, {}, 0.0, 4.0, 5.0)
        db.add_fold(study, 0, "walk_forward", (1, 2), (2, 3), {"trial": 0}, {"x": 1}, {"chosen": {}, "by_trial": {}})
    with StudyDB(url) as db:  # reopened: everything is still there
        assert db.spec(study) == {"search": "grid", "folds": []} and study in db.studies()
        rows = db.trials(study, 0)
        assert [(r["trial"], r["status"], r["score"]) for r in rows] == [(0, "complete", -5.0), (1, "stopped", -9.0)]
        assert rows[0]["config"] == {"values": {"a": 1.0}} and db.sessions(study) == 1
        assert db.folds(study)[0]["train_start"] == 1


@pytest.mark.ray
def test_grid_study_walks_forward_on_the_sample(sample_stores: dict[str, Path], space_file: Path, tmp_path: Path,
                                               ray_session: object) -> None:
    store = sample_stores["btc"]
    req = TuneRequest(out=tmp_path / "out", db=str(tmp_path / "study.sqlite3"), study="g1", store=store,
                      routes="BTC", space=load_space(space_file, EngineConfig()), search="grid", folds=2, slices=2,
                      early_stop=False, progress=False)
    result = run_tune(req)
    with StudyDB(req.db) as db:
        spec, folds, trials = db.spec("g1"), db.folds("g1"), db.trials("g1")
    assert spec is not None and len(folds) == 3 and folds[-1]["kind"] == "holdout"
    assert len(trials) == 3 * 4 and all(t["status"] == "complete" and t["session"] == 1 for t in trials)
    base = EngineConfig()
    for f in folds:
        mine = [t for t in trials if t["fold"] == f["fold"]]
        for t in mine:  # a trial's score is its train block, slice by slice, through the backtest core
            cfg = point_config(base, t["config"]["values"])
            parts = slices((f["train_start"], f["train_end"]), 2)
            net = sum(Decimal(evaluate_window(store, ["BTC"], cfg, a, b)["net_pnl_krw"]) for a, b in parts)
            assert Decimal(t["metrics"]["net_pnl_krw"]) == net
        best = max(mine, key=lambda t: (t["score"], -t["trial"]))
        assert f["chosen"]["trial"] == best["trial"]  # picked on train only
        judged = evaluate_window(store, ["BTC"], point_config(base, best["config"]["values"]), f["test_start"],
                                 f["test_end"])
        assert f["test"]["chosen"] == judged
    assert len(result["heatmap_cells"]) == 2 * 4  # every walk-forward trial judged; the held-out block in none
    assert result["holdout"]["figures"] == folds[-1]["test"]["chosen"]
    assert [s["picks"] for s in result["stability"]] == [
        [f["chosen"]["values"][k] for f in folds[:-1]] for k in ("strategy.entry_bps", "strategy.exit_bps")]
    html = (tmp_path / "out" / "report.html").read_text()
    assert "Held-out block" in html and html.count("<svg") == 1
    assert (tmp_path / "out" / "folds.csv").read_text().count("\n") == 4


def _tamper_holdout(src: Path, dst: Path, cut: int) -> None:
    """A copy of the store whose Upbit prices in the held-out block are 3% higher (the premium jumps 300 bps)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    shutil.copytree(src, dst)
    path = dst / "bars_1m" / "upbit" / "BTC-KRW.parquet"
    t = pq.read_table(path)
    late = pc.greater_equal(t["ts"], pa.scalar(cut, pa.int64()))
    for col in ("open", "high", "low", "close"):
        t = t.set_column(t.schema.get_field_index(col), col, pc.if_else(late, pc.multiply(t[col], 1.03), t[col]))
    pq.write_table(t, path)


@pytest.mark.ray
@pytest.mark.heavy
def test_no_search_trial_reads_the_held_out_block(sample_stores: dict[str, Path], space_file: Path,
                                                   tmp_path: Path, ray_session: object) -> None:
    """The same study on a store whose held-out block was changed: every search trial and every fold scores
    the same; only the held-out result moves. A trial that read the block would score differently."""
    space = load_space(space_file, EngineConfig())
    runs = {}
    for name in ("orig", "tampered"):
        store = sample_stores["btc"]
        if name == "tampered":
            cut = holdout_start(make_folds(*_span(store), 1, 0.3))
            store = tmp_path / "tampered_store"
            _tamper_holdout(sample_stores["btc"], store, cut)
        req = TuneRequest(out=tmp_path / name, db=str(tmp_path / f"{name}.sqlite3"), study=name, store=store,
                          routes="BTC", space=space, search="random", trials=3, folds=1, holdout=0.3, slices=1,
                          early_stop=False, seed=3, progress=False)
        run_tune(req)
        with StudyDB(req.db) as db:
            runs[name] = (db.trials(name), db.folds(name))
    (t0, f0), (t1, f1) = runs["orig"], runs["tampered"]
    assert [(t["fold"], t["trial"], t["config"], t["metrics"]["net_pnl_krw"]) for t in t0] == \
           [(t["fold"], t["trial"], t["config"], t["metrics"]["net_pnl_krw"]) for t in t1]
    assert f0[0]["test"] == f1[0]["test"] and f0[-1]["chosen"] == f1[-1]["chosen"]
    assert f0[-1]["test"]["chosen"] != f1[-1]["test"]["chosen"]  # the change is visible where it was made


def _span(store: Path) -> tuple[int, int]:
    from arbitrage_lite.scenarios.sweep import data_span

    return data_span(store, ["BTC"])


@pytest.mark.ray
@pytest.mark.heavy
@pytest.mark.timeout(400)
def test_killed_study_resumes_without_rerunning_trials(sample_stores: dict[str, Path], space_file: Path,
                                                        tmp_path: Path, ray_session: object) -> None:
    db_path, out = tmp_path / "study.sqlite3", tmp_path / "out"
    cmd = [sys.executable, "-m", "arbitrage_lite.cli", "tune", "--store", str(sample_stores["btc"]), "--routes", "BTC",
           "--space", str(space_file), "--search", "random", "--trials", "6", "--folds", "1", "--slices", "1",
           "--study", "r1", "--db", str(db_path), "--out", str(out), "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            if db_path.exists() and len(_trials(db_path)) >= 3:
                break
            time.sleep(0.1)
        assert proc.poll() is None, (proc.stderr.read() if proc.stderr else b"")[-2000:]
        os.killpg(proc.pid, signal.SIGKILL)  # midway, the Ray it started with it
        proc.wait(30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    before = _trials(db_path)
    assert 3 <= len(before) < 12
    result = run_tune(TuneRequest(out=out, db=str(db_path), study="r1", resume=True, progress=False))
    after = _trials(db_path)
    assert len(after) == 12 and result["trials"]["complete"] == 12  # 6 per search (fold0, holdout), each once
    old = {(t["fold"], t["trial"]): t for t in before}
    for t in after:  # finished trials kept as they were; only the missing ones ran, in the second session
        key = (t["fold"], t["trial"])
        assert t == old[key] if key in old else t["session"] == 2
    assert {t["session"] for t in before} == {1} and result["sessions"] == 2 and "holdout" in result


def _trials(db_path: Path) -> list[dict[str, object]]:
    with StudyDB(str(db_path)) as db:
        return db.trials("r1") if db.spec("r1") else []


def test_cli_refuses_bad_tune_input(space_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from arbitrage_lite.cli import main

    out = str(tmp_path / "out")
    cases = [(["--store", str(tmp_path / "nope"), "--routes", "BTC", "--space", str(space_file)], "does not exist"),
             (["--resume", "s1", "--routes", "BTC"], "drop --routes"),
             (["--resume", "s1"], "no study 's1'"),
             (["--store", str(tmp_path), "--routes", "BTC"], "needs --store, --routes and --space"),
             (["--store", str(tmp_path), "--routes", "BTC", "--space", str(space_file), "--search", "grid",
               "--trials", "3"], "--trials is for optuna"),
             (["--resume", "s1", "--trial-cpus", "0"], "positive number of CPUs")]
    for argv, message in cases:
        assert main(["tune", "--out", out, *argv]) == 2, argv
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
