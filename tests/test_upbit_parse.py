"""Upbit sans-IO: recorded quotation payloads, market warnings, order bodies and state mapping, errors, book
keeping, rate limits and order requests.

No real Upbit order body (POST /v1/orders, GET /v1/order, DELETE /v1/order) or error body was found with
provenance (MANIFEST §5): the order bodies below are built from the brief's documented fields (§A4, §A6).
"""

from __future__ import annotations

import gzip
import json
from dataclasses import replace
from decimal import Decimal

import pytest

from arbitrage_lite.core.domain import Side
from arbitrage_lite.core.venue import (
    BookLevel,
    BookSnapshot,
    MarketState,
    MarketStatus,
    OrderEvent,
    OrderState,
    OrderType,
    PlaceOrder,
    QueryOrder,
    Rejected,
    RejectReason,
    Trade,
)
from arbitrage_lite.infra.data.sample import find_shared_data
from arbitrage_lite.infra.venues.upbit import book, limits, orders, parse

SHARED = find_shared_data()
needs_data = pytest.mark.skipif(SHARED is None, reason="shared data set not found")
D = Decimal
T_2025_08 = 1_756_000_000 * 10**9  # 2025-08-24, after the 2025-07-31 tick change
T_2025_07 = 1_752_000_000 * 10**9  # 2025-07-08, before it


def recorded_frames() -> list[bytes]:
    """The cryptofeed Upbit session (SIMPLE format): the 449 frames as the server sent them."""
    assert SHARED is not None
    out = []
    with gzip.open(SHARED / "fixtures" / "cryptofeed" / "UPBIT.ws.62.0.gz", "rt") as f:
        for line in f:
            _, sep, payload = line.rstrip("\n").partition(": b'")
            if sep:
                out.append(payload[:-1].encode("latin-1").decode("unicode_escape").encode("latin-1"))
    return out


def rest(name: str) -> bytes:
    assert SHARED is not None
    return next((SHARED / "fixtures" / "rest").glob(name)).read_bytes()


@needs_data
def test_recorded_simple_session_parses_whole() -> None:
    frames = recorded_frames()
    out = [parse.parse_ws(f, 7) for f in frames]
    assert len(out) == 449
    assert sum(isinstance(o, Trade) for o in out) == 304
    books = [o for o in out if isinstance(o, BookSnapshot)]
    assert len(books) == 145
    first = books[0]
    assert first.symbol == "KRW-LAMB" and first.seq is None and first.ts_venue == 1618678262640 * 10**6
    assert first.bids[0] == BookLevel(D("126.0"), D("688682.44561413")) and first.asks[0].price == D("127.0")
    assert len(first.bids) == 15
    trade = next(o for o in out if isinstance(o, Trade))
    assert (trade.price, trade.qty, trade.aggressor, trade.trade_id) == (
        D("127.0"), D("46.48838371"), Side.BUY, "1618678262000003")
    kept = book.UpbitBooks()
    assert all(isinstance(kept.apply(b), BookSnapshot) for b in books)  # in order, never crossed


@needs_data
def test_default_format_gives_the_same_result() -> None:
    simple_to_default = {"ty": "type", "cd": "code", "tms": "timestamp", "obu": "orderbook_units", "ap": "ask_price",
                         "bp": "bid_price", "as": "ask_size", "bs": "bid_size", "tp": "trade_price",
                         "tv": "trade_volume", "ab": "ask_bid", "ttms": "trade_timestamp", "sid": "sequential_id"}

    def rename(x: object) -> object:
        if isinstance(x, dict):
            return {simple_to_default.get(k, k): rename(v) for k, v in x.items()}
        return [rename(v) for v in x] if isinstance(x, list) else x

    for frame in recorded_frames()[:40]:
        default = json.dumps(rename(json.loads(frame)))
        assert parse.parse_ws(default, 1) == parse.parse_ws(frame, 1)


def test_bad_ws_messages_are_counted_reasons() -> None:
    ob = {"ty": "orderbook", "cd": "KRW-BTC", "tms": 1618678262640,
          "obu": [{"ap": 101.0, "bp": 100.0, "as": 1.0, "bs": 2.0}]}
    cases = {
        "bad_json": json.dumps(ob)[:-3],
        "nan": json.dumps({**ob, "obu": [{"ap": float("nan"), "bp": 100.0, "as": 1.0, "bs": 2.0}]}),
        "crossed_book": json.dumps({**ob, "obu": [{"ap": 100.0, "bp": 100.0, "as": 1.0, "bs": 2.0}]}),
        "bad_field": json.dumps({**ob, "tms": "yesterday"}),
        "unknown_type": json.dumps({**ob, "ty": "candle"}),
        "venue_error": json.dumps({"error": {"name": "NO_TICKET", "message": "ticket required"}}),
    }
    for reason, raw in cases.items():
        r = parse.parse_ws(raw, 5)
        assert isinstance(r, Rejected) and r.reason == reason, (reason, r)
    assert parse.parse_ws(b'{"status":"UP"}', 1) is None
    assert isinstance(parse.parse_ws(json.dumps(ob).encode(), 1), BookSnapshot)  # binary frames too


def test_ticker_market_state_flags() -> None:
    base = {"type": "ticker", "code": "KRW-XYZ", "timestamp": 1718678262640, "trade_price": 10}
    r = parse.parse_ws(json.dumps({**base, "market_state": "ACTIVE", "market_warning": "NONE"}), 1)
    assert isinstance(r, MarketStatus) and r.state == MarketState.TRADING
    r = parse.parse_ws(json.dumps({**base, "market_state": "DELISTED", "delisting_date": "2024-07-01"}), 1)
    assert isinstance(r, MarketStatus) and r.state == MarketState.HALTED | MarketState.DELISTING
    simple = {"ty": "ticker", "cd": "KRW-XYZ", "tms": 1718678262640, "ms": "ACTIVE", "mw": "CAUTION", "its": False}
    r = parse.parse_ws(json.dumps(simple), 1)
    assert isinstance(r, MarketStatus) and r.state == MarketState.WARNING


@needs_data
def test_market_all_warnings_and_cautions() -> None:
    out = parse.parse_market_all(rest("upbit_market_all_isDetails_*.json"), 3)
    assert len(out) == 536 and all(isinstance(m, MarketStatus) for m in out)
    statuses = {m.symbol: m for m in out if isinstance(m, MarketStatus)}
    assert sum(bool(m.state & MarketState.WARNING) for m in statuses.values()) == 5
    assert sum(bool(m.state & MarketState.CAUTION) for m in statuses.values()) == 112
    assert statuses["KRW-BTC"].state == MarketState.TRADING
    bad = parse.parse_market_all(b'[{"market":"KRW-A","market_event":{"warning":"yes"}}, 5]', 3)
    assert [r.reason for r in bad if isinstance(r, Rejected)] == ["bad_field", "bad_field"]


@needs_data
def test_rest_trades_and_ticker_accept_ccxt_strings() -> None:
    (t,) = parse.parse_rest_trades(rest("upbit_ccxt_GET_v1_trades_ticks_*.json"), 1)
    assert isinstance(t, Trade) and t.price == D("73249.66500000") and t.aggressor == Side.SELL
    assert t.ts_venue == 1710327571922 * 10**6 and t.trade_id == "17103275719220001"
    (k,) = parse.parse_rest_ticker(rest("upbit_ccxt_GET_v1_ticker_*.json"), 1)
    assert isinstance(k, Trade) and k.price == D("73578.65500000")


def test_rest_orderbook_brief_shape() -> None:
    body = (b'[{"market":"KRW-BTC","timestamp":1756000000000,"total_ask_size":1.5,"total_bid_size":2.5,'
            b'"orderbook_units":[{"ask_price":160001000,"bid_price":160000000,"ask_size":0.5,"bid_size":1.25},'
            b'{"ask_price":160002000,"bid_price":159999000,"ask_size":1.0,"bid_size":1.25}],"level":0}]')
    (b,) = parse.parse_rest_orderbook(body, 1)
    assert isinstance(b, BookSnapshot) and b.bids[1] == BookLevel(D(159999000), D("1.25"))


def order_body(**over: object) -> bytes:
    """An order body with the brief's documented fields (§A4): no recorded one exists."""
    body: dict[str, object] = {
        "uuid": "9ca023a5-851b-4fec-9f0a-48cd83c2eaae", "side": "bid", "ord_type": "limit", "price": "100000000",
        "state": "wait", "market": "KRW-BTC", "created_at": "2025-08-24T15:03:18+09:00", "volume": "0.01",
        "remaining_volume": "0.01", "reserved_fee": "500", "remaining_fee": "500", "paid_fee": "0",
        "locked": "1000500", "executed_volume": "0", "trades_count": 0, "identifier": "al-run1-1-r1-u"}
    body.update(over)
    return json.dumps({k: v for k, v in body.items() if v is not None}).encode()


def test_order_states_from_executed_volume() -> None:
    def state(**over: object) -> tuple[OrderState, Decimal]:
        ev = parse.parse_order(order_body(**over), 1)
        assert isinstance(ev, OrderEvent), ev
        return ev.state, ev.filled_qty

    assert state() == (OrderState.ACCEPTED, D(0))
    assert state(executed_volume="0.004", remaining_volume="0.006") == (OrderState.PARTIALLY_FILLED, D("0.004"))
    assert state(state="done", executed_volume="0.01", remaining_volume="0") == (OrderState.FILLED, D("0.01"))
    # market buy by KRW (ord_type price) ends "cancel" with its dust remainder: it is filled
    assert state(ord_type="price", price="10000", volume=None, remaining_volume=None, state="cancel",
                 executed_volume="0.00006249") == (OrderState.FILLED, D("0.00006249"))
    assert state(state="cancel", executed_volume="0.004", remaining_volume="0.006") == (
        OrderState.CANCELLED, D("0.004"))
    assert state(state="cancel", time_in_force="ioc", executed_volume="0.004", remaining_volume="0.006") == (
        OrderState.EXPIRED, D("0.004"))
    assert state(ord_type="market", side="ask", price=None, state="cancel", executed_volume="0.01",
                 remaining_volume="0") == (OrderState.FILLED, D("0.01"))
    r = parse.parse_order(order_body(state="done", executed_volume="0.02"), 1)  # more than ordered
    assert isinstance(r, Rejected) and r.reason == "bad_field"
    r = parse.parse_order(order_body(state="trade"), 1)
    assert isinstance(r, Rejected)


def test_order_fills_carry_the_fee_exactly() -> None:
    trades = [{"market": "KRW-BTC", "uuid": f"t{i}", "price": "100000000", "volume": v, "funds": f,
               "trend": "up", "created_at": "2025-08-24T15:03:19+09:00", "side": "bid"}
              for i, (v, f) in enumerate((("0.003", "300000"), ("0.007", "700000")))]
    ev = parse.parse_order(order_body(state="done", executed_volume="0.01", remaining_volume="0", paid_fee="500.1",
                                      trades=trades), 1, "al-run1-1-r1-u")
    assert isinstance(ev, OrderEvent) and [f.qty for f in ev.fills] == [D("0.003"), D("0.007")]
    assert sum(f.fee for f in ev.fills) == D("500.1") and ev.fills[0].fee_asset == "KRW"
    other = parse.parse_order(order_body(), 1, "someone-else")
    assert isinstance(other, Rejected)


def test_error_bodies_to_reasons() -> None:
    def reason(status: int, name: str) -> RejectReason:
        return parse.error_reason(status, json.dumps({"error": {"name": name, "message": "m"}}))[0]

    assert reason(400, "insufficient_funds_bid") == RejectReason.INSUFFICIENT_FUNDS
    assert reason(400, "under_min_total_ask") == RejectReason.INVALID
    assert reason(400, "invalid_price_bid") == RejectReason.INVALID
    assert reason(401, "jwt_verification") == RejectReason.AUTH
    assert reason(401, "nonce_used") == RejectReason.AUTH
    assert reason(403, "market_offline") == RejectReason.MARKET_CLOSED
    assert reason(404, "order_not_found") == RejectReason.NOT_FOUND
    assert reason(429, "too_many_requests") == RejectReason.RATE_LIMITED
    assert reason(400, "duplicate_identifier") == RejectReason.DUPLICATE_ID
    assert parse.error_reason(400, b"<html>")[0] == RejectReason.INVALID  # never raises


def place(**over: object) -> PlaceOrder:
    cmd = PlaceOrder("al-run1-1-r1-u", "KRW-BTC", Side.BUY, OrderType.LIMIT, D("0.01"), D("160000000"))
    return replace(cmd, **over)  # type: ignore[arg-type]


def test_place_requests_by_order_type() -> None:
    led = orders.IdentifierLedger()
    r = orders.place_request(place(), led, T_2025_08)
    assert isinstance(r, orders.Request) and r.method == "POST" and r.group == "order"
    assert r.params == [("market", "KRW-BTC"), ("side", "bid"), ("ord_type", "limit"), ("volume", "0.01"),
                        ("price", "160000000"), ("identifier", "al-run1-1-r1-u")]
    r = orders.place_request(place(client_id="b", type=OrderType.MARKET, qty=None, price=None,
                                   quote_amount=D("10000")), led, T_2025_08)
    assert isinstance(r, orders.Request) and ("ord_type", "price") in r.params and ("price", "10000") in r.params
    assert not any(k == "volume" for k, _ in r.params)
    r = orders.place_request(place(client_id="c", side=Side.SELL, type=OrderType.MARKET, price=None), led, 0)
    assert isinstance(r, orders.Request) and ("ord_type", "market") in r.params
    assert not any(k == "price" for k, _ in r.params)
    r = orders.place_request(place(client_id="d", type=OrderType.IOC), led, T_2025_08)
    assert isinstance(r, orders.Request) and ("time_in_force", "ioc") in r.params


def test_tick_table_by_date_and_minimum_both_sides() -> None:
    led = orders.IdentifierLedger()
    # 1,000,500 KRW: on the 500 tick before 2025-07-31, off the 1,000 tick after
    assert isinstance(orders.place_request(place(client_id="a", price=D(1000500)), led, T_2025_07), orders.Request)
    off = orders.place_request(place(client_id="b", price=D(1000500)), led, T_2025_08)
    assert isinstance(off, OrderEvent) and off.reason == RejectReason.INVALID and "tick" in off.detail
    for side in (Side.BUY, Side.SELL):
        small = orders.place_request(place(client_id=f"s{side.name}", side=side, price=D(4999), qty=D(1)), led,
                                     T_2025_08)
        assert isinstance(small, OrderEvent) and "minimum" in small.detail
        ok = orders.place_request(place(client_id=f"o{side.name}", side=side, price=D(5000), qty=D(1)), led,
                                  T_2025_08)
        assert isinstance(ok, orders.Request)
    buy = orders.place_request(place(client_id="m", type=OrderType.MARKET, qty=None, price=None,
                                     quote_amount=D(4999)), led, T_2025_08)
    assert isinstance(buy, OrderEvent) and buy.state == OrderState.REJECTED


def test_identifier_never_reused_even_after_failure() -> None:
    led = orders.IdentifierLedger()
    req = orders.place_request(place(), led, T_2025_08)
    assert isinstance(req, orders.Request)
    failed = orders.interpret(req, "KRW-BTC", 400, b'{"error":{"name":"insufficient_funds_bid","message":"x"}}', 1)
    assert failed.state == OrderState.REJECTED and failed.reason == RejectReason.INSUFFICIENT_FUNDS
    again = orders.place_request(place(), led, T_2025_08)
    assert isinstance(again, OrderEvent) and again.reason == RejectReason.DUPLICATE_ID
    assert isinstance(orders.place_request(place(client_id="bad id!"), led, 0), OrderEvent)


def test_5xx_timeout_and_unreadable_2xx_are_unknown_until_queried() -> None:
    req = orders.place_request(place(), orders.IdentifierLedger(), T_2025_08)
    assert isinstance(req, orders.Request)
    assert orders.interpret(req, "KRW-BTC", 502, b"", 1).state == OrderState.UNKNOWN
    assert orders.interpret(req, "KRW-BTC", None, b"", 1).state == OrderState.UNKNOWN
    assert orders.interpret(req, "KRW-BTC", 201, b'{"uuid":', 1).state == OrderState.UNKNOWN
    q = orders.query_request(QueryOrder("al-run1-1-r1-u", "KRW-BTC"))
    assert isinstance(q, orders.Request) and q.params == [("identifier", "al-run1-1-r1-u")]
    nf = orders.interpret(q, "KRW-BTC", 404, b'{"error":{"name":"order_not_found","message":"x"}}', 1)
    assert nf.state == OrderState.REJECTED and nf.reason == RejectReason.NOT_FOUND
    done = orders.interpret(q, "KRW-BTC", 200, order_body(state="done", executed_volume="0.01"), 1)
    assert done.state == OrderState.FILLED and done.filled_qty == D("0.01")


def snap(ts_ms: int, bid: str = "100", ask: str = "101", local: int = 0) -> BookSnapshot:
    return BookSnapshot("upbit", "KRW-X", (BookLevel(D(bid), D(1)),), (BookLevel(D(ask), D(1)),), None,
                        ts_ms * 10**6, local)


def test_book_out_of_order_duplicate_crossed_and_age() -> None:
    b = book.UpbitBooks(max_age_ns=5 * 10**9)
    assert isinstance(b.apply(snap(1000, local=1)), BookSnapshot)
    assert isinstance(b.apply(snap(1001, "99", local=2)), BookSnapshot)
    assert getattr(b.apply(snap(1000, local=3)), "reason", "") == "out_of_order"
    assert getattr(b.apply(snap(1001, "99", local=4)), "reason", "") == "stale"
    assert getattr(b.apply(snap(1002, "101", "101")), "reason", "") == "crossed_book"
    held = b.get("KRW-X", 2 + 10**9)
    assert isinstance(held, BookSnapshot) and held.bids[0].price == D(99)
    assert getattr(b.get("KRW-X", 3 + 6 * 10**9), "reason", "") == "stale"
    b.drop()
    assert isinstance(b.apply(snap(900)), BookSnapshot)  # after a reconnect, the next snapshot is the truth


def test_remaining_req_and_group_budget() -> None:
    assert limits.parse_remaining_req("group=order; min=1800; sec=7") == limits.RemainingReq("order", 7, 1800)
    assert limits.parse_remaining_req("group=order; sec=7") is None
    rl = limits.RateLimiter()
    t = 5 * limits.SECOND
    for i in range(8):
        assert rl.wait_ns("order", t + i) == 0
        rl.on_send("order", t + i)
    assert rl.wait_ns("order", t + 10) == limits.SECOND - 10  # 8/s used
    assert rl.wait_ns("default", t + 10) == 0  # groups are separate
    assert limits.limit_for("order", limits.ORDER_12_FROM_NS) == 12
    rl.on_response("default", 200, t + 20, "group=default; min=1800; sec=0")
    assert rl.wait_ns("default", t + 30) == limits.SECOND - 30  # the venue's count wins


def test_429_then_418_state_machine() -> None:
    rl = limits.RateLimiter(default_ban_ns=60 * limits.SECOND)
    t = 10 * limits.SECOND
    rl.on_response("order", 429, t)
    assert rl.wait_ns("order", t) == limits.SECOND
    rl.on_response("order", 429, t + limits.SECOND)
    assert rl.wait_ns("order", t + limits.SECOND) == 2 * limits.SECOND  # backs off, does not keep sending
    rl.on_response("order", 418, t, retry_after="30")
    assert rl.wait_ns("default", t) == 30 * limits.SECOND  # a ban closes every group
    rl2 = limits.RateLimiter(default_ban_ns=60 * limits.SECOND)
    rl2.on_response("order", 418, t, body='{"error":{"name":"418","message":"blocked for 120 sec"}}')
    assert rl2.wait_ns("order", t) == 120 * limits.SECOND
    rl2.on_response("order", 418, t, body="{}")  # no duration given: 60 s doubling per ban so far
    assert rl2.wait_ns("order", t) == 120 * limits.SECOND
    rl2.on_response("order", 418, t, body="{}")
    assert rl2.wait_ns("order", t) == 240 * limits.SECOND
