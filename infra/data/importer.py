"""Import source files into the store: detect layout, parse, validate, merge, report.

Each file is parsed and validated completely before anything is written. Every row is either stored or
rejected with a counted reason (``ValidationReport``; ranges in ``plausible.py``). A file that cannot be
read at all (unknown layout, corrupt compression, missing --symbol) is one error for that file and writes
nothing; the other files still import and the failures are raised together at the end
(``DataImportError``, which carries every result; ``ImportResult.error_kind`` says which kind).
A JSON report per file goes to ``STORE/_imports/<NNNNNN>-<filename>.json``; it holds no wall-clock
time, so the same imports into a fresh store produce identical files.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from arbitrage_lite.infra.data.layouts import (
    LayoutError,
    ParsedSeries,
    UnreadableFileError,
    detect_layout,
    read_bytes,
)
from arbitrage_lite.infra.data.store import Store, check_key
from arbitrage_lite.infra.data.validate import ValidationReport, clean

IMPORTS_DIR = "_imports"


@dataclass(frozen=True, slots=True)
class SeriesResult:
    kind: str
    venue: str
    symbol: str
    rows_parsed: int  # rows the parser produced for this series
    rows_valid: int  # rows left after validation (offered to the store)
    rows_added: int  # rows new to the store
    rows_total: int  # rows in the stored series afterwards


@dataclass(slots=True)
class ImportResult:
    path: Path
    layout: str | None
    report: ValidationReport
    series: list[SeriesResult] = field(default_factory=list)
    error: str | None = None
    # "unreadable" (I/O, corrupt compression), "layout" (unknown layout, missing --symbol/--venue, nothing
    # usable) or "unexpected" (a bug: any other exception, kept to this file so the others still import)
    error_kind: str | None = None
    sha256: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.path.name,
            "sha256": self.sha256,
            "layout": self.layout,
            "error": self.error,
            "error_kind": self.error_kind,
            "series": [
                {"kind": s.kind, "venue": s.venue, "symbol": s.symbol, "rows_parsed": s.rows_parsed,
                 "rows_valid": s.rows_valid, "rows_added": s.rows_added, "rows_total": s.rows_total}
                for s in self.series
            ],
            "validation": self.report.to_dict(),
        }


class DataImportError(RuntimeError):
    """One or more files could not be imported; ``results`` holds every file's outcome."""

    def __init__(self, results: list[ImportResult]) -> None:
        self.results = results
        failed = [r for r in results if r.error is not None]
        lines = [f"{len(failed)} of {len(results)} file(s) could not be imported (nothing written for them):"]
        lines += [f"- {r.error}" for r in failed]
        super().__init__("\n".join(lines))


def _parse_file(path: Path, symbol: str | None, venue: str | None, result: ImportResult, now_ns: int
                ) -> list[tuple[ParsedSeries, pa.Table]]:
    data = read_bytes(path)
    try:
        result.sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as e:
        raise UnreadableFileError(f"{path}: cannot read the file ({e})") from None
    layout = detect_layout(path, data)
    result.layout = layout.name
    parsed = layout.parse(path, data, symbol, venue, result.report)
    if not parsed and not result.report.count("skipped"):
        raise LayoutError(f"{path}: recognised as {layout.name} but no usable rows were found")
    out: list[tuple[ParsedSeries, pa.Table]] = []
    for s in parsed:
        try:
            check_key(s.kind, s.venue, s.symbol)
        except ValueError as e:
            raise LayoutError(f"{path}: {e}") from None
        label = f"{s.kind}/{s.venue}/{s.symbol}"
        out.append((s, clean(s.kind, s.table, result.report, label, s.symbol, now_ns)))
    return out


def _write_report(store_root: Path, result: ImportResult) -> None:
    folder = store_root / IMPORTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    n = len(list(folder.glob("*.json"))) + 1
    target = folder / f"{n:06d}-{result.path.name}.json"
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(json.dumps(result.to_dict(), indent=1, sort_keys=True) + "\n")
    tmp.replace(target)


def run_import(paths: list[Path], store: Path, symbol: str | None = None, venue: str | None = None,
               now_ns: int | None = None) -> list[ImportResult]:
    """Import ``paths`` into the store at ``store``; raises ``DataImportError`` after the loop if any failed.

    ``symbol``/``venue`` supply what a layout cannot know from its content (see ``layouts.LAYOUTS``).
    ``now_ns`` bounds plausible times (now + 1 day); this I/O entry point reads the wall clock once when it
    is not given, the validation below it takes it as an argument.
    """
    if venue is not None and venue not in ("upbit", "binance"):
        raise ValueError(f"--venue must be upbit or binance, got {venue!r}")
    now = time.time_ns() if now_ns is None else now_ns
    st = Store(Path(store))
    results: list[ImportResult] = []
    for raw in paths:
        path = Path(raw)
        result = ImportResult(path=path, layout=None, report=ValidationReport(source=path.name))
        results.append(result)
        try:
            _import_one(st, path, symbol, venue, result, now)
        except LayoutError as e:
            msg = str(e) if str(e).startswith(str(path)) else f"{path}: {e}"
            _fail(result, "unreadable" if isinstance(e, UnreadableFileError) else "layout", msg)
        except Exception as e:  # a bug costs this file only; the fuzz test counts these
            _fail(result, "unexpected", f"{path}: unexpected {type(e).__name__}: {e}")
    if any(r.error is not None for r in results):
        raise DataImportError(results)
    return results


def _fail(result: ImportResult, kind: str, message: str) -> None:
    result.error, result.error_kind = message, kind
    result.report = ValidationReport(source=result.path.name)
    result.series = []


def _import_one(st: Store, path: Path, symbol: str | None, venue: str | None, result: ImportResult,
                now_ns: int) -> None:
    cleaned = _parse_file(path, symbol, venue, result, now_ns)
    with st.batch():
        for s, table in cleaned:
            if table.num_rows == 0 and not st.has(s.kind, s.venue, s.symbol):
                result.series.append(SeriesResult(s.kind, s.venue, s.symbol, s.table.num_rows, 0, 0, 0))
                continue  # nothing valid: do not create an empty series
            stats = st.write(s.kind, s.venue, s.symbol, table, source=path.name)
            label = f"{s.kind}/{s.venue}/{s.symbol}"
            result.report.add("already_in_store", stats.duplicates_dropped,
                              f"{label}: {stats.duplicates_dropped} rows")
            result.report.add("key_conflicts", stats.key_conflicts, f"{label}: {stats.key_conflicts} rows")
            result.series.append(SeriesResult(s.kind, s.venue, s.symbol, s.table.num_rows,
                                              table.num_rows, stats.rows_added, stats.rows_after))
        st.record_import(path.name, result.sha256, result.layout or "",
                         [f"{s.kind}/{s.venue}/{s.symbol}" for s in result.series])
    _write_report(st.root, result)


def format_import_results(results: list[ImportResult], max_series: int = 12) -> str:
    """Readable summary: one block per file, a table of series, then the validation counts."""
    out: list[str] = []
    for r in results:
        out.append(f"== {r.path.name}  [{r.layout or 'unrecognised'}]")
        if r.error is not None:
            first, *more = r.error.splitlines()
            out.append(f"   ERROR {first}")
            out.extend(f"         {line}" for line in more)
            continue
        out.append(f"   {'kind':<11}{'venue':<9}{'symbol':<14}{'parsed':>10}{'valid':>10}{'added':>10}{'total':>10}")
        for s in r.series[:max_series]:
            out.append(f"   {s.kind:<11}{s.venue:<9}{s.symbol:<14}{s.rows_parsed:>10}{s.rows_valid:>10}"
                       f"{s.rows_added:>10}{s.rows_total:>10}")
        if len(r.series) > max_series:
            rest = r.series[max_series:]
            out.append(f"   ... {len(rest)} more series: {sum(s.rows_valid for s in rest)} valid rows, "
                       f"{sum(s.rows_added for s in rest)} added")
        out.extend("   " + line for line in r.report.render_text().splitlines())
    return "\n".join(out)
