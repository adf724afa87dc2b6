"""``arbitrage-lite stress``: command line (being built, issue 14)."""

from __future__ import annotations

from typing import Any


def add_stress(sub: Any, common: Any) -> None:
    """Register the ``stress`` command (nothing yet)."""
