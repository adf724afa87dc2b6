"""Serve the SYNTHETIC market (synthetic.py) from the fakes: venue metadata, balances and the update loop.

:meth:`SyntheticSetup.build` reads the store (kimpai ``last`` prices) and the recorded exchangeInfo, picks each
Binance symbol's tick/step (recorded, unless missing or coarser than :data:`MAX_TICK_BPS` of the price: then
a synthetic one, served in exchangeInfo too) and Upbit market entries for coins the recorded ``market/all``
lacks. :meth:`SyntheticSetup.run` is one task for all symbols: every few ms it steps the updates that are due
(in time order), sets each new book in the matching engine and publishes it at once, so what a client rebuilds
from the streams is what orders fill against: Binance ``depth@100ms`` diffs with consecutive ``U``/``u`` ids
(the engine's book carries ``u``, so ``/api/v3/depth`` answers a ``lastUpdateId`` consistent with the stream),
Upbit full ``orderbook`` snapshots through :class:`~.ws_upbit.UpbitWs`.
"""

from __future__ import annotations

import asyncio
import copy
import gzip
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from ....core.rules import SCALE
from .binance import EXCHANGE_INFO
from .common import now_ms
from .engine import Book, Engine
from .synthetic import FX_CODE, Diff, SyntheticMarket, SyntheticSpec, binance_symbol, fmt_units, upbit_code
from .synthetic_data import MarketPaths, builtin_paths, paths_from_store
from .upbit import MARKET_ALL
from .ws_binance import BinanceWs
from .ws_common import Sub
from .ws_upbit import UpbitWs

MAX_TICK_BPS = 20.0  # a recorded tick coarser than this (2024 rules, 2025 prices) is replaced
BATCH_S = 0.005  # the loop wakes at most every 5 ms and serves what is due
_NO_CAUTION = {"PRICE_FLUCTUATIONS": False, "TRADING_VOLUME_SOARING": False, "DEPOSIT_AMOUNT_SOARING": False,
               "GLOBAL_PRICE_DIFFERENCES": False, "CONCENTRATION_OF_SMALL_ACCOUNTS": False}


def _units(text: str) -> int:
    return int(Decimal(text) * SCALE)


def sensible_grid(price: float) -> tuple[int, int]:
    """(tick, step) in 1e-8 units for a symbol with no usable recorded rule: a tick of ~1e-4 of the price
    (at most 0.01) and a step worth ~0.1..1 USDT (at most 1), like Binance's USDT pairs."""
    tick = 10.0 ** (math.floor(math.log10(price)) - 4)
    step = 10.0 ** math.floor(math.log10(1.0 / price))
    return round(min(max(tick, 1e-8), 0.01) * SCALE), round(min(max(step, 1e-8), 1.0) * SCALE)


def _dec8(units: int) -> str:
    return fmt_units(units)


def binance_rules(paths: MarketPaths, recorded: dict[str, dict[str, Any]]
                  ) -> tuple[dict[str, tuple[int, int]], list[dict[str, Any]]]:
    """Per base (tick, step), and the exchangeInfo entries to add or replace (synthetic or re-ticked)."""
    template = recorded["BTCUSDT"]
    grid: dict[str, tuple[int, int]] = {}
    extra: list[dict[str, Any]] = []
    for c in paths.coins:
        sym, price = binance_symbol(c.base), sorted(c.usdt)[len(c.usdt) // 2]
        rec = recorded.get(sym)
        if rec is not None:
            filters = {f["filterType"]: f for f in rec["filters"]}
            tick, step = _units(filters["PRICE_FILTER"]["tickSize"]), _units(filters["LOT_SIZE"]["stepSize"])
            if tick / (price * SCALE) * 1e4 <= MAX_TICK_BPS:
                grid[c.base] = (tick, step)
                continue
            grid[c.base] = (sensible_grid(price)[0], step)
        else:
            grid[c.base] = sensible_grid(price)
        extra.append(_entry(rec or template, c.base, *grid[c.base]))
    return grid, extra


def _entry(like: dict[str, Any], base: str, tick: int, step: int) -> dict[str, Any]:
    """An exchangeInfo symbol shaped like a recorded one, with this grid."""
    e = copy.deepcopy(like)
    e.update(symbol=binance_symbol(base), baseAsset=base)
    for f in e["filters"]:
        if f["filterType"] == "PRICE_FILTER":
            f.update(minPrice=_dec8(tick), maxPrice="1000000.00000000", tickSize=_dec8(tick))
        elif f["filterType"] == "LOT_SIZE" and like["baseAsset"] != base:
            f.update(minQty=_dec8(step), maxQty="90000000000.00000000", stepSize=_dec8(step))
        elif f["filterType"] == "MARKET_LOT_SIZE" and like["baseAsset"] != base:
            f.update(maxQty="90000000000.00000000")
    return e


def upbit_markets(bases: list[str], recorded: set[str]) -> list[dict[str, Any]]:
    """``market/all?is_details=true`` entries for the markets the recorded list lacks (newer listings)."""
    return [{"market": upbit_code(b), "korean_name": b, "english_name": b,
             "market_event": {"warning": False, "caution": dict(_NO_CAUTION)}}
            for b in bases if upbit_code(b) not in recorded]


@dataclass(slots=True)
class SyntheticSetup:
    """Everything FakeVenues needs to serve a synthetic market, and the loop that moves it."""

    market: SyntheticMarket
    books: dict[str, dict[str, list[Book]]]  # venue -> symbol -> [initial book] (the server's shape)
    exchange_info: tuple[dict[str, Any], ...]
    market_all: tuple[dict[str, Any], ...]
    balances: dict[str, dict[str, Decimal]]
    label: dict[str, Any]
    log_depth: int = 0
    stats: dict[str, float] = field(default_factory=lambda: {"binance_diffs": 0, "upbit_books": 0, "lag_max_s": 0.0})

    @classmethod
    def build(cls, spec: SyntheticSpec, store: Path | None, balances: dict[str, dict[str, Decimal]],
              log_depth: int = 0) -> SyntheticSetup:
        paths = (paths_from_store(store, spec.coins, spec.top_n) if store is not None
                 else builtin_paths(spec.coins, spec.top_n))
        if not paths.coins:
            raise ValueError("the synthetic market has no coin (none with prices on both venues)")
        with gzip.open(EXCHANGE_INFO, "rt", encoding="utf-8") as fh:
            recorded = {s["symbol"]: s for s in json.load(fh)["symbols"]}
        grid, extra = binance_rules(paths, recorded)
        known_upbit = {m["market"] for m in json.loads(MARKET_ALL.read_text(encoding="utf-8"))}
        market = SyntheticMarket(paths, spec, grid, time.time_ns())
        market.warm_up()
        ts = now_ms()
        books = {"binance": {s: [market.binance_book(s, ts)] for s in market.binance_symbols()},
                 "upbit": {c: [market.upbit_book(c, ts)] for c in market.upbit_codes()}}
        bal = {v: dict(b) for v, b in balances.items()}
        for c in paths.coins:
            qty = (spec.balance_usdt / Decimal(repr(c.usdt[0]))).quantize(Decimal("1e-8"))
            for v in ("binance", "upbit"):
                bal[v].setdefault(c.base, qty)
        bal["upbit"].setdefault("USDT", spec.balance_usdt)
        label = {"kind": "SYNTHETIC market (books generated from recorded prices, not recorded books)",
                 "source": paths.source, "coins": len(paths.coins), "seed": spec.seed, "speed": spec.speed,
                 "rate_binance_hz": spec.rate_binance_hz, "rate_upbit_hz": spec.rate_upbit_hz,
                 "synthetic_binance_rules": sorted(e["symbol"] for e in extra),
                 "synthetic_upbit_markets": sorted(m["market"] for m in upbit_markets(
                     [c.base for c in paths.coins], known_upbit))}
        return cls(market, books, tuple(extra), tuple(upbit_markets([c.base for c in paths.coins], known_upbit)),
                   bal, label, log_depth)

    async def run(self, binance: Engine, upbit: Engine, bws: BinanceWs, uws: UpbitWs) -> None:
        """Serve the due updates every few ms, forever (cancelled by FakeVenues.stop)."""
        for sym in self.market.binance_symbols():
            self._log_binance(bws, sym, binance.books[sym])
        start = time.monotonic()
        while True:
            now = time.monotonic() - start
            self.step(now, binance, upbit, bws, uws)
            nxt = self.market.next_due()
            wait = BATCH_S if nxt is None else max(nxt - (time.monotonic() - start), BATCH_S)
            await asyncio.sleep(wait)

    def step(self, now: float, binance: Engine, upbit: Engine, bws: BinanceWs, uws: UpbitWs) -> None:
        """Serve every update due by ``now`` (wall seconds since the start)."""
        due = self.market.due(now)
        if due:
            self.stats["lag_max_s"] = max(self.stats["lag_max_s"], now - due[0][0])
        for t, venue, sym in due:
            ts = now_ms()
            if venue == "binance":
                diff = self.market.step_binance(sym, t)
                if diff is None:
                    continue
                book = self.market.binance_book(sym, ts)
                binance.set_book(sym, book, ts)
                self._log_binance(bws, sym, book)
                topic = f"{sym.lower()}@depth@100ms"
                bws.hub.publish(topic, _render_diff(topic, diff, ts), book=True)
                self.stats["binance_diffs"] += 1
            else:
                self.market.step_upbit(sym, t)
                book = self.market.upbit_book(sym, ts)
                upbit.set_book(sym, book, ts)
                uws.on_book(sym, book)
                self.stats["upbit_books"] += 1

    def _log_binance(self, bws: BinanceWs, sym: str, book: Book) -> None:
        if self.log_depth:
            bws.served.setdefault(sym, {})[book.update_id] = (book.bids[:self.log_depth], book.asks[:self.log_depth])


def _render_diff(topic: str, d: Diff, ts_ms: int) -> Callable[[Sub], str]:
    """The ``depthUpdate`` frame, rendered once per envelope on first use (no subscriber: never rendered)."""
    cache: dict[bool, str] = {}

    def render(sub: Sub) -> str:
        frame = cache.get(sub.combined)
        if frame is None:
            b = ",".join(f'["{fmt_units(p)}","{fmt_units(q)}"]' for p, q in d.bids)
            a = ",".join(f'["{fmt_units(p)}","{fmt_units(q)}"]' for p, q in d.asks)
            data = (f'{{"e":"depthUpdate","E":{ts_ms},"s":"{d.symbol}","U":{d.first_id},"u":{d.last_id},'
                    f'"b":[{b}],"a":[{a}]}}')
            frame = cache[sub.combined] = f'{{"stream":"{topic}","data":{data}}}' if sub.combined else data
        return frame
    return render


__all__ = ["FX_CODE", "SyntheticSetup", "SyntheticSpec"]
