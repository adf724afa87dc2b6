"""Throwaway servers for tests and chaos drills: a private ``redis-server`` and a private PostgreSQL cluster,
each on a free 127.0.0.1 port in a temp dir of its own, that can be stopped (process gone, port refusing) and
started again on the same port. Nothing shared is touched: the real servers on 6379 / 5432 stay up.

```python
with ThrowawayPostgres() as pg:          # initdb + pg_ctl start
    pg.stop()                            # pg_ctl stop; returns once the postmaster is gone and the port refuses
    pg.start()                           # same port, same data
with ThrowawayRedis() as r:              # redis-server --save "" (comes back empty after a stop)
    r.url                                # redis://127.0.0.1:<port>/0
```

Waits poll a condition with a deadline (``wait_until``); nothing sleeps a fixed time.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self

HOST = "127.0.0.1"
PG_BIN_GLOB = "/usr/lib/postgresql/*/bin"


class ThrowawayError(RuntimeError):
    """A throwaway server could not be set up, started or stopped (missing binary, busy port, ...)."""


# ---- polling helpers ---------------------------------------------------------------------------------------

def wait_until(check: Callable[[], bool], what: str, timeout: float = 10.0, interval: float = 0.01) -> None:
    """Poll ``check`` until it is true; ``TimeoutError`` naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def free_port(host: str = HOST) -> int:
    """A port nobody listens on right now (the kernel's pick)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_open(port: int, host: str = HOST, timeout: float = 0.2) -> bool:
    """True when a TCP connect to ``host:port`` is accepted."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_port_open(port: int, timeout: float = 10.0, host: str = HOST) -> None:
    wait_until(lambda: port_open(port, host), f"{host}:{port} to accept connections", timeout)


def wait_port_closed(port: int, timeout: float = 10.0, host: str = HOST) -> None:
    wait_until(lambda: not port_open(port, host), f"{host}:{port} to refuse connections", timeout)


def pid_alive(pid: int) -> bool:
    """True while process ``pid`` runs (a zombie nobody reaped counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return state not in ("Z", "X")


def find_binary(name: str, search: str | None = None) -> str:
    """``name`` from the newest directory matching the glob ``search``, else from PATH; ThrowawayError if absent."""
    dirs = sorted(glob.glob(search), key=_version_key, reverse=True) if search else []
    for d in dirs:
        path = Path(d) / name
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    found = shutil.which(name)
    if found is None:
        where = f"under {search} or " if search else ""
        raise ThrowawayError(f"{name} not found {where}on PATH: install it to run a throwaway server")
    return found


def _version_key(path: str) -> tuple[int, ...]:
    return tuple(int(p) for p in Path(path).parent.name.split(".") if p.isdigit())


def _check_executable(path: str) -> str:
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise ThrowawayError(f"{path} is not an executable: cannot run a throwaway server")
    return path


def _tail(path: Path, n: int = 2000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


class _Throwaway(ABC):
    """Common shape: a temp dir, a fixed port, start/stop/close, context manager."""

    port: int
    root: Path
    _finalizer: weakref.finalize[..., Any]

    def __init__(self, prefix: str, port: int | None) -> None:
        self.port = free_port() if port is None else port
        self.root = Path(tempfile.mkdtemp(prefix=prefix))

    @property
    @abstractmethod
    def running(self) -> bool:
        ...

    @abstractmethod
    def start(self, timeout: float = 30.0) -> None:
        ...

    @abstractmethod
    def stop(self, *, hard: bool = False, timeout: float = 30.0) -> None:
        ...

    def _refuse_busy_port(self) -> None:
        if port_open(self.port):
            raise ThrowawayError(f"port {self.port} is already in use: cannot start a throwaway server there")

    def close(self) -> None:
        """Stop (if running) and delete the temp dir."""
        try:
            if self.running:
                self.stop()
        finally:
            self._finalizer()  # kills what is left, deletes the temp dir; runs once

    def __enter__(self) -> Self:
        try:
            if not self.running:
                self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


# ---- Redis -------------------------------------------------------------------------------------------------

class ThrowawayRedis(_Throwaway):
    """A ``redis-server`` without persistence (``--save ""``, no AOF): it comes back empty after a stop."""

    def __init__(self, port: int | None = None, *, binary: str | None = None) -> None:
        self.binary = _check_executable(binary) if binary else find_binary("redis-server")
        super().__init__("throwaway-redis-", port)
        self._proc: list[subprocess.Popen[bytes] | None] = [None]  # shared with the finalizer
        self._finalizer = weakref.finalize(self, _redis_cleanup, self._proc, self.root)  # at exit or GC, too

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        return self._proc[0]

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 30.0) -> None:
        if self.running:
            raise ThrowawayError(f"throwaway redis on port {self.port} is already running")
        self._refuse_busy_port()
        log = self.root / "redis.log"
        proc = self._proc[0] = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", HOST, "--save", "", "--appendonly", "no",
             "--daemonize", "no", "--dir", str(self.root), "--logfile", str(log)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: proc.poll() is not None or _pongs(self.port),
                       f"redis-server on port {self.port} to answer PING", timeout)
        except TimeoutError:
            self.stop(hard=True)
            raise
        if proc.poll() is not None:
            raise ThrowawayError(f"redis-server exited with {proc.returncode} on port {self.port}: {_tail(log)}")

    def stop(self, *, hard: bool = False, timeout: float = 30.0) -> None:
        """SIGTERM (``hard``: SIGKILL); returns once the process is gone and the port refuses."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL if hard else signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)
        wait_port_closed(self.port, timeout)


def _pongs(port: int) -> bool:
    """True when the server on ``port`` answers PING (not while it is still loading)."""
    try:
        with socket.create_connection((HOST, port), timeout=0.2) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _redis_cleanup(box: list[subprocess.Popen[bytes] | None], root: Path) -> None:
    proc = box[0]
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait()
    shutil.rmtree(root, ignore_errors=True)


# ---- PostgreSQL --------------------------------------------------------------------------------------------

class ThrowawayPostgres(_Throwaway):
    """A private cluster (``initdb`` into a temp dir, trust auth, user ``postgres``, ``fsync=off``) run by
    ``pg_ctl`` on a free port. As root it runs as the ``postgres`` user (initdb refuses root). Data survives a
    stop/start; ``close`` deletes it."""

    def __init__(self, port: int | None = None, *, bin_dir: str | None = None) -> None:
        """``bin_dir``: where ``initdb`` and ``pg_ctl`` are (default: the newest /usr/lib/postgresql/*/bin, else
        PATH)."""
        self.initdb, self.pg_ctl = (find_binary(name, PG_BIN_GLOB) if bin_dir is None
                                    else _check_executable(str(Path(bin_dir, name))) for name in ("initdb", "pg_ctl"))
        self.as_user = _run_as_postgres()
        super().__init__("throwaway-pg-", port)
        self.data, self.log = self.root / "data", self.root / "log"
        self._finalizer = weakref.finalize(self, _pg_cleanup, [*self.as_user, self.pg_ctl], self.data, self.root)
        try:
            if self.as_user:
                shutil.chown(self.root, "postgres", "postgres")
            self._run([self.initdb, "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"],
                      timeout=120)
        except BaseException:
            self.close()
            raise

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@{HOST}:{self.port}/postgres"

    @property
    def running(self) -> bool:
        pid = self.pid
        return pid is not None and pid_alive(pid)

    @property
    def pid(self) -> int | None:
        """The postmaster's pid while its pid file exists."""
        try:
            return int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def start(self, timeout: float = 30.0) -> None:
        """``pg_ctl start -w``: returns once the server accepts connections on ``port``."""
        if self.running:
            raise ThrowawayError(f"throwaway PostgreSQL on port {self.port} is already running")
        self._refuse_busy_port()
        opts = f"-p {self.port} -k {self.root} -c listen_addresses={HOST} -c fsync=off"
        self._run([self.pg_ctl, "-D", str(self.data), "-o", opts, "-l", str(self.log), "-w", "-t", str(int(timeout)),
                   "start"], timeout=timeout + 10)
        wait_port_open(self.port, timeout)

    def stop(self, *, hard: bool = False, timeout: float = 30.0) -> None:
        """``pg_ctl stop`` (mode fast; ``hard``: immediate, a crash-like stop); returns once the postmaster is gone
        and the port refuses."""
        pid = self.pid
        if pid is None or not pid_alive(pid):
            return
        self._run([self.pg_ctl, "-D", str(self.data), "-m", "immediate" if hard else "fast", "-w",
                   "-t", str(int(timeout)), "stop"], timeout=timeout + 10)
        wait_until(lambda: not pid_alive(pid), f"postmaster {pid} to exit", timeout)
        wait_port_closed(self.port, timeout)

    def _run(self, cmd: list[str], timeout: float) -> None:
        proc = subprocess.run([*self.as_user, *cmd], capture_output=True, text=True, timeout=timeout, check=False)
        if proc.returncode != 0:
            raise ThrowawayError(f"{Path(cmd[0]).name} {cmd[-1]} failed ({proc.returncode}): "
                                 f"{(proc.stderr or proc.stdout)[-2000:]} {_tail(self.log)}")


def _run_as_postgres() -> list[str]:
    if os.geteuid() != 0:
        return []
    runuser = shutil.which("runuser")
    if runuser is None:
        raise ThrowawayError("running as root: initdb refuses root and runuser is missing to switch to postgres")
    try:
        import pwd
        pwd.getpwnam("postgres")
    except KeyError:
        raise ThrowawayError("running as root: initdb refuses root and there is no 'postgres' user") from None
    return [runuser, "-u", "postgres", "--"]


def _pg_cleanup(pg_ctl: list[str], data: Path, root: Path) -> None:
    """(close, exit or garbage collection) Never leave a throwaway cluster running or its files behind."""
    if (data / "postmaster.pid").exists():
        subprocess.run([*pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"], capture_output=True, timeout=60,
                       check=False)
    shutil.rmtree(root, ignore_errors=True)
