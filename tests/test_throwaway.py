"""infra/throwaway.py: private redis-server and PostgreSQL clusters that stop (process gone, port refusing) and
start again on the same port."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import asyncpg
import pytest
import redis

from arbitrage_lite.infra.throwaway import (
    ThrowawayError,
    ThrowawayPostgres,
    ThrowawayRedis,
    find_binary,
    pid_alive,
    port_open,
    wait_until,
)

pytestmark = pytest.mark.timeout(60)


def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)


def test_redis_stops_and_starts_again_on_the_same_port() -> None:
    with ThrowawayRedis() as server:
        port, url, root = server.port, server.url, server.root
        assert url == f"redis://127.0.0.1:{port}/0" and root.is_dir()
        assert _client(url).set("k", "v") and _client(url).get("k") == b"v"
        assert server.proc is not None
        pid = server.proc.pid
        server.stop()
        assert not server.running and not pid_alive(pid) and not port_open(port)
        with pytest.raises(redis.ConnectionError):
            _client(url).ping()
        server.start()
        assert server.running and server.port == port and server.url == url
        assert server.proc is not None and server.proc.pid != pid
        assert _client(url).get("k") is None  # no persistence: back empty
        server.stop(hard=True)  # SIGKILL, as a crash
        assert not server.running and not port_open(port)
        server.start()
        assert _client(url).ping()
    assert not server.running and not port_open(port) and not root.exists()


def test_postgres_stops_and_starts_again_on_the_same_port_with_its_data() -> None:
    async def query(dsn: str, sql: str) -> object:
        conn = await asyncpg.connect(dsn, timeout=5)
        try:
            return await conn.fetchval(sql)
        finally:
            await conn.close()

    with ThrowawayPostgres() as pg:
        port, dsn, root = pg.port, pg.dsn, pg.root
        assert dsn == f"postgresql://postgres@127.0.0.1:{port}/postgres"
        asyncio.run(query(dsn, "CREATE TABLE t AS SELECT 42 AS x"))
        pid = pg.pid
        assert pid is not None and pg.running
        pg.stop()
        assert not pg.running and not pid_alive(pid) and not port_open(port)
        with pytest.raises(OSError):
            asyncio.run(query(dsn, "SELECT 1"))
        pg.start()
        assert pg.running and pg.port == port and pg.pid != pid
        assert asyncio.run(query(dsn, "SELECT x FROM t")) == 42  # the data survives a restart
        pg.stop(hard=True)  # immediate: crash-like
        assert not pg.running and not port_open(port)
        pg.start()
        assert asyncio.run(query(dsn, "SELECT x FROM t")) == 42
    assert not port_open(port) and not root.exists()


def test_a_busy_port_is_refused_with_a_clear_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        server = ThrowawayRedis(port)
        try:
            with pytest.raises(ThrowawayError, match=f"port {port} is already in use"):
                server.start()
            assert not server.running
        finally:
            server.close()
        assert not server.root.exists()


def test_missing_binaries_are_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ThrowawayError, match="not an executable"):
        ThrowawayRedis(binary=str(tmp_path / "redis-server"))
    with pytest.raises(ThrowawayError, match="initdb"):
        ThrowawayPostgres(bin_dir=str(tmp_path))
    with pytest.raises(ThrowawayError, match="no-such-server not found under"):
        find_binary("no-such-server", str(tmp_path / "*" / "bin"))


def test_postgres_binaries_come_from_the_versioned_dirs(tmp_path: Path) -> None:
    for version in ("9.6", "15", "16"):
        (tmp_path / version / "bin").mkdir(parents=True)
        exe = tmp_path / version / "bin" / "initdb"
        exe.write_text("#!/bin/sh\n")
        exe.chmod(0o755)
    assert find_binary("initdb", str(tmp_path / "*" / "bin")) == str(tmp_path / "16" / "bin" / "initdb")


def test_wait_until_times_out_naming_what_it_waited_for() -> None:
    with pytest.raises(TimeoutError, match="the moon"):
        wait_until(lambda: False, "the moon", timeout=0.05)
    calls = iter([False, False, True])
    wait_until(lambda: next(calls), "the third call", timeout=5)
