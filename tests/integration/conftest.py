"""One real local Ray cluster per test session (start-up costs ~5 s), on loopback, 2 CPUs, with one Serve; one
Antenna harness per session (tests/fixtures/antenna.py), for the tests that need it."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.fixtures.antenna import Harness

RAY_TEST_CPUS = int(os.environ.get("TRAPLINE_TEST_RAY_CPUS", "2"))


@pytest.fixture(scope="session")
def ray_cluster(s3_server) -> Iterator[None]:
    """A local Ray instance shared by every integration test, with Serve running on it; shut down at session end.

    Started after the S3-compatible server, so its processes (Serve replicas included) see the endpoint and
    credentials in their environment, as a cluster's nodes would have them.

    Serve (its controller and HTTP proxy) is started here once, on a free loopback port: each module's
    `run_local` / `run_config` then deploys its app on the running Serve and deletes it after, as on a cluster
    where Serve is already up, instead of starting and shutting Serve down once per module (~4 s a start, some
    twenty of them in the suite)."""
    import ray

    from ground.ray_runtime import ensure_ray
    from serve.local import free_port

    # Metrics reach the node's Prometheus endpoint every second, not Ray's default 10 s: the tests that read a
    # counter there (tests/integration/test_serve_http.py) wait for the export, not for the interval.
    started = ensure_ray(num_cpus=RAY_TEST_CPUS, log_to_driver=False,
                         _system_config={"metrics_report_interval_ms": 1000})
    try:
        if started:
            from ray import serve

            serve.start(http_options={"host": "127.0.0.1", "port": free_port()})
        yield
    finally:
        if started:
            try:
                from ray import serve

                serve.shutdown()
            except Exception:  # noqa: BLE001 - Serve may never have started
                pass
            ray.shutdown()


_harnesses: list[Harness] = []


@pytest.fixture(scope="session")
def antenna() -> Iterator[Harness]:
    """The Antenna harness, set up and started in the background when a test first asks for it (its own service
    starts meanwhile); `antenna.wait()` before the first call to Antenna. One for the session, stopped after the last
    test that asks for it (Antenna's services idle through no other test), and only if it was not already running."""
    harness = Harness()
    _harnesses.append(harness)
    try:
        yield harness
    finally:
        harness.stop()


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item, nextitem) -> None:
    if _harnesses and "antenna" in item.fixturenames:
        later = item.session.items[item.session.items.index(item) + 1:]
        if not any("antenna" in getattr(other, "fixturenames", ()) for other in later):
            _harnesses[-1].stop()
