"""Upbit JWT: byte-identical to ccxt's own signing for the same request and nonce, round trips, array params."""

from __future__ import annotations

import hashlib

import pytest

from arbitrage_lite.core.client_ids import ID_PATTERN, format_client_id
from arbitrage_lite.infra.venues.upbit import auth

ccxt = pytest.importorskip("ccxt")


def _ccxt_token(method: str, path: str, params: dict[str, str], nonce: str) -> str:
    ex = ccxt.upbit({"apiKey": "my-access", "secret": "my-secret"})
    ex.uuid = lambda: nonce  # fix ccxt's nonce so both sides sign the same payload
    headers = ex.sign(path, ["private"], method, params)["headers"]
    return str(headers["Authorization"]).removeprefix("Bearer ")


@pytest.mark.parametrize(("method", "path", "params"), [
    ("POST", "orders", {"market": "KRW-BTC", "side": "bid", "volume": "0.01", "price": "100000000",
                        "ord_type": "limit", "identifier": "al-run1-1-r1-u"}),
    ("POST", "orders", {"market": "KRW-BTC", "side": "bid", "ord_type": "price", "price": "10000",
                        "identifier": "al-run1-2-r1-u"}),
    ("GET", "order", {"identifier": "al-run1-2-r1-u"}),
    ("DELETE", "order", {"identifier": "al-run1-2-r1-u"}),
    ("GET", "accounts", {}),
])
def test_token_matches_ccxt_byte_for_byte(method: str, path: str, params: dict[str, str]) -> None:
    nonce = "5f0e7f0c-7d3c-4b8e-9a59-1b7b2f3a9c11"
    ours = auth.make_token("my-access", "my-secret", auth.query_string(auth.flatten(params)), nonce=nonce)
    assert ours == _ccxt_token(method, path, params, nonce)
    payload = auth.verify_token(ours, "my-secret", auth.query_string(auth.flatten(params)))
    assert payload["nonce"] == nonce
    assert ("query_hash" in payload) == bool(params)


def test_brief_test_vector() -> None:
    q = "market=KRW-BTC&side=bid&volume=0.01&price=100000000&ord_type=limit"
    assert auth.query_hash(q).startswith("04f10e7f849051645e088a42")
    assert auth.query_hash(q).endswith("33750dc")


def test_array_params_hash_as_key_brackets_repeated() -> None:
    params = auth.flatten({"market": "KRW-BTC", "states": ["wait", "watch"]})
    q = auth.query_string(params)
    assert q == "market=KRW-BTC&states[]=wait&states[]=watch"
    token = auth.make_token("a", "s", q)
    payload = auth.verify_token(token, "s", q)
    assert payload["query_hash"] == hashlib.sha512(q.encode()).hexdigest()
    with pytest.raises(auth.AuthError, match="invalid_query_payload"):
        auth.verify_token(token, "s", "market=KRW-BTC&states[]=watch&states[]=wait")  # order matters


def test_fresh_nonce_each_token_and_hs512_accepted() -> None:
    a = auth.verify_token(auth.make_token("a", "s", None), "s")
    b = auth.verify_token(auth.make_token("a", "s", None), "s")
    assert a["nonce"] != b["nonce"]
    auth.verify_token(auth.make_token("a", "s", "x=1", alg="HS512"), "s", "x=1")


def test_bad_tokens_refused() -> None:
    token = auth.make_token("a", "s", "x=1")
    for bad in (token + "x", token.replace(".", "", 1), "a.b.c", ""):
        with pytest.raises(auth.AuthError):
            auth.verify_token(bad, "s", "x=1")
    with pytest.raises(auth.AuthError, match="bad signature"):
        auth.verify_token(token, "other-secret", "x=1")


def test_client_ids_fit_upbit_identifier_rules() -> None:
    longest = format_client_id("abcd", "abcdefgh", 36**8 - 1, "abcdefgh", "abcd")
    assert len(longest) <= 36 and ID_PATTERN.fullmatch(longest)
    # an identifier goes raw into the hashed query: it must need no percent-encoding
    assert all(c.isalnum() or c in "-_" for c in longest)
