"""Venue credentials: loaded from the environment or a private file outside the repository, refused otherwise, and
never shown: the client shells run auth success and failure paths (REST and the market-data loop) with loguru
capturing everything, then the captured logs, exception texts and reprs are searched for the secret: 0 hits."""

from __future__ import annotations

import asyncio
import pickle
import traceback
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from loguru import logger

from arbitrage_lite.core.domain import Side
from arbitrage_lite.core.venue import OrderType, PlaceOrder, QueryOrder, RejectReason
from arbitrage_lite.infra.venues import secrets
from arbitrage_lite.infra.venues.binance.client import BinanceClient
from arbitrage_lite.infra.venues.fake.auth import binance_check
from arbitrage_lite.infra.venues.stream_loop import Backoff, StreamLoop
from arbitrage_lite.infra.venues.upbit import auth as upbit_auth
from arbitrage_lite.infra.venues.upbit.client import UpbitClient

SECRET = "s3cr3t-Zq8vX2LmN4pR7tY1wK5j"  # distinctive: any occurrence is a leak
KEY = "k3y-Hh9Gg7Ff5Dd3Ss1Aa"
ENV = {"ARBITRAGE_BINANCE_KEY": KEY, "ARBITRAGE_BINANCE_SECRET": SECRET,
       "ARBITRAGE_UPBIT_ACCESS_KEY": KEY, "ARBITRAGE_UPBIT_SECRET_KEY": SECRET}


def test_from_the_environment_and_masked() -> None:
    for venue in ("binance", "upbit"):
        c = secrets.load(venue, env=ENV)
        assert c.key == KEY and c.secret.reveal() == SECRET and c.source == "environment"
        shown = [repr(c), str(c), repr(c.secret), str(c.secret), f"{c.secret}", f"{c.secret!r:>40}",
                 "{}".format(c.secret)]  # noqa: UP032
        assert not any(SECRET in s or KEY in s for s in shown)
    with pytest.raises(TypeError):
        pickle.dumps(secrets.load("binance", env=ENV).secret)
    with pytest.raises(secrets.SecretsError, match="ARBITRAGE_UPBIT_SECRET_KEY"):
        secrets.load("upbit", env={"ARBITRAGE_UPBIT_ACCESS_KEY": KEY})
    with pytest.raises(secrets.SecretsError, match="no credentials"):
        secrets.load("kraken", env=ENV)


def _write(path: Path, mode: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# venue keys\n" + "".join(f"{k}={v}\n" for k, v in ENV.items()))
    path.chmod(mode)
    return path


def test_from_a_private_file_outside_the_repo(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    private = _write(tmp_path / "home" / "secrets", 0o600)
    c = secrets.load("binance", env={"ARBITRAGE_SECRETS_FILE": str(private)}, repo_root=repo)
    assert c.secret.reveal() == SECRET and c.source == str(private.resolve())
    assert secrets.load("upbit", path=private, env={}, repo_root=repo).key == KEY  # a CLI path
    errors = []
    inside = _write(repo / "config" / "secrets", 0o600)
    with pytest.raises(secrets.SecretsError, match="inside the repository") as e1:
        secrets.load("binance", path=inside, env={}, repo_root=repo)
    readable = _write(tmp_path / "shared" / "secrets", 0o644)
    with pytest.raises(secrets.SecretsError, match="chmod 600") as e2:
        secrets.load("binance", path=readable, env={}, repo_root=repo)
    with pytest.raises(secrets.SecretsError, match="No such file"):
        secrets.load("binance", path=tmp_path / "nope", env={}, repo_root=repo)
    errors += [str(e1.value), str(e2.value)]
    assert not any(SECRET in t for t in errors)
    assert (secrets.REPO_ROOT / "pyproject.toml").exists()  # the default guard is this repository


def _app(state: dict[str, Any]) -> web.Application:
    async def binance_account(req: web.Request) -> web.Response:
        if not binance_check(SECRET, req.query_string, ""):
            return web.json_response({"code": -1022, "msg": "Signature for this request is not valid."}, status=400)
        return web.json_response({"balances": [{"asset": "BTC", "free": "1.0", "locked": "0.0"}]})

    async def binance_order(req: web.Request) -> web.Response:
        return web.json_response({"code": -1022, "msg": "Signature for this request is not valid."}, status=400)

    async def upbit_accounts(req: web.Request) -> web.Response:
        try:
            upbit_auth.verify_token(req.headers.get("Authorization", "").removeprefix("Bearer "), SECRET)
        except Exception:
            return web.json_response({"error": {"name": "jwt_verification", "message": "bad"}}, status=401)
        return web.json_response([{"currency": "KRW", "balance": "1000", "locked": "0"}])

    async def ws(req: web.Request) -> web.WebSocketResponse:
        state["ws"] = state.get("ws", 0) + 1
        sock = web.WebSocketResponse()
        await sock.prepare(req)
        await sock.send_str('{"stream":"btcusdt@trade","data":{"e":"trade","p":"NaN"}}')
        await sock.close()
        return sock

    app = web.Application()
    app.router.add_get("/api/v3/account", binance_account)
    app.router.add_route("*", "/api/v3/order", binance_order)
    app.router.add_get("/v1/accounts", upbit_accounts)
    app.router.add_get("/stream", ws)
    app.router.add_get("/websocket/v1", ws)
    return app


def test_secret_never_in_logs_or_errors() -> None:
    captured: list[str] = []
    sink = logger.add(lambda m: captured.append(str(m)), level="TRACE", backtrace=True, diagnose=True)
    texts: list[str] = []

    async def run() -> None:
        runner = web.AppRunner(_app({}))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        ws = url.replace("http", "ws")
        creds = secrets.load("binance", env=ENV)
        try:
            for secret in (creds.secret, secrets.Secret("wrong-" + SECRET[::-1])):
                async with BinanceClient(url, creds.key, secret, ws_url=ws, timeout_s=2) as b:
                    texts.append(repr(b))
                    try:
                        texts.append(repr(await b.balances()))
                    except Exception as e:  # the failure path: its text and traceback, logged with locals
                        assert getattr(e, "reason", None) is RejectReason.AUTH
                        texts.extend([str(e), repr(e), "".join(traceback.format_exception(e))])
                        logger.opt(exception=e).error("balances failed")
                    q = await b.query(QueryOrder("c1", "BTCUSDT"))
                    texts.append(repr(q))
                    loop = StreamLoop("binance", Backoff(0.01, 0.02), max_reconnects=1)
                    texts.extend([repr(m) async for m in b.market_data(["btcusdt@trade"], loop=loop)])
                u = UpbitClient(url + "/v1", KEY, secret, ws_url=ws + "/websocket/v1", timeout_s=2)
                texts.extend([repr(u), repr(await u.balances())])
                place = PlaceOrder("c2", "KRW-BTC", Side.BUY, OrderType.LIMIT, Decimal("1"), Decimal("1000"))
                texts.append(repr(await u.place(place)))
                loop = StreamLoop("upbit", Backoff(0.01, 0.02), max_reconnects=1)
                texts.extend([repr(m) async for m in u.stream(["KRW-BTC"], loop=loop)])
                await u.close()
        finally:
            await runner.cleanup()

    try:
        asyncio.run(asyncio.wait_for(run(), 20))
    finally:
        logger.remove(sink)
    assert any("Balance(asset='KRW'" in t for t in texts)  # the success paths ran
    assert any("auth" in t for t in texts)  # and the failure paths
    assert len(captured) >= 8  # the loops logged their connects/disconnects, the failure its traceback
    hits = [t for t in captured + texts if SECRET in t or SECRET[::-1] in t]
    assert hits == []
