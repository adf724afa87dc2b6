"""Data import: layouts, validation, store merge / idempotency, on the bundled real sample."""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from sample_files import SAMPLE, SHIPPED

from arbitrage_lite.infra.data.importer import DataImportError, ImportResult, format_import_results, run_import
from arbitrage_lite.infra.data.layouts import LAYOUTS, LayoutError, detect_layout, iso_to_ns
from arbitrage_lite.infra.data.plausible import count_violations
from arbitrage_lite.infra.data.store import Store

REPO = Path(__file__).resolve().parents[1]
JOINED = SAMPLE / "btc_1m_joined_sample.csv.gz"
FX_DAILY = SAMPLE / "usdkrw_daily_sample.csv"
KIMPAI = SAMPLE / "kimpai_snapshots_sample.csv.gz"
KIMPAI_FX = SAMPLE / "kimpai_usdkrw_sample.csv.gz"
L2 = SHIPPED / "binance_btcusdt_l2_sample.gz"  # the licensed file ships; the rest is built
OB_UPBIT = SAMPLE / "upbit_KRW-BTC_ob20_sample.jsonl.gz"
OB_BINANCE = SAMPLE / "binance_BTCUSDT_ob20_sample.jsonl.gz"
T0 = 1724538480000000000  # 2024-08-24 22:28:00 UTC, first row of the joined file


def _shared() -> Path | None:
    for p in (Path("/work/shared/data"), REPO.parent / "shared" / "data"):
        if (p / "MANIFEST.md").is_file():
            return p
    return None


SHARED = _shared()
needs_shared = pytest.mark.skipif(SHARED is None, reason="../shared/data is not available")
needs_sample = pytest.mark.usefixtures("sample_dir")  # built from the shared data (conftest)


def _lines(path: Path) -> list[str]:
    raw = path.read_bytes()
    data = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    return data.decode().splitlines()


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def _snapshot_files(root: Path, skip_imports: bool = True) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not (skip_imports and "_imports" in p.parts)}


def _one(results: list[ImportResult]) -> ImportResult:
    assert len(results) == 1 and results[0].ok
    return results[0]


# --- layouts on the bundled sample ---------------------------------------------------------------
@needs_sample
def test_joined_sample_gives_two_utc_bar_series(tmp_path: Path) -> None:
    r = _one(run_import([JOINED], tmp_path / "s", symbol="BTC"))
    assert r.layout == "joined_1m"
    assert [(s.venue, s.symbol, s.rows_total) for s in r.series] == [
        ("upbit", "BTC-KRW", 1200), ("binance", "BTC-USDT", 1200)]
    st = Store(tmp_path / "s")
    up, bn = st.read("bars_1m", "upbit", "BTC-KRW"), st.read("bars_1m", "binance", "BTC-USDT")
    assert up["ts"][0].as_py() == T0 == bn["ts"][0].as_py()
    assert up.slice(0, 1).to_pylist()[0] == {"ts": T0, "ts_local": -1, "open": 85533000.0, "high": 85533000.0,
                                             "low": 85530000.0, "close": 85530000.0, "volume": 1.69129818}
    assert bn["open"][0].as_py() == 63778.75 and bn["volume"][0].as_py() == 5.73157
    assert up.schema.field("ts").type == pa.int64()
    gaps = r.report.gaps["bars_1m/upbit/BTC-KRW"]  # 6 blocks of 200 consecutive minutes
    assert gaps.count == 5 and gaps.longest_ns == (98 * 1440 + 11 * 60 + 21) * 60 * 10**9


@needs_sample
def test_joined_without_symbol_is_refused_and_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(DataImportError, match="--symbol") as ei:
        run_import([JOINED], tmp_path / "s")
    assert "joined" in str(ei.value)
    assert not Store(tmp_path / "s").series()


@needs_sample
def test_per_venue_ohlcv_venue_from_name_or_arguments(tmp_path: Path) -> None:
    rows = [line.split(",") for line in _lines(JOINED)[1:21]]
    body = ["timestamp,open,high,low,close,volume"] + [",".join(r[:6]) for r in rows]
    named = _write(tmp_path / "upbit_KRW-BTC_1m_vsun410.csv", body)
    r = _one(run_import([named], tmp_path / "s"))
    assert (r.layout, r.series[0].venue, r.series[0].symbol, r.series[0].rows_total) == (
        "ohlcv_1m", "upbit", "BTC-KRW", 20)
    binance = _write(tmp_path / "BTC_USDT_2024_08_1m.csv", ["timestamp,open,high,low,close,volume"]
                     + [",".join([r[0], *r[6:]]) for r in rows])
    r = _one(run_import([binance], tmp_path / "s"))
    assert (r.series[0].venue, r.series[0].symbol) == ("binance", "BTC-USDT")
    anonymous = _write(tmp_path / "bars.csv", body)
    with pytest.raises(DataImportError, match="--venue") as ei:
        run_import([anonymous], tmp_path / "s2")
    assert "--symbol" in str(ei.value)
    r = _one(run_import([anonymous], tmp_path / "s2", symbol="KRW-BTC", venue="upbit"))
    assert r.series[0].symbol == "BTC-KRW"


@needs_sample
def test_fx_daily_sample(tmp_path: Path) -> None:
    r = _one(run_import([FX_DAILY], tmp_path / "s"))
    fx = Store(tmp_path / "s").read("fx", "ref", "USD-KRW")
    assert r.layout == "fx_daily" and fx.num_rows == 6
    assert fx.slice(0, 1).to_pylist()[0] == {"ts": 1724457600 * 10**9, "ts_local": -1, "rate": 1338.0}
    assert r.report.gaps["fx/ref/USD-KRW"].missing_units == 97  # 2024-08-27 .. 2024-12-01 not in the sample


@needs_sample
def test_kimpai_snapshots_sample(tmp_path: Path) -> None:
    r = _one(run_import([KIMPAI], tmp_path / "s"))
    st = Store(tmp_path / "s")
    series = {(s.kind, s.venue, s.symbol) for s in st.series()}
    assert len(series) == 51 and ("last", "upbit", "USDT-KRW") in series
    assert sum(s.rows_total for s in r.series) == len(_lines(KIMPAI)) - 1 == 7731
    btc = st.read("last", "upbit", "BTC-KRW").slice(0, 1).to_pylist()[0]
    assert (btc["ts"], btc["ts_local"], btc["price"]) == (1764839055246 * 10**6, 1764839057 * 10**9, 138864000.0)
    assert np.isnan(btc["volume24h_krw"])  # empty in the source
    usdt = st.read("last", "upbit", "USDT-KRW")
    assert usdt["price"][0].as_py() == 1488.0
    one = _one(run_import([KIMPAI], tmp_path / "s2", symbol="BTC"))
    assert [(s.venue, s.symbol) for s in one.series] == [("upbit", "BTC-KRW"), ("binance", "BTC-USDT")]
    assert one.report.count("skipped") == 7731 - sum(s.rows_valid for s in one.series)


@needs_sample
def test_kimpai_usdkrw_counts_empty_rows(tmp_path: Path) -> None:
    r = _one(run_import([KIMPAI_FX], tmp_path / "s"))
    assert r.layout == "kimpai_usdkrw" and r.report.count("missing_values") == 15
    fx = Store(tmp_path / "s").read("fx", "ref", "USD-KRW")
    assert fx.num_rows == 171 - 15
    assert (fx["ts"][0].as_py(), fx["rate"][0].as_py()) == (1764839055859 * 10**6, 1465.36)


def test_binance_raw_l2_sample(tmp_path: Path) -> None:
    r = _one(run_import([L2], tmp_path / "s"))
    assert r.layout == "binance_ws"
    rows = {s.kind: s.rows_total for s in r.series}
    assert rows == {"depth_diff": 56173, "trades": 3589, "bbo": 14429, "book": 2000}
    assert r.report.count("sequence_gaps") == 0 and r.report.count("malformed_lines") == 0
    st = Store(tmp_path / "s")
    tr = st.read("trades", "binance", "BTC-USDT").slice(0, 1).to_pylist()[0]
    assert tr == {"ts": 1723161255342 * 10**6, "ts_local": 1723161254087896568, "trade_id": 3735683259,
                  "price": 61837.63, "qty": 0.02, "aggressor": -1}  # m=true: buyer is maker -> sell
    bbo = st.read("bbo", "binance", "BTC-USDT").slice(0, 1).to_pylist()[0]
    assert bbo["ts"] == -1 and bbo["update_id"] == 50093239212 and bbo["ask_qty"] == 1.54698
    dd = st.read("depth_diff", "binance", "BTC-USDT").slice(0, 1).to_pylist()[0]
    assert dd == {"ts": 1723161255208 * 10**6, "ts_local": 1723161253937085768, "first_update_id": 50093239189,
                  "last_update_id": 50093239202, "side": 0, "price": 61737.63, "qty": 0.0}
    book = st.read("book", "binance", "BTC-USDT")
    assert book.num_rows == 2000 and book["ts_local"][0].as_py() == 1723161254206652067
    assert any("lastUpdateId=50093239218" in n for n in r.report.notes)


@needs_sample
def test_book_snapshot_jsonl_samples(tmp_path: Path) -> None:
    results = run_import([OB_UPBIT, OB_BINANCE], tmp_path / "s")
    assert [r.layout for r in results] == ["book_jsonl", "book_jsonl"]
    st = Store(tmp_path / "s")
    up = st.read("book", "upbit", "BTC-KRW")
    assert up.num_rows == 8 * 40 and sorted(set(up["snapshot"].to_pylist())) == list(range(8))
    first = up.slice(0, 1).to_pylist()[0]
    assert first == {"ts": iso_to_ns("2025-08-24T06:03:18.382000+00:00"), "ts_local": -1, "snapshot": 0,
                     "side": 0, "level": 0, "price": 159508000.0, "qty": 0.02069352}
    assert first["ts"] == 1756015398382000000
    assert st.read("book", "binance", "BTC-USDT").num_rows == 3 * 40


@needs_sample
def test_zstd_is_read_transparently(tmp_path: Path) -> None:
    path = tmp_path / "daily.csv.zst"
    with pa.output_stream(str(path), compression="zstd") as out:
        out.write(FX_DAILY.read_bytes())
    assert _one(run_import([path], tmp_path / "s")).series[0].rows_total == 6


# --- refusals --------------------------------------------------------------------------------------
@needs_sample
def test_unknown_layout_names_file_first_line_and_expected_layouts(tmp_path: Path) -> None:
    sj = _write(tmp_path / "upbit_daily.csv", [  # sj31134 daily candles: not supported
        "market,date,trade_price,acc_trade_volume_24h,acc_trade_price_24h,opening_price,high_price,low_price",
        "KRW-BTC,2022-08-11,31770000.0,9244.45685127,298863622797.97766,,,"])
    with pytest.raises(LayoutError) as ei:
        detect_layout(sj)
    msg = str(ei.value)
    assert str(sj) in msg and "market,date,trade_price" in msg
    assert all(name in msg for name in LAYOUTS) and "timestamp,open,high,low,close,volume" in msg
    good = FX_DAILY
    with pytest.raises(DataImportError) as ei2:
        run_import([sj, good], tmp_path / "s")
    assert [r.ok for r in ei2.value.results] == [False, True]  # the good file still imported
    assert Store(tmp_path / "s").has("fx", "ref", "USD-KRW")
    assert "unrecognised" in format_import_results(ei2.value.results)


# --- malformed input is counted and kept out of the store ------------------------------------------
def test_malformed_binance_lines_are_counted_and_dropped(tmp_path: Path) -> None:
    lines = _lines(L2)[:200]
    trade_i = [i for i, line in enumerate(lines) if '"e":"trade"' in line]
    tick_i = [i for i, line in enumerate(lines) if "@bookTicker" in line]
    lines[trade_i[0]] = re.sub(r'"q":"[^"]*"', '"q":"0.00000000"', lines[trade_i[0]])  # zero qty
    lines[trade_i[1]] = lines[trade_i[1]].replace('"p":"', '"p":"-', 1)  # negative price
    lines[trade_i[2]] = lines[trade_i[2]].replace(',"p":"', ',"x":"', 1)  # missing field
    b, a = (lines[tick_i[0]].split(f'"{k}":"')[1].split('"')[0] for k in ("b", "a"))
    lines[tick_i[0]] = lines[tick_i[0]].replace(f'"b":"{b}"', f'"b":"{a}"').replace(f'"a":"{a}"', f'"a":"{b}"')
    lines[9] = lines[9][: len(lines[9]) // 2]  # truncated JSON
    lines.append(lines[trade_i[3]])  # duplicated trade
    path = _write(tmp_path / "l2.txt", lines)
    r = _one(run_import([path], tmp_path / "s"))
    c = r.report.counts
    assert (c["bad_qty"], c["bad_price"], c["crossed_bbo"], c["duplicates"]) == (1, 1, 1, 1)
    assert c["malformed_lines"] == 2 and c["non_monotonic"] == 1
    assert any(ex.startswith("line 10:") for ex in r.report.examples["malformed_lines"])
    st = Store(tmp_path / "s")
    tr = st.read("trades", "binance", "BTC-USDT")
    assert tr.num_rows == len(trade_i) - 3 and (np.asarray(tr["price"]) > 0).all()
    assert (np.asarray(tr["qty"]) > 0).all() and len(set(tr["trade_id"].to_pylist())) == tr.num_rows
    bbo = st.read("bbo", "binance", "BTC-USDT")
    assert bbo.num_rows == len(tick_i) - 1 and (np.asarray(bbo["bid"]) < np.asarray(bbo["ask"])).all()
    assert "bad_qty" in r.report.render_text() and json.loads(r.report.to_json())["counts"]["bad_price"] == 1


@needs_sample
def test_malformed_bars_are_counted_and_dropped(tmp_path: Path) -> None:
    head, *rows = _lines(JOINED)[:31]
    cells = [r.split(",") for r in rows]
    cells[3][1] = "NaN"  # NaN upbit open
    cells[5][9] = "-63757.01"  # negative binance close
    cells[7][1] = "abc"  # not a number
    rows = [",".join(c) for c in cells]
    rows.insert(12, rows[11])  # exact duplicate
    rows[20], rows[21] = rows[21], rows[20]  # out of order
    r = _one(run_import([_write(tmp_path / "j.csv", [head, *rows])], tmp_path / "s", symbol="BTC"))
    c = r.report.counts
    assert c["bad_price"] == 2 and c["malformed_lines"] == 1 and c["duplicates"] == 2  # dup: one per venue
    assert c["non_monotonic"] == 2
    st = Store(tmp_path / "s")
    for v, s in (("upbit", "BTC-KRW"), ("binance", "BTC-USDT")):
        t = st.read("bars_1m", v, s)
        ts = np.asarray(t["ts"])
        assert (np.diff(ts) > 0).all()
        assert t.num_rows == 30 - 1 - (1 if v == "upbit" else 0) - (1 if v == "binance" else 0)
        assert np.isfinite(np.asarray(t["open"])).all() and (np.asarray(t["close"]) > 0).all()


@needs_sample
def test_crossed_book_snapshot_is_dropped(tmp_path: Path) -> None:
    lines = _lines(OB_UPBIT)
    snap = json.loads(lines[2])
    snap["bids"][0][0] = snap["asks"][0][0] + 1000.0
    lines[2] = json.dumps(snap)
    lines.insert(5, "{\"timestamp\": \"2025-08-24T06:04:00\", \"exchange\": \"upbit\"")  # truncated
    r = _one(run_import([_write(tmp_path / "ob.jsonl", lines)], tmp_path / "s"))
    assert r.report.count("crossed_book") == 1 and r.report.count("malformed_lines") == 1
    book = Store(tmp_path / "s").read("book", "upbit", "BTC-KRW")
    assert book.num_rows == 7 * 40
    assert iso_to_ns(snap["timestamp"]) not in set(book["ts"].to_pylist())


# --- store: idempotency, determinism, API ------------------------------------------------------------
@needs_sample
def test_reimport_is_idempotent_and_reports_duplicates(tmp_path: Path) -> None:
    root = tmp_path / "s"
    first = run_import([JOINED, OB_UPBIT], root, symbol="BTC")
    before = _snapshot_files(root)
    second = run_import([JOINED, OB_UPBIT], root, symbol="BTC")
    assert _snapshot_files(root) == before  # parquet files and manifest byte-identical
    assert [s.rows_added for s in second[0].series] == [0, 0]
    assert second[0].report.count("already_in_store") == 2400 and second[1].report.count("already_in_store") == 320
    assert first[0].report.count("already_in_store") == 0
    assert len(list((root / "_imports").glob("*.json"))) == 4
    # the same imports into a fresh store give identical files, reports included (no wall clock)
    run_import([JOINED, OB_UPBIT], tmp_path / "t", symbol="BTC")
    run_import([JOINED, OB_UPBIT], tmp_path / "t", symbol="BTC")
    assert _snapshot_files(root, skip_imports=False) == _snapshot_files(tmp_path / "t", skip_imports=False)


def test_store_merge_sort_and_manifest(tmp_path: Path) -> None:
    st = Store(tmp_path / "s")
    t = pa.table({"ts": [3, 1, 2], "ts_local": [-1, -1, -1], "rate": [1300.0, 1310.0, 1320.0]})
    s1 = st.write("fx", "ref", "USD-KRW", t, source="a.csv")
    assert (s1.rows_in, s1.duplicates_dropped, s1.rows_after) == (3, 0, 3)
    s2 = st.write("fx", "ref", "USD-KRW", t.slice(0, 2).append_column("x", pa.array([0, 0])), source="b.csv")
    assert (s2.duplicates_dropped, s2.rows_added) == (2, 0)
    assert st.read("fx", "ref", "USD-KRW", columns=["ts"])["ts"].to_pylist() == [1, 2, 3]
    s3 = st.write("fx", "ref", "USD-KRW", pa.table({"ts": [2], "ts_local": [-1], "rate": [1321.0]}))
    assert (s3.rows_added, s3.key_conflicts) == (1, 1)  # same day, other value: kept and counted
    assert st.has("fx", "ref", "USD-KRW") and not st.has("fx", "ref", "EUR-KRW")
    info = st.series()[0]
    assert (info.kind, info.rows, info.first_ts, info.last_ts) == ("fx", 4, 1, 3)
    man = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert man["series"]["fx/ref/USD-KRW"]["sources"] == ["a.csv", "b.csv"]
    assert not [p for p in (tmp_path / "s").rglob("*") if ".tmp" in p.name]
    with pytest.raises(ValueError, match="BASE-QUOTE"):
        st.write("fx", "ref", "usd/krw", t)


@needs_shared
def test_full_upbit_file_gaps(tmp_path: Path) -> None:
    assert SHARED is not None
    r = _one(run_import([SHARED / "aligned_btc_1m/upbit_KRW-BTC_1m_vsun410.csv.gz"], tmp_path / "s"))
    g = r.report.gaps["bars_1m/upbit/BTC-KRW"]
    assert (r.series[0].rows_total, g.count, g.longest_ns) == (105200, 527, 801 * 60 * 10**9)


# sha256 of the sample files as bundled in the repository until they were removed (unlicensed sources)
BUNDLED_SHA256 = {
    "binance_BTCUSDT_ob20_sample.jsonl.gz": "466b1aca3be8f2b91133c5042f9af215547df3a005051183fa4dbb40748a6bee",
    "binance_btcusdt_l2_sample.gz": "c60106cf5a34196d5cdd4c5427df5b3564391b4159e2078405ab13fd6ecede21",
    "btc_1m_joined_sample.csv.gz": "fe278a78695737018aa7bfcfd7683499dc07df0a7791feac95a2c602dd21c42d",
    "kimpai_snapshots_sample.csv.gz": "88ee7f3081f791b8047ae58e4f670f2ded88960e3033a6b8c68da8a9de6601e2",
    "kimpai_usdkrw_sample.csv.gz": "79e7bcc55463fedc1447f1830f0ed6f2ca398962652d7150eab17af4400b0b02",
    "upbit_KRW-BTC_ob20_sample.jsonl.gz": "2bc60d3a645e9966d9cfc64ca64c39b4dee0f477ad3866407fcaebdef347d46b",
    "usdkrw_daily_sample.csv": "9a1f5b3e501099a9679690abe941414a3c4c0e3adb07b68418c44d93ca3590f9",
}


@needs_sample
def test_make_sample_reproduces_the_bundled_sample_and_the_shipped_files(tmp_path: Path) -> None:
    from arbitrage_lite.infra.data.make_sample import make_samples
    from arbitrage_lite.infra.data.sample import find_shared_data

    shared = find_shared_data()
    assert shared is not None  # needs_sample: the fixture found it
    made = {f.name: f for f in make_samples(shared, tmp_path / "out")}
    assert set(made) == {*BUNDLED_SHA256, "README.md"}
    for name, digest in BUNDLED_SHA256.items():
        assert hashlib.sha256(made[name].read_bytes()).hexdigest() == digest, name
    for shipped in SHIPPED.iterdir():  # what ships is exactly what the generator makes
        assert shipped.read_bytes() == made[shipped.name].read_bytes(), shipped.name


# --- hostile input: every bad row rejected with a reason, nothing implausible stored ------------------
NOW = 1_767_225_600 * 10**9  # 2026-01-01 UTC, the importer's "now" in these tests


def _violations(root: Path) -> dict[str, dict[str, int]]:
    st = Store(root)
    out = {}
    for s in st.series():
        bad = count_violations(s.kind, s.symbol, st.read(s.kind, s.venue, s.symbol), NOW)
        if bad:
            out[f"{s.kind}/{s.venue}/{s.symbol}"] = bad
    return out


@needs_sample
def test_a_column_mixing_empty_and_malformed_cells_rejects_those_rows(tmp_path: Path) -> None:
    head, *rows = _lines(FX_DAILY)
    rows[1], rows[3] = "2024-08-25,", "2024-12-02,abc"  # one empty rate, one junk rate (old code: TypeError)
    r = _one(run_import([_write(tmp_path / "fx.csv", [head, *rows])], tmp_path / "s", now_ns=NOW))
    assert (r.report.count("missing_values"), r.report.count("malformed_lines")) == (1, 1)
    assert Store(tmp_path / "s").read("fx", "ref", "USD-KRW").num_rows == 4


@needs_sample
def test_implausible_values_are_rejected_with_their_reasons(tmp_path: Path) -> None:
    head, *rows = _lines(JOINED)[:13]
    cells = [r.split(",") for r in rows]
    cells[0][0] = "2024-02-30 00:00:00"  # not a calendar date (strptime makes it 2024-03-01)
    cells[1][0] = "1970-01-01 00:00:00"
    cells[2][0] = "9999-12-31 23:59:59"  # past int64 ns
    cells[3][1] = "1e308"  # KRW price above 1e11
    cells[4][5] = "inf"  # upbit volume
    cells[5][9] = "1e30"  # USDT price above 1e8
    cells[6][10] = "-1"  # binance volume
    cells[7][0] = "2026-01-03 00:00:00"  # two days after "now"
    path = _write(tmp_path / "j.csv", [head, *(",".join(c) for c in cells)])
    r = _one(run_import([path], tmp_path / "s", symbol="BTC", now_ns=NOW))
    c = r.report.counts
    assert c["malformed_lines"] == 1 and c["bad_time"] == 2 * 3  # 1970, 9999 and the future: both venues
    assert (c["price_out_of_range"], c["qty_out_of_range"], c["negative_qty"]) == (2, 1, 1)
    assert [s.rows_total for s in r.series] == [12 - 4 - 2, 12 - 4 - 2]
    assert _violations(tmp_path / "s") == {}
    text = format_import_results([r])
    assert all(k in text for k in ("bad_time", "price_out_of_range", "qty_out_of_range"))


@needs_sample
def test_fx_outside_500_5000_and_wrapped_times_are_rejected(tmp_path: Path) -> None:
    head, *rows = _lines(KIMPAI_FX)
    good = [r for r in rows if r.split(",")[2]][:6]
    cells = [r.split(",") for r in good]
    cells[0][2] = "1e300"
    cells[1][2] = "0.00068"  # USD per KRW: inverted
    cells[2][3] = str(2**62)  # ms: * 1e6 would wrap int64
    cells[3][3] = str(int(cells[3][3]) // 1000)  # seconds where ms are expected -> 1970
    path = _write(tmp_path / "usdkrw.csv", [head, *(",".join(c) for c in cells)])
    r = _one(run_import([path], tmp_path / "s", now_ns=NOW))
    assert (r.report.count("fx_out_of_range"), r.report.count("bad_time")) == (2, 2)
    fx = Store(tmp_path / "s").read("fx", "ref", "USD-KRW")
    assert fx.num_rows == 2 and _violations(tmp_path / "s") == {}


def test_json_lines_with_huge_ints_and_wrong_types_are_rejected_by_line(tmp_path: Path) -> None:
    lines = _lines(L2)[:60]
    trade_i = [i for i, line in enumerate(lines) if '"e":"trade"' in line]
    lines[trade_i[0]] = re.sub(r'"t":\d+', f'"t":{2**70}', lines[trade_i[0]])  # old code: OverflowError
    lines[trade_i[1]] = re.sub(r'"T":\d+', f'"T":{2**62}', lines[trade_i[1]])  # ms * 1e6 wraps int64
    lines[trade_i[2]] = re.sub(r'"p":"[^"]*"', '"p":true', lines[trade_i[2]])  # a boolean is no price
    lines.insert(3, "1723161253937085768 " + "[" * 100_000)  # RecursionError in json
    r = _one(run_import([_write(tmp_path / "l2.txt", lines)], tmp_path / "s", now_ns=NOW))
    assert r.report.count("malformed_lines") == 3 and r.report.count("bad_time") == 1
    trades = Store(tmp_path / "s").read("trades", "binance", "BTC-USDT")
    assert trades.num_rows == len(trade_i) - 3 and _violations(tmp_path / "s") == {}


@needs_sample
def test_snapshot_file_whose_rows_are_all_out_of_scope_is_counted(tmp_path: Path) -> None:
    head, *rows = _lines(KIMPAI)[:6]
    rows = [",".join(c if k != 2 else "" for k, c in enumerate(r.split(","))) for r in rows]  # no exchange
    path = _write(tmp_path / "prices.csv", [head, *rows])  # old code: IndexError
    r = _one(run_import([path], tmp_path / "s", now_ns=NOW))
    assert r.report.count("skipped") == 5 and r.series == []


@needs_sample
def test_unreadable_file_is_one_clear_error_and_the_others_import(tmp_path: Path) -> None:
    broken = tmp_path / "cut.csv.gz"
    broken.write_bytes(gzip.compress(FX_DAILY.read_bytes())[:40])
    junk = tmp_path / "junk.bin"
    junk.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(DataImportError) as ei:
        run_import([broken, junk, KIMPAI_FX], tmp_path / "s", now_ns=NOW)
    res = ei.value.results
    assert [(r.ok, r.error_kind) for r in res] == [(False, "unreadable"), (False, "layout"), (True, None)]
    assert all(r.error is not None and str(r.path) in r.error for r in res[:2])
    assert Store(tmp_path / "s").has("fx", "ref", "USD-KRW")


@needs_sample
def test_bundled_sample_meets_the_store_invariant(tmp_path: Path) -> None:
    run_import([JOINED, FX_DAILY, KIMPAI, KIMPAI_FX, L2, OB_UPBIT, OB_BINANCE], tmp_path / "s", symbol="BTC",
               now_ns=NOW)
    assert _violations(tmp_path / "s") == {}
