"""The kernel's inlined level update and core.book.apply_market_event (used by the paper venue) agree."""

from __future__ import annotations

import numpy as np

from arbitrage_lite.core.book import apply_market_event, new_books
from arbitrage_lite.core.config import EngineConfig
from arbitrage_lite.core.event_builders import depth_diffs_to_events
from arbitrage_lite.core.kernel import N_COUNTERS
from arbitrage_lite.core.replay import kernel_params, step
from arbitrage_lite.core.route_state import RouteState
from arbitrage_lite.core.rules import binance_rules


def test_kernel_and_venue_build_the_same_book_from_the_same_diffs() -> None:
    rng = np.random.default_rng(11)
    n_msgs, per_msg = 400, 12
    n = n_msgs * per_msg
    ts = np.repeat(np.arange(n_msgs, dtype=np.int64) * 100_000_000, per_msg)
    uid = np.repeat(np.arange(n_msgs, dtype=np.int64), per_msg)
    side = rng.integers(0, 2, n).astype(np.int8)
    ticks = rng.integers(1, 120, n)
    price = np.where(side == 0, 60_000.0 - ticks * 0.01, 60_000.01 + ticks * 0.01).round(2)
    qty = np.where(rng.random(n) < 0.3, 0.0, rng.random(n).round(5))  # 30 % deletes, some of unknown levels
    qty[rng.random(n) < 0.01] = np.nan  # a few malformed rows: ignored by both
    events = depth_diffs_to_events(ts, ts, uid, side, price, qty, 1)

    state = RouteState.new(N_COUNTERS, series_hint=n_msgs + 16)
    params = kernel_params(EngineConfig(), binance_rules("0.01", "0.00001", "5"))
    step(state, events, 0, len(events), True, True, params)

    book_px, book_q, book_n, quotes = new_books()
    for i in range(len(events)):
        apply_market_event(int(events.kind[i]), int(events.venue[i]), int(events.side[i]), float(events.px[i]),
                           float(events.qty[i]), int(events.ts[i]), int(events.ts_venue[i]), book_px, book_q, book_n,
                           quotes, 0.0)
    assert book_n[1, 0] > 10 and book_n[1, 1] > 10
    assert np.array_equal(state.book_n, book_n)
    for s in (0, 1):
        k = book_n[1, s]
        assert np.array_equal(state.book_px[1, s, :k], book_px[1, s, :k])
        assert np.array_equal(state.book_q[1, s, :k], book_q[1, s, :k])
    assert state.quotes[1, 0] == quotes[1, 0]  # same mid
