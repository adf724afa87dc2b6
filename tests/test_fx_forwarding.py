"""The FX aggregator passes each feed window on under that window's own sequence number, even when Ray
delivers the feed's calls out of order and a slow subscriber holds an acknowledgement back."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from arbitrage_lite.actors.feed import Batches
from arbitrage_lite.actors.fx_aggregator import ACK_LAG, FxAggregatorActor
from arbitrage_lite.actors.recovery import RecoveryConfig
from arbitrage_lite.core.events import empty_batch


class _SlowRoute:
    """A route handle whose delivery of one chosen message stays unconfirmed until released."""

    def __init__(self, hold_seq: int) -> None:
        self.received: list[tuple[int, int]] = []
        self.hold_seq = hold_seq
        self.held: asyncio.Future[None] | None = None
        self.on_events = self

    def remote(self, source: str, seq: int, upto_ns: int, events: Any) -> asyncio.Future[None]:
        self.received.append((seq, upto_ns))
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if seq == self.hold_seq:
            self.held = fut
        else:
            fut.set_result(None)
        return fut


def _upto(window: int) -> int:
    return 1_000 * (window + 1)


def test_windows_keep_their_sequence_numbers_when_calls_arrive_out_of_order(tmp_path: Path) -> None:
    async def drive() -> list[tuple[int, int]]:
        route = _SlowRoute(hold_seq=1)
        agg = FxAggregatorActor(10**15, routes={"BTC": route},
                                recovery=RecoveryConfig("fxorder", env="test", dir=str(tmp_path)))

        def window(k: int) -> Any:
            return agg.forward_many(k, _upto(k), Batches.of([("BTC", empty_batch())]))

        for k in range(ACK_LAG + 1):
            await window(k)
        await window(ACK_LAG + 2)  # arrives before its predecessor: held
        late = asyncio.ensure_future(window(ACK_LAG + 1))  # releases both, then waits for window 1's ack
        await asyncio.sleep(0)
        after = asyncio.ensure_future(window(ACK_LAG + 3))  # runs while the call before it waits
        await asyncio.sleep(0)
        assert route.held is not None and not late.done()
        route.held.set_result(None)
        await asyncio.gather(late, after)
        return route.received

    received = asyncio.run(drive())
    assert sorted(seq for seq, _ in received) == list(range(ACK_LAG + 4))
    assert all(upto == _upto(seq) for seq, upto in received), received


class _LaggingRoute:
    """A route whose newest snapshot holds FX windows before ``durable`` only (it took the rest in, unsaved)."""

    def __init__(self, durable: int) -> None:
        self.durable = durable
        self.on_events = self

    def remote(self, source: str, seq: int, upto_ns: int, events: Any) -> asyncio.Future[int]:
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        fut.set_result(self.durable)
        return fut


def test_the_snapshot_keeps_every_window_a_route_has_not_snapshotted(tmp_path: Path) -> None:
    """Delivered is not enough: a route that took window k in and died before its own snapshot asks for k again
    after a resume, so the aggregator's snapshot keeps what the route's snapshot does not hold."""
    rec = RecoveryConfig("fxdur", env="test", dir=str(tmp_path))

    async def drive() -> dict[str, Any]:
        agg = FxAggregatorActor(10**15, routes={"BTC": _LaggingRoute(durable=3)}, recovery=rec)
        for k in range(40):
            await agg.forward_many(k, _upto(k), Batches.of([("BTC", empty_batch())]))
        assert agg.snaps is not None
        snap = agg.snaps.load()
        assert snap is not None
        return snap

    snap = asyncio.run(drive())
    assert [int(e[0]) for e in snap["log"]["BTC"]] == list(range(3, 40))  # not just the newest 16

    async def resend_after_restore() -> int:
        restored = FxAggregatorActor(10**15, routes={"BTC": _LaggingRoute(durable=3)}, recovery=rec)
        restored._restore()  # what a restarted or resumed incarnation's constructor does first
        return await restored.resend("BTC", 3)

    assert asyncio.run(resend_after_restore()) == 37  # windows 3..39, none "no longer kept"
