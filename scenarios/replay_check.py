"""``arbitrage-lite replay-check RUN``: a live run's recording through the backtest kernel, decision by decision.

A live run with ``record_dir`` (infra.live.run_record) keeps, per route, every chunk of rows its kernel ran
(in kernel order, cut where live cut it) and every decision it took. Here each route's chunks go through the
same ``route_step`` in the same driver loop as live (external mode: stop for fills and risk verdicts), and
core.decisions reads the decisions off the state at the same points, so the two record streams line up by
position (chunk, events of it applied). What the replay cannot see, it takes from one of two sources:

* fills: ``model`` -- the backtest's fill model (``book.execute_leg`` on the kernel's own book, what a backtest
  fills); ``live`` -- the venue fills live booked for the same leg;
* risk verdicts: ``live`` -- the live RiskCoordinator's answer to the open asked at the same event (its inputs,
  the other routes and the portfolio, are not in one route's recording); ``allow`` -- no coordinator, as a
  backtest of one route without risk limits.

The kill switch (a flatten request, set between two kernel steps) is recorded where live's kernel first saw it
and set there again.

With ``--fills live --risk live`` nothing differs but the inputs, so any difference there is a recording that
lost, changed or reordered rows, or a replay that is not deterministic. Each difference gets a reason: the
earliest cause at or before it -- ``data_gap`` (a chunk lost rows, or the recording ends early),
``event_order`` (a chunk's rows in another order), ``data_changed``, ``fill_differs`` (a leg's fills, live vs
the replay's source), ``risk_verdict`` -- or ``unexplained``. A difference after an earlier one is marked
``after``: once a route's position or cash differ, later decisions may legitimately diverge.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..core.book import LEG_FILL, execute_leg
from ..core.config import P_HS_B, P_HS_U, P_IMP_B, P_IMP_U, P_TICK_B, EngineConfig
from ..core.decisions import ACTIONS, DecisionObserver, Record, leg_key
from ..core.driver import kernel_turns
from ..core.events import EventBatch
from ..core.kernel import resolve_candidate
from ..core.legs import settled_legs
from ..core.replay import inject_report, kernel_params, new_state
from ..core.route_state import (
    L_DUE,
    L_QTY,
    L_READY,
    L_SIDE,
    L_VENUE,
    S_FLATTEN,
    S_PACT,
    S_PDEC,
    RouteState,
)
from ..core.rules import InstrumentRules
from ..infra.live.run_record import (
    COLUMNS,
    KERNEL_DIR,
    RUN_FILE,
    chunk_digests,
    read_decisions,
    rules_from_json,
)

FILLS = ("model", "live")
RECORDING = ("data_gap", "event_order", "data_changed")  # causes in the recording itself
RISK = ("live", "allow")
Pos = tuple[int, int]


class ReplayCheckError(ValueError):
    """Not a recorded live run (no run.json / _kernel under it): the message says what is missing."""


@dataclass
class RouteRecording:
    route: str
    cfg: EngineConfig
    rules: InstrumentRules
    rows: pa.Table  # chunk + COLUMNS, in recorded order
    chunks: pa.Table  # what live declared for every chunk it ran
    live: list[Record] = field(default_factory=list)


@dataclass
class Cause:
    pos: Pos
    reason: str
    detail: str


def find_store(run: Path) -> Path:
    """``RUN`` is a live run's output directory (its ``store``) or the recording directory itself."""
    for d in (run / "store", run):
        if (d / RUN_FILE).exists():
            return d
    raise ReplayCheckError(f"{run}: no {RUN_FILE} (not a live run recorded with record_dir / arbitrage-lite live)")


def load_run(store: Path) -> tuple[dict[str, Any], dict[str, RouteRecording]]:
    run = json.loads((store / RUN_FILE).read_text())
    live: dict[str, list[Record]] = defaultdict(list)
    for rec in read_decisions(store):
        live[rec.pop("route")].append(rec)
    out = {}
    for route, spec in run["routes"].items():
        d = store / KERNEL_DIR / route
        rows = _read_all(sorted(d.glob("rows-*.parquet")))
        chunks = _read_all(sorted(d.glob("chunks-*.parquet")))
        out[route] = RouteRecording(route, EngineConfig.model_validate(spec["config"]),
                                    rules_from_json(spec["binance_rules"]), rows, chunks, live.get(route, []))
    return run, out


def _read_all(paths: list[Path]) -> pa.Table:
    tables = [pq.read_table(p) for p in paths]
    return pa.concat_tables(tables) if tables else pa.table({})


def recorded_chunks(rec: RouteRecording) -> tuple[list[tuple[int, EventBatch]], list[Cause]]:
    """The chunks as recorded (in chunk order) and what differs from what live declared it ran."""
    causes: list[Cause] = []
    declared = {int(c): i for i, c in enumerate(rec.chunks.column("chunk").to_pylist())} if rec.chunks.num_rows else {}
    cols = {c: rec.rows.column(c).to_numpy() for c in ("chunk", *COLUMNS)} if rec.rows.num_rows else None
    got: dict[int, EventBatch] = {}
    if cols is not None:
        numbers = cols["chunk"]
        order = np.argsort(numbers, kind="stable")
        cut = np.flatnonzero(np.diff(numbers[order])) + 1
        for idx in np.split(order, cut):
            n = int(numbers[idx[0]])
            parts = [cols[c][idx] for c in COLUMNS]
            try:
                got[n] = EventBatch(*parts)
            except ValueError:  # rows out of time order: run them sorted (live never ran such a chunk)
                srt = np.argsort(parts[0], kind="stable")
                got[n] = EventBatch(*(p[srt] for p in parts))
                causes.append(Cause((n, 0), "event_order", f"chunk {n}: rows out of time order"))
    last = max([*declared, *got], default=-1)
    missing_meta = [n for n in range(last + 1) if n not in declared]
    if missing_meta:
        causes.append(Cause((missing_meta[0], 0), "data_gap",
                            f"{len(missing_meta)} chunk(s) not in the chunk table (first {missing_meta[0]})"))
    for n, i in sorted(declared.items()):
        want = int(rec.chunks.column("rows")[i].as_py())
        batch = got.get(n)
        have = len(batch) if batch is not None else 0
        if have < want:
            causes.append(Cause((n, 0), "data_gap", f"chunk {n}: {want - have} of {want} rows missing"))
            continue
        crc, digest = chunk_digests(batch) if batch is not None else (0, 0)
        if have == want and crc != int(rec.chunks.column("crc")[i].as_py()):
            same_rows = digest == int(rec.chunks.column("digest")[i].as_py())
            causes.append(Cause((n, 0), "event_order" if same_rows else "data_changed",
                                f"chunk {n}: " + ("its rows in another order" if same_rows else "rows changed")))
        elif have > want:
            causes.append(Cause((n, 0), "data_changed", f"chunk {n}: {have - want} rows more than live ran"))
    return sorted(got.items()), causes


def replay_route(rec: RouteRecording, fills: str = "model", risk: str = "live") -> tuple[list[Record], list[Cause]]:
    """The route's decisions replayed from its recorded chunks; plus what in the recording differs from live's."""
    # by position, not by count: a candidate only one side had must not shift the answers of later ones
    verdicts = {_pos(r): r for r in rec.live if r["kind"] == "verdict"}
    flattens = {_pos(r) for r in rec.live if r["kind"] == "flatten"}

    def flatten_now(obs: DecisionObserver, state: RouteState, _batch: EventBatch) -> bool:
        at = obs.position(state)
        if at in flattens:  # the kill switch, where live's kernel first saw it
            flattens.discard(at)
            return True
        return False

    chunks, causes = recorded_chunks(rec)
    out = drive(rec, chunks, fills, lambda obs, state: verdicts.get(obs.position(state)) if risk == "live" else None,
                flatten_now)
    live_last = max((_pos(r) for r in rec.live), default=(-1, 0))
    if chunks and live_last[0] > chunks[-1][0]:
        causes.append(Cause((chunks[-1][0] + 1, 0), "data_gap",
                            f"the recording ends at chunk {chunks[-1][0]}; live decided up to chunk {live_last[0]}"))
    return out, causes


Verdict = Callable[[DecisionObserver, RouteState], "Record | None"]
Flatten = Callable[[DecisionObserver, RouteState, EventBatch], bool]


def drive(rec: RouteRecording, chunks: list[tuple[int, EventBatch]], fills: str, verdict: Verdict,
          flatten_now: Flatten) -> list[Record]:
    """Live's driver loop (actors.route ``_process``) over ``chunks``: a step, a look, then the verdict (live's
    answer from ``verdict``, or allowed) or the fills (``fills``: model or live) it stopped for."""
    if fills not in FILLS:
        raise ValueError(f"fills must be one of {FILLS}")
    params = kernel_params(rec.cfg, rec.rules)
    state = new_state(rec.cfg)
    obs = DecisionObserver()
    live_fills: dict[tuple[str, int, int], list[Record]] = defaultdict(list)
    for r in rec.live:
        if r["kind"] == "fill":
            live_fills[leg_key(r)[1:]].append(r)
    rejections: list[str] = []
    out: list[Record] = []
    for number, batch in chunks:
        obs.begin_chunk(number, state)

        def flatten_flag(batch: EventBatch = batch) -> None:
            if flatten_now(obs, state, batch):
                state.si[S_FLATTEN] = 1

        for turn in kernel_turns(state, batch, False, params, before_step=flatten_flag):
            out += obs.observe(state, rejections)
            if turn.needs_risk:
                v = verdict(obs, state)
                allowed = True if v is None else bool(v["allowed"])
                if not allowed:
                    rejections.append(str(v["trigger"]) if v is not None else "")
                s = state
                resolve_candidate(s.si, s.sf, s.legs, s.counters, s.trips_i, s.trips_f, s.quotes, params, allowed)
                out += obs.observe(state, rejections)
            elif turn.needs_fills:
                for leg in settled_legs(state.legs):
                    got = _live_fills(state, leg.slot, live_fills) if fills == "live" else _model_fills(
                        state, params, leg.slot)
                    inject_report(state, params, leg.slot, got)
    return out


def _model_fills(state: RouteState, params: np.ndarray, slot: int) -> list[tuple[str, int, int, Decimal]]:
    """What the backtest fills (kernel internal mode): the leg walks the kernel's book as it is now."""
    lg = state.legs[slot]
    if lg[L_READY] != LEG_FILL:
        return []
    v = int(lg[L_VENUE])
    levels = state.book_px.shape[2]
    px, qty = np.zeros(levels, np.int64), np.zeros(levels, np.int64)
    k = execute_leg(state.book_px, state.book_q, state.book_n, state.quotes, v, int(lg[L_SIDE]), int(lg[L_QTY]),
                    int(lg[L_DUE]), params[P_HS_U if v == 0 else P_HS_B], params[P_IMP_U if v == 0 else P_IMP_B],
                    int(params[P_TICK_B]), px, qty)
    return [("model", int(px[j]), int(qty[j]), Decimal(0)) for j in range(k)]


def _live_fills(state: RouteState, slot: int, live: dict[tuple[str, int, int], list[Record]]
                ) -> list[tuple[str, int, int, Decimal]]:
    """Live's fills of the same leg: action, venue and decision time (trip numbers shift after a divergence)."""
    si, lg = state.si, state.legs[slot]
    action = ACTIONS[2] if slot >= 2 else ACTIONS[int(si[S_PACT])]
    key = (action, int(lg[L_VENUE]), int(si[S_PDEC]))
    return [("live", int(r["px"]), int(r["qty"]), Decimal(0)) for r in live.get(key, [])]


def _pos(r: Record) -> Pos:
    return int(r["chunk"]), int(r["offset"])


INTENT_FIELDS = ("trip", "ts", "venue", "side", "qty", "due", "premium_bps", "ref_px")


def compare(live: list[Record], replay: list[Record], causes: list[Cause]) -> dict[str, Any]:
    """Intents matched by position, slot and action; each difference with the earliest cause before it."""
    causes = causes + _fill_causes(live, replay) + _verdict_causes(live, replay)
    causes.sort(key=lambda c: c.pos)
    lv, rp = _keyed(live), _keyed(replay)
    diffs: list[dict[str, Any]] = []
    matched = 0
    for key in sorted(set(lv) | set(rp)):
        a, b = lv.get(key), rp.get(key)
        if a is not None and b is not None:
            changed = [f for f in INTENT_FIELDS if a.get(f) != b.get(f)]
            if not changed:
                matched += 1
                continue
            what = "differs: " + ", ".join(changed)
        else:
            what = "only in live" if b is None else "only in replay"
        pos = key[:2]
        # the most direct cause: a verdict on this very decision, or its chunk's rows; else the earliest before it
        here = [c for c in causes if c.pos == pos or (c.reason in RECORDING and c.pos[0] == pos[0])]
        first = next((d for d in diffs if (d["chunk"], d["offset"]) < pos), None)
        if not here and first is not None:  # the state differs since that one: it is the cause
            cause = Cause(pos, first["reason"], f"follows the difference at {first['chunk']}:{first['offset']} "
                                                f"({first['detail']})")
        else:
            earlier = [c for c in causes if c.pos <= pos]
            cause = (here or earlier or [Cause(pos, "unexplained", "same rows, fills and verdicts before it")])[0]
        diffs.append({"chunk": pos[0], "offset": pos[1], "slot": key[2], "action": key[3], "what": what,
                      "live": _brief(a), "replay": _brief(b), "reason": cause.reason, "detail": cause.detail,
                      "after": first is not None})
    return {"live_intents": len(lv), "replay_intents": len(rp), "matched": matched,
            "differences": diffs, "reasons": dict(Counter(d["reason"] for d in diffs)),
            "causes": [{"chunk": c.pos[0], "offset": c.pos[1], "reason": c.reason, "detail": c.detail}
                       for c in causes]}


def _keyed(records: list[Record]) -> dict[tuple[int, int, int, str, int], Record]:
    out: dict[tuple[int, int, int, str, int], Record] = {}
    for r in records:
        if r["kind"] != "intent":
            continue
        base = (*_pos(r), int(r["slot"]), str(r["action"]))
        k = 0
        while (*base, k) in out:
            k += 1
        out[(*base, k)] = r
    return out


def _brief(r: Record | None) -> dict[str, Any] | None:
    return None if r is None else {f: r.get(f) for f in INTENT_FIELDS}


def _fill_causes(live: list[Record], replay: list[Record]) -> list[Cause]:
    """Legs both sent whose fills differ (px, qty), at the first position either booked one."""
    def legs(records: list[Record]) -> dict[tuple[int, str, int, int], list[Record]]:
        out: dict[tuple[int, str, int, int], list[Record]] = defaultdict(list)
        for r in records:
            if r["kind"] in ("fill", "intent"):
                out[leg_key(r)].append(r)
        return out

    a, b = legs(live), legs(replay)
    causes = []
    for key in set(a) & set(b):
        fa = [(r["px"], r["qty"]) for r in a[key] if r["kind"] == "fill"]
        fb = [(r["px"], r["qty"]) for r in b[key] if r["kind"] == "fill"]
        if fa != fb:
            at = min(_pos(r) for r in a[key] + b[key] if r["kind"] == "fill")
            causes.append(Cause(at, "fill_differs", f"trip {key[0]} {key[1]} {('upbit', 'binance')[key[2]]} leg: "
                                                    f"live {_fills_text(fa)} vs replay {_fills_text(fb)}"))
    return causes


def _fills_text(fills: list[tuple[int, int]]) -> str:
    if not fills:
        return "no fill"
    qty = sum(q for _, q in fills)
    vwap = sum(p * q for p, q in fills) / qty / 1e8 if qty else 0.0
    return f"{qty / 1e8:g} @ {vwap:,.8g} ({len(fills)} fill{'s' if len(fills) > 1 else ''})"


def _verdict_causes(live: list[Record], replay: list[Record]) -> list[Cause]:
    """Opens both asked about at the same event and answered differently (a verdict only one side asked for
    follows from an earlier difference)."""
    a = {_pos(r): r for r in live if r["kind"] == "verdict"}
    b = {_pos(r): r for r in replay if r["kind"] == "verdict"}
    causes = []
    for pos in sorted(set(a) & set(b)):
        x, y = a[pos], b[pos]
        if x["allowed"] != y["allowed"]:
            causes.append(Cause(pos, "risk_verdict", f"open at t={x['ts']}: live {_verdict(x)}, replay {_verdict(y)}"))
    return causes


def _verdict(r: Record) -> str:
    return "allowed" if r["allowed"] else "rejected" + (f" ({r['trigger']})" if r["trigger"] else "")


SOURCES = ("kernel", "store")


def check_run(run_dir: Path, fills: str = "model", risk: str = "live", source: str = "kernel") -> dict[str, Any]:
    """Every route of a recorded live run replayed and compared; ``identical`` when no decision differs (and,
    replaying the kernel recording, the recording is whole: else the check cannot vouch for anything)."""
    if fills not in FILLS or risk not in RISK or source not in SOURCES:
        raise ValueError(f"fills must be one of {FILLS}, risk one of {RISK}, source one of {SOURCES}")
    store = find_store(Path(run_dir))
    run, routes = load_run(store)
    out: dict[str, Any] = {}
    for name, rec in routes.items():
        if source == "store":
            from .replay_check_store import replay_from_store

            live, replayed, causes = replay_from_store(rec, store, fills, risk)
        else:
            replayed, causes = replay_route(rec, fills, risk)
            live = rec.live
        res = compare(live, replayed, causes)
        res |= {"chunks": rec.chunks.num_rows, "rows": rec.rows.num_rows,
                "recording_problems": 0 if source == "store" else sum(c.reason in RECORDING for c in causes)}
        out[name] = res
    identical = all(not r["differences"] and not r["recording_problems"] for r in out.values())
    return {"run_id": run.get("run_id"), "store": str(store), "fills": fills, "risk": risk, "source": source,
            "position": "chunk:offset" if source == "kernel" else "event time (ns):0", "identical": identical,
            "routes": out}
