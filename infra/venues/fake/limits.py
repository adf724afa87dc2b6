"""Rate-limit accounting of the fake venues (pure: the caller passes the clock).

Binance: request weight per fixed 1-minute window (``X-MBX-USED-WEIGHT-1M``); over the limit -> 429 with
``Retry-After``; ``ban_after`` more requests while throttled -> 418 (IP ban) for ``ban_s`` seconds (brief §B5).
Upbit: requests per second per group (``Remaining-Req: group=...; min=...; sec=...``); over -> 429, and
continuing -> 418 (brief §A6; the 418 body and ``Retry-After`` are unconfirmed there).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Verdict = Literal["ok", "throttled", "banned"]


@dataclass(slots=True)
class WindowLimiter:
    """Counts cost in fixed windows of ``window_ms``; escalates to a ban after ``ban_after`` refused requests."""

    limit: int
    window_ms: int
    ban_after: int = 3
    ban_ms: int = 120_000
    _window: dict[str, int] = field(default_factory=dict)  # key -> window start
    _used: dict[str, int] = field(default_factory=dict)
    _refused: dict[str, int] = field(default_factory=dict)
    _banned_until: int = 0

    def charge(self, key: str, cost: int, now_ms: int) -> tuple[Verdict, int]:
        """Charge ``cost`` to ``key``; returns the verdict and the cost used in the current window."""
        if now_ms < self._banned_until:
            return "banned", self._used.get(key, 0)
        start = now_ms - now_ms % self.window_ms
        if self._window.get(key) != start:
            self._window[key], self._used[key] = start, 0
        if self._used[key] + cost > self.limit:
            refused = self._refused.get(key, 0) + 1
            self._refused[key] = refused
            if refused > self.ban_after:
                self._banned_until = now_ms + self.ban_ms
                return "banned", self._used[key]
            return "throttled", self._used[key]
        self._refused[key] = 0
        self._used[key] += cost
        return "ok", self._used[key]

    def retry_after_s(self, now_ms: int) -> int:
        """Seconds until the ban ends, else until the window turns."""
        if now_ms < self._banned_until:
            return max(1, -(-(self._banned_until - now_ms) // 1000))
        return max(1, -(-(self.window_ms - now_ms % self.window_ms) // 1000))

    def banned_until_ms(self) -> int:
        return self._banned_until
