"""Each alert channel against a local server speaking its protocol: delivered, the server's retry-after
honoured, 5xx / 4xx-transient retried, a permanent refusal dead-lettered, and no secret ever written down."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from notify_servers import TELEGRAM_OK, HttpServer, Reply, SmtpServer, poll, telegram_429

from arbitrage_lite.core.alerts_config import (
    AlertsConfig,
    EmailConfig,
    QueueConfig,
    SlackConfig,
    TelegramConfig,
    WebhookConfig,
)
from arbitrage_lite.infra.notify import Notifier, build_channels
from arbitrage_lite.infra.notify.channels import FAIL, OK, RETRY, classify_slack, classify_telegram
from arbitrage_lite.infra.notify.outbox import FileLog

TOKEN = "123456:AAE-super-secret-token"
SLACK_PATH = "/services/T000/B000/hook-secret-part"


def fast(**kw: Any) -> dict[str, Any]:
    return {"aggregate_s": 0, "throttle_s": 0, "dedup_s": 0, "retry_base_s": 0.05, "retry_cap_s": 0.2,
            "retry_jitter": 0, "poll_s": 0.01, "timeout_s": 2, **kw}


@pytest.fixture
def started() -> Iterator[list[Any]]:
    things: list[Any] = []
    yield things
    for t in reversed(things):
        t.stop()


def notifier(tmp_path: Path, started: list[Any], route: tuple[str, ...], env: dict[str, str] | None = None,
             **cfg: Any) -> Notifier:
    c = AlertsConfig(queue=QueueConfig(path=str(tmp_path / "outbox.jsonl")), route_p0=route, **fast(**cfg))
    n = Notifier(c, build_channels(c, "test", env or {}), FileLog(c.queue.path))
    n.start()
    started.append(n)
    return n


def server(started: list[Any], default: Reply) -> HttpServer:
    s = HttpServer(default).start()
    started.insert(0, s)  # stopped after the notifier
    return s


def test_telegram_delivered_and_429_retry_after_honoured(tmp_path: Path, started: list[Any]) -> None:
    tg = server(started, TELEGRAM_OK)
    tg.script = [telegram_429(1)]
    n = notifier(tmp_path, started, ("telegram",), {"ARBITRAGE_TELEGRAM_TOKEN": TOKEN},
                 telegram=TelegramConfig(chat_id="-100200", api_base=tg.base))
    assert n.enqueue("kill_switch", 0, "portfolio", "daily loss limit hit", 1)
    poll(lambda: n.status()["delivered"] == 1, "telegram delivery")
    (p1, _, _, t1), (p2, _, b2, t2) = tg.requests
    assert p1 == p2 == f"/bot{TOKEN}/sendMessage"
    assert b2["chat_id"] == "-100200" and "kill_switch" in b2["text"] and "daily loss limit hit" in b2["text"]
    assert t2 - t1 >= 1.0  # retry_after 1 s honoured, not the 0.05 s backoff
    assert n.status()["retried"] == 1 and n.dead_letters() == []


def test_telegram_permanent_error_dead_lettered_secret_never_written(tmp_path: Path, started: list[Any]) -> None:
    tg = server(started, Reply(400, {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}))
    n = notifier(tmp_path, started, ("telegram",), {"ARBITRAGE_TELEGRAM_TOKEN": TOKEN},
                 telegram=TelegramConfig(chat_id="nope", api_base=tg.base))
    n.enqueue("one_leg_unhedged", 0, "KRW-BTC", "binance leg not filled", 1)
    poll(lambda: len(n.dead_letters()) == 1, "dead letter")
    dead = n.dead_letters()[0]
    assert len(tg.requests) == 1 and dead["channel"] == "telegram" and "chat not found" in dead["reason"]
    everything = (tmp_path / "outbox.jsonl").read_text() + repr(n.status()) + repr(n.dead_letters())
    assert TOKEN not in everything and "super-secret" not in everything


def test_slack_retry_after_header_5xx_retried_and_invalid_payload_permanent(tmp_path: Path,
                                                                            started: list[Any]) -> None:
    sl = server(started, Reply(200, "ok"))
    sl.script = [Reply(429, "rate_limited", {"Retry-After": "1"}), Reply(503, "service unavailable")]
    n = notifier(tmp_path, started, ("slack",), {"ARBITRAGE_SLACK_WEBHOOK_URL": sl.base + SLACK_PATH},
                 slack=SlackConfig(enabled=True))
    n.enqueue("reconcile_mismatch", 0, "KRW-ETH", "upbit balance differs by 0.5 ETH", 1)
    poll(lambda: n.status()["delivered"] == 1, "slack delivery")
    times = [r[3] for r in sl.requests]
    assert len(times) == 3 and times[1] - times[0] >= 1.0  # 429 waited its Retry-After, then 503 retried
    assert sl.requests[0][0] == SLACK_PATH and "reconcile_mismatch" in sl.requests[0][2]["text"]
    sl.script = [Reply(400, "invalid_payload")]
    n.enqueue("kill_switch", 0, "portfolio", "halt", 2)
    poll(lambda: len(n.dead_letters()) == 1, "dead letter")
    assert len(sl.requests) == 4 and "invalid_payload" in n.dead_letters()[0]["reason"]
    assert "hook-secret-part" not in (tmp_path / "outbox.jsonl").read_text() + repr(n.dead_letters())


def test_webhook_5xx_retried_404_dead_idempotency_key(tmp_path: Path, started: list[Any]) -> None:
    wh = server(started, Reply(204, ""))
    wh.script = [Reply(500, "boom"), Reply(502, "bad gateway")]
    n = notifier(tmp_path, started, ("webhook",), webhook=WebhookConfig(url=wh.base + "/hook"))
    n.enqueue("journal_down", 0, "journal", "postgres unreachable", 7)
    poll(lambda: n.status()["delivered"] == 1, "webhook delivery")
    keys = {r[1]["Idempotency-Key"] for r in wh.requests}
    assert len(wh.requests) == 3 and len(keys) == 1  # the same notice thrice, one key
    body = wh.requests[-1][2]
    assert body["rule"] == "journal_down" and body["severity"] == "P0" and body["count"] == 1
    wh.script = [Reply(404, "no such hook")]
    n.enqueue("kill_switch", 0, "x", "y", 8)
    poll(lambda: len(n.dead_letters()) == 1, "dead letter")
    assert len(wh.requests) == 4


def test_email_delivered_451_retried_550_dead(tmp_path: Path, started: list[Any]) -> None:
    smtp = SmtpServer().start()
    started.insert(0, smtp)
    smtp.script = ["451 4.3.0 try again later"]
    n = notifier(tmp_path, started, ("email",), email=EmailConfig(host="127.0.0.1", port=smtp.port,
                                                                   starttls=False, to=("ops@example.com",)))
    n.enqueue("daily_loss_limit", 0, "portfolio", "loss 1,000,000 KRW >= limit", 1)
    poll(lambda: n.status()["delivered"] == 1, "email delivery")
    assert smtp.attempts == 2 and len(smtp.messages) == 1
    _, rcpts, content = smtp.messages[0]
    assert rcpts == ["ops@example.com"] and "daily_loss_limit" in content and "loss 1,000,000 KRW" in content
    smtp.script = ["550 5.1.1 mailbox unavailable"]
    n.enqueue("kill_switch", 0, "x", "y", 2)
    poll(lambda: len(n.dead_letters()) == 1, "dead letter")
    assert smtp.attempts == 3 and "550" in n.dead_letters()[0]["reason"]


def test_channel_down_then_up_delivers(tmp_path: Path, started: list[Any]) -> None:
    wh = HttpServer(Reply(200, "ok"))  # not started: connection refused
    n = notifier(tmp_path, started, ("webhook",), webhook=WebhookConfig(url=wh.base + "/hook"))
    n.enqueue("feed_down", 0, "upbit", "no message for 30 s", 1)
    poll(lambda: n.status()["retried"] >= 3, "retries while down")
    assert n.status()["delivered"] == 0 and n.dead_letters() == []
    started.insert(0, wh.start())
    poll(lambda: n.status()["delivered"] == 1, "delivery once up")
    assert len(wh.requests) == 1


def test_classifiers() -> None:
    assert classify_telegram(200, {"ok": True}).kind == OK
    r = classify_telegram(429, {"ok": False, "error_code": 429, "parameters": {"retry_after": 7}})
    assert (r.kind, r.retry_after_s) == (RETRY, 7.0)
    assert classify_telegram(403, {"ok": False, "error_code": 403, "description": "bot was blocked"}).kind == FAIL
    assert classify_telegram(502, None).kind == RETRY
    assert classify_slack(200, "ok", None).kind == OK
    assert classify_slack(404, "no_service", None).kind == FAIL
    assert classify_slack(410, "channel_is_archived", None).kind == FAIL
    r = classify_slack(429, "rate_limited", "30")
    assert (r.kind, r.retry_after_s) == (RETRY, 30.0)
    assert classify_slack(500, "", None).kind == RETRY


def test_missing_secret_turns_channel_off_without_showing_anything() -> None:
    c = AlertsConfig(telegram=TelegramConfig(chat_id="1"), slack=SlackConfig(enabled=True))
    assert build_channels(c, "t", {}) == {}
    got = build_channels(c, "t", {"ARBITRAGE_TELEGRAM_TOKEN": TOKEN})
    assert list(got) == ["telegram"] and TOKEN not in repr(vars(got["telegram"]))


def test_telegram_long_message_cut_to_the_api_limit(tmp_path: Path, started: list[Any]) -> None:
    tg = server(started, TELEGRAM_OK)
    n = notifier(tmp_path, started, ("telegram",), {"ARBITRAGE_TELEGRAM_TOKEN": TOKEN},
                 telegram=TelegramConfig(chat_id="1", api_base=tg.base))
    n.enqueue("reconcile_mismatch", 0, "KRW-BTC", "x" * 10_000, 1)
    poll(lambda: n.status()["delivered"] == 1, "delivery")
    text = tg.requests[0][2]["text"]
    assert len(text) <= 4096 and text.endswith("(cut)")
