"""ARP/NDP responders (agent.l2.responders) fed with frames, no sockets opened.

What the LAN says is turned into answers and *claims*; nothing read off the wire is
remembered (a flood of spoofed ARPs with random MACs leaves no trace); NDP packets with
a hop limit other than 255 are dropped; solicited-node groups are a set per address.
"""

from __future__ import annotations

import random
import socket
import struct
import tracemalloc
from collections import Counter
from typing import Any

import pytest

from ironlb.agent.l2 import packets as pk
from ironlb.agent.l2.responders import ArpResponder, NdpResponder, _Responder

OWN = "02:77:00:00:00:0b"
PEER = pk.mac_bytes("02:77:00:00:00:0c")
CLIENT = pk.mac_bytes("02:77:00:00:00:64")
VIP = pk.ip_bytes("10.77.0.200")
PROBED = pk.ip_bytes("10.77.0.201")
VIP6 = pk.ip_bytes("fd77::c8")
PROBED6 = pk.ip_bytes("fd77::c9")
BROADCAST_IN = ("eth0", pk.ETH_P_ARP, 1, 1, b"")  # recvfrom address of a received broadcast


class FakeSock:
    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.options: list[tuple[int, int, Any]] = []
        self.na: list[tuple[bytes, Any]] = []

    def send(self, frame: bytes) -> int:
        self.sent.append(frame)
        return len(frame)

    def setsockopt(self, level: int, opt: int, value: Any) -> None:
        self.options.append((level, opt, value))

    def sendmsg(self, bufs: list[bytes], anc: Any, flags: int, addr: Any) -> int:
        self.na.append((bufs[0], addr))
        return len(bufs[0])


Claims = list[tuple[bytes, "bytes | None", str]]


def make(cls: type[_Responder]) -> tuple[Any, FakeSock, Claims]:
    claims: Claims = []

    def sink(_r: _Responder, addr: bytes, mac: bytes | None, kind: str) -> None:
        claims.append((addr, mac, kind))

    r = cls("eth0", 2, OWN, {pk.mac_bytes(OWN)}, Counter(), sink)
    sock = FakeSock()
    r.sock = sock  # type: ignore[assignment]
    r.owned.add(VIP if cls is ArpResponder else VIP6)
    r.probing.add(PROBED if cls is ArpResponder else PROBED6)
    return r, sock, claims


# --- ARP ------------------------------------------------------------------------------------


def test_a_request_for_an_owned_address_gets_a_unicast_reply_and_is_no_claim() -> None:
    r, sock, claims = make(ArpResponder)
    r._handle(pk.arp_request(CLIENT, pk.ip_bytes("10.77.0.100"), VIP), BROADCAST_IN)
    assert claims == []
    reply = pk.parse_arp_frame(sock.sent[0])
    assert reply is not None and reply.op == pk.ARP_REPLY and reply.spa == VIP and reply.tha == CLIENT


@pytest.mark.parametrize(
    ("frame", "addr", "kind"),
    [
        pytest.param(pk.garp_request(CLIENT, VIP), VIP, "arp", id="a gratuitous ARP for an owned address"),
        pytest.param(pk.garp_reply(CLIENT, VIP), VIP, "arp", id="the reply form too"),
        pytest.param(
            pk.arp_request(CLIENT, VIP, pk.ip_bytes("10.77.0.1")),
            VIP,
            "arp",
            id="a host using our address as its sender",
        ),
        pytest.param(pk.garp_reply(CLIENT, PROBED), PROBED, "arp", id="an answer for a probed address"),
        pytest.param(pk.arp_probe(CLIENT, PROBED), PROBED, "probe", id="probing the same address as us"),
    ],
)
def test_claims_by_another_mac_are_reported(frame: bytes, addr: bytes, kind: str) -> None:
    r, sock, claims = make(ArpResponder)
    r._handle(frame, BROADCAST_IN)
    assert claims == [(addr, CLIENT, kind)]
    assert sock.sent == [], "a claim is never answered by the responder itself (the shell defends)"


def test_a_probe_for_an_owned_address_is_answered_not_a_claim() -> None:
    r, sock, claims = make(ArpResponder)
    r._handle(pk.arp_probe(CLIENT, VIP), BROADCAST_IN)
    assert claims == [] and r.counters["foreign_probes"] == 1
    assert len(sock.sent) == 1, "the reply makes the prober back off (RFC 5227)"


def test_frames_from_this_hosts_own_macs_and_outgoing_copies_are_ignored() -> None:
    r, sock, claims = make(ArpResponder)
    r._handle(pk.garp_request(pk.mac_bytes(OWN), VIP), BROADCAST_IN)
    r._handle(pk.garp_request(CLIENT, VIP), ("eth0", pk.ETH_P_ARP, 4, 1, b""))  # PACKET_OUTGOING
    assert claims == [] and sock.sent == []


def test_100k_spoofed_arps_with_random_macs_leave_no_state() -> None:
    """The old PeerMacs learnt every sender MAC of a peer's address (69 MB per million)."""
    r, sock, claims = make(ArpResponder)
    rng = random.Random(3)
    peer_ip = pk.ip_bytes("10.77.0.12")
    frames = [pk.arp_request(rng.randbytes(6), peer_ip, pk.ip_bytes("10.77.0.11")) for _ in range(2000)]
    before = (set(r.owned), set(r.probing), set(r.own_macs))
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    for i in range(100_000):
        r._handle(frames[i % len(frames)][:22] + rng.randbytes(6) + frames[0][28:], BROADCAST_IN)
    grown = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    assert (set(r.owned), set(r.probing), set(r.own_macs)) == before
    assert claims == [] and sock.sent == []
    assert grown < 64 * 1024, f"{grown} bytes kept after 100k spoofed ARPs"


# --- NDP ------------------------------------------------------------------------------------


def na(mac: bytes, target: bytes) -> bytes:
    return pk.neighbor_advert(mac, target, pk.NA_OVERRIDE)


def ns(target: bytes, mac: bytes | None) -> bytes:
    body = struct.pack("!BBH4x16s", pk.ND_NS, 0, 0, target)
    return body + (bytes((pk.OPT_SLLA, 1)) + mac if mac else b"")


def meta(src: str, hops: int | None = 255) -> tuple[Any, int | None]:
    return ((src, 0, 0, 2), hops)


@pytest.mark.parametrize("hops", [254, 64, 1, None])
def test_ndp_with_a_hop_limit_other_than_255_is_dropped_and_counted(hops: int | None) -> None:
    r, sock, claims = make(NdpResponder)
    r._handle(ns(VIP6, CLIENT), meta("fd77::64", hops))
    r._handle(na(CLIENT, VIP6), meta("fd77::64", hops))
    assert sock.na == [] and claims == [] and r.counters["bad_hop_limit"] == 2


def test_an_ns_for_an_owned_address_is_answered_solicited_from_the_address() -> None:
    r, sock, claims = make(NdpResponder)
    r._handle(ns(VIP6, CLIENT), meta("fd77::64"))
    assert claims == []
    body, dst = sock.na[0]
    assert dst[0] == "fd77::64" and body[4] == pk.NA_SOLICITED | pk.NA_OVERRIDE and body[8:24] == VIP6


@pytest.mark.parametrize(
    ("msg", "src", "addr", "kind"),
    [
        pytest.param(na(CLIENT, VIP6), "fd77::64", VIP6, "na", id="an NA for an owned address"),
        pytest.param(na(CLIENT, PROBED6), "fd77::c9", PROBED6, "na", id="an NA answering our DAD probe"),
        pytest.param(ns(PROBED6, None), "::", PROBED6, "probe", id="a DAD probe for the address we probe"),
        pytest.param(
            ns(pk.ip_bytes("fd77::1"), CLIENT), "fd77::c8", VIP6, "ns", id="an NS sourced from our address"
        ),
    ],
)
def test_ndp_claims_are_reported(msg: bytes, src: str, addr: bytes, kind: str) -> None:
    r, _sock, claims = make(NdpResponder)
    r._handle(msg, meta(src))
    assert claims == [(addr, CLIENT if kind != "probe" else None, kind)]


def test_a_dad_probe_for_an_owned_address_is_defended_with_an_na_to_all_nodes() -> None:
    r, sock, claims = make(NdpResponder)
    r._handle(ns(VIP6, None), meta("::"))
    assert claims == [] and r.counters["foreign_probes"] == 1
    assert sock.na[0][1][0] == pk.ALL_NODES


def groups_joined(sock: FakeSock) -> dict[bytes, int]:
    joined: Counter[bytes] = Counter()
    for level, opt, value in sock.options:
        if level == socket.IPPROTO_IPV6 and opt in (socket.IPV6_JOIN_GROUP, socket.IPV6_LEAVE_GROUP):
            joined[value[:16]] += 1 if opt == socket.IPV6_JOIN_GROUP else -1
    return {g: n for g, n in joined.items() if n}


def test_group_membership_is_a_set_per_address_never_a_negative_count() -> None:
    r, sock, _ = make(NdpResponder)
    a, b = pk.ip_bytes("fd77::1:c8"), pk.ip_bytes("fd78::1:c8")  # same solicited-node group
    group = pk.solicited_node(a)
    r.listen(a)
    r.listen(a)
    r.listen(b)
    assert groups_joined(sock) == {group: 1}, "joined once for two addresses and a repeated listen"
    r.unlisten(a)
    assert groups_joined(sock) == {group: 1}, "b still needs the group"
    r.unlisten(b)
    r.unlisten(b)  # conflict, then withdraw: the old counter went to -1 here
    r.unlisten(a)
    assert groups_joined(sock) == {}
    r.listen(b)  # re-announced after the conflict
    assert groups_joined(sock) == {group: 1}, "re-joined: NS for the address reach us again"
