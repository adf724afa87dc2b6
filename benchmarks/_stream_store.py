"""A synthetic multi-symbol, multi-day L2 store for the streaming benchmark, written once (cached by content key).

Per symbol and day: Binance depth diffs of the top 10 grid levels plus trades, and Upbit top-10 snapshots, all
bootstrapped from the real L2 sample (``_synthetic.StreamShape``: diff spacing, levels per diff, mid steps in
ticks, level distances and sizes, trades per diff, real Upbit sizes/gaps/spreads). The real BTC stream runs
~40 M events a day; the issue's target (50 symbols x 30 days = 2.3 G events) is ~1.5 M per symbol-day, so each
symbol's diff spacing is the real one stretched by an activity factor (symbols ranked like a Zipf law, BTC
busiest), the factors chosen so the store averages ``events_per_symbol_day``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import time
from pathlib import Path

import _synthetic as synth
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from arbitrage_lite.infra.data.store import SCHEMAS, Store

DAY_NS = 86_400_000_000_000
T0 = 1_723_075_200_000_000_000  # 2024-08-08 00:00 UTC
FX_KRW_PER_USD = 1376.4
TOP_LEVELS = 10
EVENTS_PER_SYMBOL_DAY = 2_300_000_000 / (50 * 30)  # the 2.3 G events over 50 symbols x 30 days
FORMAT = 1  # bump when the generated data changes


def top_shape(shape: synth.StreamShape) -> synth.StreamShape:
    """The real shape cut to the top ``TOP_LEVELS`` grid levels: deeper rows dropped, levels per diff scaled."""
    keep = shape.row_dist_ticks <= TOP_LEVELS * synth.BINANCE_GRID_TICKS
    frac = float(keep.mean())
    return dataclasses.replace(shape, row_side=shape.row_side[keep], row_dist_ticks=shape.row_dist_ticks[keep],
                               row_qty=shape.row_qty[keep],
                               levels_per_diff=np.maximum(np.round(shape.levels_per_diff * frac), 1).astype(np.int64))


def per_diff_events(shape: synth.StreamShape) -> float:
    """Events one Binance diff brings with it: its levels, BOOK_END, trades, one Upbit top-10 snapshot."""
    return float(shape.levels_per_diff.mean() + 1 + shape.trades_per_diff.mean() + 2 * TOP_LEVELS + 2)


def activity(n_symbols: int) -> np.ndarray:
    """Relative event rates of the symbols (Zipf, exponent 0.8), mean 1."""
    w = 1.0 / np.arange(1, n_symbols + 1) ** 0.8
    return w / w.mean()


def store_key(shape: synth.StreamShape, symbols: int, days: int, seed: int) -> str:
    h = hashlib.sha256(json.dumps([FORMAT, symbols, days, seed, EVENTS_PER_SYMBOL_DAY]).encode())
    for a in dataclasses.astuple(shape):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def symbol_name(k: int) -> str:
    return "BTC" if k == 0 else f"S{k:03d}"


def _day(shape: synth.StreamShape, day: int, bid0: int, rate: float, rng: np.random.Generator,
         uid0: int) -> tuple[dict[str, pa.Table], int, int]:
    """One symbol-day: Binance diffs + trades, Upbit snapshots; returns the tables, the last bid and next id."""
    n_diffs = max(int(EVENTS_PER_SYMBOL_DAY * rate / per_diff_events(shape)), 16)
    stretch = DAY_NS / (n_diffs * float(shape.diff_dt_ns.mean()))
    sh = dataclasses.replace(shape, diff_dt_ns=(shape.diff_dt_ns * stretch).astype(np.int64))
    t0 = T0 + day * DAY_NS
    ts, diff_id, side, price, qty, bid, ask = synth._binance_diff_rows(n_diffs, t0, bid0, sh, rng)
    inside = ts < t0 + DAY_NS
    n_in = int(inside.sum())
    ts, bid, ask = ts[:n_in], bid[:n_in], ask[:n_in]
    rows = diff_id < n_in
    diff_id, side, price, qty = diff_id[rows], side[rows], price[rows], qty[rows]
    row_ts = ts[diff_id]
    uid = uid0 + diff_id
    tps = synth.BINANCE_TICKS_PER_USDT
    diffs = pa.table({"ts": row_ts, "ts_local": row_ts, "first_update_id": uid, "last_update_id": uid,
                      "side": side, "price": price / tps, "qty": qty}, schema=SCHEMAS["depth_diff"])
    n_tr = rng.choice(sh.trades_per_diff, n_in)
    grp = np.repeat(np.arange(n_in), n_tr)
    gap = np.r_[np.diff(ts), 100_000_000][grp]
    t_ts = np.sort(ts[grp] + (rng.random(grp.shape[0]) * gap).astype(np.int64))
    agg = np.where(rng.random(grp.shape[0]) < 0.5, 1, -1).astype(np.int8)
    trades = pa.table({"ts": t_ts, "ts_local": t_ts, "trade_id": uid0 + np.arange(grp.shape[0]),
                       "price": np.where(agg > 0, ask[grp], bid[grp]) / tps,
                       "qty": rng.choice(sh.trade_qty, grp.shape[0]), "aggressor": agg}, schema=SCHEMAS["trades"])
    u_ts = synth.between(ts, rng)
    mid_krw = (bid + ask) / (2 * tps) * FX_KRW_PER_USD * (1.0 + synth.premium(u_ts, T0))
    u_side, u_px, u_qty = synth.upbit_snapshot_rows(mid_krw, TOP_LEVELS, sh, rng)
    m = u_px.shape[1]
    snap = np.repeat(np.arange(n_in, dtype=np.int64) + uid0, m)
    lv = np.tile(np.r_[np.arange(TOP_LEVELS), np.arange(TOP_LEVELS)].astype(np.int16), n_in)
    tsr = np.repeat(u_ts, m)
    book = pa.table({"ts": tsr, "ts_local": tsr, "snapshot": snap, "side": u_side.ravel(), "level": lv,
                     "price": u_px.ravel(), "qty": u_qty.ravel()}, schema=SCHEMAS["book"])
    return {"depth_diff": diffs, "trades": trades, "book": book}, int(bid[-1]), uid0 + n_in + grp.shape[0]


def generate(root: Path, shape: synth.StreamShape, symbols: int, days: int, seed: int,
             bid0_usdt: float) -> tuple[Path, dict[str, object]]:
    """The store under ``root/<content key>`` (made once; reused while the key matches); its stats."""
    shape = top_shape(shape)
    path = root / store_key(shape, symbols, days, seed)
    stamp = path / "generated.json"
    if stamp.exists():
        return path, {**json.loads(stamp.read_text()), "cached": True}
    if path.exists():
        shutil.rmtree(path)  # an interrupted generation
    st = Store(path)
    t0 = time.perf_counter()
    rows = 0
    rates = activity(symbols)
    for k in range(symbols):
        name = symbol_name(k)
        rng = np.random.default_rng([seed, k])
        series = {("depth_diff", "binance", f"{name}-USDT"), ("trades", "binance", f"{name}-USDT"),
                  ("book", "upbit", f"{name}-KRW")}
        writers = {}
        for kind, venue, sym in series:
            p = st.path(kind, venue, sym)
            p.parent.mkdir(parents=True, exist_ok=True)
            writers[kind] = pq.ParquetWriter(p, SCHEMAS[kind], compression="zstd")
        bid, uid = round(bid0_usdt * synth.BINANCE_TICKS_PER_USDT), 1
        for d in range(days):
            tables, bid, uid = _day(shape, d, bid, float(rates[k]), rng, uid)
            for kind, t in tables.items():
                writers[kind].write_table(t, row_group_size=1 << 20)
                rows += t.num_rows
        for w in writers.values():
            w.close()
    hrs = T0 + np.arange(-1, days * 24 + 1, dtype=np.int64) * 3_600_000_000_000
    st.write("fx", "ref", "USD-KRW", pa.table({"ts": hrs, "ts_local": hrs, "rate": np.full(hrs.shape[0],
                                                                                          FX_KRW_PER_USD)}))
    info: dict[str, object] = {"symbols": symbols, "days": days, "seed": seed, "rows": rows,
                               "generate_s": round(time.perf_counter() - t0, 1),
                               "bytes": sum(f.stat().st_size for f in path.rglob("*.parquet"))}
    stamp.write_text(json.dumps(info))
    return path, {**info, "cached": False}
