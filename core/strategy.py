"""The strategy decision: one compiled implementation for backtest, paper and live.

Signal: the Upbit/Binance price ratio (KRW per USDT implied by the coin) against its EMA reference;
``dev_bps = (ratio / reference - 1) * 1e4``. FX cancels out of the deviation, so a stale or daily FX rate
cannot create a signal; FX only converts USDT PnL to KRW and labels the premium level.

Direction +1 = "premium rich": sell the coin on Upbit, buy it on Binance. -1 = the reverse.
"""

from __future__ import annotations

import math

from numba import njit

EXIT_NONE, EXIT_REVERT, EXIT_TAKE_PROFIT, EXIT_STOP_LOSS, EXIT_TIME, EXIT_ABORTED, EXIT_FLATTEN = 0, 1, 2, 3, 4, 5, 6
EXIT_GAP = 7  # the data had a hole longer than strategy.max_gap_s while the trip was open: out at the first quote
# the position was worth less than a venue's minimum order when it was due to close: no close can be sent, its units
# stay on both venues (hedged against each other, marked at the end like any inventory) and the route trades on
EXIT_DUST = 8
EXIT_REASONS = ("open", "revert", "take_profit", "stop_loss", "time_stop", "aborted", "flatten", "data_gap",
                "dust_left")


@njit(cache=True)
def update_reference(ema: float, last_ts: int, ratio: float, ts: int, halflife_ns: float,
                     max_gap_ns: float) -> tuple[float, bool]:
    """Time-based EMA of the ratio. Returns (new ema, reset?) — a gap longer than ``max_gap_ns`` resets it."""
    if last_ts < 0 or ts - last_ts > max_gap_ns or not (ema > 0.0):
        return ratio, True
    alpha = 1.0 - math.exp(-(ts - last_ts) * math.log(2.0) / halflife_ns)
    return ema + alpha * (ratio - ema), False


@njit(cache=True)
def entry_signal(dev_bps: float, entry_bps: float, allow_long: bool) -> int:
    """+1 / -1 when the deviation crosses the entry threshold, else 0 (before any risk check)."""
    if dev_bps >= entry_bps:
        return 1
    if allow_long and dev_bps <= -entry_bps:
        return -1
    return 0


@njit(cache=True)
def expected_edge_bps(direction: int, dev_bps: float, exit_bps: float, cost_bps: float) -> float:
    """Expected capture (deviation back to the exit level) minus the expected round-trip cost."""
    return direction * dev_bps - exit_bps - cost_bps


@njit(cache=True)
def round_trip_cost_bps(fee_u: float, fee_b: float, half_spread_u_bps: float, half_spread_b_bps: float,
                        impact_u_bps: float, impact_b_bps: float) -> float:
    """Four taker legs: fees on each, half a spread and impact on each."""
    return 2e4 * (fee_u + fee_b) + 2.0 * (half_spread_u_bps + half_spread_b_bps + impact_u_bps + impact_b_bps)


@njit(cache=True)
def exit_reason(direction: int, dev_bps: float, trade_bps: float, held_ns: float, exit_bps: float,
                take_profit_bps: float, stop_loss_bps: float, max_hold_ns: float) -> int:
    """Why an open round trip should close now (``EXIT_NONE`` to keep it). First trigger wins."""
    if trade_bps >= take_profit_bps:
        return EXIT_TAKE_PROFIT
    if trade_bps <= -stop_loss_bps:
        return EXIT_STOP_LOSS
    if held_ns >= max_hold_ns:
        return EXIT_TIME
    if direction * dev_bps <= exit_bps:
        return EXIT_REVERT
    return EXIT_NONE


@njit(cache=True)
def mark_bps(direction: int, entry_ratio: float, ratio: float) -> float:
    """Mark-to-mid gain of the hedge since entry, in bps (before costs)."""
    return direction * (entry_ratio - ratio) / entry_ratio * 1e4
