"""Which routes may open, and when, decided from the past only: the top-N universe, the pair guard, the
exchange's market status and each route's own history, delivered to the kernel as K_STATUS events.

* ``top:N`` ranks coins by Upbit KRW traded value in a trailing window at re-rank times (the first one once
  ``guard.min_history_s`` of data exist); a coin outside the last ranking may not open (it may close).
* The pair guard (core.pair_guard) sees every coin of the store, the universe's common premium is their median.
* An Upbit market-status snapshot (``market_event`` warning / caution) counts from its time for
  ``guard.status_max_age_s``; a snapshot of another time is reported as not applied.
* Nothing opens before ``guard.min_history_s`` of the route's own data (its spread floor is estimated on them).

Status events are stamped at the time the information exists: a guard change after the sample that made it
(+1 ns, so the decision at that sample does not see it), a ranking at its re-rank time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np

from ..core.config import EngineConfig, GuardConfig
from ..core.events import (
    DECISION_KINDS,
    K_BOOK_END,
    K_STATUS,
    STATUS_EXCHANGE,
    STATUS_HISTORY,
    STATUS_NAMES,
    STATUS_OUT_OF_UNIVERSE,
    STATUS_STRUCTURAL,
    VENUE_BINANCE,
    VENUE_STATUS,
    VENUE_UPBIT,
    EventBatch,
    empty_batch,
    make_batch,
)
from ..core.pair_guard import PairGuard
from ..infra.data.store import Store

S_NS = 1_000_000_000


@dataclass(frozen=True)
class StatusPeriod:
    bit: int
    start_ns: int
    end_ns: int | None  # None: still on at the end of the data
    reason: str


@dataclass(frozen=True)
class Universe:
    """The routes to replay and, per route, its status periods (the kernel gets them as events)."""

    routes: tuple[str, ...]
    rule: str
    schedule: tuple[tuple[int, tuple[str, ...]], ...] = ()  # (re-rank time, members)
    periods: dict[str, tuple[StatusPeriod, ...]] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    guard: GuardConfig = field(default_factory=GuardConfig)

    def status_events(self, base: str, first_ns: int) -> EventBatch:
        """The route's status bitmask at ``first_ns`` and at every change after it."""
        changes: dict[int, list[tuple[int, bool]]] = {}
        for p in self.periods.get(base, ()):
            changes.setdefault(max(p.start_ns, first_ns), []).append((p.bit, True))
            if p.end_ns is not None and p.end_ns > first_ns:
                changes.setdefault(p.end_ns, []).append((p.bit, False))
        changes.setdefault(first_ns, [])
        ts: list[int] = []
        px: list[float] = []
        mask = 0
        for t in sorted(changes):
            for bit, on in changes[t]:  # what ends here first, then what starts here
                if not on:
                    mask &= ~bit
            for bit, on in changes[t]:
                if on:
                    mask |= bit
            if not px or px[-1] != mask:
                ts.append(t)
                px.append(float(mask))
        if px == [0.0]:
            return empty_batch()
        t_arr = np.array(ts, np.int64)
        return make_batch(t_arr, VENUE_STATUS, K_STATUS, np.array(px))


def iso(ts_ns: int | None) -> str | None:
    return None if ts_ns is None else str(np.datetime64(int(ts_ns), "ns").astype("datetime64[s]")) + "Z"


def _series(store: Store, venue: str, symbol: str, kind: str, start: int | None,
            end: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(replay ts, price) of a coin's decision prices (last trades or 1m closes); for L2 books the decision times
    (a BOOK_END carries no price: 0), which is all ``_span`` needs (books never enter the pair guard's premiums)."""
    from .market_data import _venue_events

    ev = _venue_events(store, kind, venue, symbol, VENUE_UPBIT if venue == "upbit" else VENUE_BINANCE, start, end)
    m = np.isin(ev.kind, DECISION_KINDS) & ((ev.px > 0) | (ev.kind == K_BOOK_END))
    return ev.ts[m], ev.px[m]


def premium_samples(store: Store, bases: list[str], resolution: str, fx: EventBatch, start: int | None,
                    end: int | None) -> list[tuple[int, str, float]]:
    """Every coin's premium (bps) at each of its Upbit prices, from the latest Binance price and FX rate
    known then; time-ordered (ties by coin)."""
    fx_ts, fx_px = fx.ts, fx.px
    out: list[tuple[int, str, float]] = []
    for b in bases:
        tu, pu = _series(store, "upbit", f"{b}-KRW", resolution, start, end)
        tb, pb = _series(store, "binance", f"{b}-USDT", resolution, start, end)
        i = np.searchsorted(tb, tu, side="right") - 1
        j = np.searchsorted(fx_ts, tu, side="right") - 1
        ok = (i >= 0) & (j >= 0)
        prem = (pu[ok] / (pb[i[ok]] * fx_px[j[ok]]) - 1.0) * 1e4
        out += [(int(t), b, float(p)) for t, p in zip(tu[ok], prem, strict=True)]
    out.sort(key=lambda x: (x[0], x[1]))
    return out


def structural_periods(samples: list[tuple[int, str, float]], g: GuardConfig) -> dict[str, list[StatusPeriod]]:
    """Run the pair guard over the samples; a change is stamped 1 ns after the sample that made it."""
    guard = PairGuard(g.structural_bps, int(g.window_s * S_NS), g.structural_fraction, int(g.common_window_s * S_NS),
                      g.min_coins)
    open_at: dict[str, tuple[int, str]] = {}
    out: dict[str, list[StatusPeriod]] = {}
    for t, b, p in samples:
        ch = guard.update(t, b, p)
        if ch is None:
            continue
        if ch.guarded:
            open_at[b] = (t + 1, ch.reason)
        else:
            s, why = open_at.pop(b)
            out.setdefault(b, []).append(StatusPeriod(STATUS_STRUCTURAL, s, t + 1, why))
    for b, (s, why) in open_at.items():
        out.setdefault(b, []).append(StatusPeriod(STATUS_STRUCTURAL, s, None, why))
    return out


def first_value_ts(store: Store, base: str, resolution: str) -> int | None:
    """When the first traded value of a coin is known (snapshots: its first 24h volume figure)."""
    big = np.array([np.iinfo(np.int64).max], np.int64)
    v = traded_value_windows(store, base, resolution, big, int(big[0]), first=True)
    return None if v.size == 0 or not np.isfinite(v[0]) else int(v[0])


def traded_value_windows(store: Store, base: str, resolution: str, times: np.ndarray, window_ns: int,
                         first: bool = False) -> np.ndarray:
    """Upbit KRW traded value in [t - window, t) at each ``t`` (snapshots: the mean 24h volume seen there);
    ``first``: instead, the time of the first value."""
    sym = f"{base}-KRW"
    if resolution == "snapshots":
        t = store.read("last", "upbit", sym, columns=["ts", "ts_local", "volume24h_krw"])
        tl = t.column("ts_local").to_numpy(zero_copy_only=False)
        ts = np.where(tl >= 0, tl, t.column("ts").to_numpy(zero_copy_only=False))
        v = np.nan_to_num(t.column("volume24h_krw").to_numpy(zero_copy_only=False).astype(np.float64))
        n = (~np.isnan(t.column("volume24h_krw").to_numpy(zero_copy_only=False).astype(np.float64))).astype(float)
    elif resolution == "1m bars":
        t = store.read("bars_1m", "upbit", sym, columns=["ts", "close", "volume"])
        ts = t.column("ts").to_numpy(zero_copy_only=False) + 60 * S_NS  # a bar is known once it has closed
        v = np.nan_to_num(t.column("close").to_numpy(zero_copy_only=False) * t.column("volume").to_numpy(
            zero_copy_only=False))
        n = None
    else:
        t = store.read("book", "upbit", sym, columns=["ts", "price", "qty"])
        ts = t.column("ts").to_numpy(zero_copy_only=False)
        v = np.nan_to_num(t.column("price").to_numpy(zero_copy_only=False) * t.column("qty").to_numpy(
            zero_copy_only=False))
        n = None
    order = np.argsort(ts, kind="stable")
    ts, v = ts[order], v[order]
    if first:
        ok = (v > 0) if n is None else (n[order] > 0)
        return np.array([float(ts[ok][0]) if ok.any() else np.nan])
    cv = np.r_[0.0, np.cumsum(v)]
    hi = np.searchsorted(ts, times, side="left")  # strictly before t
    lo = np.searchsorted(ts, times - window_ns, side="left")
    total = cv[hi] - cv[lo]
    if n is not None:
        cn = np.r_[0.0, np.cumsum(n[order])]
        cnt = cn[hi] - cn[lo]
        return np.where(cnt > 0, total / np.maximum(cnt, 1), 0.0)
    return np.asarray(total)


def exchange_periods(g: GuardConfig, bases: list[str], first_ns: int, last_ns: int
                     ) -> tuple[dict[str, list[StatusPeriod]], str | None]:
    """Upbit market_event flags of the configured snapshot, over [as_of, as_of + status_max_age_s) when that
    overlaps the data; else nothing, and a note saying why."""
    if g.upbit_status_file is None or g.upbit_status_as_of is None:
        return {}, None
    as_of = int(datetime.fromisoformat(g.upbit_status_as_of.replace("Z", "+00:00")).astimezone(UTC).timestamp()
                * S_NS)
    until = as_of + int(g.status_max_age_s * S_NS)
    src = f"Upbit market status {Path(g.upbit_status_file).name} taken {iso(as_of)}"
    if until <= first_ns or as_of > last_ns:
        return {}, (f"{src}: not applied, the data runs {iso(first_ns)} to {iso(last_ns)} and a status counts "
                    f"for {g.status_max_age_s:g} s from its time")
    markets = {m["market"]: m for m in json.loads(Path(g.upbit_status_file).read_text())}
    out: dict[str, list[StatusPeriod]] = {}
    for b in bases:
        ev = markets.get(f"KRW-{b}", {}).get("market_event") or {}
        flags = [f for f, on in (ev.get("caution") or {}).items() if on and f in g.caution_flags]
        if ev.get("warning") or flags:
            why = f"{src}: " + ", ".join((["warning"] if ev.get("warning") else []) + [f"caution {f}" for f in flags])
            out[b] = [StatusPeriod(STATUS_EXCHANGE, max(as_of, first_ns), until if until <= last_ns else None, why)]
    return out, f"{src}: applied from {iso(max(as_of, first_ns))} for {g.status_max_age_s:g} s"


def _ranking(store: Store, avail: dict[str, str], n: int, g: GuardConfig, first_ns: int,
             last_ns: int) -> tuple[tuple[tuple[int, tuple[str, ...]], ...], dict[str, list[StatusPeriod]]]:
    """Re-rank times and members; per coin, its periods outside the universe."""
    known = [t for t in (first_value_ts(store, b, res) for b, res in avail.items()) if t is not None]
    # the first ranking once min_history_s of data and some traded value exist (its data strictly before it)
    first_rank = max(first_ns + int(g.min_history_s * S_NS), (min(known) + 1) if known else first_ns)
    times = np.arange(first_rank, max(last_ns, first_rank) + 1, int(g.rerank_s * S_NS), dtype=np.int64)
    values = {b: traded_value_windows(store, b, res, times, int(g.rank_window_s * S_NS)) for b, res in avail.items()}
    schedule: list[tuple[int, tuple[str, ...]]] = []
    for k, t in enumerate(times):
        ranked = sorted((b for b in avail if values[b][k] > 0), key=lambda b: (-values[b][k], b))
        schedule.append((int(t), tuple(ranked[:n])))
    out: dict[str, list[StatusPeriod]] = {}
    ever = {b for _, m in schedule for b in m}
    for b in ever:
        why = f"not in the top {n} by Upbit traded value over the trailing {g.rank_window_s / 3600:g} h"
        start: int | None = first_ns
        for at, members in schedule:
            if b in members and start is not None:
                out.setdefault(b, []).append(StatusPeriod(STATUS_OUT_OF_UNIVERSE, start, at, why))
                start = None
            elif b not in members and start is None:
                start = at
        if start is not None:
            out.setdefault(b, []).append(StatusPeriod(STATUS_OUT_OF_UNIVERSE, start, None, why))
    return tuple(schedule), out


def _span(store: Store, avail: dict[str, str], start: int | None, end: int | None) -> tuple[int, int]:
    lo, hi = [], []
    for b, res in avail.items():
        t, _ = _series(store, "upbit", f"{b}-KRW", res, start, end)
        if t.size:
            lo.append(int(t[0]))
            hi.append(int(t[-1]))
    if not lo:
        from .market_data import DataError

        raise DataError("no market data in the requested window")
    return min(lo), max(hi)


def plan_universe(store_root: Path, spec: str, start: int | None = None, end: int | None = None,
                  guard: GuardConfig | None = None) -> Universe:
    """The routes of ``spec`` (``BTC,ETH`` or ``top:N``) and their status periods, from the past only."""
    return _plan(str(store_root), spec.strip(), start, end, guard or GuardConfig())


@lru_cache(maxsize=8)
def _plan(store_root: str, spec: str, start: int | None, end: int | None, g: GuardConfig) -> Universe:
    from .market_data import _fx_events, available_routes, parse_top, resolve_routes

    store = Store(Path(store_root))
    avail = dict(available_routes(Path(store_root)))
    top = parse_top(spec)
    explicit = top is None
    routes = resolve_routes(Path(store_root), spec) if explicit else []
    first_ns, last_ns = _span(store, avail if not explicit else {b: avail[b] for b in routes}, start, end)
    periods: dict[str, list[StatusPeriod]] = {}
    notes: list[str] = []
    schedule: tuple[tuple[int, tuple[str, ...]], ...] = ()
    if explicit:
        rule = f"the routes asked for ({', '.join(routes)}), no ranking"
    else:
        n = int(top or 0)
        if n >= len(avail):
            routes, rule = sorted(avail), f"top {n} of {len(avail)} coins: every coin, no ranking needed"
        else:
            schedule, periods = _ranking(store, avail, n, g, first_ns, last_ns)
            first_seen: dict[str, int] = {}
            for k, (_, members) in enumerate(schedule):
                for j, b in enumerate(members):
                    first_seen.setdefault(b, k * 10_000 + j)
            routes = sorted(first_seen, key=lambda b: first_seen[b])
            rule = (f"top {n} by Upbit KRW traded value over the trailing {g.rank_window_s / 3600:g} h, re-ranked "
                    f"every {g.rerank_s / 3600:g} h from {iso(schedule[0][0]) if schedule else None} "
                    f"(after {g.min_history_s / 3600:g} h of data); a coin trades only while in the last ranking")
    guarded_bases = sorted(b for b, r in avail.items() if r != "book")
    if len(guarded_bases) >= g.min_coins:
        fx, _ = _fx_events(store, start, end)
        samples = premium_samples(store, guarded_bases, avail[guarded_bases[0]], fx, start, end)
        for b, ps in structural_periods(samples, g).items():
            periods.setdefault(b, []).extend(ps)
    else:
        notes.append(f"pair guard off: {len(guarded_bases)} coins in the store (it needs {g.min_coins} for a "
                     "common premium)")
    ex, note = exchange_periods(g, list(routes), first_ns, last_ns)
    for b, ps in ex.items():
        periods.setdefault(b, []).extend(ps)
    if note:
        notes.append(note)
    return Universe(tuple(routes), rule, schedule, {b: tuple(v) for b, v in periods.items()}, tuple(notes), g)


def history_period(g: GuardConfig, first_ns: int) -> StatusPeriod | None:
    if g.min_history_s <= 0:
        return None
    return StatusPeriod(STATUS_HISTORY, first_ns, first_ns + int(g.min_history_s * S_NS),
                        f"the first {g.min_history_s / 3600:g} h of the route's data: ranking, pair guard and "
                        "spread floor need past data")


def _period_dict(p: StatusPeriod) -> dict[str, object]:
    return {"start": iso(p.start_ns), "end": iso(p.end_ns), "reason": STATUS_NAMES[p.bit], "detail": p.reason}


GUARD_BITS = STATUS_STRUCTURAL | STATUS_EXCHANGE


def route_guard_summary(periods: tuple[StatusPeriod, ...]) -> dict[str, object]:
    """per_route[...]: its guard periods (structural premium, exchange status) and its time out of the universe."""
    return {"guarded": [_period_dict(p) for p in periods if p.bit & GUARD_BITS],
            "out_of_universe": [_period_dict(p) for p in periods if p.bit == STATUS_OUT_OF_UNIVERSE]}


def universe_summary(universe: Universe | None, route_periods: dict[str, tuple[StatusPeriod, ...]]
                     ) -> dict[str, object]:
    """summary["universe"] (ranking rule and schedule) and summary["guarded_pairs"]."""
    guarded = [{"route": b, **_period_dict(p)} for b, ps in route_periods.items() for p in ps if p.bit & GUARD_BITS]
    out: dict[str, object] = {"guarded_pairs": sorted(guarded, key=lambda x: (str(x["route"]), str(x["start"])))}
    if universe is not None:
        out["universe"] = {
            "rule": universe.rule,
            "schedule": [{"at": iso(t), "members": list(m)} for t, m in universe.schedule],
            "opens_only_when": "in the universe, unguarded, and past the route's first "
                               f"{universe.guard.min_history_s / 3600:g} h of data (K_STATUS events; closes "
                               "are always allowed): the headline holds no trip opened on a guarded route",
            "notes": list(universe.notes),
        }
    return out


class _RunRequest(Protocol):
    @property
    def store(self) -> Path: ...
    @property
    def routes(self) -> str: ...
    @property
    def start_ns(self) -> int | None: ...
    @property
    def end_ns(self) -> int | None: ...
    @property
    def config(self) -> EngineConfig: ...


def universe_of(req: _RunRequest) -> Universe:
    """The universe of a backtest or paper request (computed once per process: cached)."""
    return plan_universe(req.store, req.routes, req.start_ns, req.end_ns, req.config.guard)
