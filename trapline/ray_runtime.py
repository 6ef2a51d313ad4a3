"""Connect to a Ray cluster, or start the embedded local default, with safe settings."""

from __future__ import annotations

import os
from typing import Any


def ensure_ray(address: str | None = None, num_cpus: int | None = None, **kwargs: Any) -> bool:
    """Connect to `address` (or $RAY_ADDRESS) if given, else start a local Ray on loopback.

    Returns True when this call started a local instance (the caller should shut it down).
    Token authentication stays on (Ray's default since 2.5x); the dashboard, when it runs,
    binds to 127.0.0.1 only. Nothing here binds to a non-loopback interface.
    """
    import ray

    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, **kwargs)
        return False
    ray.init(
        num_cpus=num_cpus,
        _node_ip_address="127.0.0.1",
        dashboard_host="127.0.0.1",
        include_dashboard=kwargs.pop("include_dashboard", False),
        **kwargs,
    )
    return True
