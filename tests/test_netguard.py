"""The SSRF rules as tables: which addresses are public, which host spellings are refused."""

from __future__ import annotations

import pytest

from proxy import netguard
from proxy.errors import Forbidden

NOT_PUBLIC = [
    # IPv4
    ("0.0.0.0", "unspecified: reaches the local host on Linux"),
    ("0.1.2.3", "this network"),
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback, end of the /8"),
    ("10.0.0.1", "private 10/8"),
    ("172.16.0.1", "private 172.16/12"),
    ("172.31.255.255", "private 172.16/12, end"),
    ("192.168.1.1", "private 192.168/16"),
    ("169.254.169.254", "link-local: cloud metadata"),
    ("169.254.0.1", "link-local"),
    ("100.64.0.1", "carrier-grade NAT"),
    ("100.127.255.254", "carrier-grade NAT, end"),
    ("192.0.0.8", "IETF protocol assignments"),
    ("192.0.2.1", "documentation TEST-NET-1"),
    ("198.51.100.7", "documentation TEST-NET-2"),
    ("203.0.113.9", "documentation TEST-NET-3"),
    ("198.18.0.1", "benchmarking"),
    ("192.88.99.1", "6to4 relay anycast"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast SSDP"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "broadcast"),
    # IPv6
    ("::", "unspecified"),
    ("::1", "loopback"),
    ("fe80::1", "link-local"),
    ("fe80::1%eth0", "link-local with a zone"),
    ("fc00::1", "unique local"),
    ("fd12:3456:789a::1", "unique local fd00::/8"),
    ("fec0::1", "site-local"),
    ("ff02::1", "multicast"),
    ("100::1", "discard-only"),
    ("2001:db8::1", "documentation"),
    ("3fff::1", "documentation (2024)"),
    ("64:ff9b:1::a00:1", "local-use NAT64"),
    # IPv6 that carries a private IPv4 address
    ("::ffff:127.0.0.1", "IPv4-mapped loopback"),
    ("::ffff:7f00:1", "IPv4-mapped loopback, hex"),
    ("::ffff:10.0.0.1", "IPv4-mapped private"),
    ("::ffff:169.254.169.254", "IPv4-mapped metadata"),
    ("::127.0.0.1", "IPv4-compatible loopback"),
    ("::10.0.0.1", "IPv4-compatible private"),
    ("::ffff:0:127.0.0.1", "IPv4-translated loopback"),
    ("64:ff9b::127.0.0.1", "NAT64 of loopback"),
    ("64:ff9b::a9fe:a9fe", "NAT64 of metadata"),
    ("2002:7f00:1::1", "6to4 of loopback"),
    ("2002:a00:1::1", "6to4 of 10.0.0.1"),
    ("2002:a9fe:a9fe::1", "6to4 of metadata"),
    ("2001:0:808:808::f5ff:fffe", "Teredo, client 10.0.0.1"),
    ("2001:0:7f00:1::f7f7:fbfb", "Teredo, server 127.0.0.1"),
]

PUBLIC = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.216.34",
    "100.63.255.255",  # just below carrier-grade NAT
    "172.32.0.1",  # just above 172.16/12
    "2606:4700:4700::1111",
    "2001:4860:4860::8888",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",  # NAT64 of 8.8.8.8
    "2002:808:808::1",  # 6to4 of 8.8.8.8
    "2001:0:808:808::f7f7:fbfb",  # Teredo, server 8.8.8.8, client 8.8.4.4
]


@pytest.mark.parametrize(("address", "why"), NOT_PUBLIC, ids=[a for a, _ in NOT_PUBLIC])
def test_not_public(address, why):
    assert not netguard.is_public(address), why


@pytest.mark.parametrize("address", PUBLIC)
def test_public(address):
    assert netguard.is_public(address)


LITERALS = [
    ("127.0.0.1", "127.0.0.1"),
    ("2130706433", "127.0.0.1"),
    ("0x7f000001", "127.0.0.1"),
    ("0x7f.0.0.1", "127.0.0.1"),
    ("0177.0.0.1", "127.0.0.1"),
    ("0177.0000.0000.0001", "127.0.0.1"),
    ("127.1", "127.0.0.1"),
    ("127.0.1", "127.0.0.1"),
    ("127.0.0.1.", "127.0.0.1"),
    ("0", "0.0.0.0"),
    ("::1", "::1"),
    ("[::1]", "::1"),
    ("::ffff:7f00:1", "::ffff:7f00:1"),
    ("fe80::1%25eth0", "fe80::1"),
    ("example.com", None),
    ("images.example.com", None),
    ("0x7f.example.com", None),
    ("bücher.example", None),
    ("", None),
]


@pytest.mark.parametrize(("host", "address"), LITERALS)
def test_literal_address(host, address):
    found = netguard.literal_address(host)
    assert (str(found) if found is not None else None) == address


REFUSED_HOSTS = [
    "127.0.0.1",
    "localhost",
    "LOCALHOST",
    "localhost.",
    "api.localhost",
    "::1",
    "[::1]",
    "::ffff:7f00:1",
    "2130706433",
    "0x7f000001",
    "0x7f.0.0.1",
    "0177.0.0.1",
    "127.1",
    "127.0.0.1.",
    "0.0.0.0",
    "0",
    "169.254.169.254",
    "10.0.0.1",
    "192.168.1.1",
    "[fd00::1]",
    "134744072",  # 8.8.8.8 as one number: public, but never spelled like that
]


@pytest.mark.parametrize("host", REFUSED_HOSTS)
def test_check_host_refuses(host):
    with pytest.raises(Forbidden):
        netguard.check_host(host, allow_private=False)


@pytest.mark.parametrize("host", ["example.com", "8.8.8.8", "2606:4700:4700::1111", "cdn.test"])
def test_check_host_allows_public(host):
    netguard.check_host(host, allow_private=False)


def test_private_hosts_allowed_when_configured():
    for host in ("127.0.0.1", "localhost", "::1", "10.0.0.1"):
        netguard.check_host(host, allow_private=True)
    with pytest.raises(Forbidden):  # legacy numeric spellings stay refused
        netguard.check_host("2130706433", allow_private=True)


def test_check_resolved_refuses_if_any_address_is_private():
    netguard.check_resolved("cdn.test", ["93.184.216.34", "2606:4700:4700::1111"])
    with pytest.raises(Forbidden):
        netguard.check_resolved("cdn.test", ["93.184.216.34", "127.0.0.1"])
    with pytest.raises(Forbidden):
        netguard.check_resolved("cdn.test", ["fe80::1%eth0"])


GLOBS = [
    ("images.example.com", ["*"], True),
    ("images.example.com", ["*.example.com"], True),
    ("a.b.example.com", ["*.example.com"], True),
    ("example.com", ["*.example.com"], False),
    ("IMAGES.Example.COM", ["images.example.com"], True),
    ("images.example.com", ["IMAGES.EXAMPLE.COM"], True),
    ("images.example.com.", ["images.example.com"], True),
    ("evil.com", ["*.example.com", "cdn.test"], False),
    ("example.com.evil.com", ["*.example.com"], False),
    ("cdn1.test", ["cdn?.test"], True),
    ("127.0.0.1", ["127.0.0.1"], True),
]


@pytest.mark.parametrize(("host", "patterns", "allowed"), GLOBS)
def test_host_allowed(host, patterns, allowed):
    assert netguard.host_allowed(host, patterns) is allowed
