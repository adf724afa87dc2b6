"""Upbit ``GET /v1/status/wallet`` (JWT, brief §A10) -> per-currency AssetStatus, sans-IO.

Items: ``{currency, net_type, network_name, wallet_state, block_state, block_height, block_updated_at,
block_elapsed_minutes}``, one per (currency, network). ``wallet_state``: ``working`` (both ways),
``withdraw_only`` (deposits suspended), ``deposit_only`` (withdrawals suspended), ``paused`` / ``unsupported``
(neither). ``block_state`` ``inactive`` (the node is not following the chain) is read as deposits suspended too:
they would not be credited; ``delayed`` is only noted. A currency is suspended one way when no network works
that way. The status lags by minutes (not real time).
"""

from __future__ import annotations

from typing import Any

from ....core.venue import Rejected
from ..wallet_status import AssetStatus, asset_state
from .numbers import VENUE, Bad, text
from .orders import Request
from .parse import _each

WALLET_STATUS = Request("GET", "/status/wallet", [], "default")
_WAYS = {"working": (True, True), "withdraw_only": (False, True), "deposit_only": (True, False),
         "paused": (False, False), "unsupported": (False, False)}
_BLOCK = ("normal", "delayed", "inactive")


def _row(m: dict[str, Any]) -> tuple[str, str, bool, bool, str]:
    currency = text(m, "currency", max_len=16)
    net = text(m, "net_type", max_len=32, optional=True) or currency
    wallet = text(m, "wallet_state", max_len=16)
    if wallet not in _WAYS:
        raise Bad("bad_field", f"{currency}: wallet_state {wallet!r}")
    block = m.get("block_state")
    if block is not None and block not in _BLOCK:
        raise Bad("bad_field", f"{currency}: block_state {block!r}")
    dep, wd = _WAYS[wallet]
    dep = dep and block != "inactive"
    return currency, net, dep, wd, f"{net} {wallet}" + (f" block {block}" if block not in (None, "normal") else "")


def parse_wallet_status(raw: bytes | str, ts_local: int) -> list[AssetStatus | Rejected]:
    """One AssetStatus per currency (its networks folded); unreadable items come back as Rejected."""
    rows: dict[str, list[tuple[str, bool, bool, str]]] = {}
    out: list[AssetStatus | Rejected] = []
    for item in _each(raw, ts_local, _row):
        if isinstance(item, Rejected):
            out.append(item)
        else:
            currency, net, dep, wd, note = item
            rows.setdefault(currency, []).append((net, dep, wd, note))
    for currency, nets in rows.items():
        state = asset_state([(n, d, w) for n, d, w, _ in nets])
        out.append(AssetStatus(VENUE, currency, state, ", ".join(note for *_, note in nets)))
    return out
