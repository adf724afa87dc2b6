"""Health (``/healthz``) and readiness (``/readyz``) of a running engine, judged from what it already reports.

Liveness answers "is the process and its event loop answering?" (a supervisor restarts it when not);
readiness answers "may this process trade now?" (an orchestrator or operator waits for it after a start or
an upgrade). Both are served on the loopback surfaces that exist (the live control server, the paper metrics
exporter) without the control token, so they must say nothing secret: only feed, route and mode names,
counts and ages. The verdicts are pure functions of the status dicts, so they are tested without a server.

Live readiness (from the live host's ``status()``): every feed connected and delivering (its message count
moved within ``max_feed_silence_s``, as seen by successive probes), an FX rate present (and fresh when the
status reports its age), the first reconciliation pass done and no route held by it, risk not halted or
paused, no route missing a premium (its books never both arrived). Paper readiness: the actor system reports
(the metrics relay updated recently) and no actor has missed its pings.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

MAX_FEED_SILENCE_S = 10.0  # a venue feed with no message for this long is not fresh (books update every 100 ms)
MAX_FX_AGE_S = 120.0  # when the status carries the FX age: older is not fresh (docs/runbook.md fx_stale)
RELAY_STALL_S = 30.0  # paper: the metrics relay silent this long after it started = the driver loop is stuck


@dataclass
class FeedFreshness:
    """When each venue's message count last moved, as seen by the probes (the host reports counts, not times)."""

    clock: Callable[[], float] = time.monotonic
    _seen: dict[str, tuple[int, float]] = field(default_factory=dict)

    def observe(self, feeds: Mapping[str, Mapping[str, Any]]) -> dict[str, float | None]:
        """Seconds since each feed's count last moved; None for a feed that has delivered nothing yet."""
        now, out = self.clock(), {}
        for venue, f in feeds.items():
            n = int(f.get("books", 0)) + int(f.get("deltas", 0))
            last = self._seen.get(venue)
            if n > 0 and (last is None or n != last[0]):
                self._seen[venue] = (n, now)
            out[venue] = None if n == 0 else now - self._seen[venue][1]
        return out


def live_reasons(status: Mapping[str, Any], ages: Mapping[str, float | None], *,
                 max_feed_silence_s: float = MAX_FEED_SILENCE_S, max_fx_age_s: float = MAX_FX_AGE_S) -> list[str]:
    """Why the live host may not trade now (empty: ready). ``ages``: FeedFreshness.observe of the same status."""
    reasons = []
    for venue, age in sorted(ages.items()):
        if age is None:
            reasons.append(f"feed {venue}: no message yet")
        elif age > max_feed_silence_s:
            reasons.append(f"feed {venue}: no message for {age:.0f} s")
    if not ages:
        reasons.append("no feed reported")
    fx, fx_age = status.get("fx"), status.get("fx_age_s")
    if fx is None or (isinstance(fx, float) and not math.isfinite(fx)):
        reasons.append("fx: no USDT/KRW rate yet")
    elif fx_age is not None and float(fx_age) > max_fx_age_s:
        reasons.append(f"fx: rate is {float(fx_age):.0f} s old")
    rec = status.get("reconciliation")
    if rec is not None:
        if not rec.get("clean_passes"):
            reasons.append(f"reconciliation: no clean pass yet ({rec.get('passes', 0)} passes)")
        if rec.get("held"):
            reasons.append(f"reconciliation holds {', '.join(rec['held'])}")
    mode = str((status.get("risk") or {}).get("mode") or "")
    if mode in ("halted", "paused"):
        reasons.append(f"risk: {mode}")
    waiting = sorted(r for r, v in (status.get("routes") or {}).items() if not _number(v.get("premium_bps")))
    if waiting:
        reasons.append(f"routes without a premium yet (books missing): {', '.join(waiting)}")
    errors = status.get("errors") or []
    if errors:
        reasons.append(f"host errors: {len(errors)}")
    return reasons


def _number(x: Any) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


def paper_reasons(updated_age_s: float | None, health: Mapping[str, Any] | None) -> list[str]:
    """Why a paper run is not ready: the actor system has not reported (recently), or actors miss pings."""
    if updated_age_s is None:
        return ["starting: the actor system has not reported yet"]
    reasons = []
    if updated_age_s > RELAY_STALL_S:
        reasons.append(f"the actor system has not reported for {updated_age_s:.0f} s")
    if health is None or not health.get("watching"):
        reasons.append("starting: the actors are not watched yet")
    elif health.get("silent"):
        reasons.append(f"actors not answering: {', '.join(health['silent'])}")
    return reasons


def paper_alive(updated_age_s: float | None) -> list[str]:
    """Liveness of a paper driver: alive while starting; once the relay ran, it must keep running."""
    if updated_age_s is not None and updated_age_s > RELAY_STALL_S:
        return [f"the driver's metrics relay has not run for {updated_age_s:.0f} s (event loop stuck?)"]
    return []


def verdict(reasons: list[str], **extra: Any) -> tuple[int, dict[str, Any]]:
    """(HTTP status, body): 200 and ok, or 503 with the reasons."""
    body = {"ok": not reasons, "reasons": reasons} | extra
    return (200 if not reasons else 503), body
