"""Fake Binance spot and Upbit venues on 127.0.0.1 speaking the real REST shapes (issue 12 §3).

``engine`` (pure matching: books, balances, fees), ``auth`` (HMAC / JWT checks), ``limits`` (weights,
per-second groups), ``faults`` (injection by flag), ``binance`` / ``upbit`` (aiohttp apps), ``server``
(both on free or given ports, books from the store or recorded snapshot files). ccxt is the independent
proof of faithfulness (tests/test_fake_venues_ccxt.py).
"""
