"""The real sample is built from the shared data set (only its MIT file ships): where the data set is looked
for, and a built sample reused only while it is complete and made from the same inputs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sample_files import SHIPPED

from arbitrage_lite import cli
from arbitrage_lite.infra.data import sample as smp


def _data_set(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "MANIFEST.md").write_text("# a data set\n")
    return path


def test_an_explicit_directory_or_the_env_is_the_only_place_looked_at(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    good, env = _data_set(tmp_path / "good"), _data_set(tmp_path / "env")
    monkeypatch.setenv(smp.ENV, str(env))
    assert smp.find_shared_data(good) == good.resolve()
    assert smp.find_shared_data(tmp_path) is None  # no MANIFEST.md: refused, not replaced by $ENV or ../shared
    assert smp.find_shared_data() == env.resolve()
    monkeypatch.setenv(smp.ENV, str(tmp_path / "missing"))
    assert smp.find_shared_data() is None
    assert str(tmp_path / "missing") in smp.not_found_message() and "--data DIR" in smp.not_found_message()


def test_without_an_explicit_place_the_search_goes_beside_the_repository_then_the_working_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(smp.ENV, raising=False)
    places = [p for p, _ in smp.search_places(cwd=tmp_path / "work" / "repo")]
    assert places == [smp.PACKAGE_ROOT.parent / "shared" / "data", tmp_path / "work" / "shared" / "data",
                      smp.LAST_RESORT]


def test_only_the_licensed_file_and_the_readme_ship() -> None:
    assert sorted(p.name for p in SHIPPED.iterdir()) == sorted([*smp.SHIPPED, "README.md"])


def test_a_built_sample_is_reused_and_a_damaged_one_rebuilt(sample_dir: Path, tmp_path: Path) -> None:
    shared = smp.find_shared_data()
    assert shared is not None
    dest = tmp_path / "sample"
    shutil.copytree(sample_dir, dest)
    key = smp.build_key(shared)
    assert smp.is_current(dest, key)
    joined = dest / "btc_1m_joined_sample.csv.gz"
    before = joined.stat().st_ino
    assert smp.ensure_sample(dest, shared) == dest and joined.stat().st_ino == before  # reused, not rewritten
    good = joined.read_bytes()
    joined.write_bytes(good[:-10])  # a truncated file
    assert not smp.is_current(dest, key)
    smp.ensure_sample(dest, shared)
    assert joined.read_bytes() == good and smp.is_current(dest, key)
    (dest / "usdkrw_daily_sample.csv").unlink()  # an incomplete one
    assert not smp.is_current(dest, key)
    assert not smp.is_current(dest, "another key")


def test_a_directory_that_is_not_a_sample_is_left_alone(sample_dir: Path, tmp_path: Path) -> None:
    shared = smp.find_shared_data()
    assert shared is not None
    (tmp_path / "mine.txt").write_text("keep me\n")
    with pytest.raises(smp.SampleError, match="not a sample directory"):
        smp.ensure_sample(tmp_path, shared)
    assert (tmp_path / "mine.txt").read_text() == "keep me\n"


def test_a_data_set_missing_an_input_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(smp.SampleError, match="has no aligned_btc_1m/"):
        smp.ensure_sample(tmp_path / "s", _data_set(tmp_path / "empty"))


def test_demo_builds_its_sample_under_out_and_imports_from_it(sample_dir: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo up to its backtests (replaced by a recorder: those are the backtest tests' business)."""
    import arbitrage_lite.scenarios.backtest as backtest

    shared = smp.find_shared_data()
    assert shared is not None
    seen: list[tuple[Path, str]] = []

    def record(req: backtest.BacktestRequest) -> dict[str, object]:
        seen.append((req.store, req.routes))
        raise KeyboardInterrupt  # stop after the first: the stores are what this test is about

    monkeypatch.setattr(backtest, "run_backtest", record)
    out = tmp_path / "demo"
    assert cli.main(["demo", "--out", str(out), "--data", str(shared), "--no-ray", "--no-progress"]) == 130
    assert smp.is_current(out / "sample_data", smp.build_key(shared))
    assert seen == [(out / "store_btc_1m", "BTC")] and (out / "store_multi").is_dir()
