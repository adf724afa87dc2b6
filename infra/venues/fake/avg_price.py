"""The fake Binance's average price (``GET /api/v3/avgPrice``, the PERCENT_PRICE_BY_SIDE reference). Pure.

Binance averages every trade of the symbol over the last ``avgPriceMins`` minutes (0: the last trade). The
fake knows only the trades it made itself (its books are replayed or static, not traded by others), so:
the volume-weighted average of its own fills in the window ``(now - mins, now]``; with no fill in it, the mid
of the book as it stands (what the market's trades would be near); with neither, None (nothing to check
against). ``mins == 0``: the last fill's price, else the mid. Paper uses the same function, so the fake, paper
and the adapter's local check all mean one thing by "average price".
"""

from __future__ import annotations

from decimal import Decimal

from .engine import Engine

MINUTE_MS = 60_000
PRICE_QUANTUM = Decimal("1e-8")


def average_price(engine: Engine, symbol: str, now_ms: int, mins: int) -> Decimal | None:
    """The average price of ``symbol`` at ``now_ms`` over ``mins`` minutes, to 8 decimals (None: no price)."""
    fills = sorted((f for o in engine.orders.values() if o.symbol == symbol for f in o.fills),
                   key=lambda f: (f.ts_ms, f.trade_id))
    if mins == 0 and fills:
        return fills[-1].price
    recent = [f for f in fills if now_ms - mins * MINUTE_MS < f.ts_ms <= now_ms]
    qty = sum((f.qty for f in recent), Decimal(0))
    if qty > 0:
        return (sum((f.price * f.qty for f in recent), Decimal(0)) / qty).quantize(PRICE_QUANTUM)
    bids, asks = engine.depth(symbol)
    if bids and asks:
        return ((bids[0][0] + asks[0][0]) / 2).quantize(PRICE_QUANTUM)
    return None
