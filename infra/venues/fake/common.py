"""HTTP plumbing shared by both fakes: the clock, JSON replies, fault and delay middleware, decimals."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web

from .faults import Faults

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
FAULTS_KEY: web.AppKey[Faults] = web.AppKey("faults", Faults)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def reply(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(text=json.dumps(body, separators=(",", ":")), status=status, headers=headers,
                        content_type="application/json")


def parse_decimal(text: str | None) -> Decimal | None:
    """A plain non-negative decimal number (no exponent, no sign, no NaN), else None."""
    if text is None or not text or len(text) > 40 or not all(c.isdigit() or c == "." for c in text):
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def fmt8(value: Decimal) -> str:
    """Binance's fixed 8-decimal number strings (``"0.00100000"``)."""
    return f"{value.quantize(Decimal('1e-8')):f}"


def plain(value: Decimal) -> str:
    """Upbit's number strings: no exponent, no trailing zeros beyond one decimal (``"0.01"``, ``"5000.0"``)."""
    text = f"{value.normalize():f}"
    return text if "." in text else text + ".0"


def drop_connection(request: web.Request) -> web.Response:
    """Close the client's connection without an answer (the client sees a reset / disconnect)."""
    if request.transport is not None:
        request.transport.abort()
    return web.Response(status=500)


@web.middleware
async def fault_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Injected delay and dropped connections, before the venue sees the request."""
    faults = request.app[FAULTS_KEY]
    if not request.path.startswith("/fake/"):
        if faults.delay_ms > 0:
            await asyncio.sleep(faults.delay_ms / 1000)
        if faults.take("drop"):
            return drop_connection(request)
    return await handler(request)


async def faults_get(request: web.Request) -> web.Response:
    return reply(request.app[FAULTS_KEY].as_dict())


async def faults_post(request: web.Request) -> web.Response:
    """Set faults at run time: ``POST /fake/faults {"error_after_accept": 1}``."""
    try:
        values = await request.json()
        if not isinstance(values, dict):
            raise ValueError("expected a JSON object")
        request.app[FAULTS_KEY].update(values)
    except ValueError as e:
        return reply({"error": str(e)}, status=400)
    return reply(request.app[FAULTS_KEY].as_dict())
