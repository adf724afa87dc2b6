import json
from decimal import Decimal

import pytest
from pydantic import ValidationError

from arbitrage_lite.core.domain import Venue
from arbitrage_lite.core.risk import (
    ALLOW,
    REDUCE_ONLY,
    REJECT,
    RiskCoordinator,
    RiskLimits,
    RiskMode,
)

U, B = Venue.UPBIT, Venue.BINANCE
S = 1_000_000_000  # ns per second
DAY = 86_400 * S
T0 = 1_735_689_600 * S + 10 * 3600 * S  # 2025-01-01 10:00 UTC


def krw(x: int | str) -> Decimal:
    return Decimal(x)


def legs(upbit: int, binance: int) -> dict[Venue, Decimal]:
    return {U: krw(upbit), B: krw(binance)}


LIMITS = RiskLimits(
    daily_loss_limit_krw=krw(1_000_000), max_drawdown_krw=krw(2_000_000), max_venue_exposure_krw=krw(25_000_000),
    max_route_position_krw=krw(10_000_000), max_symbol_position_krw=krw(15_000_000), max_inventory_imbalance=0.5,
    loss_cooldown_s=600.0, circuit_breaker_losses=3, global_circuit_breaker_losses=None,
    max_order_notional_krw=krw(5_000_000), circuit_breaker_reset_s=None,
    max_trip_loss_krw=None,  # its own test below: these trips' losses are made up to test the other rules
)


def coordinator() -> RiskCoordinator:
    return RiskCoordinator(LIMITS)


def mode(rc: RiskCoordinator) -> RiskMode:
    return rc.state.mode


def test_clean_open_is_allowed_and_logged() -> None:
    rc = coordinator()
    v = rc.check_open("BTC", "BTC", legs(5_000_000, 5_000_000), T0)
    assert (v.allowed, v.first_trigger, v.tier, v.reasons, v.verdict) == (True, None, None, (), ALLOW)
    (entry,) = rc.decisions()
    assert (entry.now_ns, entry.route, entry.action, entry.verdict) == (T0, "BTC", "open", ALLOW)


def test_daily_loss_limit_and_reset_at_next_utc_day() -> None:
    rc = coordinator()
    assert rc.on_round_trip_closed("BTC", krw(-600_000), T0) == ()
    assert rc.check_open("ETH", "ETH", legs(1_000_000, 1_000_000), T0 + S).allowed
    assert rc.on_round_trip_closed("ETH", krw(-400_000), T0 + 2 * S) == ("daily_loss_limit",)  # -1,000,000 reached
    v = rc.check_open("XRP", "XRP", legs(1_000_000, 1_000_000), T0 + 3 * S)
    assert (v.allowed, v.first_trigger, v.tier, v.verdict) == (False, "daily_loss_limit", "global", REJECT)
    # 23:59:59 the same UTC day: still refused; 00:00:00 of the next day: allowed again
    midnight = (T0 // DAY + 1) * DAY
    assert not rc.check_open("XRP", "XRP", legs(1_000_000, 1_000_000), midnight - S).allowed
    v = rc.check_open("XRP", "XRP", legs(1_000_000, 1_000_000), midnight)
    assert (v.allowed, v.verdict) == (True, ALLOW)
    assert rc.state.day_pnl_krw == 0


def test_drawdown_kill_switch_from_peak_flatten_reduce_only_and_resume() -> None:
    rc = coordinator()
    rc.on_position_opened("BTC", "BTC", legs(5_000_000, 5_000_000))
    rc.on_position_opened("ETH", "ETH", legs(3_000_000, 3_000_000))
    assert rc.on_equity(krw(100_000_000), T0) == []
    assert rc.on_equity(krw(105_000_000), T0 + S) == []  # new peak
    # 102,900,000 is +2.9M from the start but -2.1M from the peak: the kill switch measures from the peak
    assert rc.on_equity(krw(103_500_000), T0 + 2 * S) == []  # -1.5M: inside the limit
    assert rc.on_equity(krw(102_900_000), T0 + 3 * S) == ["BTC", "ETH"]  # -2.1M from the peak
    assert mode(rc) is RiskMode.HALTED
    assert rc.state.halt_reason is not None and "105000000" in rc.state.halt_reason
    assert rc.decisions()[-1].action == "kill_switch"

    v = rc.check_open("XRP", "XRP", legs(1_000_000, 1_000_000), T0 + 4 * S)
    assert (v.allowed, v.first_trigger, v.tier, v.verdict) == (False, "halted", "global", REJECT)
    close = rc.check_close("BTC", "BTC", legs(5_100_000, 5_100_000), T0 + 4 * S)
    assert (close.allowed, close.first_trigger, close.verdict) == (True, "halted", REDUCE_ONLY)
    assert not rc.check_close("XRP", "XRP", legs(1, 1), T0 + 4 * S).allowed  # nothing to reduce

    rc.on_position_closed("BTC")
    assert rc.on_equity(krw(102_500_000), T0 + 5 * S) == ["ETH"]  # re-issued while halted and still open
    rc.on_position_closed("ETH")
    assert rc.on_equity(krw(102_400_000), T0 + 6 * S) == []
    assert mode(rc) is RiskMode.HALTED  # no automatic way out

    rc.resume(T0 + 7 * S)
    assert mode(rc) is RiskMode.ACTIVE and rc.state.peak_equity_krw == krw(102_400_000)
    assert rc.check_open("XRP", "XRP", legs(1_000_000, 1_000_000), T0 + 8 * S).allowed
    assert rc.on_equity(krw(100_500_000), T0 + 9 * S) == []  # -1.9M from the new peak
    rc.on_equity(krw(100_400_000), T0 + 10 * S)  # -2.0M: reaches the limit
    assert mode(rc) is RiskMode.HALTED


def test_pause_is_reducing_only_until_resume() -> None:
    rc = coordinator()
    rc.on_position_opened("BTC", "BTC", legs(2_000_000, 2_000_000))
    rc.pause("exchange maintenance", T0)
    v = rc.check_open("ETH", "ETH", legs(1_000_000, 1_000_000), T0 + S)
    assert (v.first_trigger, v.verdict) == ("paused", REJECT)
    assert rc.check_close("BTC", "BTC", legs(2_000_000, 2_000_000), T0 + S).verdict == REDUCE_ONLY
    rc.resume(T0 + 2 * S)
    assert rc.check_open("ETH", "ETH", legs(1_000_000, 1_000_000), T0 + 3 * S).verdict == ALLOW
    assert [d.action for d in rc.decisions()] == ["pause", "open", "close", "resume", "open"]


def test_venue_exposure_limit() -> None:
    rc = coordinator()
    for route in ("BTC", "ETH"):
        rc.on_position_opened(route, route, legs(9_000_000, 9_000_000))
    rc.on_position_opened("XRP", "XRP", {U: krw(5_000_000)})  # an Upbit-only residual
    assert rc.venue_exposure(U) == krw(23_000_000) and rc.venue_exposure(B) == krw(18_000_000)
    v = rc.check_open("SOL", "SOL", legs(3_000_000, 3_000_000), T0)  # Upbit 26M > 25M; Binance 21M fine
    assert (v.allowed, v.first_trigger, v.tier) == (False, "venue_exposure", "venue")
    assert v.codes == ("venue.venue_exposure",) and "upbit" in v.reasons[0]
    assert rc.check_open("SOL", "SOL", legs(2_000_000, 2_000_000), T0).allowed  # 25M: at the limit is fine


def test_route_position_limit() -> None:
    rc = coordinator()
    rc.on_position_opened("BTC", "BTC", legs(4_000_000, 4_000_000))
    rc.on_position_opened("BTC", "BTC", legs(4_000_000, 4_100_000))
    v = rc.check_open("BTC", "BTC", legs(1_900_000, 2_000_000), T0)  # Binance leg 10.1M > 10M
    assert (v.allowed, v.first_trigger, v.tier) == (False, "route_position", "route")
    assert rc.check_open("BTC", "BTC", legs(1_900_000, 1_900_000), T0).allowed  # exactly 10M
    rc.on_position_closed("BTC", legs(4_000_000, 4_100_000))  # partial close releases its entry notional
    assert rc.check_open("BTC", "BTC", legs(5_000_000, 5_000_000), T0).allowed


def test_symbol_position_limit_across_routes() -> None:
    rc = coordinator()
    rc.on_position_opened("BTC-premium", "BTC", legs(8_000_000, 8_000_000))
    v = rc.check_open("BTC-carry", "BTC", legs(5_000_000, 5_000_000), T0)  # 8M + 5M = 13M <= 15M
    assert v.allowed
    rc.on_position_opened("BTC-carry", "BTC", legs(5_000_000, 5_000_000))
    v = rc.check_open("BTC-carry", "BTC", legs(3_000_000, 3_000_000), T0)  # 8M + 8M = 16M > 15M
    assert (v.allowed, v.first_trigger, v.tier) == (False, "symbol_position", "symbol")


def test_inventory_imbalance() -> None:
    rc = coordinator()
    rc.on_inventory("BTC", krw("0.30"), krw("0.20"))  # |0.1| / 0.5 = 0.2
    assert rc.check_open("BTC", "BTC", legs(1_000_000, 1_000_000), T0).allowed
    rc.on_inventory("BTC", krw("0.05"), krw("0.25"))  # 0.2 / 0.3 = 0.667 > 0.5
    v = rc.check_open("BTC", "BTC", legs(1_000_000, 1_000_000), T0)
    assert (v.allowed, v.first_trigger, v.tier) == (False, "inventory_imbalance", "symbol")
    assert rc.inventory_imbalance("BTC") == pytest.approx(2 / 3)
    assert rc.check_open("ETH", "ETH", legs(1_000_000, 1_000_000), T0).allowed  # other symbols unaffected
    rc.on_inventory("ETH", krw(0), krw(0))
    assert rc.check_open("ETH", "ETH", legs(1_000_000, 1_000_000), T0).first_trigger == "inventory_imbalance"


def test_cooldown_after_a_loss_and_its_expiry() -> None:
    rc = coordinator()
    rc.on_round_trip_closed("BTC", krw(-50_000), T0)
    v = rc.check_open("BTC", "BTC", legs(1_000_000, 1_000_000), T0 + 599 * S)
    assert (v.allowed, v.first_trigger, v.tier) == (False, "loss_cooldown", "route")
    assert rc.check_open("ETH", "ETH", legs(1_000_000, 1_000_000), T0 + 599 * S).allowed  # per route
    assert rc.check_open("BTC", "BTC", legs(1_000_000, 1_000_000), T0 + 600 * S).allowed
    rc.on_round_trip_closed("ETH", krw(80_000), T0 + 601 * S)  # a win starts no cooldown
    assert rc.check_open("ETH", "ETH", legs(1_000_000, 1_000_000), T0 + 601 * S).allowed


def test_circuit_breaker_after_consecutive_losses_win_resets() -> None:
    rc = coordinator()
    t = T0
    for pnl in (-10_000, -10_000, 5_000, -10_000, -10_000):  # the win resets the streak: only 2 in a row
        t += 1000 * S
        assert rc.on_round_trip_closed("BTC", krw(pnl), t) == ()
    assert rc.state.loss_streak["BTC"] == 2
    assert rc.on_round_trip_closed("BTC", krw(-10_000), t + 1000 * S) == ("circuit_breaker",)
    late = t + 5 * DAY  # long after any cooldown: the breaker stays until an operator reset
    v = rc.check_open("BTC", "BTC", legs(1_000_000, 1_000_000), late)
    assert (v.allowed, v.first_trigger, v.tier) == (False, "circuit_breaker", "route")
    assert rc.check_open("ETH", "ETH", legs(1_000_000, 1_000_000), late).allowed
    rc.reset_route("BTC", late)
    assert rc.check_open("BTC", "BTC", legs(1_000_000, 1_000_000), late).allowed


def test_breakers_reset_after_their_market_time_rule() -> None:
    rc = RiskCoordinator(LIMITS.model_copy(update={"circuit_breaker_reset_s": 3600.0,
                                                  "global_circuit_breaker_losses": 4}))
    for k in range(4):
        rc.on_round_trip_closed("BTC" if k < 3 else "ETH", krw(-1), T0 + k * S)
    tripped = T0 + 3 * S
    assert rc.check_open("BTC", "BTC", legs(1, 1), tripped + 3599 * S).first_trigger == "global_circuit_breaker"
    v = rc.check_open("BTC", "BTC", legs(1, 1), tripped + 3600 * S)  # both reset: route at T0+2s, global at +3s
    assert v.allowed, v.reasons
    assert rc.state.loss_streak["BTC"] == 0 and rc.state.global_loss_streak == 0
    actions = [(e.action, e.route) for e in rc.state.events]
    assert actions == [("breaker_trip", "BTC"), ("global_breaker_trip", "*"), ("breaker_reset", "BTC"),
                       ("global_breaker_reset", "*")]
    report = rc.report()
    assert report["rejections_by_reason"] == {"global_circuit_breaker": 1}
    assert [e["action"] for e in report["events"]] == [a for a, _ in actions]


def test_default_order_passes_default_limits() -> None:
    """The default 10M KRW order's Binance leg is worth 10M x (1 - premium): it must pass at any sane premium."""
    from arbitrage_lite.core.config import EngineConfig

    cfg = EngineConfig()
    rc = RiskCoordinator(cfg.risk)
    order = Decimal(str(cfg.strategy.order_notional_krw))
    for k, premium in enumerate(("-0.10", "0", "0.10")):
        v = rc.check_open(f"R{k}", f"R{k}", {U: order, B: order * (1 - Decimal(premium))}, T0)
        assert v.allowed, v.reasons


def test_global_circuit_breaker_across_routes() -> None:
    rc = RiskCoordinator(LIMITS.model_copy(update={"global_circuit_breaker_losses": 3}))
    assert rc.on_round_trip_closed("BTC", krw(-1), T0) == ()
    assert rc.on_round_trip_closed("ETH", krw(-1), T0) == ()
    assert rc.on_round_trip_closed("XRP", krw(-1), T0) == ("global_circuit_breaker",)
    assert rc.check_open("SOL", "SOL", legs(1, 1), T0 + DAY).first_trigger == "global_circuit_breaker"
    rc.resume(T0 + DAY)
    assert rc.check_open("SOL", "SOL", legs(1, 1), T0 + DAY).allowed


def test_max_order_notional() -> None:
    rc = coordinator()
    v = rc.check_open("BTC", "BTC", legs(5_000_001, 4_900_000), T0)
    assert (v.allowed, v.first_trigger, v.tier, v.verdict) == (False, "max_order_notional", "global", REJECT)
    assert rc.check_open("BTC", "BTC", legs(5_000_000, 5_000_000), T0).allowed


def test_tier_precedence_lists_every_reason() -> None:
    rc = coordinator()
    rc.on_inventory("BTC", krw(1), krw(0))  # symbol tier fires
    rc.on_round_trip_closed("BTC", krw(-1_200_000), T0)  # route cooldown and the global daily loss fire
    v = rc.check_open("BTC", "BTC", legs(1_000_000, 1_000_000), T0 + S)
    assert (v.first_trigger, v.tier, v.verdict) == ("daily_loss_limit", "global", REJECT)
    assert v.codes == ("global.daily_loss_limit", "route.loss_cooldown", "symbol.inventory_imbalance")
    assert rc.decisions()[-1].first_trigger == "daily_loss_limit"


def test_invalid_inputs_fail_closed() -> None:
    rc = coordinator()
    for bad in ({}, {U: Decimal("NaN")}, {U: Decimal(-1)}, {U: 1.5}):
        v = rc.check_open("BTC", "BTC", bad, T0)  # type: ignore[arg-type]
        assert (v.allowed, v.first_trigger) == (False, "invalid_input")
    with pytest.raises(ValueError):
        rc.on_equity(Decimal("NaN"), T0)
    with pytest.raises(ValidationError):
        RiskLimits(daily_loss_limit_krw=Decimal(0))
    with pytest.raises(ValidationError):
        RiskLimits(unknown_limit=1)  # type: ignore[call-arg]


def test_decision_log_is_bounded() -> None:
    rc = RiskCoordinator(LIMITS, decision_log_size=3)
    for i in range(5):
        rc.check_open("BTC", "BTC", legs(1, 1), T0 + i)
    assert [d.now_ns for d in rc.decisions()] == [T0 + 2, T0 + 3, T0 + 4]


def test_snapshot_restore_round_trip() -> None:
    rc = coordinator()
    rc.on_position_opened("BTC", "BTC", legs(4_000_000, 4_000_123))
    rc.on_inventory("BTC", krw("0.123"), krw("0.1"))
    rc.on_equity(krw(100_000_000), T0)
    for pnl in (-1, -2, -3):
        rc.on_round_trip_closed("ETH", krw(pnl), T0 + S)
    rc.on_equity(krw("97999999.5"), T0 + 2 * S)  # halts
    rc.check_open("XRP", "XRP", legs(1, 1), T0 + 3 * S)
    snap = rc.snapshot()
    assert snap["version"] == 2
    wire = json.loads(json.dumps(snap))  # as it would come back from Redis

    restored = RiskCoordinator(LIMITS)
    restored.restore(wire)
    assert restored.state == rc.state and restored.snapshot() == snap
    probe = legs(1_000_000, 1_000_000)
    assert restored.check_close("BTC", "BTC", probe, T0 + 4 * S) == rc.check_close("BTC", "BTC", probe, T0 + 4 * S)
    with pytest.raises(ValueError, match="version"):
        restored.restore({**wire, "version": 99})


def test_risk_books_units_a_trip_left_on_a_venue_at_the_trips_own_mid_not_zero() -> None:
    """A trip whose Binance leg never filled and whose Upbit unwind expired leaves 0.1 BTC on Upbit: risk books
    the fees and slippage it cost, not the 10M KRW the coin is worth (which tripped the drawdown kill switch in
    the venue-outage stress scenario)."""
    from arbitrage_lite.core.domain import Side, Venue
    from arbitrage_lite.core.ledger import Fill
    from arbitrage_lite.core.risk_feed import closed_trip_pnl

    buy = Fill(0, Venue.UPBIT, Side.BUY, Decimal("100010000"), Decimal("0.1"), Decimal("5000.5"),
               Decimal("100000000"), 1, 2, 3, "open")
    pnl = closed_trip_pnl((buy,), Decimal("1400"))
    assert pnl.net_krw == -(Decimal("5000.5") + Decimal("1000"))  # the fee and 10,000 KRW x 0.1 of slippage
    assert pnl.residual_coin == (Decimal("0.1"), Decimal(0))
