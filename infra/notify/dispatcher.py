"""The alert dispatcher: off the trading path, out of the outbox, into the channels.

``enqueue`` is all a raiser pays: a routing lookup, a de-duplication check and one appended (fsync'd) record
under a lock; it never touches a network. A daemon thread runs its own asyncio loop that composes pending
alerts into notices (a burst of one rule becomes one message; a rule messages at most once per throttle
window) and sends each notice to each of its channels, with capped exponential backoff and seeded jitter,
the server's own retry-after honoured, and a dead letter after a permanent failure or ``max_attempts``.
A channel that does not answer is not asked again in the same pass (an outage does not burn every queued
notice's attempts at once), and a channel's retry-after holds all of its notices, as the server asked.
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
from loguru import logger

from ...core.alerts_config import AlertsConfig
from ..venues.secrets import Secret
from .channels import FAIL, OK, Channel, Notice, SlackChannel, TelegramChannel, WebhookChannel
from .email import EmailChannel
from .outbox import Delivery, FileLog, LiveNotice, Outbox, RecordLog, RedisLog

NS = 1_000_000_000


def build_channels(cfg: AlertsConfig, origin: str, env: Mapping[str, str] | None = None) -> dict[str, Channel]:
    """The channels the config turns on whose secrets are present (a missing one is named, never shown)."""
    env = os.environ if env is None else env
    out: dict[str, Channel] = {}
    t = cfg.telegram
    if t.chat_id:
        if env.get(t.token_env):
            out["telegram"] = TelegramChannel(t.api_base, Secret(env[t.token_env]), t.chat_id, cfg.timeout_s)
        else:
            logger.error("alerts.telegram: chat_id set but ${} is empty: channel off", t.token_env)
    if cfg.slack.enabled:
        if env.get(cfg.slack.url_env):
            out["slack"] = SlackChannel(Secret(env[cfg.slack.url_env]), cfg.timeout_s)
        else:
            logger.error("alerts.slack: enabled but ${} is empty: channel off", cfg.slack.url_env)
    if cfg.webhook.url:
        out["webhook"] = WebhookChannel(cfg.webhook.url, cfg.timeout_s, origin)
    e = cfg.email
    if e.host and e.to:
        pw = env.get(e.password_env) if e.username else None
        out["email"] = EmailChannel(e.host, e.port, e.sender, e.to, cfg.timeout_s, starttls=e.starttls,
                                    username=e.username, password=Secret(pw) if pw else None)
    return out


def open_log(cfg: AlertsConfig) -> RecordLog:
    q = cfg.queue
    if q.backend == "redis":
        return RedisLog(q.redis_url, q.redis_key)
    return FileLog(q.path, fsync=q.fsync, max_bytes=q.max_bytes)


class Notifier:
    def __init__(self, cfg: AlertsConfig, channels: Mapping[str, Channel], log: RecordLog, *,
                 clock: Callable[[], int] = time.time_ns) -> None:
        self.cfg, self.channels, self._clock = cfg, dict(channels), clock
        self.outbox = Outbox(log, max_pending=cfg.queue.max_pending, max_dead=cfg.queue.max_dead)
        self._lock = threading.Lock()
        self._rng = random.Random(cfg.seed)
        self._routes = {sev: [c for c in chans if c in self.channels] for sev, chans in cfg.routes().items()}
        self._blocked: dict[str, int] = {}  # channel -> not before (a retry-after covers the whole channel)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- the raiser's side --------------------------------------------------------------------------------
    def routed(self, severity: int) -> list[str]:
        return self._routes.get(severity, self._routes[0])

    def enqueue(self, rule: str, severity: int, key: str, message: str, now_ns: int) -> bool:
        """Queue an alert for its severity's channels; False when none is routed or it is a duplicate."""
        if not self.routed(severity):
            return False
        try:
            with self._lock:
                return self.outbox.add(rule, severity, key, message, now_ns, self._clock(),
                                       int(self.cfg.dedup_s * NS))
        except Exception as exc:  # disk full, Redis gone: say so, never raise into the raiser
            logger.critical("alert outbox write failed ({}): {} {} reached the log only", type(exc).__name__,
                            rule, key)
            return False

    # ---- the dispatcher's side ----------------------------------------------------------------------------
    def _compose_due(self, now: int) -> None:
        agg, thr = int(self.cfg.aggregate_s * NS), int(self.cfg.throttle_s * NS)
        with self._lock:
            first: dict[str, tuple[int, int]] = {}
            for p in self.outbox.pending.values():
                at, sev = first.get(p.rule, (p.at, p.sev))
                first[p.rule] = (min(at, p.at), min(sev, p.sev))
            for rule, (at, sev) in first.items():
                last = self.outbox.last_notice.get(rule)
                if now >= at + agg and (last is None or now >= last + thr):
                    self.outbox.compose(rule, self.routed(sev), now)
            self.outbox.compact(now, int(self.cfg.dedup_s * NS))

    def _backoff_ns(self, attempts: int) -> int:
        c = self.cfg
        delay = min(c.retry_cap_s, c.retry_base_s * 2 ** (attempts - 1)) * (1 + c.retry_jitter * self._rng.random())
        return int(delay * NS)

    def _settle(self, live: LiveNotice, ch: str, d: Delivery, kind: str, after_s: float | None,
                detail: str) -> bool:
        """Record one attempt's outcome; True when the channel should not be asked again this pass."""
        nid, now = live.rec["id"], self._clock()
        with self._lock:
            if kind == OK:
                self.outbox.delivered(nid, ch, now)
                return False
            attempts = d.attempts + 1
            if kind == FAIL or attempts >= self.cfg.max_attempts:
                self.outbox.kill(nid, ch, detail if kind == FAIL else f"{attempts} attempts, last: {detail}", now)
                return False
            wait = int(after_s * NS) if after_s is not None else self._backoff_ns(attempts)
            if after_s is not None:
                self._blocked[ch] = now + wait
            self.outbox.retry(nid, ch, attempts, now + wait, detail)
            return True

    async def _drain_channel(self, session: aiohttp.ClientSession, ch: str,
                             work: list[tuple[LiveNotice, Delivery]]) -> None:
        channel = self.channels.get(ch)
        for live, d in sorted(work, key=lambda w: w[0].rec["id"]):
            if self._stop.is_set():
                return
            if channel is None:  # routed when the notice was composed, not configured now
                self._settle(live, ch, d, FAIL, None, f"channel {ch} not configured")
                continue
            r = live.rec
            notice = Notice(r["id"], r["rule"], r["sev"], r["key"], r["text"], r["count"], r["first_ns"],
                            r["last_ns"])
            out = await channel.send(session, notice)
            if self._settle(live, ch, d, out.kind, out.retry_after_s, out.detail):
                return

    async def step(self, session: aiohttp.ClientSession) -> None:
        """One pass: compose what is due, then every channel sends its due notices (channels in parallel)."""
        now = self._clock()
        self._compose_due(now)
        by_channel: dict[str, list[tuple[LiveNotice, Delivery]]] = {}
        with self._lock:
            for live, ch, d in self.outbox.due(now):
                if self._blocked.get(ch, 0) <= now:
                    by_channel.setdefault(ch, []).append((live, d))
        await asyncio.gather(*(self._drain_channel(session, ch, w) for ch, w in by_channel.items()))

    async def run(self) -> None:
        async with aiohttp.ClientSession() as session:
            while not self._stop.is_set():
                try:
                    await self.step(session)
                except Exception:  # a bug in one pass must not end delivery; the outbox keeps the work
                    logger.exception("alert dispatcher pass failed")
                await asyncio.sleep(self.cfg.poll_s)

    def start(self) -> None:
        self._thread = threading.Thread(target=lambda: asyncio.run(self.run()), name="alert-dispatch", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        with self._lock:
            self.outbox.log.close()

    # ---- what an operator sees ----------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        with self._lock:
            ob = self.outbox
            waiting = {c: sum(c in n.channels for n in ob.notices.values()) for c in self.channels}
            return {"channels": sorted(self.channels), "pending_alerts": len(ob.pending),
                    "undelivered": waiting, "dead": len(ob.dead), **ob.stats}

    def dead_letters(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.outbox.dead)

    def requeue_dead(self) -> int:
        with self._lock:
            return self.outbox.requeue_dead(self._clock())


def build_notifier(cfg: AlertsConfig, origin: str, env: Mapping[str, str] | None = None) -> Notifier | None:
    """A started-ready Notifier, or None when no channel is configured (alerts then go to the log only)."""
    channels = build_channels(cfg, origin, env)
    if not channels:
        return None
    return Notifier(cfg, channels, open_log(cfg))
