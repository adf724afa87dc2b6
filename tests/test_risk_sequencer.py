"""Risk questions of routes that run at their own pace, answered in market-time order (core.risk_sequencer)."""

from __future__ import annotations

from decimal import Decimal

from arbitrage_lite.core.domain import Venue
from arbitrage_lite.core.risk import RiskCoordinator, RiskLimits
from arbitrage_lite.core.risk_sequencer import NEVER, RiskFact, RiskSequencer

LEGS = {Venue.UPBIT: Decimal(1_000_000), Venue.BINANCE: Decimal(1_000_000)}


def sequencer(ordered: bool = True) -> RiskSequencer:
    limits = RiskLimits(global_circuit_breaker_losses=1, circuit_breaker_reset_s=None)
    return RiskSequencer(RiskCoordinator(limits), ("A", "B"), Decimal(100_000_000), ordered=ordered)


def loss(route: str, trip: int, ts: int) -> RiskFact:
    return RiskFact("close", route, trip, ts, net_krw="-1000")


def test_a_question_waits_until_every_other_route_has_reported_up_to_its_time() -> None:
    seq = sequencer()
    seq.ask("A", 100)
    assert not seq.ready("A") and seq.blocking("A") == ["B"]
    seq.progress("B", 99)
    assert not seq.ready("A")  # B may still do something at 100
    seq.progress("B", 100)
    assert seq.ready("A")


def test_a_late_report_of_an_earlier_loss_counts_and_a_later_one_does_not() -> None:
    seq = sequencer()
    seq.ask("A", 100)
    seq.progress("B", 150, [loss("B", 0, 120)])  # after A's question: not booked for it
    assert seq.answer("A", LEGS).allowed
    seq.ask("A", 200)
    seq.progress("B", 250, [loss("B", 1, 90)])  # reported late, but before A's question in market time...
    assert seq.ready("A")
    verdict = seq.answer("A", LEGS)  # ...so the portfolio breaker (1 loss) had tripped at 120 already
    assert not verdict.allowed and verdict.first_trigger == "global_circuit_breaker"
    assert seq.net_krw == Decimal(-2000)


def test_equal_times_go_in_route_order() -> None:
    seq = sequencer()
    seq.ask("B", 100)
    assert not seq.ready("B")  # A (first in order) may still ask at 100
    seq.ask("A", 100)
    assert seq.ready("A") and not seq.ready("B")
    seq.answer("A", LEGS)
    assert seq.ready("B")


def test_facts_are_booked_once_in_market_time_order() -> None:
    seq = sequencer()
    seq.progress("A", 50, [RiskFact("open", "A", 0, 40, ((0, "1000000"), (1, "1000000")))])
    seq.progress("B", 60)
    assert "A" in seq.risk.state.positions  # everything up to 50 is safe to book at once
    seq.progress("A", 80, [RiskFact("open", "A", 0, 40, ((0, "1000000"), (1, "1000000"))), loss("A", 0, 70)])
    seq.finish("B")
    assert seq.booked == {"A": (0, 1)} and not seq.pending  # the last fact booked per route: trip 0's close
    assert seq.risk.state.global_loss_streak == 1  # the repeated open was not booked twice


def test_unordered_answers_at_once_and_books_on_arrival() -> None:
    seq = RiskSequencer(RiskCoordinator(RiskLimits(global_circuit_breaker_losses=1)), (), Decimal(0), ordered=False)
    seq.progress("X", 10, [loss("X", 0, 5)])
    seq.ask("Y", 1)
    assert seq.ready("Y")
    assert seq.answer("Y", LEGS).first_trigger == "global_circuit_breaker"


def test_snapshot_round_trip() -> None:
    seq = sequencer()
    seq.progress("A", 50, [loss("A", 0, 60)])
    seq.ask("B", 70)
    again = RiskSequencer.restore(seq.risk, seq.snapshot())
    assert again.snapshot() == seq.snapshot()
    again.finish("A")
    assert again.done_through["A"] == NEVER and again.ready("B")
