"""Seeded generator of hostile import files, built by mutating the real layouts of the sample, and a
harness that imports them one by one and counts crashes and implausible stored values.

Deterministic: case ``i`` of seed ``s`` is always the same bytes (``random.Random((s, i))``-style seeding),
so a failing case is reproduced by ``make_case(seed, i)``. Used by ``tests/test_import_fuzz.py`` and by
hand: ``python tests/import_fuzz.py 2500`` prints the counts for the importer in the current tree.
"""

from __future__ import annotations

import gzip
import inspect
import json
import os
import random
import shutil
import sys
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from sample_files import L2, SAMPLE, build  # the sample is built from the shared data (sample_files)

REPO = Path(__file__).resolve().parents[1]
NOW_NS = 1_767_225_600 * 10**9  # 2026-01-01 UTC: the fuzz run's fixed "now" (sample data is older)
T_S = 1_724_538_480  # 2024-08-24 22:28 UTC, a plausible time in seconds

# Cell values that have broken or fooled CSV parsers: empties, junk, non-finite, huge, negative, bad dates.
HOSTILE_CELLS = [
    "", " ", "abc", "nan", "NaN", "-nan", "inf", "-inf", "Infinity", "-0", "0", "-0.0", "-5", "-1e-300", "1e308",
    "1.8e308", "1e400", "1e30", "1e-320", str(2**70), str(2**63), str(2**63 - 1), str(-(2**63)), str(-(2**63) - 1),
    "99999999999999999999999", "0x1F", "1_000", "1,5", "\u0661\u0662", "\u00a0", "null", "None", "true", "\x00",
    "\ufffd", '"', "é", "2024-02-30", "2024-02-30 00:00:00", "2023-02-29 12:00:00", "2024-13-01 00:00:00",
    "2024-08-24 24:00:00", "2024-08-24 23:59:60", "1970-01-01 00:00:00", "1969-12-31 23:59:59",
    "9999-12-31 23:59:59", "0001-01-01 00:00:00", "2009-12-31 23:59:59", "2024-08-24T22:28:00Z", "2024-08-24",
    "2100-01-01", "2100-01-01 00:00:00", "1970-01-01", "2024-02-30", "9999-12-31", "24-08-24",
]
HOSTILE_JSON: list[Any] = [
    None, [], {}, "abc", "", True, False, 2**70, -(2**70), 2**63, -1, 0, 1e308, -1e308, float("nan"),
    float("inf"), float("-inf"), "1e308", "NaN", str(2**70), 1.5, "2024-02-30T00:00:00", "1970-01-01T00:00:00",
    "9999-12-31T23:59:59", "2100-01-01T00:00:00", [[1]], [[1, 2, 3]], [["a", "b"]], [[None, 1]], [[1e308, 1]],
    [[-1, 1]], [[1, float("inf")]], [[2**70, 1]], [[1, -(2**70)]], "notalist", [1, 2], {"a": 1},
]


def time_variants(r: random.Random) -> list[str]:
    """One plausible instant in s / ms / us / ns / ns*1000, and edge values (0, -1, 2010, 2100)."""
    t = T_S + r.randrange(-10**8, 3 * 10**7)
    return [str(t), str(t * 1000), str(t * 10**6), str(t * 10**9), str(t * 10**12), "0", "-1", "1",
            str(1_262_303_999), str(1_262_303_999_000), str(4_102_444_800_000), str(2**63 - 1), str(2**64)]


@dataclass(frozen=True, slots=True)
class Case:
    name: str  # file name (some layouts take venue/symbol from it)
    data: bytes
    symbol: str | None
    venue: str | None
    how: str  # the mutations applied, for reporting


# --- templates: small real slices --------------------------------------------------------------------
def _text(path: Path) -> list[str]:
    raw = path.read_bytes()
    return (gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).decode().splitlines()


def _thin_levels(obj: dict[str, Any], keys: tuple[str, str], n: int) -> dict[str, Any]:
    return {k: (v[:n] if k in keys and isinstance(v, list) else v) for k, v in obj.items()}


@cache
def templates() -> dict[str, tuple[list[str], list[list[str]]] | list[Any]]:
    """CSV layouts as (header, rows); JSON layouts as lists of objects (binance ws: [local_ts, obj])."""
    out: dict[str, Any] = {}
    joined = _text(SAMPLE / "btc_1m_joined_sample.csv.gz")
    out["joined"] = (joined[0].split(","), [r.split(",") for r in joined[1:7]])
    out["ohlcv"] = (["timestamp", "open", "high", "low", "close", "volume"],
                    [r.split(",")[:6] for r in joined[1:7]])
    fx = _text(SAMPLE / "usdkrw_daily_sample.csv")
    out["fx_daily"] = (fx[0].split(","), [r.split(",") for r in fx[1:]])
    kim = _text(SAMPLE / "kimpai_snapshots_sample.csv.gz")
    want = {("UPBIT", "BTC"), ("UPBIT", "USDT"), ("BINANCE", "BTC"), ("UPBIT", "ETH"), ("BINANCE", "ETH")}
    rows = [r.split(",") for r in kim[1:]]
    out["kimpai"] = (kim[0].split(","), [r for r in rows if (r[2], r[3]) in want][:10])
    kfx = _text(SAMPLE / "kimpai_usdkrw_sample.csv.gz")
    out["kimpai_fx"] = (kfx[0].split(","), [r.split(",") for r in kfx[12:20]])
    l2 = []
    for line in _text(L2)[:14]:
        head, _, body = line.partition(" ")
        obj = json.loads(body)
        if "data" in obj:
            obj["data"] = _thin_levels(obj["data"], ("b", "a"), 3)
        l2.append([int(head), _thin_levels(obj, ("bids", "asks"), 4)])
    out["binance_ws"] = l2
    out["book"] = [_thin_levels(json.loads(x), ("bids", "asks"), 3)
                   for x in _text(SAMPLE / "upbit_KRW-BTC_ob20_sample.jsonl.gz")[:3]]
    out["book"] += [_thin_levels(json.loads(x), ("bids", "asks"), 3)
                    for x in _text(SAMPLE / "binance_BTCUSDT_ob20_sample.jsonl.gz")[:1]]
    return out


@cache
def _template_lines(name: str) -> tuple[str, ...]:
    return tuple(json.dumps(o) for o in templates()[name])  # type: ignore[union-attr]


# --- mutations ---------------------------------------------------------------------------------------
def _cell(r: random.Random, column: str) -> str:
    if any(k in column.lower() for k in ("ts", "time", "updatedat")) and r.random() < 0.6:
        return r.choice(time_variants(r))
    return r.choice(HOSTILE_CELLS)


def _mutate_csv(r: random.Random, header: list[str], rows: list[list[str]], how: list[str]) -> str:
    header, rows = list(header), [list(x) for x in rows]
    for _ in range(r.randint(1, 4)):
        op = r.randrange(13)  # 10..12: more hostile cells (header damage is rarer: it refuses the file)
        ncol = len(header)
        c = r.randrange(ncol)  # the header never becomes empty (deletes keep one column)
        if (op <= 2 or op >= 10) and rows:  # a few hostile cells
            for _ in range(r.randint(1, 3)):
                i = r.randrange(len(rows))
                j = r.randrange(len(rows[i])) if rows[i] else 0
                if rows[i]:
                    rows[i][j] = _cell(r, header[j] if j < ncol else "")
            how.append("cells")
        elif op == 3:  # one column mixing empty and malformed cells
            for row in rows:
                if c < len(row):
                    row[c] = r.choice(["", "", _cell(r, header[c])])
            how.append(f"mixed:{header[c]}")
        elif op == 4 and rows:  # row shapes: truncated, extra cells, duplicated, blank, commas only
            i = r.randrange(len(rows))
            kind = r.randrange(5)
            rows[i] = [rows[i][: r.randrange(len(rows[i]) + 1)], rows[i] + ["x"], rows[i], [""], [""] * ncol][kind]
            if kind == 2:
                rows.insert(i, list(rows[i]))
            how.append(f"row{kind}")
        elif op == 5:  # header: reorder / drop / duplicate / rename a column
            kind = r.randrange(4)
            if kind == 0:
                perm = list(range(ncol))
                r.shuffle(perm)
                header = [header[k] for k in perm]
                if r.random() < 0.5:
                    rows = [[row[k] if k < len(row) else "" for k in perm] for row in rows]
            elif kind == 1 and ncol > 1:
                del header[c]
                if r.random() < 0.5:
                    rows = [row[:c] + row[c + 1:] for row in rows]
            elif kind == 1:
                pass
            elif kind == 2:
                header.insert(c, header[c])
            else:
                header[c] = r.choice([header[c].upper(), f" {header[c]} ", header[c] + "_x", ""])
            how.append(f"header{kind}")
        elif op == 6:  # every row's time in another unit / a hostile time
            tcols = [k for k, h in enumerate(header) if any(x in h.lower() for x in ("ts", "time", "date"))]
            if tcols:
                k = r.choice(tcols)
                for row in rows:
                    if k < len(row):
                        row[k] = _cell(r, "ts")
            how.append("times")
        elif op == 7:
            r.shuffle(rows)
            how.append("shuffle")
        elif op == 8:  # many copies of one row (duplicates)
            if rows:
                rows += [list(rows[0])] * r.randint(1, 5)
            how.append("dups")
        else:  # quoted cell with a comma / newline inside
            if rows and rows[0]:
                rows[0][r.randrange(len(rows[0]))] = r.choice(['"1,5"', '"a\nb"', '"', '""', "'x'"])
            how.append("quotes")
    return "\n".join([",".join(header), *(",".join(row) for row in rows)]) + "\n"


def _set_random_key(r: random.Random, obj: Any, how: list[str]) -> None:
    """Replace one value somewhere in a nested dict with a hostile JSON value (or delete the key)."""
    while isinstance(obj, dict) and obj:
        key = r.choice(sorted(obj))
        if isinstance(obj[key], dict) and r.random() < 0.7:
            obj = obj[key]
            continue
        if r.random() < 0.15:
            del obj[key]
            how.append(f"del:{key}")
        else:
            v = r.choice(HOSTILE_JSON)
            if key in ("E", "T") and r.random() < 0.5:  # ms times in other units
                v = int(r.choice(time_variants(r)))
            obj[key] = v
            how.append(f"set:{key}")
        return


def _dump(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))  # NaN / Infinity go out as JSON extensions on purpose


def _mutate_json(r: random.Random, name: str, objs: list[Any], how: list[str]) -> str:
    objs = [json.loads(x) for x in _template_lines(name)]  # a fresh deep copy
    for _ in range(r.randint(1, 4)):
        op = r.randrange(8)
        i = r.randrange(len(objs))
        target = objs[i][1] if name == "binance_ws" and isinstance(objs[i], list) else objs[i]
        if op <= 3:
            _set_random_key(r, target, how)
        elif op == 4 and name == "binance_ws" and isinstance(objs[i], list):  # the local ns time prefix
            objs[i][0] = r.choice([*time_variants(r), "abc", "-5", "1.5e18", ""])
            how.append("local_ts")
        elif op == 5:  # lines that are not objects / deep nesting / truncated
            objs.insert(i, r.choice(["RAW:[1,2]", "RAW:\"s\"", "RAW:" + "[" * 5000, "RAW:{\"a\":", "RAW:null"]))
            how.append("rawline")
        elif op == 6:
            objs.append(json.loads(json.dumps(objs[i])))
            how.append("dup")
        else:  # many levels (int16 level column), or none
            data = target.get("data", target) if isinstance(target, dict) else None
            if isinstance(data, dict):
                key = r.choice(["b", "a", "bids", "asks"])
                big = r.choice([2, 2, 2, 2, 2, 5001])  # 5001: beyond the level limit
                data[key] = r.choice([[], [["1", "1"]] * big, [[1.0, 1.0]] * 3])
            how.append("levels")

    def line(o: Any) -> str:
        if isinstance(o, str) and o.startswith("RAW:"):
            return o[4:]
        if name == "binance_ws" and isinstance(o, list):
            return f"{o[0]} {_dump(o[1])}"
        return _dump(o)

    return "\n".join(line(o) for o in objs) + "\n"


def _mutate_bytes(r: random.Random, data: bytes, how: list[str]) -> bytes:
    for _ in range(r.choice([0, 0, 1, 2])):
        op = r.randrange(7)
        body = data.find(b"\n") + 1 if r.random() < 0.85 else 0  # mostly spare the header line
        pos = r.randrange(body, len(data) + 1)
        if op == 0:
            data = data[:pos]
            how.append("truncate")
        elif op == 1:
            data = data[:pos] + r.randbytes(r.randint(1, 16)) + data[pos:]
            how.append("junk")
        elif op == 2:
            data = data.replace(b"\n", b"\r\n")
            how.append("crlf")
        elif op == 3:
            data = data.replace(b"\n", b"\r")
            how.append("cr")
        elif op == 4:
            data = data[:pos] + b"\xff\xfe\x00" + data[pos:]
            how.append("badutf8")
        elif op == 5:
            data = data[:pos] + b"\n" + data[pos:]
            how.append("newline")
        else:
            data = data.rstrip(b"\n")
            how.append("noeol")
    return data


def _wrap(r: random.Random, data: bytes, how: list[str]) -> bytes:
    op = r.randrange(14)
    if op == 0:
        how.append("bom8")
        return b"\xef\xbb\xbf" + data
    if op == 1:
        how.append("utf16")
        return data.decode("utf-8", "replace").encode("utf-16")
    if op == 2:
        how.append("latin1")
        return data.decode("utf-8", "replace").replace("\ufffd", "é").encode("latin-1", "replace")
    if op in (3, 4, 5):
        how.append("gzip")
        return gzip.compress(data, mtime=0)
    if op == 6:
        how.append("gzip-truncated")
        z = gzip.compress(data, mtime=0)
        return z[: r.randrange(2, len(z))]
    if op == 7:
        how.append("gzip-flipped")
        z = bytearray(gzip.compress(data, mtime=0))
        for _ in range(3):
            z[r.randrange(10, len(z))] ^= 0xFF
        return bytes(z)
    if op == 8:
        how.append("gzip-gzip")
        return gzip.compress(gzip.compress(data, mtime=0), mtime=0)
    return data


def _whole_file(r: random.Random, how: list[str]) -> bytes:
    op = r.randrange(7)
    how.append(f"whole{op}")
    return [b"", r.randbytes(r.randint(1, 300)), gzip.compress(r.randbytes(200), mtime=0),
            b"\x1f\x8b" + r.randbytes(50), b"\x28\xb5\x2f\xfd" + r.randbytes(50), b"\n\n\n",
            "\ufeff".encode("utf-16")][op]


_NAMES = {"joined": "joined.csv", "ohlcv": "upbit_KRW-BTC_1m_fz.csv", "fx_daily": "fx.csv",
          "kimpai": "prices.csv", "kimpai_fx": "usdkrw.csv", "binance_ws": "l2.txt", "book": "ob.jsonl"}


def make_case(seed: int, i: int) -> Case:
    """Case ``i`` of the run seeded ``seed``: a real layout mutated 1-4 times, maybe re-encoded or compressed."""
    r = random.Random(seed * 1_000_003 + i)
    how: list[str] = []
    name = r.choice(sorted(_NAMES))
    tpl = templates()[name]
    symbol: str | None = None
    venue: str | None = None
    if name == "joined":
        symbol = r.choice(["BTC", "BTC", "BTC", "eth", None, "", "KRW-BTC", "A" * 30, "BTC/USDT/X"])
    elif name == "ohlcv":
        fname = r.choice([_NAMES["ohlcv"], "BTC_USDT_2024_1m.csv", "bars.csv"])
        if fname == "bars.csv" or r.random() < 0.2:
            venue, symbol = r.choice([("upbit", "KRW-BTC"), ("binance", "BTCUSDT"), ("binance", "BTC-USDT"),
                                      ("upbit", "BTC"), ("upbit", "USDT"), ("upbit", None), (None, "BTC")])
    elif r.random() < 0.1:
        symbol, venue = r.choice([("BTC", None), ("ETH", "upbit"), (None, "binance")])
    fname = fname if name == "ohlcv" else _NAMES[name]
    if r.random() < 0.04:
        data = _whole_file(r, how)
    else:
        text = _mutate_csv(r, tpl[0], tpl[1], how) if isinstance(tpl, tuple) else _mutate_json(r, name, tpl, how)
        data = _wrap(r, _mutate_bytes(r, text.encode("utf-8", "surrogatepass"), how), how)
    return Case(f"{i:06d}-{fname}", data, symbol, venue, f"{name}:" + ",".join(how))


# --- harness -----------------------------------------------------------------------------------------
@dataclass(slots=True)
class FuzzStats:
    files: int = 0
    file_errors: int = 0  # files refused as a whole (documented per-file error result)
    crashes: list[str] = field(default_factory=list)  # exception escaped run_import (or an unexpected error)
    implausible: list[str] = field(default_factory=list)  # stored rows outside the plausibility ranges
    implausible_rows: int = 0
    rows_stored: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    crash_kinds: Counter[str] = field(default_factory=Counter)
    implausible_kinds: Counter[str] = field(default_factory=Counter)
    error_kinds: Counter[str] = field(default_factory=Counter)


def _error_shape(error: str) -> str:
    for shape in ("unknown layout", "--symbol", "--venue", "no usable rows"):
        if shape in error:
            return shape
    return error.splitlines()[0].split(": ")[1] if ": " in error else error[:40]


def run_fuzz(seed: int, n: int, work: Path, files_per_store: int = 10,
             on_case: Callable[[Case], None] | None = None) -> FuzzStats:
    """Import ``n`` generated files one at a time; re-read every series an import touched and check it."""
    from arbitrage_lite.infra.data import importer
    from arbitrage_lite.infra.data.plausible import count_violations
    from arbitrage_lite.infra.data.store import Store

    takes_now = "now_ns" in inspect.signature(importer.run_import).parameters
    stats = FuzzStats()
    files = work / "files"
    files.mkdir(parents=True, exist_ok=True)
    store_root = work / "store"
    for i in range(n):
        if i % files_per_store == 0:
            shutil.rmtree(store_root, ignore_errors=True)
        case = make_case(seed, i)
        if on_case is not None:
            on_case(case)
        path = files / case.name
        path.write_bytes(case.data)
        stats.files += 1
        kwargs: dict[str, Any] = {"now_ns": NOW_NS} if takes_now else {}
        try:
            results = importer.run_import([path], store_root, symbol=case.symbol, venue=case.venue, **kwargs)
        except importer.DataImportError as e:
            results = e.results
        except Exception as e:  # the point: anything else escaping is a crash
            frame = traceback.extract_tb(e.__traceback__)[-1]
            stats.crash_kinds[f"{type(e).__name__} at {Path(frame.filename).name}:{frame.lineno}"] += 1
            stats.crashes.append(f"{case.name} [{case.how}]: {type(e).__name__}: {str(e)[:200]}")
            path.unlink()
            continue
        path.unlink()
        for res in results:
            unexpected = getattr(res, "error_kind", None) == "unexpected"
            if unexpected:
                stats.crash_kinds[f"unexpected: {(res.error or '').splitlines()[0][-80:]}"] += 1
                stats.crashes.append(f"{case.name} [{case.how}]: {res.error}")
            elif res.error is not None:
                stats.file_errors += 1
                stats.error_kinds[getattr(res, "error_kind", None) or _error_shape(res.error)] += 1
            stats.reasons.update(res.report.counts)
        st = Store(store_root)
        for res in results:
            for s in res.series:
                if not st.has(s.kind, s.venue, s.symbol):
                    continue
                t = st.read(s.kind, s.venue, s.symbol)
                bad = count_violations(s.kind, s.symbol, t, NOW_NS)
                stats.rows_stored += t.num_rows if s.rows_added else 0
                if bad:
                    stats.implausible_rows += sum(bad.values())
                    stats.implausible_kinds.update(bad)
                    stats.implausible.append(f"{case.name} [{case.how}] {s.kind}/{s.venue}/{s.symbol}: {bad}")
                    shutil.rmtree(store_root, ignore_errors=True)  # report each bad file once
                    break
    return stats


def scratch_root() -> str | None:
    """RAM-backed scratch space if there is one: the store fsyncs every write, which on disk costs
    more than the whole import of a small file."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None


def main(argv: list[str]) -> int:
    import tempfile
    import time

    n = int(argv[1]) if len(argv) > 1 else 2500
    seed = int(argv[2]) if len(argv) > 2 else 11
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=scratch_root()) as tmp:
        st = run_fuzz(seed, n, Path(tmp))
    print(f"files {st.files}  file-level errors {st.file_errors}  crashes {len(st.crashes)}  "
          f"files storing implausible values {len(st.implausible)} ({st.implausible_rows} rows)  "
          f"{time.perf_counter() - t0:.1f} s")
    for k, v in st.crash_kinds.most_common(12):
        print(f"  crash {v:>5}  {k}")
    for k, v in st.error_kinds.most_common(12):
        print(f"  file error {v:>5}  {k}")
    for k, v in st.implausible_kinds.most_common():
        print(f"  implausible {k}: {v} rows")
    for line in (st.crashes[:5] + st.implausible[:8]):
        print("  e.g.", line[:300])
    print("  rejection reasons:", dict(st.reasons.most_common()))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO.parent))
    build()
    raise SystemExit(main(sys.argv))
