"""A route's merged market events written once as an Arrow IPC file, so repeated replays skip decode and merge.

Tuning replays the same route many times; each streamed replay otherwise decodes every Parquet/zstd series and
merges the venues again (most of its time: ``benchmarks/README.md``). The first replay writes the merged market
chunks as they go by (``tee``); later ones read them back memory-mapped (``read``): uncompressed, a record
batch is the file's own bytes (no copy, no decode); with ``lz4`` the file is ~3x smaller and decodes fast.

Invalidation: a cache file is named by two hashes, the route's market series as they are on disk (path, size,
mtime, inode: a store write replaces the file) and the window. A replay finds its file or writes it; writing
removes the route's files made from any other version of its series. A file is only ever complete: it is
written under a temporary name and renamed when the last chunk is in (an interrupted replay leaves none).
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar, cast

import pyarrow as pa

from ...core.events import EventBatch
from .stream_reader import COLS, Source, _raw_batch

FORMAT = 1  # bump when the cached events' layout or meaning changes
CACHE_DIR = "_event_cache"  # default place, under the store root (Store only lists kind/venue/*.parquet)
COMPRESSIONS = (None, "lz4")
T = TypeVar("T")
_SCHEMA = pa.schema([("ts", pa.int64()), ("ts_venue", pa.int64()), ("venue", pa.int8()), ("kind", pa.int8()),
                     ("side", pa.int8()), ("px", pa.float64()), ("qty", pa.float64())])


def _digest(obj: object) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def sources_key(sources: Sequence[Source]) -> str:
    """The route's market series as they are on disk now: any rewrite changes it."""
    items = []
    for s in sources:
        st = os.stat(s.path)
        items.append([str(Path(s.path).resolve()), s.kind, s.venue_code, s.rank, st.st_size, st.st_mtime_ns,
                      st.st_ino])
    return _digest([FORMAT, items])


def cache_path(cache_dir: Path, route: str, sources: Sequence[Source], start: int | None, end: int | None,
               compression: str | None = None) -> Path:
    """The file holding the route's merged market events for this window, from the series as they are now."""
    if compression not in COMPRESSIONS:
        raise ValueError(f"event cache compression {compression!r}: one of {COMPRESSIONS}")
    win = _digest([start, end, compression])
    return Path(cache_dir) / f"{route}.{sources_key(sources)}.{win}.arrow"


def _stale(path: Path) -> list[Path]:
    """The route's cache files made from another version of its series."""
    route, src = path.name.split(".")[:2]
    return [p for ext in ("arrow", "json") for p in path.parent.glob(f"{route}.*.{ext}") if p.name.split(".")[1] != src]


def memo(cache_dir: Path, route: str, sources: Sequence[Source], name: str, compute: Callable[[], T]) -> T:
    """A small JSON value derived from the route's series (what loading a route reads besides its events: its
    first market time, its traded value), kept beside its cache files under the same invalidation."""
    path = Path(cache_dir) / f"{route}.{sources_key(sources)}.json"
    data = json.loads(path.read_text()) if path.is_file() else {}
    if name not in data:
        data[name] = compute()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        tmp.write_text(json.dumps(data))
        for p in _stale(path):
            p.unlink(missing_ok=True)
        os.replace(tmp, path)
    return cast(T, data[name])


def tee(path: Path, chunks: Iterator[EventBatch], compression: str | None = None) -> Iterator[EventBatch]:
    """``chunks`` passed through unchanged while written to ``path``; the file appears only once all are in."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    opts = pa.ipc.IpcWriteOptions(compression=compression)
    done = False
    try:
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, _SCHEMA, options=opts) as writer:
            for b in chunks:
                writer.write_batch(pa.RecordBatch.from_arrays([getattr(b, c) for c in COLS], schema=_SCHEMA))
                yield b
        done = True
    finally:
        if done:
            for p in _stale(path):
                p.unlink(missing_ok=True)
            os.replace(tmp, path)
        else:
            tmp.unlink(missing_ok=True)


REMAP_BYTES = 256 << 20  # a fresh mapping every this many bytes read: the old one goes with its last chunk


def read(path: Path) -> Iterator[EventBatch]:
    """The cached chunks, in order. Memory-mapped (uncompressed columns are views of the file, no copy); the
    file is mapped again every ``REMAP_BYTES`` so that pages already replayed leave the process (RSS stays
    bounded by that, not by the route's length)."""
    reader, mapped = None, 0
    i = n = 0
    while reader is None or i < n:
        if reader is None or mapped >= REMAP_BYTES:
            reader, mapped = pa.ipc.open_file(pa.memory_map(str(path), "r")), 0
            n = reader.num_record_batches
            if i >= n:
                return
        rb = reader.get_batch(i)
        mapped += rb.nbytes
        i += 1
        yield _raw_batch({c: rb.column(j).to_numpy() for j, c in enumerate(COLS)})
