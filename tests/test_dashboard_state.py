"""The dashboard's state on a live run: premiums and positions from the live host's status."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from arbitrage_lite.actors.route_host import _Local
from arbitrage_lite.infra.dashboard.state import Sources, _Seen, build_state, refresh


class _Host:
    """The live host's shape the dashboard reads: ``status`` (and ``snapshot``, a host without a coordinator)."""

    def __init__(self) -> None:
        self.routes: dict[str, Any] = {"BTC": {"premium_bps": 212.5, "position": 1},
                                       "ETH": {"premium_bps": float("nan"), "position": 0}}

    async def status(self) -> dict[str, Any]:
        return {"routes": self.routes}

    async def snapshot(self) -> dict[str, Any]:
        raise RuntimeError("this route host has no co-located RiskCoordinator (local_risk)")


def test_live_routes_show_the_hosts_premium_and_position() -> None:
    host = _Host()
    src = Sources(["BTC", "ETH"], Decimal(10**8), risk=_Local(host), host=_Local(host), mode="live")
    seen = _Seen()

    async def run() -> dict[str, Any]:
        await refresh(src, seen)
        host.routes["ETH"] = {"premium_bps": -35.0, "position": 0}
        await refresh(src, seen)
        return build_state(src, seen, "running")

    state = asyncio.run(run())
    routes = {r["route"]: r for r in state["routes"]}
    assert routes["BTC"]["premium_bps"] == 212.5 and routes["BTC"]["open_trip"] is True
    assert routes["ETH"]["premium_bps"] == -35.0 and routes["ETH"]["open_trip"] is False
    assert state["risk"] is None  # no coordinator: nothing invented
