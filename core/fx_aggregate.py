"""USDT/KRW and USD/KRW from several sources: the median of the fresh quotes, outliers rejected.

Each source's *latest* quote stands for it: a source whose latest quote is NaN, inf, <= 0 or too old is
rejected with that reason, and its older good quotes are not used in its place. With fewer than
``min_sources`` usable quotes the reading is stale: it carries the last good rate, for display only,
and callers must not open trades. There is no default rate (never 1.0): with no good value ever, ``rate``
is None. Rates are floats (signal math); money goes through the ledger.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

SNAPSHOT_VERSION = 1
USDT_KRW = "USDT/KRW"
USD_KRW = "USD/KRW"


class Rejection(StrEnum):
    STALE = "stale"
    OUTLIER = "outlier"
    NON_FINITE = "non-finite"
    NON_POSITIVE = "non-positive"


@dataclass(frozen=True, slots=True)
class FxQuote:
    source: str
    pair: str
    rate: float  # quote currency per base, e.g. KRW per USDT
    ts_ns: int  # when the source observed it, UTC


@dataclass(frozen=True, slots=True)
class RejectedQuote:
    source: str
    rate: float
    reason: Rejection
    detail: str


@dataclass(frozen=True, slots=True)
class FxReading:
    pair: str
    rate: float | None  # the aggregate; when stale, the last good one (None if there never was one)
    sources_used: tuple[str, ...]
    rejected: tuple[RejectedQuote, ...]
    stale: bool  # True: do not open trades on this rate
    as_of_ns: int | None  # when ``rate`` was last computed from enough fresh sources


class FxAggregator:
    def __init__(self, max_age_ns: int, outlier_bps: float, min_sources: int) -> None:
        if max_age_ns <= 0:
            raise ValueError(f"max_age_ns must be > 0, got {max_age_ns}")
        if not (outlier_bps > 0 and math.isfinite(outlier_bps)):
            raise ValueError(f"outlier_bps must be a positive finite number, got {outlier_bps}")
        if min_sources < 1:
            raise ValueError(f"min_sources must be >= 1, got {min_sources}")
        self.max_age_ns, self.outlier_bps, self.min_sources = max_age_ns, outlier_bps, min_sources
        self._quotes: dict[str, dict[str, FxQuote]] = {}  # pair -> source -> latest quote
        self._last_good: dict[str, tuple[float, int]] = {}  # pair -> (rate, as_of_ns)

    def update(self, quote: FxQuote) -> Rejection | None:
        """Keep the source's latest quote (an older one arriving late is ignored). Returns the reason the
        quote is unusable whatever the time (non-finite / non-positive), else None."""
        per_source = self._quotes.setdefault(quote.pair, {})
        held = per_source.get(quote.source)
        if held is None or quote.ts_ns >= held.ts_ns:
            per_source[quote.source] = quote
        return _value_problem(quote.rate)

    def rate(self, pair: str, now_ns: int) -> FxReading:
        fresh: list[FxQuote] = []
        rejected: list[RejectedQuote] = []
        for source, q in sorted(self._quotes.get(pair, {}).items()):
            problem = _value_problem(q.rate)
            if problem is not None:
                rejected.append(RejectedQuote(source, q.rate, problem, f"rate {q.rate!r} is {problem.value}"))
            elif now_ns - q.ts_ns > self.max_age_ns:
                age_s = (now_ns - q.ts_ns) / 1e9
                rejected.append(RejectedQuote(source, q.rate, Rejection.STALE,
                                              f"{age_s:.3f} s old > {self.max_age_ns / 1e9:.3f} s"))
            else:
                fresh.append(q)
        used = fresh
        if fresh:
            first_median = statistics.median(q.rate for q in fresh)
            used = []
            for q in fresh:
                dev_bps = abs(q.rate / first_median - 1.0) * 1e4
                if dev_bps > self.outlier_bps:
                    rejected.append(RejectedQuote(q.source, q.rate, Rejection.OUTLIER,
                                                  f"{dev_bps:.1f} bps from median {first_median} > {self.outlier_bps}"))
                else:
                    used.append(q)
        if len(used) >= self.min_sources:
            self._last_good[pair] = (statistics.median(q.rate for q in used), now_ns)
            stale = False
        else:
            stale = True
        rate, as_of = self._last_good.get(pair, (None, None))
        return FxReading(pair, rate, tuple(q.source for q in used), tuple(rejected), stale, as_of)

    def snapshot(self) -> dict[str, Any]:
        """JSON-serializable; non-finite rates are kept as their ``repr`` strings (JSON has no NaN)."""
        return {
            "version": SNAPSHOT_VERSION,
            "quotes": [[q.source, q.pair, repr(q.rate), q.ts_ns]
                       for pair in sorted(self._quotes) for _, q in sorted(self._quotes[pair].items())],
            "last_good": {pair: [repr(r), ts] for pair, (r, ts) in sorted(self._last_good.items())},
        }

    def restore(self, snapshot: Mapping[str, Any]) -> None:
        if snapshot.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"unsupported fx snapshot version {snapshot.get('version')!r}, "
                             f"expected {SNAPSHOT_VERSION}")
        self._quotes = {}
        for source, pair, rate, ts in snapshot["quotes"]:
            self._quotes.setdefault(pair, {})[source] = FxQuote(source, pair, float(rate), int(ts))
        self._last_good = {pair: (float(r), int(ts)) for pair, (r, ts) in snapshot["last_good"].items()}


def _value_problem(rate: float) -> Rejection | None:
    if not isinstance(rate, int | float) or isinstance(rate, bool) or not math.isfinite(rate):
        return Rejection.NON_FINITE
    if rate <= 0:
        return Rejection.NON_POSITIVE
    return None
