"""Test helper: read a private order stream in a task and poll what came (tests/test_private_streams.py and the
venue contract)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from arbitrage_lite.core.venue import OrderEvent, OrderState
from arbitrage_lite.infra.venues.stream_loop import Marker


class Reader:
    """Reads an order stream in a task; ``until`` polls what came so far (no fixed sleeps)."""

    def __init__(self, stream: AsyncIterator[Any]) -> None:
        self.items: list[Any] = []
        self.task = asyncio.create_task(self._run(stream))

    async def _run(self, stream: AsyncIterator[Any]) -> None:
        async for item in stream:
            self.items.append(item)

    async def until(self, done: Callable[[list[Any]], bool], timeout_s: float = 10.0) -> list[Any]:
        deadline = time.monotonic() + timeout_s
        while not done(self.items):
            if self.task.done():
                self.task.result()  # re-raise what ended it
                raise AssertionError(f"stream ended: {self.items}")
            assert time.monotonic() < deadline, f"timed out; got {self.items}"
            await asyncio.sleep(0.005)
        return self.items

    def events(self, client_id: str) -> list[OrderEvent]:
        return [e for e in self.items if isinstance(e, OrderEvent) and e.client_id == client_id]

    def markers(self) -> list[str]:
        return [m.kind for m in self.items if isinstance(m, Marker)]

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


def closed(client_id: str, reader: Reader) -> Callable[[list[Any]], bool]:
    final = (OrderState.FILLED, OrderState.CANCELLED, OrderState.EXPIRED)
    return lambda _: any(e.state in final for e in reader.events(client_id))
