"""``arbitrage-lite tune``: command line (being built, issue 14)."""

from __future__ import annotations

from typing import Any


def add_tune(sub: Any, common: Any) -> None:
    """Register the ``tune`` command (nothing yet)."""
