"""Where the tests find the real sample.

Only the MIT-licensed L2 file ships in ``sample_data/`` (``SHIPPED``); the rest is built from the shared data
set into the repository's gitignored ``.cache/sample_data`` (``SAMPLE``) by the session fixture ``sample_dir``
(conftest), or by ``build()`` when a helper runs by hand. Paths are known at import; files exist once built.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / ".cache" / "sample_data"
SHIPPED = REPO / "sample_data"
L2 = SHIPPED / "binance_btcusdt_l2_sample.gz"  # the licensed file: needs no shared data


def build() -> Path:
    """Build (or reuse) ``SAMPLE``; SystemExit with where it looked if there is no shared data set."""
    from arbitrage_lite.infra.data.sample import ensure_sample, find_shared_data, not_found_message

    shared = find_shared_data()
    if shared is None:
        raise SystemExit(not_found_message())
    return ensure_sample(SAMPLE, shared)
