"""Venue adapters: one sub-package per venue (``binance``, ``upbit``, ``fake``): sans-IO modules + a thin I/O shell.

The sans-IO modules are pure (parse, sign, book sync, rate-limit accounting, order-state mapping) so they are
tested on recorded payloads without a network; the shells only move bytes (core.venue.VenueClient).
"""
