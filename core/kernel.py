"""The compiled replay kernel: one route, two venues, one pass over a time-ordered event stream.

It keeps both venues' books (or bar/last quotes), the FX rate and the EMA reference, calls the strategy
functions of :mod:`strategy` at every decision point, sends both legs with each venue's latency (a leg
fills against the market as it is once its latency has passed), walks the book or applies the bar cost
model, and equalizes legs that filled unevenly by trading the excess back at once (the declared hedge
policy). It writes fills with exact integer prices/quantities; the exact ledger is applied afterwards.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import njit

from . import config as cf  # the P_* slots of the parameter array
from .events import K_BAR_CLOSE, K_BAR_OPEN, K_BOOK_END, K_CLEAR, K_FX, K_LAST, K_LEVEL, K_TRADE
from .fill_model import model_price_units, walk_levels
from .fx import premium_bps
from .rules import SCALE, UPBIT_MIN_ORDER_KRW, floor_to_step, upbit_krw_tick_units
from .strategy import (
    EXIT_ABORTED,
    EXIT_NONE,
    entry_signal,
    exit_reason,
    expected_edge_bps,
    mark_bps,
    round_trip_cost_bps,
    update_reference,
)

MAX_LEVELS = 64
MAX_FX_AGE_NS = 4 * 86400 * 1_000_000_000  # daily FX (forward-filled over weekends) stays usable 4 days

# funnel / counter slots
C_DECISIONS, C_SIGNALS, C_PASSED_RISK, C_FILLED_BOTH, C_CLOSED = 0, 1, 2, 3, 4
C_REJ_WARMUP, C_REJ_STALE, C_REJ_CROSSED, C_REJ_FX, C_REJ_COOLDOWN, C_REJ_EDGE = 5, 6, 7, 8, 9, 10
C_REJ_SIZE, C_REJ_FUNDS, C_ABORTED, C_UNHEDGED_UNITS, C_CLOSE_BLOCKED, C_EVENTS, C_TRADES_SEEN = (
    11, 12, 13, 14, 15, 16, 17)
N_COUNTERS = 18
COUNTER_NAMES = ("decisions", "signals", "passed_risk", "filled_both_legs", "closed", "rejected_warmup",
                 "rejected_stale", "rejected_crossed", "rejected_fx", "rejected_cooldown", "rejected_edge",
                 "rejected_size", "rejected_funds", "aborted_no_hedge", "unhedged_units_left",
                 "close_blocked", "events", "trades_seen")

ACTION_OPEN, ACTION_CLOSE, ACTION_UNWIND = 0, 1, 2


@njit(cache=True, inline="always")
def set_level(book_px: np.ndarray, book_q: np.ndarray, v: int, sidx: int, n: int, price: float,
              qty: float) -> int:
    """Set one price level of side ``sidx`` (0 bids descending, 1 asks ascending) of venue ``v``'s book;
    qty 0 deletes. A side keeps its best ``book_px.shape[2]`` levels: a new level past them is dropped.

    Takes the whole book (no per-event array views); returns the side's new level count.
    """
    cap = book_px.shape[2]
    sgn = 1.0 if sidx == 1 else -1.0  # on sgn * price, "better than" is "<" for both sides (exact sign flip)
    key = sgn * price
    if n == 0 or sgn * book_px[v, sidx, n - 1] < key:  # past the last level: far updates, snapshots best first
        if n == cap or qty <= 0.0:
            return n  # beyond the tracked depth, or deleting an unknown level
        book_px[v, sidx, n] = price
        book_q[v, sidx, n] = qty
        return n + 1
    i = 0  # the first level not better than price = the number of better ones (branch-free, vectorized)
    for j in range(n):
        i += sgn * book_px[v, sidx, j] < key
    # shifts index with np.uint64: no negative-index wraparound, so LLVM vectorizes them
    if book_px[v, sidx, i] == price:
        if qty > 0.0:
            book_q[v, sidx, i] = qty
            return n
        for j in range(i, n - 1):
            book_px[v, sidx, np.uint64(j)] = book_px[v, sidx, np.uint64(j + 1)]
        for j in range(i, n - 1):
            book_q[v, sidx, np.uint64(j)] = book_q[v, sidx, np.uint64(j + 1)]
        return n - 1
    if qty <= 0.0:
        return n  # deleting an unknown level
    last = n if n < cap else cap - 1  # a full side drops its worst level
    for j in range(last, i, -1):
        book_px[v, sidx, np.uint64(j)] = book_px[v, sidx, np.uint64(j - 1)]
    for j in range(last, i, -1):
        book_q[v, sidx, np.uint64(j)] = book_q[v, sidx, np.uint64(j - 1)]
    book_px[v, sidx, i] = price
    book_q[v, sidx, i] = qty
    return n + 1 if n < cap else n


@njit(cache=True)
def _tick_units(v: int, price: float, ts: int, tick_b: int) -> int:
    if v == 0:
        return upbit_krw_tick_units(int(price * SCALE), ts)
    return tick_b


@njit(cache=True)
def _depth_units(level_qty: np.ndarray, n: int) -> int:
    total = 0.0
    for i in range(n):
        total += level_qty[i]
    return int(total * SCALE)


@njit(cache=True)
def replay_route(ts: np.ndarray, ts_venue: np.ndarray, venue: np.ndarray, kind: np.ndarray,
                 side: np.ndarray, px: np.ndarray, qty: np.ndarray, p: np.ndarray,
                 cap_fills: int, cap_trips: int) -> Any:
    n = ts.shape[0]
    tick_b = int(p[cf.P_TICK_B])
    step_b = int(p[cf.P_STEP_B])
    fee = np.array([p[cf.P_FEE_U], p[cf.P_FEE_B]])
    lat = np.array([p[cf.P_LAT_U_NS], p[cf.P_LAT_B_NS]])
    hs = np.array([p[cf.P_HS_U], p[cf.P_HS_B]])
    imp = np.array([p[cf.P_IMP_U], p[cf.P_IMP_B]])
    max_age, max_skew = p[cf.P_MAX_AGE_NS], p[cf.P_MAX_SKEW_NS]  # read at every decision: hoisted
    halflife, max_gap = p[cf.P_HALFLIFE_NS], p[cf.P_MAX_GAP_NS]

    # outputs
    f_trip = np.zeros(cap_fills, np.int64)
    f_action = np.zeros(cap_fills, np.int8)
    f_venue = np.zeros(cap_fills, np.int8)
    f_side = np.zeros(cap_fills, np.int8)
    f_px = np.zeros(cap_fills, np.int64)
    f_qty = np.zeros(cap_fills, np.int64)
    f_ref = np.zeros(cap_fills, np.int64)
    f_ts_dec = np.zeros(cap_fills, np.int64)
    f_ts_fill = np.zeros(cap_fills, np.int64)
    nf = 0
    t_dir = np.zeros(cap_trips, np.int8)
    t_reason = np.zeros(cap_trips, np.int8)
    t_ts = np.full((cap_trips, 4), -1, np.int64)  # open decision, open fill, close decision, close fill
    t_f = np.full((cap_trips, 6), np.nan)  # premium open/close, dev open/close, fx open/close
    t_qty = np.zeros(cap_trips, np.int64)
    ntr = 0
    n_dec = 0  # decisions happen only at these kinds: the series need one row per such event at most
    for i in range(n):
        if kind[i] == K_BOOK_END or kind[i] == K_BAR_CLOSE or kind[i] == K_LAST:
            n_dec += 1
    s_ts = np.empty(n_dec, np.int64)
    s_prem = np.empty(n_dec)
    s_dev = np.empty(n_dec)
    s_ref_prem = np.empty(n_dec)
    ns = 0
    cnt = np.zeros(N_COUNTERS, np.int64)
    n_events = n_trades = 0  # the two per-event counters live in registers until the end
    overflow = False

    # market state
    book_px = np.zeros((2, 2, MAX_LEVELS))
    book_q = np.zeros((2, 2, MAX_LEVELS))
    book_n = np.zeros((2, 2), np.int64)
    has_book = np.zeros(2, np.bool_)
    mid = np.zeros(2)
    half_spread_bps = np.zeros(2)
    crossed = np.zeros(2, np.bool_)
    quote_ts = np.full(2, -1, np.int64)
    fx = 0.0
    fx_ts = -1
    tmp_px = np.zeros(MAX_LEVELS, np.int64)
    tmp_qty = np.zeros(MAX_LEVELS, np.int64)

    # strategy state
    ema, ref_ts, warm_start, last_ratio = 0.0, -1, -1, 0.0
    pos_dir, pos_qty, pos_trip, entry_ratio, entry_ts, cooldown_until = 0, 0, -1, 0.0, -1, -1
    # inventory (float shadow for funding checks; the exact ledger is rebuilt from fills)
    funded = False
    coin = np.zeros(2, np.int64)
    cash = np.zeros(2)
    init_units = np.zeros(4, np.int64)  # KRW, coin on Upbit, USDT, coin on Binance (1e-8 units)
    # pending legs
    pend, pend_action, pend_dir, pend_qty, pend_trip, pend_dec_ts = False, 0, 0, 0, -1, 0
    pend_ratio, pend_dev, pend_prem, pend_reason = 0.0, 0.0, 0.0, 0
    pend_due = np.zeros(2, np.int64)
    pend_done = np.zeros(2, np.bool_)
    pend_side = np.zeros(2, np.int64)
    pend_ref = np.zeros(2)
    pend_filled = np.zeros(2, np.int64)

    for i in range(n + 1):
        t = ts[i] if i < n else ts[n - 1] + 1 if n > 0 else 0
        # 1) legs whose latency has passed meet the market as it is now (before this event)
        if pend:
            for v in range(2):
                if pend_done[v] or (i < n and t <= pend_due[v]):
                    continue
                q_units = pend_qty
                sd = pend_side[v]
                k = 0
                if has_book[v]:
                    sidx = 1 if sd > 0 else 0
                    k = walk_levels(book_px[v, sidx], book_q[v, sidx], book_n[v, sidx], q_units, tmp_px, tmp_qty)
                elif mid[v] > 0.0:
                    notional_quote = mid[v] * q_units / SCALE
                    tmp_px[0] = model_price_units(mid[v], sd, notional_quote, hs[v], imp[v],
                                                  _tick_units(v, mid[v], t, tick_b))
                    tmp_qty[0] = q_units
                    k = 1
                got = 0
                for j in range(k):
                    if nf >= cap_fills:
                        overflow = True
                        break
                    f_trip[nf], f_action[nf], f_venue[nf], f_side[nf] = pend_trip, pend_action, v, sd
                    f_px[nf], f_qty[nf] = tmp_px[j], tmp_qty[j]
                    f_ref[nf] = int(pend_ref[v] * SCALE + 0.5)
                    f_ts_dec[nf], f_ts_fill[nf] = pend_dec_ts, pend_due[v]
                    nf += 1
                    got += tmp_qty[j]
                    notional = tmp_px[j] / SCALE * tmp_qty[j] / SCALE
                    coin[v] += sd * tmp_qty[j]
                    cash[v] -= sd * notional + notional * fee[v]
                pend_filled[v] = got
                pend_done[v] = True
            if pend_done[0] and pend_done[1]:
                pend = False
                hedged = min(pend_filled[0], pend_filled[1])
                for v in range(2):  # hedge policy: trade any excess back at once, against the same market
                    excess = pend_filled[v] - hedged
                    if excess <= 0:
                        continue
                    sd = -pend_side[v]
                    k = 0
                    if has_book[v]:
                        sidx = 1 if sd > 0 else 0
                        k = walk_levels(book_px[v, sidx], book_q[v, sidx], book_n[v, sidx], excess, tmp_px,
                                        tmp_qty)
                    elif mid[v] > 0.0:
                        tmp_px[0] = model_price_units(mid[v], sd, mid[v] * excess / SCALE, hs[v], imp[v],
                                                      _tick_units(v, mid[v], t, tick_b))
                        tmp_qty[0] = excess
                        k = 1
                    for j in range(k):
                        if nf >= cap_fills:
                            overflow = True
                            break
                        f_trip[nf], f_action[nf], f_venue[nf], f_side[nf] = pend_trip, ACTION_UNWIND, v, sd
                        f_px[nf], f_qty[nf] = tmp_px[j], tmp_qty[j]
                        f_ref[nf] = int(pend_ref[v] * SCALE + 0.5)
                        f_ts_dec[nf], f_ts_fill[nf] = pend_dec_ts, pend_due[v]
                        nf += 1
                        excess -= tmp_qty[j]
                        notional = tmp_px[j] / SCALE * tmp_qty[j] / SCALE
                        coin[v] += sd * tmp_qty[j]
                        cash[v] -= sd * notional + notional * fee[v]
                    cnt[C_UNHEDGED_UNITS] += excess
                fill_ts = max(pend_due[0], pend_due[1])
                if pend_action == ACTION_OPEN:
                    if hedged > 0:
                        cnt[C_FILLED_BOTH] += 1
                        pos_dir, pos_qty, pos_trip = pend_dir, hedged, pend_trip
                        entry_ratio, entry_ts = pend_ratio, pend_dec_ts
                        t_ts[pend_trip, 1] = fill_ts
                        t_qty[pend_trip] = hedged
                    else:
                        cnt[C_ABORTED] += 1
                        t_reason[pend_trip] = EXIT_ABORTED
                        t_ts[pend_trip, 1] = fill_ts
                        t_ts[pend_trip, 2] = pend_dec_ts
                        t_ts[pend_trip, 3] = fill_ts
                        cooldown_until = fill_ts + int(p[cf.P_COOLDOWN_NS])
                else:
                    pos_qty -= hedged
                    if pos_qty <= 0:
                        cnt[C_CLOSED] += 1
                        t_reason[pos_trip] = pend_reason
                        t_ts[pos_trip, 2] = pend_dec_ts
                        t_ts[pos_trip, 3] = fill_ts
                        t_f[pos_trip, 1] = pend_prem
                        t_f[pos_trip, 3] = pend_dev
                        t_f[pos_trip, 5] = fx
                        pos_dir, pos_qty, pos_trip = 0, 0, -1
                        cooldown_until = fill_ts + int(p[cf.P_COOLDOWN_NS])
        if i == n:
            break

        # 2) apply the event
        n_events += 1
        v = venue[i]
        kd = kind[i]
        if kd == K_FX:
            if px[i] > 0.0 and px[i] == px[i]:
                fx = px[i]
                fx_ts = t
            continue
        if v > 1:
            continue
        if kd == K_TRADE:
            n_trades += 1
            continue
        if kd == K_LEVEL:
            sidx = 1 if side[i] == 1 else 0
            if px[i] > 0.0 and qty[i] >= 0.0:  # false for NaN too
                book_n[v, sidx] = set_level(book_px, book_q, v, sidx, book_n[v, sidx], px[i], qty[i])
            has_book[v] = True
            continue
        if kd == K_CLEAR:
            book_n[v, 0] = 0
            book_n[v, 1] = 0
            has_book[v] = True
            continue
        if kd == K_BOOK_END:
            if book_n[v, 0] > 0 and book_n[v, 1] > 0:
                bid, ask = book_px[v, 0, 0], book_px[v, 1, 0]
                crossed[v] = bid >= ask
                mid[v] = 0.5 * (bid + ask)
                half_spread_bps[v] = (ask - bid) / (bid + ask) * 1e4
            else:
                crossed[v] = True  # a one-sided book is not tradable
            quote_ts[v] = ts_venue[i] if ts_venue[i] >= 0 else t
        elif kd == K_BAR_OPEN or kd == K_BAR_CLOSE or kd == K_LAST:  # noqa: SIM109 (numba)
            if not (px[i] > 0.0) or px[i] != px[i]:
                continue  # never a quote from a NaN / non-positive price
            mid[v] = px[i]
            half_spread_bps[v] = hs[v]
            crossed[v] = False
            quote_ts[v] = ts_venue[i] if ts_venue[i] >= 0 else t
            if kd == K_BAR_OPEN:
                continue

        # 3) decide once all events of this instant are in
        if i + 1 < n and ts[i + 1] == t:
            continue
        if quote_ts[0] < 0 or quote_ts[1] < 0:
            continue
        stale = (t - quote_ts[0] > max_age or t - quote_ts[1] > max_age
                 or abs(quote_ts[0] - quote_ts[1]) > max_skew)
        bad_book = crossed[0] or crossed[1] or not (mid[0] > 0.0 and mid[1] > 0.0)
        fx_ok = fx > 0.0 and t - fx_ts <= MAX_FX_AGE_NS
        if stale or bad_book:
            if not pend and pos_dir == 0:
                cnt[C_DECISIONS] += 1
                cnt[C_REJ_STALE if stale else C_REJ_CROSSED] += 1
            continue
        ratio = mid[0] / mid[1]
        ema, reset = update_reference(ema, ref_ts, ratio, t, halflife, max_gap)
        if reset:
            warm_start = t
        ref_ts = t
        last_ratio = ratio
        dev = (ratio / ema - 1.0) * 1e4
        prem = premium_bps(mid[0], mid[1], fx) if fx_ok else math.nan
        s_ts[ns] = t
        s_prem[ns] = prem
        s_dev[ns] = dev
        s_ref_prem[ns] = premium_bps(ema * mid[1], mid[1], fx) if fx_ok else math.nan
        ns += 1
        if not funded and fx_ok:
            funded = True
            coin[0] = int(p[cf.P_INV_U_COIN] / mid[0] * SCALE)
            cash[0] = math.floor(p[cf.P_INV_U_KRW])
            cash[1] = math.floor(p[cf.P_INV_B_USDT] / fx * 100.0) / 100.0
            coin[1] = int(p[cf.P_INV_B_COIN] / (mid[1] * fx) * SCALE)
            init_units[0] = int(cash[0]) * SCALE
            init_units[1] = coin[0]
            init_units[2] = int(round(cash[1] * 100.0)) * (SCALE // 100)  # noqa: RUF046 (numba)
            init_units[3] = coin[1]
        if pend:
            continue
        if pos_dir != 0:
            reason = exit_reason(pos_dir, dev, mark_bps(pos_dir, entry_ratio, ratio), t - entry_ts, p[cf.P_EXIT],
                                 p[cf.P_TP], p[cf.P_SL], p[cf.P_MAX_HOLD_NS])
            if reason == EXIT_NONE:
                continue
            if not fx_ok:
                cnt[C_CLOSE_BLOCKED] += 1
                continue
            # closing: buy back on Upbit / sell on Binance for a +1 position (the reverse for -1)
            need_u = pos_qty / SCALE * mid[0] * (1.0 + fee[0]) * 1.01
            need_b = pos_qty / SCALE * mid[1] * (1.0 + fee[1]) * 1.01
            if (pos_dir > 0 and (cash[0] < need_u or coin[1] < pos_qty)) or (
                    pos_dir < 0 and (coin[0] < pos_qty or cash[1] < need_b)):
                cnt[C_CLOSE_BLOCKED] += 1
                continue
            pend, pend_action, pend_dir, pend_qty, pend_trip = True, ACTION_CLOSE, pos_dir, pos_qty, pos_trip
            pend_side[0], pend_side[1] = pos_dir, -pos_dir
            pend_reason, pend_prem, pend_dev, pend_ratio = reason, prem, dev, ratio
        else:
            cnt[C_DECISIONS] += 1
            direction = entry_signal(dev, p[cf.P_ENTRY], p[cf.P_ALLOW_LONG] > 0.5)
            if direction == 0:
                continue
            cnt[C_SIGNALS] += 1
            if t - warm_start < p[cf.P_WARMUP_NS]:
                cnt[C_REJ_WARMUP] += 1
                continue
            if not fx_ok or not funded:
                cnt[C_REJ_FX] += 1
                continue
            if t < cooldown_until:
                cnt[C_REJ_COOLDOWN] += 1
                continue
            notional_krw = min(p[cf.P_NOTIONAL_KRW], p[cf.P_LIMIT_KRW])
            imp_u = imp[0] * notional_krw / 1e6 if not has_book[0] else 0.0
            imp_b = imp[1] * notional_krw / fx / 1e6 if not has_book[1] else 0.0
            cost = round_trip_cost_bps(fee[0], fee[1], half_spread_bps[0], half_spread_bps[1], imp_u, imp_b)
            if expected_edge_bps(direction, dev, p[cf.P_EXIT], cost) < p[cf.P_MIN_EDGE]:
                cnt[C_REJ_EDGE] += 1
                continue
            q_units = floor_to_step(int(notional_krw / mid[0] * SCALE), step_b)
            for v in range(2):  # size within the visible depth of the sides we hit
                if has_book[v]:
                    sd = -direction if v == 0 else direction
                    depth = _depth_units(book_q[v, 1 if sd > 0 else 0], book_n[v, 1 if sd > 0 else 0])
                    q_units = min(q_units, floor_to_step(int(depth * 0.8), step_b))
            if q_units <= 0 or q_units / SCALE * mid[0] < UPBIT_MIN_ORDER_KRW or (
                    q_units / SCALE * mid[1] < p[cf.P_MIN_NOTIONAL_B]):
                cnt[C_REJ_SIZE] += 1
                continue
            need_u = q_units / SCALE * mid[0] * (1.0 + fee[0]) * 1.01
            need_b = q_units / SCALE * mid[1] * (1.0 + fee[1]) * 1.01
            if (direction > 0 and (coin[0] < q_units or cash[1] < need_b)) or (
                    direction < 0 and (cash[0] < need_u or coin[1] < q_units)):
                cnt[C_REJ_FUNDS] += 1
                continue
            if ntr >= cap_trips:
                overflow = True
                break
            cnt[C_PASSED_RISK] += 1
            pend, pend_action, pend_dir, pend_qty, pend_trip = True, ACTION_OPEN, direction, q_units, ntr
            pend_side[0], pend_side[1] = -direction, direction
            pend_ratio, pend_prem, pend_dev = ratio, prem, dev
            t_dir[ntr] = direction
            t_ts[ntr, 0] = t
            t_f[ntr, 0], t_f[ntr, 2], t_f[ntr, 4] = prem, dev, fx
            ntr += 1
        pend_dec_ts = t
        pend_done[0] = pend_done[1] = False
        pend_filled[0] = pend_filled[1] = 0
        for v in range(2):
            pend_due[v] = t + int(lat[v])
            pend_ref[v] = mid[v]

    cnt[C_EVENTS], cnt[C_TRADES_SEEN] = n_events, n_trades
    final = np.array([mid[0], mid[1], fx, last_ratio, ema])
    return (f_trip[:nf], f_action[:nf], f_venue[:nf], f_side[:nf], f_px[:nf], f_qty[:nf], f_ref[:nf],
            f_ts_dec[:nf], f_ts_fill[:nf], t_dir[:ntr], t_reason[:ntr], t_ts[:ntr], t_f[:ntr], t_qty[:ntr],
            s_ts[:ns], s_prem[:ns], s_dev[:ns], s_ref_prem[:ns], cnt, init_units, final, overflow)
