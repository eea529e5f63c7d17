"""ARP and NDP wire formats: pure parse and build functions, no sockets.

Parsers take untrusted bytes straight off the wire and return a small frozen value, or
None for anything that is not a well-formed packet of the kind asked for -- truncated,
wrong lengths, wrong types, garbage.  They never raise (fuzzed with hypothesis in
tests/test_l2_packets.py).  Builders return complete frames/messages.

- ARP (RFC 826) over Ethernet, as read from an ``AF_PACKET`` socket (Ethernet header
  included): :func:`parse_arp_frame`, :func:`arp_reply`, :func:`garp_request`,
  :func:`garp_reply`, :func:`arp_probe`, :func:`arp_request`.
- NDP (RFC 4861) ICMPv6 messages as read from an ``IPPROTO_ICMPV6`` raw socket (no IPv6
  header; the kernel checks and fills checksums): :func:`parse_nd`,
  :func:`neighbor_advert`; plus a whole Ethernet frame for the DAD-style probe, which must
  be sent from the unspecified address: :func:`dad_probe_frame`.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
BROADCAST = b"\xff" * 6
ZERO_MAC = b"\x00" * 6
ZERO_V4 = b"\x00" * 4
ARP_REQUEST, ARP_REPLY = 1, 2
ND_NS, ND_NA = 135, 136
NA_ROUTER, NA_SOLICITED, NA_OVERRIDE = 0x80, 0x40, 0x20
OPT_SLLA, OPT_TLLA = 1, 2
ALL_NODES = "ff02::1"

_ETH = struct.Struct("!6s6sH")
_ARP = struct.Struct("!HHBBH6s4s6s4s")


@dataclass(frozen=True)
class Arp:
    """One ARP packet (Ethernet/IPv4 only). Addresses are raw bytes."""

    eth_src: bytes
    op: int
    sha: bytes
    spa: bytes
    tha: bytes
    tpa: bytes

    @property
    def is_probe(self) -> bool:
        """RFC 5227 probe: a request with sender address 0.0.0.0."""
        return self.op == ARP_REQUEST and self.spa == ZERO_V4


def parse_arp_frame(frame: bytes) -> Arp | None:
    """An Ethernet frame holding an Ethernet/IPv4 ARP request or reply, else None."""
    if len(frame) < _ETH.size + _ARP.size:
        return None
    _dst, src, ethertype = _ETH.unpack_from(frame, 0)
    if ethertype != ETH_P_ARP:
        return None
    htype, ptype, hlen, plen, op, sha, spa, tha, tpa = _ARP.unpack_from(frame, _ETH.size)
    if htype != 1 or ptype != 0x0800 or hlen != 6 or plen != 4 or op not in (ARP_REQUEST, ARP_REPLY):
        return None
    return Arp(src, op, sha, spa, tha, tpa)


def _arp_frame(dst: bytes, src: bytes, op: int, sha: bytes, spa: bytes, tha: bytes, tpa: bytes) -> bytes:
    return _ETH.pack(dst, src, ETH_P_ARP) + _ARP.pack(1, 0x0800, 6, 4, op, sha, spa, tha, tpa)


def arp_reply(mac: bytes, vip: bytes, request: Arp) -> bytes:
    """Unicast reply to ``request`` saying ``vip`` is at ``mac``."""
    return _arp_frame(request.sha, mac, ARP_REPLY, mac, vip, request.sha, request.spa)


def garp_request(mac: bytes, vip: bytes) -> bytes:
    """Gratuitous ARP, request form: broadcast, spa = tpa = vip, tha zero."""
    return _arp_frame(BROADCAST, mac, ARP_REQUEST, mac, vip, ZERO_MAC, vip)


def garp_reply(mac: bytes, vip: bytes) -> bytes:
    """Gratuitous ARP, reply form: broadcast, spa = tpa = vip, tha = own MAC (Linux needs tha == sha)."""
    return _arp_frame(BROADCAST, mac, ARP_REPLY, mac, vip, mac, vip)


def arp_probe(mac: bytes, vip: bytes) -> bytes:
    """RFC 5227 probe for ``vip``: sender address 0.0.0.0, so nobody's cache is touched."""
    return _arp_frame(BROADCAST, mac, ARP_REQUEST, mac, ZERO_V4, ZERO_MAC, vip)


def arp_request(mac: bytes, src: bytes, target: bytes) -> bytes:
    """A plain who-has request (used to learn peers' MACs)."""
    return _arp_frame(BROADCAST, mac, ARP_REQUEST, mac, src, ZERO_MAC, target)


# --- NDP -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class NeighborMessage:
    """A Neighbour Solicitation or Advertisement (ICMPv6 body, as a raw socket gives it)."""

    type: int  # ND_NS or ND_NA
    flags: int  # NA flags byte (R/S/O); 0 for NS
    target: bytes  # 16 bytes
    lladdr: bytes | None  # source (NS) or target (NA) link-layer address option


def _options(data: bytes, offset: int, wanted: int) -> bytes | bool | None:
    """The 6-byte link-layer address in option ``wanted``; None if absent; False if malformed."""
    found: bytes | None = None
    while offset < len(data):
        if offset + 2 > len(data):
            return False
        kind, length = data[offset], data[offset + 1]
        if length == 0 or offset + 8 * length > len(data):
            return False  # RFC 4861: length 0 -> silently discard the packet
        if kind == wanted and length == 1 and found is None:
            found = data[offset + 2 : offset + 8]
        offset += 8 * length
    return found


def parse_nd(data: bytes) -> NeighborMessage | None:
    """An ICMPv6 NS/NA (code 0, well-formed options), else None."""
    if len(data) < 24 or data[0] not in (ND_NS, ND_NA) or data[1] != 0:
        return None
    target = data[8:24]
    if target[0] == 0xFF:  # a multicast target is invalid in both messages
        return None
    lladdr = _options(data, 24, OPT_SLLA if data[0] == ND_NS else OPT_TLLA)
    if lladdr is False:
        return None
    assert lladdr is None or isinstance(lladdr, bytes)
    return NeighborMessage(data[0], data[4] if data[0] == ND_NA else 0, target, lladdr)


def neighbor_advert(mac: bytes, target: bytes, flags: int) -> bytes:
    """An NA body for ``target`` at ``mac`` with a target link-layer option (checksum left 0)."""
    return struct.pack("!BBHB3x16s", ND_NA, 0, 0, flags, target) + bytes((OPT_TLLA, 1)) + mac


def solicited_node(ip: bytes) -> bytes:
    """The solicited-node multicast group of ``ip`` (ff02::1:ffXX:XXXX)."""
    return bytes.fromhex("ff02" + "00" * 9 + "01ff") + ip[13:16]


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of ``data``."""
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return int(~total & 0xFFFF)


def dad_probe_frame(mac: bytes, target: bytes) -> bytes:
    """Ethernet frame: NS from :: to target's solicited-node group (DAD-style probe, RFC 4862)."""
    group = solicited_node(target)
    src = b"\x00" * 16
    body = struct.pack("!BBH4x16s", ND_NS, 0, 0, target)
    pseudo = src + group + struct.pack("!I3xB", len(body), 58)
    body = body[:2] + struct.pack("!H", checksum(pseudo + body)) + body[4:]
    ip6 = struct.pack("!IHBB16s16s", 0x60000000, len(body), 58, 255, src, group)
    eth = _ETH.pack(b"\x33\x33" + group[12:16], mac, ETH_P_IPV6)
    return eth + ip6 + body


def mac_text(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


def mac_bytes(text: str) -> bytes:
    out = bytes.fromhex(text.replace(":", "").replace("-", ""))
    if len(out) != 6:
        raise ValueError(f"{text!r} is not a 6-byte MAC address")
    return out


def ip_bytes(ip: str) -> bytes:
    return ipaddress.ip_address(ip).packed


def ip_text(packed: bytes) -> str:
    return str(ipaddress.ip_address(packed))
