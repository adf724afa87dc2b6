"""Trials yield the cores a paper or live system keeps: nice 10 and off the node's first reserved cores."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

PROBE = ("import json, os, sys; from arbitrage_lite.scenarios.tune import lower_priority; "
         "lower_priority(int(sys.argv[1])); print(json.dumps([sorted(os.sched_getaffinity(0)), os.nice(0)]))")


def _probe(reserve: int) -> tuple[list[int], int]:
    out = subprocess.run([sys.executable, "-c", PROBE, str(reserve)], capture_output=True, text=True, check=True)
    cores, nice = json.loads(out.stdout)
    return cores, nice


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores to leave one free")
def test_a_trial_leaves_the_first_reserved_cores_and_runs_at_nice_10() -> None:
    mine = sorted(os.sched_getaffinity(0))
    cores, nice = _probe(1)
    assert cores == mine[1:] and nice >= 10
    assert _probe(0)[0] == mine  # nothing reserved: every core
    assert _probe(len(mine))[0] == mine  # a node with no core to spare keeps them all (nice only)
