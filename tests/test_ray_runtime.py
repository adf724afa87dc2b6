"""Ray start-up never joins a stranger's cluster: with another Ray running on the machine and RAY_ADDRESS
pointing at it, the CLI starts its own local Ray; only --ray-address joins one."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture()
def stranger() -> Iterator[str]:
    """A separate ``ray start --head`` on a throwaway port and temp dir, stopped (its process group) after."""
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="rs", dir="/tmp")  # short: Ray's socket paths have a length limit
    head = subprocess.Popen(["ray", "start", "--head", f"--port={port}", "--num-cpus=1", "--include-dashboard=false",
                             "--disable-usage-stats", f"--temp-dir={temp}", "--block"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            env={**os.environ, "RAY_AUTH_MODE": "disabled"})  # joinable by address alone
    try:
        deadline = time.monotonic() + 120
        while not _listening(port):
            assert head.poll() is None, "ray start --head exited"
            assert time.monotonic() < deadline, "the stranger's Ray did not come up"
            time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):  # its whole process group: gcs, raylet, workers
            try:
                os.killpg(head.pid, sig)
                head.wait(timeout=10)
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue


def _run(code: str, address: str) -> dict[str, object]:
    env = {**os.environ, "RAY_ADDRESS": address, "RAY_AUTH_MODE": "disabled"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.ray
def test_the_cli_starts_its_own_ray_beside_a_strangers(stranger: str, sample_stores: dict[str, Path],
                                                       tmp_path: Path) -> None:
    port = stranger.rsplit(":", 1)[1]
    argv = ["backtest", "--store", str(sample_stores["multi"]), "--routes", "top:2", "--no-progress", "--out",
            str(tmp_path / "bt")]  # two routes: run as Ray tasks
    own = _run("import json, ray\nfrom arbitrage_lite.cli import main\n"
               f"rc = main({argv!r})\n"
               "assert ray.is_initialized(), 'no Ray started'\n"
               "print(json.dumps({'rc': rc, 'gcs': ray.get_runtime_context().gcs_address}))", stranger)
    assert own["rc"] == 0 and (tmp_path / "bt" / "summary.json").exists()
    assert str(own["gcs"]).rsplit(":", 1)[1] != port  # its own Ray, not the stranger's
    joined = _run("import json\nfrom arbitrage_lite.infra.ray_runtime import configure, ensure_ray\n"
                  f"configure({stranger!r})\nray = ensure_ray()\n"
                  "print(json.dumps({'gcs': ray.get_runtime_context().gcs_address}))", stranger)
    assert str(joined["gcs"]).rsplit(":", 1)[1] == port  # asked for (--ray-address): joined
