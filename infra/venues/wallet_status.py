"""Deposit / withdrawal and system status -> core.venue.MarketStatus flags (sans-IO, both venues).

Each venue says per asset whether deposits and withdrawals work (Upbit ``GET /v1/status/wallet``, brief §A10;
Binance ``GET /sapi/v1/capital/config/getall``, §B9) and, Binance only, whether the whole system is in
maintenance (``GET /sapi/v1/system/status``). The venue parsers turn those into :class:`AssetStatus`; here they
become one MarketStatus per market: the flags of the market's *base* asset (the coin the arbitrage moves between
the venues: a suspended BTC deposit on Upbit means bought BTC cannot be brought there) plus HALTED during system
maintenance. The quote asset's status stays available per asset (KRW has no wallet entry on Upbit).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ...core.venue import MarketState, MarketStatus

SUSPENDED = MarketState.DEPOSIT_SUSPENDED | MarketState.WITHDRAW_SUSPENDED


@dataclass(frozen=True, slots=True)
class AssetStatus:
    """One asset's wallet on one venue: ``state`` holds only DEPOSIT_SUSPENDED / WITHDRAW_SUSPENDED."""

    venue: str
    asset: str
    state: MarketState
    detail: str  # the venue's own words (per network), for the operator


def asset_state(networks: list[tuple[str, bool, bool]]) -> MarketState:
    """Flags from (network, deposit ok, withdraw ok) rows: suspended when *no* network allows it (any one
    network is enough to move the coin; an asset without a row is suspended both ways)."""
    state = MarketState.TRADING
    if not any(dep for _, dep, _ in networks):
        state |= MarketState.DEPOSIT_SUSPENDED
    if not any(wd for _, _, wd in networks):
        state |= MarketState.WITHDRAW_SUSPENDED
    return state


def market_status(venue: str, symbol: str, base: str, assets: Mapping[str, AssetStatus], *,
                  system_halted: str = "", symbol_state: MarketState = MarketState.TRADING, ts_venue: int = 0,
                  ts_local: int = 0) -> MarketStatus:
    """The market's flags: its own trading state, its base asset's wallet flags, HALTED in maintenance.

    An asset the venue did not list at all is reported suspended both ways (no wallet known to move it)."""
    a = assets.get(base)
    state = symbol_state | (a.state if a is not None else SUSPENDED)
    notes = [f"{base}: {a.detail if a is not None else 'no wallet entry'}"]
    if system_halted:
        state |= MarketState.HALTED
        notes.insert(0, f"system: {system_halted}")
    return MarketStatus(venue, symbol, state, "; ".join(notes)[:300], ts_venue, ts_local)
