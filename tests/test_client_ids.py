import re

import pytest

from arbitrage_lite.core.client_ids import (
    ID_PATTERN,
    MAX_SEQ,
    ClientIdFactory,
    DuplicateClientId,
    ParsedClientId,
    format_client_id,
    parse_client_id,
)

UPBIT_SAFE = re.compile(r"^[A-Za-z0-9_-]{1,36}$")
BINANCE = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")


def test_100k_ids_are_unique_and_valid_on_both_venues() -> None:
    factory = ClientIdFactory("r2501a")
    routes = ["BTC", "ETH", "XRP", "SHIB", "1INCH"]
    ids = [factory.next(routes[i % 5], "u" if i % 2 else "b") for i in range(100_000)]
    assert len(set(ids)) == 100_000
    assert all(UPBIT_SAFE.match(i) and BINANCE.match(i) and ID_PATTERN.fullmatch(i) for i in ids)
    assert factory.state() == 100_000 and all(factory.seen(i) for i in ids[:: 997])
    assert parse_client_id(ids[-1]) == ParsedClientId("al", "r2501a", 100_000, "1INCH", "u")


def test_ids_are_deterministic_given_run_id_and_sequence() -> None:
    a, b = ClientIdFactory("run7", prefix="arb"), ClientIdFactory("run7", prefix="arb")
    assert [a.next("BTC", "u") for _ in range(50)] == [b.next("BTC", "u") for _ in range(50)]
    assert a.next("BTC", "b") == format_client_id("arb", "run7", 51, "BTC", "b") == "arb-run7-1f-BTC-b"


def test_sequence_restores_from_a_snapshot() -> None:
    first = ClientIdFactory("run7")
    for _ in range(10):
        first.next("ETH", "u")
    snapshot = first.state()
    again = ClientIdFactory("run7")
    again.restore(snapshot)
    assert again.next("ETH", "b") == first.next("ETH", "b")
    assert again.state() == first.state() == 11


def test_an_id_is_never_handed_out_twice() -> None:
    factory = ClientIdFactory("run7")
    issued = [factory.next("BTC", "u") for _ in range(5)]
    factory.restore(2)
    with pytest.raises(DuplicateClientId):
        factory.next("BTC", "u")
    with pytest.raises(DuplicateClientId):
        factory.next("ETH", "x")  # same sequence number under another route: refused too
    assert factory.state() == 2 and factory.seen(issued[2]) and not factory.seen("al-run7-6-BTC-u")
    factory.restore(5)
    assert factory.next("BTC", "u") == "al-run7-6-BTC-u"


@pytest.mark.parametrize("run_id", ["", "toolong12", "run-1", "run_1", "run 1", "rün", "run1\n", None, 7])
def test_run_id_is_validated(run_id: object) -> None:
    with pytest.raises(ValueError, match="run_id"):
        ClientIdFactory(run_id)  # type: ignore[arg-type]


@pytest.mark.parametrize(("prefix", "route", "leg"), [("toolong", "BTC", "u"), ("al", "BTC-KRW", "u"),
                                                      ("al", "VERYLONGCOIN", "u"), ("al", "BTC", ""),
                                                      ("al", "BTC", "a.b")])
def test_prefix_route_and_leg_are_validated(prefix: str, route: str, leg: str) -> None:
    with pytest.raises(ValueError):
        ClientIdFactory("run1", prefix=prefix).next(route, leg)


def test_longest_id_fits_36_and_the_sequence_has_an_end() -> None:
    factory = ClientIdFactory("abcdefgh", prefix="abcd")
    factory.restore(MAX_SEQ - 1)
    longest = factory.next("ABCDEFGH", "wxyz")
    assert len(longest) == 36 and BINANCE.match(longest)
    with pytest.raises(ValueError, match="new run id"):
        factory.next("BTC", "u")
    with pytest.raises(ValueError):
        factory.restore(-1)


@pytest.mark.parametrize("client_id", ["x", "web_123", "al-run7-01-BTC-u", "al-run7-1-BTC", "al--1-BTC-u",
                                       "al-run7-Z-BTC-u"])
def test_foreign_ids_do_not_parse(client_id: str) -> None:
    assert parse_client_id(client_id) is None
