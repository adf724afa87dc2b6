"""Run a test body against the fake venues started in-process for it (and stopped whatever happens)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from arbitrage_lite.infra.venues.fake.server import FakeVenues


def with_fakes(body: Callable[[FakeVenues, dict[str, Any]], Awaitable[None]], **kw: Any) -> None:
    """``body(fakes, info)`` with ``FakeVenues(**kw)`` (default: static books, speed 0) started on free ports."""

    async def main() -> None:
        fv = FakeVenues(**{"speed": 0, **kw})
        info = await fv.start()
        try:
            await body(fv, info)
        finally:
            await fv.stop()

    asyncio.run(main())
