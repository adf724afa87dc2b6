"""A paper replay on a two-node Ray cluster on this machine: routes on both nodes, same trades as the backtest.

Runs in its own process: that process starts the cluster, so this session's single Ray start is untouched.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.timeout(240)
def test_paper_replay_spread_over_two_nodes(sample_stores: dict[str, Path], tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "arbitrage_lite.scenarios.two_node", str(sample_stores["multi"]), "CVC,XRP,ETH,SOL",
         str(tmp_path)], capture_output=True, text=True, timeout=220, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["cluster_nodes"] == 2
    assert result["route_nodes"] == 2  # the SPREAD strategy put routes on both nodes
    assert result["trades"] > 0 and result["same_trades_as_backtest"] is True
