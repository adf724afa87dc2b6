"""exchangeInfo -> per-symbol rules (status, PRICE_FILTER, LOT_SIZE, MARKET_LOT_SIZE, NOTIONAL / MIN_NOTIONAL,
PERCENT_PRICE_BY_SIDE / PERCENT_PRICE).

The same numbers core.rules.InstrumentRules holds (tick/step/min notional, 1e-8 units) plus what it does not:
price and quantity bounds, the market-order lot, whether the notional bounds apply to market orders, the
price band around the average price, the symbol status and the request-rate limits. ``to_instrument_rules``
feeds the engine's existing rule checks. ``round_price`` / ``floor_qty`` are how the engine puts an order on
the grid before it sends: ``check`` (and the adapter) refuse anything off it, they never move it.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ....core.domain import Side
from ....core.rules import InstrumentRules, Toward, binance_rules, on_grid, rounds_up, to_grid
from ....core.venue import MarketState, Rejected
from .parse import CATCH, MS, Bad, _load, _mapping, _rejected, boolean, integer, nonneg, text

_ZERO = Decimal(0)
# symbol status -> market state (brief B8: only trade on TRADING; CANCEL_ONLY new 2026-07-07)
STATUS_STATE = {"TRADING": MarketState.TRADING, "HALT": MarketState.HALTED, "BREAK": MarketState.HALTED,
                "END_OF_DAY": MarketState.HALTED, "CANCEL_ONLY": MarketState.HALTED,
                "PRE_TRADING": MarketState.HALTED, "POST_TRADING": MarketState.HALTED,
                "AUCTION_MATCH": MarketState.HALTED, "DELIVERING": MarketState.DELISTING}


@dataclass(frozen=True, slots=True)
class PercentPrice:
    """PERCENT_PRICE_BY_SIDE (or the older PERCENT_PRICE, the same multipliers for both sides): a limit price
    must lie within [avg x down, avg x up] of the symbol's average price over ``avg_mins`` minutes (0 = last
    price), by the order's side (brief B8, filters.md)."""

    name: str
    bid_up: Decimal
    bid_down: Decimal
    ask_up: Decimal
    ask_down: Decimal
    avg_mins: int

    def passes(self, price: Decimal, side: Side, avg_price: Decimal) -> bool:
        up, down = (self.bid_up, self.bid_down) if side == Side.BUY else (self.ask_up, self.ask_down)
        return (not up or price <= avg_price * up) and price >= avg_price * down


@dataclass(frozen=True, slots=True)
class SymbolRules:
    """One symbol's trading rules as exchangeInfo states them (0 = that bound is disabled)."""

    symbol: str
    status: str
    base: str
    quote: str
    tick: Decimal
    min_price: Decimal
    max_price: Decimal
    step: Decimal
    min_qty: Decimal
    max_qty: Decimal
    market_step: Decimal
    market_min_qty: Decimal
    market_max_qty: Decimal
    min_notional: Decimal
    max_notional: Decimal
    min_notional_market: bool
    max_notional_market: bool
    quote_order_qty_market: bool
    order_types: frozenset[str]
    percent: tuple[PercentPrice, ...] = ()

    @property
    def state(self) -> MarketState:
        return STATUS_STATE.get(self.status, MarketState.HALTED)

    def round_price(self, price: Decimal, side: Side, toward: Toward = "passive") -> Decimal:
        """``price`` on the tick grid, exactly: ``aggressive`` moves it towards the other side of the book (a
        buy up, a sell down), ``passive`` away from it (a buy never pays more, a sell never asks less)."""
        return to_grid(price, self.tick, rounds_up(side, toward))

    def floor_qty(self, qty: Decimal, market: bool = False) -> Decimal:
        """``qty`` down onto the lot step (MARKET_LOT_SIZE's for a market order when it has one): never more
        than decided. It may fall below the minimum quantity or notional: ``check`` says so."""
        return to_grid(qty, (self.market_step or self.step) if market else self.step, up=False)

    def check(self, price: Decimal | None, qty: Decimal, market: bool = False, side: Side | None = None,
              avg_price: Decimal | None = None) -> str | None:
        """Why Binance would answer -1013 "Filter failure: X" (the filter name), or None if it passes.

        ``price`` is the limit price, or for a market order the reference price (None: notional not checked).
        The percent-price band is checked for a limit price when ``side`` and ``avg_price`` (the venue's
        ``/api/v3/avgPrice``) are given; without them only the venue can check it.
        """
        if market:
            if self.market_step and not on_grid(qty, self.market_step):
                return "MARKET_LOT_SIZE"
            if self.market_min_qty and qty < self.market_min_qty:
                return "MARKET_LOT_SIZE"
            if self.market_max_qty and qty > self.market_max_qty:
                return "MARKET_LOT_SIZE"
        else:
            if price is None or price <= 0 or not on_grid(price, self.tick):
                return "PRICE_FILTER"
            if (self.min_price and price < self.min_price) or (self.max_price and price > self.max_price):
                return "PRICE_FILTER"
        if qty <= 0 or not on_grid(qty, self.step):
            return "LOT_SIZE"
        if (self.min_qty and qty < self.min_qty) or (self.max_qty and qty > self.max_qty):
            return "LOT_SIZE"
        if not market and price is not None and side is not None and avg_price is not None:
            for band in self.percent:
                if not band.passes(price, side, avg_price):
                    return band.name
        if price is not None:
            notional = price * qty
            if self.min_notional and notional < self.min_notional and (not market or self.min_notional_market):
                return "NOTIONAL"
            if self.max_notional and notional > self.max_notional and (not market or self.max_notional_market):
                return "NOTIONAL"
        return None

    def to_instrument_rules(self) -> InstrumentRules:
        """core.rules.InstrumentRules (tick/step/min notional in 1e-8 units) with the max notional."""
        base = binance_rules(str(self.tick), str(self.step), str(self.min_notional))
        return InstrumentRules(base.venue, base.tick_units, base.step_units, base.min_notional,
                               self.max_notional or None)


@dataclass(frozen=True, slots=True)
class RateLimit:
    kind: str  # REQUEST_WEIGHT | ORDERS | RAW_REQUESTS
    interval_ms: int
    limit: int


@dataclass(frozen=True, slots=True)
class ExchangeInfo:
    server_time_ns: int
    rate_limits: tuple[RateLimit, ...]
    symbols: dict[str, SymbolRules]
    rejected: tuple[Rejected, ...]  # symbols whose entry could not be read (counted, skipped)


_INTERVAL_MS = {"SECOND": 1000, "MINUTE": 60_000, "HOUR": 3_600_000, "DAY": 86_400_000}


def _symbol(s: dict[str, Any]) -> SymbolRules:
    f: dict[str, dict[str, Any]] = {}
    for flt in s["filters"]:
        f[text(_mapping(flt, "filter")["filterType"], "filterType")] = flt
    price, lot = f.get("PRICE_FILTER", {}), f.get("LOT_SIZE", {})
    mlot = f.get("MARKET_LOT_SIZE", {})
    z = "0"
    if "NOTIONAL" in f:
        n = f["NOTIONAL"]
        min_n, max_n = nonneg(n.get("minNotional", z), "minNotional"), nonneg(n.get("maxNotional", z), "maxNotional")
        min_m, max_m = boolean(n.get("applyMinToMarket", True)), boolean(n.get("applyMaxToMarket", False))
    elif "MIN_NOTIONAL" in f:  # legacy (before 2022 on most symbols)
        n = f["MIN_NOTIONAL"]
        min_n, max_n = nonneg(n.get("minNotional", z), "minNotional"), _ZERO
        min_m, max_m = boolean(n.get("applyToMarket", True)), False
    else:
        min_n, max_n, min_m, max_m = _ZERO, _ZERO, False, False
    percent = []
    if "PERCENT_PRICE_BY_SIDE" in f:
        b = f["PERCENT_PRICE_BY_SIDE"]
        percent.append(PercentPrice("PERCENT_PRICE_BY_SIDE", nonneg(b["bidMultiplierUp"], "bidMultiplierUp"),
                                    nonneg(b["bidMultiplierDown"], "bidMultiplierDown"),
                                    nonneg(b["askMultiplierUp"], "askMultiplierUp"),
                                    nonneg(b["askMultiplierDown"], "askMultiplierDown"),
                                    integer(b.get("avgPriceMins", 0), "avgPriceMins")))
    if "PERCENT_PRICE" in f:  # older symbols: one band for both sides
        b = f["PERCENT_PRICE"]
        up, down = nonneg(b["multiplierUp"], "multiplierUp"), nonneg(b["multiplierDown"], "multiplierDown")
        percent.append(PercentPrice("PERCENT_PRICE", up, down, up, down,
                                    integer(b.get("avgPriceMins", 0), "avgPriceMins")))
    types = s.get("orderTypes", [])
    if type(types) is not list:
        raise Bad("bad_field", "orderTypes")
    return SymbolRules(
        text(s["symbol"], "symbol"), text(s["status"], "status"), text(s["baseAsset"], "baseAsset"),
        text(s["quoteAsset"], "quoteAsset"),
        nonneg(price.get("tickSize", z), "tickSize"), nonneg(price.get("minPrice", z), "minPrice"),
        nonneg(price.get("maxPrice", z), "maxPrice"),
        nonneg(lot.get("stepSize", z), "stepSize"), nonneg(lot.get("minQty", z), "minQty"),
        nonneg(lot.get("maxQty", z), "maxQty"),
        nonneg(mlot.get("stepSize", z), "stepSize"), nonneg(mlot.get("minQty", z), "minQty"),
        nonneg(mlot.get("maxQty", z), "maxQty"),
        min_n, max_n, min_m, max_m, bool(s.get("quoteOrderQtyMarketAllowed", False)),
        frozenset(str(t) for t in types), tuple(percent))


def parse_exchange_info(raw: str | bytes | dict[str, Any], ts_local: int) -> ExchangeInfo | Rejected:
    """GET /api/v3/exchangeInfo; one bad symbol entry is counted and skipped, not the whole body."""
    try:
        d = _mapping(_load(raw), "exchangeInfo")
        limits = tuple(RateLimit(text(r["rateLimitType"], "rateLimitType"),
                                 _INTERVAL_MS[r["interval"]] * integer(r["intervalNum"], "intervalNum"),
                                 integer(r["limit"], "limit")) for r in d.get("rateLimits", []))
        raw_symbols = d["symbols"]
        if type(raw_symbols) is not list:
            raise Bad("bad_field", "symbols: not a list")
        server = integer(d.get("serverTime", 0), "serverTime") * MS
    except CATCH as x:
        return _rejected(x, ts_local)
    symbols: dict[str, SymbolRules] = {}
    rejected: list[Rejected] = []
    for s in raw_symbols:
        try:
            r = _symbol(_mapping(s, "symbol"))
            symbols[r.symbol] = r
        except CATCH as x:
            rejected.append(_rejected(x, ts_local))
    return ExchangeInfo(server, limits, symbols, tuple(rejected))


def parse_avg_price(raw: str | bytes | dict[str, Any]) -> Decimal | None:
    """GET /api/v3/avgPrice ``{"mins":5,"price":"9.35751834","closeTime":...}`` -> the price (None: unreadable
    or 0, i.e. no average to check against)."""
    try:
        price = nonneg(_mapping(_load(raw), "avgPrice")["price"], "price")
    except CATCH:
        return None
    return price or None
