"""Fault injection of the fake venues, set by flags (CLI) or at run time (``POST /fake/faults``).

Counters count down one per affected request, so a test says exactly which requests fail.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

FAULT_HELP = {
    "delay_ms": "delay every response by this many milliseconds",
    "drop": "close the connection without an answer for the next N requests",
    "error_after_accept": "accept the next N orders, then answer 5xx (the order exists: a query finds it)",
    "drop_after_accept": "accept the next N orders, then close the connection without an answer",
    "reject_orders": "reject the next N orders as the venue does when a market is closed",
    "ws_drop": "close every WS connection of the venue, N times (at the next N frames)",
    "ws_gap": "skip the next N book diffs/snapshots on the WS (a sequence gap; the served book still moves)",
    "ws_duplicate": "send the next N book frames twice",
    "ws_reorder": "hold each of the next N book frames back behind the following one (out of order)",
    "ws_delay_ms": "delay every WS frame by this many milliseconds",
}


@dataclass(slots=True)
class Faults:
    delay_ms: int = 0
    drop: int = 0
    error_after_accept: int = 0
    drop_after_accept: int = 0
    reject_orders: int = 0
    ws_drop: int = 0
    ws_gap: int = 0
    ws_duplicate: int = 0
    ws_reorder: int = 0
    ws_delay_ms: int = 0

    def take(self, name: str) -> bool:
        """Use one count of fault ``name``; True if it applies to this request."""
        left = int(getattr(self, name))
        if left <= 0:
            return False
        setattr(self, name, left - 1)
        return True

    def update(self, values: dict[str, Any]) -> None:
        """Set faults from a JSON object (unknown names or negative/non-integer values: ValueError)."""
        names = {f.name for f in fields(self)}
        for k, v in values.items():
            if k not in names or isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"bad fault {k}={v!r} (faults: {', '.join(sorted(names))}, integers >= 0)")
        for k, v in values.items():
            setattr(self, k, v)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)
