"""The fetch guard over real HTTP: an SSRF corpus against a local server that counts what it receives
(tests/fixtures/ssrf.py). Both doors of the guard are tried: the Antenna door's async
fetcher (each image's typed error) and the sync `read_web` of the console and the batch commands (an OSError, the
service's 404). A host allowed by name reaches the server; its redirect to a private address does not.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from ground.errors import FetchRefusedError, ImageFetchError
from ground.fetch_guard import FetchGuard, address_refusal
from model_store.tables.archive import read_web
from serve.antenna.fetch import ImageFetcher
from serve.antenna_config import AntennaConfig, FetchConfig
from tests.fixtures.ssrf import GUARD, Counting, corpus, counting_servers, past_the_guard, resolver


@pytest.fixture
def servers() -> Iterator[tuple[int, int]]:
    with counting_servers() as ports:
        yield ports


def test_the_ssrf_corpus_is_refused_by_the_antenna_fetcher_and_nothing_is_received(servers):
    port, port6 = servers
    urls = corpus(port, port6)

    async def go():
        fetcher = ImageFetcher(FetchConfig(timeout_s=5), GUARD)
        try:
            return await fetcher.fetch_all(urls)
        finally:
            await fetcher.aclose()

    answers = asyncio.run(go())
    redirects = [u for u in urls if "/redirect" in u]
    # the allowed host answered its redirect (3 GETs received); no hop after it reached the server
    assert not past_the_guard(port)
    assert sorted(Counting.received) == sorted(f"{port}{u.split(str(port), 1)[1]}" for u in redirects)
    assert all(isinstance(a, ImageFetchError) and a.reason == "refused" for a in answers), \
        [(u, a) for u, a in zip(urls, answers, strict=True) if not isinstance(a, ImageFetchError)
         or a.reason != "refused"]
    by_url = dict(zip(urls, answers, strict=True))
    assert "169.254.169.254, a link-local address" in by_url["http://169.254.169.254/latest/meta-data/"].message
    assert "10.1.2.3, a private address" in by_url[f"http://internal.test:{port}/a.jpg"].message


def test_the_ssrf_corpus_is_refused_by_read_web_and_nothing_is_received(servers):
    port, port6 = servers
    for url in corpus(port, port6):
        with pytest.raises(FetchRefusedError):
            read_web(url, timeout_s=5, guard=GUARD)
    assert not past_the_guard(port) and len(Counting.received) == 3


def test_hosts_allowed_by_name_and_by_list(servers, monkeypatch):
    port, _ = servers
    assert read_web(f"http://allowed.test:{port}/a.jpg", guard=GUARD) == b"ok!\n"
    # a redirect between allowed hosts is followed
    assert read_web(f"http://allowed.test:{port}/redirect?to=http://allowed.test:{port}/b.jpg", guard=GUARD) \
        == b"ok!\n"
    # `127.0.0.1` allowed by name lets that spelling through, not `127.1` nor `localhost`
    loopback = FetchGuard.of(None, ["127.0.0.1"])
    assert read_web(f"http://127.0.0.1:{port}/c.jpg", guard=loopback) == b"ok!\n"
    for other in (f"http://127.1:{port}/c.jpg", f"http://localhost:{port}/c.jpg"):
        with pytest.raises(FetchRefusedError):
            read_web(other, guard=loopback)
    # an allowlist: other hosts are refused before they are resolved, even public ones
    listed = FetchGuard.of(["*.antenna.example"], [], resolver)
    for url in ("https://example.org/a.jpg", f"http://allowed.test:{port}/a.jpg"):
        with pytest.raises(FetchRefusedError) as refused:
            listed.check_url(url)
        assert refused.value.reason == "host"
    listed.check_url("https://media.antenna.example/a.jpg")
    # the Antenna door's default allowlist is the host of the API it serves, when the config names it
    door = AntennaConfig(api="https://antenna.example/api/v2", pipelines=[{"slug": "x", "detector": "d"}])
    assert door.fetch_guard().allowed_hosts == ("antenna.example",)
    assert AntennaConfig(pipelines=[{"slug": "x", "detector": "d"}]).fetch_guard().allowed_hosts is None
    # batch commands: the environment's lists
    monkeypatch.setenv("TRAPLINE_FETCH_PRIVATE_HOSTS", "127.0.0.1, minio")
    assert FetchGuard.from_env().private_hosts == ("127.0.0.1", "minio")
    assert len(Counting.received) == 4


def test_urls_the_client_cannot_read_are_refused_and_say_why():
    """Even on the allowlist: `0177.0.0.1` (an IPv4 address the HTTP client will not read) and a URL with white space
    around it are refusals that say what is wrong, not connection failures."""
    config = FetchConfig(allowed_hosts=["0177.0.0.1", "1.2.3.256", "127.0.0.1"], timeout_s=5)

    async def go(urls):
        fetcher = ImageFetcher(config)
        try:
            return await fetcher.fetch_all(urls)
        finally:
            await fetcher.aclose()

    urls = ["http://0177.0.0.1:9/a.jpg", "http://1.2.3.256/a.jpg", " http://127.0.0.1:9/a.jpg",
            "http://127.0.0.1:9/a.jpg\n"]
    answers = asyncio.run(go(urls))
    assert [a.reason for a in answers] == ["refused"] * 4, answers
    assert "Invalid IPv4 address" in answers[0].message and "Invalid IPv4 address" in answers[1].message
    assert all("starts or ends with white space" in a.message for a in answers[2:])
    guard = FetchGuard.of(config.allowed_hosts)
    for url in urls:
        with pytest.raises(FetchRefusedError) as refused:
            read_web(url, timeout_s=5, guard=guard)
        assert refused.value.reason == "url"


@pytest.mark.parametrize(("address", "why"), [
    ("127.0.0.1", "loopback"), ("0.0.0.0", "unspecified"), ("10.0.0.1", "private"), ("192.168.1.1", "private"),
    ("172.16.0.1", "private"), ("100.64.0.1", "not public"), ("169.254.169.254", "link-local"),
    ("224.0.0.1", "multicast"), ("::1", "loopback"), ("::", "unspecified"), ("fe80::1%eth0", "link-local"),
    ("fc00::1", "private"), ("ff02::1", "multicast"), ("::ffff:10.0.0.1", "private"), ("64:ff9b::7f00:1", "loopback"),
    ("2002:7f00:1::", "loopback"), ("fd00:ec2::254", "private"), ("93.184.215.14", None),
    ("2606:4700:4700::1111", None)])
def test_each_kind_of_address(address, why):
    assert address_refusal(address) == why
