"""ccxt (an independent client, its own signing) against the fake venues: the proof they speak the real protocols.

Both fakes run in-process on free ports with the recorded BTC books (orderbook_snapshots, 2025-08-24).
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

ccxt = pytest.importorskip("ccxt.async_support")

from fake_session import with_fakes  # noqa: E402

from arbitrage_lite.infra.venues.fake.faults import Faults  # noqa: E402
from arbitrage_lite.infra.venues.fake.server import STATIC_BOOKS, FakeVenues  # noqa: E402

pytestmark = pytest.mark.skipif(not all(p.is_file() for v in STATIC_BOOKS.values() for p in v.values()),
                                reason="the shared data set (orderbook_snapshots) is not here")


def _binance(info: dict[str, Any], secret: str | None = None) -> Any:
    ex = ccxt.binance({"apiKey": info["binance"]["api_key"], "secret": secret or info["binance"]["secret"],
                       "options": {"fetchMarkets": {"types": ["spot"]}, "fetchMargins": False,
                                   "fetchCurrencies": False, "adjustForTimeDifference": False}})
    ex.urls["api"]["public"] = ex.urls["api"]["private"] = info["binance"]["rest"] + "/api/v3"
    return ex


def _upbit(info: dict[str, Any], secret: str | None = None) -> Any:
    ex = ccxt.upbit({"apiKey": info["upbit"]["access_key"], "secret": secret or info["upbit"]["secret"]})
    ex.urls["api"]["public"] = ex.urls["api"]["private"] = info["upbit"]["rest"]
    return ex


def test_binance_round_trip_with_ccxt() -> None:
    async def body(fv: FakeVenues, info: dict[str, Any]) -> None:
        ex = _binance(info)
        try:
            markets = await ex.load_markets()
            assert list(markets) == ["BTC/USDT"] and markets["BTC/USDT"]["precision"]["price"] == 0.01
            book = await ex.fetch_order_book("BTC/USDT", 5)
            assert book["bids"][0] == [115279.25, 3.06231] and book["asks"][0] == [115279.26, 8.61031]
            bal = await ex.fetch_balance()
            assert bal["USDT"]["free"] == 100000 and bal["BTC"]["free"] == 1
            placed = await ex.create_order("BTC/USDT", "limit", "buy", 0.001, 100000, {"clientOrderId": "arb-1"})
            assert placed["status"] == "open" and placed["clientOrderId"] == "arb-1"
            assert (await ex.fetch_balance())["USDT"]["used"] == 100  # 0.001 x 100,000 locked
            fetched = await ex.fetch_order(placed["id"], "BTC/USDT")
            assert fetched["status"] == "open" and fetched["amount"] == 0.001 and fetched["price"] == 100000
            assert [o["id"] for o in await ex.fetch_open_orders("BTC/USDT")] == [placed["id"]]
            cancelled = await ex.cancel_order(placed["id"], "BTC/USDT")
            assert cancelled["status"] == "canceled"
            filled = await ex.create_order("BTC/USDT", "market", "buy", 0.01)
            assert filled["status"] == "closed" and filled["filled"] == 0.01 and filled["average"] == 115279.26
            assert filled["fee"] == {"currency": "BTC", "cost": 0.00001}
            bal = await ex.fetch_balance()
        finally:
            await ex.close()
        # exact: 0.01 BTC bought at 115,279.26, 0.1% commission in BTC
        assert fv.binance is not None
        assert fv.binance.engine.free["BTC"] == Decimal("1.00999")
        assert fv.binance.engine.free["USDT"] == Decimal("100000") - Decimal("1152.7926")
        assert bal["BTC"]["total"] == 1.00999
    with_fakes(body)


def test_upbit_round_trip_with_ccxt() -> None:
    async def body(fv: FakeVenues, info: dict[str, Any]) -> None:
        ex = _upbit(info)
        try:
            assert list(await ex.load_markets()) == ["BTC/KRW"]
            book = await ex.fetch_order_book("BTC/KRW", 5)
            assert book["bids"][0] == [159508000.0, 0.02069352] and book["asks"][0] == [159523000.0, 0.0046748]
            assert (await ex.fetch_balance())["KRW"]["free"] == 100_000_000
            placed = await ex.create_order("BTC/KRW", "limit", "buy", 0.001, 150_000_000, {"clientOrderId": "u-1"})
            assert placed["status"] == "open"
            fetched = await ex.fetch_order(placed["id"])
            assert fetched["status"] == "open" and fetched["amount"] == 0.001 and fetched["clientOrderId"] == "u-1"
            # the fee is reserved on top of a bid's value (0.05%)
            assert (await ex.fetch_balance())["KRW"]["used"] == 150_075
            await ex.cancel_order(placed["id"])  # Upbit answers with the order as it was (state wait)
            assert (await ex.fetch_order(placed["id"]))["status"] == "canceled"
            sold = await ex.create_order("BTC/KRW", "market", "sell", 0.01)
            got = await ex.fetch_order(sold["id"])
            assert got["status"] == "closed" and got["filled"] == 0.01 and len(got["info"]["trades"]) == 1
            bought = await ex.create_order("BTC/KRW", "market", "buy", None, None, {"cost": 1_000_000})
            got = await ex.fetch_order(bought["id"])
            # market buy by KRW: the unspendable dust is cancelled, so it ends 'cancel' with a fill (brief §A4)
            assert got["status"] == "canceled" and got["filled"] == 0.00626866
        finally:
            await ex.close()
        assert fv.upbit is not None
        e = fv.upbit.engine
        assert e.free["BTC"] == Decimal("1") - Decimal("0.01") + Decimal("0.00626866")
        # sold 0.01 at the best bid 159,508,000 less 0.05%; bought for 999,998.6369 plus 0.05% (fee in KRW)
        sold_krw = Decimal("1595080") - Decimal("797.54")
        bought_krw = Decimal("999998.6369") + Decimal("499.99931845")
        assert e.locked["KRW"] == 0 and e.free["KRW"] == Decimal(100_000_000) + sold_krw - bought_krw
    with_fakes(body)


def test_wrong_secret_is_refused_by_both() -> None:
    async def body(fv: FakeVenues, info: dict[str, Any]) -> None:
        b, u = _binance(info, secret="0" * 64), _upbit(info, secret="0" * 40)
        try:
            await b.load_markets()
            with pytest.raises(ccxt.BaseError) as be:
                await b.fetch_balance()
            await u.load_markets()
            with pytest.raises(ccxt.BaseError) as ue:
                await u.fetch_balance()
        finally:
            await b.close()
            await u.close()
        assert '"code":-1022' in str(be.value) and "Signature for this request is not valid." in str(be.value)
        assert '"name":"jwt_verification"' in str(ue.value)
        assert fv.binance is not None and not fv.binance.engine.orders
    with_fakes(body)


def test_binance_error_after_accept_then_query_finds_the_order() -> None:
    async def body(fv: FakeVenues, info: dict[str, Any]) -> None:
        ex = _binance(info)
        try:
            await ex.load_markets()
            fv.binance_faults.update({"error_after_accept": 1})
            with pytest.raises(ccxt.BaseError):
                await ex.create_order("BTC/USDT", "limit", "buy", 0.001, 100000, {"clientOrderId": "unk-1"})
            found = await ex.fetch_order(None, "BTC/USDT", {"origClientOrderId": "unk-1"})
            assert found["status"] == "open" and found["clientOrderId"] == "unk-1"
            with pytest.raises(ccxt.InvalidOrder):  # the same id while it is open: -2010 Duplicate order sent.
                await ex.create_order("BTC/USDT", "limit", "buy", 0.001, 100000, {"clientOrderId": "unk-1"})
            fv.binance_faults.update({"drop": 2})  # aiohttp retries a GET once on a dropped keep-alive connection
            with pytest.raises(ccxt.NetworkError):
                await ex.fetch_open_orders("BTC/USDT")
            fv.binance_faults.update({"reject_orders": 1})
            with pytest.raises(ccxt.BaseError):
                await ex.create_order("BTC/USDT", "limit", "buy", 0.001, 100000)
            assert len(await ex.fetch_open_orders("BTC/USDT")) == 1
        finally:
            await ex.close()
    with_fakes(body, binance_faults=Faults())


def test_upbit_identifier_is_never_reused_and_rules_hold() -> None:
    async def body(fv: FakeVenues, info: dict[str, Any]) -> None:
        ex = _upbit(info)
        try:
            await ex.load_markets()
            fv.upbit_faults.update({"error_after_accept": 1})
            with pytest.raises(ccxt.BaseError):
                await ex.create_order("BTC/KRW", "limit", "buy", 0.001, 150_000_000, {"clientOrderId": "id-1"})
            found = ex.parse_order(await ex.private_get_order({"identifier": "id-1"}))  # 5xx, yet it exists
            assert found["status"] == "open"
            with pytest.raises(ccxt.BaseError):  # an identifier is burnt even after a failure
                await ex.create_order("BTC/KRW", "limit", "buy", 0.001, 150_000_000, {"clientOrderId": "id-1"})
            for req, name in ((dict(price="150000100", volume="0.001"), "invalid_price_bid"),  # tick 1,000 KRW
                              (dict(price="150000000", volume="0.00003"), "under_min_total_bid")):  # 4,500 KRW
                with pytest.raises(ccxt.BaseError) as e:
                    await ex.private_post_orders({"market": "KRW-BTC", "side": "bid", "ord_type": "limit", **req})
                assert f'"name":"{name}"' in str(e.value)
        finally:
            await ex.close()
    with_fakes(body)


def test_binance_filters_and_rate_limits() -> None:
    async def body(fv: FakeVenues, info: dict[str, Any]) -> None:
        ex = _binance(info)
        ex.enableRateLimit = False
        try:
            await ex.load_markets()  # weight 20
            base = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC"}
            for req, name in (({"price": "100000.001", "quantity": "0.001"}, "PRICE_FILTER"),
                              ({"price": "100000", "quantity": "0.000015"}, "LOT_SIZE"),
                              ({"price": "100000", "quantity": "0.00004"}, "NOTIONAL")):  # 4 USDT < 5
                with pytest.raises(ccxt.BaseError) as e:
                    await ex.private_post_order({**base, **req})
                assert f'"code":-1013,"msg":"Filter failure: {name}"' in str(e.value)
            # below 0.2 x the average price (the book's mid): ccxt knows this exact venue message as InvalidOrder
            with pytest.raises(ccxt.InvalidOrder, match="Filter failure: PERCENT_PRICE_BY_SIDE"):
                await ex.private_post_order({**base, "price": "20000", "quantity": "0.001"})
            codes = []
            for call in ("exchangeinfo",) * 5 + ("time",):  # used 24 of 40: exchangeInfo (20) is refused
                try:
                    await getattr(ex, f"public_get_{call}")()
                    codes.append(200)
                except ccxt.DDoSProtection as e:
                    codes.append(418 if " 418 " in str(e) else 429)
            # refused three times (429), then the IP is banned (418), even for the cheapest call
            assert codes == [429, 429, 429, 418, 418, 418]
        finally:
            await ex.close()
    with_fakes(body, binance_weight_limit=40, binance_weight_window_ms=3_600_000)


def test_replay_from_the_store(tmp_path: Path) -> None:
    """Books imported with the project's importer are what the fakes serve, in recorded order."""
    from arbitrage_lite.infra.data.importer import run_import

    run_import([p for v in STATIC_BOOKS.values() for p in v.values()], tmp_path / "store")

    async def body(fv: FakeVenues, info: dict[str, Any]) -> None:
        ex = _upbit(info)
        try:
            await ex.load_markets()
            first = await ex.fetch_order_book("BTC/KRW")
            assert first["bids"][0] == [159508000.0, 0.02069352]
            assert fv.upbit is not None and len(fv.upbit.engine.books) == 1
        finally:
            await ex.close()
    with_fakes(body, store=tmp_path / "store")
