"""The alert outbox: a durable log of what was raised and what each channel has taken.

Every change is one record appended to a log (a JSONL file, fsync'd, or a Redis stream) before it counts; the
state is the log replayed, so a process that dies anywhere restarts with every undelivered alert and every
per-channel delivery state (delivered / retry at / dead) it had. Delivery is at least once per channel: a
crash between a channel's answer and the ``done`` record resends that one notice (the webhook carries an
idempotency key for it). The log is compacted (state rewritten, atomically) when it grows past a bound.

Records: ``alert`` (raw, waiting to be composed), ``fold`` (an alert past ``max_pending`` counted into its
rule's newest pending one), ``notice`` (pending alerts of one rule composed into one message for some
channels), ``retry`` / ``done`` / ``dead`` (one channel's delivery of one notice), ``dedup`` / ``seq`` /
``last`` (compaction's carry-over of the de-duplication memory, id counters and per-rule throttle times).
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from loguru import logger


class RecordLog(Protocol):
    def append(self, rec: dict[str, Any]) -> None: ...
    def replay(self) -> Iterator[dict[str, Any]]: ...
    def rewrite(self, recs: list[dict[str, Any]]) -> None: ...
    def too_big(self) -> bool: ...
    def close(self) -> None: ...


class FileLog:
    """Append-only JSONL; a torn last line (a crash mid-write) is cut off at open."""

    def __init__(self, path: str | Path, *, fsync: bool = True, max_bytes: int = 8 << 20) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fsync, self._max = fsync, max_bytes
        self._lock = open(self.path.with_suffix(self.path.suffix + ".lock"), "ab")  # noqa: SIM115
        try:  # two dispatchers on one outbox would both send, and interleave their records
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise RuntimeError(f"alert outbox {self.path} is in use by another process "
                               "(give each engine its own alerts.queue.path)") from None
        self._good = self._scan_end()
        with open(self.path, "ab") as f:
            f.truncate(self._good)
        self._f = open(self.path, "ab")  # noqa: SIM115 - held open for appends

    def _scan_end(self) -> int:
        """Offset just past the last complete, parseable record."""
        if not self.path.exists():
            return 0
        good = 0
        with open(self.path, "rb") as f:
            for line in f:
                if not line.endswith(b"\n"):
                    break
                try:
                    json.loads(line)
                except ValueError:
                    break
                good += len(line)
        return good

    def append(self, rec: dict[str, Any]) -> None:
        self._f.write(json.dumps(rec, separators=(",", ":")).encode() + b"\n")
        self._f.flush()
        if self._fsync:
            os.fsync(self._f.fileno())

    def replay(self) -> Iterator[dict[str, Any]]:
        with open(self.path, "rb") as f:
            data = f.read(self._good)
        for line in data.splitlines():
            yield json.loads(line)

    def rewrite(self, recs: list[dict[str, Any]]) -> None:
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        with open(tmp, "wb") as f:
            for rec in recs:
                f.write(json.dumps(rec, separators=(",", ":")).encode() + b"\n")
            f.flush()
            os.fsync(f.fileno())
        self._f.close()
        os.replace(tmp, self.path)
        dfd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
        self._f = open(self.path, "ab")  # noqa: SIM115
        self._good = self.path.stat().st_size

    def too_big(self) -> bool:
        return self._f.tell() > self._max

    def close(self) -> None:
        self._f.close()
        self._lock.close()  # releases the flock


class RedisLog:
    """The same records in a Redis stream (as durable as the server's persistence settings make it)."""

    def __init__(self, url: str, key: str, *, max_records: int = 100_000) -> None:
        import redis

        self._r = redis.Redis.from_url(url, socket_timeout=2.0)
        self._key, self._max = key, max_records

    def append(self, rec: dict[str, Any]) -> None:
        self._r.xadd(self._key, {"r": json.dumps(rec, separators=(",", ":"))})

    def replay(self) -> Iterator[dict[str, Any]]:
        last = "-"
        while True:
            batch: Any = self._r.xrange(self._key, min=last, max="+", count=1000)
            rows = [row for row in batch if last == "-" or row[0] != last.encode()]
            for _, fields in rows:
                yield json.loads(fields[b"r"])
            if len(batch) < 1000:
                return
            last = batch[-1][0].decode()

    def rewrite(self, recs: list[dict[str, Any]]) -> None:
        pipe = self._r.pipeline(transaction=True)
        pipe.delete(self._key)
        for rec in recs:
            pipe.xadd(self._key, {"r": json.dumps(rec, separators=(",", ":"))})
        pipe.execute()

    def too_big(self) -> bool:
        return int(self._r.xlen(self._key)) > self._max

    def close(self) -> None:
        self._r.close()


@dataclass
class Pending:
    id: int
    rule: str
    sev: int
    key: str
    msg: str
    ns: int  # the alert's own time
    at: int  # when it was queued (wall clock): the aggregation window runs on this
    count: int = 1
    last_key: str = ""
    last_msg: str = ""
    last_ns: int = 0


@dataclass
class Delivery:
    attempts: int = 0
    next_at: int = 0
    detail: str = ""


@dataclass
class LiveNotice:
    rec: dict[str, Any]  # the notice record (id, rule, sev, key, text, count, first_ns, last_ns, at)
    channels: dict[str, Delivery] = field(default_factory=dict)


class Outbox:
    """The replayed state plus the log it comes from. Not thread-safe: the caller holds one lock."""

    def __init__(self, log: RecordLog, *, max_pending: int = 10_000, max_dead: int = 1_000) -> None:
        self.log, self.max_pending, self.max_dead = log, max_pending, max_dead
        self.pending: dict[int, Pending] = {}
        self.notices: dict[int, LiveNotice] = {}
        self.dead: list[dict[str, Any]] = []
        self.dedup: dict[str, int] = {}  # rule|key -> when last queued
        self.last_notice: dict[str, int] = {}  # rule -> when its last notice was composed
        self.next_alert, self.next_notice = 1, 1
        self.stats = {"queued": 0, "deduplicated": 0, "folded": 0, "composed": 0, "delivered": 0,
                      "retried": 0, "dead": 0}
        self.skipped = 0  # records that did not apply on replay (logged): a bad record must not stop the engine
        for rec in log.replay():
            try:
                self._apply(rec)
            except (KeyError, TypeError, ValueError) as exc:
                self.skipped += 1
                logger.error("alert outbox: record {} skipped on replay ({})", rec.get("op"), type(exc).__name__)

    # ---- replay -------------------------------------------------------------------------------------------
    def _apply(self, rec: dict[str, Any]) -> None:
        op = rec["op"]
        if op == "alert":
            self.pending[rec["id"]] = Pending(rec["id"], rec["rule"], rec["sev"], rec["key"], rec["msg"],
                                              rec["ns"], rec["at"], rec.get("count", 1), rec.get("lkey", ""),
                                              rec.get("lmsg", ""), rec.get("lns", 0))
            self.dedup[f"{rec['rule']}|{rec['key']}"] = rec["at"]
            self.next_alert = max(self.next_alert, rec["id"] + 1)
        elif op == "fold":
            p = self.pending[rec["id"]]
            p.count, p.last_key, p.last_msg, p.last_ns = p.count + 1, rec["key"], rec["msg"], rec["ns"]
        elif op == "notice":
            for aid in rec["alerts"]:
                self.pending.pop(aid, None)
            if rec["channels"]:  # routed nowhere (the config changed since it was queued): logged only
                self.notices[rec["id"]] = LiveNotice(rec, {c: Delivery(0, rec["at"]) for c in rec["channels"]})
            self.last_notice[rec["rule"]] = rec["at"]
            self.next_notice = max(self.next_notice, rec["id"] + 1)
        elif op == "retry":
            self.notices[rec["n"]].channels[rec["ch"]] = Delivery(rec["attempts"], rec["next_at"], rec["detail"])
        elif op in ("done", "dead"):
            live = self.notices[rec["n"]]
            live.channels.pop(rec["ch"], None)
            if op == "dead":
                self.dead.append({**{k: live.rec[k] for k in ("id", "rule", "sev", "key", "text", "count")},
                                  "channel": rec["ch"], "reason": rec["reason"], "at": rec["at"]})
                del self.dead[: max(0, len(self.dead) - self.max_dead)]
            if not live.channels:
                del self.notices[rec["n"]]
        elif op == "dedup":
            self.dedup[rec["k"]] = rec["at"]
        elif op == "last":
            self.last_notice[rec["rule"]] = rec["at"]
        elif op == "seq":
            self.next_alert, self.next_notice = rec["alert"], rec["notice"]
        elif op == "deadrec":
            self.dead.append(rec["d"])

    def _record(self, rec: dict[str, Any]) -> None:
        self.log.append(rec)  # durable first, then it counts
        self._apply(rec)

    # ---- writes -------------------------------------------------------------------------------------------
    def add(self, rule: str, sev: int, key: str, msg: str, ns: int, at: int, dedup_ns: int) -> bool:
        """Queue one alert; False when it duplicates one queued within ``dedup_ns`` (same rule and subject)."""
        k = f"{rule}|{key}"
        seen = self.dedup.get(k)
        if seen is not None and at - seen < dedup_ns:
            self.stats["deduplicated"] += 1
            return False
        if len(self.pending) >= self.max_pending:
            newest = max((p for p in self.pending.values() if p.rule == rule), key=lambda p: p.id, default=None)
            if newest is not None:
                self._record({"op": "fold", "id": newest.id, "key": key, "msg": msg, "ns": ns})
                self.dedup[k] = at
                self.stats["folded"] += 1
                return True
        self._record({"op": "alert", "id": self.next_alert, "rule": rule, "sev": sev, "key": key, "msg": msg,
                      "ns": ns, "at": at})
        self.stats["queued"] += 1
        return True

    def compose(self, rule: str, channels: list[str], at: int) -> LiveNotice | None:
        """All pending alerts of ``rule`` as one notice for ``channels`` (none routed: dropped as delivered)."""
        group = sorted((p for p in self.pending.values() if p.rule == rule), key=lambda p: p.id)
        if not group:
            return None
        first, last = group[0], group[-1]
        count = sum(p.count for p in group)
        last_key, last_msg, last_ns = ((last.last_key, last.last_msg, last.last_ns) if last.count > 1
                                       else (last.key, last.msg, last.ns))
        if count == 1:
            text = f"{first.key}: {first.msg}"
        else:
            keys = sorted({p.key for p in group} | {p.last_key for p in group if p.last_key})
            text = (f"{rule} x {count} ({len(keys)} subjects)\nfirst {first.key}: {first.msg}\n"
                    f"last {last_key}: {last_msg}")
        nid = self.next_notice
        rec = {"op": "notice", "id": nid, "alerts": [p.id for p in group], "rule": rule,
               "sev": min(p.sev for p in group), "key": first.key if count == 1 else f"{count} alerts",
               "text": text, "count": count, "first_ns": first.ns, "last_ns": max(last_ns, first.ns),
               "channels": channels, "at": at}
        self._record(rec)
        self.stats["composed"] += 1
        return self.notices.get(nid)

    def delivered(self, nid: int, ch: str, at: int) -> None:
        self._record({"op": "done", "n": nid, "ch": ch, "at": at})
        self.stats["delivered"] += 1

    def retry(self, nid: int, ch: str, attempts: int, next_at: int, detail: str) -> None:
        self._record({"op": "retry", "n": nid, "ch": ch, "attempts": attempts, "next_at": next_at,
                      "detail": detail})
        self.stats["retried"] += 1

    def kill(self, nid: int, ch: str, reason: str, at: int) -> None:
        self._record({"op": "dead", "n": nid, "ch": ch, "reason": reason, "at": at})
        self.stats["dead"] += 1
        logger.error("alert notice {} to {} dead-lettered: {}", nid, ch, reason)

    def requeue_dead(self, at: int) -> int:
        """Dead letters back into delivery (after the operator fixed the channel); returns how many."""
        dead, self.dead = self.dead, []
        for d in dead:
            nid = self.next_notice
            self._record({"op": "notice", "id": nid, "alerts": [], "rule": d["rule"], "sev": d["sev"],
                          "key": d["key"], "text": d["text"], "count": d["count"], "first_ns": 0, "last_ns": 0,
                          "channels": [d["channel"]], "at": at})
        self.compact(at, force=True)
        return len(dead)

    # ---- compaction ---------------------------------------------------------------------------------------
    def snapshot_records(self, now: int, dedup_ns: int) -> list[dict[str, Any]]:
        recs: list[dict[str, Any]] = [{"op": "seq", "alert": self.next_alert, "notice": self.next_notice}]
        recs += [{"op": "dedup", "k": k, "at": t} for k, t in self.dedup.items() if now - t < dedup_ns]
        for p in sorted(self.pending.values(), key=lambda p: p.id):
            recs.append({"op": "alert", "id": p.id, "rule": p.rule, "sev": p.sev, "key": p.key, "msg": p.msg,
                         "ns": p.ns, "at": p.at, "count": p.count, "lkey": p.last_key, "lmsg": p.last_msg,
                         "lns": p.last_ns})
        for live in self.notices.values():
            recs.append({**live.rec, "alerts": [], "channels": list(live.channels)})
            recs += [{"op": "retry", "n": live.rec["id"], "ch": c, "attempts": d.attempts, "next_at": d.next_at,
                      "detail": d.detail} for c, d in live.channels.items() if d.attempts]
        recs += [{"op": "deadrec", "d": d} for d in self.dead]
        # after the notices: a replayed notice sets its rule's time, the newest must win
        recs += [{"op": "last", "rule": r, "at": t} for r, t in self.last_notice.items()]
        return recs

    def compact(self, now: int, dedup_ns: int = 0, *, force: bool = False) -> bool:
        if not force and not self.log.too_big():
            return False
        self.log.rewrite(self.snapshot_records(now, dedup_ns))
        return True

    def due(self, now: int) -> Iterable[tuple[LiveNotice, str, Delivery]]:
        for live in list(self.notices.values()):
            for ch, d in list(live.channels.items()):
                if d.next_at <= now:
                    yield live, ch, d
