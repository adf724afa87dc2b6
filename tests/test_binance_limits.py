"""Rate-limit state machine: used-weight headers, order counts, 429 Retry-After, 418 ban."""

from __future__ import annotations

from arbitrage_lite.infra.venues.binance.limits import Action, RateLimits

T0 = 1_700_000_080_000  # 40 s into a minute


def test_weight_header_blocks_until_the_next_minute() -> None:
    rl = RateLimits()
    rl.on_response(200, {"x-mbx-used-weight-1m": "5990", "X-MBX-USED-WEIGHT": "5990"}, T0)
    assert rl.decide(T0 + 1, weight=5).action is Action.GO
    d = rl.decide(T0 + 1, weight=20)
    assert d.action is Action.WAIT and d.until_ms == T0 + 20_000  # the minute boundary
    assert rl.decide(T0 + 20_000, weight=20).action is Action.GO  # new window


def test_local_booking_between_responses() -> None:
    rl = RateLimits()
    rl.set_limits({60_000: 100}, {10_000: 2})
    rl.book(T0, weight=60, orders=1)
    rl.book(T0 + 1, weight=30, orders=1)
    assert rl.decide(T0 + 2, weight=20).action is Action.WAIT
    d = rl.decide(T0 + 2, weight=1, orders=1)
    assert d.action is Action.WAIT and "orders" in d.reason and d.until_ms == T0 - T0 % 10_000 + 10_000


def test_order_count_headers() -> None:
    rl = RateLimits()
    rl.set_limits({}, {10_000: 50, 86_400_000: 160_000})
    rl.on_response(200, {"X-MBX-ORDER-COUNT-10S": "50", "X-MBX-ORDER-COUNT-1D": "900"}, T0)
    assert rl.decide(T0, weight=1).action is Action.GO  # a query places no order
    assert rl.decide(T0, weight=1, orders=1).action is Action.WAIT


def test_429_then_418() -> None:
    rl = RateLimits()
    rl.on_response(429, {"Retry-After": "7"}, T0)
    d = rl.decide(T0 + 1, weight=1)
    assert d.action is Action.WAIT and d.until_ms == T0 + 7000 and rl.count_429 == 1
    rl.on_response(418, {"Retry-After": "120"}, T0 + 2)
    d = rl.decide(T0 + 8000, weight=1)
    assert d.action is Action.STOP and d.until_ms == T0 + 2 + 120_000
    assert rl.decide(T0 + 2 + 120_000, weight=1).action is Action.GO
    rl.on_response(429, {}, T0 + 200_000)  # no Retry-After: a minute
    assert rl.decide(T0 + 200_001, weight=1).until_ms == T0 + 260_000
    rl.on_ban_until(T0 + 900_000)
    assert rl.decide(T0 + 800_000, weight=1).action is Action.STOP
