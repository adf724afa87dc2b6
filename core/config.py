"""Typed, frozen, validated engine configuration with documented defaults.

One config drives backtest, paper and live. ``to_kernel_params`` packs it into the float array the
compiled replay kernel reads; the ``P_*`` indices name the slots.
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from .alerts_config import AlertsConfig
from .risk import RiskLimits


class StrategyConfig(BaseModel):
    """Premium mean-reversion with inventory pre-funded on both venues."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    entry_bps: float = Field(40.0, gt=0, description="open when the premium deviates this much from its reference")
    exit_bps: float = Field(5.0, description="close when the deviation has come back to this (same sign)")
    take_profit_bps: float = Field(80.0, gt=0, description="close when the trade's mark-to-mid gain reaches this")
    stop_loss_bps: float = Field(60.0, gt=0, description="close when the trade's mark-to-mid loss reaches this")
    max_hold_s: float = Field(6 * 3600.0, gt=0, description="time stop")
    cooldown_s: float = Field(300.0, ge=0, description="no new entry this long after a close")
    min_edge_bps: float = Field(5.0, description="required expected capture minus expected round-trip cost")
    ref_halflife_s: float = Field(3600.0, gt=0, description="half-life of the EMA reference of the Upbit/Binance ratio")
    warmup_s: float = Field(1800.0, ge=0, description="data needed after a start or a gap before trading")
    max_gap_s: float = Field(600.0, gt=0, description="a hole longer than this resets the reference")
    allow_long_premium: bool = Field(True, description="also trade a premium far *below* its reference")
    order_notional_krw: float = Field(10_000_000.0, gt=0, description="size of one round trip, per leg")
    position_limit_krw: float = Field(10_000_000.0, gt=0, description="max open notional per route")

    @model_validator(mode="after")
    def _check(self) -> StrategyConfig:
        if not self.exit_bps < self.entry_bps:
            raise ValueError("exit_bps must be below entry_bps")
        if self.order_notional_krw > self.position_limit_krw:
            raise ValueError("order_notional_krw exceeds position_limit_krw")
        return self


class VenueCosts(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    taker_fee: Decimal = Field(description="taker fee rate, charged in the quote currency")
    latency_ms: float = Field(ge=0, description="decision-to-fill delay: the order meets the market this much later")
    half_spread_bps: float = Field(ge=0, description="bars/snapshots only: declared half spread")
    impact_bps_per_m_quote: float = Field(
        ge=0, description="bars/snapshots only: extra cost in bps per 1M of quote currency traded (depth walk fit)")


DEFAULT_FILL_WAIT_S = (90.0, 600.0, 2.0)  # bars, last-price snapshots, L2 books (see CostConfig.max_fill_wait_s)


class CostConfig(BaseModel):
    """Fees, latency and the bar-mode cost model. Defaults: fees per the venues' public schedules, the
    spread/impact figures calibrated on the real top-20 BTC books (see docs/assumptions.md)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    upbit: VenueCosts = VenueCosts(taker_fee=Decimal("0.0005"), latency_ms=150.0, half_spread_bps=0.47,
                                   impact_bps_per_m_quote=0.0)
    binance: VenueCosts = VenueCosts(taker_fee=Decimal("0.0010"), latency_ms=150.0, half_spread_bps=0.01,
                                     impact_bps_per_m_quote=0.0)
    max_quote_age_s: float = Field(120.0, gt=0, description="quotes older than this are not traded")
    max_venue_skew_s: float = Field(90.0, gt=0, description="the two venues' quotes must be this close in time")
    max_fill_wait_s: float | None = Field(
        None, gt=0, description="a leg fills only against a quote the venue stamped at or after its arrival "
        "(decision + latency) and at most this much later, else it expires unfilled (and a filled other leg is "
        "traded back). None: by the venue's data, 90 s for 1-minute bars (the next bar's close), 600 s for "
        "last-price snapshots (the next snapshot, ~5 min apart), 2 s for L2 books (updates every 100 ms)")

    book_levels: int | None = Field(
        None, ge=8, le=16384, description="price levels each side of the engine's book keeps per venue (the "
        "backtest kernel and the paper venue alike). A side that drops levels for room knows the venue's book only "
        "down to them, and its best price becomes unknown when they are gone (core/book.py). None: by the data, 64, "
        "or for a book route whose stored snapshots are deeper (raw exchange L2: a 1,000-level REST snapshot, then "
        "diffs at every depth) that depth plus a quarter, so the best price stays known; deeper books replay slower")

    def fill_waits_s(self) -> tuple[float, float, float]:
        """(bars, last-price snapshots, L2 books): the maximum wait for a quote after a leg's arrival."""
        if self.max_fill_wait_s is not None:
            return (self.max_fill_wait_s,) * 3
        return DEFAULT_FILL_WAIT_S

    def zero(self) -> CostConfig:
        """The same run with zero fees, spread, impact and latency (the 'what if costs were free' twin)."""
        free = VenueCosts(taker_fee=Decimal(0), latency_ms=0.0, half_spread_bps=0.0, impact_bps_per_m_quote=0.0)
        return self.model_copy(update={"upbit": free, "binance": free})


class InventoryConfig(BaseModel):
    """Pre-funded inventory per route, as KRW values (coin quantities fixed at the first valid price)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    upbit_krw: float = Field(30_000_000.0, ge=0, description="KRW cash on Upbit")
    upbit_coin_krw: float = Field(30_000_000.0, ge=0, description="coin on Upbit, as KRW at the first valid price")
    binance_usdt_krw: float = Field(30_000_000.0, ge=0, description="USDT on Binance, as KRW at the first FX rate")
    binance_coin_krw: float = Field(30_000_000.0, ge=0, description="coin on Binance, as KRW at the first valid price")


UPBIT_CAUTION_FLAGS = ("PRICE_FLUCTUATIONS", "TRADING_VOLUME_SOARING", "DEPOSIT_AMOUNT_SOARING",
                       "GLOBAL_PRICE_DIFFERENCES", "CONCENTRATION_OF_SMALL_ACCOUNTS")


class GuardConfig(BaseModel):
    """Which routes may open, decided from the past only (core.pair_guard, scenarios.universe): a pair whose
    premium has sat far from the universe's common premium is another asset or a closed channel, not an
    arbitrage; a flagged market, a coin outside the top-N universe or a route without enough history waits."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    structural_bps: float = Field(150.0, gt=0, description="a coin premium this far (bps) from the universe's "
                                  "common premium (the median across coins: the tether/FX part) counts as far")
    window_s: float = Field(6 * 3600.0, gt=0, description="trailing window of past premium samples the pair "
                            "guard judges a pair on")
    structural_fraction: float = Field(0.5, gt=0, lt=1, description="a pair is guarded while more than this "
                                       "fraction of its samples in the window were far (0.5: its trailing "
                                       "median distance is above structural_bps)")
    common_window_s: float = Field(900.0, gt=0, description="a coin's latest premium counts in the common "
                                   "median while it is at most this old")
    min_coins: int = Field(5, ge=3, description="fewer coins with fresh premiums than this: no common premium, "
                           "the pair guard cannot judge (it is off for a store with fewer coins)")
    min_history_s: float = Field(6 * 3600.0, ge=0, description="a route may not open before this much market "
                                 "time of data: ranking, pair guard and spread floor are estimated on it")
    rank_window_s: float = Field(86_400.0, gt=0, description="top:N ranks coins by Upbit KRW traded value in "
                                 "this trailing window")
    rerank_s: float = Field(86_400.0, gt=0, description="top:N re-ranks this often (first rank after "
                            "min_history_s); a coin enters or leaves the universe only at a re-rank")
    upbit_status_file: str | None = Field(None, description="Upbit GET /v1/market/all?is_details=true JSON "
                                          "(market_event warning/caution flags); needs upbit_status_as_of")
    upbit_status_as_of: str | None = Field(None, description="UTC time the status file was taken (ISO 8601); "
                                           "the body has no timestamp")
    status_max_age_s: float = Field(86_400.0, gt=0, description="an exchange-status snapshot counts from its "
                                    "time for this long (older or later: unknown, not applied)")
    caution_flags: tuple[str, ...] = Field(UPBIT_CAUTION_FLAGS, description="Upbit market_event.caution flags "
                                           "that guard a route (market_event.warning always does)")

    @model_validator(mode="after")
    def _check(self) -> GuardConfig:
        if (self.upbit_status_file is None) != (self.upbit_status_as_of is None):
            raise ValueError("guard.upbit_status_file and guard.upbit_status_as_of go together")
        unknown = set(self.caution_flags) - set(UPBIT_CAUTION_FLAGS)
        if unknown:
            raise ValueError(f"guard.caution_flags: unknown {sorted(unknown)}; known {list(UPBIT_CAUTION_FLAGS)}")
        return self


RISK_HEADROOM = 1.2  # a leg's KRW value moves with the premium: limits must clear the order size by this much


class EngineConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    strategy: StrategyConfig = StrategyConfig()
    costs: CostConfig = CostConfig()
    inventory: InventoryConfig = InventoryConfig()
    risk: RiskLimits = RiskLimits()
    guard: GuardConfig = GuardConfig()
    alerts: AlertsConfig = AlertsConfig()

    @model_validator(mode="after")
    def _risk_fits_orders(self) -> EngineConfig:
        """A default-size order must pass the risk limits (else every open is rejected and a run trades nothing)."""
        need = self.strategy.order_notional_krw * RISK_HEADROOM
        for name in ("max_order_notional_krw", "max_route_position_krw"):
            limit = float(getattr(self.risk, name))
            if limit < need:
                raise ValueError(f"risk.{name} ({limit:,.0f}) is below {RISK_HEADROOM} x strategy.order_notional_krw"
                                 f" ({need:,.0f}): every order would be rejected; raise it or lower the order size")
        return self


# slots of the kernel parameter array
(P_ENTRY, P_EXIT, P_TP, P_SL, P_MAX_HOLD_NS, P_COOLDOWN_NS, P_MIN_EDGE, P_HALFLIFE_NS, P_WARMUP_NS,
 P_MAX_GAP_NS, P_ALLOW_LONG, P_NOTIONAL_KRW, P_LIMIT_KRW,
 P_FEE_U, P_FEE_B, P_LAT_U_NS, P_LAT_B_NS, P_HS_U, P_HS_B, P_IMP_U, P_IMP_B,
 P_MAX_AGE_NS, P_MAX_SKEW_NS,
 P_INV_U_KRW, P_INV_U_COIN, P_INV_B_USDT, P_INV_B_COIN, P_STEP_B, P_TICK_B, P_MIN_NOTIONAL_B) = range(30)
P_ASK_RISK = 30  # 1: stop for a risk verdict even when executing legs internally (the backtest's risk driver)
P_WAIT_BAR_NS, P_WAIT_LAST_NS, P_WAIT_BOOK_NS = 31, 32, 33  # a leg's maximum wait for a quote, by data kind
N_PARAMS = 34


def to_kernel_params(cfg: EngineConfig, binance_tick_units: int, binance_step_units: int,
                     binance_min_notional: float) -> np.ndarray:
    s, c, inv = cfg.strategy, cfg.costs, cfg.inventory
    p = np.zeros(N_PARAMS, dtype=np.float64)
    p[P_ENTRY], p[P_EXIT], p[P_TP], p[P_SL] = s.entry_bps, s.exit_bps, s.take_profit_bps, s.stop_loss_bps
    p[P_MAX_HOLD_NS], p[P_COOLDOWN_NS] = s.max_hold_s * 1e9, s.cooldown_s * 1e9
    p[P_MIN_EDGE], p[P_HALFLIFE_NS], p[P_WARMUP_NS] = s.min_edge_bps, s.ref_halflife_s * 1e9, s.warmup_s * 1e9
    p[P_MAX_GAP_NS], p[P_ALLOW_LONG] = s.max_gap_s * 1e9, float(s.allow_long_premium)
    p[P_NOTIONAL_KRW], p[P_LIMIT_KRW] = s.order_notional_krw, s.position_limit_krw
    p[P_FEE_U], p[P_FEE_B] = float(c.upbit.taker_fee), float(c.binance.taker_fee)
    p[P_LAT_U_NS], p[P_LAT_B_NS] = c.upbit.latency_ms * 1e6, c.binance.latency_ms * 1e6
    p[P_HS_U], p[P_HS_B] = c.upbit.half_spread_bps, c.binance.half_spread_bps
    p[P_IMP_U], p[P_IMP_B] = c.upbit.impact_bps_per_m_quote, c.binance.impact_bps_per_m_quote
    p[P_MAX_AGE_NS], p[P_MAX_SKEW_NS] = c.max_quote_age_s * 1e9, c.max_venue_skew_s * 1e9
    p[P_INV_U_KRW], p[P_INV_U_COIN] = inv.upbit_krw, inv.upbit_coin_krw
    p[P_INV_B_USDT], p[P_INV_B_COIN] = inv.binance_usdt_krw, inv.binance_coin_krw
    p[P_STEP_B], p[P_TICK_B], p[P_MIN_NOTIONAL_B] = binance_step_units, binance_tick_units, binance_min_notional
    p[P_WAIT_BAR_NS], p[P_WAIT_LAST_NS], p[P_WAIT_BOOK_NS] = (w * 1e9 for w in c.fill_waits_s())
    return p
