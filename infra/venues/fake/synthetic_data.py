"""Recorded price paths that drive the SYNTHETIC market of the fakes (synthetic.py): the kimpai snapshots.

The store (``data import`` of the kimpai CSVs) holds ``last`` prices of each coin on both venues and Upbit's
KRW-USDT, about every 5 min (commit times in ``ts_local``). For each coin the knots are the commits where
its Binance price, its Upbit price and KRW-USDT were all recorded; there the coin's premium is
``upbit / (binance x usdt_krw) - 1``. The noise scale of a coin is the realised volatility of its recorded
Binance path, its book depth scales with its recorded 24 h traded value relative to BTC's.

Without a store a built-in list is used: one recorded snapshot of the 50 most traded coins (median prices and
premiums of 2025-12-04..10 from the same data), so the path is flat and only the noise moves it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...data.store import Store

SIGMA_MIN, SIGMA_MAX = 0.3e-4, 5e-4  # log-vol per sqrt(s): 0.3 .. 5 bps/sqrt(s)
MAX_KNOT_GAP_S = 1200.0  # returns over longer silences do not measure the volatility
FX_SYMBOL = "USDT-KRW"


@dataclass(frozen=True, slots=True)
class CoinPath:
    """One coin's recorded path: knot times (epoch s), Binance USDT price and premium at each knot."""

    base: str
    t: tuple[float, ...]
    usdt: tuple[float, ...]
    premium: tuple[float, ...]
    sigma: float  # log-volatility per sqrt(recorded second)
    liq_upbit: float  # Upbit 24 h traded value / BTC's
    liq_binance: float  # Binance 24 h traded value / BTC's
    value_krw: float  # mean Upbit 24 h traded value (what top:N ranks by, as the backtest's universe)


@dataclass(frozen=True, slots=True)
class FxPath:
    """Upbit KRW-USDT (the FX the engine uses): knot times and KRW per USDT."""

    t: tuple[float, ...]
    krw: tuple[float, ...]
    sigma: float
    liq_upbit: float


@dataclass(frozen=True, slots=True)
class MarketPaths:
    coins: tuple[CoinPath, ...]
    fx: FxPath
    source: str


def _dedup(ts_local: np.ndarray, ts: np.ndarray, price: np.ndarray) -> dict[int, float]:
    """One price per commit (the newest entry when a commit holds two)."""
    t = np.where(ts_local >= 0, ts_local, ts)
    out: dict[int, float] = {}
    for k, p in zip(t.tolist(), price.tolist(), strict=True):
        if p > 0 and math.isfinite(p):
            out[int(k)] = float(p)
    return out


def _read(store: Store, venue: str, symbol: str) -> tuple[dict[int, float], float]:
    t = store.read("last", venue, symbol, columns=["ts", "ts_local", "price", "volume24h_krw"])
    cols = {c: t.column(c).to_numpy(zero_copy_only=False) for c in t.column_names}
    vol = cols["volume24h_krw"].astype(np.float64)
    value = float(np.nanmean(vol)) if np.isfinite(vol).any() else 0.0
    return _dedup(cols["ts_local"], cols["ts"], cols["price"]), value


def realised_sigma(t: Sequence[float], price: Sequence[float]) -> float:
    """Robust std (1.4826 x median absolute) of log returns between knots per sqrt(second), clipped.

    Robust because last prices carry stale entries and jumps: the plain std of BTC is 2.8 bps/sqrt(s)
    (50 bps per 5 min), the robust one 0.6 (10 bps per 5 min, what BTC does on a quiet day)."""
    tt, pp = np.asarray(t, np.float64), np.log(np.asarray(price, np.float64))
    dt, dr = np.diff(tt), np.diff(pp)
    ok = (dt > 0) & (dt <= MAX_KNOT_GAP_S)
    if ok.sum() < 5:
        return 2e-4
    robust = 1.4826 * float(np.median(np.abs(dr[ok] / np.sqrt(dt[ok]))))
    return float(np.clip(robust, SIGMA_MIN, SIGMA_MAX))


def common_bases(store: Store) -> list[str]:
    """Coins with ``last`` prices on Upbit KRW and Binance USDT (USDT itself is the FX, not a route)."""
    up = {s.symbol[:-4] for s in store.series() if s.kind == "last" and s.venue == "upbit"
          and s.symbol.endswith("-KRW")}
    bn = {s.symbol[:-5] for s in store.series() if s.kind == "last" and s.venue == "binance"
          and s.symbol.endswith("-USDT")}
    return sorted((up & bn) - {"USDT"})


def paths_from_store(root: Path, coins: Sequence[str] = (), top_n: int = 0) -> MarketPaths:
    """The coins asked for (or the ``top_n`` by mean Upbit 24 h traded value) with their recorded paths."""
    store = Store(root)
    if not store.has("last", "upbit", FX_SYMBOL):
        raise ValueError(f"store {root} has no Upbit {FX_SYMBOL} last prices (import the kimpai snapshots)")
    fx_pts, fx_value = _read(store, "upbit", FX_SYMBOL)
    avail = common_bases(store)
    wanted = [c.upper() for c in coins] or avail
    missing = [c for c in wanted if c not in avail]
    if missing:
        raise ValueError(f"no last prices on both venues in {root} for: {', '.join(missing)}")
    raw: list[tuple[str, dict[int, float], dict[int, float], float, float]] = []
    for base in wanted:
        up, up_value = _read(store, "upbit", f"{base}-KRW")
        bn, bn_value = _read(store, "binance", f"{base}-USDT")
        raw.append((base, up, bn, up_value, bn_value))
    if top_n and not coins:
        raw = sorted(raw, key=lambda r: (-r[3], r[0]))[:top_n]
    ref_u, ref_b = _btc_values(store)
    out = []
    for base, up, bn, up_value, bn_value in raw:
        knots = sorted(set(up) & set(bn) & set(fx_pts))
        if not knots:
            continue
        t = tuple(k / 1e9 for k in knots)
        usdt = tuple(bn[k] for k in knots)
        prem = tuple(up[k] / (bn[k] * fx_pts[k]) - 1.0 for k in knots)
        out.append(CoinPath(base, t, usdt, prem, realised_sigma(t, usdt), _ratio(up_value, ref_u),
                            _ratio(bn_value, ref_b), up_value))
    fx_t = sorted(fx_pts)
    fx = FxPath(tuple(k / 1e9 for k in fx_t), tuple(fx_pts[k] for k in fx_t),
                realised_sigma([k / 1e9 for k in fx_t], [fx_pts[k] for k in fx_t]), _ratio(fx_value, ref_u))
    return MarketPaths(tuple(out), fx, f"store {root}")


def _btc_values(store: Store) -> tuple[float, float]:
    vals = []
    for venue, sym in (("upbit", "BTC-KRW"), ("binance", "BTC-USDT")):
        vals.append(_read(store, venue, sym)[1] if store.has("last", venue, sym) else 0.0)
    return vals[0], vals[1]


def _ratio(value: float, ref: float) -> float:
    """Traded value relative to BTC's; unknown -> 1e-3 (a mid-cap), bounded so the scaling stays sane."""
    if not (value > 0 and ref > 0):
        return 1e-3
    return min(max(value / ref, 1e-5), 10.0)


# base, Binance USDT price, premium, sigma (bps/sqrt s), Upbit and Binance traded value relative to BTC:
# medians over 2025-12-04..10 of the kimpai snapshots (the 50 coins with the most Upbit KRW traded value).
BUILTIN: tuple[tuple[str, float, float, float, float, float], ...] = (
    ("XRP", 2.0752, 0.00039, 0.85, 1.21, 0.126),
    ("ETH", 3159.65, 0.00012, 0.89, 1.09, 0.971),
    ("BTC", 92031.1, 0.00019, 0.60, 1, 1),
    ("SOL", 137.17, 0.00029, 0.98, 0.447, 0.316),
    ("DOGE", 0.14563, 0.00036, 0.86, 0.187, 0.0646),
    ("SUI", 1.6244, 0.00014, 1.51, 0.147, 0.0481),
    ("SXP", 0.0621, 0.00116, 2.26, 0.134, 0.000825),
    ("G", 0.00514, 0.00133, 1.06, 0.125, 0.00156),
    ("ADA", 0.4444, 0.00011, 1.09, 0.1, 0.0449),
    ("PENGU", 0.011705, 0.00061, 2.02, 0.0898, 0.0172),
    ("EGLD", 7.94, -0.00019, 1.15, 0.0881, 0.00124),
    ("XPL", 0.1756, 0.00002, 1.75, 0.0876, 0.0112),
    ("BCH", 577.9, 0.00025, 1.01, 0.069, 0.0212),
    ("SUPER", 0.2593, -0.00055, 1.49, 0.0653, 0.00103),
    ("SAHARA", 0.03541, 0.00026, 1.35, 0.0632, 0.000719),
    ("ENA", 0.2726, 0.00038, 1.49, 0.0613, 0.0225),
    ("WAVES", 1.076, -0.30781, 0.30, 0.0594, 0.001),
    ("ONDO", 0.4919, 0.00010, 0.93, 0.0557, 0.0044),
    ("CVC", 0.0476, 0.00100, 0.85, 0.0554, 0.000418),
    ("VIRTUAL", 0.8639, 0.00011, 1.46, 0.0507, 0.00546),
    ("MTL", 0.414, -0.00062, 0.30, 0.0479, 0.000199),
    ("LINK", 14.12, 0.00018, 1.06, 0.0446, 0.0278),
    ("HYPER", 0.1388, -0.00017, 1.84, 0.0413, 0.00263),
    ("LSK", 0.209, -0.00083, 0.30, 0.0392, 0.000401),
    ("AXL", 0.1186, 0.00092, 1.29, 0.0379, 0.00233),
    ("SHIB", 8.55e-06, 0.00125, 1.10, 0.0351, 0.00469),
    ("PLUME", 0.0212, 0.00020, 1.87, 0.0345, 0.00128),
    ("KITE", 0.088, 0.00092, 1.54, 0.0326, 0.00125),
    ("BAT", 0.2634, 0.00019, 1.32, 0.0303, 0.00142),
    ("SEI", 0.1367, 0.00033, 1.22, 0.0301, 0.00582),
    ("WLFI", 0.1519, 0.00027, 1.11, 0.0284, 0.00364),
    ("XLM", 0.2505, 0.00004, 0.96, 0.0283, 0.00457),
    ("RED", 0.2724, 0.00020, 1.11, 0.0257, 0.000753),
    ("HBAR", 0.13653, 0.00107, 0.97, 0.0254, 0.0101),
    ("ORCA", 1.286, 0.00029, 0.98, 0.0247, 0.000298),
    ("NEAR", 1.757, 0.00017, 1.23, 0.024, 0.0133),
    ("ANIME", 0.00674, 0.00036, 1.34, 0.0231, 0.000421),
    ("AVNT", 0.3203, -0.00003, 1.47, 0.0223, 0.00112),
    ("AVAX", 14.25, 0.00008, 0.77, 0.0221, 0.0213),
    ("ETC", 13.62, 0.00014, 0.81, 0.0205, 0.00195),
    ("PEPE", 4.72e-06, 0.00021, 1.82, 0.0203, 0.0265),
    ("BARD", 0.8158, -0.00011, 1.45, 0.0201, 0.000813),
    ("0G", 1.022, 0.00000, 1.35, 0.02, 0.000703),
    ("APT", 1.801, 0.00026, 1.37, 0.0197, 0.00732),
    ("MMT", 0.2226, 0.00063, 1.66, 0.0185, 0.00175),
    ("NXPC", 0.4843, -0.00010, 1.38, 0.0172, 0.000397),
    ("COMP", 31.49, -0.00025, 0.97, 0.017, 0.00062),
    ("KAITO", 0.6504, -0.00053, 0.94, 0.0165, 0.000661),
    ("MOVE", 0.0439, 0.00046, 1.10, 0.0164, 0.000363),
    ("TRX", 0.2831, 0.00042, 0.31, 0.0163, 0.0377),
)
BUILTIN_FX_KRW = 1489.0


def builtin_paths(coins: Sequence[str] = (), top_n: int = 0) -> MarketPaths:
    """The built-in snapshot (no store): flat paths, noise only."""
    known = {row[0]: row for row in BUILTIN}
    wanted = [c.upper() for c in coins] or [row[0] for row in BUILTIN][: top_n or None]
    missing = [c for c in wanted if c not in known]
    if missing:
        raise ValueError(f"not in the built-in synthetic list (give --store): {', '.join(missing)}")
    if top_n and not coins and top_n > len(BUILTIN):
        raise ValueError(f"the built-in synthetic list has {len(BUILTIN)} coins; top:{top_n} needs --store")
    out = []
    for base in wanted:
        _, px, prem, sigma_bps, lu, lb = known[base]
        out.append(CoinPath(base, (0.0,), (px,), (prem,), sigma_bps * 1e-4, lu, lb, lu))
    fx = FxPath((0.0,), (BUILTIN_FX_KRW,), 0.3e-4, 0.55)
    return MarketPaths(tuple(out), fx, "built-in snapshot")
