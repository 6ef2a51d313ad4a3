"""Fetch the images Antenna names by URL: a timeout, a size limit, the fetch guard on every hop (only where the
config allows: ground/fetch_guard.py), and one typed error per image that fails."""

from __future__ import annotations

import asyncio

import httpx

from ground.errors import FetchRefusedError, ImageFetchError
from ground.fetch_guard import FetchGuard
from ground.guarded_http import guarded_async_client
from serve.antenna_config import FetchConfig


class ImageFetcher:
    """One pooled HTTP client for the life of the door (or worker). `fetch(url)` returns the body or raises
    ImageFetchError; `fetch_all` answers each URL with its bytes or its error, at most `concurrency` at once.
    `guard` (default: the config's hosts, public addresses only) is checked before every connection; `transport`
    replaces the network for unit tests (the URL is still checked, no address is)."""

    def __init__(self, config: FetchConfig, guard: FetchGuard | None = None,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.config = config
        self.guard = guard or FetchGuard.of(config.allowed_hosts, config.private_hosts)
        timeout = httpx.Timeout(config.timeout_s)
        # trust_env=False (both): Antenna's media URLs are fetched directly; a proxy would connect to itself, not to
        # the address the guard checked
        self.client = guarded_async_client(self.guard, timeout=timeout) if transport is None else httpx.AsyncClient(
            timeout=timeout, follow_redirects=True, trust_env=False, transport=transport)
        self._slots = asyncio.Semaphore(config.concurrency)

    async def fetch(self, url: str) -> bytes:
        limit = self.config.max_bytes
        try:
            self.guard.check_url(url)
            async with self._slots, self.client.stream("GET", url) as response:
                if response.status_code != 200:
                    raise ImageFetchError("status", f"GET {url} answered HTTP {response.status_code}", url=url,
                                          http_status=response.status_code)
                declared = response.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > limit:
                    raise ImageFetchError("too_large", f"{url} is {declared} bytes, over the limit of {limit}",
                                          url=url)
                chunks, size = [], 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > limit:
                        raise ImageFetchError("too_large", f"{url} is over the limit of {limit} bytes", url=url)
                    chunks.append(chunk)
                return b"".join(chunks)
        except FetchRefusedError as exc:
            raise ImageFetchError("refused", f"GET {url} refused: {exc.message}", url=url) from None
        except httpx.TimeoutException:
            raise ImageFetchError("timeout", f"GET {url} timed out after {self.config.timeout_s:g} s",
                                  url=url) from None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise ImageFetchError("connection", f"GET {url} failed: {type(exc).__name__}: {exc}", url=url) from None

    async def fetch_all(self, urls: list[str]) -> list[bytes | ImageFetchError]:
        async def one(url: str) -> bytes | ImageFetchError:
            try:
                return await self.fetch(url)
            except ImageFetchError as exc:
                return exc

        return list(await asyncio.gather(*(one(u) for u in urls)))

    async def aclose(self) -> None:
        await self.client.aclose()
