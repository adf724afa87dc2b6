"""How wrong is the fill model? Scored on real Binance BTCUSDT L2 (scenarios.fill_score).

    python benchmarks/fill_model_score.py [--data FILE ...] [--decisions N] [--warmup-s S]

Default data: the full ~11 minutes in ../shared/data/binance_spot_l2_raw (depth@100ms diffs, no REST
snapshot: the book is built up from diffs, hence the 30 s warm-up), else the bundled 3-minute sample.
Prints one table row per model, order size and latency, then one JSON line with every figure.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from arbitrage_lite.scenarios.fill_score import score_files

REPO = Path(__file__).resolve().parent.parent
FULL = sorted((REPO.parent / "shared" / "data" / "binance_spot_l2_raw").glob("binance_spot_btcusdt_*.gz"))
SAMPLE = REPO / "sample_data" / "binance_btcusdt_l2_sample.gz"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, nargs="*", default=FULL or [SAMPLE])
    ap.add_argument("--decisions", type=int, default=1000, help="decision times, evenly spread")
    ap.add_argument("--warmup-s", type=float, default=30.0, help="book build-up time before the first decision")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    books, rows = score_files(list(args.data), args.warmup_s, args.decisions)
    span_s = (int(books.ts[-1]) - int(books.ts[0])) / 1e9
    bids, asks = (int(np.median(books.n[:, s])) for s in (0, 1))
    print(f"data: {', '.join(p.name for p in args.data)}: {len(books.ts)} books over {span_s:.0f} s "
          f"(after a {args.warmup_s:g} s warm-up), levels per side tracked: median {bids} bids / {asks} asks")
    print("error = side * (real fill - model's expected fill) / expected, bps (> 0: the real fill was worse)")
    print(f"{'model':6} {'size USDT':>10} {'latency ms':>10} {'n':>6} {'mean':>8} {'mean |e|':>9} {'p95 |e|':>8}")
    for r in rows:
        print(f"{r.model:6} {r.size_usdt:>10,.0f} {r.latency_ms:>10g} {r.n:>6} {r.mean_bps:>8.3f} "
              f"{r.mean_abs_bps:>9.3f} {r.p95_abs_bps:>8.3f}")
    print(json.dumps({"benchmark": "fill_model_score", "data": [p.name for p in args.data], "books": len(books.ts),
                      "span_s": round(span_s, 1), "seconds": round(time.perf_counter() - t0, 1),
                      "rows": [{"model": r.model, "size_usdt": r.size_usdt, "latency_ms": r.latency_ms, "n": r.n,
                                "mean_bps": round(r.mean_bps, 4), "mean_abs_bps": round(r.mean_abs_bps, 4),
                                "p95_abs_bps": round(r.p95_abs_bps, 4)} for r in rows]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
