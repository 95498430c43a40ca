"""Where the server may send requests for its users (webhooks): public addresses only (no SSRF).

A key holder names a webhook URL; without this check they could make the server call its own
loopback, the private network or a cloud metadata service (169.254.169.254). The host is
resolved and checked when a job is created, and again on every connection the webhook
dispatcher opens, on the very addresses it connects to, since DNS answers can change
(rebinding). `Settings.webhook_allow_private` (IMAGINEER_WEBHOOK_ALLOW_PRIVATE) turns the
check off, for deployments whose key holders may reach the internal network anyway.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from typing import Final
from urllib.parse import urlsplit

import httpcore
import httpx

ALLOW_SETTING: Final = "IMAGINEER_WEBHOOK_ALLOW_PRIVATE"
_NAT64: Final = ipaddress.ip_network("64:ff9b::/96")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]  # (host, port) -> addresses; OSError when none


class ForbiddenDestination(ValueError):
    """A URL whose host is, or resolves to, an address the server must not call."""


class RefusedAddress(httpcore.ConnectError):
    """A connection the webhook transport refused to open (httpx reports a ConnectError)."""


def resolve(host: str, port: int) -> list[str]:
    """The addresses a host name stands for, in the resolver's order, without repeats."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def address_problem(address: IPAddress) -> str | None:
    """What kind of internal address this is ("loopback", "private", …); None when public."""
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        address = embedded
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
        ("non-public", not address.is_global),  # e.g. 100.64.0.0/10, shared by carrier NAT
    )
    return next((name for name, hit in checks if hit), None)


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, 6to4, Teredo, NAT64): judged by it."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def checked_addresses(host: str, port: int, resolver: Resolver = resolve) -> list[str]:
    """The host's addresses, or ForbiddenDestination when it does not resolve or any of its
    addresses is internal (a name with one public and one private address is refused)."""
    try:
        addresses = [host] if _is_literal(host) else resolver(host, port)
    except (OSError, UnicodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ForbiddenDestination(
            f"the host {host!r} does not resolve ({why}): give a host name this server can look up"
        ) from None
    if not addresses:
        raise ForbiddenDestination(f"the host {host!r} has no address")
    for text in addresses:
        problem = address_problem(ipaddress.ip_address(text.split("%")[0]))
        if problem is not None:
            named = host if host == text else f"{host} resolves to {text}, which"
            raise ForbiddenDestination(
                f"{named} is a {problem} address: webhooks go to public addresses only; "
                "give a public http(s) URL (the server's operator can allow internal ones "
                "with the webhook_allow_private setting)"
            )
    return addresses


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def check_destination(url: str, *, allow_private: bool, resolver: Resolver = resolve) -> None:
    """Raise ForbiddenDestination unless the server may post to `url` (an http(s) URL whose
    syntax was checked already)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ForbiddenDestination(f"{url!r}: use an http:// or https:// URL with a host")
    if allow_private:
        return
    port = parts.port or (443 if parts.scheme == "https" else 80)
    checked_addresses(parts.hostname, port, resolver)


class GuardedBackend(httpcore.NetworkBackend):
    """Opens TCP connections only to public addresses: it resolves the host itself, checks
    every address, and connects to a checked one (TLS still verifies the host name)."""

    def __init__(self, resolver: Resolver = resolve) -> None:
        self._resolver = resolver
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            addresses = checked_addresses(host, port, self._resolver)
        except ForbiddenDestination as exc:
            raise RefusedAddress(str(exc)) from None
        failure: Exception = RefusedAddress(f"no address of {host!r} answered")
        for address in addresses:
            try:
                return self._inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        raise failure

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        raise RefusedAddress("webhooks are not sent over Unix sockets")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def webhook_transport(*, allow_private: bool, resolver: Resolver = resolve) -> httpx.HTTPTransport:
    """The transport webhooks are sent with: no proxies from the environment, and unless
    allow_private, every connection checked by GuardedBackend."""
    transport = httpx.HTTPTransport(trust_env=False)
    if allow_private:
        return transport
    # httpx takes no network backend; give its transport a pool that has ours.
    if not isinstance(transport._pool, httpcore.ConnectionPool):
        raise RuntimeError("httpx changed: its transport has no connection pool to guard")
    transport._pool = httpcore.ConnectionPool(
        ssl_context=httpx.create_ssl_context(trust_env=False),
        network_backend=GuardedBackend(resolver),
    )
    return transport
