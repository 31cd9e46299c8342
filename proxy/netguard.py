"""Which hosts and addresses a remote source may reach: the SSRF rules, free of any I/O."""

from __future__ import annotations

import fnmatch
import ipaddress
import socket
from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from urllib.parse import unquote

from .errors import Forbidden

Address = IPv4Address | IPv6Address

# IANA special-purpose ranges, spelled out rather than left to `ipaddress.is_global`, whose
# answers have changed between Python releases (multicast, for one, counts as "global").
_BLOCKED_V4 = tuple(
    IPv4Network(net)
    for net in (
        "0.0.0.0/8",  # "this network": 0.0.0.0 reaches the local host on Linux
        "10.0.0.0/8",
        "100.64.0.0/10",  # carrier-grade NAT: the provider's side of the network
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local, home of cloud metadata at 169.254.169.254
        "172.16.0.0/12",
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # documentation
        "192.88.99.0/24",  # 6to4 relay anycast
        "192.168.0.0/16",
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # documentation
        "203.0.113.0/24",  # documentation
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, including 255.255.255.255
    )
)
_BLOCKED_V6 = tuple(
    IPv6Network(net)
    for net in (
        "::/128",  # unspecified
        "::1/128",  # loopback
        "100::/64",  # discard-only
        "64:ff9b:1::/48",  # local-use NAT64: translates into private networks
        "2001::/23",  # IETF protocol assignments (Teredo is handled before this)
        "2001:db8::/32",  # documentation
        "3fff::/20",  # documentation
        "5f00::/16",  # segment routing SIDs
        "fc00::/7",  # unique local
        "fe80::/10",  # link-local
        "fec0::/10",  # site-local (deprecated, still routed by some stacks)
        "ff00::/8",  # multicast
    )
)
_NAT64 = IPv6Network("64:ff9b::/96")
_TEREDO = IPv6Network("2001::/32")
_SIIT = IPv6Network("::ffff:0:0:0/96")  # IPv4-translated


def is_public(address: str | Address) -> bool:
    """True when `address` is a globally routable unicast address.

    IPv6 forms that carry an IPv4 address (mapped, compatible, translated, NAT64, 6to4,
    Teredo) are judged by the IPv4 address they lead to, since that is where packets go.
    """
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, IPv4Address):
        return _public_v4(ip)
    embedded = _embedded_v4(ip)
    if embedded is not None:
        return all(_public_v4(v4) for v4 in embedded)
    return not any(ip in net for net in _BLOCKED_V6) and ip.is_global


def _public_v4(ip: IPv4Address) -> bool:
    return not any(ip in net for net in _BLOCKED_V4) and ip.is_global


def _embedded_v4(ip: IPv6Address) -> tuple[IPv4Address, ...] | None:
    low32 = IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.ipv4_mapped is not None:
        return (ip.ipv4_mapped,)
    if int(ip) >> 32 == 0 or ip in _SIIT or ip in _NAT64:  # compatible (incl. :: and ::1)
        return (low32,)
    if ip.sixtofour is not None:
        return (ip.sixtofour,)
    if ip in _TEREDO and ip.teredo is not None:
        return ip.teredo  # (server, client): both are reached through the tunnel
    return None


def literal_address(host: str) -> Address | None:
    """The address a host name spells literally, in any form the C library accepts.

    `inet_aton` reads `2130706433`, `0x7f.0.0.1`, `0177.0.0.1` and `127.1` as 127.0.0.1,
    and so does getaddrinfo, so this is how the connection would see them too.
    """
    name = unquote(host).strip("[]").rstrip(".")
    try:
        return ipaddress.ip_address(name.split("%", 1)[0])  # an IPv6 zone does not matter
    except ValueError:
        pass
    if not name.isascii() or not all(part.isalnum() for part in name.split(".")):
        return None
    try:
        return IPv4Address(socket.inet_aton(name))
    except OSError:
        return None


def host_allowed(host: str, patterns: Iterable[str]) -> bool:
    """Does `host` match one of the `sources.allowed_hosts` globs (case-insensitive)?"""
    name = host.lower().rstrip(".")
    return any(fnmatch.fnmatchcase(name, pattern.lower()) for pattern in patterns)


def check_host(host: str, *, allow_private: bool) -> None:
    """Refuse hosts that spell a non-public address without any DNS lookup (403).

    Names are checked again on every address they resolve to, by the guarded resolver.
    """
    name = unquote(host).lower().strip("[]").rstrip(".")
    address = literal_address(name)
    if isinstance(address, IPv4Address) and name != str(address):
        # The HTTP client refuses legacy numeric spellings anyway; say why here, plainly.
        raise Forbidden(f"'{host}': numeric hosts must be written as a dotted quad")
    if allow_private:
        return
    if name == "localhost" or name.endswith(".localhost"):  # RFC 6761: always loopback
        raise Forbidden(f"'{host}': loopback hosts are not allowed as sources")
    if address is not None and not is_public(address):
        raise Forbidden(f"'{host}' is not a public address")


def check_resolved(host: str, addresses: Iterable[str]) -> None:
    """Every address a name resolves to must be public, or the name is refused (403)."""
    for address in addresses:
        if not is_public(address.split("%", 1)[0]):
            raise Forbidden(f"'{host}' resolves to a non-public address")
