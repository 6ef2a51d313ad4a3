"""Where trapline may fetch on someone's behalf: one policy for every URL a caller (or a recorded row) names.

OWASP's SSRF prevention, as a policy object: http(s) only; the host on an allowlist when one is configured; every
address the host resolves to checked, on every hop (a redirect is a new hop) — loopback, private, link-local,
multicast, unspecified, reserved and the IPv6 forms of each (IPv4-mapped, NAT64, 6to4) refused unless the host is
allowed to reach them *by name* (`private_hosts`, e.g. an Antenna on the same machine). A refusal is raised before a
byte is sent. The addresses checked are the ones connected to (ground/guarded_http.py connects to them, not to
the name again), so a name cannot resolve to a public address for the check and a private one for the connection.

Numeric forms (`127.1`, `2130706433`, `0x7f000001`, `[::ffff:127.0.0.1]`) need no rule of their own: they are names
the resolver turns into addresses, and the addresses are what is checked; a name allowed "by name" is matched as
written, so `127.0.0.1` in `private_hosts` does not let `127.1` through. A form the HTTP client itself cannot
parse (`0177.0.0.1`, `1.2.3.256`: an IPv4 address with a leading zero or a part over 255) is refused as a URL, like
one with white space around it.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ground import env
from ground.errors import FetchRefusedError

SCHEMES = ("http", "https")
PRIVATE_HOSTS_ENV = env.FETCH_PRIVATE_HOSTS.name
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

Resolver = Callable[[str, int], list[str]]


def system_resolver(host: str, port: int) -> list[str]:
    """The addresses the system resolver gives for host (getaddrinfo: /etc/hosts, DNS, numeric forms)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def normal_host(host: str) -> str:
    """A host as the guard compares it: lower case, no brackets, no trailing dot; an IP literal in its short form."""
    host = host.strip().strip("[]").rstrip(".").lower()
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host


def address_refusal(address: str) -> str | None:
    """Why an address may not be reached without being allowed by name, or None for a public address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 zone (fe80::1%eth0) is not part of the address
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (
            ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF) if ip in _NAT64 else None)
        if embedded is not None:  # an IPv4 address in IPv6 clothing is judged as that IPv4 address
            return address_refusal(str(embedded))
    for test, why in (("is_unspecified", "unspecified"), ("is_loopback", "loopback"),
                      ("is_link_local", "link-local"), ("is_multicast", "multicast"), ("is_private", "private"),
                      ("is_reserved", "reserved")):
        if getattr(ip, test):
            return why
    return None if ip.is_global else "not public"


def _matches(host: str, patterns: Iterable[str]) -> bool:
    for p in patterns:
        if p == host or (p.startswith("*.") and host.endswith(p[1:])):
            return True
    return False


@dataclass(frozen=True)
class FetchGuard:
    """The policy: `allowed_hosts` None lets any host whose addresses are all public through; `private_hosts` are
    hosts (exact names or IP literals as written in URLs) that may resolve to non-public addresses — they are allowed
    hosts too. `resolver` is the system's (tests give one that maps a name to a private address)."""

    allowed_hosts: tuple[str, ...] | None = None
    private_hosts: tuple[str, ...] = ()
    resolver: Resolver = field(default=system_resolver, compare=False, repr=False)

    @classmethod
    def of(cls, allowed_hosts: Iterable[str] | None = None, private_hosts: Iterable[str] = (),
           resolver: Resolver = system_resolver) -> FetchGuard:
        return cls(None if allowed_hosts is None else tuple(normal_host(h) for h in allowed_hosts),
                   tuple(normal_host(h) for h in private_hosts), resolver)

    @classmethod
    def from_env(cls) -> FetchGuard:
        """The guard of a process without a serve config (batch jobs reading recorded URLs): the environment's
        lists, else public addresses only."""
        def names(var: env.EnvVar) -> list[str] | None:
            value = (var.get() or "").strip()
            return [n for n in (p.strip() for p in value.split(",")) if n] if value else None

        return cls.of(names(env.FETCH_ALLOWED_HOSTS), names(env.FETCH_PRIVATE_HOSTS) or ())

    def check_url(self, url: str) -> None:
        """Scheme and host of a URL, before anything is resolved (each hop's addresses: `addresses`)."""
        # late: httpx is loaded where something is fetched, not by every importer of the policy
        import httpx

        if url != url.strip():  # the client would read ' http://h/x' as a path on no host: say what is wrong
            raise FetchRefusedError("url", f"{url!r} starts or ends with white space: give the URL without it",
                                    url=url)
        try:
            parts = urlsplit(url)
            host = parts.hostname
            parts.port  # noqa: B018 - a malformed port raises here, not later in the client
            httpx.URL(url)  # the client's own parser: what it cannot connect to (`0177.0.0.1`) is a refusal
        except (ValueError, httpx.InvalidURL) as exc:
            raise FetchRefusedError("url", f"{url!r} is not a URL trapline fetches: {exc}", url=url) from None
        if parts.scheme.lower() not in SCHEMES:
            raise FetchRefusedError("scheme", f"{url!r}: only http(s) URLs are fetched", url=url)
        if not host:
            raise FetchRefusedError("url", f"{url!r} names no host", url=url)
        self.check_host(host)

    def check_host(self, host: str) -> str:
        name = normal_host(host)
        if self.allowed_hosts is not None and not _matches(name, self.allowed_hosts + self.private_hosts):
            raise FetchRefusedError("host", f"{host} is not among the hosts this service fetches from "
                                            f"({', '.join(self.allowed_hosts) or 'none'})", host=host)
        return name

    def addresses(self, host: str, port: int) -> list[str]:
        """Every address host resolves to, each checked; the ones to connect to (in the resolver's order)."""
        name = self.check_host(host)
        try:
            found = self.resolver(name, port)
        except (OSError, UnicodeError) as exc:
            raise OSError(f"{host} cannot be resolved: {exc}") from None
        if not found:
            raise OSError(f"{host} resolves to no address")
        if name in self.private_hosts:
            return found
        for address in found:
            why = address_refusal(address)
            if why is not None:  # one bad address refuses the name: a resolver's order is not the caller's to pick
                raise FetchRefusedError("address", f"{host} resolves to {address}, a {why} address this service "
                                                   "does not fetch from (allow the host by name to permit it)",
                                        host=host, address=address)
        return found
