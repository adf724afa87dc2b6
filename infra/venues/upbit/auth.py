"""Upbit JWT (brief §A5) with the standard library: HS256 over {access_key, nonce, query_hash, query_hash_alg}.

Why not PyJWT: the token is three base64url parts and one HMAC; 30 lines here, no dependency, and the fake
venue verifies with the same code. ccxt's own signing is the independent check (tests/test_upbit_auth.py).
The query hash is SHA-512 of the raw (not percent-encoded) ``k=v&k2=v2`` string in the order sent, arrays as
``key[]=v1&key[]=v2``; a JSON body is hashed as the same string built from its keys in body order.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from .numbers import plain

Params = Sequence[tuple[str, str]]
_ALGS = {"HS256": hashlib.sha256, "HS512": hashlib.sha512}


class AuthError(ValueError):
    """A token that does not verify (bad shape, algorithm, signature or query hash)."""


def _value(v: Any) -> str:
    if isinstance(v, Decimal):
        return plain(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def flatten(params: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> list[tuple[str, str]]:
    """Params in the order given; a list value becomes ``key[]`` repeated (``key`` already ending ``[]`` too)."""
    items = params.items() if isinstance(params, Mapping) else params
    out: list[tuple[str, str]] = []
    for k, v in items:
        if v is None:
            continue
        if isinstance(v, list | tuple):
            key = k if k.endswith("[]") else k + "[]"
            out.extend((key, _value(x)) for x in v)
        else:
            out.append((k, _value(v)))
    return out


def query_string(params: Params) -> str:
    """The raw query string that is sent and hashed (values are URL-safe: ids, codes, decimals)."""
    return "&".join(f"{k}={v}" for k, v in params)


def query_hash(query: str) -> str:
    return hashlib.sha512(query.encode()).hexdigest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


_HEADERS = {alg: _b64(json.dumps({"alg": alg, "typ": "JWT"}, separators=(",", ":")).encode()) for alg in _ALGS}
# the token's first part is the same for every request: made once (the order path signs on every send)


def make_token(access_key: str, secret: str, query: str | None, *, nonce: str | None = None,
               alg: str = "HS256") -> str:
    """A JWT for one request; ``query`` is the exact string sent (None or "" when the request has no params)."""
    payload: dict[str, str] = {"access_key": access_key, "nonce": nonce or str(uuid.uuid4())}
    if query:
        payload["query_hash"] = query_hash(query)
        payload["query_hash_alg"] = "SHA512"
    header = _HEADERS[alg]
    body = _b64(json.dumps(payload, separators=(",", ":")).encode())
    signing_input = f"{header}.{body}".encode()
    sig = hmac.new(secret.encode(), signing_input, _ALGS[alg]).digest()
    return f"{header}.{body}.{_b64(sig)}"


def authorization(access_key: str, secret: str, params: Params) -> dict[str, str]:
    """The Authorization header for a request with these params (query or flattened JSON body)."""
    return {"Authorization": "Bearer " + make_token(access_key, secret, query_string(params))}


def verify_token(token: str, secret: str, query: str | None = None) -> dict[str, Any]:
    """Decode and check a token (HS256 or HS512, as Upbit accepts both); with ``query``, check its hash.

    Returns the payload; raises AuthError. Used by tests and by a fake venue to reject as Upbit would."""
    parts = token.removeprefix("Bearer ").split(".")
    if len(parts) != 3:
        raise AuthError("jwt_verification: not three parts")
    try:
        header = json.loads(_unb64(parts[0]))
        payload = json.loads(_unb64(parts[1]))
        sig = _unb64(parts[2])
    except (ValueError, TypeError) as exc:
        raise AuthError(f"jwt_verification: {type(exc).__name__}") from None
    if not isinstance(header, dict) or header.get("alg") not in _ALGS or not isinstance(payload, dict):
        raise AuthError("jwt_verification: bad header")
    want = hmac.new(secret.encode(), f"{parts[0]}.{parts[1]}".encode(), _ALGS[header["alg"]]).digest()
    if not hmac.compare_digest(want, sig):
        raise AuthError("jwt_verification: bad signature")
    if not isinstance(payload.get("access_key"), str) or not isinstance(payload.get("nonce"), str):
        raise AuthError("jwt_verification: missing access_key or nonce")
    if query:
        if payload.get("query_hash_alg") != "SHA512" or payload.get("query_hash") != query_hash(query):
            raise AuthError("invalid_query_payload")
    elif "query_hash" in payload:
        raise AuthError("invalid_query_payload: a hash for a request without params")
    return payload
