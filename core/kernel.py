"""The compiled route kernel: one route, two venues, a time-ordered event stream, resumable.

It keeps both venues' markets (``book``), the FX rate and the EMA reference, calls the strategy functions
of :mod:`strategy` at every decision point, sends both legs with each venue's latency (a leg meets the
market as it is once its latency has passed), and equalizes legs that filled unevenly by trading the excess
back at once (the declared hedge policy). Fills are exact 1e-8 integers; the exact ledger comes after.

``route_step`` runs until the end of its slice or until it needs the outside world:
* ``internal`` (backtest): legs are executed here with :func:`book.execute_leg`, opens need no verdict;
* external (paper/live): it returns ``ST_NEED_FILLS`` when a leg is due — the venue fills it (with the
  same ``execute_leg``), :func:`inject_fills` records the fills, and the kernel resumes; and
  ``ST_NEED_RISK`` when an open passed the route's own checks — :func:`resolve_candidate` records the
  RiskCoordinator's verdict.
Both modes run this one function, so the decisions and the fills are the same by construction.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from . import config as cf  # the P_* slots of the parameter array
from . import route_state as rs
from .book import (
    LEG_EXPIRE,
    LEG_FILL,
    LEG_WAIT,
    Q_CROSSED,
    Q_HALF_SPREAD,
    Q_HAS_BOOK,
    Q_MID,
    Q_TS,
    Q_UNKNOWN,
    apply_market_event,
    depth_cut,
    depth_units,
    execute_leg,
    leg_outcome,
    set_level,
)
from .events import K_BAR_CLOSE, K_BAR_OPEN, K_BOOK_END, K_FX, K_LAST, K_LEVEL, K_STATUS, K_TRADE
from .fx import premium_bps
from .rules import SCALE, UPBIT_MIN_ORDER_KRW, floor_to_step
from .strategy import (
    EXIT_ABORTED,
    EXIT_DUST,
    EXIT_FLATTEN,
    EXIT_GAP,
    EXIT_NONE,
    entry_signal,
    exit_reason,
    expected_edge_bps,
    mark_bps,
    round_trip_cost_bps,
    update_reference,
)

MAX_FX_AGE_NS = 4 * 86400 * 1_000_000_000  # daily FX (forward-filled over weekends) stays usable 4 days

# funnel / counter slots
C_DECISIONS, C_SIGNALS, C_PASSED_RISK, C_FILLED_BOTH, C_CLOSED = 0, 1, 2, 3, 4
C_REJ_WARMUP, C_REJ_STALE, C_REJ_CROSSED, C_REJ_FX, C_REJ_COOLDOWN, C_REJ_EDGE = 5, 6, 7, 8, 9, 10
C_REJ_SIZE, C_REJ_FUNDS, C_ABORTED, C_UNHEDGED_UNITS, C_CLOSE_BLOCKED, C_EVENTS, C_TRADES_SEEN = (
    11, 12, 13, 14, 15, 16, 17)
C_REJ_RISK = 18
C_REJ_GUARD = 19  # an open refused while the route's market status (pair guard, universe, exchange) forbids it
# legs that met no quote within their wait; actions left one-legged for a while, the time and KRW notional of
# it; trips held across a data gap
C_LEGS_EXPIRED, C_UNHEDGED_ACTIONS, C_UNHEDGED_NS, C_UNHEDGED_KRW, C_TRIPS_GAP = 20, 21, 22, 23, 24
# decisions refused because a book's best price was unknown (book.Q_UNKNOWN); legs that used up the known depth
# of a side that had dropped levels for capacity (partial: the rest of the venue's depth is unknown)
C_REJ_BOOK_UNKNOWN, C_LEGS_DEPTH_CUT = 25, 26
C_DUST_LEFT = 27  # positions below a venue's minimum order when due to close: left on the venues (EXIT_DUST)
N_COUNTERS = 28
COUNTER_NAMES = ("decisions", "signals", "passed_risk", "filled_both_legs", "closed", "rejected_warmup",
                 "rejected_stale", "rejected_crossed", "rejected_fx", "rejected_cooldown", "rejected_edge",
                 "rejected_size", "rejected_funds", "aborted_no_hedge", "unhedged_units_left",
                 "close_blocked", "events", "trades_seen", "rejected_risk", "rejected_guard",
                 "legs_expired", "unhedged_actions", "unhedged_ns", "unhedged_krw", "trips_spanning_gap",
                 "rejected_book_unknown", "legs_cut_by_known_depth", "positions_left_as_dust")

ACTION_OPEN, ACTION_CLOSE, ACTION_UNWIND = 0, 1, 2


@njit(cache=True)
def inject_fills(si: np.ndarray, sf: np.ndarray, legs: np.ndarray, fills: np.ndarray, p: np.ndarray, slot: int,
                 out_px: np.ndarray, out_qty: np.ndarray, k: int) -> None:
    """Record the fills of one leg slot (from this kernel or from a venue) and mark the slot done."""
    v = legs[slot, rs.L_VENUE]
    sd = legs[slot, rs.L_SIDE]
    fee = p[cf.P_FEE_U] if v == 0 else p[cf.P_FEE_B]
    action = ACTION_UNWIND if slot >= 2 else si[rs.S_PACT]
    ref = int(sf[rs.F_PREF0 + v] * SCALE + 0.5)
    got = 0
    for j in range(k):
        nf = si[rs.S_NF]
        fills[nf, rs.FI_TRIP], fills[nf, rs.FI_ACTION] = si[rs.S_PTRIP], action
        fills[nf, rs.FI_VENUE], fills[nf, rs.FI_SIDE] = v, sd
        fills[nf, rs.FI_PX], fills[nf, rs.FI_QTY], fills[nf, rs.FI_REF] = out_px[j], out_qty[j], ref
        fills[nf, rs.FI_TS_DEC], fills[nf, rs.FI_TS_FILL] = si[rs.S_PDEC], legs[slot, rs.L_AT]
        si[rs.S_NF] = nf + 1
        got += out_qty[j]
        notional = out_px[j] / SCALE * out_qty[j] / SCALE
        si[rs.S_COIN0 + v] += sd * out_qty[j]
        sf[rs.F_CASH0 + v] -= sd * notional + notional * fee
    legs[slot, rs.L_FILLED] = got
    legs[slot, rs.L_DONE] = 1


@njit(cache=True)
def _arm(si: np.ndarray, legs: np.ndarray, quotes: np.ndarray, p: np.ndarray, slot: int, v: int, side: int,
         qty_units: int, due: int) -> None:
    """Put a leg on its way: it arrives at ``due`` and waits for a quote at most the wait of the venue's data
    (an L2 book, last-price snapshots or bars, see ``CostConfig.max_fill_wait_s``)."""
    if quotes[v, Q_HAS_BOOK] > 0.5:
        wait = p[cf.P_WAIT_BOOK_NS]
    else:
        wait = p[cf.P_WAIT_LAST_NS] if si[rs.S_QKIND0 + v] == K_LAST else p[cf.P_WAIT_BAR_NS]
    legs[slot, rs.L_ACTIVE], legs[slot, rs.L_DONE], legs[slot, rs.L_VENUE] = 1, 0, v
    legs[slot, rs.L_SIDE], legs[slot, rs.L_QTY], legs[slot, rs.L_FILLED] = side, qty_units, 0
    legs[slot, rs.L_DUE], legs[slot, rs.L_DEADLINE] = due, due + int(wait)
    legs[slot, rs.L_READY], legs[slot, rs.L_AT] = LEG_WAIT, -1


@njit(cache=True)
def _measure_unhedged(si: np.ndarray, sf: np.ndarray, legs: np.ndarray, counters: np.ndarray,
                      trips_i: np.ndarray, trips_f: np.ndarray) -> None:
    """Time from the first leg's fill until both sides matched (the other leg's fill, or the unwind's), and
    the coin notional (KRW at the decision's Upbit mid) exposed meanwhile: per trip and in the counters."""
    start, end, exposed = -1, -1, 0
    for slot in range(4):
        if not legs[slot, rs.L_ACTIVE]:
            continue
        end = max(end, legs[slot, rs.L_AT])
        if slot < 2 and legs[slot, rs.L_FILLED] > 0:
            start = legs[slot, rs.L_AT] if start < 0 else min(start, legs[slot, rs.L_AT])
            exposed = max(exposed, legs[slot, rs.L_FILLED])
    if start < 0 or end <= start:
        return
    krw = exposed / SCALE * sf[rs.F_PREF0]
    trip = si[rs.S_PTRIP]
    counters[C_UNHEDGED_ACTIONS] += 1
    counters[C_UNHEDGED_NS] += end - start
    counters[C_UNHEDGED_KRW] += int(krw)
    trips_i[trip, rs.TI_UNHEDGED_NS] += end - start
    trips_f[trip, rs.TF_UNHEDGED_KRW] = max(trips_f[trip, rs.TF_UNHEDGED_KRW], krw)


@njit(cache=True)
def _below_minimum(v: int, qty_units: int, quotes: np.ndarray, p: np.ndarray) -> bool:
    """An order of ``qty_units`` on venue ``v`` is worth less than the venue's minimum order at its mid."""
    value = qty_units / SCALE * quotes[v, Q_MID]
    return value < (UPBIT_MIN_ORDER_KRW if v == 0 else p[cf.P_MIN_NOTIONAL_B])


@njit(cache=True)
def _leave_as_dust(si: np.ndarray, sf: np.ndarray, counters: np.ndarray, trips_i: np.ndarray, trips_f: np.ndarray,
                   p: np.ndarray, t: int, prem: float, dev: float) -> None:
    """A position due to close but worth less than a venue's minimum order: the venue would refuse the close
    (live sent such orders again and again), so none is sent. Its units stay on both venues, hedged against
    each other; the trip ends in the books here (EXIT_DUST: its PnL marks them at the end, like any inventory)
    and the route is free to trade again instead of holding a position it can never close."""
    trip = si[rs.S_POS_TRIP]
    counters[C_DUST_LEFT] += 1
    counters[C_CLOSED] += 1
    trips_i[trip, rs.TI_REASON] = EXIT_DUST
    trips_i[trip, rs.TI_TS2], trips_i[trip, rs.TI_TS3] = t, t
    trips_f[trip, 1], trips_f[trip, 3], trips_f[trip, 5] = prem, dev, sf[rs.F_FX]
    si[rs.S_POS_DIR], si[rs.S_POS_QTY], si[rs.S_POS_TRIP] = 0, 0, -1
    si[rs.S_COOL] = t + int(p[cf.P_COOLDOWN_NS])
    si[rs.S_FLATTEN] = 0
    si[rs.S_GAP] = 0


@njit(cache=True)
def _settle(si: np.ndarray, sf: np.ndarray, legs: np.ndarray, counters: np.ndarray, trips_i: np.ndarray,
            trips_f: np.ndarray, quotes: np.ndarray, p: np.ndarray) -> bool:
    """After leg outcomes: create unwinds for any excess, or close the books on the action when all is done.
    True when it created unwind legs (the caller runs its leg loop again).

    Hedge policy, in whole Binance lots: the hedged quantity is what both legs filled, floored to Binance's lot
    step, so a position (and the close legs sent for it) is always a Binance lot; each leg's excess over it (a
    leg left alone when the other expired, or a partial fill) is traded back once both outcomes are known: the
    unwind leaves then and meets the first quote after its latency, like any leg. A Binance order off the step
    is refused by the venue, and less than a lot on Upbit is below its 5,000 KRW minimum order for nearly every
    coin, so what is left under one lot (a partial Upbit fill has 8 decimals) stays on the venue, counted as
    ``unhedged_units_left`` and marked in the trip's PnL; so does an excess worth less than the venue's minimum
    order (5,000 KRW on Upbit, NOTIONAL on Binance: the venue refuses it), and an unwind that expires.
    """
    if not (legs[0, rs.L_DONE] and legs[1, rs.L_DONE]):
        return False
    step_b = int(p[cf.P_STEP_B])
    hedged = floor_to_step(min(legs[0, rs.L_FILLED], legs[1, rs.L_FILLED]), step_b)
    due = max(legs[0, rs.L_AT], legs[1, rs.L_AT])  # both outcomes are known
    created = False
    if not si[rs.S_UNWOUND]:
        si[rs.S_UNWOUND] = 1
        for v in range(2):
            counters[C_LEGS_EXPIRED] += legs[v, rs.L_READY] == LEG_EXPIRE
            excess = floor_to_step(legs[v, rs.L_FILLED] - hedged, step_b)
            if excess > 0 and _below_minimum(v, excess, quotes, p):
                excess = 0  # the venue would refuse it: dust, left on the venue like a part-lot remainder
            counters[C_UNHEDGED_UNITS] += legs[v, rs.L_FILLED] - hedged - excess
            if excess > 0:
                lat = int(p[cf.P_LAT_U_NS] if v == 0 else p[cf.P_LAT_B_NS])
                _arm(si, legs, quotes, p, 2 + v, v, -legs[v, rs.L_SIDE], excess, due + lat)
                created = True
    for u in range(2, 4):
        if legs[u, rs.L_ACTIVE] and not legs[u, rs.L_DONE]:
            return created
    _measure_unhedged(si, sf, legs, counters, trips_i, trips_f)
    for u in range(2, 4):
        if legs[u, rs.L_ACTIVE]:
            counters[C_LEGS_EXPIRED] += legs[u, rs.L_READY] == LEG_EXPIRE
            counters[C_UNHEDGED_UNITS] += legs[u, rs.L_QTY] - legs[u, rs.L_FILLED]
            legs[u, rs.L_ACTIVE] = 0
    si[rs.S_PEND] = 0
    trip = si[rs.S_PTRIP]
    if si[rs.S_PACT] == ACTION_OPEN:
        if hedged > 0:
            counters[C_FILLED_BOTH] += 1
            si[rs.S_POS_DIR], si[rs.S_POS_QTY], si[rs.S_POS_TRIP] = si[rs.S_PDIR], hedged, trip
            sf[rs.F_ENTRY_RATIO], si[rs.S_ENTRY_TS] = sf[rs.F_PRATIO], si[rs.S_PDEC]
            trips_i[trip, rs.TI_TS1], trips_i[trip, rs.TI_QTY] = due, hedged
        else:
            counters[C_ABORTED] += 1
            trips_i[trip, rs.TI_REASON] = EXIT_ABORTED
            trips_i[trip, rs.TI_TS1], trips_i[trip, rs.TI_TS2], trips_i[trip, rs.TI_TS3] = due, si[rs.S_PDEC], due
            si[rs.S_COOL] = due + int(p[cf.P_COOLDOWN_NS])
            si[rs.S_GAP] = 0
    else:
        si[rs.S_POS_QTY] -= hedged
        if si[rs.S_POS_QTY] <= 0:
            counters[C_CLOSED] += 1
            trips_i[trip, rs.TI_REASON] = si[rs.S_PREASON]
            trips_i[trip, rs.TI_TS2], trips_i[trip, rs.TI_TS3] = si[rs.S_PDEC], due
            trips_f[trip, 1], trips_f[trip, 3], trips_f[trip, 5] = sf[rs.F_PPREM], sf[rs.F_PDEV], sf[rs.F_FX]
            si[rs.S_POS_DIR], si[rs.S_POS_QTY], si[rs.S_POS_TRIP] = 0, 0, -1
            si[rs.S_COOL] = due + int(p[cf.P_COOLDOWN_NS])
            si[rs.S_FLATTEN] = 0
            si[rs.S_GAP] = 0
    return False


@njit(cache=True)
def _send(si: np.ndarray, sf: np.ndarray, legs: np.ndarray, quotes: np.ndarray, p: np.ndarray, action: int,
          direction: int, qty_units: int, trip: int, t: int, ratio: float, dev: float, prem: float) -> None:
    """Both legs leave now; each meets the first quote its venue stamps after that venue's latency."""
    si[rs.S_PEND], si[rs.S_PACT], si[rs.S_PDIR], si[rs.S_PQTY], si[rs.S_PTRIP] = 1, action, direction, qty_units, trip
    si[rs.S_PDEC], si[rs.S_UNWOUND] = t, 0
    sf[rs.F_PRATIO], sf[rs.F_PDEV], sf[rs.F_PPREM] = ratio, dev, prem
    sides = (-direction, direction) if action == ACTION_OPEN else (direction, -direction)
    for v in range(2):
        _arm(si, legs, quotes, p, v, v, sides[v], qty_units, t + int(p[cf.P_LAT_U_NS] if v == 0 else p[cf.P_LAT_B_NS]))
        sf[rs.F_PREF0 + v] = quotes[v, Q_MID]
        legs[2 + v, rs.L_ACTIVE] = 0


@njit(cache=True)
def _mark_gap(si: np.ndarray, trips_i: np.ndarray, counters: np.ndarray, pend: bool) -> None:
    """A hole in the data longer than strategy.max_gap_s while a trip was open (or its legs out): the trip is
    flagged (it spanned a gap) and exits at the first decision after it (EXIT_GAP)."""
    if si[rs.S_POS_DIR] == 0 and not pend:
        return
    trip = si[rs.S_PTRIP] if pend else si[rs.S_POS_TRIP]
    if trip < 0:
        return
    si[rs.S_GAP] = 1
    if trips_i[trip, rs.TI_GAP] != 1:
        trips_i[trip, rs.TI_GAP] = 1
        counters[C_TRIPS_GAP] += 1


@njit(cache=True)
def resolve_candidate(si: np.ndarray, sf: np.ndarray, legs: np.ndarray, counters: np.ndarray, trips_i: np.ndarray,
                      trips_f: np.ndarray, quotes: np.ndarray, p: np.ndarray, allowed: bool) -> None:
    """Open the candidate round trip (verdict allowed) or drop it (counted as a risk rejection)."""
    if not si[rs.S_CAND]:
        return
    si[rs.S_CAND] = 0
    if not allowed:
        counters[C_REJ_RISK] += 1
        return
    counters[C_PASSED_RISK] += 1
    trip = si[rs.S_NTR]
    si[rs.S_NTR] = trip + 1
    direction, t = si[rs.S_CAND_DIR], si[rs.S_CAND_TS]
    trips_i[trip, rs.TI_DIR], trips_i[trip, rs.TI_REASON], trips_i[trip, rs.TI_TS0] = direction, 0, t
    trips_f[trip, 0], trips_f[trip, 2], trips_f[trip, 4] = sf[rs.F_CAND_PREM], sf[rs.F_CAND_DEV], sf[rs.F_FX]
    trips_i[trip, rs.TI_GAP], trips_i[trip, rs.TI_UNHEDGED_NS], trips_f[trip, rs.TF_UNHEDGED_KRW] = 0, 0, 0.0
    si[rs.S_GAP] = 0
    _send(si, sf, legs, quotes, p, ACTION_OPEN, direction, si[rs.S_CAND_QTY], trip, t, sf[rs.F_CAND_RATIO],
          sf[rs.F_CAND_DEV], sf[rs.F_CAND_PREM])


@njit(cache=True)
def _fund(si: np.ndarray, sf: np.ndarray, init_units: np.ndarray, quotes: np.ndarray, p: np.ndarray) -> None:
    fx = sf[rs.F_FX]
    si[rs.S_FUNDED] = 1
    si[rs.S_COIN0] = int(p[cf.P_INV_U_COIN] / quotes[0, Q_MID] * SCALE)
    sf[rs.F_CASH0] = math.floor(p[cf.P_INV_U_KRW])
    sf[rs.F_CASH1] = math.floor(p[cf.P_INV_B_USDT] / fx * 100.0) / 100.0
    si[rs.S_COIN1] = int(p[cf.P_INV_B_COIN] / (quotes[1, Q_MID] * fx) * SCALE)
    init_units[0] = int(sf[rs.F_CASH0]) * SCALE
    init_units[1] = si[rs.S_COIN0]
    init_units[2] = int(round(sf[rs.F_CASH1] * 100.0)) * (SCALE // 100)  # noqa: RUF046 (numba)
    init_units[3] = si[rs.S_COIN1]


@njit(cache=True, inline="always")
def _flush(counters: np.ndarray, n_events: int, n_trades: int, i: int) -> int:
    counters[C_EVENTS] += n_events
    counters[C_TRADES_SEEN] += n_trades
    return i


@njit(cache=True, nogil=True)  # the streamed replay reads ahead on another thread meanwhile
def route_step(ts: np.ndarray, ts_venue: np.ndarray, venue: np.ndarray, kind: np.ndarray, side: np.ndarray,
               px: np.ndarray, qty: np.ndarray, lo: int, hi: int, final: bool, internal: bool, p: np.ndarray,
               si: np.ndarray, sf: np.ndarray, legs: np.ndarray, init_units: np.ndarray, counters: np.ndarray,
               book_px: np.ndarray, book_q: np.ndarray, book_n: np.ndarray, quotes: np.ndarray,
               fills: np.ndarray, trips_i: np.ndarray, trips_f: np.ndarray, series_ts: np.ndarray,
               series_f: np.ndarray) -> tuple[int, int]:
    """Process events [lo, hi); returns (status, index to resume at). See the module docstring."""
    tick_b, step_b = int(p[cf.P_TICK_B]), int(p[cf.P_STEP_B])
    hs0, hs1, imp0, imp1 = p[cf.P_HS_U], p[cf.P_HS_B], p[cf.P_IMP_U], p[cf.P_IMP_B]
    max_age, max_skew = p[cf.P_MAX_AGE_NS], p[cf.P_MAX_SKEW_NS]
    halflife, max_gap = p[cf.P_HALFLIFE_NS], p[cf.P_MAX_GAP_NS]
    levels = book_px.shape[2]  # a leg's walk writes at most one fill per level
    tmp_px = np.zeros(levels, np.int64)
    tmp_qty = np.zeros(levels, np.int64)
    n_events = n_trades = 0
    pend = si[rs.S_PEND] != 0  # mirrored in a local: read on every event
    for i in range(lo, hi + 1):
        at_end = i == hi
        if at_end and not final:
            return rs.ST_DONE, _flush(counters, n_events, n_trades, i)
        t = ts[i] if not at_end else (ts[hi - 1] + 1 if hi > 0 else 0)
        # room for what this event can write (fills of four legs, a trip, a series row): checked only where
        # something can be written, so level updates stay cheap
        if (pend or at_end or kind[i] == K_BOOK_END or kind[i] == K_BAR_CLOSE or kind[i] == K_LAST) and (
                si[rs.S_NF] + 4 * levels >= fills.shape[0] or si[rs.S_NTR] + 2 >= trips_i.shape[0]
                or si[rs.S_NS] + 2 >= series_ts.shape[0]):
            return rs.ST_GROW, _flush(counters, n_events, n_trades, i)
        # 1) legs whose latency has passed meet the market as it is now (before this event), if their venue has
        # stamped a quote since they arrived; past their wait (or at the end of the data) they expire unfilled
        while pend:
            progressed = False
            for slot in range(4):
                if not legs[slot, rs.L_ACTIVE] or legs[slot, rs.L_DONE] or (not at_end and t <= legs[slot, rs.L_DUE]):
                    continue
                v = legs[slot, rs.L_VENUE]
                if legs[slot, rs.L_READY] == LEG_WAIT:
                    r = leg_outcome(quotes[v, Q_TS], legs[slot, rs.L_DUE], legs[slot, rs.L_DEADLINE], t, at_end)
                    if r == LEG_WAIT:
                        continue
                    # known once the quote has arrived (or at the deadline): later than anything applied so far
                    known = legs[slot, rs.L_DUE] if r == LEG_FILL else legs[slot, rs.L_DEADLINE]
                    legs[slot, rs.L_READY], legs[slot, rs.L_AT] = r, max(known, si[rs.S_QLOC0 + v])
                if not internal:
                    return rs.ST_NEED_FILLS, _flush(counters, n_events, n_trades, i)
                k = 0
                if legs[slot, rs.L_READY] == LEG_FILL:
                    k = execute_leg(book_px, book_q, book_n, quotes, v, legs[slot, rs.L_SIDE], legs[slot, rs.L_QTY],
                                    legs[slot, rs.L_DUE], hs0 if v == 0 else hs1, imp0 if v == 0 else imp1, tick_b,
                                    tmp_px, tmp_qty)
                    if quotes[v, Q_HAS_BOOK] > 0.5 and depth_cut(quotes, v, legs[slot, rs.L_SIDE]) and (
                            tmp_qty[:k].sum() < legs[slot, rs.L_QTY]):
                        counters[C_LEGS_DEPTH_CUT] += 1
                inject_fills(si, sf, legs, fills, p, slot, tmp_px, tmp_qty, k)
                progressed = True
            # unwinds made here may be due already: run the loop again (external mode asks for their fills before
            # this event, as the backtest fills them; at the end of the stream there is no next event)
            created = _settle(si, sf, legs, counters, trips_i, trips_f, quotes, p)
            pend = si[rs.S_PEND] != 0
            if not (progressed or created):
                break
        if at_end:
            return rs.ST_DONE, _flush(counters, n_events, n_trades, i)

        # 2) apply the event
        n_events += 1
        v, kd = venue[i], kind[i]
        if kd == K_LEVEL and v < 2:  # the hot path of an L2 replay, first
            # book.apply_level written out: numba does not inline a two-level chain across modules, and
            # this call per level update is a third of an L2 replay's time (tests check the two agree)
            sidx = 1 if side[i] == 1 else 0
            if px[i] > 0.0 and qty[i] >= 0.0:  # false for NaN too
                book_n[v, sidx] = set_level(book_px, book_q, quotes, v, sidx, book_n[v, sidx], px[i], qty[i])
            if quotes[v, Q_HAS_BOOK] == 0.0:
                quotes[v, Q_HAS_BOOK] = 1.0
            continue
        if kd == K_FX:
            if px[i] > 0.0:
                sf[rs.F_FX] = px[i]
                # the rate is as old as its own timestamp says (a recording may repeat an old rate as new)
                si[rs.S_FX_TS] = ts_venue[i] if ts_venue[i] >= 0 else t
                si[rs.S_FX_MAXAGE] = int(qty[i]) if qty[i] > 0.0 else MAX_FX_AGE_NS
            continue
        if kd == K_STATUS:
            si[rs.S_STATUS] = int(px[i])
            continue
        if v > 1:
            continue
        if kd == K_TRADE:
            n_trades += 1
            continue
        if not apply_market_event(kd, v, side[i], px[i], qty[i], t, ts_venue[i], book_px, book_q, book_n, quotes,
                                  hs0 if v == 0 else hs1):
            continue
        si[rs.S_QLOC0 + v], si[rs.S_QKIND0 + v] = t, kd  # when and from what the venue's quote last changed
        if kd == K_BAR_OPEN:
            continue

        # 3) decide once all events of this instant are in
        if i + 1 < hi and ts[i + 1] == t:
            continue
        q_ts0, q_ts1 = quotes[0, Q_TS], quotes[1, Q_TS]
        if q_ts0 < 0 or q_ts1 < 0:
            continue
        stale = t - q_ts0 > max_age or t - q_ts1 > max_age or abs(q_ts0 - q_ts1) > max_skew
        mid0, mid1 = quotes[0, Q_MID], quotes[1, Q_MID]
        unknown = quotes[0, Q_UNKNOWN] > 0.5 or quotes[1, Q_UNKNOWN] > 0.5  # a best price the book does not know
        bad_book = quotes[0, Q_CROSSED] > 0.5 or quotes[1, Q_CROSSED] > 0.5 or not (mid0 > 0.0 and mid1 > 0.0)
        fx = sf[rs.F_FX]
        fx_ok = fx > 0.0 and t - si[rs.S_FX_TS] <= si[rs.S_FX_MAXAGE]
        if unknown or stale or bad_book:
            if not pend and si[rs.S_POS_DIR] == 0:
                counters[C_DECISIONS] += 1
                counters[C_REJ_BOOK_UNKNOWN if unknown else (C_REJ_STALE if stale else C_REJ_CROSSED)] += 1
            continue
        ratio = mid0 / mid1
        ema, reset = update_reference(sf[rs.F_EMA], si[rs.S_REF_TS], ratio, t, halflife, max_gap)
        sf[rs.F_EMA] = ema
        if reset:
            si[rs.S_WARM] = t
            if si[rs.S_REF_TS] >= 0:  # a hole in the data, not the start
                _mark_gap(si, trips_i, counters, pend)
        si[rs.S_REF_TS] = t
        sf[rs.F_LAST_RATIO] = ratio
        dev = (ratio / ema - 1.0) * 1e4
        prem = premium_bps(mid0, mid1, fx) if fx_ok else math.nan
        ns = si[rs.S_NS]
        series_ts[ns] = t
        series_f[ns, 0], series_f[ns, 1] = prem, dev
        series_f[ns, 2] = premium_bps(ema * mid1, mid1, fx) if fx_ok else math.nan
        si[rs.S_NS] = ns + 1
        if not si[rs.S_FUNDED] and fx_ok:
            _fund(si, sf, init_units, quotes, p)
        if pend:
            continue
        pos_dir, pos_qty = si[rs.S_POS_DIR], si[rs.S_POS_QTY]
        if pos_dir != 0:
            reason = exit_reason(pos_dir, dev, mark_bps(pos_dir, sf[rs.F_ENTRY_RATIO], ratio), t - si[rs.S_ENTRY_TS],
                                 p[cf.P_EXIT], p[cf.P_TP], p[cf.P_SL], p[cf.P_MAX_HOLD_NS])
            if si[rs.S_GAP]:
                reason = EXIT_GAP  # held across a hole in the data: out at the first quote after it
            if reason == EXIT_NONE and si[rs.S_FLATTEN]:
                reason = EXIT_FLATTEN  # the kill switch asked this route to flatten its position
            if reason == EXIT_NONE:
                continue
            if _below_minimum(0, pos_qty, quotes, p) or _below_minimum(1, pos_qty, quotes, p):
                _leave_as_dust(si, sf, counters, trips_i, trips_f, p, t, prem, dev)
                continue
            # closing: buy back on Upbit / sell on Binance for a +1 position (the reverse for -1)
            need_u = pos_qty / SCALE * mid0 * (1.0 + p[cf.P_FEE_U]) * 1.01
            need_b = pos_qty / SCALE * mid1 * (1.0 + p[cf.P_FEE_B]) * 1.01
            if not fx_ok or (pos_dir > 0 and (sf[rs.F_CASH0] < need_u or si[rs.S_COIN1] < pos_qty)) or (
                    pos_dir < 0 and (si[rs.S_COIN0] < pos_qty or sf[rs.F_CASH1] < need_b)):
                counters[C_CLOSE_BLOCKED] += 1
                continue
            si[rs.S_PREASON] = reason
            _send(si, sf, legs, quotes, p, ACTION_CLOSE, pos_dir, pos_qty, si[rs.S_POS_TRIP], t, ratio, dev, prem)
            pend = True
            continue
        counters[C_DECISIONS] += 1
        direction = entry_signal(dev, p[cf.P_ENTRY], p[cf.P_ALLOW_LONG] > 0.5)
        if direction == 0:
            continue
        counters[C_SIGNALS] += 1
        if si[rs.S_STATUS] != 0:
            counters[C_REJ_GUARD] += 1
            continue
        if t - si[rs.S_WARM] < p[cf.P_WARMUP_NS]:
            counters[C_REJ_WARMUP] += 1
            continue
        if not fx_ok or not si[rs.S_FUNDED]:
            counters[C_REJ_FX] += 1
            continue
        if t < si[rs.S_COOL]:
            counters[C_REJ_COOLDOWN] += 1
            continue
        notional_krw = min(p[cf.P_NOTIONAL_KRW], p[cf.P_LIMIT_KRW])
        imp_u = imp0 * notional_krw / 1e6 if quotes[0, Q_HAS_BOOK] < 0.5 else 0.0
        imp_b = imp1 * notional_krw / fx / 1e6 if quotes[1, Q_HAS_BOOK] < 0.5 else 0.0
        cost = round_trip_cost_bps(p[cf.P_FEE_U], p[cf.P_FEE_B], quotes[0, Q_HALF_SPREAD], quotes[1, Q_HALF_SPREAD],
                                   imp_u, imp_b)
        if expected_edge_bps(direction, dev, p[cf.P_EXIT], cost) < p[cf.P_MIN_EDGE]:
            counters[C_REJ_EDGE] += 1
            continue
        q_units = floor_to_step(int(notional_krw / mid0 * SCALE), step_b)
        for vv in range(2):  # size within the visible depth of the sides we hit
            if quotes[vv, Q_HAS_BOOK] > 0.5:
                sd = -direction if vv == 0 else direction
                depth = depth_units(book_q, book_n, vv, 1 if sd > 0 else 0)
                q_units = min(q_units, floor_to_step(int(depth * 0.8), step_b))
        if q_units <= 0 or q_units / SCALE * mid0 < UPBIT_MIN_ORDER_KRW or (
                q_units / SCALE * mid1 < p[cf.P_MIN_NOTIONAL_B]):
            counters[C_REJ_SIZE] += 1
            continue
        need_u = q_units / SCALE * mid0 * (1.0 + p[cf.P_FEE_U]) * 1.01
        need_b = q_units / SCALE * mid1 * (1.0 + p[cf.P_FEE_B]) * 1.01
        if (direction > 0 and (si[rs.S_COIN0] < q_units or sf[rs.F_CASH1] < need_b)) or (
                direction < 0 and (sf[rs.F_CASH0] < need_u or si[rs.S_COIN1] < q_units)):
            counters[C_REJ_FUNDS] += 1
            continue
        si[rs.S_CAND], si[rs.S_CAND_DIR], si[rs.S_CAND_QTY], si[rs.S_CAND_TS] = 1, direction, q_units, t
        sf[rs.F_CAND_RATIO], sf[rs.F_CAND_DEV], sf[rs.F_CAND_PREM] = ratio, dev, prem
        if not internal or p[cf.P_ASK_RISK] > 0.5:
            return rs.ST_NEED_RISK, _flush(counters, n_events, n_trades, i + 1)
        resolve_candidate(si, sf, legs, counters, trips_i, trips_f, quotes, p, True)
        pend = True
    return rs.ST_DONE, _flush(counters, n_events, n_trades, hi)
