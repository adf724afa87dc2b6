"""Normalized columnar market-data store: one Parquet file per kind / venue / symbol.

Layout: ``ROOT/<kind>/<venue>/<BASE>-<QUOTE>.parquet`` plus ``ROOT/manifest.json``. Every table carries
``ts`` (venue time) and ``ts_local`` (local receive/record time) as int64 UTC nanoseconds, -1 when unknown.

Writes merge with what is already stored (concat, stable sort, drop exact duplicate rows) and are atomic
(temp file + ``os.replace``), so an interrupted import never leaves a half-written file behind. The file
bytes depend only on the set of rows stored, so importing the same data twice is a no-op.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

_F64 = pa.float64()
_I64 = pa.int64()

SCHEMAS: dict[str, pa.Schema] = {
    "bars_1m": pa.schema(
        [("ts", _I64), ("ts_local", _I64), ("open", _F64), ("high", _F64), ("low", _F64),
         ("close", _F64), ("volume", _F64)]
    ),
    "last": pa.schema([("ts", _I64), ("ts_local", _I64), ("price", _F64), ("volume24h_krw", _F64)]),
    "fx": pa.schema([("ts", _I64), ("ts_local", _I64), ("rate", _F64)]),
    "book": pa.schema(
        [("ts", _I64), ("ts_local", _I64), ("snapshot", _I64), ("side", pa.int8()), ("level", pa.int16()),
         ("price", _F64), ("qty", _F64)]
    ),
    "depth_diff": pa.schema(
        [("ts", _I64), ("ts_local", _I64), ("first_update_id", _I64), ("last_update_id", _I64),
         ("side", pa.int8()), ("price", _F64), ("qty", _F64)]
    ),
    "trades": pa.schema(
        [("ts", _I64), ("ts_local", _I64), ("trade_id", _I64), ("price", _F64), ("qty", _F64),
         ("aggressor", pa.int8())]
    ),
    "bbo": pa.schema(
        [("ts", _I64), ("ts_local", _I64), ("update_id", _I64), ("bid", _F64), ("bid_qty", _F64),
         ("ask", _F64), ("ask_qty", _F64)]
    ),
    # recorder markers (docs/data.md "Recorded data"): connect, disconnect, gap, snapshot, stale
    "markers": pa.schema([("ts", _I64), ("ts_local", _I64), ("event", pa.int8()), ("seq", _I64), ("prev", _I64)]),
}
KINDS: tuple[str, ...] = tuple(SCHEMAS)
VENUES: tuple[str, ...] = ("upbit", "binance", "ref")
# Streams recorded by a local process are ordered by arrival (ts_local); the rest by venue time.
RECORDED_KINDS: frozenset[str] = frozenset({"last", "depth_diff", "trades", "bbo", "markers"})
# Sort keys (most significant first); ties keep their input order (stable sort).
SORT_KEYS: dict[str, tuple[str, ...]] = {
    "bars_1m": ("ts", "ts_local"),
    "last": ("ts_local", "ts"),
    "fx": ("ts", "ts_local"),
    "book": ("ts", "ts_local", "side", "level"),
    "depth_diff": ("ts_local", "ts"),
    "trades": ("ts_local", "ts", "trade_id"),
    "bbo": ("ts_local", "update_id"),
    "markers": ("ts_local", "ts"),
}
# What identifies one observation; two rows with the same key but different values are a conflict.
KEYS: dict[str, tuple[str, ...]] = {
    "bars_1m": ("ts",),
    "last": ("ts", "ts_local"),
    "fx": ("ts", "ts_local"),
    "book": ("ts", "ts_local", "side", "level"),
    "depth_diff": ("first_update_id", "last_update_id", "side", "price"),
    "trades": ("trade_id",),
    "bbo": ("update_id", "bid", "bid_qty", "ask", "ask_qty"),
    "markers": ("ts_local", "event", "seq"),
}
_SYMBOL_RE = re.compile(r"^[A-Z0-9]{1,20}-[A-Z0-9]{1,20}$")
MANIFEST_NAME = "manifest.json"


@dataclass(frozen=True, slots=True)
class MergeStats:
    """Outcome of one ``Store.write``: rows offered, rows already stored (dropped) and the new total."""

    kind: str
    venue: str
    symbol: str
    rows_before: int
    rows_in: int
    duplicates_dropped: int
    rows_after: int
    key_conflicts: int = 0  # stored rows sharing a key (e.g. the same minute) with different values


    @property
    def rows_added(self) -> int:
        return self.rows_after - self.rows_before


@dataclass(frozen=True, slots=True)
class SeriesInfo:
    """One stored series. ``first_ts``/``last_ts`` span ``ts`` (``ts_local`` if the venue gives no ts)."""

    kind: str
    venue: str
    symbol: str
    rows: int
    first_ts: int
    last_ts: int


def valid_symbol(symbol: str) -> bool:
    """``BASE-QUOTE`` in upper-case letters and digits (what a store file name may be)."""
    return bool(_SYMBOL_RE.match(symbol))


def check_key(kind: str, venue: str, symbol: str) -> None:
    if kind not in SCHEMAS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    if venue not in VENUES:
        raise ValueError(f"unknown venue {venue!r}; expected one of {', '.join(VENUES)}")
    if not _SYMBOL_RE.match(symbol):
        raise ValueError(f"symbol must look like BASE-QUOTE in upper case (e.g. BTC-KRW), got {symbol!r}")


def conform(kind: str, table: pa.Table) -> pa.Table:
    """Select and cast ``table`` to the exact schema of ``kind`` (raises on missing columns)."""
    schema = SCHEMAS[kind]
    missing = [n for n in schema.names if n not in table.column_names]
    if missing:
        raise ValueError(f"{kind}: table lacks columns {missing}")
    cols = [table[n].cast(schema.field(n).type) for n in schema.names]
    return pa.Table.from_arrays([c.combine_chunks() for c in cols], schema=schema)


def sort_table(kind: str, table: pa.Table) -> pa.Table:
    """Stable sort by the kind's key (``np.lexsort`` is stable)."""
    if table.num_rows < 2:
        return table
    keys = [table[k].to_numpy() for k in reversed(SORT_KEYS[kind])]
    order = np.lexsort(keys)
    if np.array_equal(order, np.arange(table.num_rows)):
        return table
    return table.take(pa.array(order))


def _exact_row_key(table: pa.Table, columns: Iterable[str]) -> pa.Table:
    """Integer view of the chosen columns: floats compared by bit pattern, so NaN == NaN."""
    out: dict[str, np.ndarray[Any, Any]] = {}
    for i, name in enumerate(columns):
        arr = np.ascontiguousarray(table[name].to_numpy())
        if arr.dtype.kind == "f":
            arr = arr.astype(np.float64).view(np.int64)
        out[f"c{i}"] = arr
    return pa.table(out)


def first_occurrence_mask(table: pa.Table, columns: Iterable[str] | None = None) -> np.ndarray[Any, Any]:
    """True for the first row of every group of rows equal on ``columns`` (default: all columns)."""
    n = table.num_rows
    mask = np.zeros(n, dtype=bool)
    if n == 0:
        return mask
    keys = _exact_row_key(table, list(columns) if columns is not None else table.column_names)
    keys = keys.append_column("__i", pa.array(np.arange(n, dtype=np.int64)))
    grouped = keys.group_by([c for c in keys.column_names if c != "__i"], use_threads=False).aggregate(
        [("__i", "min")]
    )
    mask[grouped["__i_min"].to_numpy()] = True
    return mask


def _renumber_snapshots(table: pa.Table) -> pa.Table:
    """Book snapshots are identified by (ts, ts_local); ``snapshot`` is their dense rank in the series."""
    if table.num_rows == 0:
        return table
    ts = table["ts"].to_numpy()
    tl = table["ts_local"].to_numpy()
    new = np.empty(len(ts), dtype=bool)
    new[0] = True
    new[1:] = (ts[1:] != ts[:-1]) | (tl[1:] != tl[:-1])
    ids = np.cumsum(new, dtype=np.int64) - 1
    idx = table.schema.get_field_index("snapshot")
    return table.set_column(idx, table.schema.field(idx), pa.array(ids, type=pa.int64()))


def _read_parquet(path: Path, columns: list[str] | None = None) -> pa.Table:
    """One store file. ``ParquetFile.read`` skips the dataset layer of ``pq.read_table`` (~3 ms a call,
    30x the read itself for a small series: it dominated importing many small files); threads only pay
    for large files."""
    with pq.ParquetFile(path) as f:
        return f.read(columns=columns, use_threads=f.metadata.num_rows > 1_000_000)


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _span(table: pa.Table) -> tuple[int, int]:
    for col in ("ts", "ts_local"):
        vals = table[col].to_numpy()
        vals = vals[vals >= 0]
        if len(vals):
            return int(vals.min()), int(vals.max())
    return -1, -1


class Store:
    """Parquet store rooted at ``root`` (created on first write)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._manifest: dict[str, Any] | None = None
        self._batch_depth = 0

    # -- paths / queries -------------------------------------------------------------------------
    def path(self, kind: str, venue: str, symbol: str) -> Path:
        check_key(kind, venue, symbol)
        return self.root / kind / venue / f"{symbol}.parquet"

    def has(self, kind: str, venue: str, symbol: str) -> bool:
        return self.path(kind, venue, symbol).is_file()

    def read(self, kind: str, venue: str, symbol: str, columns: list[str] | None = None) -> pa.Table:
        path = self.path(kind, venue, symbol)
        if not path.is_file():
            raise FileNotFoundError(f"no {kind} series for {venue} {symbol} in store {self.root}")
        return _read_parquet(path, columns)

    def series(self) -> list[SeriesInfo]:
        """All stored series, read from the Parquet files themselves (not the manifest)."""
        out: list[SeriesInfo] = []
        for kind in KINDS:
            for venue in VENUES:
                folder = self.root / kind / venue
                if not folder.is_dir():
                    continue
                for f in sorted(folder.glob("*.parquet")):
                    t = _read_parquet(f, ["ts", "ts_local"])
                    first, last = _span(t)
                    out.append(SeriesInfo(kind, venue, f.stem, t.num_rows, first, last))
        return out

    # -- writing ---------------------------------------------------------------------------------
    @contextmanager
    def batch(self) -> Iterator[Store]:
        """Defer manifest rewrites to the end of the block (data files are still written one by one).

        If the block is interrupted, the Parquet files are intact but the manifest may lag behind them;
        ``rebuild_manifest()`` (or the next write of each series) brings it back in line.
        """
        self._batch_depth += 1
        try:
            yield self
        finally:
            self._batch_depth -= 1
            if self._batch_depth == 0:
                self._save_manifest()

    def write(self, kind: str, venue: str, symbol: str, table: pa.Table, source: str | None = None) -> MergeStats:
        """Merge ``table`` into the stored series; ``source`` (a file name) is recorded in the manifest."""
        path = self.path(kind, venue, symbol)
        new = conform(kind, table)
        old = _read_parquet(path) if path.is_file() else SCHEMAS[kind].empty_table()
        merged = pa.concat_tables([conform(kind, old), new]).combine_chunks()
        merged = sort_table(kind, merged)
        dedup_cols = [c for c in merged.column_names if c != "snapshot"]
        mask = first_occurrence_mask(merged, dedup_cols)
        dropped = int((~mask).sum())
        if dropped:
            merged = merged.filter(pa.array(mask))
        if kind == "book":
            merged = _renumber_snapshots(merged)
        conflicts = int((~first_occurrence_mask(merged, KEYS[kind])).sum())
        stats = MergeStats(kind, venue, symbol, old.num_rows, new.num_rows, dropped, merged.num_rows, conflicts)
        if merged.num_rows != old.num_rows or not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            sink = pa.BufferOutputStream()
            pq.write_table(merged, sink, compression="zstd", row_group_size=1 << 20)
            _atomic_write_bytes(path, sink.getvalue().to_pybytes())
        first, last = _span(merged)
        entry = self._series_entries().setdefault(f"{kind}/{venue}/{symbol}", {"sources": []})
        entry.update(kind=kind, venue=venue, symbol=symbol, rows=merged.num_rows, first_ts=first, last_ts=last)
        if source is not None and source not in entry["sources"]:
            entry["sources"] = sorted([*entry["sources"], source])
        self._save_manifest()
        return stats

    def record_import(self, name: str, sha256: str, layout: str, series: list[str]) -> None:
        """Note in the manifest that source file ``name`` (identified by content hash) was imported."""
        manifest = self._load_manifest()
        imports: list[dict[str, Any]] = manifest["imports"]
        entry = {"file": name, "sha256": sha256, "layout": layout, "series": sorted(series)}
        if entry not in imports:
            imports.append(entry)
            imports.sort(key=lambda e: (e["file"], e["sha256"]))
        self._save_manifest()

    def manifest(self) -> dict[str, Any]:
        copy: dict[str, Any] = json.loads(json.dumps(self._load_manifest()))
        return copy

    def rebuild_manifest(self) -> None:
        """Recompute the series list from the files (e.g. after an interrupted write)."""
        manifest = self._load_manifest()
        old = manifest["series"]
        manifest["series"] = {}
        for s in self.series():
            key = f"{s.kind}/{s.venue}/{s.symbol}"
            manifest["series"][key] = {**asdict(s), "sources": old.get(key, {}).get("sources", [])}
        self._save_manifest()

    def _load_manifest(self) -> dict[str, Any]:
        if self._manifest is None:
            path = self.root / MANIFEST_NAME
            if path.is_file():
                self._manifest = json.loads(path.read_text())
            else:
                self._manifest = {"format": 1, "series": {}, "imports": []}
        return self._manifest

    def _series_entries(self) -> dict[str, dict[str, Any]]:
        entries: dict[str, dict[str, Any]] = self._load_manifest()["series"]
        return entries

    def _save_manifest(self) -> None:
        if self._batch_depth:
            return
        manifest = self._load_manifest()
        manifest["series"] = dict(sorted(manifest["series"].items()))
        self.root.mkdir(parents=True, exist_ok=True)
        text = json.dumps(manifest, indent=1, sort_keys=True) + "\n"
        _atomic_write_bytes(self.root / MANIFEST_NAME, text.encode())
