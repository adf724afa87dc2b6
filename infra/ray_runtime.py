"""Start Ray once per process: a fresh local instance unless told which cluster to join.

A Ray already running on the machine (someone's ``ray start --head``) or a ``RAY_ADDRESS`` left in the
environment is never joined by accident: a stranger's cluster has other resources, other code and other
lifetimes, and a run that attached to one failed in ways that had nothing to do with it. Joining a cluster
is asked for explicitly (``--ray-address ADDR``, which sets ``configure(address=...)``).
"""

from __future__ import annotations

import os
from typing import Any

_address: str | None = None


def configure(address: str | None) -> None:
    """The cluster the next ``ensure_ray`` joins (``auto``, ``HOST:PORT``, ``ray://...``); None: a local one."""
    global _address
    _address = address or None


def ensure_ray(num_cpus: int | None = None, dashboard: bool = False) -> Any:
    import ray

    if not ray.is_initialized():
        kwargs: dict[str, Any] = {
            "ignore_reinit_error": True,
            "include_dashboard": dashboard,
            "log_to_driver": False,
            "configure_logging": False,
        }
        if dashboard:
            kwargs["dashboard_host"] = "127.0.0.1"
        if _address is not None:
            ray.init(address=_address, **kwargs)
        else:
            # "local" starts a new instance whatever RAY_ADDRESS says; drop it so nothing started from here
            # (job submission, a subprocess) picks the stranger up either.
            os.environ.pop("RAY_ADDRESS", None)
            ray.init(address="local", num_cpus=num_cpus or os.cpu_count() or 1, **kwargs)
    return ray
