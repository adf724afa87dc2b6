"""Binance rate-limit accounting (brief B5) as a pure state machine: what to do before the next request.

Headers ``X-MBX-USED-WEIGHT-1M`` (request weight per IP, per minute) and ``X-MBX-ORDER-COUNT-10S`` /
``-1D`` (unfilled orders per account) update the counts; limits come from exchangeInfo.rateLimits. A 429
means back off for ``Retry-After`` seconds (a request sent meanwhile risks the 418 ban); a 418 is an IP ban
until ``Retry-After`` (2 min to 3 days): stop. Windows are fixed and aligned to the interval (the minute).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

DEFAULT_WEIGHT_1M = 6000
DEFAULT_ORDERS = {10_000: 100, 86_400_000: 200_000}  # ms -> limit; brief B5 (daily value unconfirmed)
DEFAULT_RETRY_AFTER_S = 60  # a 429/418 without Retry-After: wait a minute (assumption)
_UNITS = {"S": 1000, "M": 60_000, "H": 3_600_000, "D": 86_400_000}


class Action(StrEnum):
    GO = "go"
    WAIT = "wait"  # until ``until_ms``: a window's limit would be exceeded, or a 429 back-off
    STOP = "stop"  # banned (418) until ``until_ms``: send nothing


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    until_ms: int = 0
    reason: str = ""


def _interval_ms(suffix: str) -> int | None:
    """``1M`` -> 60000, ``10S`` -> 10000, ``1D`` -> 86400000."""
    num, unit = suffix[:-1], suffix[-1:].upper()
    if not num.isdigit() or unit not in _UNITS:
        return None
    return int(num) * _UNITS[unit]


@dataclass
class RateLimits:
    weight_limits: dict[int, int] = field(default_factory=lambda: {60_000: DEFAULT_WEIGHT_1M})
    order_limits: dict[int, int] = field(default_factory=lambda: dict(DEFAULT_ORDERS))
    used_weight: dict[int, tuple[int, int]] = field(default_factory=dict)  # interval -> (window start, used)
    order_count: dict[int, tuple[int, int]] = field(default_factory=dict)
    backoff_until_ms: int = 0
    banned_until_ms: int = 0
    count_429: int = 0
    count_418: int = 0

    def set_limits(self, weight: Mapping[int, int], orders: Mapping[int, int]) -> None:
        """From exchangeInfo.rateLimits (REQUEST_WEIGHT and ORDERS, by interval in ms)."""
        if weight:
            self.weight_limits = dict(weight)
        if orders:
            self.order_limits = dict(orders)

    def on_response(self, status: int, hdrs: Mapping[str, str], now_ms: int) -> None:
        """Book a response's headers; 429/418 start a back-off or a ban."""
        for name, value in hdrs.items():
            up = name.upper()
            if not value.strip().isdigit():
                continue
            for prefix, table in (("X-MBX-USED-WEIGHT-", self.used_weight), ("X-MBX-ORDER-COUNT-", self.order_count)):
                if up.startswith(prefix):
                    iv = _interval_ms(up[len(prefix):])
                    if iv is not None:
                        table[iv] = (now_ms - now_ms % iv, int(value))
        if status in (418, 429):
            retry = next((v for k, v in hdrs.items() if k.lower() == "retry-after"), "")
            wait_ms = int(retry) * 1000 if retry.strip().isdigit() else DEFAULT_RETRY_AFTER_S * 1000
            if status == 418:
                self.count_418 += 1
                self.banned_until_ms = max(self.banned_until_ms, now_ms + wait_ms)
            else:
                self.count_429 += 1
                self.backoff_until_ms = max(self.backoff_until_ms, now_ms + wait_ms)

    def on_ban_until(self, until_ms: int) -> None:
        """A -1003 body naming the ban's end ("banned until <ms>")."""
        self.banned_until_ms = max(self.banned_until_ms, until_ms)

    def decide(self, now_ms: int, weight: int, orders: int = 0) -> Decision:
        """May a request of this weight (placing ``orders`` new orders) go now?"""
        if now_ms < self.banned_until_ms:
            return Decision(Action.STOP, self.banned_until_ms, "418 ip ban")
        if now_ms < self.backoff_until_ms:
            return Decision(Action.WAIT, self.backoff_until_ms, "429 retry-after")
        for table, limits, cost, what in ((self.used_weight, self.weight_limits, weight, "weight"),
                                          (self.order_count, self.order_limits, orders, "orders")):
            if not cost:
                continue
            for iv, limit in limits.items():
                start, used = table.get(iv, (0, 0))
                if now_ms - now_ms % iv != start:
                    continue  # a new window: the count restarts
                if used + cost > limit:
                    return Decision(Action.WAIT, start + iv, f"{what} {used}+{cost} > {limit} per {iv} ms")
        return Decision(Action.GO)

    def book(self, now_ms: int, weight: int, orders: int = 0) -> None:
        """Count a request locally until its response's headers state the venue's figure."""
        for table, cost in ((self.used_weight, weight), (self.order_count, orders)):
            for iv in list(self.weight_limits if table is self.used_weight else self.order_limits):
                start = now_ms - now_ms % iv
                s, used = table.get(iv, (start, 0))
                table[iv] = (start, (used if s == start else 0) + cost)
