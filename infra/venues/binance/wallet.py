"""Binance wallet and system status (brief §B9), sans-IO: requests and parsers.

``GET /sapi/v1/capital/config/getall`` (SIGNED, weight 10): per coin ``depositAllEnable`` / ``withdrawAllEnable``
and a ``networkList`` of ``depositEnable`` / ``withdrawEnable`` (``depositDesc`` / ``withdrawDesc`` say why when
disabled). A coin's deposits are suspended when ``depositAllEnable`` is false or no network takes deposits (the
same for withdrawals). ``GET /sapi/v1/system/status`` (no auth, weight 1): ``{"status":0,"msg":"normal"}`` or
``{"status":1,"msg":"system_maintenance"}`` -> HALTED on every market.
"""

from __future__ import annotations

from typing import Any

from ....core.venue import MarketState, Rejected
from ..wallet_status import AssetStatus, asset_state
from . import VENUE
from .orders import Request
from .parse import CATCH, Bad, _load, _mapping, _rejected, boolean, integer, parse_each, text

COIN_CONFIG = Request("GET", "/sapi/v1/capital/config/getall", (), 10)
SYSTEM_STATUS = Request("GET", "/sapi/v1/system/status", (), 1)


def _coin(c: dict[str, Any]) -> AssetStatus:
    coin = text(c["coin"], "coin")
    nets = c.get("networkList", [])
    if type(nets) is not list:
        raise Bad("bad_field", f"{coin}: networkList is not a list")
    rows, notes = [], []
    for n in nets:
        n = _mapping(n, "network")
        name = text(n["network"], "network")
        dep, wd = boolean(n["depositEnable"], "depositEnable"), boolean(n["withdrawEnable"], "withdrawEnable")
        rows.append((name, dep, wd))
        why = [str(n.get(k) or "")[:60] for k in ("depositDesc", "withdrawDesc") if n.get(k)]
        notes.append(f"{name} deposit={'on' if dep else 'off'} withdraw={'on' if wd else 'off'}"
                     + (f" ({'; '.join(why)})" if why else ""))
    state = asset_state(rows)
    if not boolean(c.get("depositAllEnable", True), "depositAllEnable"):
        state |= MarketState.DEPOSIT_SUSPENDED
    if not boolean(c.get("withdrawAllEnable", True), "withdrawAllEnable"):
        state |= MarketState.WITHDRAW_SUSPENDED
    return AssetStatus(VENUE, coin, state, ", ".join(notes) or "no network")


def parse_coin_config(raw: str | bytes | list[Any], ts_local: int) -> list[AssetStatus | Rejected]:
    """One AssetStatus per coin; a coin entry that cannot be read is a Rejected, the others stand."""
    return parse_each(raw, ts_local, "capital/config/getall", lambda c: _coin(_mapping(c, "coin")))


def parse_system_status(raw: str | bytes | dict[str, Any], ts_local: int) -> str | Rejected:
    """"" when normal, else the venue's message (e.g. ``system_maintenance``): the reason markets are HALTED."""
    try:
        d = _mapping(_load(raw), "system/status")
        status = integer(d["status"], "status")
        msg = str(d.get("msg", ""))[:80]
    except CATCH as x:
        return _rejected(x, ts_local)
    if status not in (0, 1):
        return Rejected(VENUE, "bad_field", f"system/status: status {status}", ts_local)
    return "" if status == 0 else (msg or "system_maintenance")
