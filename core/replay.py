"""Run one route through the compiled kernel and turn its raw arrays into exact fills and round trips."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import numpy as np

from .accounting import LegSummary, TripPnl, fx_to_dec, trip_pnl
from .book import LEG_FILL, MAX_LEVELS, Q_HAS_BOOK, Q_MID, depth_cut
from .config import EngineConfig, to_kernel_params
from .domain import Currency, Side, Venue
from .events import DECISION_KINDS, EventBatch
from .kernel import (
    ACTION_CLOSE,
    ACTION_OPEN,
    C_LEGS_DEPTH_CUT,
    COUNTER_NAMES,
    N_COUNTERS,
    inject_fills,
    route_step,
)
from .ledger import Fill, Ledger, fee_for, units_to_dec
from .route_state import (
    F_FX,
    FI_ACTION,
    FI_PX,
    FI_QTY,
    FI_REF,
    FI_SIDE,
    FI_TRIP,
    FI_TS_DEC,
    FI_TS_FILL,
    FI_VENUE,
    L_QTY,
    L_READY,
    L_SIDE,
    L_VENUE,
    S_NF,
    S_NS,
    S_NTR,
    ST_GROW,
    TF_UNHEDGED_KRW,
    TI_DIR,
    TI_GAP,
    TI_QTY,
    TI_REASON,
    TI_TS0,
    TI_TS3,
    TI_UNHEDGED_NS,
    RouteState,
)
from .rules import SCALE, InstrumentRules
from .strategy import EXIT_REASONS

ACTION_NAMES = ("open", "close", "unwind")


@dataclass(frozen=True)
class RoundTrip:
    route: str
    trip: int
    direction: int
    exit_reason: str
    ts: tuple[int, int, int, int]  # entry decision, entry fill, exit decision, exit fill (-1 = not yet)
    premium_entry_bps: float
    premium_exit_bps: float
    dev_entry_bps: float
    dev_exit_bps: float
    fx_entry: Decimal
    fx_exit: Decimal
    qty: Decimal
    legs: dict[str, LegSummary]  # "entry_upbit", "entry_binance", "exit_upbit", "exit_binance", "unwind_*"
    pnl: TripPnl
    fills: tuple[Fill, ...]
    spans_gap: bool = False  # held across a data hole longer than strategy.max_gap_s (exits with "data_gap")
    unhedged_ns: int = 0  # time one leg was filled and not the other (until the other's fill or the unwind)
    unhedged_krw: float = 0.0  # the largest coin notional exposed meanwhile, KRW at the Upbit mid

    @property
    def closed(self) -> bool:
        return self.ts[3] >= 0


@dataclass(frozen=True)
class RouteResult:
    route: str
    trips: tuple[RoundTrip, ...]
    fills: tuple[Fill, ...]
    counters: dict[str, int]
    initial: dict[tuple[Venue, Currency], Decimal]
    ledger: Ledger
    series_ts: np.ndarray
    series_premium_bps: np.ndarray
    series_dev_bps: np.ndarray
    series_ref_premium_bps: np.ndarray
    final_mids: tuple[float, float]
    final_fx: float
    first_ts: int
    last_ts: int


def fill_at(state: RouteState, row: int, cfg: EngineConfig, ts_local: int | None = None) -> Fill:
    """The exact fill in row ``row`` of a kernel state (``ts_local`` defaults to the venue time)."""
    r = state.fills[row]
    v = Venue(int(r[FI_VENUE]))
    rate = cfg.costs.upbit.taker_fee if v is Venue.UPBIT else cfg.costs.binance.taker_fee
    price, qty = units_to_dec(int(r[FI_PX])), units_to_dec(int(r[FI_QTY]))
    return Fill(trip=int(r[FI_TRIP]), venue=v, side=Side(int(r[FI_SIDE])), price=price, qty=qty,
                fee=fee_for(price, qty, rate), ref_price=units_to_dec(int(r[FI_REF])),
                ts_decision=int(r[FI_TS_DEC]), ts_venue=int(r[FI_TS_FILL]),
                ts_local=int(r[FI_TS_FILL]) if ts_local is None else ts_local,
                action=ACTION_NAMES[int(r[FI_ACTION])])


def kernel_params(cfg: EngineConfig, binance: InstrumentRules) -> np.ndarray:
    return to_kernel_params(cfg, binance.tick_units, binance.step_units, float(binance.min_notional))


def book_levels(cfg: EngineConfig) -> int:
    """Levels a side of the route's books keeps (``costs.book_levels``; None: the default depth)."""
    return cfg.costs.book_levels or MAX_LEVELS


def new_state(cfg: EngineConfig, series_hint: int = 1024) -> RouteState:
    """A fresh kernel state for a route replayed or traded under ``cfg`` (its book depth)."""
    return RouteState.new(N_COUNTERS, series_hint=series_hint, levels=book_levels(cfg))


def step(state: RouteState, events: EventBatch, lo: int, hi: int, final: bool, internal: bool,
         params: np.ndarray) -> tuple[int, int]:
    """Run the kernel on events[lo:hi] until done or until it needs fills / a risk verdict."""
    i = lo
    while True:
        status, i = route_step(events.ts, events.ts_venue, events.venue, events.kind, events.side, events.px,
                               events.qty, i, hi, final, internal, params, state.si, state.sf, state.legs,
                               state.init_units, state.counters, state.book_px, state.book_q, state.book_n,
                               state.quotes, state.fills, state.trips_i, state.trips_f, state.series_ts,
                               state.series_f)
        if status != ST_GROW:
            return int(status), int(i)
        state.grow()


def inject_report(state: RouteState, params: np.ndarray, slot: int,
                  fills: Sequence[tuple[str, int, int, Decimal]]) -> int:
    """Hand a venue's fills of leg ``slot`` ((trade id, price units, qty units, fee), as in an execution
    report) to the kernel, growing its buffers first; returns the row of the first fill. Paper and live both
    resume the kernel this way, so it lives here once. A filled leg short of its quantity on a side whose
    known depth was cut is counted (``legs_cut_by_known_depth``) as the kernel counts the legs it fills itself:
    without it, paper differed from the backtest by that counter alone (the soak's "differing" routes)."""
    k = len(fills)
    v, side = int(state.legs[slot, L_VENUE]), int(state.legs[slot, L_SIDE])
    if (state.legs[slot, L_READY] == LEG_FILL and state.quotes[v, Q_HAS_BOOK] > 0.5
            and depth_cut(state.quotes, v, side) and sum(f[2] for f in fills) < state.legs[slot, L_QTY]):
        state.counters[C_LEGS_DEPTH_CUT] += 1
    while state.si[S_NF] + k + 1 >= state.fills.shape[0]:
        state.grow()
    px = np.array([f[1] for f in fills] or [0], np.int64)
    qty = np.array([f[2] for f in fills] or [0], np.int64)
    first = int(state.si[S_NF])
    inject_fills(state.si, state.sf, state.legs, state.fills, params, slot, px, qty, k)
    return first


def run_route(route: str, events: EventBatch, cfg: EngineConfig, binance: InstrumentRules) -> RouteResult:
    """Replay one route in one compiled pass. Deterministic: same events and config give the same result."""
    if len(events) == 0:
        raise ValueError(f"route {route}: no events to replay")
    n_decisions = int(np.isin(events.kind, DECISION_KINDS).sum())
    state = new_state(cfg, series_hint=n_decisions + 16)
    step(state, events, 0, len(events), True, True, kernel_params(cfg, binance))
    market_ts = events.ts[events.venue < 2]  # the run's span is the market data's, not the FX's
    return build_result(route, state, cfg, int(market_ts[0]) if market_ts.size else int(events.ts[0]),
                        int(market_ts[-1]) if market_ts.size else int(events.ts[-1]))


def build_result(route: str, state: RouteState, cfg: EngineConfig, first_ts: int, last_ts: int) -> RouteResult:
    """Exact fills, the ledger and the round trips from a kernel state (backtest and paper alike)."""
    si = state.si
    nf, ntr, ns = int(si[S_NF]), int(si[S_NTR]), int(si[S_NS])
    t_dir, t_reason = state.trips_i[:ntr, TI_DIR], state.trips_i[:ntr, TI_REASON]
    t_ts, t_qty, t_f = state.trips_i[:ntr, TI_TS0:TI_TS3 + 1], state.trips_i[:ntr, TI_QTY], state.trips_f[:ntr]
    s_ts, s_prem, s_dev, s_ref = (state.series_ts[:ns], state.series_f[:ns, 0], state.series_f[:ns, 1],
                                  state.series_f[:ns, 2])
    cnt, init_units = state.counters, state.init_units
    final = np.array([state.quotes[0, Q_MID], state.quotes[1, Q_MID], state.sf[F_FX]])
    fills = [fill_at(state, k, cfg) for k in range(nf)]
    initial = {
        (Venue.UPBIT, Currency.KRW): units_to_dec(int(init_units[0])),
        (Venue.UPBIT, Currency.COIN): units_to_dec(int(init_units[1])),
        (Venue.BINANCE, Currency.USDT): units_to_dec(int(init_units[2])),
        (Venue.BINANCE, Currency.COIN): units_to_dec(int(init_units[3])),
    }
    ledger = Ledger.funded(initial)
    ledger.apply_all(fills)
    by_trip: dict[int, list[Fill]] = {}
    for f in fills:
        by_trip.setdefault(f.trip, []).append(f)
    final_mids = (float(final[0]), float(final[1]))
    marks = (units_to_dec(round(final_mids[0] * SCALE)), units_to_dec(round(final_mids[1] * SCALE)))
    trips = []
    for k in range(t_dir.shape[0]):
        tf = by_trip.get(k, [])
        fx_entry = fx_to_dec(float(t_f[k, 4]))
        closed = int(t_ts[k, 3]) >= 0
        fx_exit = fx_to_dec(float(t_f[k, 5])) if closed and t_f[k, 5] == t_f[k, 5] else (
            fx_to_dec(float(final[2])) if float(final[2]) > 0 else fx_entry)
        legs = {}
        for act in (ACTION_OPEN, ACTION_CLOSE, 2):
            for v in Venue:
                sel = [f for f in tf if f.venue is v and f.action == ACTION_NAMES[act]]
                if sel:
                    name = ("entry", "exit", "unwind")[act]
                    legs[f"{name}_{v.label}"] = LegSummary.of(sel)
        trips.append(RoundTrip(
            route=route, trip=k, direction=int(t_dir[k]), exit_reason=EXIT_REASONS[int(t_reason[k])],
            ts=(int(t_ts[k, 0]), int(t_ts[k, 1]), int(t_ts[k, 2]), int(t_ts[k, 3])),
            premium_entry_bps=float(t_f[k, 0]), premium_exit_bps=float(t_f[k, 1]),
            dev_entry_bps=float(t_f[k, 2]), dev_exit_bps=float(t_f[k, 3]),
            fx_entry=fx_entry, fx_exit=fx_exit, qty=units_to_dec(int(t_qty[k])), legs=legs,
            pnl=trip_pnl(tf, fx_exit, marks), fills=tuple(tf), spans_gap=bool(state.trips_i[k, TI_GAP] == 1),
            unhedged_ns=max(int(state.trips_i[k, TI_UNHEDGED_NS]), 0),
            unhedged_krw=float(np.nan_to_num(state.trips_f[k, TF_UNHEDGED_KRW]))))
    return RouteResult(
        route=route, trips=tuple(trips), fills=tuple(fills),
        counters={name: int(cnt[i]) for i, name in enumerate(COUNTER_NAMES)},
        initial=initial, ledger=ledger, series_ts=s_ts, series_premium_bps=s_prem, series_dev_bps=s_dev,
        series_ref_premium_bps=s_ref, final_mids=final_mids, final_fx=float(final[2]),
        first_ts=first_ts, last_ts=last_ts)


def fill_summary(results: Sequence[RouteResult]) -> dict[str, object]:
    """summary["fills"]: legs that met no quote within their wait, how long and how much one leg stood alone,
    and the trips held across a data gap (see CostConfig.max_fill_wait_s and strategy.max_gap_s)."""
    def total(key: str) -> int:
        return sum(r.counters.get(key, 0) for r in results)
    trips = [t for r in results for t in r.trips]
    return {"rule": "a leg fills only against a quote its venue stamped at or after decision + latency, within "
                    "costs.max_fill_wait_s; else it expires and a filled other leg is traded back",
            "legs_expired": total("legs_expired"), "unhedged_actions": total("unhedged_actions"),
            "unhedged_s": total("unhedged_ns") / 1e9, "unhedged_krw": total("unhedged_krw"),
            "trips_spanning_gap": sum(t.spans_gap for t in trips),
            "exits_data_gap": sum(t.exit_reason == "data_gap" for t in trips)}


def warm_up() -> None:
    """Compile (or load from numba's cache) every kernel path once, in this process.

    Call it before starting Ray workers: they then load the cached machine code instead of all compiling
    the same functions at once on a small machine.
    """
    from .config import EngineConfig
    from .event_builders import bars_to_events, fx_to_events
    from .paper_venue import PaperVenue, VenueOrder
    from .rules import binance_rules

    ts = np.arange(4, dtype=np.int64) * 60_000_000_000
    px = np.full(4, 100_000_000.0)
    events = EventBatch.concat_sorted([fx_to_events(ts[:1], np.array([1400.0])), bars_to_events(ts, px, px, 0),
                                       bars_to_events(ts, px / 1400.0, px / 1400.0, 1)])
    rules = binance_rules("0.01", "0.00001", "5")
    run_route("WARM", events, EngineConfig(), rules)
    state = RouteState.new(N_COUNTERS)
    step(state, events, 0, len(events), True, False, kernel_params(EngineConfig(), rules))
    venue = PaperVenue(Venue.BINANCE, EngineConfig().costs.binance.taker_fee)
    venue.list_symbol("WARM-USDT", rules, 0.01, 0.0, rules.tick_units)
    venue.on_events("WARM-USDT", int(ts[-1]) + 1, events)
    venue.fill(VenueOrder("warm-1", "WARM-USDT", Side.BUY, 100_000, int(ts[1])))
