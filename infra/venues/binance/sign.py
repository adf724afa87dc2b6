"""Binance request signing (brief B4): HMAC-SHA256 over the exact query string (+ form body), hex.

Pure: the caller passes the time; ``ClockSync`` turns ``GET /api/v3/time`` round trips into an offset so
``timestamp`` stays inside ``recvWindow`` even when the local clock drifts (else -1021).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlencode

API_KEY_HEADER = "X-MBX-APIKEY"
DEFAULT_RECV_WINDOW_MS = 5000


def signature(secret: str, payload: str) -> str:
    """hex HMAC-SHA256(secret, payload); payload = query string concatenated with the form body."""
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def signed_query(params: Iterable[tuple[str, str]], secret: str, timestamp_ms: int,
                 recv_window_ms: int = DEFAULT_RECV_WINDOW_MS) -> str:
    """``k=v&...&recvWindow=..&timestamp=..&signature=..``, percent-encoded before signing (non-ASCII too)."""
    items = [*params, ("recvWindow", str(recv_window_ms)), ("timestamp", str(timestamp_ms))]
    query = urlencode(items)
    return f"{query}&signature={signature(secret, query)}"


def ws_api_signature(params: Mapping[str, str], secret: str) -> str:
    """WS API: every param but ``signature``, sorted by key, ``k=v`` joined by ``&``, no percent-encoding."""
    payload = "&".join(f"{k}={params[k]}" for k in sorted(params) if k != "signature")
    return signature(secret, payload)


def headers(api_key: str) -> dict[str, str]:
    return {API_KEY_HEADER: api_key}


@dataclass
class ClockSync:
    """Server-minus-local clock offset from /api/v3/time round trips (the shortest round trip wins)."""

    offset_ms: int = 0
    rtt_ms: int | None = None

    def observe(self, sent_ms: int, server_ms: int, received_ms: int) -> None:
        """One round trip: assume the server stamped its time halfway between send and receive."""
        rtt = received_ms - sent_ms
        if rtt < 0:
            return
        if self.rtt_ms is None or rtt <= self.rtt_ms:
            self.rtt_ms = rtt
            self.offset_ms = server_ms - (sent_ms + rtt // 2)

    def timestamp(self, local_ms: int) -> int:
        """The ``timestamp`` to send now: server time as best known (never ahead by more than the rtt/2 error)."""
        return local_ms + self.offset_ms
