"""SYNTHETIC market for the fake venues: Upbit KRW and Binance USDT books for many coins, from recorded prices.

Real two-venue books exist only for BTC (a few minutes); the kimpai snapshots give last prices of 177 coins on
both venues and KRW-USDT every ~5 min. This module turns those into books, purely (seeded, no I/O, no clock):

* Mids. Binance mid = the coin's recorded Binance price (linear between knots, recorded time = start +
  wall time x ``speed``) x exp(noise); the noise is a Brownian bridge pinned to 0 at every knot (scale: the
  coin's realised volatility), then mean-reverting after the last knot. KRW-USDT mid = the recorded KRW-USDT
  x exp(its own bridge). Upbit mid = Binance mid x KRW-USDT mid x (1 + the coin's recorded premium,
  interpolated), so the premium the engine sees is the recorded one, exactly at the knots.
* Books. 20 levels a side on the venue's grid (Upbit's KRW tick table, Binance's tick from the recorded
  exchangeInfo), kept as ``{price units: qty units}`` (1e-8 integers): levels persist at their prices while the
  mid moves; levels the new spread crosses go, new levels fill in, a few sizes change per update (churn).
* Calibration (:data:`CALIBRATION`) on the real BTC top-20 books (orderbook_snapshots, 2025-08-24: 8 Upbit, 3
  Binance) and the Binance BTCUSDT L2 diffs (2024-08-08): relative spread, gap between levels, log-normal
  notional per level (top level apart), levels changed per update. Other coins: BTC's values scaled by their
  24 h traded value relative to BTC's, L: spread and gap x L^-1/2, notional x L^1/2 (an assumption: BTC is
  the only coin with real books), never below one tick / the venue's minimum order.

Updates come from :meth:`SyntheticMarket.due`: per symbol on a fixed grid (``rate`` Hz, phases spread over
symbols), so what is generated depends on the seed only, not on when the server gets to run.
"""

from __future__ import annotations

import bisect
import heapq
import math
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

from ....core.rules import SCALE, SCALE_DEC, UPBIT_BAND_LOWER, UPBIT_BAND_TICK, UPBIT_TABLE_START_NS
from .engine import Book
from .synthetic_data import CoinPath, FxPath, MarketPaths

Venue = Literal["binance", "upbit"]
FX_CODE = "KRW-USDT"
OU_TAU_S = 300.0  # after the last knot the noise reverts to 0 with this time scale (recorded seconds)


@dataclass(frozen=True, slots=True)
class Shape:
    """One venue's book shape for BTC (scaled per coin by :func:`shape_for`)."""

    spread_bps: float  # typical best ask - best bid, relative to mid
    gap_bps: float  # mean distance between adjacent levels
    top_log_notional: float  # log of the median quote value at the best level
    log_notional: float  # log of the median quote value at the other levels
    log_sd: float  # their log-normal spread
    top_log_sd: float  # the best level's (much tighter: the queue at the touch is always deep)
    churn: float  # levels whose size changes per update (Poisson mean)
    min_notional: float  # no level below this value (the venue's minimum order)


# Fitted on the real BTC books (see module docstring); values in the venue's quote currency.
CALIBRATION: dict[str, Shape] = {
    # BTCUSDT top-20 (3 books): spread 1 tick (0.001 bps), gaps mean 0.024 bps, best level median 666k USDT,
    # sd 0.5, others log-mean 5.60 (median 270 USDT) sd 3.33; L2 diffs: median 5 entries within 1 bps of mid
    # per 100 ms
    "binance": Shape(0.0, 0.024, math.log(666_000.0), 5.60, 3.33, 0.5, 5.0, 5.0),
    # KRW-BTC top-20 (8 books): spread 0.44-0.94 bps, gaps mean 0.257 bps, best level median 1.93M KRW,
    # sd 1.2, others log-mean 14.25 (median 1.5M KRW) sd 2.50; a few levels change between snapshots
    "upbit": Shape(0.69, 0.257, math.log(1_930_000.0), 14.25, 2.50, 1.2, 2.0, 5000.0),
}
MAX_SPREAD_BPS, MAX_GAP_BPS = 50.0, 20.0


def shape_for(venue: Venue, liquidity: float) -> Shape:
    """BTC's shape scaled to a coin trading ``liquidity`` x BTC's 24 h value (see module docstring)."""
    ref = CALIBRATION[venue]
    k = math.sqrt(max(liquidity, 1e-6))
    return Shape(min(ref.spread_bps / k, MAX_SPREAD_BPS), min(ref.gap_bps / k, MAX_GAP_BPS),
                 ref.top_log_notional + math.log(k), ref.log_notional + math.log(k), ref.log_sd, ref.top_log_sd,
                 max(ref.churn * math.sqrt(k), 0.5), ref.min_notional)


@dataclass(frozen=True, slots=True)
class SyntheticSpec:
    """What the fakes generate: which coins, how fast, from which seed. Labelled synthetic everywhere."""

    coins: tuple[str, ...] = ()  # bases; empty: the top_n by recorded Upbit traded value
    top_n: int = 50
    rate_binance_hz: float = 10.0  # depth@100ms: at most 10 diffs/s per symbol
    rate_upbit_hz: float = 5.0
    seed: int = 0
    speed: float = 1.0  # recorded seconds per wall second
    start_offset_s: float = 0.0  # where in the recorded span the market starts (recorded seconds)
    levels: int = 20
    balance_usdt: Decimal = Decimal(2000)  # per coin, the base asset held on each venue (worth this many USDT)


class Grid:
    """A price grid in 1e-8 units: bands ``(lower, tick)`` highest first (one band: Binance's constant tick)."""

    def __init__(self, bands: Iterable[tuple[int, int]]) -> None:
        self.bands = tuple(sorted(bands, reverse=True))
        self._last = (self.bands[0][0], 1 << 62, self.bands[0][1])  # the band of the last lookup: [lo, hi)

    def tick(self, p: int) -> int:
        lo, hi, t = self._last
        if lo <= p < hi:
            return t
        hi = 1 << 62
        for lo, t in self.bands:
            if p >= lo:
                self._last = (lo, hi, t)
                return t
            hi = lo
        return self.bands[-1][1]

    def floor(self, x: float) -> int:
        p = int(x)
        t = self.tick(p)
        return p // t * t

    def shift(self, p: int, n: int) -> int:
        """``n`` ticks up (n > 0) or down (n < 0), crossing bands tick by tick."""
        if len(self.bands) == 1:
            return p + n * self.bands[0][1]
        for _ in range(abs(n)):
            p = p + self.tick(p) if n > 0 else p - self.tick(p - 1)
        return p


def upbit_grid(ts_ns: int) -> Grid:
    """Upbit's KRW tick table in force at ``ts_ns`` (core.rules, the one the fake checks orders against)."""
    version = max(i for i in range(len(UPBIT_TABLE_START_NS)) if ts_ns >= UPBIT_TABLE_START_NS[i])
    return Grid((int(lo), int(t)) for lo, t in zip(UPBIT_BAND_LOWER[version], UPBIT_BAND_TICK[version],
                                                    strict=True) if lo >= 0)


class Bridge:
    """Log-price noise pinned to 0 at the knots (a Brownian bridge between them), OU after the last one.

    Must be read at non-decreasing times (the market serves updates in time order)."""

    def __init__(self, knots: tuple[float, ...], sigma: float, rng: random.Random) -> None:
        self.knots, self.sigma, self.rng = knots, sigma, rng
        self.t: float | None = None
        self.x = 0.0
        self.i = 0

    def at(self, t: float) -> float:
        if self.t is None:
            self.t, self.i = t, bisect.bisect_right(self.knots, t)
        while self.i < len(self.knots) and self.knots[self.i] <= t:
            self.t, self.x = self.knots[self.i], 0.0
            self.i += 1
        dt = t - self.t
        if dt <= 0:
            return self.x
        if self.i < len(self.knots):
            rem = self.knots[self.i] - self.t
            mean, var = self.x * (rem - dt) / rem, self.sigma ** 2 * dt * (rem - dt) / rem
        else:
            a = math.exp(-dt / OU_TAU_S)
            mean, var = self.x * a, self.sigma ** 2 * OU_TAU_S / 2 * (1 - a * a)
        self.x = mean + math.sqrt(max(var, 0.0)) * self.rng.gauss(0.0, 1.0)
        self.t = t
        return self.x


def interp(ts: tuple[float, ...], vs: tuple[float, ...], t: float) -> float:
    """Linear between knots, flat outside them."""
    i = bisect.bisect_right(ts, t)
    if i == 0:
        return vs[0]
    if i == len(ts):
        return vs[-1]
    t0, t1 = ts[i - 1], ts[i]
    return vs[i - 1] + (vs[i] - vs[i - 1]) * (t - t0) / (t1 - t0)


@dataclass(slots=True)
class Ladder:
    """One venue's book of one coin, in 1e-8 units, kept at ``levels`` a side around a moving mid."""

    grid: Grid
    shape: Shape
    step: int  # quantity step (1e-8 units)
    levels: int
    rng: random.Random
    bids: dict[int, int] = field(default_factory=dict)
    asks: dict[int, int] = field(default_factory=dict)
    spread_ticks: int = 0
    # the same levels as Decimals, updated from each update's changes (a book is built at every update)
    dec: dict[str, dict[int, tuple[Decimal, Decimal]]] = field(default_factory=lambda: {"b": {}, "a": {}})

    def update(self, mid: float) -> dict[str, dict[int, int]]:
        """Move the book to ``mid`` (quote currency); returns the changed levels per side (qty 0: removed)."""
        mid_u = mid * SCALE
        tick = self.grid.tick(int(mid_u))
        want = self.shape.spread_bps * 1e-4 * mid_u / tick
        if self.spread_ticks == 0 or self.rng.random() < 0.1:
            self.spread_ticks = max(1, round(want * math.exp(self.rng.gauss(0.0, 0.35))))
        bid = self.grid.floor(mid_u - self.spread_ticks * tick / 2)
        ask = self.grid.shift(bid, self.spread_ticks)
        if ask < mid_u:
            bid, ask = self.grid.shift(bid, 1), self.grid.shift(ask, 1)
        gap = max(1.0, self.shape.gap_bps * 1e-4 * mid_u / tick)
        changes: dict[str, dict[int, int]] = {"b": {}, "a": {}}
        self._side(self.bids, bid, -1, gap, changes["b"])
        self._side(self.asks, ask, 1, gap, changes["a"])
        self._churn(changes)
        for key, changed in changes.items():
            levels = self.dec[key]
            for p, q in changed.items():
                if q:
                    levels[p] = (_dec(p), Decimal(q) / SCALE_DEC)
                else:
                    levels.pop(p, None)
        return changes

    def _side(self, side: dict[int, int], best: int, out: int, gap: float, changes: dict[int, int]) -> None:
        """``out`` = -1 for bids (worse is lower), +1 for asks."""
        for p in [p for p in side if (p - best) * out < 0]:  # inside the new spread or crossed
            del side[p]
            changes[p] = 0
        if best not in side:
            side[best] = changes[best] = self._qty(best, top=True)
        order = sorted(side, reverse=out < 0)
        nxt = order[1] if len(order) > 1 else None
        p, added = best, 0
        while nxt is not None and added < self.levels:  # fill the room the mid opened between best and the rest
            p = self.grid.shift(p, out * self._gap(gap))
            if (p - nxt) * out >= 0:
                break
            side[p] = changes[p] = self._qty(p, top=False)
            added += 1
        order = sorted(side, reverse=out < 0)
        for p in order[self.levels:]:
            del side[p]
            changes[p] = 0
        p = order[min(len(order), self.levels) - 1]
        while len(side) < self.levels:
            p = self.grid.shift(p, out * self._gap(gap))
            if p <= 0:
                break
            side[p] = changes[p] = self._qty(p, top=False)

    def _gap(self, mean: float) -> int:
        """Ticks to the next level: 1 + geometric with the calibrated mean."""
        if mean <= 1.0:
            return 1
        return 1 + int(self.rng.expovariate(1.0 / (mean - 1.0)))

    def _qty(self, p: int, top: bool) -> int:
        s = self.shape
        z = max(-2.0, min(2.0, self.rng.gauss(0.0, 1.0)))
        mu, sd = (s.top_log_notional, s.top_log_sd) if top else (s.log_notional, s.log_sd)
        notional = max(math.exp(mu + sd * z), s.min_notional)
        units = notional / p * SCALE * SCALE  # quote value / price, in 1e-8 units of the base
        return max(self.step, int(units / self.step) * self.step)

    def _churn(self, changes: dict[str, dict[int, int]]) -> None:
        n = _poisson(self.rng, self.shape.churn)
        for _ in range(n):
            key = "b" if self.rng.random() < 0.5 else "a"
            side = self.bids if key == "b" else self.asks
            order = sorted(side, reverse=key == "b")
            i = min(int(self.rng.expovariate(0.25)), len(order) - 1)
            side[order[i]] = changes[key][order[i]] = self._qty(order[i], top=i == 0)

    def book(self, ts_ms: int, update_id: int) -> Book:
        bids, asks = self.dec["b"], self.dec["a"]
        return Book(tuple([bids[p] for p in sorted(bids, reverse=True)]), tuple([asks[p] for p in sorted(asks)]),
                    ts_ms, update_id)


def _poisson(rng: random.Random, lam: float) -> int:
    limit, k, prod = math.exp(-lam), 0, rng.random()
    while prod > limit:
        k += 1
        prod *= rng.random()
    return k


_DEC: dict[int, Decimal] = {}


def _dec(units: int) -> Decimal:
    """1e-8 units as a Decimal (cached: the same prices come back every update)."""
    d = _DEC.get(units)
    if d is None:
        if len(_DEC) > 200_000:
            _DEC.clear()
        d = _DEC[units] = Decimal(units) / SCALE_DEC
    return d


def fmt_units(units: int) -> str:
    """Binance's 8-decimal string of 1e-8 units, without going through Decimal."""
    return f"{units // SCALE}.{units % SCALE:08d}"


@dataclass(slots=True)
class Diff:
    """One Binance depth diff: the changed levels (1e-8 units) and its ``U``..``u`` ids."""

    symbol: str
    first_id: int
    last_id: int
    bids: list[tuple[int, int]]
    asks: list[tuple[int, int]]


@dataclass(slots=True)
class _Coin:
    path: CoinPath
    noise: Bridge
    binance: Ladder
    upbit: Ladder


def binance_symbol(base: str) -> str:
    return f"{base}USDT"


def upbit_code(base: str) -> str:
    return f"KRW-{base}"


class SyntheticMarket:
    """The generator: mids from the recorded paths, books per venue, the update schedule. Pure and seeded."""

    def __init__(self, paths: MarketPaths, spec: SyntheticSpec, binance_grid: dict[str, tuple[int, int]],
                 now_ns: int) -> None:
        """``binance_grid``: (tick, step) in 1e-8 units per base; ``now_ns`` picks Upbit's tick table."""
        self.spec, self.paths = spec, paths
        fx: FxPath = paths.fx
        self.origin = (min(c.t[0] for c in paths.coins) if paths.coins else fx.t[0]) + spec.start_offset_s
        ug = upbit_grid(now_ns)

        def rng(*what: object) -> random.Random:
            return random.Random(":".join(str(w) for w in (spec.seed, *what)))

        self.fx_noise = Bridge(fx.t, fx.sigma, rng("fx"))
        self.fx_ladder = Ladder(ug, shape_for("upbit", fx.liq_upbit), 1, spec.levels, rng("book", FX_CODE))
        self.coins: dict[str, _Coin] = {}
        for c in paths.coins:
            tick, step = binance_grid[c.base]
            self.coins[c.base] = _Coin(c, Bridge(c.t, c.sigma, rng("noise", c.base)),
                                       Ladder(Grid([(0, tick)]), shape_for("binance", c.liq_binance), step,
                                              spec.levels, rng("book", "binance", c.base)),
                                       Ladder(ug, shape_for("upbit", c.liq_upbit), 1, spec.levels,
                                              rng("book", "upbit", c.base)))
        self.by_binance = {binance_symbol(b): b for b in self.coins}
        self.by_upbit = {upbit_code(b): b for b in self.coins}
        self.update_id = {s: 10_000_000_000 + rng("ids", s).randrange(10**9) for s in self.by_binance}
        self._queue: list[tuple[float, int, Venue, str]] = []
        self._seq = 0
        self._schedule()

    # -- symbols -----------------------------------------------------------------------------------------
    def binance_symbols(self) -> list[str]:
        return sorted(self.by_binance)

    def upbit_codes(self) -> list[str]:
        return sorted([*self.by_upbit, FX_CODE])

    # -- prices ------------------------------------------------------------------------------------------
    def recorded_time(self, wall_s: float) -> float:
        return self.origin + wall_s * self.spec.speed

    def fx_mid(self, wall_s: float) -> float:
        t = self.recorded_time(wall_s)
        return interp(self.paths.fx.t, self.paths.fx.krw, t) * math.exp(self.fx_noise.at(t))

    def binance_mid(self, base: str, wall_s: float) -> float:
        c = self.coins[base]
        t = self.recorded_time(wall_s)
        return interp(c.path.t, c.path.usdt, t) * math.exp(c.noise.at(t))

    def upbit_mid(self, base: str, wall_s: float) -> float:
        """Binance mid x KRW-USDT mid x (1 + recorded premium): the premium is the recorded one."""
        c = self.coins[base]
        premium = interp(c.path.t, c.path.premium, self.recorded_time(wall_s))
        return self.binance_mid(base, wall_s) * self.fx_mid(wall_s) * (1.0 + premium)

    # -- updates -----------------------------------------------------------------------------------------
    def step_binance(self, symbol: str, wall_s: float) -> Diff | None:
        """Move the Binance book of ``symbol`` to ``wall_s``: the diff (None when nothing changed)."""
        ladder = self.coins[self.by_binance[symbol]].binance
        changes = ladder.update(self.binance_mid(self.by_binance[symbol], wall_s))
        n = len(changes["b"]) + len(changes["a"])
        if n == 0:
            return None
        first = self.update_id[symbol] + 1
        self.update_id[symbol] = last = first + n - 1  # one id per level event, as the venue counts them
        return Diff(symbol, first, last, sorted(changes["b"].items(), reverse=True), sorted(changes["a"].items()))

    def step_upbit(self, code: str, wall_s: float) -> None:
        """Move the Upbit book of ``code`` (a coin or KRW-USDT) to ``wall_s``."""
        if code == FX_CODE:
            self.fx_ladder.update(self.fx_mid(wall_s))
        else:
            base = self.by_upbit[code]
            self.coins[base].upbit.update(self.upbit_mid(base, wall_s))

    def binance_book(self, symbol: str, ts_ms: int) -> Book:
        return self.coins[self.by_binance[symbol]].binance.book(ts_ms, self.update_id[symbol])

    def upbit_book(self, code: str, ts_ms: int) -> Book:
        ladder = self.fx_ladder if code == FX_CODE else self.coins[self.by_upbit[code]].upbit
        return ladder.book(ts_ms, 0)

    def ladder(self, venue: Venue, symbol: str) -> Ladder:
        if venue == "binance":
            return self.coins[self.by_binance[symbol]].binance
        return self.fx_ladder if symbol == FX_CODE else self.coins[self.by_upbit[symbol]].upbit

    def _schedule(self) -> None:
        """First update of every symbol: phases spread evenly so the load is flat."""
        streams: list[tuple[Venue, str, float]] = [("binance", s, self.spec.rate_binance_hz)
                                                   for s in self.binance_symbols()]
        streams += [("upbit", c, self.spec.rate_upbit_hz) for c in self.upbit_codes()]
        for i, (venue, sym, rate) in enumerate(streams):
            if rate > 0:
                self._push((i / len(streams)) / rate, venue, sym)

    def _push(self, t: float, venue: Venue, sym: str) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (t, self._seq, venue, sym))

    def due(self, until_s: float) -> list[tuple[float, Venue, str]]:
        """The updates due by ``until_s`` (wall seconds since the start), in time order; reschedules them."""
        out: list[tuple[float, Venue, str]] = []
        while self._queue and self._queue[0][0] <= until_s:
            t, _, venue, sym = heapq.heappop(self._queue)
            out.append((t, venue, sym))
            rate = self.spec.rate_binance_hz if venue == "binance" else self.spec.rate_upbit_hz
            self._push(t + 1.0 / rate, venue, sym)
        return out

    def next_due(self) -> float | None:
        return self._queue[0][0] if self._queue else None

    def warm_up(self) -> None:
        """Build every book at time 0 (before the first update), so REST and the first WS frames have one."""
        for sym in self.binance_symbols():
            self.step_binance(sym, 0.0)
        for code in self.upbit_codes():
            self.step_upbit(code, 0.0)
