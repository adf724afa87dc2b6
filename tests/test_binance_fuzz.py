"""Seeded fuzz: >= 10,000 malformed Binance messages (mutations of real payloads) into the parsers and the book.

0 exceptions may escape; every message ends either as a typed value or as a counted ``Rejected``; no accepted
trade, ticker or book level carries a NaN, a non-positive price or a crossed top.
"""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from binance_payloads import SAMPLE_L2, cryptofeed_ws, l2_lines, rest

from arbitrage_lite.core.venue import BestBidAsk, BookDelta, BookSnapshot, OrderEvent, Rejected, Trade
from arbitrage_lite.infra.venues.binance import parse as p
from arbitrage_lite.infra.venues.binance import userdata as ud
from arbitrage_lite.infra.venues.binance.book import LocalBook, Sync
from arbitrage_lite.infra.venues.binance.rules import parse_exchange_info

N_PER_SEED = 1000
SEEDS = range(12)  # 12,000 messages

EXEC_REPORT = {"e": "executionReport", "E": 1499405658658, "s": "ETHBTC", "c": "c1", "S": "BUY", "o": "LIMIT",
               "f": "GTC", "q": "1.0", "p": "0.1", "C": "", "x": "TRADE", "X": "PARTIALLY_FILLED", "r": "NONE",
               "i": 4293153, "l": "0.4", "z": "0.4", "L": "0.1", "n": "0.0004", "N": "ETH", "T": 1499405658657,
               "t": 77, "Z": "0.04"}
_JUNK: list[Any] = [None, True, [], {}, "abc", "", -1, 1.5, float("nan"), float("inf"), "NaN", "-Infinity", "1e999999",
                    10**400, "9" * 400, [[None]], {"x": []}, "0x1F", "1_0", " 1 ", -0.0]


def _corpus() -> list[tuple[str, str]]:
    """(kind, payload text) from the recordings: streams, REST bodies, user events."""
    out = [("stream", js) for _, js in l2_lines(SAMPLE_L2)[:1500] if not js.startswith('{"lastUpdateId"')]
    out += [("stream", js) for js in cryptofeed_ws()]
    snap = next(js for _, js in l2_lines(SAMPLE_L2)[:20] if js.startswith('{"lastUpdateId"'))
    small = json.loads(snap)
    small["bids"], small["asks"] = small["bids"][:20], small["asks"][:20]
    out.append(("depth", json.dumps(small)))
    for name in ("binance_ccxt_POST_api_v3_order_SOLUSDT_limit_NEW_20250123.json",
                 "binance_ccxt_GET_api_v3_order_LTCUSDT_market_FILLED_20230323.json"):
        out.append(("order", json.dumps(rest(name))))
    out.append(("orders", json.dumps(rest("binance_ccxt_GET_api_v3_openOrders_LTCUSDT_20231107.json"))))
    out.append(("trades", json.dumps(rest("binance_ccxt_GET_api_v3_myTrades_LTCUSDT_20231024.json"))))
    out.append(("account", json.dumps(rest("binance_ccxt_GET_api_v3_account_20231206.json"))))
    out.append(("user", json.dumps({"subscriptionId": 0, "event": EXEC_REPORT})))
    out.append(("userstream", json.dumps({"subscriptionId": 0, "event": EXEC_REPORT})))
    out.append(("userstream", json.dumps({"e": "outboundAccountPosition", "E": 1, "u": 1,
                                          "B": [{"a": "ETH", "f": "10000.000000", "l": "0.000000"}]})))
    out.append(("userstream", '{"id":"r1","status":200,"result":{"subscriptionId":0},"rateLimits":[]}'))
    out.append(("userstream", '{"id":"r1","status":400,"error":{"code":-1022,"msg":"Signature for this request '
                              'is not valid."}}'))
    out.append(("listenkey", '{"listenKey":"pqia91ma19a5s61cv6a81va65sdf19v8a65a1a5s61cv6a81va65sdf19v8a65a1"}'))
    info = rest("binance_spot_exchangeInfo_20240908_davijr.json.gz")
    info["symbols"] = [s for s in info["symbols"] if s["symbol"] in ("BTCUSDT", "ETHUSDT")]
    out.append(("info", json.dumps(info)))
    out.append(("error", '{"code":-2010,"msg":"Duplicate order sent."}'))
    return out


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node[:6]):
            out += _paths(v, (*prefix, i))
    return out


def _set(root: Any, path: tuple[Any, ...], value: Any, delete: bool = False) -> Any:
    if not path:
        return value
    node = root
    for k in path[:-1]:
        node = node[k]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return root


def _crossed(doc: Any) -> Any:
    d = doc.get("data", doc) if isinstance(doc, dict) else doc
    if isinstance(d, dict) and "b" in d and "a" in d and isinstance(d["b"], str):
        d["b"], d["a"] = d["a"], d["b"]  # bookTicker: bid above ask
    elif isinstance(d, dict) and "bids" in d:
        d["bids"], d["asks"] = d["asks"], d["bids"]
    return doc


def _mutate(rng: random.Random, text: str) -> tuple[str, str]:
    """(mutation name, mutated text)."""
    m = rng.choice(("truncate", "swap", "nan", "huge", "missing", "crossed", "byte", "garbage"))
    if m == "truncate":
        return m, text[: rng.randrange(0, max(1, len(text)))]
    if m == "byte":
        i = rng.randrange(len(text))
        return m, text[:i] + rng.choice('{}[]",:0-9aeE.\\') + text[i + 1:]
    if m == "garbage":
        return m, rng.choice(["", "null", "[]", "{}", "1", '"x"', "[" * 5000, '{"data":' * 3000, "\x00\xff"])
    doc = json.loads(text)
    paths = _paths(doc)
    path = rng.choice(paths[1:]) if len(paths) > 1 else ()
    if m == "crossed":
        doc = _crossed(doc)
    elif m == "missing" and path:
        doc = _set(doc, path, None, delete=True)
    elif m == "nan":
        doc = _set(doc, path, rng.choice([float("nan"), "NaN", float("-inf"), "Infinity", "sNaN"]))
    elif m == "huge":
        doc = _set(doc, path, rng.choice([10**400, "1e999999", "9" * 400, -(10**30), "1e-999"]))
    else:
        doc = _set(doc, path, rng.choice(_JUNK))
    return m, json.dumps(doc)


def _check_accepted(v: Any) -> None:
    """An accepted value is sane: never a NaN price, never a crossed top, never a non-positive trade."""
    if isinstance(v, Trade):
        assert v.price.is_finite() and v.price > 0 and v.qty > 0
    elif isinstance(v, BestBidAsk):
        assert v.bid.is_finite() and v.ask.is_finite() and v.bid < v.ask
    elif isinstance(v, BookSnapshot):
        assert not (v.bids and v.asks) or v.bids[0].price < v.asks[0].price
    elif isinstance(v, BookDelta):
        assert all(lv.price > 0 and lv.qty >= 0 and lv.price.is_finite() for lv in v.bids + v.asks)


PARSERS: dict[str, Callable[[str], Any]] = {
    "stream": lambda t: p.parse_stream(t, 1),
    "depth": lambda t: p.parse_depth_snapshot(t, "BTCUSDT", 1),
    "order": lambda t: p.parse_order(t, 1),
    "orders": lambda t: p.parse_orders(t, 1),
    "trades": lambda t: p.parse_my_trades(t, 1),
    "account": lambda t: p.parse_account(t, 1),
    "user": lambda t: p.parse_user_event(t, 1),
    "userstream": lambda t: ud.UserStream().on_frame(t, 1),  # WS API answers, wrapped and bare events
    "listenkey": lambda t: ud.parse_listen_key(t, 1),
    "info": lambda t: parse_exchange_info(t, 1),
    "error": lambda t: p.parse_error(t),
}


def test_fuzz_parsers_and_book() -> None:
    corpus = _corpus()
    outcomes: Counter[str] = Counter()
    escaped: list[str] = []
    book = LocalBook("BTCUSDT")
    book.start_from_diffs()
    total = 0
    for seed in SEEDS:
        rng = random.Random(seed)
        for _ in range(N_PER_SEED):
            kind, text = rng.choice(corpus)
            mutation, bad = _mutate(rng, text)
            total += 1
            try:
                out = PARSERS[kind](bad)
                for v in out if isinstance(out, list) else [out]:
                    if isinstance(v, Rejected):
                        outcomes[f"rejected:{v.reason}"] += 1
                    elif v is None:  # parse_error: not a Binance error body
                        outcomes["rejected:not_an_error"] += 1
                    else:
                        _check_accepted(v)
                        outcomes[f"accepted:{type(v).__name__}"] += 1
                    if isinstance(v, BookDelta) and book.on_delta(v) is Sync.NEEDS_SNAPSHOT:
                        book.start_from_diffs()
                if mutation == "crossed" and kind == "stream" and '"A"' in text:
                    assert isinstance(out, Rejected) and out.reason == "crossed_book", out
            except Exception as e:
                escaped.append(f"{kind}/{mutation}: {type(e).__name__}: {e}"[:200])
    rejected = sum(v for k, v in outcomes.items() if k.startswith("rejected:"))
    print(f"fuzz: {total} messages, {rejected} rejected, {sum(outcomes.values()) - rejected} accepted values, "
          f"0 escaped; book gaps {book.gaps}; {dict(sorted(outcomes.items()))}")
    assert total >= 10_000 and escaped == []
    assert rejected > total // 2  # most mutations break the payload (some only change a value the parser ignores)
    assert sum(outcomes.values()) >= total  # every message counted (a list body counts per element)


def test_numbers_that_must_not_pass() -> None:
    for v in (float("nan"), "NaN", "sNaN", "Infinity", True, None, [], "1e999999", 10**400, "abc"):
        with_bad = json.dumps({"e": "trade", "E": 1, "s": "A", "t": 1, "p": v, "q": "1", "T": 1, "m": True})
        assert isinstance(p.parse_stream(with_bad, 0), Rejected), v
    assert math.isclose(float(Decimal("61837.63")), 61837.63)


def test_fuzz_user_stream_reader() -> None:
    """3,000 mutated user-data frames through one stateful reader (dedupe memory included): none escapes, each
    is a value or a counted Rejected; an unmutated fill seen again is a duplicate."""
    corpus = [text for kind, text in _corpus() if kind in ("user", "userstream")]
    reader, rng = ud.UserStream(), random.Random(99)
    kinds: Counter[str] = Counter()
    for i in range(3000):
        out = reader.on_frame(_mutate(rng, corpus[i % len(corpus)])[1], 1)
        if isinstance(out, OrderEvent):
            assert out.filled_qty.is_finite() and all(f.qty > 0 and f.price > 0 for f in out.fills)
        kinds[type(out).__name__] += 1
    assert sum(reader.rejects.counts.values()) == kinds["Rejected"] > 1500
    assert reader.rejects.counts.get("duplicate", 0) > 0
    print(f"binance user stream fuzz: {dict(kinds)} rejected by reason {reader.rejects.counts}")
