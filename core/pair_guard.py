"""The pair guard: is a route's premium arbitrage, or a structural mispricing no trade can close?

Every coin of a universe shares the tether/FX part of its premium; the universe's *common premium* is the
median across coins of their latest premiums (robust to a few odd coins). A coin whose own premium sits far
from it for most of a trailing window is not the same asset on both venues (same ticker, another chain or
token) or its transfer channel is closed (deposits or withdrawals suspended): its "premium" will not revert,
and it may not open. A fresh spike on a coin whose trailing premium was normal is the opportunity itself,
and stays tradable.

Pure and online: time is passed in, samples arrive in time order, a decision at ``t`` uses only samples
given before it (the common premium of an instant is computed from the samples of earlier instants).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class GuardChange:
    """The pair's guard state changed at ``ts_ns`` (after the sample at that time)."""

    ts_ns: int
    symbol: str
    guarded: bool
    reason: str


class PairGuard:
    def __init__(self, structural_bps: float, window_ns: int, fraction: float, common_window_ns: int,
                 min_coins: int) -> None:
        if not (structural_bps > 0 and window_ns > 0 and 0 < fraction < 1 and common_window_ns > 0):
            raise ValueError("structural_bps, window_ns, common_window_ns must be > 0 and fraction in (0, 1)")
        self.structural_bps, self.window_ns, self.fraction = structural_bps, window_ns, fraction
        self.common_window_ns, self.min_coins = common_window_ns, min_coins
        self._latest: dict[str, tuple[int, float]] = {}  # symbol -> (ts, premium) of its latest sample
        self._pending: dict[str, tuple[int, float]] = {}  # samples of the current instant (not yet in the median)
        self._now = -1
        self._common: float | None = None
        self._hist: dict[str, deque[tuple[int, float]]] = {}  # symbol -> (ts, |premium - common|)
        self._far: dict[str, int] = {}
        self._guarded: dict[str, bool] = {}

    def _advance(self, t: int) -> None:
        """A new instant: the previous instant's samples join the median; the common premium is recomputed."""
        if t < self._now:
            raise ValueError(f"samples must arrive in time order: {t} after {self._now}")
        if t == self._now:
            return
        self._latest.update(self._pending)
        self._pending = {}
        self._now = t
        fresh = [p for ts, p in self._latest.values() if t - ts <= self.common_window_ns]
        self._common = float(np.median(fresh)) if len(fresh) >= self.min_coins else None

    def common_bps(self, t: int) -> float | None:
        """The universe's common premium at ``t`` (None: too few coins with fresh premiums)."""
        self._advance(t)
        return self._common

    def update(self, t: int, symbol: str, premium_bps: float) -> GuardChange | None:
        """Take one coin's premium at ``t``; returns the change of its guard state, if any."""
        self._advance(t)
        if not math.isfinite(premium_bps):
            return None
        self._pending[symbol] = (t, premium_bps)
        if self._common is None:
            return None
        hist = self._hist.setdefault(symbol, deque())
        far = self._far.get(symbol, 0)
        dist = abs(premium_bps - self._common)
        hist.append((t, dist))
        far += dist > self.structural_bps
        while hist and hist[0][0] <= t - self.window_ns:
            far -= hist.popleft()[1] > self.structural_bps
        self._far[symbol] = far
        guarded = far > self.fraction * len(hist)
        if guarded == self._guarded.get(symbol, False):
            return None
        self._guarded[symbol] = guarded
        med = float(np.median([d for _, d in hist]))
        hours = self.window_ns / 3.6e12
        reason = (f"{far} of {len(hist)} premium samples in the trailing {hours:g} h were more than "
                  f"{self.structural_bps:g} bps from the common premium (median distance {med:.0f} bps)")
        return GuardChange(t, symbol, guarded, reason)

    def guarded(self, symbol: str) -> bool:
        return self._guarded.get(symbol, False)
