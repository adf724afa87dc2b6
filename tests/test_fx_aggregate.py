import json
import math

import pytest

from arbitrage_lite.core.fx_aggregate import USD_KRW, USDT_KRW, FxAggregator, FxQuote, Rejection

S = 1_000_000_000
T0 = 1_735_689_600 * S


def agg(min_sources: int = 2) -> FxAggregator:
    return FxAggregator(max_age_ns=30 * S, outlier_bps=50.0, min_sources=min_sources)


def test_median_of_three() -> None:
    fx = agg()
    for source, rate in (("upbit", 1478.0), ("bithumb", 1481.0), ("korbit", 1479.5)):
        assert fx.update(FxQuote(source, USDT_KRW, rate, T0)) is None
    r = fx.rate(USDT_KRW, T0 + S)
    assert (r.rate, r.stale, r.rejected) == (1479.5, False, ())
    assert r.sources_used == ("bithumb", "korbit", "upbit")
    assert fx.rate(USD_KRW, T0 + S).rate is None  # pairs are separate; no default rate


def test_outlier_rejected_and_median_recomputed() -> None:
    fx = agg()
    for source, rate in (("upbit", 1478.0), ("bithumb", 1480.0), ("bad", 1530.0)):
        fx.update(FxQuote(source, USDT_KRW, rate, T0))
    r = fx.rate(USDT_KRW, T0)  # first median 1480; 1530 is 338 bps away > 50
    assert r.rate == 1479.0 and not r.stale  # median of the two kept
    (rej,) = r.rejected
    assert (rej.source, rej.reason, rej.rate) == ("bad", Rejection.OUTLIER, 1530.0)


def test_stale_when_sources_age_out_keeps_last_good_value() -> None:
    fx = agg()
    fx.update(FxQuote("upbit", USDT_KRW, 1478.0, T0))
    fx.update(FxQuote("bithumb", USDT_KRW, 1482.0, T0 + 20 * S))
    good = fx.rate(USDT_KRW, T0 + 30 * S)  # upbit exactly 30 s old: still fresh
    assert (good.rate, good.stale, good.as_of_ns) == (1480.0, False, T0 + 30 * S)
    r = fx.rate(USDT_KRW, T0 + 30 * S + 1)  # upbit ages out: 1 source < 2
    assert r.stale and r.rate == 1480.0 and r.as_of_ns == T0 + 30 * S
    assert r.sources_used == ("bithumb",)
    assert [(q.source, q.reason) for q in r.rejected] == [("upbit", Rejection.STALE)]
    fx.update(FxQuote("upbit", USDT_KRW, 1479.0, T0 + 31 * S))  # fresh again
    assert fx.rate(USDT_KRW, T0 + 32 * S).stale is False


def test_non_finite_and_non_positive_rejected_never_one() -> None:
    fx = agg()
    assert fx.update(FxQuote("a", USDT_KRW, math.nan, T0)) is Rejection.NON_FINITE
    assert fx.update(FxQuote("b", USDT_KRW, math.inf, T0)) is Rejection.NON_FINITE
    assert fx.update(FxQuote("c", USDT_KRW, 0.0, T0)) is Rejection.NON_POSITIVE
    assert fx.update(FxQuote("d", USDT_KRW, -1480.0, T0)) is Rejection.NON_POSITIVE
    r = fx.rate(USDT_KRW, T0)
    assert r.rate is None and r.stale and r.sources_used == ()
    assert {q.source: q.reason for q in r.rejected} == {
        "a": Rejection.NON_FINITE, "b": Rejection.NON_FINITE, "c": Rejection.NON_POSITIVE, "d": Rejection.NON_POSITIVE}
    # a source that turns NaN no longer counts, even though its previous quote was good and fresh
    fx.update(FxQuote("a", USDT_KRW, 1480.0, T0 + S))
    fx.update(FxQuote("b", USDT_KRW, 1481.0, T0 + S))
    assert fx.rate(USDT_KRW, T0 + S).stale is False
    fx.update(FxQuote("b", USDT_KRW, math.nan, T0 + 2 * S))
    r = fx.rate(USDT_KRW, T0 + 2 * S)
    assert r.stale and r.sources_used == ("a",) and r.rate == 1480.5


def test_min_sources() -> None:
    one, three = agg(min_sources=1), agg(min_sources=3)
    for fx in (one, three):
        fx.update(FxQuote("upbit", USDT_KRW, 1478.0, T0))
        fx.update(FxQuote("bithumb", USDT_KRW, 1480.0, T0))
    assert one.rate(USDT_KRW, T0).stale is False
    r = three.rate(USDT_KRW, T0)
    assert r.stale and r.rate is None  # two fresh sources are not enough, and there was never a good value


def test_late_older_quote_ignored() -> None:
    fx = agg(min_sources=1)
    fx.update(FxQuote("upbit", USDT_KRW, 1480.0, T0 + 5 * S))
    fx.update(FxQuote("upbit", USDT_KRW, 1400.0, T0))  # arrives late: older than what we hold
    assert fx.rate(USDT_KRW, T0 + 6 * S).rate == 1480.0


def test_bad_parameters_refused() -> None:
    with pytest.raises(ValueError):
        FxAggregator(max_age_ns=0, outlier_bps=50.0, min_sources=1)
    with pytest.raises(ValueError):
        FxAggregator(max_age_ns=S, outlier_bps=math.nan, min_sources=1)
    with pytest.raises(ValueError):
        FxAggregator(max_age_ns=S, outlier_bps=50.0, min_sources=0)


def test_snapshot_restore_round_trip() -> None:
    fx = agg()
    fx.update(FxQuote("upbit", USDT_KRW, 1478.0, T0))
    fx.update(FxQuote("bithumb", USDT_KRW, 1480.0, T0))
    fx.update(FxQuote("broken", USDT_KRW, math.nan, T0))
    fx.update(FxQuote("fred", USD_KRW, 1465.36, T0))
    fx.rate(USDT_KRW, T0)
    snap = fx.snapshot()
    wire = json.loads(json.dumps(snap, allow_nan=False))
    restored = agg()
    restored.restore(wire)
    assert restored.snapshot() == snap
    before, after = fx.rate(USDT_KRW, T0 + 40 * S), restored.rate(USDT_KRW, T0 + 40 * S)
    assert (after.rate, after.stale, after.as_of_ns) == (before.rate, before.stale, before.as_of_ns)
    assert (after.rate, after.stale, after.as_of_ns) == (1479.0, True, T0)
    assert [(q.source, q.reason) for q in after.rejected] == [(q.source, q.reason) for q in before.rejected] == [
        ("bithumb", Rejection.STALE), ("broken", Rejection.NON_FINITE), ("upbit", Rejection.STALE)]
    assert math.isnan(after.rejected[1].rate)
    with pytest.raises(ValueError, match="version"):
        restored.restore({**wire, "version": 2})
