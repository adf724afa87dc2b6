"""Start (or join) Ray once per process: local by default, a cluster when RAY_ADDRESS says so."""

from __future__ import annotations

import os
from typing import Any


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
        if not os.environ.get("RAY_ADDRESS"):
            kwargs["num_cpus"] = num_cpus or os.cpu_count() or 1
        ray.init(**kwargs)
    return ray
