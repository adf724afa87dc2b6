"""Upbit adapter: sans-IO parsing, JWT signing, book keeping, rate-limit accounting and order mapping
(``parse``, ``auth``, ``book``, ``limits``, ``orders``) under a thin aiohttp shell (``client``)."""
