"""Run metrics: PnL identities, win rate, expectancy, drawdown, Sharpe, exposure, turnover, the funnel.

Money figures are exact Decimal (rendered as strings in JSON); ratios are floats.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, localcontext

import numpy as np

from .accounting import TripAttribution, attribute_trip, signed_notional_krw
from .ledger import EXACT
from .replay import RoundTrip, RouteResult

DAY_NS = 86_400_000_000_000
MIN_TRIPS = 30  # below this many round trips a total says little: one lucky trip can carry it
SHARPE_CONVENTION = {
    "key": "sharpe_daily_annualized",
    "returns": "realized net PnL in KRW per day (closed round trips, by exit fill time), not divided by "
               "capital (a constant capital would not change the ratio)",
    "days": "consecutive 24 h buckets from the first market data timestamp to the last, days without a trade "
            "count as 0 (gaps in the data too)",
    "formula": "mean(daily) / stdev(daily, ddof=1) * sqrt(365)",
    "annualization_factor": "sqrt(365): crypto trades every day",
    "risk_free_rate": "0",
    "undefined": "null with fewer than 2 days, no closed trip, or zero variance",
}
FUNNEL_STAGES = (("signals_seen", "signals"), ("passed_risk", "passed_risk"),
                 ("filled_both_legs", "filled_both_legs"), ("closed", "closed"))


def money(value: Decimal) -> str:
    """Exact decimal string (no rounding), so the summary identities hold digit for digit."""
    return format(value, "f")


@dataclass(frozen=True)
class EquityCurve:
    ts: np.ndarray  # close-fill times of realized trips
    cum_net_krw: np.ndarray  # float, for plots

    @property
    def max_drawdown(self) -> float:
        if self.cum_net_krw.size == 0:
            return 0.0
        path = np.concatenate([[0.0], self.cum_net_krw])
        return float(np.max(np.maximum.accumulate(path) - path))


def closed_trips(results: Sequence[RouteResult]) -> list[RoundTrip]:
    trips = [t for r in results for t in r.trips if t.closed]
    return sorted(trips, key=lambda t: (t.ts[3], t.route, t.trip))


def equity_curve(trips: Sequence[RoundTrip]) -> EquityCurve:
    ordered = sorted(trips, key=lambda t: (t.ts[3], t.route, t.trip))
    ts = np.array([t.ts[3] for t in ordered], dtype=np.int64)
    cum = np.cumsum([float(t.pnl.net_krw) for t in ordered]) if ordered else np.zeros(0)
    return EquityCurve(ts, np.asarray(cum, dtype=np.float64))


def max_drawdown_exact(trips: Sequence[RoundTrip]) -> Decimal:
    """Largest fall of realized cumulative net PnL from its running peak (exact)."""
    peak = cum = worst = Decimal(0)
    with localcontext(EXACT):
        for t in sorted(trips, key=lambda t: (t.ts[3], t.route, t.trip)):
            cum += t.pnl.net_krw
            peak = max(peak, cum)
            worst = max(worst, peak - cum)
    return worst


def daily_sharpe(trips: Sequence[RoundTrip], first_ts: int, last_ts: int) -> float | None:
    """Annualized Sharpe of daily realized net PnL over the calendar days the data spans."""
    days = int((last_ts - first_ts) // DAY_NS) + 1
    if days < 2 or not trips:
        return None
    pnl = np.zeros(days)
    for t in trips:
        idx = min(max(int((t.ts[3] - first_ts) // DAY_NS), 0), days - 1)
        pnl[idx] += float(t.pnl.net_krw)
    sd = float(pnl.std(ddof=1))
    return None if sd == 0.0 else float(pnl.mean() / sd * math.sqrt(365.0))


def trip_attribution(t: RoundTrip) -> TripAttribution:
    """Edge, FX effect, fees and slippage of one trip (exact; they sum to its net PnL)."""
    return attribute_trip(t.fills, t.pnl, t.fx_entry, t.fx_exit, t.ts[2])


def small_sample_warning(trips: int) -> str | None:
    """The warning printed beside a total made of too few round trips (None when there are enough)."""
    if trips >= MIN_TRIPS:
        return None
    return (f"only {trips} round trip{'s' if trips != 1 else ''} (fewer than {MIN_TRIPS}): "
            "too few to tell an edge from luck")


def cost_attribution(trips: Sequence[RoundTrip]) -> dict[str, object]:
    """The same trips' PnL from the edge down to net, summed exactly: edge + fx - fees - slippage = net.

    This replaces a zero-cost re-run (which trades differently): ``gross_krw`` is what these trips would
    have made with no fees and no slippage. The bps figures are per KRW of entry notional.
    """
    with localcontext(EXACT):
        parts = [trip_attribution(t) for t in trips]
        tot = {name: sum((getattr(a, name) for a in parts), Decimal(0))
               for name in ("notional_krw", "edge_krw", "fx_krw", "fees_krw", "slippage_krw", "net_krw")}
        if tot["net_krw"] != tot["edge_krw"] + tot["fx_krw"] - tot["fees_krw"] - tot["slippage_krw"]:
            raise AssertionError("cost attribution does not sum to net PnL")
        notional = tot["notional_krw"]
        out: dict[str, object] = {"trips": len(parts), "entry_notional_krw": money(notional),
                                  "gross_edge_krw": money(tot["edge_krw"]), "fx_effect_krw": money(tot["fx_krw"]),
                                  "gross_pnl_krw": money(tot["edge_krw"] + tot["fx_krw"]),
                                  "fees_krw": money(tot["fees_krw"]), "slippage_krw": money(tot["slippage_krw"]),
                                  "net_pnl_krw": money(tot["net_krw"])}
        tot["gross_krw"] = tot["edge_krw"] + tot["fx_krw"]
        for name, key in (("edge_krw", "gross_edge"), ("fx_krw", "fx_effect"), ("gross_krw", "gross_pnl"),
                          ("fees_krw", "fees"), ("slippage_krw", "slippage"), ("net_krw", "net")):
            out[f"{key}_bps"] = float(tot[name] / notional * 10_000) if notional > 0 else None
        return out


def figures(trips: Sequence[RoundTrip], open_trips: Sequence[RoundTrip], capital_krw: Decimal,
            first_ts: int, last_ts: int) -> dict[str, object]:
    with localcontext(EXACT):  # sums of exact amounts stay exact (the default context keeps 28 digits)
        return _figures(trips, open_trips, capital_krw, first_ts, last_ts)


def _figures(trips: Sequence[RoundTrip], open_trips: Sequence[RoundTrip], capital_krw: Decimal,
             first_ts: int, last_ts: int) -> dict[str, object]:
    gross = sum((t.pnl.gross_krw for t in trips), Decimal(0))
    fees = sum((t.pnl.fees_krw for t in trips), Decimal(0))
    slip = sum((t.pnl.slippage_krw for t in trips), Decimal(0))
    net = sum((t.pnl.net_krw for t in trips), Decimal(0))
    if net != gross - fees - slip:
        raise AssertionError("PnL identity broken: net != gross - fees - slippage")
    wins = sum(1 for t in trips if t.pnl.net_krw > 0)
    span = max(last_ts - first_ts, 1)
    exposure_ns = sum(max(t.ts[3] - t.ts[1], 0) for t in trips if t.ts[1] >= 0)
    exposure_ns += sum(max(last_ts - t.ts[1], 0) for t in open_trips if t.ts[1] >= 0)
    traded = sum((signed_notional_krw(t.fills, t.fx_exit) for t in [*trips, *open_trips]), Decimal(0))
    unrealized = sum((t.pnl.net_krw for t in open_trips), Decimal(0))
    return {
        "trades": len(trips),
        "wins": wins,
        "win_rate": (wins / len(trips)) if trips else None,
        "gross_pnl_krw": money(gross),
        "fees_krw": money(fees),
        "slippage_krw": money(slip),
        "net_pnl_krw": money(net),
        "expectancy_krw": money(net / len(trips)) if trips else None,
        "max_drawdown_krw": money(max_drawdown_exact(trips)),
        "sharpe_daily_annualized": daily_sharpe(trips, first_ts, last_ts),
        "exposure_time": exposure_ns / span,
        "turnover": float(traded / capital_krw) if capital_krw > 0 else None,
        "traded_notional_krw": money(traded),
        "open_positions": len(open_trips),
        "unrealized_pnl_krw": money(unrealized),
        "exit_reasons": _count(t.exit_reason for t in trips),
        "zero_cost_net_pnl_krw": money(gross),  # the same trips before fees and slippage (not a re-run)
        "small_sample_warning": small_sample_warning(len(trips)),
        "cost_attribution": cost_attribution(trips),
    }


def funnel(results: Sequence[RouteResult]) -> dict[str, int]:
    out = {"decisions": sum(r.counters["decisions"] for r in results)}
    out.update({stage: sum(r.counters[key] for r in results) for stage, key in FUNNEL_STAGES})
    return out


def rejections(results: Sequence[RouteResult]) -> dict[str, int]:
    keys = sorted({k for r in results for k in r.counters if k.startswith("rejected_") or k in (
        "aborted_no_hedge", "close_blocked", "unhedged_units_left")})
    return {k: sum(r.counters[k] for r in results) for k in keys}


def _count(items: object) -> dict[str, int]:
    out: dict[str, int] = {}
    for x in items:  # type: ignore[attr-defined]
        out[str(x)] = out.get(str(x), 0) + 1
    return dict(sorted(out.items()))
