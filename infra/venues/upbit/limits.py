"""Upbit rate limits (brief §A6) as a pure state machine: per-group budgets, ``Remaining-Req``, 429 then 418.

Every limit is per second per group. The limiter counts what we sent in the current second, and believes the
venue's ``Remaining-Req: group=..; min=..; sec=N`` over its own count (``min`` is deprecated: ignored). A 429
closes the group until the next second and then backs off (doubling per repeated 429), so we never keep
sending into a 429: that is what earns a 418 ban. A 418 closes every group for the ban duration: the
``Retry-After`` header if sent, else a seconds figure in the body, else a default that doubles on repeat
(the 418 body's shape is unconfirmed, brief §A6 (U)). Time is passed in (ns); nothing here sleeps.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

SECOND = 1_000_000_000
# group -> requests per second; "order" was raised from 8 to 12 at 2026-08-21 21:00 KST (12:00 UTC)
LIMITS = {"default": 30, "order": 8, "order-test": 8, "market": 10, "candle": 10, "trade": 10, "ticker": 10,
          "orderbook": 10}
ORDER_12_FROM_NS = 1_787_313_600 * SECOND  # 2026-08-21T12:00:00Z
ORDER_CANCEL_ALL_INTERVAL_NS = 2 * SECOND  # DELETE /orders/open: 1 per 2 s
_REMAINING = re.compile(r"^\s*group=([A-Za-z0-9_-]{1,32})\s*;\s*min=(\d{1,9})\s*;\s*sec=(\d{1,9})\s*$")
_BAN_SECONDS = re.compile(r"(\d{1,6})\s*(?:s\b|sec|second|초)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class RemainingReq:
    group: str
    sec: int  # requests left in the current second
    min: int  # deprecated by Upbit; kept for the record only


def parse_remaining_req(header: str | None) -> RemainingReq | None:
    """``group=order; min=..; sec=..`` -> RemainingReq, or None when absent or malformed."""
    if not header:
        return None
    m = _REMAINING.match(header)
    return RemainingReq(m.group(1), int(m.group(3)), int(m.group(2))) if m else None


def limit_for(group: str, now_ns: int) -> int:
    if group == "order" and now_ns >= ORDER_12_FROM_NS:
        return 12
    return LIMITS.get(group, 10)


def ban_seconds(retry_after: str | None, body: str) -> int | None:
    """The 418 ban duration if the response says it (Retry-After, or 'N sec'/'N초' in the body)."""
    if retry_after and retry_after.strip().isdigit():
        return int(retry_after.strip())
    m = _BAN_SECONDS.search(body[:2000])
    return int(m.group(1)) if m else None


@dataclass
class _Group:
    window_start: int = 0
    sent: int = 0
    venue_left: int | None = None  # Remaining-Req sec for this window
    closed_until: int = 0
    backoff_ns: int = SECOND


@dataclass
class RateLimiter:
    """``wait_ns(group, now)`` before a send (0 = go), ``on_send``, then ``on_response`` with what came back."""

    default_ban_ns: int = 60 * SECOND
    groups: dict[str, _Group] = field(default_factory=dict)
    banned_until: int = 0
    bans: int = 0
    throttles: int = 0

    def _group(self, group: str, now_ns: int) -> _Group:
        g = self.groups.setdefault(group, _Group())
        window = now_ns - now_ns % SECOND
        if g.window_start != window:
            g.window_start, g.sent, g.venue_left = window, 0, None
        return g

    def wait_ns(self, group: str, now_ns: int) -> int:
        """How long to wait before sending in ``group`` (0: send now)."""
        if now_ns < self.banned_until:
            return self.banned_until - now_ns
        g = self._group(group, now_ns)
        if now_ns < g.closed_until:
            return g.closed_until - now_ns
        next_window = g.window_start + SECOND
        if group == "order-cancel-all" and g.sent:
            return max(0, g.window_start + ORDER_CANCEL_ALL_INTERVAL_NS - now_ns)
        if g.sent >= limit_for(group, now_ns) or g.venue_left == 0:
            return next_window - now_ns
        return 0

    def on_send(self, group: str, now_ns: int) -> None:
        self._group(group, now_ns).sent += 1

    def on_response(self, group: str, status: int, now_ns: int, remaining_req: str | None = None,
                    retry_after: str | None = None, body: str = "") -> None:
        rem = parse_remaining_req(remaining_req)
        g = self._group(rem.group if rem else group, now_ns)
        if rem is not None:
            g.venue_left = rem.sec if g.venue_left is None else min(g.venue_left, rem.sec)
        if status == 429:
            self.throttles += 1
            g.closed_until = max(g.closed_until, g.window_start + SECOND, now_ns + g.backoff_ns)
            g.backoff_ns = min(g.backoff_ns * 2, 60 * SECOND)
        elif status == 418:
            secs = ban_seconds(retry_after, body)
            ban = secs * SECOND if secs is not None else self.default_ban_ns * 2**self.bans
            self.bans += 1
            self.banned_until = max(self.banned_until, now_ns + ban)
        elif status < 400:
            g.backoff_ns = SECOND  # a success resets the 429 back-off
