"""Recorded Binance payloads for the tests (shared data set: skipped locally, failed in CI without it)."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import Any

import pytest
from conftest import shared_data_dir

REPO = Path(__file__).resolve().parent.parent
SAMPLE_L2 = REPO / "sample_data" / "binance_btcusdt_l2_sample.gz"  # MIT, ships with the repo


def data_dir() -> Path:
    d = shared_data_dir()
    if d is None:
        if os.environ.get("CI"):
            pytest.fail("shared data set not found")
        pytest.skip("shared data set not found")
    return d


def rest(name: str) -> Any:
    p = data_dir() / "fixtures" / "rest" / name
    if p.suffix == ".gz":
        with gzip.open(p, "rt") as f:
            return json.load(f)
    return json.loads(p.read_text())


def raw_l2_files() -> list[Path]:
    return sorted((data_dir() / "binance_spot_l2_raw").glob("*.gz"))


def l2_lines(path: Path) -> list[tuple[int, str]]:
    """``<local_ns> <json>`` lines of a raw combined-stream recording."""
    out = []
    with gzip.open(path, "rt") as f:
        for line in f:
            ts, _, js = line.rstrip("\n").partition(" ")
            out.append((int(ts), js))
    return out


def cryptofeed_ws() -> list[str]:
    """The 2021 cryptofeed session's WS frames (depth, bookTicker, kline, aggTrade of 4 symbols)."""
    out = []
    with gzip.open(data_dir() / "fixtures" / "cryptofeed" / "BINANCE.ws.1.0.gz", "rt") as f:
        for line in f:
            _head, sep, js = line.partition(": ")
            if sep and js.startswith("{"):
                out.append(js.strip())
    return out
