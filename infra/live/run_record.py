"""What a live run's routes saw and decided, recorded for ``arbitrage-lite replay-check``.

The replay must feed the kernel the same rows in the same order, cut the same way: a live route runs the rows
of every source it has taken in up to its watermark as one time-sorted *chunk* (actors.route ``_process``),
and where a chunk ends changes when a decision can be taken (the kernel decides once all rows of an instant
are in, within its slice). So each chunk is recorded as the kernel got it: its rows in kernel order and its
number, watermark and arrival time (``perf_counter_ns`` of the message that started it, ``time_ns`` when it
ran), with a row count and two checksums (ordered, order-free) that tell a lost row from a reordered one.

Decisions (core.decisions: intents, risk verdicts, fills) go to ``decisions-*.jsonl``, one JSON line each.

Layout under ``root`` (``<out>/store`` of a live run; the Store ignores ``_``-prefixed folders)::

    run.json                                  run id, each route's EngineConfig and Binance rules
    decisions-<session>-<n>.jsonl             {"route", "kind", "chunk", "offset", ...} per line
    _kernel/<BASE>/rows-<session>-<n>.parquet  chunk, ts, ts_venue, venue, kind, side, px, qty
    _kernel/<BASE>/chunks-<session>-<n>.parquet chunk, watermark, received_ns, wall_ns, rows, crc, digest
    book/, depth_diff/, markers/ ...           the venue messages as the recorder stores them (venue_record)

Memory is bounded: everything is buffered at most ``flush_s`` seconds or ``max_rows`` rows, then written as
new segment files (temp file + rename) off the event loop; a crash loses at most one flush interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import zlib
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ...core.config import EngineConfig
from ...core.decisions import DecisionObserver
from ...core.domain import Venue
from ...core.events import EventBatch
from ...core.route_state import RouteState
from ...core.rules import InstrumentRules

KERNEL_DIR = "_kernel"
RUN_FILE = "run.json"
DECISIONS = "decisions-*.jsonl"  # one file per flush, read in name order (read_decisions)
COLUMNS = ("ts", "ts_venue", "venue", "kind", "side", "px", "qty")
ROW_SCHEMA = pa.schema([("chunk", pa.int64()), ("ts", pa.int64()), ("ts_venue", pa.int64()), ("venue", pa.int8()),
                        ("kind", pa.int8()), ("side", pa.int8()), ("px", pa.float64()), ("qty", pa.float64())])
CHUNK_SCHEMA = pa.schema([("chunk", pa.int64()), ("watermark", pa.int64()), ("received_ns", pa.int64()),
                          ("wall_ns", pa.int64()), ("rows", pa.int64()), ("crc", pa.int64()),
                          ("digest", pa.int64())])
_MIX = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0x27D4EB2F165667C5,
                 0x94D049BB133111EB, 0xBF58476D1CE4E5B9, 0xFF51AFD7ED558CCD], np.uint64)


def chunk_digests(batch: EventBatch) -> tuple[int, int]:
    """(crc32 of the rows in order, an order-free sum of per-row hashes): equal sums with different crcs mean
    the same rows in another order."""
    cols = [np.ascontiguousarray(getattr(batch, c)) for c in COLUMNS]
    crc = 0
    for c in cols:
        crc = zlib.crc32(c.tobytes(), crc)
    words = np.stack([c.astype(np.int64).view(np.uint64) if c.dtype != np.float64 else c.view(np.uint64)
                      for c in cols], axis=1) if len(batch) else np.zeros((0, 7), np.uint64)
    with np.errstate(over="ignore"):
        row = (words * _MIX).sum(axis=1, dtype=np.uint64)
        row ^= row >> np.uint64(29)
        total = int(row.sum(dtype=np.uint64))
    return crc, total - (1 << 64) if total >= 1 << 63 else total


def read_decisions(root: Path) -> list[dict[str, Any]]:
    """Every decision record of a recorded run, in the order live took them (``route`` in each)."""
    out = []
    for path in sorted(Path(root).glob(DECISIONS)):
        out += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return out


def rules_json(rules: InstrumentRules) -> dict[str, Any]:
    return {"tick_units": rules.tick_units, "step_units": rules.step_units, "min_notional": str(rules.min_notional),
            "max_notional": None if rules.max_notional is None else str(rules.max_notional)}


def rules_from_json(d: dict[str, Any]) -> InstrumentRules:
    mx = d.get("max_notional")
    return InstrumentRules(Venue.BINANCE, int(d["tick_units"]), int(d["step_units"]), Decimal(d["min_notional"]),
                           None if mx is None else Decimal(mx))


@dataclass
class _Buffers:
    rows: dict[str, list[tuple[int, EventBatch]]] = field(default_factory=dict)
    chunks: dict[str, list[tuple[int, ...]]] = field(default_factory=dict)  # chunk, watermark, received, wall, rows
    decisions: list[str] = field(default_factory=list)
    n_rows: int = 0
    number: int = 0  # the flush this is (names its files)


class RouteTap:
    """Set as ``RouteActor.tap``: the route calls ``chunk`` for every batch it runs and ``observe`` whenever
    it may have sent legs (after each kernel step and verdict)."""

    def __init__(self, rec: RunRecorder, route: str, state: RouteState) -> None:
        self.rec, self.route, self.state = rec, route, state
        self.observer = DecisionObserver()
        self.chunks = 0

    def chunk(self, batch: EventBatch, watermark: int, received_ns: int) -> None:
        if not len(batch):
            return  # the kernel runs nothing for an empty chunk
        n = self.chunks
        self.chunks += 1
        self.observer.begin_chunk(n, self.state)
        b = self.rec.buf
        b.rows.setdefault(self.route, []).append((n, batch))
        b.chunks.setdefault(self.route, []).append((n, watermark, received_ns, time.time_ns(), len(batch)))
        b.n_rows += len(batch)
        if b.n_rows >= self.rec.max_rows:
            self.rec.write(self.rec.take())  # the bound holds even if the flusher falls behind

    def observe(self, state: RouteState, rejections: list[str]) -> None:
        for r in self.observer.observe(state, rejections):
            self.rec.buf.decisions.append(json.dumps({"route": self.route} | r, separators=(",", ":")))


class RunRecorder:
    """One per live host: taps for its routes, a flusher task, the files above."""

    def __init__(self, root: Path, routes: dict[str, tuple[EngineConfig, InstrumentRules]], run_id: str,
                 flush_s: float = 2.0, max_rows: int = 200_000, venues: bool = True) -> None:
        """``venues``: also the venue messages, in the recorder's format (infra.live.venue_record)."""
        from .venue_record import VenueRecorder

        self.root = Path(root)
        self.venues = VenueRecorder(self.root, list(routes)) if venues else None
        self.flush_s, self.max_rows = flush_s, max_rows
        self.session = f"{time.time_ns():020d}"
        self.buf = _Buffers()
        self._n = 0
        self.task: asyncio.Task[None] | None = None
        self.stats = {"chunks": 0, "rows": 0, "decisions": 0, "flushes": 0}
        (self.root / KERNEL_DIR).mkdir(parents=True, exist_ok=True)
        run = {"run_id": run_id, "session": self.session, "started_ns": time.time_ns(),
               "routes": {b: {"config": cfg.model_dump(mode="json"), "binance_rules": rules_json(rules)}
                          for b, (cfg, rules) in routes.items()}}
        _atomic(self.root / RUN_FILE, json.dumps(run, indent=1).encode())

    def tap(self, route: str, state: RouteState) -> RouteTap:
        return RouteTap(self, route, state)

    def start(self) -> None:
        self._stop = asyncio.Event()
        self.task = asyncio.ensure_future(self._flusher())

    async def _flusher(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.flush_s)
            taken, items = self.take(), self.venues.take() if self.venues is not None else []
            await asyncio.to_thread(self._write_all, taken, items)

    def _write_all(self, taken: _Buffers, items: list[tuple[str, Any]]) -> None:
        self.write(taken)
        if self.venues is not None:
            self.venues.drain(items)

    def take(self) -> _Buffers:
        """Swap the buffers out (on the event loop, where the taps write)."""
        self._n += 1
        taken, self.buf = self.buf, _Buffers()
        taken.number = self._n
        return taken

    def write(self, b: _Buffers) -> None:
        """Write taken buffers as new segment files (safe off the event loop: touches only ``b``)."""
        for route, parts in b.rows.items():
            d = self.root / KERNEL_DIR / route
            d.mkdir(parents=True, exist_ok=True)
            cols: dict[str, Any] = {"chunk": np.concatenate([np.full(len(p), n, np.int64) for n, p in parts])}
            for c in COLUMNS:
                cols[c] = np.concatenate([getattr(p, c) for _, p in parts])
            _write_table(d / f"rows-{self.session}-{b.number:06d}.parquet", pa.table(cols, schema=ROW_SCHEMA))
            digests = [chunk_digests(p) for _, p in parts]  # here, off the hot path (~18 us a chunk)
            meta = list(zip(*[(*m, *d) for m, d in zip(b.chunks[route], digests, strict=True)], strict=True))
            _write_table(d / f"chunks-{self.session}-{b.number:06d}.parquet",
                         pa.table({f.name: list(meta[i]) for i, f in enumerate(CHUNK_SCHEMA)}, schema=CHUNK_SCHEMA))
            self.stats["chunks"] += len(parts)
        if b.decisions:
            with open(self.root / f"decisions-{self.session}-{b.number:06d}.jsonl", "w", encoding="utf-8") as f:
                f.write("\n".join(b.decisions) + "\n")
                f.flush()
                os.fsync(f.fileno())
        self.stats["rows"] += b.n_rows
        self.stats["decisions"] += len(b.decisions)
        self.stats["flushes"] += 1

    async def close(self) -> dict[str, int]:
        """Stop the flusher, write what is left (after the routes have finished), compact the venue data."""
        if self.task is not None:  # its last round writes what is left (after a write in flight: in order)
            self._stop.set()
            await self.task
        else:
            self.write(self.take())
        if self.venues is not None:
            self.stats["venue_items"] = self.venues.handled
            self.stats["venue_segments"] = await asyncio.to_thread(self.venues.close)
        return dict(self.stats)


def _write_table(path: Path, table: pa.Table) -> None:
    tmp = path.with_suffix(".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def _atomic(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
