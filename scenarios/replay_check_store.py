"""``replay-check --source store``: the live run's venue recording through the backtest's own event builders.

The kernel recording (``--source kernel``) replays exactly what live ran. This instead builds the route's events
from ``<out>/store`` as a backtest does (scenarios.market_data: L2 books, depth diffs, the FX rebuilt from the
KRW-USDT book), runs them as one time-sorted stream, and compares the decisions with live's by decision time.
What the backtest's inputs do differently from live's is listed first, as causes: the first row that differs
(``event_order`` when both streams hold the same rows, ``data_changed`` otherwise) and how many rows only one
side has. Live's risk verdicts and fills are matched by decision time; a kill switch is set before the first
event at or after the one live's kernel saw it before.
"""

from __future__ import annotations

import itertools
from collections import Counter
from pathlib import Path

import numpy as np

from ..core.decisions import DecisionObserver, Record
from ..core.events import VENUE_BINANCE, VENUE_UPBIT, EventBatch
from ..core.route_state import S_CAND_TS, RouteState
from ..infra.data.store import Store
from ..infra.live.run_record import COLUMNS
from .replay_check import Cause, RouteRecording, drive, recorded_chunks


def store_events(store_root: Path, base: str) -> EventBatch:
    """The route's events as the backtest builds them from the store (no universe/guard status: live has none)."""
    from .market_data import _fx_events, _venue_events, route_resolution

    store = Store(store_root)
    resolution = route_resolution(store, base)
    if resolution is None:
        raise ValueError(f"route {base}: no venue recording in {store_root}")
    fx, _ = _fx_events(store, None, None)
    u = _venue_events(store, resolution, "upbit", f"{base}-KRW", VENUE_UPBIT, None, None)
    b = _venue_events(store, resolution, "binance", f"{base}-USDT", VENUE_BINANCE, None, None)
    return EventBatch.concat_sorted([fx, u, b])


def replay_from_store(rec: RouteRecording, store_root: Path, fills: str, risk: str
                      ) -> tuple[list[Record], list[Record], list[Cause]]:
    """(live's records, the replay's, input causes), every position as (time of the last event applied, 0)."""
    chunks, _ = recorded_chunks(rec)
    live_rows = [np.concatenate([getattr(b, c) for _, b in chunks]) if chunks else np.zeros(0, np.int64)
                 for c in COLUMNS]
    starts: dict[int, int] = {}  # chunk -> index of its first row in live's whole stream
    acc = 0
    for n, b in chunks:
        starts[n], acc = acc, acc + len(b)
    events = store_events(store_root, rec.route)
    verdicts = {int(r["ts"]): r for r in rec.live if r["kind"] == "verdict"}
    live_ts = live_rows[0]
    flat_at = sorted(int(live_ts[starts[r["chunk"]] + r["offset"]]) for r in rec.live
                     if r["kind"] == "flatten" and r["chunk"] in starts
                     and starts[r["chunk"]] + r["offset"] < len(live_ts))
    # a kill switch reaches the kernel between two steps: cut the stream there (an instant's edge) and set it
    cuts = sorted({int(np.searchsorted(events.ts, t, side="left")) for t in flat_at} - {0, len(events)})
    bounds = [0, *cuts, len(events)]
    parts = [(k, EventBatch(*(getattr(events, c)[a:b] for c in COLUMNS)))
             for k, (a, b) in enumerate(itertools.pairwise(bounds))]
    pending = {(k, 0) for k in range(1, len(parts))}

    def flatten_now(obs: DecisionObserver, state: RouteState, _batch: EventBatch) -> bool:
        at = obs.position(state)
        if at in pending:
            pending.discard(at)
            return True
        return False

    replayed = drive(rec, parts, fills,
                     lambda _obs, state: verdicts.get(int(state.si[S_CAND_TS])) if risk == "live" else None,
                     flatten_now)
    return [_at_time(r) for r in rec.live], [_at_time(r) for r in replayed], input_causes(live_rows, events)


def _at_time(r: Record) -> Record:
    """Positions by time: a decision's or verdict's own time, a fill's time (where the kernel noticed a
    decision depends on how its stream was cut: live's chunks or one stream)."""
    t = int(r["ts_fill"]) if r["kind"] == "fill" else int(r.get("ts", -1))
    return r | {"chunk": t, "offset": 0}


def input_causes(live_cols: list[np.ndarray], events: EventBatch) -> list[Cause]:
    """The first row where the backtest's stream differs from what live ran, and the rows only one side has."""
    live = list(zip(*(c.tolist() for c in live_cols), strict=True))
    built = list(zip(*(getattr(events, c).tolist() for c in COLUMNS), strict=True))
    k = next((i for i, (x, y) in enumerate(zip(live, built, strict=False)) if x != y), None)
    if k is None and len(live) == len(built):
        return []
    k = min(len(live), len(built)) if k is None else k
    only_live, only_built = Counter(live) - Counter(built), Counter(built) - Counter(live)
    same = not only_live and not only_built
    t = int(live[k][0]) if k < len(live) else int(built[k][0])
    what = (f"row {k} (t={t}): live ran {_row(live, k)}, the store gives {_row(built, k)}; rows only live ran "
            f"{sum(only_live.values())}, only in the store {sum(only_built.values())}")
    return [Cause((t, 0), "event_order" if same else "data_changed", what)]


def _row(rows: list[tuple[object, ...]], k: int) -> str:
    if k >= len(rows):
        return "nothing (its stream ended)"
    _ts, tv, venue, kind, side, px, qty = rows[k]
    return f"venue {venue} kind {kind} side {side} px {px} qty {qty} ts_venue {tv}"
