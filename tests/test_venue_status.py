"""Wallet / system status -> MarketStatus flags, and Upbit's instruments tick: parsers, both clients against the
fakes (a coin suspended through POST /fake/wallet), and ccxt 4.5.90 reading the same fake answers the same way."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from fake_session import with_fakes

from arbitrage_lite.core.domain import Side
from arbitrage_lite.core.venue import MarketState, OrderState, OrderType, PlaceOrder, Rejected, RejectReason
from arbitrage_lite.infra.venues.binance.client import BinanceClient
from arbitrage_lite.infra.venues.binance.wallet import parse_coin_config, parse_system_status
from arbitrage_lite.infra.venues.fake.server import STATIC_BOOKS, FakeVenues
from arbitrage_lite.infra.venues.upbit.client import UpbitClient
from arbitrage_lite.infra.venues.upbit.rules import MarketRules, parse_instruments, rules_from
from arbitrage_lite.infra.venues.upbit.wallet import parse_wallet_status
from arbitrage_lite.infra.venues.wallet_status import AssetStatus, market_status

DEP, WD, HALT = MarketState.DEPOSIT_SUSPENDED, MarketState.WITHDRAW_SUSPENDED, MarketState.HALTED
OK = MarketState.TRADING
needs_books = pytest.mark.skipif(not all(p.is_file() for v in STATIC_BOOKS.values() for p in v.values()),
                                 reason="the shared data set (orderbook_snapshots) is not here")


def _upbit_item(currency: str, wallet: str, block: str = "normal", net: str | None = None) -> dict[str, Any]:
    return {"currency": currency, "net_type": net or currency, "network_name": currency, "wallet_state": wallet,
            "block_state": block, "block_height": 1, "block_updated_at": "2025-08-24T15:00:00+09:00",
            "block_elapsed_minutes": 1}


def test_upbit_wallet_states() -> None:
    body = json.dumps([_upbit_item("BTC", "working"), _upbit_item("XRP", "withdraw_only"),
                       _upbit_item("ETH", "deposit_only"), _upbit_item("DOGE", "paused"),
                       _upbit_item("SOL", "working", "inactive"), _upbit_item("ADA", "working", "delayed"),
                       _upbit_item("USDT", "paused", net="ERC20"), _upbit_item("USDT", "working", net="TRX"),
                       _upbit_item("BAD", "sleeping")])
    got = parse_wallet_status(body, 5)
    states = {a.asset: a.state for a in got if isinstance(a, AssetStatus)}
    assert states == {"BTC": OK, "XRP": DEP, "ETH": WD, "DOGE": DEP | WD, "SOL": DEP, "ADA": OK, "USDT": OK}
    assert [r.reason for r in got if isinstance(r, Rejected)] == ["bad_field"]
    usdt = next(a for a in got if isinstance(a, AssetStatus) and a.asset == "USDT")
    assert usdt.detail == "ERC20 paused, TRX working"  # one working network is enough to move the coin


def _coin(coin: str, dep: bool, wd: bool, all_dep: bool = True) -> dict[str, Any]:
    return {"coin": coin, "depositAllEnable": all_dep, "withdrawAllEnable": True, "trading": True,
            "networkList": [{"network": "ETH", "coin": coin, "depositEnable": dep, "withdrawEnable": wd,
                             "depositDesc": "" if dep else "Wallet Maintenance, Deposit Suspended",
                             "withdrawDesc": ""}]}


def test_binance_coin_config_and_system_status() -> None:
    got = parse_coin_config(json.dumps([_coin("LINK", True, True), _coin("BTC", False, True),
                                        _coin("ETH", True, False), _coin("BNB", True, True, all_dep=False),
                                        {"coin": "X", "networkList": "?"}]), 1)
    states = {a.asset: a.state for a in got if isinstance(a, AssetStatus)}
    assert states == {"LINK": OK, "BTC": DEP, "ETH": WD, "BNB": DEP}
    assert isinstance(got[-1], Rejected)
    btc = next(a for a in got if isinstance(a, AssetStatus) and a.asset == "BTC")
    assert "Deposit Suspended" in btc.detail
    assert parse_system_status('{"status":0,"msg":"normal"}', 1) == ""
    assert parse_system_status('{"status":1,"msg":"system_maintenance"}', 1) == "system_maintenance"
    assert isinstance(parse_system_status('{"status":7}', 1), Rejected)
    assert isinstance(parse_system_status("<html>", 1), Rejected)


def test_market_status_is_the_base_coin_and_the_system() -> None:
    assets = {"BTC": AssetStatus("binance", "BTC", DEP, "BTC deposit=off"),
              "USDT": AssetStatus("binance", "USDT", WD, "")}
    s = market_status("binance", "BTCUSDT", "BTC", assets)
    assert (s.state, s.detail) == (DEP, "BTC: BTC deposit=off")  # the quote's flags stay per asset
    assert market_status("binance", "BTCUSDT", "BTC", assets, system_halted="system_maintenance").state == DEP | HALT
    assert market_status("binance", "ETHUSDT", "ETH", assets).state == DEP | WD  # no wallet entry: cannot move it
    assert market_status("binance", "BTCUSDT", "BTC", assets, symbol_state=HALT).state == DEP | HALT


async def _post(url: str, body: dict[str, Any]) -> int:
    async with aiohttp.ClientSession() as s, s.post(url + "/fake/wallet", json=body) as r:
        return r.status


@needs_books
def test_binance_client_reads_the_fakes_flags() -> None:
    async def body(fv: FakeVenues, info: dict[str, Any]) -> None:
        b = info["binance"]
        async with BinanceClient(b["rest"], b["api_key"], b["secret"]) as c:
            await c.sync_time()
            assert [(s.symbol, s.state) for s in await c.market_status(["BTCUSDT", "NOPE"])] == [
                ("BTCUSDT", OK), ("NOPE", HALT)]
            assert await _post(b["rest"], {"suspend": {"BTC": ["deposit"]}, "maintenance": True}) == 200
            (st,) = await c.market_status(["BTCUSDT"])
            assert st.state == DEP | HALT and "system_maintenance" in st.detail and "Deposit Suspended" in st.detail
            assert (await c.wallet_status())["USDT"].state == OK
            assert await _post(b["rest"], {"suspend": {"BTC": []}, "maintenance": False}) == 200
            assert (await c.market_status(["BTCUSDT"]))[0].state == OK
            assert await _post(b["rest"], {"suspend": {"BTC": ["sideways"]}}) == 400
        async with BinanceClient(b["rest"], b["api_key"], "0" * 64) as bad:
            await bad.sync_time()
            with pytest.raises(Exception, match="auth"):  # the signed endpoint checks the signature
                await bad.wallet_status()
    with_fakes(body)


@needs_books
def test_upbit_client_reads_wallet_flags_and_instruments() -> None:
    async def body(fv: FakeVenues, info: dict[str, Any]) -> None:
        u = info["upbit"]
        c = UpbitClient(u["rest"] + "/v1", u["access_key"], u["secret"])
        try:
            assert [(s.symbol, s.state) for s in await c.market_status(["KRW-BTC"])] == [("KRW-BTC", OK)]
            assert fv.upbit is not None
            fv.upbit.wallet.suspend("BTC", withdraw=True)
            (st,) = await c.market_status(["KRW-BTC"])
            assert (st.state, st.detail) == (WD, "BTC: BTC deposit_only")
            assert await c.load_rules(["KRW-BTC"]) == {"KRW-BTC": MarketRules("KRW-BTC", Decimal(1000))}
            off = await c.place(PlaceOrder("ins-1", "KRW-BTC", Side.BUY, OrderType.LIMIT, Decimal("0.001"),
                                           Decimal(150_000_500)))
            assert (off.state, off.reason) == (OrderState.REJECTED, RejectReason.INVALID)
            assert "instruments tick_size" in off.detail
        finally:
            await c.close()
    with_fakes(body)


@needs_books
def test_ccxt_reads_the_fakes_status_as_our_adapters_do() -> None:
    ccxt = pytest.importorskip("ccxt.async_support")

    async def body(fv: FakeVenues, info: dict[str, Any]) -> None:
        b, u = info["binance"], info["upbit"]
        bx = ccxt.binance({"apiKey": b["api_key"], "secret": b["secret"],
                           "options": {"fetchCurrencies": True, "fetchMargins": False,
                                       "adjustForTimeDifference": False}})
        bx.urls["api"]["sapi"] = b["rest"] + "/sapi/v1"
        ux = ccxt.upbit({"apiKey": u["access_key"], "secret": u["secret"]})
        ux.urls["api"]["public"] = ux.urls["api"]["private"] = u["rest"]
        assert fv.binance is not None and fv.upbit is not None
        fv.binance.wallet.suspend("BTC", deposit=True)
        fv.binance.wallet.maintenance = True
        fv.upbit.wallet.suspend("BTC", deposit=True, withdraw=True)
        try:
            async with BinanceClient(b["rest"], b["api_key"], b["secret"]) as ours:
                await ours.sync_time()
                assert (await bx.fetch_status())["status"] == "maintenance"
                assert await ours.system_status() == "system_maintenance"
                theirs = await bx.fetch_currencies()
                wallet = await ours.wallet_status()
                for coin in ("BTC", "USDT"):
                    net = theirs[coin]["networks"][coin]
                    assert (not net["deposit"], not net["withdraw"]) == (
                        bool(wallet[coin].state & DEP), bool(wallet[coin].state & WD)), coin
                assert wallet["BTC"].state == DEP
            raw = await ux.private_get_status_wallet()  # ccxt's own JWT; no parser of its own for it
            mine = UpbitClient(u["rest"] + "/v1", u["access_key"], u["secret"])
            try:
                assert {a.asset: a.state for a in parse_wallet_status(json.dumps(raw), 0)
                        if isinstance(a, AssetStatus)} == {k: v.state for k, v in (await mine.wallet_status()).items()}
                ins = await ux.public_get_orderbook_instruments({"markets": "KRW-BTC"})
                assert rules_from(parse_instruments(json.dumps(ins), 0)) == await mine.load_rules(["KRW-BTC"])
            finally:
                await mine.close()
        finally:
            await bx.close()
            await ux.close()
    with_fakes(body)
