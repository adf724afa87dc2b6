"""Binance spot adapter: sans-IO parse/book/sign/limits/orders, and the aiohttp shell in ``client``."""

VENUE = "binance"
