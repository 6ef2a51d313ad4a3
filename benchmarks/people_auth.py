"""People, roles and the fetch guard (issue 66): what the token check adds to a request with 1,000 people registered,
how soon a revocation reaches every replica, and the SSRF corpus: tried, refused, received.

`python -m benchmarks.people_auth [--people 1000] [--calls 20000] [--replicas 2] [--revocations 5] [--refresh-s 2]`

1. The check: serve/auth.py `Tokens.authorize` as every route's dependency calls it, timed per call (perf_counter_ns)
   for CALLS calls with a registered person's token (people.json of PEOPLE entries, read by a PeopleView), and, for
   comparison, with the service's admin token (today's check) and with no check at all (the loop alone).
2. Revocation: REPLICAS PeopleViews (what each ingress replica holds) over one registry on local disk, refresh_s as
   given (the default, 2 s); a person revoked by the registry's writer; each view polled every 5 ms until it refuses
   the digest. REVOCATIONS rounds: the time until the last replica refuses, median and max.
3. The SSRF corpus of tests/fixtures/ssrf.py sent through the Antenna door's fetcher and through `read_web` (the
   console's and the batch commands'), against the counting server: tried, refused, received past the guard.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time

from ground.errors import FetchRefusedError, ImageFetchError
from serve.antenna.fetch import ImageFetcher
from serve.antenna_config import FetchConfig
from serve.auth import Tokens, token_digest
from serve.people import PeopleRegistry, PeopleView, digest
from serve.roles import ROLE_NAMES, Role
from tests.fixtures.ssrf import GUARD, Counting, corpus, counting_servers, past_the_guard

ADMIN = "bench-admin-token"


def _timed(fn, calls: int) -> dict[str, float]:
    times = []
    for _ in range(calls):
        t0 = time.perf_counter_ns()
        fn()
        times.append(time.perf_counter_ns() - t0)
    times.sort()
    return {"p50_us": times[len(times) // 2] / 1000, "p99_us": times[int(len(times) * 0.99)] / 1000}


def token_check(people: int, calls: int, root: str) -> dict[str, object]:
    registry = PeopleRegistry(root)
    tokens = [registry.add(f"person-{i:04d}", ROLE_NAMES[i % 4]) for i in range(people)]
    view = PeopleView(root, refresh_s=3600)
    try:
        checker = Tokens(token_digest(ADMIN), token_digest("bench-api"), "X", view)
        person = f"Bearer {tokens[people // 2]}"
        admin = f"Bearer {ADMIN}"
        return {"people": people, "calls": calls,
                "person_token": _timed(lambda: checker.authorize(person, Role.reader), calls),
                "admin_token": _timed(lambda: checker.authorize(admin, Role.reader), calls),
                "no_check": _timed(lambda: None, calls)}
    finally:
        view.close()


def revocation(replicas: int, rounds: int, refresh_s: float, root: str) -> dict[str, object]:
    registry = PeopleRegistry(root)
    views = [PeopleView(root, refresh_s) for _ in range(replicas)]
    seconds = []
    try:
        for r in range(rounds):
            token = registry.add(f"revoked-{r}", "reviewer")
            d = digest(token)
            while not all(v.person(d) for v in views):
                time.sleep(0.005)
            t0 = time.monotonic()
            registry.revoke(f"revoked-{r}")
            while any(v.person(d) for v in views):
                time.sleep(0.005)
            seconds.append(time.monotonic() - t0)
    finally:
        for v in views:
            v.close()
    return {"replicas": replicas, "refresh_s": refresh_s, "rounds": rounds,
            "median_s": round(statistics.median(seconds), 3), "max_s": round(max(seconds), 3)}


def ssrf() -> dict[str, object]:
    with counting_servers() as (port, port6):
        urls = corpus(port, port6)

        async def door() -> list[object]:
            fetcher = ImageFetcher(FetchConfig(timeout_s=5), GUARD)
            try:
                return await fetcher.fetch_all(urls)
            finally:
                await fetcher.aclose()

        answers = asyncio.run(door())
        door_refused = sum(isinstance(a, ImageFetchError) and a.reason == "refused" for a in answers)
        web_refused = 0
        for url in urls:
            try:
                from model_store.tables.archive import read_web

                read_web(url, timeout_s=5, guard=GUARD)
            except FetchRefusedError:
                web_refused += 1
        return {"tried": 2 * len(urls), "refused": door_refused + web_refused, "received_past_the_guard":
                len(past_the_guard(port)), "allowed_host_redirects_answered": len(Counting.received)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=1000)
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--revocations", type=int, default=5)
    parser.add_argument("--refresh-s", type=float, default=2.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        out = {"token_check": token_check(args.people, args.calls, a),
               "revocation": revocation(args.replicas, args.revocations, args.refresh_s, b),
               "ssrf": ssrf()}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
