"""HMAC-SHA256 signing: the Binance docs vectors (brief B4) and ccxt's own signing as an independent check."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest

from arbitrage_lite.infra.venues.binance.sign import ClockSync, headers, signature, signed_query, ws_api_signature

SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"  # Binance docs example secret


def test_docs_rest_vector() -> None:
    payload = ("symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000"
               "&timestamp=1499827319559")
    assert signature(SECRET, payload) == "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
    params = [("symbol", "LTCBTC"), ("side", "BUY"), ("type", "LIMIT"), ("timeInForce", "GTC"), ("quantity", "1"),
              ("price", "0.1")]
    assert signed_query(params, SECRET, 1499827319559) == (
        payload + "&signature=c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71")
    assert headers("k") == {"X-MBX-APIKEY": "k"}


def test_docs_ws_api_vector() -> None:
    params = {"apiKey": "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A", "price": "52000.00",
              "quantity": "0.01000000", "recvWindow": "100", "side": "SELL", "symbol": "BTCUSDT",
              "timeInForce": "GTC", "timestamp": "1645423376532", "type": "LIMIT", "signature": "ignored"}
    assert ws_api_signature(params, SECRET) == "aa1b5712c094bc4e57c05a1a5c1fd8d88dcd628338ea863fec7b88e59fe2db24"


def test_non_ascii_is_percent_encoded_before_signing() -> None:
    q = signed_query([("newClientOrderId", "주문1")], SECRET, 1)
    assert q.startswith("newClientOrderId=%EC%A3%BC%EB%AC%B81&recvWindow=5000&timestamp=1&signature=")


@pytest.mark.parametrize("method", ["POST", "GET", "DELETE"])
def test_same_signature_as_ccxt(method: str) -> None:
    ccxt = pytest.importorskip("ccxt")
    ex = ccxt.binance({"apiKey": "key", "secret": SECRET})
    ex.milliseconds = lambda: 1499827319559
    params = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "IOC", "quantity": "0.00012",
              "price": "61837.63", "newClientOrderId": "al-run1-0001-r1-b"}
    out = ex.sign("order", ["private"], method, dict(params))
    wire = out["body"] if method == "POST" else out["url"].split("?", 1)[1]
    payload, _, sig = wire.rpartition("&signature=")
    assert signature(SECRET, payload) == sig  # ccxt's own string, our HMAC
    mine = signed_query([(k, v) for k, v in parse_qsl(payload) if k not in ("timestamp", "recvWindow")], SECRET,
                        1499827319559, int(dict(parse_qsl(payload)).get("recvWindow", 5000)))
    assert dict(parse_qsl(mine)) | {"signature": ""} == dict(parse_qsl(payload)) | {"signature": ""}
    assert out["headers"]["X-MBX-APIKEY"] == "key"


def test_clock_sync_keeps_the_shortest_round_trip() -> None:
    c = ClockSync()
    c.observe(sent_ms=1000, server_ms=5000, received_ms=1100)  # rtt 100: offset 5000-1050
    assert c.offset_ms == 3950 and c.timestamp(2000) == 5950
    c.observe(sent_ms=2000, server_ms=9999, received_ms=2500)  # slower round trip: ignored
    assert c.offset_ms == 3950
    c.observe(sent_ms=3000, server_ms=6960, received_ms=3020)  # faster: taken
    assert c.offset_ms == 3950 and c.rtt_ms == 20
    c.observe(sent_ms=10, server_ms=0, received_ms=5)  # clock went backwards: ignored
    assert c.rtt_ms == 20
