"""Streaming replay throughput: routes replayed from the Parquet store in chunks (decode included), bounded RSS.

    python benchmarks/streaming_replay.py --store /tmp/bench_store [--symbols 50] [--days 30] [--chunk-rows N]
        [--phases read_ahead,cache_write,cache_read,cache_read_ahead] [--cache-compression none|lz4]

1. The store: 50 symbols x 30 days of Binance top-10 diffs + trades and Upbit top-10 snapshots by default,
   synthetic, calibrated on the real L2 sample (``_stream_store``), generated once in a subprocess and cached
   under a content key (generation is not timed with the replay, and its memory is not this process's).
2. Streamed, decode included: every route through ``load_route_stream`` + ``run_route_stream`` (Parquet read,
   event building, the venues merged on the fly, the kernel), one core; peak RSS right after it.
3. ``--phases`` (default all), the whole store again, each giving the same counters: ``read_ahead`` (each series
   decoded on its own thread, merge and kernel on the main one: two cores), ``cache_write`` (the first replay
   writing the per-route event cache, ``--cache-compression none|lz4``), ``cache_read`` (warm: from the cache,
   no decode, no merge, one thread), ``cache_read_ahead`` (from the cache, read on a second thread).
4. On the first ``--subset`` routes: the kernel alone over the same chunks pre-decoded, and the in-memory
   kernel over the same events as one batch (what ``replay_throughput`` times); both must give the streamed
   counters. Ratios to the in-memory kernel are measured here, in this run.
Last line: one JSON object (``events``, ``seconds``, ``events_per_s``, ``peak_rss_mb``, and the rest).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from arbitrage_lite.core.config import EngineConfig
from arbitrage_lite.core.events import EventBatch
from arbitrage_lite.core.kernel import N_COUNTERS
from arbitrage_lite.core.replay import kernel_params, step, warm_up
from arbitrage_lite.core.route_state import RouteState
from arbitrage_lite.infra.data.stream_reader import DEFAULT_CHUNK_ROWS
from arbitrage_lite.scenarios.market_data import RouteData
from arbitrage_lite.scenarios.stream_replay import (
    RouteStream,
    StreamCursor,
    StreamStats,
    load_route_stream,
    run_route_stream,
)
from arbitrage_lite.scenarios.universe import Universe

TARGET_EVENTS, TARGET_S, TARGET_RSS_MB = 2_300_000_000, 120.0, 2048.0


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_store(args: argparse.Namespace) -> tuple[Path, dict[str, object]]:
    """Calibrate on the real L2 sample and write (or reuse) the store: run in a child process."""
    import _stream_store
    import replay_throughput as rt

    files, upbit = rt.find_inputs(args.data_dir, [])
    l2 = rt.parse_binance_raw(files)
    shape = rt.measure_shape(l2, rt.sync_to_snapshot(l2), upbit)
    return _stream_store.generate(args.store, shape, args.symbols, args.days, args.seed, float(l2.k_bid[0]))


def bench_config() -> EngineConfig:
    import replay_throughput as rt

    return rt.bench_config()


def route_data(path: Path, base: str, cfg: EngineConfig, chunk_rows: int,
               **stream: Any) -> tuple[RouteData, RouteStream]:
    data = load_route_stream(path, base, cfg.costs, None, None, Universe((base,), "the route alone"),
                             chunk_rows=chunk_rows, **stream)
    assert data.stream is not None
    return data, data.stream


def stream_all(path: Path, bases: list[str], cfg: EngineConfig, chunk_rows: int,
               **stream: Any) -> tuple[int, float, float, dict[str, dict[str, int]]]:
    """Every route streamed, decode included; (events, wall seconds, CPU seconds, counters of each route).
    ``stream``: the event cache and read-ahead options of ``load_route_stream``."""
    events = 0
    counters: dict[str, dict[str, int]] = {}
    c0 = time.process_time()
    t0 = time.perf_counter()
    for b in bases:
        data, plan = route_data(path, b, cfg, chunk_rows, **stream)
        stats = StreamStats()
        res = run_route_stream(b, plan, cfg, data.binance, stats)
        events += stats.events
        counters[b] = res.counters
    return events, time.perf_counter() - t0, time.process_time() - c0, counters


def subset(path: Path, bases: list[str], cfg: EngineConfig, chunk_rows: int,
           counters: dict[str, dict[str, int]]) -> dict[str, float]:
    """Kernel-only on pre-decoded chunks, and the in-memory kernel on one batch, route by route."""
    n, t_chunks, t_mem, t_decode = 0, 0.0, 0.0, 0.0
    for b in bases:
        data, plan = route_data(path, b, cfg, chunk_rows)
        t0 = time.perf_counter()
        chunks = list(plan.chunks())
        t_decode += time.perf_counter() - t0
        p = kernel_params(cfg, data.binance)
        state = RouteState.new(N_COUNTERS)
        t0 = time.perf_counter()
        StreamCursor(iter(chunks)).run(state, p)
        t_chunks += time.perf_counter() - t0
        got = dict(zip(counters[b], state.counters.tolist(), strict=True))
        whole = EventBatch.concat_sorted(chunks)
        del chunks
        state2 = RouteState.new(N_COUNTERS, series_hint=int(got["decisions"]) + 16)
        t0 = time.perf_counter()
        step(state2, whole, 0, len(whole), True, True, p)
        t_mem += time.perf_counter() - t0
        if got != counters[b] or not np.array_equal(state.counters, state2.counters):
            raise AssertionError(f"{b}: kernel-only / in-memory counters differ from the streamed run")
        n += len(whole)
        del whole
    return {"events": n, "kernel_chunks_s": t_chunks, "in_memory_s": t_mem, "decode_merge_s": t_decode}


PHASES = ("read_ahead", "cache_write", "cache_read", "cache_read_ahead")


def run_phases(args: argparse.Namespace, path: Path, bases: list[str], cfg: EngineConfig,
               counters: dict[str, dict[str, int]], events: int) -> dict[str, dict[str, float]]:
    """The whole store again: read-ahead on a second thread; writing the event cache (cold, first replay);
    from the cache (warm); from the cache with read-ahead. Each must give the plain streamed counters."""
    cache_dir = args.cache_dir or path / "_event_cache"
    comp = None if args.cache_compression == "none" else args.cache_compression
    opts = {"read_ahead": {"read_ahead": True}, "cache_write": {"cache_dir": cache_dir, "cache_compression": comp},
            "cache_read": {"cache_dir": cache_dir, "cache_compression": comp},
            "cache_read_ahead": {"cache_dir": cache_dir, "cache_compression": comp, "read_ahead": True}}
    out: dict[str, dict[str, float]] = {}
    for name in [p for p in args.phases.split(",") if p]:
        if name == "cache_write" and cache_dir.is_dir():
            for f in cache_dir.glob("*.arrow"):
                f.unlink()
        n, secs, cpu, got = stream_all(path, bases, cfg, args.chunk_rows, **opts[name])
        if got != counters or n != events:
            raise AssertionError(f"{name}: counters differ from the plain streamed run")
        out[name] = {"events_per_s": n / secs, "events_per_cpu_s": n / cpu, "seconds": secs, "cpu_seconds": cpu,
                     "peak_rss_mb": rss_mb()}
        size = sum(f.stat().st_size for f in cache_dir.glob("*.arrow")) if cache_dir.is_dir() else 0
        print(f"{name}: {n / secs / 1e6:.2f} M events/s wall ({secs:.1f} s), {n / cpu / 1e6:.2f} M per CPU-second "
              f"(CPU {cpu:.1f} s, all threads); peak RSS so far {rss_mb():,.0f} MB"
              + (f"; cache {size / 1e9:.2f} GB ({comp or 'uncompressed'})" if name.startswith("cache") else ""))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--store", type=Path, required=True, help="directory for the generated store (cached)")
    ap.add_argument("--symbols", type=int, default=50)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--chunk-rows", type=int, default=DEFAULT_CHUNK_ROWS, help="rows read per series per chunk")
    ap.add_argument("--subset", type=int, default=3, help="routes for the kernel-only / in-memory comparison")
    ap.add_argument("--phases", default=",".join(PHASES), help=f"after the plain streamed run: any of {PHASES}")
    ap.add_argument("--cache-dir", type=Path, default=None, help="event cache (default: <store>/_event_cache)")
    ap.add_argument("--cache-compression", choices=("none", "lz4"), default="none")
    ap.add_argument("--seed", type=int, default=20240808)
    ap.add_argument("--data-dir", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    ap.add_argument("--generate-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.generate_only:
        path, info = make_store(args)
        print(json.dumps({"path": str(path), **info}))
        return 0
    cmd = [sys.executable, str(Path(__file__).resolve()), "--generate-only", *(argv or sys.argv[1:])]
    gen = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
    path = Path(gen["path"])
    scaled = gen["symbols"] * gen["days"] < 50 * 30
    print(f"store {path}: {gen['symbols']} symbols x {gen['days']} days, {gen['rows']:,} rows, "
          f"{gen['bytes'] / 1e9:.2f} GB on disk, generated in {gen['generate_s']} s"
          f"{' (cached)' if gen['cached'] else ''} (not timed below)"
          f"{'  [SCALED DOWN from 50 x 30]' if scaled else ''}")
    warm_up()
    import _stream_store

    cfg = bench_config()
    bases = [_stream_store.symbol_name(k) for k in range(gen["symbols"])]
    next(route_data(path, bases[0], cfg, 1000)[1].chunks())  # load the compiled merge before timing
    events, secs, cpu, counters = stream_all(path, bases, cfg, args.chunk_rows)
    peak = rss_mb()
    rate = events / secs
    print(f"streamed, decode included: {events:,} events in {secs:.1f} s = {rate / 1e6:.2f} M events/s on one core;"
          f" CPU {cpu:.1f} s = {events / cpu / 1e6:.2f} M events per CPU-second (the machine is shared); "
          f"peak RSS {peak:,.0f} MB (chunk {args.chunk_rows:,} rows per series)")
    phases = run_phases(args, path, bases, cfg, counters, events)
    k_rate = m_rate = float("nan")
    if args.subset > 0:  # the in-memory figure holds a whole route: keep the subset's routes small enough
        sub = subset(path, bases[:args.subset], cfg, args.chunk_rows, counters)
        k_rate, m_rate = sub["events"] / sub["kernel_chunks_s"], sub["events"] / sub["in_memory_s"]
        s_rate = sub["events"] / (sub["kernel_chunks_s"] + sub["decode_merge_s"])
        print(f"subset ({args.subset} routes, {sub['events']:,} events): kernel on pre-decoded chunks "
              f"{k_rate / 1e6:.2f} M/s, in-memory kernel (one batch) {m_rate / 1e6:.2f} M/s, read+decode+merge alone "
              f"{sub['events'] / sub['decode_merge_s'] / 1e6:.2f} M/s")
        print(f"ratios to the in-memory kernel: streamed with decode {rate / m_rate:.2f} (whole store), "
              f"{s_rate / m_rate:.2f} (subset); kernel-only chunks {k_rate / m_rate:.2f}")
    trips = sum(c["closed"] for c in counters.values())
    print(f"strategy: {trips} closed trips, {sum(c['decisions'] for c in counters.values()):,} decisions")
    t_target = TARGET_EVENTS / rate
    label = " -- EXTRAPOLATED from the scaled store" if scaled else ""
    print(f"target 2.3 G events < {TARGET_S:.0f} s: at this rate {t_target:.0f} s "
          f"({'met' if t_target < TARGET_S else f'{t_target / TARGET_S:.1f}x over'}; needs "
          f"{TARGET_EVENTS / TARGET_S / 1e6:.1f} M events/s){label}")
    has = args.subset > 0
    print(json.dumps({"events": events, "seconds": round(secs, 3), "events_per_s": round(rate),
                      "peak_rss_mb": round(peak), "cpu_seconds": round(cpu, 3), "symbols": gen["symbols"],
                      "days": gen["days"], "scaled": scaled, "chunk_rows": args.chunk_rows,
                      "kernel_only_events_per_s": round(k_rate) if has else None,
                      "in_memory_kernel_events_per_s": round(m_rate) if has else None,
                      "ratio_to_in_memory": round(rate / m_rate, 3) if has else None,
                      "extrapolated_2_3g_s": round(t_target, 1),
                      **{f"{k}_{m}": round(v) if m.startswith("events") else round(v, 3)
                         for k, ph in phases.items() for m, v in ph.items()}}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
