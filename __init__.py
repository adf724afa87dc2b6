"""arbitrage-lite: cross-exchange crypto arbitrage engine (Upbit KRW vs Binance USDT).

Sub-packages: ``core`` (pure engine), ``actors`` (Ray shells), ``supervision``, ``scenarios``
(backtest campaigns, drills) and ``infra`` (data store, exchange clients, reports, CLI).
"""

__version__ = "0.1.0"
