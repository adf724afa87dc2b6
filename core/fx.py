"""FX and premium arithmetic (floats: this is signal math; money goes through the ledger).

The kimchi premium of a coin is ``upbit_krw / (binance_usdt * krw_per_usdt) - 1``. Where both the
Upbit KRW-USDT price and a USD/KRW rate exist, it splits into a coin part (priced in USDT on Upbit) and
a tether part (USDT's own premium over USD in Korea): ``(1 + total) = (1 + coin) * (1 + tether)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from numba import njit


class FxSource(StrEnum):
    UPBIT_USDT_KRW = "upbit_krw_usdt"  # Upbit KRW-USDT last price: the rate a KRW<->USDT arbitrageur sees
    USD_KRW = "usd_krw"  # a USD/KRW reference rate: USDT assumed at par with USD


@njit(cache=True)
def premium_bps(upbit_krw: float, binance_usdt: float, krw_per_usdt: float) -> float:
    if not (upbit_krw > 0.0 and binance_usdt > 0.0 and krw_per_usdt > 0.0):
        return math.nan
    return (upbit_krw / (binance_usdt * krw_per_usdt) - 1.0) * 1e4


@dataclass(frozen=True, slots=True)
class PremiumSplit:
    total_bps: float  # against USD/KRW
    coin_bps: float  # against Upbit's USDT/KRW
    tether_bps: float  # USDT/KRW over USD/KRW


def split_premium(upbit_krw: float, binance_usdt: float, usdt_krw: float, usd_krw: float) -> PremiumSplit:
    """Split the premium against USD/KRW into its coin part and its tether part."""
    for name, value in (("upbit_krw", upbit_krw), ("binance_usdt", binance_usdt), ("usdt_krw", usdt_krw),
                        ("usd_krw", usd_krw)):
        if not (value > 0.0) or math.isinf(value):
            raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return PremiumSplit(
        total_bps=float(premium_bps(upbit_krw, binance_usdt, usd_krw)),
        coin_bps=float(premium_bps(upbit_krw, binance_usdt, usdt_krw)),
        tether_bps=(usdt_krw / usd_krw - 1.0) * 1e4,
    )


def split_premium_series(ts: np.ndarray, coin_bps: np.ndarray, usdt_ts: np.ndarray, usdt_krw: np.ndarray,
                         usd_ts: np.ndarray, usd_krw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(tether_bps, total_bps) at each ``ts`` from the latest USDT/KRW and USD/KRW known then (NaN before)."""
    iu = np.searchsorted(usdt_ts, ts, side="right") - 1
    id_ = np.searchsorted(usd_ts, ts, side="right") - 1
    ok = (iu >= 0) & (id_ >= 0)
    tether = np.full(ts.shape[0], np.nan)
    tether[ok] = (usdt_krw[iu[ok]] / usd_krw[id_[ok]] - 1.0) * 1e4
    total = ((1.0 + coin_bps / 1e4) * (1.0 + tether / 1e4) - 1.0) * 1e4
    return tether, total
