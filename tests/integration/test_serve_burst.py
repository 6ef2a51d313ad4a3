"""A burst against one model served in one hop: refused by the replica at once, typed, not queued in Serve.

Serve's router sends a replica at most `max_ongoing_requests`; once a replica is at that many, the
rest of a burst waits in the router, whose routing tasks (2 per replica) retry a full replica only
every 0.5 s. So the replica keeps room beyond what it admits (serve/config.py REFUSAL_HEADROOM) and
refuses the excess itself, before reading the body.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest

from serve.local import run_local
from tests.fixtures.images import encode, gradient
from tests.fixtures.serving import QUICK_STOP

pytestmark = pytest.mark.ray

IMAGE = encode(gradient(320, 240))
MAX_BODY = 100_000
BATCH_WAIT_S = 2.0  # the refusals took ~0.35 s on a quiet 2-core VM: ample margin on a busy one
# Admits 2 online requests (+1 queued, one hop), which then wait BATCH_WAIT_S for company that the
# refused ones cannot bring: every refusal must come back before the first admitted request does.
CONFIG = {
    "models": [{"name": "fixture", "num_cpus": 0.25, "max_batch_size": 4, "batch_wait_timeout_s": BATCH_WAIT_S,
                "batch_wait_policy": "fixed", "max_online_requests": 2, "max_queued_requests": 1,
                "alias_poll_interval_s": 0, **QUICK_STOP}],
    "http": {"port": 0, "max_body_bytes": MAX_BODY},
}


@pytest.fixture(scope="module")
def url(ray_cluster, promoted_store) -> Iterator[str]:
    with run_local({**CONFIG, "store": promoted_store("serve-burst").root}, environ={}) as base_url:
        yield base_url


async def _timed(client: httpx.AsyncClient, url: str, content: bytes, delay_s: float = 0.0):
    await asyncio.sleep(delay_s)
    t0 = time.perf_counter()
    r = await client.post(url + "/v1/detect", content=content, headers={"content-type": "image/jpeg"})
    return r, time.perf_counter() - t0


def _burst(url: str, bodies: list[tuple[bytes, float]]) -> list[tuple[httpx.Response, float]]:
    async def go():
        async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=None)) as client:
            return await asyncio.gather(*(_timed(client, url, body, delay) for body, delay in bodies))

    return asyncio.run(go())


def _assert_overloaded(r: httpx.Response) -> None:
    assert r.status_code == 503, r.text
    err = r.json()["error"]
    assert err["type"] == "overloaded" and "already holds 3 online requests" in err["message"], err
    assert r.headers["retry-after"] == "1"


def test_a_burst_beyond_the_admission_is_refused_at_once_by_the_replica(url):
    n = 70  # well past the 3 admitted + the 12 slots the replica used to keep for refusals
    results = _burst(url, [(IMAGE, 0.0)] * n)
    ok = [t for r, t in results if r.status_code == 200]
    refused = [(r, t) for r, t in results if r.status_code != 200]
    assert len(ok) == 3 and len(refused) == n - 3, sorted(r.status_code for r, _ in results)
    for r, _ in refused:
        _assert_overloaded(r)  # typed JSON from the replica, not Serve's plain-text 503
    # Not one refused request waited for the admitted batch: none sat in Serve's router.
    assert max(t for _, t in refused) < min(ok), (max(t for _, t in refused), min(ok))
    assert min(ok) >= BATCH_WAIT_S * 0.9


def test_a_full_replica_refuses_before_reading_the_body(url):
    # While 3 requests hold the replica's places, an oversized body gets 503 overloaded (refused before
    # the body is read), not the 413 it gets once there is room again.
    oversized = IMAGE + b"\0" * MAX_BODY
    results = _burst(url, [(IMAGE, 0.0)] * 3 + [(oversized, 0.5)])
    assert [r.status_code for r, _ in results[:3]] == [200] * 3
    _assert_overloaded(results[3][0])
    with httpx.Client(timeout=60) as client:
        r = client.post(url + "/v1/detect", content=oversized, headers={"content-type": "image/jpeg"})
    assert r.status_code == 413 and r.json()["error"]["type"] == "payload_too_large", r.text
