"""The control surface of a running live process: HTTP on the loopback interface, every request with a token.

The server runs in the process that drives the run (scenarios.live), not in the host actor: it forwards each
word to the host (``host.control.remote(...)``), so a slow or busy hot path never holds the operator up, and
the hot path never serves HTTP. It binds a loopback address only (anything else is refused before binding:
the kill switch must not be reachable from the network) and accepts a request only with ``Authorization:
Bearer <token>``; the token is made at start (``secrets.token_urlsafe``) and written with the port to
``<out>/control.json``, mode 0600 (only the user who started the run can read it). At the end the file is
rewritten without the token and marked ended, so ``live-ctl`` can tell a finished run from a missing one.

Endpoints: ``GET /status``; ``POST /pause`` {reason}; ``POST /resume``; ``POST /flatten`` {route?, reason}
(the kill switch: no new opens, positions closed with real orders); ``POST /stop`` (as Ctrl-C).
``GET /healthz`` and ``GET /readyz`` (infra.health) need no token: a probe (systemd, Docker) has none, and
they reveal only names, counts and ages; the loopback binding still keeps them off the network.
Every refusal is an answer (401 bad token, 400 bad input, 404 unknown path), counted, never a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from ..health import FeedFreshness, live_reasons, verdict
from .killswitch import ControlError

CONTROL_FILE = "control.json"
MAX_BODY = 16 * 1024
OPEN_PATHS = ("/healthz", "/readyz")  # probes: no token (they reveal nothing secret), loopback like the rest
PROBE_TIMEOUT_S = 2.0
COMMANDS = {"status": "GET", "pause": "POST", "resume": "POST", "flatten": "POST", "stop": "POST"}


def check_loopback(host: str) -> str:
    """``host`` if it is a loopback IP literal; a name (even ``localhost``) or any other address is refused."""
    try:
        ok = ipaddress.ip_address(host).is_loopback
    except ValueError:
        ok = False
    if not ok:
        raise ControlError(f"the control surface binds a loopback address only (127.0.0.1 or ::1), not {host!r}")
    return host


class ControlServer:
    """``target``: the live host's handle (``status`` and ``control`` methods, called ``.remote``);
    ``on_stop``: what Ctrl-C does (sets the run's stop event)."""

    def __init__(self, target: Any, out: Path, run_id: str, on_stop: Callable[[], None], *,
                 host: str = "127.0.0.1", port: int = 0) -> None:
        self.target, self.out, self.run_id, self.on_stop = target, Path(out), run_id, on_stop
        self.host, self.port = check_loopback(host), port
        self.token = secrets.token_urlsafe(32)
        self.counts: dict[str, int] = {"requests": 0, "unauthorized": 0, "bad_request": 0, "failed": 0}
        self._runner: web.AppRunner | None = None
        self.freshness = FeedFreshness()

    @property
    def path(self) -> Path:
        return self.out / CONTROL_FILE

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> Path:
        """Bind, then write control.json (0600); returns its path. OSError if the port cannot be bound."""
        app = web.Application(client_max_size=MAX_BODY, middlewares=[self._guard])
        app.router.add_get("/status", self._status)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        for name in ("pause", "resume", "flatten", "stop"):
            app.router.add_post(f"/{name}", self._word)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        _write_private(self.path, {"url": self.url, "host": self.host, "port": self.port, "token": self.token,
                                   "run_id": self.run_id, "pid": os.getpid(), "started_ns": time.time_ns()})
        return self.path

    async def close(self) -> dict[str, Any]:
        """Stop serving; control.json keeps where it was and that it ended, not the token. Returns the counts."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            _write_private(self.path, {"url": self.url, "run_id": self.run_id, "pid": os.getpid(),
                                       "ended_ns": time.time_ns()})
        return dict(self.counts)

    @web.middleware
    async def _guard(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.counts["requests"] += 1
        if request.path in OPEN_PATHS and request.method == "GET":
            probe: web.StreamResponse = await handler(request)
            return probe
        given = request.headers.get("Authorization", "")
        if not secrets.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
            self.counts["unauthorized"] += 1
            return web.json_response({"error": "unauthorized: send Authorization: Bearer <token of control.json>"},
                                     status=401)
        try:
            response: web.StreamResponse = await handler(request)
            return response
        except web.HTTPException as exc:  # unknown path / method, body too large
            self.counts["bad_request"] += 1
            return web.json_response({"error": exc.reason}, status=exc.status)
        except ControlError as exc:
            self.counts["bad_request"] += 1
            return web.json_response({"error": _cause(exc)}, status=400)
        except Exception as exc:  # the host failed the call: said, counted, the server goes on
            self.counts["failed"] += 1
            return web.json_response({"error": f"{type(exc).__name__}: {_cause(exc)}"}, status=500)

    async def _status(self, request: web.Request) -> web.Response:
        status = await self.target.status.remote()
        status["control"] = await self.target.control.remote("state") | {"counts": dict(self.counts)}
        return _json(status)

    async def _healthz(self, request: web.Request) -> web.Response:
        """This loop answers (we are serving) and the host answers a status call within PROBE_TIMEOUT_S."""
        try:
            status = await asyncio.wait_for(self.target.status.remote(), PROBE_TIMEOUT_S)
        except Exception as exc:  # dead, hung or restarting host: not healthy, said in a word
            code, body = verdict([f"host not answering ({type(exc).__name__})"])
        else:
            code, body = verdict([], uptime_s=round(float(status.get("uptime_s", 0.0)), 1))
        return web.json_response(body, status=code)

    async def _readyz(self, request: web.Request) -> web.Response:
        try:
            status = await asyncio.wait_for(self.target.status.remote(), PROBE_TIMEOUT_S)
        except Exception as exc:
            code, body = verdict([f"host not answering ({type(exc).__name__})"])
        else:
            ages = self.freshness.observe(status.get("feeds") or {})
            code, body = verdict(live_reasons(status, ages),
                                 feed_age_s={v: None if a is None else round(a, 1) for v, a in ages.items()})
        return web.json_response(body, status=code)

    async def _word(self, request: web.Request) -> web.Response:
        name = request.path.strip("/")
        body = await _body(request)
        if name == "stop":
            self.on_stop()
            return _json({"stopping": True, "note": "the run stops as on Ctrl-C (see its summary.json)"})
        route = body.get("route")
        if route is not None and not isinstance(route, str):
            raise ControlError("route must be a route name (e.g. BTC)")
        answer = await self.target.control.remote(name, str(body.get("reason") or ""),
                                                   route.upper() if route else None)
        return _json(answer)


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = json.loads(await request.text() or "{}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise ControlError(f"the body must be a JSON object: {exc}") from None
    if not isinstance(body, dict):
        raise ControlError("the body must be a JSON object")
    return body


def _json(obj: Any) -> web.Response:
    return web.json_response(json.loads(json.dumps(obj, default=str)))


def _cause(exc: BaseException) -> str:
    """A Ray task error's first line (the remote exception's message), else the message."""
    text = str(exc).strip().splitlines()
    return text[-1] if text else type(exc).__name__


def _write_private(path: Path, data: dict[str, Any]) -> None:
    """Write ``path`` readable by its owner only (0600), atomically: never a moment with the token world-readable."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask or an older file said
        os.write(fd, json.dumps(data, indent=2).encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)


# ---- the client side (arbitrage-lite live-ctl)
def read_control(out: Path) -> dict[str, Any]:
    """The running run's control.json in ``out``; ControlError saying why there is none to talk to."""
    path = Path(out) / CONTROL_FILE
    if not path.exists():
        raise ControlError(f"no live run in {out} (no {CONTROL_FILE}: start one with 'arbitrage-lite live --out "
                           f"{out}')")
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ControlError(f"cannot read {path}: {exc}") from None
    if not isinstance(info, dict) or "url" not in info:
        raise ControlError(f"{path} is not a control file of a live run")
    if "ended_ns" in info:
        ended = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(int(info["ended_ns"]) / 1e9))
        raise ControlError(f"the live run in {out} ended at {ended} (its outputs: {out}/summary.json)")
    return info


def send(out: Path, command: str, body: dict[str, Any] | None = None, timeout_s: float = 30.0,
         token: str | None = None) -> dict[str, Any]:
    """One control request to the run in ``out``; its JSON answer, or ControlError with a one-line reason."""
    if command not in COMMANDS:
        raise ControlError(f"unknown command {command!r} (one of {', '.join(COMMANDS)})")
    info = read_control(out)
    check_loopback(str(info.get("host", "127.0.0.1")))
    data = None if COMMANDS[command] == "GET" else json.dumps(body or {}).encode()
    req = urllib.request.Request(f"{info['url']}/{command}", data=data, method=COMMANDS[command],
                                 headers={"Authorization": f"Bearer {token or info.get('token', '')}",
                                          "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:  # a loopback URL (checked above)
            answer: dict[str, Any] = json.loads(resp.read())
            return answer
    except urllib.error.HTTPError as exc:
        detail = ""
        with contextlib.suppress(Exception):
            detail = json.loads(exc.read()).get("error", "")
        if exc.code == 401:
            raise ControlError(f"refused: bad token ({out}/{CONTROL_FILE} is not the running server's)") from None
        raise ControlError(f"refused ({exc.code}): {detail or exc.reason}") from None
    except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ControlError(f"the live run in {out} does not answer at {info['url']} ({reason}): it ended without "
                           "cleaning up, or is stuck") from None
