"""Server-side request authentication of the fake venues (pure: no I/O).

Binance: HMAC-SHA256 hex over the query string concatenated with the form body, as sent (brief §B4).
Upbit: JWT (HS256 or HS512) whose ``query_hash`` is the SHA-512 of the request's parameters as ``k=v&...``
in the order sent; ccxt hashes the un-percent-encoded form, so both the raw and the encoded forms are
accepted (brief §A5, Part D: the official wording was not retrieved).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, unquote_plus


def binance_signature(secret: str, payload: str) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def binance_check(secret: str, query: str, body: str) -> bool:
    """True if the ``signature`` parameter (in the query or the body) signs everything else, as sent."""
    for where in ("query", "body"):
        text = query if where == "query" else body
        parts = text.split("&") if text else []
        sigs = [p for p in parts if p.startswith("signature=")]
        if not sigs:
            continue
        rest = "&".join(p for p in parts if not p.startswith("signature="))
        payload = rest + body if where == "query" else query + rest
        got = unquote_plus(sigs[-1][len("signature="):]).lower()
        return hmac.compare_digest(got, binance_signature(secret, payload))
    return False


def binance_ws_check(secret: str, params: dict[str, Any]) -> bool:
    """WS API signing: every param but ``signature``, sorted by key, ``k=v`` joined by ``&``, not encoded."""
    sig = params.get("signature")
    payload = "&".join(f"{k}={params[k]}" for k in sorted(params) if k != "signature")
    return isinstance(sig, str) and hmac.compare_digest(sig.lower(), binance_signature(secret, payload))


def _b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt_encode(payload: dict[str, Any], secret: str, alg: str = "HS256") -> str:
    """A JWT as Upbit's clients make it (used by tests and the fake's own smoke checks)."""
    head = _b64url(json.dumps({"alg": alg, "typ": "JWT"}, separators=(",", ":")).encode())
    body = _b64url(json.dumps(payload, separators=(",", ":")).encode())
    digest = hashlib.sha256 if alg == "HS256" else hashlib.sha512
    sig = _b64url(hmac.new(secret.encode(), f"{head}.{body}".encode(), digest).digest())
    return f"{head}.{body}.{sig}"


def jwt_decode(token: str, secret: str) -> dict[str, Any] | None:
    """The payload of an HS256/HS512 token signed with ``secret``, or None if it does not verify."""
    try:
        head_b64, body_b64, sig_b64 = token.split(".")
        head = json.loads(_b64url_decode(head_b64))
        digest = {"HS256": hashlib.sha256, "HS512": hashlib.sha512}.get(head.get("alg"))
        if digest is None:
            return None
        want = hmac.new(secret.encode(), f"{head_b64}.{body_b64}".encode(), digest).digest()
        if not hmac.compare_digest(want, _b64url_decode(sig_b64)):
            return None
        payload = json.loads(_b64url_decode(body_b64))
    except (ValueError, TypeError, AttributeError):
        return None
    return payload if isinstance(payload, dict) else None


def upbit_query_strings(pairs: Iterable[tuple[str, str]]) -> tuple[str, str]:
    """The raw (``k=v&...``) and percent-encoded forms of the parameters, in the order sent."""
    items = list(pairs)
    raw = "&".join(f"{k}={v}" for k, v in items)
    encoded = "&".join(f"{quote(k, safe='[]')}={quote(v, safe='')}" for k, v in items)
    return raw, encoded


def flatten_json_body(body: dict[str, Any]) -> list[tuple[str, str]]:
    """A JSON body's parameters as Upbit hashes them: arrays as ``key[]=v`` repeated, in key order."""
    pairs: list[tuple[str, str]] = []
    for k, v in body.items():
        for item in v if isinstance(v, list) else [v]:
            key = k if not isinstance(v, list) or k.endswith("[]") else f"{k}[]"
            pairs.append((key, _scalar(item)))
    return pairs


def _scalar(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def upbit_hash_ok(claims: dict[str, Any], pairs: list[tuple[str, str]]) -> bool:
    """True if the token's ``query_hash`` matches the parameters (or there are none and no hash)."""
    if not pairs:
        return "query_hash" not in claims or claims.get("query_hash") == hashlib.sha512(b"").hexdigest()
    got = str(claims.get("query_hash", "")).lower()
    return any(hmac.compare_digest(got, hashlib.sha512(s.encode()).hexdigest()) for s in upbit_query_strings(pairs))
