"""httpx clients whose every connection passes a FetchGuard (ground/fetch_guard.py): the fetches trapline makes
on someone's behalf (an Antenna door's images, the console's recorded-URL captures, a report's or a snip's source).

How: httpcore, under httpx, opens each TCP connection through a network backend's `connect_tcp(host, port)` — once per
hop of a redirect chain, and for no other reason. The backend here resolves the host itself, checks every address
with the guard, and connects to a checked address, never to the name again: no DNS-rebinding window between the
check and the connection. TLS still verifies the certificate against the URL's host name (httpcore passes the
origin's host as `server_hostname` to `start_tls`), and the Host header is the URL's. A refused hop raises
FetchRefusedError from `connect_tcp`, before anything is written to a socket.

The one private touch: httpx's transports do not take a network backend, so the transport's connection pool is
replaced by one built with httpcore's own (public) `network_backend` argument; `tests/unit/test_fetch_guard.py`
fails if a future httpx stops going through it. No proxy is used (`trust_env=False`): a proxy would make the
connection to the proxy, not to the checked address.
"""

from __future__ import annotations

import functools
import ssl
from typing import Any

import anyio
import httpcore
import httpx

from ground.errors import FetchRefusedError
from ground.fetch_guard import FetchGuard


@functools.cache
def _ssl_context() -> ssl.SSLContext:  # the default CA bundle, loaded once (~0.1 s each time otherwise)
    return httpx.create_ssl_context()


def _checked(guard: FetchGuard, host: str, port: int) -> list[str]:
    """The addresses `host` resolves to, every one passed by `guard` (a refusal raised as it is); a name that does
    not resolve is httpcore's ConnectError, as an unreachable host is."""
    try:
        return guard.addresses(host, port)
    except FetchRefusedError:
        raise
    except OSError as exc:
        raise httpcore.ConnectError(str(exc)) from None


class _GuardedBackend(httpcore.NetworkBackend):
    def __init__(self, guard: FetchGuard) -> None:
        self.guard = guard
        self.inner = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Any = None) -> httpcore.NetworkStream:
        last: Exception | None = None
        for address in _checked(self.guard, host, port):
            try:
                return self.inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.NetworkStream:
        raise FetchRefusedError("scheme", "a fetch on someone's behalf never opens a unix socket")

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)


class _AsyncGuardedBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, guard: FetchGuard) -> None:
        self.guard = guard
        self.inner = httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                          socket_options: Any = None) -> httpcore.AsyncNetworkStream:
        # the resolver blocks (getaddrinfo): in a thread, as asyncio's own getaddrinfo does
        addresses = await anyio.to_thread.run_sync(_checked, self.guard, host, port)
        last: Exception | None = None
        for address in addresses:
            try:
                return await self.inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        raise FetchRefusedError("scheme", "a fetch on someone's behalf never opens a unix socket")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


def guarded_client(guard: FetchGuard, **kwargs: Any) -> httpx.Client:
    """An httpx.Client (redirects followed, each hop checked) whose connections all pass `guard`."""
    transport = httpx.HTTPTransport()
    transport._pool = httpcore.ConnectionPool(ssl_context=_ssl_context(),
                                              network_backend=_GuardedBackend(guard))

    def each_hop(request: httpx.Request) -> None:  # a redirect's scheme and host, with the first URL's words
        guard.check_url(str(request.url))

    return httpx.Client(transport=transport, trust_env=False, follow_redirects=True,
                        event_hooks={"request": [each_hop]}, **kwargs)


def guarded_async_client(guard: FetchGuard, **kwargs: Any) -> httpx.AsyncClient:
    """As guarded_client, for asyncio (the Antenna door)."""
    transport = httpx.AsyncHTTPTransport()
    transport._pool = httpcore.AsyncConnectionPool(ssl_context=_ssl_context(),
                                                   network_backend=_AsyncGuardedBackend(guard))

    async def each_hop(request: httpx.Request) -> None:
        guard.check_url(str(request.url))

    return httpx.AsyncClient(transport=transport, trust_env=False, follow_redirects=True,
                             event_hooks={"request": [each_hop]}, **kwargs)
