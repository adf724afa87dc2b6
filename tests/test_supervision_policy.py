import pytest

from arbitrage_lite.supervision.policy import (
    Action,
    ChildSpec,
    HealthTracker,
    Intensity,
    Strategy,
    SupervisorPolicy,
)

S = 1_000_000_000
CHILDREN = (ChildSpec("alert"), ChildSpec("portfolio"), ChildSpec("risk"), ChildSpec("fx"), ChildSpec("route:BTC"))


def test_one_for_one_restarts_only_the_failed_child() -> None:
    p = SupervisorPolicy("root", CHILDREN, Strategy.ONE_FOR_ONE, Intensity(3, 60 * S), is_root=True)
    d = p.on_exit("risk", 0, failed=True, reason="killed")
    assert d.action is Action.RESTART and d.restart == ("risk",) and "killed" in d.reason


def test_rest_for_one_restarts_the_child_and_those_after_it() -> None:
    p = SupervisorPolicy("root", CHILDREN, Strategy.REST_FOR_ONE)
    assert p.on_exit("risk", 0, failed=True, reason="x").restart == ("risk", "fx", "route:BTC")
    assert p.on_exit("route:BTC", 1, failed=True, reason="x").restart == ("route:BTC",)


def test_intensity_escalates_then_a_root_halts() -> None:
    child = SupervisorPolicy("routes", CHILDREN, intensity=Intensity(2, 10 * S))
    assert child.on_exit("route:BTC", 0, True, "a").action is Action.RESTART
    assert child.on_exit("route:BTC", 5 * S, True, "b").action is Action.RESTART
    third = child.on_exit("route:BTC", 9 * S, True, "c")
    assert third.action is Action.ESCALATE and third.restart == () and "3 restarts" in third.reason
    root = SupervisorPolicy("root", CHILDREN, intensity=Intensity(0, 10 * S), is_root=True)
    assert root.on_exit("fx", 0, True, "boom").action is Action.HALT


def test_restarts_outside_the_window_do_not_count() -> None:
    p = SupervisorPolicy("root", CHILDREN, intensity=Intensity(2, 10 * S))
    for t in (0, 5 * S, 16 * S, 26 * S, 37 * S):  # never more than 2 within any 10 s
        assert p.on_exit("fx", t, True, "x").action is Action.RESTART
    assert p.restarts_total == 5


def test_transient_child_ending_normally_is_not_restarted() -> None:
    p = SupervisorPolicy("feeds", (ChildSpec("feed:upbit", transient=True),))
    assert p.on_exit("feed:upbit", 0, failed=False, reason="replay done").action is Action.IGNORE
    assert p.on_exit("feed:upbit", 1, failed=True, reason="crash").action is Action.RESTART


def test_bad_specs_are_refused() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        SupervisorPolicy("root", (ChildSpec("a"), ChildSpec("a")))
    with pytest.raises(ValueError, match="spaces"):
        ChildSpec("route BTC")
    with pytest.raises(KeyError, match="no child"):
        SupervisorPolicy("root", CHILDREN).on_exit("nope", 0, True, "x")
    with pytest.raises(ValueError):
        Intensity(-1, S)


def test_health_tracker_finds_dead_and_hung_children() -> None:
    h = HealthTracker(hung_after_ns=2 * S)
    for c in ("risk", "fx", "route:BTC"):
        h.register(c, 0)
    h.ok("risk", 3 * S)
    h.died("fx")
    assert h.unhealthy(3 * S) == [("fx", "dead"), ("route:BTC", "hung")]
    h.register("fx", 4 * S)  # restarted
    h.ok("route:BTC", 4 * S)
    assert h.unhealthy(5 * S) == []  # risk answered 2 s ago: at the limit, not past it
    assert h.unhealthy(5 * S + 1) == [("risk", "hung")]
