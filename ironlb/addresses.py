"""Address parsing and address facts: the one place that turns user text into netaddr objects.

Pools accept three spellings, IPv4 and IPv6 alike: a CIDR (``10.0.0.0/24``), an
inclusive range (``10.0.0.10-10.0.0.20``) and a single address.  Every failure is a
``ValueError`` whose message says what is allowed, so the schema layer can prefix it
with the object and field.

This module also owns the facts about special addresses:

- :data:`SPECIAL_RANGES`, the special-purpose registries (RFC 6890 and its updates)
  with IronLB's verdict for each: ``forbidden`` in a pool (an address there cannot
  work as a VIP), ``warn`` (works on a private network, but is not what a production
  pool should hold) or ``allowed``.  The most specific entry wins, so an allowed block
  inside a forbidden one (AMT ``2001:3::/32`` inside ``2001::/23``) stays allowed.
  ADR 0003 (docs/decisions) records the table and the reason for each verdict.
- which addresses can be a BGP endpoint (:func:`peer_host_problem`);
- which IPv6 addresses IronLB never hands out (:func:`subnet_router_anycast`), and which
  IPv4 addresses a pool with ``avoidBuggyIPs`` skips (:func:`is_buggy`).  Each rule is one
  function, with a companion that counts its addresses in a range without enumerating it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import netaddr

Verdict = Literal["forbidden", "warn", "allowed"]
#: What a pool may hold, said after every refusal.
POOL_ALLOWED = (
    "a pool holds unicast addresses routers forward: private (10.0.0.0/8, 172.16.0.0/12, "
    "192.168.0.0/16), shared (100.64.0.0/10), unique local (fc00::/7) or public ranges"
)
_LOW64 = (1 << 64) - 1


def parse_ip(text: str) -> netaddr.IPAddress:
    """One address, strictly (no prefix, no shorthand such as ``10.1``); ValueError says what is wrong."""
    return _ip(text)


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


def cidr_prefix(text: str) -> int | None:
    """The prefix length of a CIDR pool entry (``10.0.0.0/24`` -> 24); None for ranges and addresses."""
    _, slash, length = text.strip().partition("/")
    return int(length) if slash and length.isdigit() else None


def parse_host(text: str, family: int | None = None) -> str:
    """Parse one address (no prefix); return its canonical text."""
    ip = _ip(text)
    if family is not None and ip.version != family:
        raise ValueError(f"{text!r} must be an IPv{family} address")
    return str(ip)


def family_of(ip: str) -> int:
    """4 or 6."""
    return int(netaddr.IPAddress(ip).version)


# --- special-purpose addresses ----------------------------------------------------------


@dataclass(frozen=True)
class SpecialRange:
    """One special-purpose block and what IronLB makes of it in a pool."""

    cidr: str
    name: str  # reads after "is": "link-local"
    ref: str  # "RFC 3927"
    why: str  # why it cannot work as a VIP ("" when allowed)
    verdict: Verdict
    first: int
    last: int
    version: int


def _entry(cidr: str, name: str, ref: str, why: str, verdict: Verdict) -> SpecialRange:
    net = netaddr.IPNetwork(cidr)
    return SpecialRange(cidr, name, ref, why, verdict, int(net.first), int(net.last), net.version)


#: The special-purpose address table (IANA IPv4/IPv6 Special-Purpose Address Registries,
#: RFC 6890 and updates). Ranges not listed are ordinary unicast and allowed.
SPECIAL_RANGES: tuple[SpecialRange, ...] = (
    _entry("0.0.0.0/8", '"this network"', "RFC 791, RFC 1122", "no host answers there", "forbidden"),
    _entry("10.0.0.0/8", "private", "RFC 1918", "", "allowed"),
    _entry("100.64.0.0/10", "shared address space", "RFC 6598", "", "allowed"),
    _entry("127.0.0.0/8", "loopback", "RFC 1122", "it never leaves a host", "forbidden"),
    _entry("169.254.0.0/16", "link-local", "RFC 3927", "routers never forward it", "forbidden"),
    _entry("172.16.0.0/12", "private", "RFC 1918", "", "allowed"),
    _entry("192.0.0.0/24", "IETF protocol assignments", "RFC 6890", "reserved for protocols", "forbidden"),
    _entry("192.0.2.0/24", "documentation (TEST-NET-1)", "RFC 5737", "", "warn"),
    _entry("192.31.196.0/24", "AS112", "RFC 7535", "", "allowed"),
    _entry("192.52.193.0/24", "AMT relay anycast", "RFC 7450", "", "allowed"),
    _entry("192.88.99.0/24", "deprecated 6to4 relay anycast", "RFC 7526", "", "warn"),
    _entry("192.168.0.0/16", "private", "RFC 1918", "", "allowed"),
    _entry("192.175.48.0/24", "AS112 direct delegation", "RFC 7534", "", "allowed"),
    _entry("198.18.0.0/15", "benchmarking", "RFC 2544", "", "warn"),
    _entry("198.51.100.0/24", "documentation (TEST-NET-2)", "RFC 5737", "", "warn"),
    _entry("203.0.113.0/24", "documentation (TEST-NET-3)", "RFC 5737", "", "warn"),
    _entry("224.0.0.0/4", "multicast", "RFC 5771", "a VIP must be unicast", "forbidden"),
    _entry("240.0.0.0/4", "reserved", "RFC 1112", "hosts and routers drop it", "forbidden"),
    _entry(
        "255.255.255.255/32", "limited broadcast", "RFC 919", "it reaches every host on the link", "forbidden"
    ),
    _entry(
        "::/0",
        "reserved by the IETF",
        "RFC 4291",
        "IANA allocates only 2000::/3 (global) and fc00::/7 (unique local)",
        "forbidden",
    ),
    _entry("::/128", "the unspecified address", "RFC 4291", "it names no host", "forbidden"),
    _entry("::1/128", "loopback", "RFC 4291", "it never leaves a host", "forbidden"),
    _entry("::ffff:0:0/96", "IPv4-mapped", "RFC 4291", "it stands for an IPv4 address", "forbidden"),
    _entry("64:ff9b::/96", "NAT64 translation", "RFC 6052", "it stands for an IPv4 host", "forbidden"),
    _entry(
        "64:ff9b:1::/48", "local-use NAT64 translation", "RFC 8215", "it stands for an IPv4 host", "forbidden"
    ),
    _entry("100::/64", "discard-only", "RFC 6666", "routers blackhole it", "forbidden"),
    _entry("2000::/3", "global unicast", "RFC 4291", "", "allowed"),
    _entry("2001::/23", "IETF protocol assignments", "RFC 2928", "reserved for protocols", "forbidden"),
    _entry("2001::/32", "Teredo", "RFC 4380", "it stands for an IPv4 tunnel endpoint", "forbidden"),
    _entry("2001:2::/48", "benchmarking", "RFC 5180", "", "warn"),
    _entry("2001:3::/32", "AMT", "RFC 7450", "", "allowed"),
    _entry("2001:4:112::/48", "AS112-v6", "RFC 7535", "", "allowed"),
    _entry("2001:10::/28", "deprecated ORCHID", "RFC 4843", "identifiers, not locators", "forbidden"),
    _entry("2001:20::/28", "ORCHIDv2", "RFC 7343", "identifiers, not locators", "forbidden"),
    _entry("2001:db8::/32", "documentation", "RFC 3849", "", "warn"),
    _entry("2002::/16", "6to4", "RFC 3056", "routed through the IPv4 address it embeds", "warn"),
    _entry("2620:4f:8000::/48", "AS112 direct delegation", "RFC 7534", "", "allowed"),
    _entry("3fff::/20", "documentation", "RFC 9637", "", "warn"),
    _entry("5f00::/16", "SRv6 segment identifiers", "RFC 9602", "not host addresses", "forbidden"),
    _entry("fc00::/7", "unique local", "RFC 4193", "", "allowed"),
    _entry("fe80::/10", "link-local", "RFC 4291", "routers never forward it", "forbidden"),
    _entry("fec0::/10", "deprecated site-local", "RFC 3879", "use unique local (fd00::/8)", "forbidden"),
    _entry("ff00::/8", "multicast", "RFC 4291", "a VIP must be unicast", "forbidden"),
)
# Most specific first: the first entry that claims an address decides for it.
_BY_SPECIFICITY = sorted(SPECIAL_RANGES, key=lambda e: e.last - e.first)


@dataclass(frozen=True)
class SpecialHit:
    """Part of a pool entry that a special-purpose range decides: ``first``-``last`` (ints)."""

    entry: SpecialRange
    first: int
    last: int

    def __str__(self) -> str:
        first = netaddr.IPAddress(self.first, self.entry.version)
        if self.first == self.last:
            return str(first)
        cidrs = netaddr.iprange_to_cidrs(first, netaddr.IPAddress(self.last, self.entry.version))
        return (
            str(cidrs[0])
            if len(cidrs) == 1
            else f"{first}-{netaddr.IPAddress(self.last, self.entry.version)}"
        )


def _subtract(first: int, last: int, taken: list[tuple[int, int]]) -> Iterator[tuple[int, int]]:
    """Parts of [first, last] not covered by the (sorted, disjoint) ``taken`` spans."""
    at = first
    for lo, hi in taken:
        if hi < at or lo > last:
            continue
        if lo > at:
            yield at, lo - 1
        at = max(at, hi + 1)
    if at <= last:
        yield at, last


def special_hits(block: netaddr.IPRange) -> list[SpecialHit]:
    """The special-purpose ranges deciding parts of ``block``, most specific first."""
    first, last, version = int(block.first), int(block.last), block.version
    taken: list[tuple[int, int]] = []
    hits: list[SpecialHit] = []
    for entry in _BY_SPECIFICITY:
        if entry.version != version or entry.last < first or entry.first > last:
            continue
        lo, hi = max(first, entry.first), min(last, entry.last)
        hits.extend(SpecialHit(entry, a, b) for a, b in _subtract(lo, hi, taken))
        taken = sorted([*taken, (lo, hi)])
    return hits


def _describe(hit: SpecialHit, block: netaddr.IPRange) -> str:
    entry = hit.entry
    if entry.cidr == "::/0":
        what = f"outside the IPv6 unicast space ({entry.ref}): {entry.why}"
    else:
        what = f"{entry.name} ({entry.cidr}, {entry.ref})" + (f": {entry.why}" if entry.why else "")
    if hit.first == int(block.first) and hit.last == int(block.last):
        return f"is {what}"
    if hit.first == entry.first and hit.last == entry.last:
        return f"contains {what}"
    return f"contains {hit}, which is {what}"


def block_problem(block: netaddr.IPRange) -> str | None:
    """Why a pool may not hold ``block`` (a sentence saying what is allowed), or None."""
    bad = sorted((h for h in special_hits(block) if h.entry.verdict == "forbidden"), key=lambda h: h.first)
    if not bad:
        return None
    if int(block.last) - int(block.first) + 1 == 1 << (32 if block.version == 4 else 128):
        return f"is every IPv{block.version} address, special-purpose ones included; {POOL_ALLOWED}"
    more = (
        f"; it also contains {len(bad) - 1} more such range{'s' if len(bad) > 2 else ''}"
        if len(bad) > 1
        else ""
    )
    return f"{_describe(bad[0], block)}{more}; {POOL_ALLOWED}"


def block_warning(block: netaddr.IPRange) -> str | None:
    """A sentence when ``block`` holds addresses that work privately but are not for production."""
    odd = sorted((h for h in special_hits(block) if h.entry.verdict == "warn"), key=lambda h: h.first)
    if not odd:
        return None
    return (
        f"{_describe(odd[0], block)}; it is not routed on the Internet and belongs in labs and "
        "examples, not in a production pool"
    )


def peer_host_problem(text: str) -> str | None:
    """Why ``text`` (a parsed address) cannot be a BGP endpoint, or None.

    Loopback (a routing daemon on the node), IPv4 link-local (common on peering links),
    private, documentation and public addresses are all fine.
    """
    ip = netaddr.IPAddress(text)
    value = int(ip)
    if value == 0:
        what = "the unspecified address"
    elif ip.is_multicast():
        what = "a multicast address"
    elif ip.version == 4 and value == 0xFFFFFFFF:
        what = "the limited broadcast address"
    elif ip.version == 4 and value >> 24 == 0:
        what = 'in "this network" (0.0.0.0/8)'
    elif ip.version == 4 and value >> 28 == 0xF:
        what = "in the reserved 240.0.0.0/4"
    elif ip.version == 6 and ip.is_ipv4_mapped():
        what = "IPv4-mapped; write the IPv4 address itself"
    elif ip.version == 6 and ip.is_link_local():
        what = "IPv6 link-local, which needs an interface scope that BGPPeer cannot carry"
    else:
        return None
    return f"is {what}; a BGP endpoint is a unicast address (private, public, or loopback for a local daemon)"


def subnet_router_anycast(value: int, network_firsts: frozenset[int] = frozenset()) -> bool:
    """Is the IPv6 address ``value`` a subnet-router anycast address IronLB never hands out?

    True for the all-zero host of any /64 (the subnet size of nearly every IPv6 link,
    RFC 7421) and for the first address of the pool's own CIDR entries
    (``network_firsts``), so both ``fd00::`` of ``fd00::/64`` and ``fd00::100`` of
    ``fd00::100/120`` are skipped.  See ADR 0003.
    """
    return value & _LOW64 == 0 or value in network_firsts


def anycast_count(first: int, last: int, network_firsts: frozenset[int] = frozenset()) -> int:
    """How many addresses in [first, last] :func:`subnet_router_anycast` excludes (O(entries))."""
    step = 1 << 64
    zeros = last // step - (first - 1) // step
    extra = sum(1 for v in network_firsts if first <= v <= last and v & _LOW64 != 0)
    return zeros + extra


def is_buggy(value: int) -> bool:
    """Does the IPv4 address ``value`` (an int) end in .0 or .255, which some old stacks
    mishandle?  What ``avoidBuggyIPs`` skips; :func:`buggy_count` counts them in a range."""
    return (value & 0xFF) in (0, 255)


def buggy_count(first: int, last: int) -> int:
    """How many IPv4 addresses in [first, last] end in .0 or .255 (O(1))."""
    zeros = last // 256 - (first - 1) // 256
    ones = (last + 1) // 256 - first // 256
    return zeros + ones
