"""``arbitrage-lite config check`` reports every problem at once (file, --set, models, environment), exit 2.

Run in-process through ``cli.main``; the environment checks get a real closed port, a real busy port and an
empty environment, never the machine's own secrets.
"""

from __future__ import annotations

import argparse
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from arbitrage_lite import cli_ops
from arbitrage_lite.cli import main

BAD = """
[strategy]
entry_bps = -5
exit_bps = "abc"
bogus = 1

[costs.upbit]
taker_fee = 0.001

[alerts]
route_p0 = ["pager"]

[nonsense]
x = 1
"""


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


def _problems(out: str) -> list[str]:
    return [line.removeprefix("problem: ") for line in out.splitlines() if line.startswith("problem: ")]


def test_every_mistake_of_a_file_is_reported_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(BAD)
    rc = main(["config", "check", "--config", str(cfg), "--set", "strategy.nope=1",
               "--set", "strategy.cooldown_s=-1"])
    problems = _problems(capsys.readouterr().out)
    assert rc == 2
    expected = ["strategy.entry_bps", "strategy.exit_bps", "strategy.bogus", "costs.upbit.latency_ms",
                "costs.upbit.half_spread_bps", "route_p0", "nonsense", "--set strategy.nope", "strategy.cooldown_s"]
    for part in expected:
        assert any(part in p for p in problems), (part, problems)
    assert len(problems) == len(set(problems)) >= len(expected)  # one line each, none twice


def test_a_good_config_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "ok.toml"
    cfg.write_text("[strategy]\nentry_bps = 30\n")
    assert main(["config", "check", "--config", str(cfg), "--set", "strategy.exit_bps=4"]) == 0
    assert _problems(capsys.readouterr().out) == []


def test_cross_field_check_reported(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check", "--set", "strategy.exit_bps=50", "--set", "strategy.entry_bps=40"]) == 2
    assert any("exit_bps must be below entry_bps" in p for p in _problems(capsys.readouterr().out))


def test_unreadable_file_is_one_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "broken.toml"
    cfg.write_text("[strategy\n")
    assert main(["config", "check", "--config", str(cfg)]) == 2
    problems = _problems(capsys.readouterr().out)
    assert len(problems) == 1 and "not valid TOML" in problems[0]


def _env_args(**kw: object) -> argparse.Namespace:
    base: dict[str, object] = {"redis": None, "journal_dsn": None, "metrics_port": None, "control_port": None,
                               "real": False, "secrets_file": None, "out": None}
    return argparse.Namespace(**(base | kw))


def test_environment_problems_all_named_without_secret_values(closed_port: int, busy_port: int,
                                                               tmp_path: Path) -> None:
    from arbitrage_lite.core.config import EngineConfig

    cfg = EngineConfig.model_validate({"alerts": {"slack": {"enabled": True}, "telegram": {"chat_id": "42"}}})
    env = {"ARBITRAGE_BINANCE_KEY": "k", "ARBITRAGE_BINANCE_SECRET": "hunter2-binance"}  # upbit missing
    args = _env_args(real=True, redis=f"redis://127.0.0.1:{closed_port}/0",
                     journal_dsn=f"postgresql://me:hunter2@127.0.0.1:{closed_port}/db", metrics_port=busy_port)
    problems = cli_ops.env_problems(args, cfg, env)
    joined = "\n".join(problems)
    for part in ("ARBITRAGE_UPBIT_ACCESS_KEY", "ARBITRAGE_SLACK_WEBHOOK_URL", "ARBITRAGE_TELEGRAM_TOKEN",
                 "--redis", "--journal-dsn", f"--metrics-port {busy_port}"):
        assert part in joined, (part, problems)
    assert "binance credentials" not in joined  # those are present
    assert "hunter2" not in joined  # neither the DSN's password nor a secret's value


def test_environment_clean_when_everything_answers(busy_port: int, tmp_path: Path, closed_port: int) -> None:
    from arbitrage_lite.core.config import EngineConfig

    env = {"ARBITRAGE_BINANCE_KEY": "k", "ARBITRAGE_BINANCE_SECRET": "s", "ARBITRAGE_UPBIT_ACCESS_KEY": "a",
           "ARBITRAGE_UPBIT_SECRET_KEY": "b"}
    cfg = EngineConfig.model_validate({"alerts": {"queue": {"path": str(tmp_path / "outbox.jsonl")}}})
    args = _env_args(real=True, redis=f"redis://127.0.0.1:{busy_port}/0", metrics_port=closed_port,
                     out=str(tmp_path / "run"))
    assert cli_ops.env_problems(args, cfg, env) == []


def test_cli_env_flag_exits_2_on_unreachable_store(closed_port: int, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["config", "check", "--env", "--set", f"alerts.queue.path={tmp_path / 'o.jsonl'}",
               "--redis", f"redis://127.0.0.1:{closed_port}/0"])
    assert rc == 2
    assert [p for p in _problems(capsys.readouterr().out) if p.startswith("--redis")]
