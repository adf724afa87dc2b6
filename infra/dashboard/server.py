"""The dashboard's HTTP server: the page and ``GET /api/state``, loopback only, every request with the token.

Same rules as the live control surface (infra/live/control.py): a loopback IP literal only (anything else is
refused before binding), a token made at start and written with the URL to ``<out>/dashboard.json`` mode 0600.
A browser cannot send a header when it opens a URL, so the token is also accepted as ``?token=`` (the page
takes it from its own URL for its API calls). Every refusal is counted (``counts``), never a crash.

The server runs in its own thread with its own event loop: it only serves the last state it was given
(``update``), so it answers while the run's loop is busy and the run never waits for a browser.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import threading
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from ..live.control import _write_private, check_loopback

DASHBOARD_FILE = "dashboard.json"
PAGE = Path(__file__).with_name("page.html")


class DashboardServer:
    """``start()`` binds (OSError if the port is taken) and writes dashboard.json; ``close()`` stops serving."""

    def __init__(self, out: Path, run_id: str, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.out, self.run_id = Path(out), run_id
        self.host, self.port = check_loopback(host), port
        self.token = secrets.token_urlsafe(32)
        self.counts: dict[str, int] = {"requests": 0, "unauthorized": 0, "not_found": 0}
        self._state: dict[str, Any] = {"run_id": run_id, "phase": "starting", "updated_at": None}
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    @property
    def path(self) -> Path:
        return self.out / DASHBOARD_FILE

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    @property
    def page_url(self) -> str:
        """The page with its token: what to open in a browser."""
        return f"{self.url}?token={self.token}"

    def start(self) -> DashboardServer:
        loop = asyncio.new_event_loop()
        ready: asyncio.Future[None] = loop.create_future()
        self._loop = loop
        self._thread = threading.Thread(target=self._serve, args=(loop, ready), name="dashboard", daemon=True)
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(_wait(ready), loop).result(timeout=30)  # OSError of the bind, here
        except BaseException:
            self._runner = None
            self._stop_loop()
            raise
        _write_private(self.path, {"url": self.url, "page": self.page_url, "host": self.host, "port": self.port,
                                   "token": self.token, "run_id": self.run_id, "pid": os.getpid(),
                                   "started_ns": time.time_ns()})
        return self

    def _serve(self, loop: asyncio.AbstractEventLoop, ready: asyncio.Future[None]) -> None:
        asyncio.set_event_loop(loop)
        loop.create_task(self._bind(ready))
        loop.run_forever()

    async def _bind(self, ready: asyncio.Future[None]) -> None:
        try:
            app = web.Application(middlewares=[self._guard])
            app.router.add_get("/", self._page)
            app.router.add_get("/api/state", self._api_state)
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            await web.TCPSite(self._runner, self.host, self.port).start()
            self.port = int(self._runner.addresses[0][1])
            ready.set_result(None)
        except Exception as exc:
            ready.set_exception(exc)

    def update(self, state: dict[str, Any]) -> None:
        """The state the page shows from now on (any thread)."""
        text = json.dumps(state, default=str)
        with self._lock:
            self._state = json.loads(text)

    def state(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._state)

    def close(self) -> dict[str, int]:
        """Stop serving; dashboard.json keeps where it was and that it ended, not the token."""
        if self._loop is None:
            return dict(self.counts)
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=30)
        self._stop_loop()
        _write_private(self.path, {"url": self.url, "run_id": self.run_id, "pid": os.getpid(),
                                   "ended_ns": time.time_ns()})
        return dict(self.counts)

    def _stop_loop(self) -> None:
        loop, self._loop = self._loop, None
        if loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=30)
        loop.close()

    @web.middleware
    async def _guard(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.counts["requests"] += 1
        given = request.headers.get("Authorization", "")
        given = given.removeprefix("Bearer ") if given.startswith("Bearer ") else request.query.get("token", "")
        if not secrets.compare_digest(given.encode(), self.token.encode()):
            self.counts["unauthorized"] += 1
            return web.json_response({"error": "unauthorized: open the page URL with its token (dashboard.json)"},
                                     status=401)
        try:
            response: web.StreamResponse = await handler(request)
            return response
        except web.HTTPException as exc:  # unknown path or method
            self.counts["not_found"] += 1
            return web.json_response({"error": exc.reason}, status=exc.status)

    async def _page(self, request: web.Request) -> web.Response:
        return web.Response(text=PAGE.read_text(), content_type="text/html",
                            headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})

    async def _api_state(self, request: web.Request) -> web.Response:
        return web.json_response(self.state() | {"counts": dict(self.counts)}, headers={"Cache-Control": "no-store"})


async def _wait(fut: asyncio.Future[None]) -> None:
    await fut


def start_dashboard(out: Path, run_id: str, port: int = 0, host: str = "127.0.0.1") -> DashboardServer:
    """Serve the dashboard of the run writing to ``out`` on ``host``:``port`` now (0: any free port)."""
    return DashboardServer(out, run_id, host=host, port=port).start()
