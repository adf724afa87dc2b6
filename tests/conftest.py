from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import pytest

if TYPE_CHECKING:
    from arbitrage_lite.infra.throwaway import ThrowawayPostgres

sys.path.insert(0, str(Path(__file__).parent))  # shared test helpers (market_fixtures)

from sample_files import SAMPLE

REPO = Path(__file__).resolve().parent.parent
PG_DSN = os.environ.get("JOURNAL_TEST_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def shared_data_dir() -> Path | None:
    for cand in (REPO.parent / "shared" / "data", Path("/work/shared/data")):
        if (cand / "MANIFEST.md").exists():
            return cand
    return None


@pytest.fixture(scope="session", autouse=True)
def compiled_kernel() -> None:
    """Compile the kernel once, in the test process, before any Ray worker needs it."""
    from arbitrage_lite.core.replay import warm_up

    warm_up()


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    """The real sample, built once from the shared data set into ``.cache/sample_data`` (reused while its
    inputs are unchanged): only its MIT file ships. No data set: skipped locally, failed in CI."""
    from arbitrage_lite.infra.data.sample import ensure_sample, find_shared_data, not_found_message

    shared = find_shared_data()
    if shared is None:
        _unavailable(not_found_message())
    return ensure_sample(SAMPLE, shared)


@pytest.fixture(scope="session")
def sample_stores(sample_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The real sample imported once per session: BTC 1m bars and the multi-coin snapshots."""
    from arbitrage_lite.infra.data.importer import run_import

    root = tmp_path_factory.mktemp("stores")
    btc, multi = root / "btc", root / "multi"
    run_import([SAMPLE / "btc_1m_joined_sample.csv.gz", SAMPLE / "usdkrw_daily_sample.csv"], btc, symbol="BTC")
    run_import([SAMPLE / "kimpai_snapshots_sample.csv.gz", SAMPLE / "kimpai_usdkrw_sample.csv.gz"], multi)
    return {"btc": btc, "multi": multi}


@pytest.fixture(scope="session")
def ray_session() -> Iterator[object]:
    """One Ray start for the whole test session (2 CPUs, no dashboard)."""
    from arbitrage_lite.infra.ray_runtime import ensure_ray

    ray = ensure_ray(num_cpus=2)
    yield ray
    ray.shutdown()  # type: ignore[attr-defined]


def _unavailable(what: str) -> NoReturn:
    """A service the test needs is missing: skipped locally, failed in CI."""
    if os.environ.get("CI"):
        pytest.fail(what)
    pytest.skip(what)


@pytest.fixture(scope="session")
def pg_dsn() -> str:
    """The shared PostgreSQL; the ``test`` database is created if missing."""
    import asyncpg

    async def check() -> None:
        try:
            conn = await asyncpg.connect(PG_DSN, timeout=5)
        except asyncpg.InvalidCatalogNameError:
            admin = await asyncpg.connect(PG_DSN.rsplit("/", 1)[0] + "/postgres", timeout=5)
            await admin.execute("CREATE DATABASE test")
            await admin.close()
            conn = await asyncpg.connect(PG_DSN, timeout=5)
        await conn.close()
    try:
        asyncio.run(check())
    except (OSError, asyncpg.PostgresError) as exc:
        _unavailable(f"PostgreSQL at {PG_DSN} is not reachable: {exc!r}")
    return PG_DSN


@pytest.fixture(scope="module")
def throwaway_pg() -> Iterator[ThrowawayPostgres]:
    """A private PostgreSQL cluster per test module (infra/throwaway.py), for tests that take the server down."""
    from arbitrage_lite.infra.throwaway import ThrowawayError, ThrowawayPostgres

    try:
        cluster = ThrowawayPostgres()
    except ThrowawayError as exc:
        _unavailable(f"no throwaway PostgreSQL: {exc}")
    with cluster:
        yield cluster
