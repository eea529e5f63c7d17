"""ARP and NDP responders: one raw socket per interface and family, on the asyncio loop.

- :class:`ArpResponder` reads ARP from an ``AF_PACKET`` socket bound to one interface,
  answers requests for owned IPv4 addresses with a unicast reply, sends gratuitous ARP
  (both forms) and RFC 5227 probes.
- :class:`NdpResponder` reads NS/NA from an ``IPPROTO_ICMPV6`` raw socket bound to one
  interface (ICMP6_FILTER passes only types 135/136; packets whose hop limit is not 255
  are dropped and counted, RFC 4861 7.1.1), answers NS with an S|O NA sourced from the
  address itself (``IPV6_FREEBIND`` + ``IPV6_PKTINFO``), sends unsolicited NA (O flag,
  to ff02::1) and DAD-style probes (an NS from ``::``, a whole frame on a packet socket).
  It is in the solicited-node group of every address it owns or probes: a *set* of
  addresses decides which groups are joined, so joins and leaves are idempotent.

Both read with ``loop.add_reader`` and drain the socket in bounded batches; a malformed
packet is counted and dropped, never raised.  A packet from another MAC that says it
has or wants an owned or probed address is handed to ``on_claim(responder, address,
mac, kind)``; what a claim means is decided by :mod:`ironlb.agent.l2.conflicts`.  Responders
remember no MAC they read off the wire (``own_macs`` are this host's interfaces).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections import Counter
from collections.abc import Callable, Set
from typing import Any

from ironlb.agent.l2 import packets as pk

log = logging.getLogger(__name__)

PACKET_OUTGOING = 4
IPV6_FREEBIND = 78
ICMP6_FILTER = 1
BATCH = 256  # packets handled per wake-up before yielding to the loop
ND_HOP_LIMIT = 255  # RFC 4861: NDP packets with any other hop limit are not from the link
_UNSPECIFIED = b"\x00" * 16

#: ``on_claim(responder, address, mac or None, kind)``; kind: "arp", "probe", "na", "ns".
ClaimSink = Callable[["_Responder", bytes, "bytes | None", str], None]


class _Responder:
    family = 0
    #: Receive buffer size and protocol name (for logs) of the subclass's socket.
    RECV_SIZE = 1500
    WHAT = ""
    RECEIVED = ""  # counter of packets read

    def __init__(
        self,
        ifname: str,
        ifindex: int,
        mac: str,
        own_macs: Set[bytes],
        counters: Counter[str],
        on_claim: ClaimSink,
    ) -> None:
        self.ifname, self.ifindex, self.mac_text = ifname, ifindex, mac
        self.mac = pk.mac_bytes(mac)
        self.own_macs = own_macs  # every MAC of this host (shared, kept current by the shell)
        self.counters = counters
        self.on_claim = on_claim
        self.owned: set[bytes] = set()  # answered
        self.probing: set[bytes] = set()  # probed: claims reported, not answered
        self.sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _open(self) -> socket.socket:
        raise NotImplementedError

    def start(self) -> None:
        self.sock = self._open()
        self.sock.setblocking(False)
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.sock.fileno(), self._readable)

    def close(self) -> None:
        if self.sock is not None:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(self.sock.fileno())
            self.sock.close()
            self.sock = None

    def _readable(self) -> None:
        """Drain up to BATCH packets, then yield to the loop; never raises."""
        sock = self.sock
        if sock is None:
            return
        for _ in range(BATCH):
            try:
                data, meta = self._recv(sock)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self.counters["recv_errors"] += 1
                log.debug("%s: %s receive failed: %s", self.ifname, self.WHAT, exc)
                return
            self.counters[self.RECEIVED] += 1
            self._handle(data, meta)

    def _recv(self, sock: socket.socket) -> tuple[bytes, Any]:
        raise NotImplementedError

    def _handle(self, data: bytes, meta: Any) -> None:
        raise NotImplementedError

    def _foreign(self, mac: bytes | None) -> bool:
        return mac is None or mac not in self.own_macs

    def listen(self, addr: bytes) -> None:
        """Start receiving what the LAN says about ``addr`` (NDP: join its solicited-node group)."""

    def unlisten(self, addr: bytes) -> None:
        """Stop receiving for ``addr``; safe to call for an address never listened to."""

    def announce(self, addrs: list[bytes]) -> None:
        raise NotImplementedError

    def probe(self, addrs: list[bytes]) -> None:
        raise NotImplementedError


class ArpResponder(_Responder):
    family = 4
    RECV_SIZE = 256
    WHAT = "ARP"
    RECEIVED = "arp_received"

    def _open(self) -> socket.socket:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(pk.ETH_P_ARP))
        sock.bind((self.ifname, pk.ETH_P_ARP))
        return sock

    def _recv(self, sock: socket.socket) -> tuple[bytes, Any]:
        return sock.recvfrom(self.RECV_SIZE)

    def _handle(self, data: bytes, meta: Any) -> None:
        if meta[2] == PACKET_OUTGOING:
            return
        arp = pk.parse_arp_frame(data)
        if arp is None:
            self.counters["malformed"] += 1
            return
        if not self._foreign(arp.sha):
            return
        if arp.spa == pk.ZERO_V4:  # an RFC 5227 probe: someone wants arp.tpa
            if arp.tpa in self.probing:
                self.on_claim(self, arp.tpa, arp.sha, "probe")  # probing at the same time as us
            elif arp.tpa in self.owned:
                self.counters["foreign_probes"] += 1  # our reply below makes the prober back off
        elif arp.spa in self.owned or arp.spa in self.probing:
            self.on_claim(self, arp.spa, arp.sha, "arp")
        if arp.op == pk.ARP_REQUEST and arp.tpa in self.owned and arp.spa != arp.tpa:
            self.counters["arp_requests"] += 1
            self.send(pk.arp_reply(self.mac, arp.tpa, arp))
            self.counters["arp_replies"] += 1

    def send(self, frame: bytes) -> None:
        if self.sock is None:
            return
        try:
            self.sock.send(frame)
        except OSError as exc:
            self.counters["send_errors"] += 1
            log.debug("%s: ARP send failed: %s", self.ifname, exc)

    def announce(self, addrs: list[bytes]) -> None:
        """Gratuitous ARP, both forms, for each address."""
        for a in addrs:
            self.send(pk.garp_request(self.mac, a))
            self.send(pk.garp_reply(self.mac, a))
        self.counters["garp_sent"] += 2 * len(addrs)

    def probe(self, addrs: list[bytes]) -> None:
        for a in addrs:
            self.send(pk.arp_probe(self.mac, a))
        self.counters["probes_sent"] += len(addrs)


class NdpResponder(_Responder):
    family = 6
    WHAT = "NDP"
    RECEIVED = "nd_received"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.listening: set[bytes] = set()  # addresses whose solicited-node group we need
        self.groups: set[bytes] = set()  # groups joined on the socket
        self._raw: socket.socket | None = None

    def _open(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, self.ifname.encode())
            words = [0xFFFFFFFF] * 8  # set bit = block
            for t in (pk.ND_NS, pk.ND_NA):
                words[t >> 5] &= ~(1 << (t & 31))
            sock.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, struct.pack("8I", *words))
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, ND_HOP_LIMIT)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, ND_HOP_LIMIT)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, self.ifindex)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_FREEBIND, 1)
            self._raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)  # send-only (DAD probes)
        except OSError:
            sock.close()
            raise
        return sock

    def start(self) -> None:
        super().start()
        for group in sorted({pk.solicited_node(a) for a in self.listening}):
            self._join(group, True)

    def close(self) -> None:
        super().close()
        if self._raw is not None:
            self._raw.close()
            self._raw = None
        self.groups.clear()

    # --- solicited-node groups: a set per address, never a counter -----------------------

    def listen(self, addr: bytes) -> None:
        self.listening.add(addr)
        group = pk.solicited_node(addr)
        if group not in self.groups:
            self._join(group, True)

    def unlisten(self, addr: bytes) -> None:
        self.listening.discard(addr)
        group = pk.solicited_node(addr)
        if group in self.groups and not any(pk.solicited_node(a) == group for a in self.listening):
            self._join(group, False)

    def _join(self, group: bytes, join: bool) -> None:
        if self.sock is None:
            return
        opt = socket.IPV6_JOIN_GROUP if join else socket.IPV6_LEAVE_GROUP
        try:
            self.sock.setsockopt(socket.IPPROTO_IPV6, opt, group + struct.pack("@I", self.ifindex))
        except OSError as exc:
            self.counters["join_errors"] += 1
            log.warning(
                "%s: cannot %s %s: %s", self.ifname, "join" if join else "leave", pk.ip_text(group), exc
            )
            if join:
                return
        if join:
            self.groups.add(group)
        else:
            self.groups.discard(group)

    # --- receiving --------------------------------------------------------------------------

    def _recv(self, sock: socket.socket) -> tuple[bytes, Any]:
        data, ancillary, _flags, addr = sock.recvmsg(self.RECV_SIZE, socket.CMSG_SPACE(4))
        hops = None
        for level, kind, value in ancillary:
            if level == socket.IPPROTO_IPV6 and kind == socket.IPV6_HOPLIMIT and len(value) >= 4:
                hops = struct.unpack("@i", value[:4])[0]
        return data, (addr, hops)

    def _handle(self, data: bytes, meta: Any) -> None:
        addr, hops = meta
        if hops != ND_HOP_LIMIT:
            self.counters["bad_hop_limit"] += 1
            return
        msg = pk.parse_nd(data)
        if msg is None:
            self.counters["malformed"] += 1
            return
        if not self._foreign(msg.lladdr):
            return
        target = msg.target
        if msg.type == pk.ND_NA:
            if target in self.owned or target in self.probing:
                self.on_claim(self, target, msg.lladdr, "na")
            return
        try:
            src = socket.inet_pton(socket.AF_INET6, str(addr[0]).split("%")[0])
        except OSError:
            self.counters["malformed"] += 1
            return
        if src == _UNSPECIFIED:  # duplicate address detection by someone else
            if target in self.probing:
                self.on_claim(self, target, msg.lladdr, "probe")  # probing at the same time as us
            elif target in self.owned:
                self.counters["foreign_probes"] += 1  # defend, as RFC 4861 7.2.4 requires
                self.send_na(target, pk.ALL_NODES, pk.NA_OVERRIDE)
            return
        if src in self.owned or src in self.probing:
            self.on_claim(self, src, msg.lladdr, "ns")  # someone uses our address as its source
        if target in self.owned:
            self.counters["ns_received"] += 1
            self.send_na(target, str(addr[0]).split("%")[0], pk.NA_SOLICITED | pk.NA_OVERRIDE)

    # --- sending ----------------------------------------------------------------------------

    def send_na(self, target: bytes, dst: str, flags: int) -> None:
        if self.sock is None:
            return
        body = pk.neighbor_advert(self.mac, target, flags)
        pktinfo = target + struct.pack("@I", self.ifindex)
        try:
            self.sock.sendmsg(
                [body], [(socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, pktinfo)], 0, (dst, 0, 0, self.ifindex)
            )
            self.counters["na_sent"] += 1
        except OSError as exc:
            self.counters["send_errors"] += 1
            log.debug("%s: NA send failed: %s", self.ifname, exc)

    def announce(self, addrs: list[bytes]) -> None:
        """Unsolicited NA (override flag) to all nodes, for each address."""
        for a in addrs:
            self.send_na(a, pk.ALL_NODES, pk.NA_OVERRIDE)
        self.counters["unsolicited_na_sent"] += len(addrs)

    def probe(self, addrs: list[bytes]) -> None:
        if self._raw is None:
            return
        for a in addrs:
            try:
                self._raw.sendto(pk.dad_probe_frame(self.mac, a), (self.ifname, pk.ETH_P_IPV6))
            except OSError as exc:
                self.counters["send_errors"] += 1
                log.debug("%s: DAD probe send failed: %s", self.ifname, exc)
        self.counters["probes_sent"] += len(addrs)
