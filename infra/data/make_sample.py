"""Build the real sample (``sample_data/``'s files) from the shared data set, deterministically.

    python -m arbitrage_lite.infra.data.make_sample SHARED_DATA_DIR OUT_DIR

Only the MIT-licensed L2 file ships; ``sample.ensure_sample`` runs this wherever the rest is needed.

Rows are copied unchanged (same header, same layout) so the importer reads the samples like the
originals; gzip members are written with mtime=0 and no file name, so reruns are byte-identical.
"""

from __future__ import annotations

import argparse
import gzip
import io
import shutil
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

JOINED = "aligned_btc_1m/DERIVED_joined_upbit_binance_BTC_1m.csv.gz"
FX_DAILY = "daily_upbit_binance_fx/usdkrw_daily_sj31134.csv"
KIMPAI = "snapshots_multi_symbol_kimpai/prices_snapshots_UPBIT_BINANCE_BINANCEFUT_BITHUMB.csv.gz"
KIMPAI_FX = "snapshots_multi_symbol_kimpai/usdkrw_snapshots.csv.gz"
L2 = "binance_spot_l2_raw/binance_spot_btcusdt_20240808_hftbacktest.gz"
OB_UPBIT = "orderbook_snapshots/upbit_KRW-BTC_ob20_20250824T06_vsun410.jsonl.gz"
OB_BINANCE = "orderbook_snapshots/binance_BTCUSDT_ob20_20250824T06_vsun410.jsonl.gz"

# Winter 2024-12: the block covering the martial-law night in Korea (2024-12-03 15:08-18:27 UTC, when
# Upbit traded up to ~5% below Binance x FX) and the blocks either side of it.
WINTER_BLOCKS = ("2024-12-02 22:28:00", "2024-12-03 15:08:00", "2024-12-04 07:48:00")
FIRST_BLOCKS = 3
BLOCK_BREAK_MIN = 60  # a silence longer than this starts a new collector block
KIMPAI_HOURS = 36
KIMPAI_TOP = 25
L2_LINES = 20_000


def _gz(path: Path, data: bytes) -> None:
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
        gz.write(data)
    path.write_bytes(buf.getvalue())


def _lines(path: Path) -> list[bytes]:
    raw = path.read_bytes()
    data = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    return data.splitlines(keepends=True)


def _minute(ts: bytes) -> int:
    return int(np.datetime64(ts.decode().replace(" ", "T"), "m").astype(np.int64))


def joined_sample(shared: Path) -> tuple[bytes, list[tuple[str, str, int]]]:
    """First ``FIRST_BLOCKS`` blocks plus the ``WINTER_BLOCKS`` of the joined BTC file."""
    header, *rows = _lines(shared / JOINED)
    blocks: list[list[bytes]] = []
    prev = None
    for row in rows:
        m = _minute(row[:19])
        if prev is None or m - prev > BLOCK_BREAK_MIN:
            blocks.append([])
        blocks[-1].append(row)
        prev = m
    chosen = blocks[:FIRST_BLOCKS] + [b for b in blocks if b[0][:19].decode() in WINTER_BLOCKS]
    if len(chosen) != FIRST_BLOCKS + len(WINTER_BLOCKS):
        raise SystemExit(f"expected {FIRST_BLOCKS + len(WINTER_BLOCKS)} blocks, found {len(chosen)}")
    spans = [(b[0][:19].decode(), b[-1][:19].decode(), len(b)) for b in chosen]
    return header + b"".join(r for b in chosen for r in b), spans


def fx_sample(shared: Path, spans: list[tuple[str, str, int]]) -> bytes:
    """Daily FX rows for every date from the first to the last day of each cluster of blocks."""
    header, *rows = _lines(shared / FX_DAILY)
    ranges = [(spans[0][0][:10], spans[FIRST_BLOCKS - 1][1][:10]), (spans[FIRST_BLOCKS][0][:10], spans[-1][1][:10])]
    keep = [r for r in rows if any(lo <= r[:10].decode() <= hi for lo, hi in ranges)]
    return header + b"".join(keep)


def kimpai_sample(shared: Path) -> tuple[bytes, list[str], int, int]:
    """UPBIT/KRW + BINANCE/USDT rows of the top bases by Upbit traded value, plus UPBIT USDT/KRW.

    The source has no quoted fields and no embedded newlines, so CSV row i is text line i + 1.
    """
    header, *rows = _lines(shared / KIMPAI)
    t = pacsv.read_csv(pa.BufferReader(header + b"".join(rows)), convert_options=pacsv.ConvertOptions(
        include_columns=["commit_time_utc_s", "exchange", "base", "quote", "volume24hKrw"],
        column_types={"volume24hKrw": pa.float64()}))
    if t.num_rows != len(rows):
        raise SystemExit("kimpai file: CSV rows and text lines do not line up")
    commit = t["commit_time_utc_s"].to_numpy()
    t0 = int(commit.min())
    idx = np.flatnonzero(commit <= t0 + KIMPAI_HOURS * 3600)  # the window (rows are in commit order)
    w = t.take(pa.array(idx))
    venue = pc.binary_join_element_wise(w["exchange"], w["quote"], "/").to_numpy(zero_copy_only=False)
    base = w["base"].to_numpy(zero_copy_only=False)
    up, bn = venue == "UPBIT/KRW", venue == "BINANCE/USDT"
    common = sorted((set(base[up]) & set(base[bn])) - {"USDT"})
    stats = w.filter(pa.array(up)).group_by("base").aggregate([("volume24hKrw", "mean")])
    mean_vol = {b: v for b, v in zip(stats["base"].to_pylist(), stats["volume24hKrw_mean"].to_pylist(),
                                     strict=True) if v is not None}
    if any(b in mean_vol for b in common):  # rank by mean Upbit 24h traded value (KRW)
        ranked = sorted(common, key=lambda b: (-mean_vol.get(b, -1.0), b))
    else:  # no traded value recorded: the most frequently present bases
        n_up, n_bn = Counter(base[up].tolist()), Counter(base[bn].tolist())
        ranked = sorted(common, key=lambda b: (-min(n_up[b], n_bn[b]), b))
    top = ranked[:KIMPAI_TOP]
    keep = (up & np.isin(base, [*top, "USDT"])) | (bn & np.isin(base, top))
    out = header + b"".join(rows[i] for i in idx[keep])
    return out, top, t0, int(commit[idx].max())


def kimpai_fx_sample(shared: Path, end: int) -> bytes:
    header, *rows = _lines(shared / KIMPAI_FX)
    return header + b"".join(r for r in rows if int(r.split(b",")[1]) <= end)


def _utc(seconds: int) -> str:
    return str(np.datetime64(seconds, "s")).replace("T", " ")


README = """# sample_data: small real extracts of ../shared/data

**What ships, and why.** Only `binance_btcusdt_l2_sample.gz` (hftbacktest, MIT) and this README are in the
repository and the wheel. The source repositories of the other files have no LICENSE; the data MANIFEST says
they are test fixtures only and must not be redistributed, so they are not shipped. They are rebuilt, byte for
byte, from a local copy of the shared data set wherever they are needed: `arbitrage-lite demo` builds them
into `<out>/sample_data`, the tests into `.cache/sample_data` (`infra/data/sample.py` finds the data set:
`--data DIR`, `$ARBITRAGE_LITE_DATA`, or `../shared/data`). By hand:
`python -m arbitrage_lite.infra.data.make_sample SHARED_DATA_DIR OUT_DIR` (deterministic).
Market data belongs to the exchanges (Upbit, Binance terms of use).

Rows are copied unchanged in the original layouts, so `run_import` reads them like the originals.
All times UTC.

{table}

Kimpai bases in the sample: {bases}.

The 2024-12 blocks: 2024-12-03 15:08-18:27 UTC is the night of the Korean martial-law declaration, when Upbit
BTC traded up to ~5% below Binance BTC x daily USD/KRW (Upbit/Binance close ratio 1332 vs FX 1402); the
blocks before and after it are included for contrast. The first 3 blocks are the start of the joined file.

The L2 file's local clock (`<local_ns>`) runs about 1.27 s behind Binance's event/trade times.

Import everything into a store (the joined file needs the coin; a symbol given for the kimpai file
would keep only that base, so import it separately):

    from pathlib import Path
    from arbitrage_lite.infra.data.importer import format_import_results, run_import
    d, store = Path("out/demo/sample_data"), Path("store")  # a built sample
    results = run_import([d / "btc_1m_joined_sample.csv.gz"], store, symbol="BTC")
    results += run_import(sorted(p for p in d.iterdir() if p.name not in
                                 ("README.md", "btc_1m_joined_sample.csv.gz")), store)
    print(format_import_results(results))
"""


TABLE_ROWS = (
    ("file", "source (repo @ commit : path)", "license", "shipped", "rows taken", "time range"),
    ("---", "---", "---", "---", "---", "---"),
    ("btc_1m_joined_sample.csv.gz",
     "DERIVED inner join of vsun410/kimchi-premium-arbitrage @ a2bf6eb8 : "
     "data/historical/full/upbit_BTC_KRW_20250824_181219.csv.gz and hwkimv/crypto-data-pipeline @ cb9c8573 : "
     "data/csv/BTC_USDT_*_1m.csv (shared file `{joined}`)",
     "none (test fixture only)", "no, built",
     "header + the first 3 collector blocks and 3 blocks of 2024-12 ({joined_rows} rows): {joined_spans}",
     "{joined_range}"),
    ("usdkrw_daily_sample.csv", "sj31134/whale-arbitrage @ dd6c13b2 : data/exchange_rate.csv",
     "none (test fixture only)", "no, built",
     "header + the {fx_rows} daily rows covering the dates of those blocks; the source forward-fills gaps",
     "{fx_range}"),
    ("kimpai_snapshots_sample.csv.gz",
     "minwoodior-lang/kimpai-bot @ 103e08be : data/prices.json history, flattened (shared file `{kimpai}`)",
     "none (test fixture only)", "no, built",
     "header + {kimpai_rows} rows: UPBIT/KRW and BINANCE/USDT of the {top_n} bases trading on both with the "
     "highest mean Upbit `volume24hKrw` in the window, plus UPBIT USDT/KRW; first {hours} h of commits",
     "{kimpai_range}"),
    ("kimpai_usdkrw_sample.csv.gz",
     "same repo : data/premiumTable.json history, `usdKrw` (shared file `{kimpai_fx}`)",
     "none (test fixture only)", "no, built",
     "header + {kfx_rows} rows up to the end of the snapshot window (early rows are empty in the source)",
     "{kfx_range}"),
    ("binance_btcusdt_l2_sample.gz", "nkaz001/hftbacktest @ 5f3ec40b : examples/spot/btcusdt_20240808.gz", "MIT", "yes",
     "first {l2_lines} lines (`<local_ns> <json>`; line 8 is a REST depth snapshot with lastUpdateId)",
     "{l2_range}"),
    ("upbit_KRW-BTC_ob20_sample.jsonl.gz",
     "vsun410/kimchi-premium-arbitrage @ a2bf6eb8 : data/orderbook/20250824/upbit_BTC_KRW_06.jsonl.gz",
     "none (test fixture only)", "no, built", "byte copy, 8 top-20 snapshots", "2025-08-24 06:03:18 to 06:05:50"),
    ("binance_BTCUSDT_ob20_sample.jsonl.gz", "same repo : data/orderbook/20250824/binance_BTC_USDT_06.jsonl.gz",
     "none (test fixture only)", "no, built", "byte copy, 3 top-20 snapshots", "2025-08-24 06:05:21 to 06:05:40"),
)


def make_samples(shared: Path, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    joined, spans = joined_sample(shared)
    _gz(out / "btc_1m_joined_sample.csv.gz", joined)
    fx = fx_sample(shared, spans)
    (out / "usdkrw_daily_sample.csv").write_bytes(fx)
    kimpai, bases, t0, t1 = kimpai_sample(shared)
    _gz(out / "kimpai_snapshots_sample.csv.gz", kimpai)
    kfx = kimpai_fx_sample(shared, t1)
    _gz(out / "kimpai_usdkrw_sample.csv.gz", kfx)
    l2 = _lines(shared / L2)[:L2_LINES]
    _gz(out / "binance_btcusdt_l2_sample.gz", b"".join(l2))
    shutil.copyfile(shared / OB_UPBIT, out / "upbit_KRW-BTC_ob20_sample.jsonl.gz")
    shutil.copyfile(shared / OB_BINANCE, out / "binance_BTCUSDT_ob20_sample.jsonl.gz")
    fx_rows = fx.splitlines()[1:]
    kfx_rows = kfx.splitlines()[1:]
    l2_ns = [int(line.split(b" ", 1)[0]) // 10**9 for line in (l2[0], l2[-1])]
    fields = dict(
        joined=JOINED, joined_rows=sum(s[2] for s in spans),
        joined_spans="; ".join(f"{a[:16]} to {b[:16]} ({n})" for a, b, n in spans),
        joined_range=f"{spans[0][0]} to {spans[-1][1]}", fx_rows=len(fx_rows),
        fx_range=f"{fx_rows[0][:10].decode()} to {fx_rows[-1][:10].decode()}",
        kimpai=KIMPAI, kimpai_rows=len(kimpai.splitlines()) - 1, top_n=KIMPAI_TOP, hours=KIMPAI_HOURS,
        kimpai_range=f"commits {_utc(t0)} to {_utc(t1)}", kimpai_fx=KIMPAI_FX, kfx_rows=len(kfx_rows),
        kfx_range=f"commits {_utc(int(kfx_rows[0].split(b',')[1]))} to {_utc(int(kfx_rows[-1].split(b',')[1]))}",
        l2_lines=L2_LINES, l2_range=f"{_utc(l2_ns[0])} to {_utc(l2_ns[1])} (local clock)",
    )
    table = "\n".join("| " + " | ".join(cell.format(**fields) for cell in row) + " |" for row in TABLE_ROWS)
    (out / "README.md").write_text(README.format(table=table, bases=", ".join(bases)))
    return sorted(out.iterdir())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("shared", type=Path, help="the shared data directory (the one holding MANIFEST.md)")
    p.add_argument("out", type=Path, help="output directory, e.g. out/sample_data")
    a = p.parse_args(argv)
    for f in make_samples(a.shared, a.out):
        print(f"{f.stat().st_size:>9}  {f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
