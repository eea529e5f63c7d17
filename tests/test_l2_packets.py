"""ARP/NDP wire formats: golden frames, and parsers that never raise on garbage (hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ironlb.agent.l2 import packets as pk

MAC = pk.mac_bytes("02:77:00:00:00:0b")
CLIENT = pk.mac_bytes("02:77:00:00:00:64")
VIP = pk.ip_bytes("10.77.0.200")
VIP6 = pk.ip_bytes("fd77::c8")


def request_from_client() -> bytes:
    return pk.arp_request(CLIENT, pk.ip_bytes("10.77.0.100"), VIP)


def test_a_who_has_request_parses_and_the_reply_is_unicast_to_the_asker() -> None:
    req = pk.parse_arp_frame(request_from_client())
    assert req is not None and req.op == pk.ARP_REQUEST and req.tpa == VIP and not req.is_probe
    reply = pk.parse_arp_frame(pk.arp_reply(MAC, VIP, req))
    assert reply == pk.Arp(MAC, pk.ARP_REPLY, MAC, VIP, CLIENT, pk.ip_bytes("10.77.0.100"))
    assert pk.arp_reply(MAC, VIP, req)[:6] == CLIENT, "Ethernet destination is the asker"


@pytest.mark.parametrize(
    ("form", "op", "tha"),
    [
        pytest.param(pk.garp_request, pk.ARP_REQUEST, pk.ZERO_MAC, id="gratuitous request: tha zero"),
        pytest.param(
            pk.garp_reply, pk.ARP_REPLY, MAC, id="gratuitous reply: tha is our own MAC (Linux needs it)"
        ),
    ],
)
def test_gratuitous_arp_forms_are_broadcast_with_spa_equal_tpa(form, op, tha) -> None:
    frame = form(MAC, VIP)
    parsed = pk.parse_arp_frame(frame)
    assert frame[:6] == pk.BROADCAST
    assert parsed == pk.Arp(MAC, op, MAC, VIP, tha, VIP)


def test_an_rfc5227_probe_has_a_zero_sender_address() -> None:
    parsed = pk.parse_arp_frame(pk.arp_probe(MAC, VIP))
    assert parsed is not None and parsed.is_probe and parsed.spa == pk.ZERO_V4 and parsed.tpa == VIP


def test_golden_garp_request_bytes() -> None:
    assert pk.garp_request(MAC, VIP).hex() == (
        "ffffffffffff02770000000b0806000108000604000102770000000b0a4d00c80000000000000a4d00c8"
    )


@pytest.mark.parametrize(
    "frame",
    [
        pytest.param(b"", id="empty"),
        pytest.param(request_from_client()[:41], id="truncated by one byte"),
        pytest.param(
            request_from_client()[:12] + b"\x08\x00" + request_from_client()[14:], id="IPv4 ethertype"
        ),
        pytest.param(
            request_from_client()[:14] + b"\x00\x06" + request_from_client()[16:], id="hardware type 6"
        ),
        pytest.param(
            request_from_client()[:18] + b"\x06\x10" + request_from_client()[20:], id="protocol length 16"
        ),
        pytest.param(request_from_client()[:20] + b"\x00\x09" + request_from_client()[22:], id="opcode 9"),
    ],
)
def test_malformed_arp_frames_are_rejected(frame: bytes) -> None:
    assert pk.parse_arp_frame(frame) is None


def ns(target: bytes, options: bytes = bytes((1, 1)) + CLIENT) -> bytes:
    return bytes((pk.ND_NS, 0, 0, 0)) + b"\0" * 4 + target + options


def test_a_neighbour_solicitation_parses_with_its_source_link_layer_address() -> None:
    msg = pk.parse_nd(ns(VIP6))
    assert msg == pk.NeighborMessage(pk.ND_NS, 0, VIP6, CLIENT)


def test_a_neighbour_advertisement_round_trips_with_solicited_and_override_flags() -> None:
    body = pk.neighbor_advert(MAC, VIP6, pk.NA_SOLICITED | pk.NA_OVERRIDE)
    assert pk.parse_nd(body) == pk.NeighborMessage(pk.ND_NA, 0x60, VIP6, MAC)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(ns(VIP6)[:23], id="truncated target"),
        pytest.param(ns(VIP6, bytes((1, 0)) + CLIENT), id="option length 0"),
        pytest.param(ns(VIP6, bytes((1, 2)) + CLIENT), id="option overruns the packet"),
        pytest.param(ns(pk.ip_bytes("ff02::1")), id="multicast target"),
        pytest.param(bytes((pk.ND_NS, 3)) + ns(VIP6)[2:], id="non-zero code"),
        pytest.param(bytes((128,)) + ns(VIP6)[1:], id="echo request type"),
    ],
)
def test_malformed_nd_messages_are_rejected(body: bytes) -> None:
    assert pk.parse_nd(body) is None


def test_solicited_node_group_and_dad_probe_frame() -> None:
    assert pk.ip_text(pk.solicited_node(VIP6)) == "ff02::1:ff00:c8"
    frame = pk.dad_probe_frame(MAC, VIP6)
    assert frame[:6] == bytes.fromhex("3333ff0000c8") and frame[12:14] == b"\x86\xdd"
    ip6, body = frame[14:54], frame[54:]
    assert ip6[8:24] == b"\0" * 16, "DAD probes come from the unspecified address"
    assert ip6[7] == 255, "hop limit 255"
    assert pk.parse_nd(body) == pk.NeighborMessage(pk.ND_NS, 0, VIP6, None)
    pseudo = ip6[8:40] + len(body).to_bytes(4, "big") + b"\0\0\0\x3a"
    assert pk.checksum(pseudo + body) == 0, "the ICMPv6 checksum verifies"


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=128))
def test_arp_parser_never_raises_on_random_bytes(data: bytes) -> None:
    result = pk.parse_arp_frame(data)
    assert result is None or (len(data) >= 42 and result.op in (1, 2))


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=160))
def test_nd_parser_never_raises_on_random_bytes(data: bytes) -> None:
    result = pk.parse_nd(data)
    assert result is None or (len(data) >= 24 and result.type in (pk.ND_NS, pk.ND_NA))


@settings(max_examples=500, deadline=None)
@given(st.sampled_from([pk.ND_NS, pk.ND_NA]), st.binary(min_size=16, max_size=16), st.binary(max_size=64))
def test_nd_parser_never_raises_on_well_headed_messages_with_random_options(
    typ: int, target: bytes, options: bytes
) -> None:
    body = bytes((typ, 0, 0, 0)) + b"\0" * 4 + target + options
    result = pk.parse_nd(body)
    assert result is None or result.target == target


@settings(max_examples=500, deadline=None)
@given(st.binary(min_size=42, max_size=42))
def test_arp_parser_accepts_exactly_ethernet_ipv4_requests_and_replies(data: bytes) -> None:
    frame = data[:12] + b"\x08\x06" + b"\x00\x01\x08\x00\x06\x04" + data[20:]
    result = pk.parse_arp_frame(frame)
    assert (result is not None) == (frame[20:22] in (b"\x00\x01", b"\x00\x02"))
