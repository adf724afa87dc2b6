"""exchangeInfo -> per-symbol rules (status, PRICE_FILTER, LOT_SIZE, MARKET_LOT_SIZE, NOTIONAL / MIN_NOTIONAL).

The same numbers core.rules.InstrumentRules holds (tick/step/min notional, 1e-8 units) plus what it does not:
price and quantity bounds, the market-order lot, whether the notional bounds apply to market orders, the
symbol status and the request-rate limits. ``to_instrument_rules`` feeds the engine's existing rule checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ....core.rules import InstrumentRules, binance_rules
from ....core.venue import MarketState, Rejected
from .parse import CATCH, MS, Bad, _load, _mapping, _rejected, boolean, integer, nonneg, text

_ZERO = Decimal(0)
# symbol status -> market state (brief B8: only trade on TRADING; CANCEL_ONLY new 2026-07-07)
STATUS_STATE = {"TRADING": MarketState.TRADING, "HALT": MarketState.HALTED, "BREAK": MarketState.HALTED,
                "END_OF_DAY": MarketState.HALTED, "CANCEL_ONLY": MarketState.HALTED,
                "PRE_TRADING": MarketState.HALTED, "POST_TRADING": MarketState.HALTED,
                "AUCTION_MATCH": MarketState.HALTED, "DELIVERING": MarketState.DELISTING}


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

    @property
    def state(self) -> MarketState:
        return STATUS_STATE.get(self.status, MarketState.HALTED)

    def check(self, price: Decimal | None, qty: Decimal, market: bool = False) -> str | None:
        """Why Binance would answer -1013 "Filter failure: X" (the filter name), or None if it passes.

        ``price`` is the limit price, or for a market order the reference price (None: notional not checked).
        """
        if market:
            if self.market_step and qty % self.market_step:
                return "MARKET_LOT_SIZE"
            if self.market_min_qty and qty < self.market_min_qty:
                return "MARKET_LOT_SIZE"
            if self.market_max_qty and qty > self.market_max_qty:
                return "MARKET_LOT_SIZE"
        else:
            if price is None or price <= 0 or (self.tick and price % self.tick):
                return "PRICE_FILTER"
            if (self.min_price and price < self.min_price) or (self.max_price and price > self.max_price):
                return "PRICE_FILTER"
        if qty <= 0 or (self.step and qty % self.step):
            return "LOT_SIZE"
        if (self.min_qty and qty < self.min_qty) or (self.max_qty and qty > self.max_qty):
            return "LOT_SIZE"
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
        frozenset(str(t) for t in types))


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
