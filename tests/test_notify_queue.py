"""The outbox and the dispatcher's rules, on a hand-written channel and a hand-moved clock: restart with
nothing lost and nothing sent twice, de-duplication, burst aggregation, per-rule throttling, routing by
severity, backoff to a dead letter, compaction, and the Redis stream backend."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from arbitrage_lite.core.alerts_config import AlertsConfig, QueueConfig
from arbitrage_lite.infra.notify import Notifier
from arbitrage_lite.infra.notify.channels import FAIL, OK, RETRY, Kind, Notice, Outcome
from arbitrage_lite.infra.notify.outbox import FileLog, RecordLog, RedisLog

S = 1_000_000_000


class FakeChannel:
    """Records every notice it is handed; answers from ``script`` then ``default``."""

    def __init__(self, name: str, default: Kind = OK) -> None:
        self.name, self.default = name, default
        self.script: list[Outcome] = []
        self.got: list[Notice] = []

    async def send(self, session: aiohttp.ClientSession, notice: Notice) -> Outcome:
        self.got.append(notice)
        return self.script.pop(0) if self.script else Outcome(self.default)


class Clock:
    def __init__(self) -> None:
        self.ns = 1_000 * S

    def __call__(self) -> int:
        return self.ns


def make(log: RecordLog, clock: Clock, names: tuple[str, ...] = ("telegram", "slack", "webhook", "email"),
         **kw: Any) -> tuple[Notifier, dict[str, FakeChannel]]:
    cfg = AlertsConfig(**{"aggregate_s": 0, "throttle_s": 0, "dedup_s": 0, "retry_base_s": 1, "retry_cap_s": 8,
                          "retry_jitter": 0, **kw})
    chans = {n: FakeChannel(n) for n in names}
    return Notifier(cfg, chans, log, clock=clock), chans


def steps(n: Notifier, k: int = 1) -> None:
    async def go() -> None:
        async with aiohttp.ClientSession() as session:
            for _ in range(k):
                await n.step(session)

    asyncio.run(go())


def test_restart_loses_nothing_and_sends_once_per_channel(tmp_path: Path) -> None:
    clock, path = Clock(), tmp_path / "o.jsonl"
    n1, _ = make(FileLog(path), clock)
    for i, rule in enumerate(("kill_switch", "one_leg_unhedged", "daily_loss_limit")):
        assert n1.enqueue(rule, 0, f"k{i}", f"m{i}", i)
    n1.outbox.log.close()  # the process dies here: nothing was sent
    with open(path, "ab") as f:
        f.write(b'{"op":"alert","id":99,"ru')  # and it died mid-write
    n2, chans = make(FileLog(path), clock)
    steps(n2)
    for ch in chans.values():
        assert sorted(x.text for x in ch.got) == ["k0: m0", "k1: m1", "k2: m2"]
    chans["slack"].default = RETRY  # slack is down when the second process dies
    n2.enqueue("feed_stale", 0, "upbit", "silent", 5)
    steps(n2)
    n2.outbox.log.close()
    n3, chans3 = make(FileLog(path), clock)
    clock.ns += 10 * S
    steps(n3, 3)
    assert [x.rule for x in chans3["slack"].got] == ["feed_stale"]  # only what slack had not taken
    assert all(c.got == [] for name, c in chans3.items() if name != "slack")
    assert n3.status()["undelivered"] == {"telegram": 0, "slack": 0, "webhook": 0, "email": 0}


def test_dedup_by_rule_and_subject_within_window_survives_restart(tmp_path: Path) -> None:
    clock, path = Clock(), tmp_path / "o.jsonl"
    n, _ = make(FileLog(path), clock, dedup_s=60)
    assert n.enqueue("reconcile_mismatch", 0, "KRW-BTC", "a", 1)
    assert not n.enqueue("reconcile_mismatch", 0, "KRW-BTC", "a again", 2)
    assert n.enqueue("reconcile_mismatch", 0, "KRW-ETH", "other subject", 3)
    n.outbox.log.close()
    n2, _ = make(FileLog(path), clock, dedup_s=60)
    clock.ns += 30 * S
    assert not n2.enqueue("reconcile_mismatch", 0, "KRW-BTC", "after restart, still in window", 4)
    clock.ns += 31 * S
    assert n2.enqueue("reconcile_mismatch", 0, "KRW-BTC", "window over", 5)
    assert n2.status()["deduplicated"] == 1 and len(n2.outbox.pending) == 3


def test_burst_of_one_rule_becomes_one_message(tmp_path: Path) -> None:
    clock = Clock()
    n, chans = make(FileLog(tmp_path / "o.jsonl"), clock, ("slack",), aggregate_s=5)
    for i in range(40):
        n.enqueue("one_leg_unhedged", 0, f"route{i}", f"leg {i} open", i)
        clock.ns += S // 10  # 40 alerts over 4 s
    n.enqueue("kill_switch", 0, "portfolio", "halted", 99)
    steps(n)
    assert chans["slack"].got == []  # the burst window (5 s from the first) is still open
    clock.ns += 1 * S + 1
    steps(n)
    [burst] = chans["slack"].got
    assert burst.rule == "one_leg_unhedged" and burst.count == 40
    assert "x 40" in burst.text and "first route0: leg 0 open" in burst.text and "last route39: leg 39" in burst.text
    clock.ns += 4 * S
    steps(n)
    assert [x.rule for x in chans["slack"].got] == ["one_leg_unhedged", "kill_switch"]


def test_throttle_per_rule(tmp_path: Path) -> None:
    clock = Clock()
    n, chans = make(FileLog(tmp_path / "o.jsonl"), clock, ("slack",), throttle_s=60)
    n.enqueue("feed_stale", 0, "a", "1", 1)
    n.enqueue("fx_stale", 0, "usdkrw", "other rule", 1)
    steps(n)
    assert [x.rule for x in chans["slack"].got] == ["feed_stale", "fx_stale"]
    clock.ns += 10 * S
    for key in "bcd":
        n.enqueue("feed_stale", 0, key, key, 2)
    steps(n)
    assert len(chans["slack"].got) == 2  # held: feed_stale messaged 10 s ago
    clock.ns += 50 * S
    steps(n)
    assert len(chans["slack"].got) == 3 and chans["slack"].got[-1].count == 3


def test_routing_by_severity(tmp_path: Path) -> None:
    clock = Clock()
    n, chans = make(FileLog(tmp_path / "o.jsonl"), clock, ("telegram", "slack", "email"),
                    route_p0=("telegram", "slack", "email", "webhook"), route_p1=("slack",))
    assert n.enqueue("kill_switch", 0, "p", "page", 1)
    assert n.enqueue("circuit_breaker", 1, "r", "urgent", 1)
    assert not n.enqueue("restart", 2, "c", "look today", 1)  # P2: the log only
    assert not n.enqueue("risk_reject", 3, "c", "info", 1)
    steps(n)
    assert {k: [x.rule for x in c.got] for k, c in chans.items()} == {
        "telegram": ["kill_switch"], "slack": ["kill_switch", "circuit_breaker"], "email": ["kill_switch"]}


def test_backoff_doubles_to_cap_then_dead_letter_then_requeue(tmp_path: Path) -> None:
    clock = Clock()
    n, chans = make(FileLog(tmp_path / "o.jsonl"), clock, ("webhook",), max_attempts=6, retry_cap_s=8)
    chans["webhook"].default = RETRY
    n.enqueue("kill_switch", 0, "p", "x", 1)
    waits = []
    for _ in range(6):
        steps(n)
        live = list(n.outbox.notices.values())
        if not live:
            break
        nxt = live[0].channels["webhook"].next_at
        waits.append((nxt - clock.ns) / S)
        clock.ns = nxt
    assert waits == [1, 2, 4, 8, 8]
    assert len(chans["webhook"].got) == 6 and len(n.dead_letters()) == 1
    assert n.dead_letters()[0]["reason"].startswith("6 attempts")
    chans["webhook"].default = OK
    assert n.requeue_dead() == 1 and n.dead_letters() == []
    steps(n)
    assert n.status()["delivered"] == 1


def test_permanent_failure_dead_at_once_other_channels_unaffected(tmp_path: Path) -> None:
    clock = Clock()
    n, chans = make(FileLog(tmp_path / "o.jsonl"), clock, ("telegram", "slack"))
    chans["telegram"].script = [Outcome(FAIL, None, "HTTP 401 Unauthorized")]
    n.enqueue("kill_switch", 0, "p", "x", 1)
    steps(n)
    assert [d["channel"] for d in n.dead_letters()] == ["telegram"] and len(chans["slack"].got) == 1


def test_compaction_keeps_state_and_bounds_file(tmp_path: Path) -> None:
    clock, path = Clock(), tmp_path / "o.jsonl"
    n, chans = make(FileLog(path, max_bytes=20_000), clock, ("slack", "email"))
    chans["email"].default = RETRY
    for i in range(300):
        n.enqueue("feed_stale", 1 if i % 2 else 0, f"k{i}", "x" * 50, i)
        steps(n)
    assert path.stat().st_size < 60_000  # 300 alerts + 600 deliveries would be ~150 kB uncompacted
    before = n.status()
    n.outbox.log.close()
    n2, chans2 = make(FileLog(path), clock, ("slack", "email"))
    after = n2.status()
    assert after["undelivered"] == before["undelivered"] and before["undelivered"]["email"] == 150
    clock.ns += 100 * S
    steps(n2)
    assert chans2["slack"].got == [] and len(chans2["email"].got) == 150


def test_redis_stream_backend_survives_restart() -> None:
    redis = pytest.importorskip("redis")
    try:
        redis.Redis(socket_timeout=1).ping()
    except redis.exceptions.ConnectionError:
        pytest.skip("no Redis on 127.0.0.1:6379")
    key, clock = f"test:alerts:{uuid.uuid4().hex}", Clock()
    try:
        n, _ = make(RedisLog("redis://127.0.0.1:6379/0", key), clock, ("slack",))
        n.enqueue("kill_switch", 0, "p", "to redis", 1)
        n2, chans = make(RedisLog("redis://127.0.0.1:6379/0", key), clock, ("slack",))
        steps(n2)
        n3, chans3 = make(RedisLog("redis://127.0.0.1:6379/0", key), clock, ("slack",))
        steps(n3)
        assert [x.text for x in chans["slack"].got] == ["p: to redis"] and chans3["slack"].got == []
    finally:
        redis.Redis().delete(key)


def test_one_outbox_one_dispatcher(tmp_path: Path) -> None:
    log = FileLog(tmp_path / "o.jsonl")
    with pytest.raises(RuntimeError, match="in use"):
        FileLog(tmp_path / "o.jsonl")
    log.close()
    FileLog(tmp_path / "o.jsonl").close()


def test_no_channel_configured_is_log_only(tmp_path: Path) -> None:
    from arbitrage_lite.actors.alert import AlertActor

    actor = AlertActor("quiet", None, None, AlertsConfig(queue=QueueConfig(path=str(tmp_path / "o.jsonl"))))
    assert actor.raise_alert("kill_switch", "p", "x", 1) and actor.delivery() == {}
    assert not (tmp_path / "o.jsonl").exists()


class _BrokenLog:
    def append(self, rec: dict[str, Any]) -> None:
        raise OSError(28, "No space left on device")

    def replay(self) -> Any:
        yield {"op": "done", "n": 7, "ch": "slack", "at": 1}  # refers to a notice the log does not hold

    def rewrite(self, recs: list[dict[str, Any]]) -> None:
        raise OSError(28, "No space left on device")

    def too_big(self) -> bool:
        return False

    def close(self) -> None:
        pass


def test_a_broken_outbox_never_raises_into_the_raiser(tmp_path: Path) -> None:
    n, _ = make(_BrokenLog(), Clock(), ("slack",))
    assert n.outbox.skipped == 1
    assert n.enqueue("kill_switch", 0, "p", "x", 1) is False


def test_outbox_in_use_leaves_the_alert_actor_log_only(tmp_path: Path) -> None:
    from arbitrage_lite.actors.alert import AlertActor

    held = FileLog(tmp_path / "o.jsonl")
    cfg = AlertsConfig.model_validate({"webhook": {"url": "http://127.0.0.1:9/h"},
                                       "queue": {"path": str(tmp_path / "o.jsonl")}})
    actor = AlertActor("second", None, None, cfg)
    assert actor.raise_alert("kill_switch", "p", "x", 1) and actor.delivery() == {}
    held.close()
