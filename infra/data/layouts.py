"""Source-file layouts: detection from CONTENT (never the file name) and parsing into store tables.

Compression is recognised by magic bytes (gzip; zstd through ``zstandard`` or pyarrow's zstd codec).
Parsers return ``ParsedSeries`` in file order and count malformed / out-of-scope input in the
``ValidationReport``; value checks (prices, duplicates, crossed books, gaps) happen in ``validate.clean``.
"""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from arbitrage_lite.infra.data.checked import (
    checked_float,
    checked_int,
    checked_ms,
    checked_ns,
    levels,
    scale_time,
    strict_number,
)
from arbitrage_lite.infra.data.plausible import INT64_MAX, OUT_OF_RANGE_TIME
from arbitrage_lite.infra.data.store import valid_symbol
from arbitrage_lite.infra.data.validate import ValidationReport

NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
BINANCE_QUOTES = ("FDUSD", "USDT", "BUSD", "BTC", "ETH")  # longest first
class LayoutError(ValueError):
    """The file's layout is unknown, or it lacks information that must come from the caller."""


class UnreadableFileError(LayoutError):
    """The file cannot be read or decompressed at all (truncated or corrupt gzip/zstd, I/O error)."""


@dataclass(frozen=True, slots=True)
class ParsedSeries:
    kind: str
    venue: str
    symbol: str
    table: pa.Table


Parser = Callable[[Path, bytes, str | None, str | None, ValidationReport], list[ParsedSeries]]


@dataclass(frozen=True, slots=True)
class Layout:
    name: str
    shape: str  # what the content looks like, shown when a file is refused
    parse: Parser


# ---------------------------------------------------------------------------------------------------
# reading
def _decompress(path: Path, raw: bytes) -> bytes:
    if raw[:2] == b"\x1f\x8b":
        return gzip.decompress(raw)
    if raw[:4] == b"\x28\xb5\x2f\xfd":
        try:
            import zstandard
        except ImportError:
            if not pa.Codec.is_available("zstd"):
                raise LayoutError(
                    f"{path}: zstd-compressed, but neither the 'zstandard' module nor pyarrow's zstd codec is "
                    "available; decompress it first (zstd -d)"
                ) from None
            return bytes(pa.input_stream(pa.BufferReader(raw), compression="zstd").read())
        return bytes(zstandard.ZstdDecompressor().stream_reader(raw).read())
    return raw


def read_bytes(path: Path) -> bytes:
    """The whole file, decompressed (gzip / zstd recognised by magic bytes), as UTF-8 without a BOM.

    A UTF-16 file (by its BOM) is re-encoded as UTF-8; bytes that are not valid UTF-8 become U+FFFD, so
    the cells holding them are rejected row by row instead of failing the whole file.
    """
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise UnreadableFileError(f"{path}: cannot read the file ({type(e).__name__}: {e.strerror or e})") from None
    try:
        data = _decompress(path, raw)
    except LayoutError:
        raise
    except Exception as e:  # codecs raise many types (OSError, EOFError, zlib/zstd errors)
        raise UnreadableFileError(f"{path}: corrupt or truncated compressed file ({type(e).__name__}: {e})"
                                  ) from None
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        data = data.decode("utf-16", "replace").encode()
    data = data[3:] if data.startswith(b"\xef\xbb\xbf") else data
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        data = data.decode("utf-8", "replace").encode()
    return data


def _first_line(data: bytes) -> str:
    for line in data[:65536].splitlines():
        if line.strip():
            return line.decode("utf-8", "replace").strip()
    return ""


# ---------------------------------------------------------------------------------------------------
# symbols
def split_binance_symbol(s: str) -> str | None:
    """``BTCUSDT`` -> ``BTC-USDT`` by stripping a known quote suffix; None if no known quote or not a
    storable symbol."""
    s = s.upper()
    for q in BINANCE_QUOTES:
        if s.endswith(q) and len(s) > len(q):
            sym = f"{s[: -len(q)]}-{q}"
            return sym if valid_symbol(sym) else None
    return None


def normalize_symbol(text: str, venue: str | None) -> str | None:
    """``BTC-KRW``, ``KRW-BTC`` (Upbit market code), ``BTC/KRW``, ``BTCUSDT`` or a bare base -> BASE-QUOTE."""
    s = text.strip().upper().replace("/", "-").replace("_", "-")
    if "-" in s:
        a, _, b = s.partition("-")
        return f"{b}-{a}" if a == "KRW" else f"{a}-{b}"
    if venue == "binance" and split_binance_symbol(s):
        return split_binance_symbol(s)
    default_quote = {"upbit": "KRW", "binance": "USDT"}.get(venue or "")
    return f"{s}-{default_quote}" if default_quote else None


def base_of(symbol: str) -> str:
    s = normalize_symbol(symbol, "upbit")
    assert s is not None
    return s.split("-")[0]


_NAME_PATTERNS: list[tuple[re.Pattern[str], Callable[[re.Match[str]], tuple[str, str]]]] = [
    (re.compile(r"^upbit[_-](KRW|USDT|BTC)-([A-Z0-9]+)", re.I), lambda m: ("upbit", f"{m[2]}-{m[1]}".upper())),
    (re.compile(r"^([A-Z0-9]+)_(FDUSD|USDT|BUSD|BTC|ETH)_"), lambda m: ("binance", f"{m[1]}-{m[2]}")),
    (re.compile(r"^binance[_-]([A-Z0-9]+?)[_-]?(FDUSD|USDT|BUSD|BTC|ETH)[_.]", re.I),
     lambda m: ("binance", f"{m[1]}-{m[2]}".upper())),
]


def venue_symbol_from_name(name: str) -> tuple[str, str] | None:
    for pat, make in _NAME_PATTERNS:
        m = pat.match(name)
        if m:
            return make(m)
    return None


# ---------------------------------------------------------------------------------------------------
# CSV helpers (pyarrow.csv: no per-row Python)
def _read_csv(data: bytes, report: ValidationReport, columns: list[str]) -> pa.Table:
    def on_invalid(row: pacsv.InvalidRow) -> str:
        where = f"line {row.number}" if row.number is not None and row.number >= 0 else "line ?"
        report.add("malformed_lines", 1, f"{where}: wrong field count: {row.text[:80]!r}")
        return "skip"

    try:
        return _read_csv_columns(data, on_invalid, columns)
    except KeyError as e:  # pyarrow's ArrowKeyError: a header cell with spaces or quotes around the name
        raise LayoutError(f"the header line does not name the columns exactly ({e})") from None


def _read_csv_columns(data: bytes, on_invalid: Callable[[pacsv.InvalidRow], str], columns: list[str]
                      ) -> pa.Table:
    return pacsv.read_csv(
        pa.BufferReader(data),
        read_options=pacsv.ReadOptions(block_size=1 << 24),
        parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid),
        convert_options=pacsv.ConvertOptions(
            include_columns=columns, column_types=dict.fromkeys(columns, pa.string()),
            null_values=[""], strings_can_be_null=True, quoted_strings_can_be_null=True,
        ),
    )


def _convert(col: pa.ChunkedArray, to: pa.DataType) -> tuple[pa.Array, np.ndarray[Any, Any]]:
    """Cast strings to ``to``; returns (values with invalid -> null, invalid mask).

    Arrow's cast is all-or-nothing, so a column with one bad cell is parsed again cell by cell.
    """
    arr = col.combine_chunks()
    try:
        return pc.cast(arr, to), np.zeros(len(arr), dtype=bool)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        floating = pa.types.is_floating(to)
        vals = [strict_number(x, floating) for x in arr.to_pylist()]
        invalid = np.array([v is None and x is not None for v, x in zip(vals, arr.to_pylist(), strict=True)],
                           dtype=bool)
        return pa.array(vals, type=to), invalid


def _convert_time(col: pa.ChunkedArray, fmt: str) -> tuple[pa.Array, np.ndarray[Any, Any]]:
    """Strict calendar text -> ns: the parsed time must print back as the same text, so 2024-02-30 (which
    strptime rolls over to 2024-03-01) and 23:59:60 are rejected, not moved; years past int64 ns are
    OUT_OF_RANGE_TIME (judged bad_time later)."""
    arr = col.combine_chunks()
    t = pc.strptime(arr, format=fmt, unit="s", error_is_null=True)
    same = pc.fill_null(pc.equal(pc.strftime(t, format=fmt), arr), False)
    t = pc.if_else(same, t, None)
    invalid = np.asarray(pc.and_(t.is_null(), arr.is_valid()).to_numpy(zero_copy_only=False), dtype=bool)
    secs = pc.fill_null(t.cast(pa.int64()), OUT_OF_RANGE_TIME)
    ns = scale_time(np.asarray(secs.to_numpy(zero_copy_only=False), dtype=np.int64), NS_PER_S)
    return pa.array(ns, mask=np.asarray(t.is_null().to_numpy(zero_copy_only=False), dtype=bool)), invalid


def _typed(t: pa.Table, spec: dict[str, pa.DataType | str], report: ValidationReport,
           required: tuple[str, ...]) -> tuple[dict[str, np.ndarray[Any, Any]], np.ndarray[Any, Any]]:
    """Convert CSV string columns (a str spec is a strptime format -> ns); drop malformed / missing rows.

    Float nulls become NaN (judged later as bad prices); required columns that are empty count as
    ``missing_values``. Returns numpy arrays without the dropped rows, and the kept-rows mask.
    """
    out: dict[str, pa.Array] = {}
    invalid = np.zeros(t.num_rows, dtype=bool)
    for name, to in spec.items():
        vals, bad = _convert_time(t[name], to) if isinstance(to, str) else _convert(t[name], to)
        new = bad & ~invalid  # count each malformed row once
        if new.any():
            i = int(np.flatnonzero(new)[0])
            report.add("malformed_lines", int(new.sum()), f"line {i + 2}: {name}={t[name][i].as_py()!r}")
        invalid |= bad
        out[name] = vals
    missing = np.zeros(t.num_rows, dtype=bool)
    for name in required:
        missing |= np.asarray(out[name].is_null().to_numpy(zero_copy_only=False), dtype=bool) & ~invalid
    if missing.any():
        i = int(np.flatnonzero(missing)[0])
        report.add("missing_values", int(missing.sum()), f"line {i + 2}: empty {', '.join(required)}")
    keep = ~(invalid | missing)
    res: dict[str, np.ndarray[Any, Any]] = {}
    for name, vals in out.items():
        if pa.types.is_floating(vals.type):
            res[name] = np.asarray(pc.fill_null(vals, float("nan")).to_numpy(zero_copy_only=False))[keep]
        else:
            res[name] = np.asarray(pc.fill_null(vals, -1).to_numpy(zero_copy_only=False))[keep]
    return res, keep


def _const(n: int, v: int) -> np.ndarray[Any, Any]:
    return np.full(n, v, dtype=np.int64)


_OHLCV = ("timestamp", "open", "high", "low", "close", "volume")
_F = pa.float64()
_I = pa.int64()
_TS_FMT = "%Y-%m-%d %H:%M:%S"


def _bars(cols: dict[str, np.ndarray[Any, Any]], suffix: str = "") -> pa.Table:
    ts = cols["timestamp"]
    return pa.table({"ts": ts, "ts_local": _const(len(ts), -1),
                     **{k: cols[k + suffix] for k in ("open", "high", "low", "close", "volume")}})


# ---------------------------------------------------------------------------------------------------
# parsers
def parse_ohlcv(path: Path, data: bytes, symbol: str | None, venue: str | None,
                report: ValidationReport) -> list[ParsedSeries]:
    guess = venue_symbol_from_name(path.name)
    v = venue or (guess[0] if guess else None)
    s = normalize_symbol(symbol, v) if symbol else (guess[1] if guess and guess[0] == v else None)
    if v is None or s is None:
        raise LayoutError(
            f"{path}: a 1m OHLCV CSV does not say which exchange or market it is, and the file name does "
            "not either (expected e.g. upbit_KRW-BTC_... or BTC_USDT_...); pass --venue (upbit|binance) "
            "and --symbol (e.g. BTC-KRW)"
        )
    t = _read_csv(data, report, list(_OHLCV))
    cols, _ = _typed(t, {"timestamp": _TS_FMT, **dict.fromkeys(_OHLCV[1:], _F)}, report, ("timestamp",))
    return [ParsedSeries("bars_1m", v, s, _bars(cols))]


_JOINED = ("timestamp", *(f"{k}_{v}" for v in ("upbit_krw", "binance_usdt") for k in _OHLCV[1:]))


def parse_joined(path: Path, data: bytes, symbol: str | None, venue: str | None,
                 report: ValidationReport) -> list[ParsedSeries]:
    if not symbol:
        raise LayoutError(
            f"{path}: joined Upbit/Binance 1m file: the coin is not in the content; pass --symbol "
            "(e.g. --symbol BTC) to import it as upbit <SYM>-KRW and binance <SYM>-USDT"
        )
    base = base_of(symbol)
    t = _read_csv(data, report, list(_JOINED))
    cols, _ = _typed(t, {"timestamp": _TS_FMT, **dict.fromkeys(_JOINED[1:], _F)}, report, ("timestamp",))
    return [ParsedSeries("bars_1m", "upbit", f"{base}-KRW", _bars(cols, "_upbit_krw")),
            ParsedSeries("bars_1m", "binance", f"{base}-USDT", _bars(cols, "_binance_usdt"))]


def parse_fx_daily(path: Path, data: bytes, symbol: str | None, venue: str | None,
                   report: ValidationReport) -> list[ParsedSeries]:
    t = _read_csv(data, report, ["date", "krw_usd"])
    cols, _ = _typed(t, {"date": "%Y-%m-%d", "krw_usd": _F}, report, ("date", "krw_usd"))
    n = len(cols["date"])
    report.notes.append("daily USD/KRW: the source forward-filled missing days (see flat_days)")
    return [ParsedSeries("fx", "ref", "USD-KRW", pa.table(
        {"ts": cols["date"], "ts_local": _const(n, -1), "rate": cols["krw_usd"]}))]


_KIMPAI = ("snapshot_commit", "commit_time_utc_s", "exchange", "base", "quote", "price", "ts_ms")
_KIMPAI_KEEP = {("UPBIT", "KRW"): "upbit", ("BINANCE", "USDT"): "binance"}


def parse_kimpai_prices(path: Path, data: bytes, symbol: str | None, venue: str | None,
                        report: ValidationReport) -> list[ParsedSeries]:
    cols = ["commit_time_utc_s", "exchange", "base", "quote", "price", "ts_ms", "volume24hKrw"]
    t = _read_csv(data, report, cols)
    keep = pc.or_(*(pc.and_(pc.equal(t["exchange"], e), pc.equal(t["quote"], q)) for e, q in _KIMPAI_KEEP))
    keep = pc.fill_null(keep, False)
    other = t.filter(pc.invert(keep)).group_by(["exchange", "quote"]).aggregate([([], "count_all")])
    for row in sorted(other.to_pylist(), key=lambda r: (str(r["exchange"]), str(r["quote"]))):
        report.add("skipped", int(row["count_all"]), f"{row['exchange']}/{row['quote']}: {row['count_all']}")
    t = t.filter(keep)
    if symbol:
        want = base_of(symbol)
        is_base = pc.fill_null(pc.equal(t["base"], want), False)
        report.add("skipped", t.num_rows - int(pc.sum(is_base).as_py() or 0), f"bases other than {want}")
        t = t.filter(is_base)
    good_base = pc.fill_null(pc.match_substring_regex(t["base"], r"^[A-Z0-9]{1,20}$"), False)
    bad = t.filter(pc.invert(good_base))
    if bad.num_rows:
        report.add("skipped", bad.num_rows, f"unusable base {bad['base'][0].as_py()!r}")
        t = t.filter(good_base)
    spec: dict[str, pa.DataType | str] = {"commit_time_utc_s": _I, "ts_ms": _I, "price": _F, "volume24hKrw": _F}
    num, keep_rows = _typed(t, spec, report, ("commit_time_utc_s", "ts_ms"))
    kept = pa.table({"exchange": t["exchange"], "base": t["base"]}).filter(pa.array(keep_rows))
    table = pa.table({"exchange": kept["exchange"], "base": kept["base"],
                      "ts": scale_time(num["ts_ms"], NS_PER_MS),
                      "ts_local": scale_time(num["commit_time_utc_s"], NS_PER_S),
                      "price": num["price"], "volume24h_krw": num["volume24hKrw"]})
    out: list[ParsedSeries] = []
    for (exch, quote), v in _KIMPAI_KEEP.items():
        sub = table.filter(pc.equal(table["exchange"], exch))
        if venue is not None and v != venue:
            report.add("skipped", sub.num_rows, f"{exch}/{quote} rows (--venue {venue})")
            continue
        if sub.num_rows == 0:
            continue
        bases = np.asarray(sub["base"].to_numpy(zero_copy_only=False)).astype(str)
        order = np.argsort(bases, kind="stable")
        sub, bases = sub.take(pa.array(order)), bases[order]
        uniq, starts = np.unique(bases, return_index=True)
        ends = [*starts[1:], len(bases)]
        for b, s0, s1 in zip(uniq, starts, ends, strict=True):
            part = sub.slice(int(s0), int(s1 - s0)).drop_columns(["exchange", "base"])
            out.append(ParsedSeries("last", v, f"{b}-{quote}", part))
    return out


def parse_kimpai_usdkrw(path: Path, data: bytes, symbol: str | None, venue: str | None,
                        report: ValidationReport) -> list[ParsedSeries]:
    t = _read_csv(data, report, ["commit_time_utc_s", "usdKrw", "updatedAt_ms"])
    num, _ = _typed(t, {"commit_time_utc_s": _I, "usdKrw": _F, "updatedAt_ms": _I}, report,
                 ("commit_time_utc_s", "usdKrw", "updatedAt_ms"))
    return [ParsedSeries("fx", "ref", "USD-KRW", pa.table(
        {"ts": scale_time(num["updatedAt_ms"], NS_PER_MS), "ts_local": scale_time(num["commit_time_utc_s"], NS_PER_S),
         "rate": num["usdKrw"]}))]


def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\n")


def _malformed(report: ValidationReport, lineno: int, why: str, line: bytes) -> None:
    report.add("malformed_lines", 1, f"line {lineno}: {why}: {line[:60].decode('utf-8', 'replace')!r}")


def parse_binance_ws(path: Path, data: bytes, symbol: str | None, venue: str | None,
                     report: ValidationReport) -> list[ParsedSeries]:
    """``<local_ts_ns> {combined-stream json}`` lines -> depth_diff / trades / bbo (+ book for REST depth)."""
    depth: dict[str, list[tuple[int, int, int, int, int, float, float]]] = {}
    trades: dict[str, list[tuple[int, int, int, float, float, int]]] = {}
    bbo: dict[str, list[tuple[int, int, int, float, float, float, float]]] = {}
    rest: list[tuple[int, int, dict[str, Any]]] = []
    skipped: Counter[str] = Counter()
    for lineno, line in enumerate(_lines(data), 1):
        if not line.strip():
            continue
        head, _, body = line.partition(b" ")
        try:
            local = checked_ns(head.decode())
            msg = json.loads(body)
        except (ValueError, RecursionError) as e:
            _malformed(report, lineno, f"not '<ns> <json>' ({type(e).__name__})", line)
            continue
        if not isinstance(msg, dict):
            _malformed(report, lineno, "JSON is not an object", line)
            continue
        try:
            if "stream" not in msg and "lastUpdateId" in msg:
                rest.append((lineno, local, msg))
                continue
            d = msg["data"]
            ev = d.get("e")
            if ev == "depthUpdate":
                sym = split_binance_symbol(d["s"])
                if sym is None:
                    skipped[f"symbol {d['s']}"] += 1
                    continue
                e_ns, fu, lu = checked_ms(d["E"]), checked_int(d["U"]), checked_int(d["u"])
                rows = [(e_ns, local, fu, lu, side, px, q)
                        for side, key in ((0, "b"), (1, "a")) for px, q in levels(d[key])]
                depth.setdefault(sym, []).extend(rows)
            elif ev == "trade":
                sym = split_binance_symbol(d["s"])
                if sym is None:
                    skipped[f"symbol {d['s']}"] += 1
                    continue
                m = d["m"]
                if not isinstance(m, bool):
                    raise ValueError("m is not a boolean")
                trades.setdefault(sym, []).append((checked_ms(d["T"]), local, checked_int(d["t"]),
                                                   checked_float(d["p"]), checked_float(d["q"]), -1 if m else 1))
            elif ev in (None, "bookTicker") and "A" in d and "B" in d:  # spot bookTicker: no e, no E
                sym = split_binance_symbol(d["s"])
                if sym is None:
                    skipped[f"symbol {d['s']}"] += 1
                    continue
                e_ns = checked_ms(d["E"]) if "E" in d else -1
                bbo.setdefault(sym, []).append((e_ns, local, checked_int(d["u"]), checked_float(d["b"]),
                                                checked_float(d["B"]), checked_float(d["a"]), checked_float(d["A"])))
            else:
                skipped[str(msg.get("stream", ev))] += 1
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            _malformed(report, lineno, f"missing or bad field ({type(e).__name__}: {e})", line)
    for what, n in sorted(skipped.items()):
        report.add("skipped", n, f"{what}: {n}")
    out = [ParsedSeries("depth_diff", "binance", s, _rows_table(
        ["ts", "ts_local", "first_update_id", "last_update_id", "side", "price", "qty"], r))
        for s, r in sorted(depth.items())]
    out += [ParsedSeries("trades", "binance", s, _rows_table(
        ["ts", "ts_local", "trade_id", "price", "qty", "aggressor"], r)) for s, r in sorted(trades.items())]
    out += [ParsedSeries("bbo", "binance", s, _rows_table(
        ["ts", "ts_local", "update_id", "bid", "bid_qty", "ask", "ask_qty"], r)) for s, r in sorted(bbo.items())]
    out += _rest_snapshots(rest, sorted({*depth, *trades, *bbo}), report)
    return out


def _rows_table(names: list[str], rows: list[Any]) -> pa.Table:
    """Row tuples -> table; every value was range-checked by its parser, so none overflows int64."""
    cols = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    return pa.table({n: np.asarray(c, dtype=np.float64 if n in _FLOAT_COLS else np.int64)
                     for n, c in zip(names, cols, strict=True)})


_FLOAT_COLS = frozenset({"price", "qty", "bid", "bid_qty", "ask", "ask_qty"})


def _rest_snapshots(rest: list[tuple[int, int, dict[str, Any]]], symbols: list[str],
                    report: ValidationReport) -> list[ParsedSeries]:
    """REST ``depth`` snapshots carry no symbol: attribute them only when the file has a single symbol."""
    if not rest:
        return []
    if len(symbols) != 1:
        report.add("skipped", len(rest), f"REST depth snapshot at line {rest[0][0]}: file has symbols {symbols}")
        return []
    rows: list[tuple[int, int, int, int, int, float, float]] = []
    for snap, (lineno, local, msg) in enumerate(rest):
        try:
            book = [(-1, local, snap, side, lvl, px, q)
                    for side, key in ((0, "bids"), (1, "asks")) for lvl, (px, q) in enumerate(levels(msg[key]))]
            checked_int(msg.get("lastUpdateId"))
        except (KeyError, TypeError, ValueError) as e:
            report.add("malformed_lines", 1, f"line {lineno}: REST depth snapshot ({e})")
            continue
        rows.extend(book)
        report.notes.append(
            f"line {lineno}: REST depth snapshot lastUpdateId={msg.get('lastUpdateId')} "
            f"({len(msg['bids'])} bids, {len(msg['asks'])} asks) -> book {symbols[0]} ts_local={local}; "
            "apply depth diffs with U <= lastUpdateId+1 <= u onwards")
    if not rows:
        return []
    return [ParsedSeries("book", "binance", symbols[0], _rows_table(
        ["ts", "ts_local", "snapshot", "side", "level", "price", "qty"], rows))]


def iso_to_ns(text: str) -> int:
    """ISO-8601 text -> UTC ns; a naive timestamp is taken as UTC. Strict calendar (2024-02-30 raises
    ValueError); a time before 1970 or past int64 ns is OUT_OF_RANGE_TIME (rejected as bad_time)."""
    if not isinstance(text, str):
        raise ValueError(f"timestamp is not text: {text!r:.40}")
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    try:
        ns = (dt - _EPOCH) // timedelta(microseconds=1) * 1000
    except OverflowError:
        return OUT_OF_RANGE_TIME
    return ns if 0 <= ns <= INT64_MAX else OUT_OF_RANGE_TIME


def parse_book_jsonl(path: Path, data: bytes, symbol: str | None, venue: str | None,
                     report: ValidationReport) -> list[ParsedSeries]:
    books: dict[tuple[str, str], list[tuple[int, int, int, int, int, float, float]]] = {}
    snap = 0
    for lineno, line in enumerate(_lines(data), 1):
        if not line.strip():
            continue
        try:
            msg = json.loads(line)
        except (ValueError, RecursionError) as e:
            _malformed(report, lineno, f"bad JSON ({type(e).__name__})", line)
            continue
        try:
            ts = iso_to_ns(msg["timestamp"])
            v = str(msg["exchange"]).lower()
            sym = normalize_symbol(str(msg["symbol"]), v)
            book = [(ts, -1, snap, side, lvl, px, q)
                    for side, key in ((0, "bids"), (1, "asks")) for lvl, (px, q) in enumerate(levels(msg[key]))]
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            _malformed(report, lineno, f"missing or bad field ({type(e).__name__}: {e})", line)
            continue
        if v not in ("upbit", "binance"):
            report.add("skipped", 1, f"line {lineno}: exchange {v[:40]!r}")
            continue
        if sym is None or not valid_symbol(sym):
            _malformed(report, lineno, "symbol is not BASE/QUOTE", line)
            continue
        books.setdefault((v, sym), []).extend(book)
        snap += 1
    return [ParsedSeries("book", v, s, _rows_table(
        ["ts", "ts_local", "snapshot", "side", "level", "price", "qty"], r)) for (v, s), r in sorted(books.items())]


# ---------------------------------------------------------------------------------------------------
# detection
LAYOUTS: dict[str, Layout] = {
    "ohlcv_1m": Layout("ohlcv_1m", "CSV `timestamp,open,high,low,close,volume` (one venue; venue/symbol from "
                       "--venue/--symbol or a file name like upbit_KRW-BTC_* / BTC_USDT_*)", parse_ohlcv),
    "joined_1m": Layout("joined_1m", "CSV `timestamp,open_upbit_krw,...,volume_binance_usdt` (needs --symbol)",
                        parse_joined),
    "fx_daily": Layout("fx_daily", "CSV `date,krw_usd` (daily USD/KRW)", parse_fx_daily),
    "kimpai_prices": Layout("kimpai_prices", "CSV `snapshot_commit,commit_time_utc_s,exchange,base,quote,"
                            "price,ts_ms,...` (kimpai last-price snapshots)", parse_kimpai_prices),
    "kimpai_usdkrw": Layout("kimpai_usdkrw", "CSV `snapshot_commit,commit_time_utc_s,usdKrw,updatedAt_ms`",
                            parse_kimpai_usdkrw),
    "binance_ws": Layout("binance_ws", 'lines `<local_ts_ns> {"stream":...,"data":{...}}` (Binance combined '
                         "stream: depthUpdate / trade / bookTicker)", parse_binance_ws),
    "book_jsonl": Layout("book_jsonl", 'JSON lines `{"timestamp":...,"exchange":...,"symbol":"BTC/KRW",'
                         '"bids":[[px,qty],...],"asks":[...]}`', parse_book_jsonl),
}
_CSV_HEADERS: dict[tuple[str, ...], str] = {
    _OHLCV: "ohlcv_1m",
    _JOINED: "joined_1m",
    ("date", "krw_usd"): "fx_daily",
    (*_KIMPAI, "high24h", "low24h", "prev_price", "volume24hKrw"): "kimpai_prices",
    ("snapshot_commit", "commit_time_utc_s", "usdKrw", "updatedAt_ms"): "kimpai_usdkrw",
}
_WS_RE = re.compile(r'^\d{9,20} \{\s*"(stream|lastUpdateId)"\s*:')


def detect_layout(path: Path, data: bytes | None = None) -> Layout:
    """Recognise the layout from the first line(s) of the (decompressed) content."""
    if data is None:
        data = read_bytes(path)
    first = _first_line(data)
    header = tuple(c.strip().strip('"') for c in first.split(","))
    if header in _CSV_HEADERS:
        return LAYOUTS[_CSV_HEADERS[header]]
    if _WS_RE.match(first):
        return LAYOUTS["binance_ws"]
    if first.startswith("{"):
        try:
            obj = json.loads(first)
        except (ValueError, RecursionError):
            obj = None
        if isinstance(obj, dict) and {"timestamp", "exchange", "symbol", "bids", "asks"} <= obj.keys():
            return LAYOUTS["book_jsonl"]
    expected = "\n".join(f"    {lay.name:<14} {lay.shape}" for lay in LAYOUTS.values())
    shown = first[:200] + ("..." if len(first) > 200 else "")
    raise LayoutError(f"{path}: unknown layout.\n  first line: {shown!r}\n  expected one of:\n{expected}")
