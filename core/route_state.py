"""The state of one route's engine, as plain arrays, so the compiled kernel can stop and resume.

The backtest runs the kernel over a whole stream in one call; paper and live call the same kernel on each
batch of events and stop where it needs the outside world (order fills from a venue, a risk verdict).
Keeping every scalar in two arrays (``si`` ints, ``sf`` floats) is what makes that possible, and makes a
snapshot of the whole engine a handful of arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from .book import MAX_LEVELS, new_books

# integer state slots
(S_FX_TS, S_REF_TS, S_WARM, S_POS_DIR, S_POS_QTY, S_POS_TRIP, S_ENTRY_TS, S_COOL, S_FUNDED, S_COIN0, S_COIN1,
 S_PEND, S_PACT, S_PDIR, S_PQTY, S_PTRIP, S_PDEC, S_PREASON, S_UNWOUND, S_NF, S_NTR, S_NS, S_CAND, S_CAND_DIR,
 S_CAND_QTY, S_CAND_TS, S_FLATTEN) = range(27)
# per venue: replay time and kind of the last quote refresh (a leg's wait and a fill's time); a data gap
# seen while a trip was open (it exits at the first quote after it, reason "data_gap")
S_QLOC0, S_QLOC1, S_QKIND0, S_QKIND1, S_GAP = 27, 28, 29, 30, 31
S_STATUS = 32  # the route's market-status bitmask (events.STATUS_*), from K_STATUS events: nonzero = no opens
S_FX_MAXAGE = 33  # how long after its own timestamp the current FX rate may be used (ns), from the K_FX event
N_SI = 34
# float state slots
(F_FX, F_EMA, F_LAST_RATIO, F_ENTRY_RATIO, F_CASH0, F_CASH1, F_PRATIO, F_PDEV, F_PPREM, F_PREF0, F_PREF1,
 F_CAND_RATIO, F_CAND_DEV, F_CAND_PREM) = range(14)
N_SF = 14
# leg slots: 0/1 = the Upbit/Binance legs of an action, 2/3 = their unwinds (hedge policy)
L_ACTIVE, L_DONE, L_VENUE, L_SIDE, L_QTY, L_DUE, L_FILLED = range(7)
# a leg fills only against a quote stamped in [due, deadline]; READY: 0 waiting, 1 fill, 2 expired (both
# decided by book.leg_outcome); AT: replay time its outcome is known (the quote's arrival, or the deadline)
L_DEADLINE, L_READY, L_AT = 7, 8, 9
N_LF = 10
# fill rows
FI_TRIP, FI_ACTION, FI_VENUE, FI_SIDE, FI_PX, FI_QTY, FI_REF, FI_TS_DEC, FI_TS_FILL = range(9)
N_FI = 9
# trip rows (ints): direction, exit reason, open decision / open fill / close decision / close fill, qty
TI_DIR, TI_REASON, TI_TS0, TI_TS1, TI_TS2, TI_TS3, TI_QTY = range(7)
TI_GAP, TI_UNHEDGED_NS = 7, 8  # held across a data gap (0/1); time one leg was filled and not the other
N_TI = 9
# trip rows (floats): premium open/close, deviation open/close, fx open/close, then the largest unhedged
# notional (KRW at the Upbit mid) while one leg was filled and not the other
TF_UNHEDGED_KRW = 6
N_TF = 7

# the output buffers that only grow, by group (rows of a group's arrays go together)
HISTORY = {"fills": ("fills",), "trips": ("trips_i", "trips_f"), "series": ("series_ts", "series_f")}

# kernel return codes
ST_DONE, ST_NEED_FILLS, ST_NEED_RISK, ST_GROW = 0, 1, 2, 3


@dataclass
class RouteState:
    si: np.ndarray
    sf: np.ndarray
    legs: np.ndarray
    init_units: np.ndarray
    counters: np.ndarray
    book_px: np.ndarray
    book_q: np.ndarray
    book_n: np.ndarray
    quotes: np.ndarray
    fills: np.ndarray
    trips_i: np.ndarray
    trips_f: np.ndarray
    series_ts: np.ndarray
    series_f: np.ndarray  # premium, deviation, reference premium

    @classmethod
    def new(cls, n_counters: int, series_hint: int = 1024, levels: int = MAX_LEVELS) -> RouteState:
        si = np.zeros(N_SI, np.int64)
        si[S_REF_TS] = si[S_WARM] = si[S_POS_TRIP] = si[S_ENTRY_TS] = si[S_COOL] = si[S_FX_TS] = -1
        book_px, book_q, book_n, quotes = new_books(levels)
        trips_i = np.full((256, N_TI), -1, np.int64)
        return cls(si=si, sf=np.zeros(N_SF), legs=np.zeros((4, N_LF), np.int64), init_units=np.zeros(4, np.int64),
                   counters=np.zeros(n_counters, np.int64), book_px=book_px, book_q=book_q, book_n=book_n,
                   quotes=quotes, fills=np.zeros((1024, N_FI), np.int64), trips_i=trips_i,
                   trips_f=np.full((256, N_TF), np.nan), series_ts=np.zeros(max(series_hint, 16), np.int64),
                   series_f=np.zeros((max(series_hint, 16), 3)))

    def grow(self) -> None:
        """Double whichever output buffer is close to full (the kernel asked with ST_GROW)."""
        self.fills = _doubled(self.fills, 0)
        self.trips_i = _doubled(self.trips_i, -1)
        self.trips_f = _doubled(self.trips_f, np.nan)
        self.series_ts = _doubled(self.series_ts, 0)
        self.series_f = _doubled(self.series_f, 0.0)

    def copy(self) -> RouteState:
        return RouteState(**{f.name: getattr(self, f.name).copy() for f in fields(self)})

    def used_rows(self) -> dict[str, int]:
        """Rows of each history group (HISTORY) the kernel has written."""
        return {"fills": int(self.si[S_NF]), "trips": int(self.si[S_NTR]), "series": int(self.si[S_NS])}

    def settled_rows(self) -> dict[str, int]:
        """Rows of each history group the kernel will never write again: fills and series rows are written
        once; a trip row is written while it is the pending action's or the position's trip, which is always
        the newest (no trip opens while one is open or an action is pending), so every row before both is
        settled. Settled rows can be saved once (``rows``) and left out of later snapshots."""
        ntr = int(self.si[S_NTR])
        trips = min(ntr - 1, int(self.si[S_PTRIP]))
        if int(self.si[S_POS_TRIP]) >= 0:
            trips = min(trips, int(self.si[S_POS_TRIP]))
        return {"fills": int(self.si[S_NF]), "trips": max(trips, 0), "series": int(self.si[S_NS])}

    def rows(self, lo: dict[str, int], hi: dict[str, int]) -> dict[str, np.ndarray]:
        """Copies of the history arrays' rows [lo, hi) of their groups."""
        return {name: getattr(self, name)[lo[g]:hi[g]].copy() for g, names in HISTORY.items() for name in names}

    def to_snapshot(self, base: dict[str, int] | None = None) -> dict[str, np.ndarray]:
        """The state as arrays, the output buffers cut to their used rows (a snapshot grows with what was
        done, not with the buffers' capacity). ``base``: per history group, the leading rows saved elsewhere
        (history segments, see actors/route_snapshot.py): left out, so a window's snapshot does not grow
        with the run; ``from_snapshot`` needs them back as ``prefix``."""
        used = self.used_rows()
        lo = {g: 0 for g in HISTORY} if base is None else base
        if any(not 0 <= lo[g] <= used[g] for g in HISTORY):
            raise ValueError(f"base {lo} outside the used rows {used}")
        out = {f.name: getattr(self, f.name) for f in fields(self)} | self.rows(lo, used)
        out["capacity"] = np.array([self.fills.shape[0], self.trips_i.shape[0], self.series_ts.shape[0]], np.int64)
        out["base"] = np.array([lo[g] for g in HISTORY], np.int64)
        return {k: np.ascontiguousarray(v).copy() for k, v in out.items()}

    @classmethod
    def from_snapshot(cls, snap: dict[str, np.ndarray],
                      prefix: dict[str, np.ndarray] | None = None) -> RouteState:
        """The inverse of ``to_snapshot``: the same state, the same capacities. ``prefix``: per history array,
        at least the rows the snapshot left out (its ``base``); rows beyond them are ignored."""
        cap = [int(x) for x in snap["capacity"]]
        fills_cap, trips_cap, series_cap = cap
        base = dict(zip(HISTORY, (int(x) for x in snap.get("base", np.zeros(len(HISTORY), np.int64))), strict=True))
        pads = {"fills": (fills_cap, 0), "trips_i": (trips_cap, -1), "trips_f": (trips_cap, np.nan),
                "series_ts": (series_cap, 0), "series_f": (series_cap, 0.0)}
        group = {name: g for g, names in HISTORY.items() for name in names}
        parts = {}
        for f in fields(cls):
            a = np.asarray(snap[f.name])
            if f.name in pads:
                n = base[group[f.name]]
                if n:
                    head = np.asarray((prefix or {}).get(f.name, a[:0]))
                    if head.shape[0] < n:
                        raise ValueError(f"{f.name}: the snapshot leaves out {n} rows, {head.shape[0]} given")
                    a = np.concatenate([head[:n].astype(a.dtype, copy=False), a])
                rows, fill = pads[f.name]
                full = np.full((rows, *a.shape[1:]), fill, dtype=a.dtype)
                full[: a.shape[0]] = a
                a = full
            parts[f.name] = a.copy()
        return cls(**parts)


def _doubled(a: np.ndarray, fill: float) -> np.ndarray:
    out = np.full((a.shape[0] * 2, *a.shape[1:]), fill, dtype=a.dtype)
    out[: a.shape[0]] = a
    return out
