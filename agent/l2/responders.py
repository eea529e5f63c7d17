"""ARP and NDP responders: one raw socket per interface and family, on the asyncio loop.

- :class:`ArpResponder` reads ARP from an ``AF_PACKET`` socket bound to one interface,
  answers requests for owned IPv4 addresses with a unicast reply, sends gratuitous ARP
  (both forms) and RFC 5227 probes, and watches for other hosts claiming our addresses.
- :class:`NdpResponder` reads NS/NA from an ``IPPROTO_ICMPV6`` raw socket bound to one
  interface (ICMP6_FILTER passes only types 135/136; the solicited-node group of every
  owned address is joined), answers NS with an S|O NA sourced from the address itself
  (``IPV6_FREEBIND`` + ``IPV6_PKTINFO``), sends unsolicited NA (O flag, to ff02::1) and
  DAD-style probes (an NS from ``::``, sent as a whole frame on a packet socket).

Both read with ``loop.add_reader`` and drain the socket in bounded batches; a malformed
packet is counted and dropped, never raised.  Probing: ``probing`` maps an address to the
MACs that claimed it while a probe was open; MACs of other IronLB nodes (learned from ARP
traffic of the peers' own addresses, :class:`PeerMacs`) are not conflicts -- they are the
previous owner handing over.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections import Counter
from typing import Any

from agent.l2 import packets as pk

log = logging.getLogger(__name__)

PACKET_OUTGOING = 4
IPV6_FREEBIND = 78
ICMP6_FILTER = 1
BATCH = 256  # packets handled per wake-up before yielding to the loop


class PeerMacs:
    """MACs of other IronLB nodes, learned from ARP packets whose sender is a peer's address."""

    def __init__(self) -> None:
        self.addresses: set[bytes] = set()
        self.macs: set[bytes] = set()

    def update(self, addresses: frozenset[str]) -> None:
        self.addresses = {pk.ip_bytes(a) for a in addresses if ":" not in a}


class _Responder:
    family = 0

    def __init__(self, ifname: str, ifindex: int, mac: str, peers: PeerMacs, counters: Counter[str]) -> None:
        self.ifname, self.ifindex, self.mac_text = ifname, ifindex, mac
        self.mac = pk.mac_bytes(mac)
        self.peers = peers
        self.counters = counters
        self.owned: set[bytes] = set()
        self.probing: dict[bytes, set[bytes]] = {}  # address -> MACs that claimed it during the probe
        self.foreign: dict[bytes, bytes] = {}  # owned address -> last foreign MAC seen claiming it
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

    #: Receive buffer size and protocol name (for logs) of the subclass's socket.
    RECV_SIZE = 1500
    WHAT = ""

    def _readable(self) -> None:
        """Drain up to BATCH packets, then yield to the loop; never raises."""
        sock = self.sock
        if sock is None:
            return
        for _ in range(BATCH):
            try:
                data, addr = sock.recvfrom(self.RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self.counters["recv_errors"] += 1
                log.debug("%s: %s receive failed: %s", self.ifname, self.WHAT, exc)
                return
            self._handle(data, addr)

    def _handle(self, data: bytes, addr: Any) -> None:
        raise NotImplementedError

    def _claimed(self, addr: bytes, mac: bytes | None) -> None:
        """Someone else says ``addr`` is at ``mac``: a conflict unless it is a peer node."""
        if mac == self.mac or (mac is not None and mac in self.peers.macs):
            return
        seen = mac if mac is not None else pk.ZERO_MAC
        if addr in self.probing:
            self.probing[addr].add(seen)
        elif addr in self.owned:
            self.foreign[addr] = seen
            self.counters["foreign_claims"] += 1


class ArpResponder(_Responder):
    family = 4

    def _open(self) -> socket.socket:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(pk.ETH_P_ARP))
        sock.bind((self.ifname, pk.ETH_P_ARP))
        return sock

    RECV_SIZE = 256
    WHAT = "ARP"

    def _handle(self, data: bytes, addr: Any) -> None:
        if addr[2] == PACKET_OUTGOING:
            return
        arp = pk.parse_arp_frame(data)
        if arp is None:
            self.counters["malformed"] += 1
            return
        if arp.spa in self.peers.addresses:
            self.peers.macs.add(arp.sha)
        if arp.sha == self.mac:
            return
        if arp.spa != pk.ZERO_V4 and (arp.spa in self.probing or arp.spa in self.owned):
            self._claimed(arp.spa, arp.sha)
        if arp.op == pk.ARP_REQUEST and arp.tpa in self.owned:
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

    def ask_peers(self) -> None:
        """Who-has (from 0.0.0.0) for every peer address, so their MACs are known before probing."""
        for a in self.peers.addresses:
            self.send(pk.arp_probe(self.mac, a))


class NdpResponder(_Responder):
    family = 6

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._groups: Counter[bytes] = Counter()
        self._raw: socket.socket | None = None

    def _open(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, self.ifname.encode())
            words = [0xFFFFFFFF] * 8  # set bit = block
            for t in (pk.ND_NS, pk.ND_NA):
                words[t >> 5] &= ~(1 << (t & 31))
            sock.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, struct.pack("8I", *words))
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, self.ifindex)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_FREEBIND, 1)
            self._raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)  # send-only (DAD probes)
        except OSError:
            sock.close()
            raise
        return sock

    def close(self) -> None:
        super().close()
        if self._raw is not None:
            self._raw.close()
            self._raw = None
        self._groups.clear()

    def _membership(self, addr: bytes, join: bool) -> None:
        group = pk.solicited_node(addr)
        self._groups[group] += 1 if join else -1
        if self.sock is None or self._groups[group] not in ((1,) if join else (0,)):
            return
        opt = socket.IPV6_JOIN_GROUP if join else socket.IPV6_LEAVE_GROUP
        try:
            self.sock.setsockopt(socket.IPPROTO_IPV6, opt, group + struct.pack("@I", self.ifindex))
        except OSError as exc:
            self.counters["join_errors"] += 1
            log.warning(
                "%s: cannot %s %s: %s", self.ifname, "join" if join else "leave", pk.ip_text(group), exc
            )
        if not join:
            del self._groups[group]

    def listen(self, addr: bytes) -> None:
        """Start receiving NS for ``addr`` (probing or owning)."""
        self._membership(addr, True)

    def unlisten(self, addr: bytes) -> None:
        self._membership(addr, False)

    WHAT = "NDP"

    def _handle(self, data: bytes, addr: Any) -> None:
        msg = pk.parse_nd(data)
        if msg is None:
            self.counters["malformed"] += 1
            return
        if msg.lladdr == self.mac:
            return
        if msg.type == pk.ND_NA:
            if msg.target in self.probing or msg.target in self.owned:
                self._claimed(msg.target, msg.lladdr)
            return
        if msg.target not in self.owned:
            return
        self.counters["ns_received"] += 1
        src = str(addr[0]).split("%")[0]
        if src == "::":  # someone runs DAD for our address: defend (RFC 4861 7.2.4)
            self._claimed(msg.target, msg.lladdr)
            self.send_na(msg.target, pk.ALL_NODES, pk.NA_OVERRIDE)
        else:
            self.send_na(msg.target, src, pk.NA_SOLICITED | pk.NA_OVERRIDE)

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
