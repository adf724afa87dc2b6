"""Local servers speaking the alert channels' protocols, each on 127.0.0.1, each in its own thread.

HTTP (Telegram Bot API, Slack incoming webhook, generic webhook shapes): answers come from a script (one per
request, then the default), every request is recorded. SMTP: aiosmtpd with a handler that refuses from a
script (451 transient, 550 permanent) and records what it accepted.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def poll(pred: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


@dataclass
class Reply:
    status: int = 200
    body: Any = "ok"  # str: sent as text; anything else: JSON
    headers: dict[str, str] = field(default_factory=dict)


TELEGRAM_OK = Reply(200, {"ok": True, "result": {"message_id": 1}})


def telegram_429(after: int) -> Reply:
    return Reply(429, {"ok": False, "error_code": 429, "description": f"Too Many Requests: retry after {after}",
                       "parameters": {"retry_after": after}})


class HttpServer:
    """One aiohttp app answering every POST from ``script`` (then ``default``); ``requests`` holds
    (path, headers, json body, monotonic time) per request."""

    def __init__(self, default: Reply, port: int | None = None) -> None:
        self.default, self.port = default, port or free_port()
        self.script: list[Reply] = []
        self.requests: list[tuple[str, dict[str, str], Any, float]] = []
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append((request.path, dict(request.headers), body, time.monotonic()))
        reply = self.script.pop(0) if self.script else self.default
        if isinstance(reply.body, str):
            return web.Response(status=reply.status, text=reply.body, headers=reply.headers)
        return web.Response(status=reply.status, text=json.dumps(reply.body), headers=reply.headers,
                            content_type="application/json")

    def start(self) -> HttpServer:
        async def up() -> None:
            app = web.Application()
            app.router.add_post("/{tail:.*}", self._handle)
            self._runner = web.AppRunner(app)
            await self._runner.setup()
            await web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True).start()

        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(up(), self._loop).result(10)
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(5)


class SmtpServer:
    """aiosmtpd on 127.0.0.1; ``script`` holds SMTP answers to give at DATA (e.g. '451 4.3.0 busy')."""

    def __init__(self, port: int | None = None) -> None:
        from aiosmtpd.controller import Controller

        self.port = port or free_port()
        self.script: list[str] = []
        self.messages: list[Any] = []
        self.attempts = 0
        outer = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                outer.attempts += 1
                if outer.script:
                    return outer.script.pop(0)
                outer.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content.decode()))
                return "250 OK"

        self._controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    def start(self) -> SmtpServer:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()
