"""The U/u book sync on the real raw L2 recordings and on synthetic gaps, duplicates and reorderings."""

from __future__ import annotations

import bisect
from decimal import Decimal

from binance_payloads import SAMPLE_L2, l2_lines, raw_l2_files

from arbitrage_lite.core.venue import BestBidAsk, BookDelta, BookLevel, BookSnapshot
from arbitrage_lite.infra.venues.binance.book import LocalBook, Sync
from arbitrage_lite.infra.venues.binance.parse import parse_depth_snapshot, parse_stream


def _replay(lines: list[tuple[int, str]], book: LocalBook) -> tuple[list[tuple[int, int, object, object]],
                                                                    dict[int, tuple[Decimal, Decimal]]]:
    states, tickers = [], {}
    for ts, js in lines:
        if js.startswith('{"lastUpdateId"'):
            snap = parse_depth_snapshot(js, "BTCUSDT", ts)
            assert isinstance(snap, BookSnapshot)
            assert book.on_snapshot(snap) is Sync.APPLIED
            continue
        m = parse_stream(js, ts)
        if isinstance(m, BookDelta) and book.on_delta(m) is Sync.APPLIED:
            states.append((m.first_seq, m.last_seq, book.best_bid(), book.best_ask()))
        elif isinstance(m, BestBidAsk):
            tickers[m.seq] = (m.bid, m.ask)
    return states, tickers


def _agreement(states: list[tuple[int, int, object, object]], tickers: dict[int, tuple[Decimal, Decimal]]
               ) -> tuple[int, int]:
    """For each applied diff [U, u] holding a bookTicker id: does the book's top equal the last ticker <= u?"""
    ids = sorted(tickers)
    n = same = 0
    for first, last, bid, ask in states:
        i = bisect.bisect_right(ids, last) - 1
        if i >= 0 and ids[i] >= first:
            n += 1
            same += tickers[ids[i]] == (bid, ask)
    return n, same


def test_real_file_synced_from_its_rest_snapshot_then_continued_into_the_next_file() -> None:
    f0808, f0809 = raw_l2_files()
    book = LocalBook("BTCUSDT")
    lines = l2_lines(f0808)
    states, tickers = _replay(lines, book)
    assert book.snapshots == 1 and book.gaps == 0 and book.synced and not book.partial
    s2, t2 = _replay(l2_lines(f0809), book)  # 0809 continues 0808 without a break (MANIFEST §2)
    assert book.gaps == 0 and book.rejects.counts == {}
    n, same = _agreement(states + s2, tickers | t2)
    # the top equals Binance's own bookTicker on 5,734 of 5,736 diffs; in both misses the ticker is 3-4 ids before
    # u and a later update inside the same diff lowered the bid (the ticker for it is not in the recording)
    assert n > 5000 and n - same <= 2


def test_real_file_from_diffs_with_a_partial_start() -> None:
    book = LocalBook("BTCUSDT")
    book.start_from_diffs()
    states, tickers = _replay(l2_lines(raw_l2_files()[1]), book)
    assert book.partial and book.gaps == 0 and book.applied == 3044
    n, same = _agreement(states, tickers)
    assert n > 2500 and n - same <= 2  # the same two misses as above: the partial start costs none here


def test_sample_buffers_until_the_snapshot_then_drops_what_it_covers() -> None:
    book = LocalBook("BTCUSDT")
    outcomes = []
    for ts, js in l2_lines(SAMPLE_L2)[:8]:
        if js.startswith('{"lastUpdateId"'):
            snap = parse_depth_snapshot(js, "BTCUSDT", ts)
            assert isinstance(snap, BookSnapshot)
            outcomes.append(book.on_snapshot(snap))
        else:
            m = parse_stream(js, ts)
            if isinstance(m, BookDelta):
                outcomes.append(book.on_delta(m))
    assert outcomes == [Sync.BUFFERED, Sync.BUFFERED, Sync.BUFFERED, Sync.APPLIED]
    assert book.book_id == 50093239224 and book.applied == 1  # U=..208 <= 50093239218+1 <= u=..224


def _delta(first: int, last: int, bids: tuple[tuple[str, str], ...] = (), asks: tuple[tuple[str, str], ...] = ()
           ) -> BookDelta:
    lv = lambda xs: tuple(BookLevel(Decimal(p), Decimal(q)) for p, q in xs)  # noqa: E731
    return BookDelta("binance", "X", lv(bids), lv(asks), first, last, first, first)


def _snap(seq: int) -> BookSnapshot:
    return BookSnapshot("binance", "X", (BookLevel(Decimal(100), Decimal(1)),), (BookLevel(Decimal(101), Decimal(1)),),
                        seq, 0, 0)


def test_synthetic_gap_duplicate_out_of_order_and_old_snapshot() -> None:
    book = LocalBook("X")
    assert book.on_delta(_delta(5, 10)) is Sync.BUFFERED
    assert book.on_snapshot(_snap(2)) is Sync.NEEDS_SNAPSHOT  # 2+1 < U=5: snapshot too old, refetch
    assert not book.synced and len(book.buffer) == 1
    assert book.on_snapshot(_snap(7)) is Sync.APPLIED and book.book_id == 10
    assert book.on_delta(_delta(11, 12, bids=(("100.5", "2"),))) is Sync.APPLIED
    assert book.best_bid() == Decimal("100.5")
    assert book.on_delta(_delta(11, 12)) is Sync.STALE  # duplicate
    assert book.on_delta(_delta(3, 9)) is Sync.STALE  # old, out of order
    assert book.on_delta(_delta(12, 14)) is Sync.NEEDS_SNAPSHOT  # overlap after the first: not U == u+1
    assert book.rejects.counts == {"stale": 1, "out_of_order": 1}  # the old snapshot, the overlap
    assert book.on_delta(_delta(15, 16)) is Sync.BUFFERED
    assert book.on_snapshot(_snap(14)) is Sync.APPLIED and book.book_id == 16
    assert book.on_delta(_delta(18, 20)) is Sync.NEEDS_SNAPSHOT  # gap: 17 missing
    assert book.rejects.counts == {"stale": 1, "out_of_order": 1, "sequence_gap": 1} and book.gaps == 2
    assert not book.synced and [d.first_seq for d in book.buffer] == [18]


def test_synthetic_crossed_result_discards_the_book() -> None:
    book = LocalBook("X")
    assert book.on_snapshot(_snap(1)) is Sync.APPLIED
    assert book.on_delta(_delta(2, 2, bids=(("101", "1"),))) is Sync.NEEDS_SNAPSHOT
    assert book.rejects.counts == {"crossed_book": 1} and not book.synced
    assert book.on_snapshot(_snap(2)) is Sync.APPLIED
    assert book.on_delta(_delta(3, 3, asks=(("101", "0"),))) is Sync.APPLIED  # removing the best ask
    assert book.best_ask() is None and book.best_bid() == 100


def test_shuffled_real_diffs_are_never_applied_out_of_order() -> None:
    import random

    deltas = [m for _, js in l2_lines(SAMPLE_L2)[:3000]
              if isinstance(m := parse_stream(js, 0), BookDelta)]
    rng = random.Random(12)
    for _ in range(20):
        book = LocalBook("BTCUSDT")
        book.start_from_diffs()
        order = deltas[:]
        i = rng.randrange(1, len(order) - 1)
        order[i], order[i + 1] = order[i + 1], order[i]  # one swap: a gap, then stale
        outs = [book.on_delta(d) for d in order]
        assert Sync.NEEDS_SNAPSHOT in outs and book.gaps >= 1
