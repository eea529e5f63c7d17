"""Address parsing: the one place that turns user text into netaddr objects.

Pools accept three spellings, IPv4 and IPv6 alike: a CIDR (``10.0.0.0/24``), an
inclusive range (``10.0.0.10-10.0.0.20``) and a single address.  Every failure is a
``ValueError`` whose message says what is allowed, so the schema layer can prefix it
with the object and field.
"""

from __future__ import annotations

import netaddr


def _ip(text: str) -> netaddr.IPAddress:
    try:
        return netaddr.IPAddress(text.strip(), flags=netaddr.INET_PTON)
    except (netaddr.AddrFormatError, ValueError, TypeError):
        raise ValueError(f"{text.strip()!r} is not an IPv4 or IPv6 address") from None


def parse_block(text: str) -> netaddr.IPRange:
    """Parse a CIDR, an ``a-b`` range or one address into an inclusive IPRange."""
    text = text.strip()
    if not text:
        raise ValueError("must be a CIDR (10.0.0.0/24), a range (10.0.0.10-10.0.0.20) or an address")
    if "/" in text:
        addr, _, length = text.partition("/")
        ip = _ip(addr)
        top = 32 if ip.version == 4 else 128
        if not length.isdigit() or not 0 <= int(length) <= top:
            raise ValueError(f"prefix length must be 0-{top} for IPv{ip.version}")
        net = netaddr.IPNetwork(f"{ip}/{int(length)}")
        if net.network != ip:
            raise ValueError(f"host bits are set; the network is {net.cidr}")
        return netaddr.IPRange(net[0], net[-1])
    if "-" in text:
        first_s, _, last_s = text.partition("-")
        first, last = _ip(first_s), _ip(last_s)
        if first.version != last.version:
            raise ValueError("range ends must both be IPv4 or both be IPv6")
        if first > last:
            raise ValueError(f"range start {first} is after its end {last}")
        return netaddr.IPRange(first, last)
    try:
        ip = _ip(text)
    except ValueError:
        raise ValueError(
            "must be a CIDR (10.0.0.0/24), a range (10.0.0.10-10.0.0.20) or an address (IPv4 or IPv6)"
        ) from None
    return netaddr.IPRange(ip, ip)


def parse_host(text: str, family: int | None = None) -> str:
    """Parse one address (no prefix); return its canonical text."""
    ip = _ip(text)
    if family is not None and ip.version != family:
        raise ValueError(f"{text!r} must be an IPv{family} address")
    return str(ip)


def family_of(ip: str) -> int:
    """4 or 6."""
    return int(netaddr.IPAddress(ip).version)


def is_buggy(ip: netaddr.IPAddress) -> bool:
    """IPv4 addresses ending in .0 or .255, which some old stacks mishandle."""
    return ip.version == 4 and (int(ip) & 0xFF) in (0, 255)
