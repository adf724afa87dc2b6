"""Fuzz: >= 10,000 seeded mutations of real Upbit payloads into parse + book; none may raise, each is counted.

Mutations: truncation, byte flips, NaN/Infinity/huge/negative/string/bool/null values, dropped keys, swapped
levels (crossed or out-of-order books), wrong JSON types, timestamps backwards. UPBIT_FUZZ_MESSAGES for more.
"""

from __future__ import annotations

import gzip
import json
import os
import random
from collections import Counter
from typing import Any

import pytest

from arbitrage_lite.core.venue import (
    Balance,
    BookSnapshot,
    MarketStatus,
    OrderEvent,
    RejectCounts,
    Rejected,
    Trade,
)
from arbitrage_lite.infra.data.sample import find_shared_data
from arbitrage_lite.infra.venues.stream_loop import Refused
from arbitrage_lite.infra.venues.upbit import book, parse, private

SHARED = find_shared_data()
N = int(os.environ.get("UPBIT_FUZZ_MESSAGES", "12000"))
_VALUES: list[Any] = [float("nan"), float("inf"), -1, 0, 1e300, "abc", "", True, None, [], {}, "1e5", 2**70,
                      -0.0, "NaN", 12.5]


def _frames() -> list[bytes]:
    assert SHARED is not None
    out = []
    with gzip.open(SHARED / "fixtures" / "cryptofeed" / "UPBIT.ws.62.0.gz", "rt") as f:
        for line in f:
            _, sep, payload = line.rstrip("\n").partition(": b'")
            if sep:
                out.append(payload[:-1].encode())
    return out


def _mutate_obj(rng: random.Random, obj: Any) -> Any:
    if isinstance(obj, dict) and obj:
        key = rng.choice(list(obj))
        op = rng.random()
        if op < 0.3:
            del obj[key]
        elif op < 0.8 or not isinstance(obj[key], dict | list):
            obj[key] = rng.choice(_VALUES)
        else:
            obj[key] = _mutate_obj(rng, obj[key])
    elif isinstance(obj, list) and obj:
        i = rng.randrange(len(obj))
        op = rng.random()
        if op < 0.3 and len(obj) > 1:
            j = rng.randrange(len(obj))
            obj[i], obj[j] = obj[j], obj[i]
        elif op < 0.5:
            del obj[i]
        else:
            obj[i] = _mutate_obj(rng, obj[i]) if isinstance(obj[i], dict | list) else rng.choice(_VALUES)
    else:
        return rng.choice(_VALUES)
    return obj


def mutate(rng: random.Random, raw: bytes) -> bytes | str:
    op = rng.random()
    if op < 0.15:
        return raw[: rng.randrange(len(raw))]
    if op < 0.3:
        b = bytearray(raw)
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        return bytes(b)
    obj = json.loads(raw)
    if op < 0.35:
        return json.dumps(rng.choice([[obj], "x", 5, None, {"ty": obj.get("ty")}]))
    if op < 0.4 and obj.get("obu"):
        unit = obj["obu"][0]
        unit["bp"] = unit["ap"] + rng.choice([0, 1])  # a crossed (or locked) top of book
        return json.dumps(obj)
    for _ in range(rng.randint(1, 3)):
        obj = _mutate_obj(rng, obj)
    return json.dumps(obj)  # floats nan/inf become NaN/Infinity literals


@pytest.mark.skipif(SHARED is None, reason="shared data set not found")
def test_fuzz_parse_and_book_never_raise() -> None:
    frames = _frames()
    rng = random.Random(20261205)
    books = book.UpbitBooks()
    counts = RejectCounts()
    kinds: Counter[str] = Counter()
    for i in range(N):
        msg = mutate(rng, frames[i % len(frames)])
        out = parse.parse_ws(msg, i)
        if isinstance(out, BookSnapshot):
            out = books.apply(out)
        if isinstance(out, Rejected):
            counts.add(out)
            kinds["rejected"] += 1
        elif isinstance(out, BookSnapshot | Trade | MarketStatus):
            kinds["accepted"] += 1
            if isinstance(out, BookSnapshot):
                assert out.bids[0].price < out.asks[0].price
                assert all(lv.price.is_finite() and lv.qty.is_finite() for lv in out.bids + out.asks)
        else:
            assert out is None
            kinds["control"] += 1
    assert sum(kinds.values()) == N  # every message counted
    assert sum(counts.counts.values()) == kinds["rejected"]
    assert "parser_error" not in counts.counts, counts.counts  # every rejection is a known reason
    assert kinds["rejected"] > N // 2
    for reason in ("bad_json", "bad_field", "nan", "crossed_book", "out_of_order"):
        assert counts.counts.get(reason, 0) > 0, counts.counts
    print(f"upbit fuzz: {N} messages {dict(kinds)} rejected by reason {counts.counts}")


def test_fuzz_order_bodies_never_raise() -> None:
    base = {"uuid": "u", "side": "bid", "ord_type": "price", "price": "10000", "state": "cancel",
            "market": "KRW-BTC", "created_at": "2025-08-24T15:03:18+09:00", "paid_fee": "5",
            "executed_volume": "0.0001", "identifier": "al-run1-1-r1-u",
            "trades": [{"uuid": "t", "price": "100000000", "volume": "0.0001", "funds": "10000"}]}
    rng = random.Random(7)
    counts: Counter[str] = Counter()
    for _ in range(3000):
        raw = mutate(rng, json.dumps(base).encode())
        out = parse.parse_order(raw, 1)
        assert isinstance(out, OrderEvent | Rejected)
        counts[out.reason if isinstance(out, Rejected) else "ok"] += 1
    assert "parser_error" not in counts, counts


MY_ORDER = {"type": "myOrder", "code": "KRW-BTC", "uuid": "ac2dc2a3-fce9", "ask_bid": "BID", "order_type": "price",
            "state": "trade", "trade_uuid": "68315169-fba4", "price": 159523000, "avg_price": 159523000,
            "volume": 0.002, "remaining_volume": None, "executed_volume": 0.002, "executed_funds": 319046,
            "paid_fee": 159.523, "trade_fee": 159.523, "is_maker": False, "identifier": "ct-1",
            "trade_timestamp": 1756000000100, "order_timestamp": 1756000000000, "timestamp": 1756000000120,
            "stream_type": "REALTIME"}
MY_ASSET = {"type": "myAsset", "asset_uuid": "e635f223", "assets": [{"currency": "KRW", "balance": 1386929.37,
            "locked": 10329.67}], "asset_timestamp": 1756000000120, "timestamp": 1756000000120}


def test_fuzz_private_frames_never_raise() -> None:
    """myOrder (trade / cancel / wait) and myAsset mutated 6,000 times: each is a value or a counted Rejected."""
    bases = [MY_ORDER, dict(MY_ORDER, state="cancel", trade_uuid=None), dict(MY_ORDER, state="wait"), MY_ASSET]
    rng = random.Random(11)
    stream = private.PrivateStream()
    kinds: Counter[str] = Counter()
    for i in range(6000):
        out = stream.on_frame(mutate(rng, json.dumps(bases[i % len(bases)]).encode()), 1)
        if isinstance(out, OrderEvent):
            assert out.filled_qty.is_finite() and out.filled_qty >= 0
            assert all(f.qty > 0 and f.price > 0 and f.fee.is_finite() for f in out.fills)
        assert out is None or isinstance(out, OrderEvent | Rejected | Refused) or (
            isinstance(out, tuple) and all(isinstance(b, Balance) for b in out))
        kinds[type(out).__name__] += 1
    assert sum(stream.rejects.counts.values()) == kinds["Rejected"] > 3000
    assert "parser_error" not in stream.rejects.counts, stream.rejects.counts
    assert stream.rejects.counts.get("duplicate", 0) > 0  # unmutated trade ids come back: deduped
    print(f"upbit private fuzz: {dict(kinds)} rejected by reason {stream.rejects.counts}")
