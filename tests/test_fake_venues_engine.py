"""The fakes' pure parts: matching engine (exact Decimal), Binance HMAC on the docs' test vector, Upbit JWT."""

from __future__ import annotations

import hashlib
from decimal import Decimal as D

from arbitrage_lite.infra.venues.fake.auth import binance_check, jwt_decode, jwt_encode, upbit_hash_ok
from arbitrage_lite.infra.venues.fake.engine import Book, Engine, MarketSpec

SPEC = MarketSpec("BTCUSDT", "BTC", "USDT", D("0.00001"), D("0.001"), D("0.001"), "received")


def _engine() -> Engine:
    e = Engine({"BTCUSDT": SPEC}, {"USDT": D(1000), "BTC": D(1)})
    e.set_book("BTCUSDT", Book(((D(100), D(2)),), ((D(101), D("0.5")), (D(102), D(5)))), 0)
    return e


def test_resting_order_fills_as_maker_when_a_later_book_crosses_it() -> None:
    e = _engine()
    o = e.place("BTCUSDT", "buy", "limit", price=D("100.5"), qty=D(1), now_ms=1)
    assert o.status == "new" and e.locked["USDT"] == D("100.5") and e.free["USDT"] == D("899.5")
    e.set_book("BTCUSDT", Book(((D(99), D(1)),), ((D(100), D("0.4")),)), 2)
    assert o.status == "partial" and o.filled == D("0.4") and o.fills[0].maker and o.fills[0].price == D("100.5")
    e.cancel(o.order_id, 3)
    # paid 0.4 x 100.5 = 40.2; the rest of the lock returns; 0.1% commission in BTC
    assert e.free["USDT"] == D("959.8") and e.locked["USDT"] == 0 and e.free["BTC"] == D("1.3996")


def test_taker_walks_levels_and_ioc_fok_expire() -> None:
    e = _engine()
    o = e.place("BTCUSDT", "buy", "limit", price=D(102), qty=D(1), tif="IOC", now_ms=1)
    assert o.status == "filled" and [f.price for f in o.fills] == [D(101), D(102)] and o.filled_quote == D("101.5")
    fok = e.place("BTCUSDT", "buy", "limit", price=D(102), qty=D(5), tif="FOK", now_ms=2)
    assert fok.status == "expired" and fok.filled == 0 and e.locked["USDT"] == 0
    ioc = e.place("BTCUSDT", "sell", "limit", price=D(101), qty=D("0.1"), tif="IOC", now_ms=3)
    assert ioc.status == "expired" and ioc.filled == 0 and e.locked["BTC"] == 0


def test_binance_signature_docs_vector_and_upbit_jwt() -> None:
    secret = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
    q = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
    sig = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
    assert binance_check(secret, f"{q}&signature={sig}", "")
    assert binance_check(secret, "", f"{q}&signature={sig.upper()}")  # hex is case-insensitive
    assert not binance_check(secret, f"{q}&signature={sig[:-1]}0", "")
    pairs = [("market", "KRW-BTC"), ("side", "bid")]
    claims = {"access_key": "k", "nonce": "n",
              "query_hash": hashlib.sha512(b"market=KRW-BTC&side=bid").hexdigest(), "query_hash_alg": "SHA512"}
    for alg in ("HS256", "HS512"):
        got = jwt_decode(jwt_encode(claims, "s", alg), "s")
        assert got == claims and upbit_hash_ok(got, pairs) and not upbit_hash_ok(got, pairs[:1])
    assert jwt_decode(jwt_encode(claims, "s"), "wrong") is None


def test_a_new_book_is_matched_against_open_orders_only_and_lookups_are_indexed() -> None:
    """Long runs place many IOCs: a book update and a lookup must not scan every order ever placed."""
    e = _engine()
    for n in range(200):  # IOCs that expire unfilled: closed at once
        e.place("BTCUSDT", "sell", "limit", price=D(150), qty=D("0.01"), tif="IOC", client_id=f"x{n}", now_ms=1)
    rest = e.place("BTCUSDT", "buy", "limit", price=D("100.5"), qty=D(1), client_id="rest", now_ms=2)
    again = e.place("BTCUSDT", "buy", "limit", price=D(90), qty=D("0.01"), client_id="x7", now_ms=3)
    assert [o.order_id for o in e.open_orders("BTCUSDT")] == [rest.order_id, again.order_id]
    assert len(e._maybe_open["BTCUSDT"]) == 2  # the 200 closed ones were pruned by the listing
    traded = e.set_book("BTCUSDT", Book(((D(99), D(1)),), ((D(100), D("0.4")),)), 4)
    assert traded == [rest] and rest.filled == D("0.4")
    assert e.by_client_id("x7")[-1] is again and e.by_client_id("x7")[0].status == "expired"
    assert e.by_client_id("nobody") == []
