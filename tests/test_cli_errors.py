"""Every bad CLI input is one clear line on stderr and a non-zero exit, found before anything expensive starts.

Table-driven: each case runs ``main(argv)`` in-process with Ray start-up and every scenario entry point
replaced by a failure, so a case passes only if the input was refused before them. A handful run the real
entry point in a subprocess.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from sample_files import SAMPLE

from arbitrage_lite import cli
from arbitrage_lite.cli import main

REPO = Path(__file__).resolve().parent.parent
FAST_S = 10.0  # generous on a loaded 2-core machine; a Ray start alone takes longer

# {t}: a fresh directory; {file}: an existing file; {junk}: a file of no known layout; {port}: a busy port;
# {sample}: the real sample, built from the shared data (the case needs the sample_dir fixture)
CASES: list[tuple[str, str, str]] = [
    # (id, argv, what the one line must say)
    ("import-missing-file", "data import {t}/nope.csv --store {t}/s", "does not exist"),
    ("import-junk-file", "data import {junk} --store {t}/s", "could not be imported"),
    ("import-joined-without-symbol", "data import {sample}/btc_1m_joined_sample.csv.gz --store {t}/s",
     "--symbol"),
    ("import-a-directory", "data import {t} --store {t}/s", "is a directory"),
    ("import-store-is-a-file", "data import {sample}/usdkrw_daily_sample.csv --store {file}", "existing file"),
    ("import-bad-venue", "data import {junk} --store {t}/s --venue kraken", "invalid choice"),
    ("import-no-files", "data import --store {t}/s", "required"),
    ("import-no-store", "data import {junk}", "--store"),
    ("data-no-subcommand", "data", "required"),
    ("no-command", "", "required"),
    ("unknown-command", "trade", "invalid choice"),
    ("backtest-missing-store", "backtest --store {t}/nope --routes BTC --out {t}/o", "does not exist"),
    ("backtest-store-is-a-file", "backtest --store {file} --routes BTC --out {t}/o", "not a store directory"),
    ("backtest-out-is-a-file", "backtest --store {t} --routes BTC --out {file}", "existing file"),
    ("backtest-out-under-a-file", "backtest --store {t} --routes BTC --out {file}/o", "is a file"),
    ("config-missing", "backtest --store {t} --routes BTC --out {t}/o --config {t}/no.toml", "does not exist"),
    ("config-is-a-directory", "backtest --store {t} --routes BTC --out {t}/o --config {t}", "is a directory"),
    ("config-bad-toml", "backtest --store {t} --routes BTC --out {t}/o --config {t}/bad.toml", "not valid TOML"),
    ("config-bad-value", "backtest --store {t} --routes BTC --out {t}/o --config {t}/neg.toml", "entry_bps"),
    ("config-not-a-table", "backtest --store {t} --routes BTC --out {t}/o --config {t}/list.json", "table"),
    ("config-unknown-field", "backtest --store {t} --routes BTC --out {t}/o --config {t}/extra.toml", "extra"),
    ("set-unknown-field", "backtest --store {t} --routes BTC --out {t}/o --set strategy.entry_bsp=3",
     "did you mean strategy.entry_bps"),
    ("set-without-value", "backtest --store {t} --routes BTC --out {t}/o --set strategy.entry_bps", "expected"),
    ("set-a-section", "backtest --store {t} --routes BTC --out {t}/o --set costs=1", "is a section"),
    ("set-not-a-number", "backtest --store {t} --routes BTC --out {t}/o --set strategy.entry_bps=wide",
     "valid number"),
    ("set-out-of-range", "backtest --store {t} --routes BTC --out {t}/o --set strategy.entry_bps=-5",
     "greater than 0"),
    ("set-breaks-a-cross-check", "backtest --store {t} --routes BTC --out {t}/o --set strategy.exit_bps=90",
     "exit_bps must be below entry_bps"),
    ("time-unreadable", "backtest --store {t} --routes BTC --out {t}/o --from yesterday", "cannot read time"),
    ("time-reversed", "backtest --store {t} --routes BTC --out {t}/o --from 2024-12-02 --to 2024-12-01",
     "reversed"),
    ("time-empty", "backtest --store {t} --routes BTC --out {t}/o --from 2024-12-01 --to 2024-12-01", "empty"),
    ("routes-top-zero", "backtest --store {t} --routes top:0 --out {t}/o", "positive"),
    ("routes-empty", "backtest --store {t} --routes , --out {t}/o", "empty route spec"),
    ("routes-bad-symbol", "backtest --store {t} --routes BTC;ETH --out {t}/o", "bad"),
    ("unknown-flag", "backtest --store {t} --routes BTC --out {t}/o --fast", "unrecognized"),
    ("speed-nan", "paper --replay {t} --routes BTC --out {t}/o --speed nan", "positive finite"),
    ("speed-zero", "paper --replay {t} --routes BTC --out {t}/o --speed 0", "positive finite"),
    ("speed-negative", "paper --replay {t} --routes BTC --out {t}/o --speed -2", "positive finite"),
    ("speed-inf", "paper --replay {t} --routes BTC --out {t}/o --speed inf", "positive finite"),
    ("speed-word", "paper --replay {t} --routes BTC --out {t}/o --speed fast", "neither 'max' nor a number"),
    ("metrics-port-busy", "paper --replay {t} --routes BTC --out {t}/o --metrics-port {port}", "cannot be bound"),
    ("metrics-port-too-big", "paper --replay {t} --routes BTC --out {t}/o --metrics-port 70000", "not a TCP port"),
    ("metrics-port-negative", "paper --replay {t} --routes BTC --out {t}/o --metrics-port -1", "below 0"),
    ("dashboard-port-busy", "paper --replay {t} --routes BTC --out {t}/o --dashboard-port {port}", "cannot be bound"),
    ("run-id-underscore", "paper --replay {t} --routes BTC --out {t}/o --run-id my_run_2024 --clean",
     "not a run id"),
    ("run-id-too-long", "paper --replay {t} --routes BTC --out {t}/o --run-id abcdefghi --clean", "not a run id"),
    ("run-id-alone", "paper --replay {t} --routes BTC --out {t}/o --run-id run1", "--run-id is used only with"),
    ("snapshots-alone", "paper --replay {t} --routes BTC --out {t}/o --snapshots {t}/s", "--snapshots is used"),
    ("resume-without-run-id", "paper --replay {t} --routes BTC --out {t}/o --resume", "--resume needs --run-id"),
    ("resume-and-clean", "paper --replay {t} --routes BTC --out {t}/o --run-id r1 --resume --clean",
     "exclude each other"),
    ("journal-dsn-alone", "paper --replay {t} --routes BTC --out {t}/o --journal-dsn postgresql://x/y",
     "--journal-dsn needs --journal"),
    ("redis-not-a-url", "paper --replay {t} --routes BTC --out {t}/o --redis localhost:6379", "not a Redis URL"),
    ("journal-is-a-file", "paper --replay {t} --routes BTC --out {t}/o --journal {file}", "existing file"),
    ("snapshots-is-a-file", "paper --replay {t} --routes BTC --out {t}/o --clean --snapshots {file}",
     "existing file"),
    ("risk-in-host-alone", "paper --replay {t} --routes BTC --out {t}/o --risk-in-host", "--route-hosts 1"),
    ("window-ms-nan", "paper --replay {t} --routes BTC --out {t}/o --window-ms nan", "not a usable window"),
    ("route-hosts-negative", "paper --replay {t} --routes BTC --out {t}/o --route-hosts -1", "below 0"),
    ("paper-replay-missing", "paper --replay {t}/nope --routes BTC --out {t}/o", "does not exist"),
    ("paper-out-is-a-file", "paper --replay {t} --routes BTC --out {file}", "existing file"),
    ("drill-times-zero", "drill kill --replay {t} --routes BTC --out {t}/o --times 0", "below 1"),
    ("drill-times-negative", "drill kill --replay {t} --routes BTC --out {t}/o --times -3", "below 1"),
    ("drill-unknown-kind", "drill flood --replay {t} --routes BTC --out {t}/o", "invalid choice"),
    ("drill-unknown-mode", "drill kill --replay {t} --routes BTC --out {t}/o --mode gentle", "invalid choice"),
    ("drill-window-zero", "drill kill --replay {t} --routes BTC --out {t}/o --window-events 0", "below 1"),
    ("drill-set-unknown", "drill kill --replay {t} --routes BTC --out {t}/o --set risk.max_loss=1", "no such"),
    ("sweep-grid-no-values", "sweep --store {t} --routes BTC --out {t}/o --grid strategy.entry_bps=", "expected"),
    ("sweep-grid-unknown-field", "sweep --store {t} --routes BTC --out {t}/o --grid strategy.entry=1,2",
     "no such config field"),
    ("sweep-grid-bad-value", "sweep --store {t} --routes BTC --out {t}/o --grid strategy.entry_bps=50,x",
     "finite numbers"),
    ("sweep-split-out-of-range", "sweep --store {t} --routes BTC --out {t}/o --grid strategy.entry_bps=30 "
     "--split 1.5", "between 0 and 1"),
    ("sweep-split-nan", "sweep --store {t} --routes BTC --out {t}/o --grid strategy.entry_bps=30 --split nan",
     "between 0 and 1"),
    ("demo-out-is-a-file", "demo --out {file}", "existing file"),
    ("demo-set-bad", "demo --out {t}/o --set inventory.upbit_krw=-1", "greater than or equal to 0"),
    ("demo-data-not-the-data-set", "demo --out {t}/o --data {t}", "no shared data set"),
]


@pytest.fixture()
def busy_port() -> Iterator[int]:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    yield int(s.getsockname()[1])
    s.close()


@pytest.fixture()
def nothing_expensive(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ray start-up and every scenario entry point fail the test: a refusal must come before them (the
    importer runs: refusing a file it cannot read is its job)."""
    import arbitrage_lite.infra.ray_runtime as ray_runtime
    import arbitrage_lite.scenarios.backtest as backtest
    import arbitrage_lite.scenarios.drills as drills
    import arbitrage_lite.scenarios.paper as paper
    import arbitrage_lite.scenarios.sweep as sweep

    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("expensive start-up reached with bad input")

    monkeypatch.setattr(ray_runtime, "ensure_ray", boom)
    for mod, name in ((backtest, "run_backtest"), (paper, "run_paper"), (drills, "drill_main"),
                      (sweep, "run_sweep")):
        monkeypatch.setattr(mod, name, boom)


def _argv(template: str, tmp_path: Path, port: int) -> list[str]:
    (tmp_path / "file.txt").write_text("not a directory\n")
    (tmp_path / "junk.csv").write_text("hello,world\n1,2\n")
    (tmp_path / "bad.toml").write_text("[strategy\nentry_bps = 1\n")
    (tmp_path / "neg.toml").write_text("[strategy]\nentry_bps = -1\n")
    (tmp_path / "list.json").write_text("[1, 2]\n")
    (tmp_path / "extra.toml").write_text("[strategy]\nentry_bps = 50\nwhatever = 1\n")
    text = template.format(t=tmp_path, file=tmp_path / "file.txt", junk=tmp_path / "junk.csv", port=port,
                           sample=SAMPLE)
    return text.split()


def _check_one_line(code: int, out: str, err: str, needle: str) -> None:
    assert code != 0, (code, out, err)
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("arbitrage-lite: error: "), err
    assert needle in lines[0], (needle, lines[0])
    assert "Traceback" not in out + err


@pytest.mark.parametrize(("argv", "needle"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_before_any_start_up(argv: str, needle: str, tmp_path: Path, busy_port: int,
                                                   nothing_expensive: None, capsys: pytest.CaptureFixture[str],
                                                   request: pytest.FixtureRequest) -> None:
    if "{sample}" in argv:
        request.getfixturevalue("sample_dir")
    args = _argv(argv, tmp_path, busy_port)
    t0 = time.perf_counter()
    code = main(args)
    elapsed = time.perf_counter() - t0
    out, err = capsys.readouterr()
    _check_one_line(code, out, err, needle)
    assert code == 2, err  # every one of them is the user's to fix
    assert elapsed < FAST_S, elapsed


def test_the_table_is_large_and_distinct() -> None:
    assert len(CASES) >= 40
    assert len({c[0] for c in CASES}) == len({c[1] for c in CASES}) == len(CASES)


@pytest.mark.parametrize(("args", "needle"), [
    (["--routes", "DOGE"], "no data on both venues for DOGE"),
    (["--routes", "BTC", "--from", "2031-01-01", "--to", "2031-02-01"], "requested"),
])
def test_what_only_the_store_knows_is_one_line_too(args: list[str], needle: str, sample_stores: dict[str, Path],
                                                   tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["backtest", "--store", str(sample_stores["btc"]), "--no-ray", "--no-progress", "--out",
                 str(tmp_path / "o"), *args])
    out, err = capsys.readouterr()
    _check_one_line(code, out, err, needle)
    assert "no FX in the store:" not in err  # a window outside the data is not a store without FX


def test_demo_without_a_data_set_names_where_it_looked_and_what_to_pass(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, nothing_expensive: None,
        capsys: pytest.CaptureFixture[str]) -> None:
    from arbitrage_lite.infra.data.sample import ENV

    monkeypatch.setenv(ENV, str(tmp_path / "no_data"))  # the only place looked at, as for --data
    code = main(["demo", "--out", str(tmp_path / "o")])
    out, err = capsys.readouterr()
    _check_one_line(code, out, err, f"{tmp_path / 'no_data'} (${ENV})")
    assert code == 2 and "pass --data DIR" in err
    assert not (tmp_path / "o" / "sample_data").exists()


def test_an_unexpected_error_is_one_line_naming_it_and_debug_shows_the_traceback(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def broken(args: object) -> int:
        raise KeyError("route_state")

    monkeypatch.setattr(cli, "_cmd_backtest", broken)
    argv = ["backtest", "--store", str(tmp_path), "--routes", "BTC", "--out", str(tmp_path / "o")]
    code = main(argv)
    out, err = capsys.readouterr()
    _check_one_line(code, out, err, "KeyError: 'route_state'")
    assert code == 1 and "--debug" in err
    with pytest.raises(KeyError):
        main(["--debug", *argv])
    with pytest.raises(KeyError):
        main([*argv, "--debug"])


def test_drill_kinds_are_the_scenarios_own() -> None:
    from arbitrage_lite.scenarios.drills import KINDS

    assert set(cli.DRILL_KINDS) == set(KINDS)  # the CLI lists them to refuse a typo before importing the kernel


def test_help_is_not_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["paper", "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "--set" in out and "--ray-address" in out and "docs/config.md" in out


def test_the_entry_point_is_the_top_level_cli(tmp_path: Path) -> None:
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"arbitrage-lite": "arbitrage_lite.cli:main"}
    script = shutil.which("arbitrage-lite")
    if script is None:
        pytest.skip("arbitrage-lite is not installed on PATH (pip install -e .)")
    proc = subprocess.run([script, "drill", "kill", "--replay", ".", "--routes", "BTC", "--out", "o", "--times", "0"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    _check_one_line(proc.returncode, proc.stdout, proc.stderr, "below 1")


@pytest.mark.parametrize(("argv", "needle"), [
    (["data", "import", "/nonexistent/x.csv", "--store", "/tmp/never"], "does not exist"),
    (["paper", "--replay", ".", "--routes", "BTC", "--out", "o", "--speed", "nan"], "positive finite"),
    (["drill", "kill", "--replay", ".", "--routes", "BTC", "--out", "o", "--times", "0"], "below 1"),
    (["backtest", "--store", ".", "--routes", "BTC", "--out", "o", "--config", "."], "is a directory"),
])
def test_the_real_entry_point_in_a_subprocess(argv: list[str], needle: str, tmp_path: Path) -> None:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "arbitrage_lite.cli", *argv], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert time.perf_counter() - t0 < 3 * FAST_S
    assert proc.returncode == 2
    _check_one_line(proc.returncode, proc.stdout, proc.stderr, needle)


def test_snapshots_redis_refused_are_reported_where_they_went(capsys: pytest.CaptureFixture[str]) -> None:
    args = argparse.Namespace(redis="redis://127.0.0.1:6379/0", snapshots=None)
    extra = {"routes": [{"recovery": {"snapshot_fallbacks_total": 3}}, {"recovery": None}]}
    cli._warn_snapshot_fallbacks(extra, args)
    err = capsys.readouterr().err
    assert err.startswith("arbitrage-lite: warning:") and err.count("\n") == 1
    assert "3 route snapshot(s)" in err and "under snapshots/" in err
    cli._warn_snapshot_fallbacks({"routes": [{"recovery": {"snapshot_fallbacks_total": 0}}]}, args)
    assert capsys.readouterr().err == ""
