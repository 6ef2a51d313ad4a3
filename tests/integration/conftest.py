"""One real local Ray cluster per test session (start-up costs ~5 s), on loopback, 2 CPUs."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

RAY_TEST_CPUS = int(os.environ.get("TRAPLINE_TEST_RAY_CPUS", "2"))


@pytest.fixture(scope="session")
def ray_cluster(s3_server) -> Iterator[None]:
    """A local Ray instance shared by every integration test; shut down at session end.

    Started after the S3-compatible server, so its processes (Serve replicas included) see the endpoint and
    credentials in their environment, as a cluster's nodes would have them."""
    import ray

    from trapline.ray_runtime import ensure_ray

    started = ensure_ray(num_cpus=RAY_TEST_CPUS, log_to_driver=False)
    try:
        yield
    finally:
        if started:
            try:
                from ray import serve

                serve.shutdown()
            except Exception:  # noqa: BLE001 - Serve may never have started
                pass
            ray.shutdown()
