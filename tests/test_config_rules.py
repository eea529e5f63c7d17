"""parse(): single-object messages say what is allowed; cross-object rules; warnings do not fail."""

from __future__ import annotations

from typing import Any

import pytest

from ironlb.config import parse
from ironlb.errors import ConfigError
from ironlb.model import BGPPeerSpec, parse_community
from lab.manifests import bgp_peer, resource, service


def errors_of(docs: list[dict[str, Any]]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse(docs)
    return [str(i) for i in info.value.issues]


@pytest.mark.parametrize(
    ("docs", "message"),
    [
        (
            [resource("IPPool", "tenant-a", addresses=["10.0.0.0/24", "10.0.0.0/33"])],
            'IPPool "tenant-a": addresses[1] "10.0.0.0/33": prefix length must be 0-32 for IPv4',
        ),
        (
            [resource("BGPPeer", "p", myASN=0, peerASN=1, peerAddress="192.0.2.1")],
            'BGPPeer "p": myASN "0": must be 1-4294967295',
        ),
        (
            [
                resource("IPPool", "a", addresses=["10.0.0.0/24"]),
                resource("IPPool", "b", addresses=["10.0.0.8-10.0.0.9"]),
            ],
            'IPPool "b": addresses[0] "10.0.0.8-10.0.0.9": overlaps IPPool "a" '
            '(addresses[0] "10.0.0.0/24") in 10.0.0.8/31; pools may not overlap',
        ),
        (
            [resource("Tenant", "t", namespaces=["x"]), resource("Tenant", "u", namespaces=["x"])],
            'Tenant "u": namespaces[0] "x": namespace is already owned by Tenant "t"; '
            "a namespace has one tenant",
        ),
        (
            [resource("BGPAdvertisement", "adv", communities=["gold"])],
            'BGPAdvertisement "adv": communities[0] "gold": is not a literal community and no '
            "Community defines this alias (aliases: none defined)",
        ),
    ],
    ids=[
        "prefix length names pool, index, value and the allowed range",
        "ASN range",
        "overlap names both pools and the shared range",
        "a namespace has one tenant",
        "unknown community alias",
    ],
)
def test_error_messages(docs: list[dict[str, Any]], message: str) -> None:
    assert message in errors_of(docs)


def test_every_error_is_collected_not_just_the_first() -> None:
    found = errors_of(
        [
            resource("IPPool", "a", addresses=["10.0.0.0/33"]),
            resource("BGPPeer", "p", myASN=0, peerASN=1, peerAddress="nope"),
            resource("Tenant", "t", pools=["ghost"]),
        ]
    )
    assert len(found) == 4


@pytest.mark.parametrize("asn", [23456, 64500, 65535, 70000, 4294967295])
def test_reserved_asns_warn_but_parse(asn: int) -> None:
    config = parse([resource("BGPPeer", "p", myASN=asn, peerASN=64513, peerAddress="192.0.2.1")])
    assert [w.field for w in config.warnings] == ["myASN"]
    assert all(w.warning for w in config.warnings)


def test_a_pool_listed_by_a_tenant_belongs_to_it() -> None:
    config = parse(
        [
            resource("IPPool", "a", addresses=["10.0.0.0/24"]),
            resource("Tenant", "t", pools=["a"], namespaces=["n"]),
        ]
    )
    assert config.pools["a"].tenant == "t"
    assert config.tenant_of_namespace("n") == "t"
    assert config.tenant_of_namespace("other") is None


def test_an_advertisement_selector_matching_no_pool_warns() -> None:
    config = parse([resource("L2Advertisement", "l", ipPoolSelector={"matchLabels": {"x": "y"}})])
    assert "matches no IPPool's labels" in str(config.warnings[0])


@pytest.mark.parametrize(
    ("hold", "keepalive", "expected"),
    [
        (None, None, (90, 30)),
        (9, None, (9, 3)),
        (None, 10, (30, 10)),
        (0, 0, (0, 0)),
        (6, 1, (6, 1)),
    ],
    ids=[
        "defaults",
        "keepalive derived from hold",
        "hold derived from keepalive",
        "timers off",
        "both given",
    ],
)
def test_effective_timers(hold: int | None, keepalive: int | None, expected: tuple[int, int]) -> None:
    spec = BGPPeerSpec(myASN=1, peerASN=2, peerAddress="192.0.2.1", holdTime=hold, keepaliveTime=keepalive)
    assert spec.effective_timers() == expected


@pytest.mark.parametrize(
    ("text", "normal"),
    [
        ("65000:100", "65000:100"),
        ("large:1:2:3", "large:1:2:3"),
        ("1:2:3", "large:1:2:3"),
        ("007:8", "7:8"),
    ],
    ids=["standard", "large with prefix", "large without prefix", "leading zeros normalised"],
)
def test_community_literals_normalise(text: str, normal: str) -> None:
    assert parse_community(text) == normal


# --- special-purpose addresses in pools (ADR 0003) --------------------------------------------

POOL_REFUSED = [
    ("169.254.0.0/24", "is link-local (169.254.0.0/16, RFC 3927)"),
    ("fe80::/120", "is link-local (fe80::/10, RFC 4291)"),
    ("127.0.0.0/30", "is loopback (127.0.0.0/8"),
    ("::1", "is loopback (::1/128"),
    ("224.0.0.10", "is multicast (224.0.0.0/4"),
    ("ff02::1", "is multicast (ff00::/8"),
    ("255.255.255.255", "is limited broadcast (255.255.255.255/32"),
    ("0.0.0.0/0", "is every IPv4 address"),
    ("::/0", "is every IPv6 address"),
    ("0.0.0.1", '"this network" (0.0.0.0/8'),
    ("240.0.0.0/24", "is reserved (240.0.0.0/4"),
    ("192.0.0.0/29", "is IETF protocol assignments (192.0.0.0/24"),
    ("64:ff9b::a00:1", "is NAT64 translation"),
    ("100::/64", "is discard-only"),
    ("2001::/48", "is Teredo (2001::/32"),
    ("2001:1::1", "is IETF protocol assignments (2001::/23"),
    ("2001:20::/64", "is ORCHIDv2"),
    ("fec0::/64", "is deprecated site-local"),
    ("::ffff:10.0.0.1", "is IPv4-mapped"),
    ("4000::/64", "is outside the IPv6 unicast space"),
    ("5f00::/64", "is SRv6 segment identifiers"),
    ("126.255.255.250-127.0.0.2", "contains 127.0.0.0-127.0.0.2, which is loopback"),
]
POOL_WARNED = [
    ("192.0.2.0/24", "documentation (TEST-NET-1)"),
    ("198.51.100.10-198.51.100.20", "documentation (TEST-NET-2)"),
    ("203.0.113.8-203.0.113.9", "documentation (TEST-NET-3)"),
    ("198.18.0.0/16", "benchmarking"),
    ("192.88.99.1", "deprecated 6to4 relay anycast"),
    ("2001:db8::/64", "documentation (2001:db8::/32"),
    ("3fff::/64", "documentation (3fff::/20"),
    ("2001:2::/64", "benchmarking"),
    ("2002:c000:204::/48", "6to4"),
]
POOL_FINE = [
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.1.10-192.168.1.20",
    "100.64.0.0/10",
    "8.8.8.8",
    "fd00::/8",
    "2a00:1450:4001::/48",
    "2001:3::/32",
    "2620:4f:8000::/48",
    "192.31.196.1",
]


@pytest.mark.parametrize(("entry", "why"), POOL_REFUSED, ids=[e for e, _ in POOL_REFUSED])
def test_a_pool_may_not_hold_special_purpose_addresses(entry: str, why: str) -> None:
    [error] = errors_of([resource("IPPool", "p", addresses=["10.0.0.0/24", entry])])
    assert error.startswith(f'IPPool "p": addresses[1] "{entry}": ')
    assert why in error
    assert "a pool holds unicast addresses routers forward" in error, "says what is allowed"


@pytest.mark.parametrize(("entry", "why"), POOL_WARNED, ids=[e for e, _ in POOL_WARNED])
def test_documentation_and_benchmarking_ranges_warn_but_parse(entry: str, why: str) -> None:
    config = parse([resource("IPPool", "p", addresses=[entry], avoidBuggyIPs=True)])
    [warning] = [str(w) for w in config.warnings]
    assert warning.startswith(f'IPPool "p": addresses[0] "{entry}": ') and why in warning


@pytest.mark.parametrize("entry", POOL_FINE)
def test_private_shared_ula_and_public_ranges_are_fine(entry: str) -> None:
    config = parse([resource("IPPool", "p", addresses=[entry], avoidBuggyIPs=True)])
    assert not config.warnings


@pytest.mark.parametrize(
    ("entries", "avoid", "expected"),
    [
        (["10.0.0.0/24"], False, "can hand out 10.0.0.0 (network) and 10.0.0.255 (broadcast) of 10.0.0.0/24"),
        (["10.0.0.0/24"], True, None),
        (["10.0.0.128/25"], True, "can hand out 10.0.0.128 (network) of 10.0.0.128/25"),
        (["10.0.0.64/30"], False, "10.0.0.64 (network) and 10.0.0.67 (broadcast)"),
        (["10.0.0.0/31", "10.0.1.7/32"], False, None),
        (["10.0.0.1-10.0.0.254"], False, None),
        (["fd00::/120"], False, None),
    ],
    ids=[
        "a /24 without avoidBuggyIPs hands out both",
        "avoidBuggyIPs covers a /24",
        "avoidBuggyIPs leaves a /25's network address",
        "a /30",
        "/31 and /32 have none (RFC 3021)",
        "a range says exactly what it holds",
        "IPv6 has no broadcast",
    ],
)
def test_ipv4_network_and_broadcast_addresses_warn(
    entries: list[str], avoid: bool, expected: str | None
) -> None:
    config = parse([resource("IPPool", "pool-x", addresses=entries, avoidBuggyIPs=avoid)])
    found = [str(w) for w in config.warnings]
    if expected is None:
        assert not found
    else:
        [warning] = found
        assert warning.startswith('IPPool "pool-x": addresses[0]') and expected in warning


# --- BGP endpoints, aggregation, interfaces ---------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"routerID": "0.0.0.0"},
            'routerID "0.0.0.0": must be a non-zero IPv4 address other than 255.255.255.255',
        ),
        ({"routerID": "255.255.255.255"}, 'routerID "255.255.255.255": must be a non-zero IPv4 address'),
        ({"peerAddress": "::"}, 'peerAddress "::": is the unspecified address'),
        ({"peerAddress": "0.0.0.0"}, 'peerAddress "0.0.0.0": is the unspecified address'),
        ({"peerAddress": "224.0.0.5"}, 'peerAddress "224.0.0.5": is a multicast address'),
        ({"peerAddress": "ff02::2"}, 'peerAddress "ff02::2": is a multicast address'),
        ({"peerAddress": "255.255.255.255"}, "is the limited broadcast address"),
        ({"peerAddress": "0.1.2.3"}, 'is in "this network" (0.0.0.0/8)'),
        ({"peerAddress": "240.0.0.1"}, "is in the reserved 240.0.0.0/4"),
        ({"peerAddress": "fe80::1"}, "IPv6 link-local, which needs an interface scope"),
        ({"peerAddress": "::ffff:10.0.0.1"}, "IPv4-mapped; write the IPv4 address itself"),
        ({"sourceAddress": "fd00::2"}, "sourceAddress fd00::2 is not IPv4 like peerAddress 10.0.0.1"),
        ({"peerAddress": "fd00::1", "sourceAddress": "10.0.0.2"}, "is not IPv6 like peerAddress fd00::1"),
        ({"sourceAddress": "239.1.1.1"}, 'sourceAddress "239.1.1.1": is a multicast address'),
    ],
    ids=[
        "routerID zero",
        "routerID all ones",
        "peer :: (unspecified)",
        "peer 0.0.0.0",
        "peer IPv4 multicast",
        "peer IPv6 multicast",
        "peer limited broadcast",
        "peer in this-network",
        "peer in class E",
        "peer IPv6 link-local has no scope",
        "peer IPv4-mapped",
        "source IPv6 for an IPv4 peer",
        "source IPv4 for an IPv6 peer",
        "source multicast",
    ],
)
def test_bgp_endpoints_are_unicast_addresses_of_one_family(spec: dict[str, Any], message: str) -> None:
    [error] = errors_of([bgp_peer("p", **spec)])
    assert error.startswith('BGPPeer "p": ') and message in error


@pytest.mark.parametrize(
    "spec",
    [
        {"peerAddress": "127.0.0.1"},
        {"peerAddress": "169.254.10.1", "sourceAddress": "169.254.10.2"},
        {"peerAddress": "fd00::1", "sourceAddress": "fd00::2"},
        {"peerAddress": "192.0.2.1", "routerID": "10.255.255.255"},
    ],
    ids=[
        "a local daemon on loopback",
        "IPv4 link-local peering",
        "IPv6 with an IPv6 source",
        "documentation",
    ],
)
def test_usual_bgp_endpoints_are_accepted(spec: dict[str, Any]) -> None:
    parse([bgp_peer("p", **spec)])


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"aggregationLength": 0}, 'aggregationLength "0": must be 8-32: 0 announces a default route'),
        ({"aggregationLength": 7}, 'aggregationLength "7": must be 8-32'),
        ({"aggregationLengthV6": 0}, 'aggregationLengthV6 "0": must be 12-128: 0 announces a default route'),
        ({"aggregationLengthV6": 11}, 'aggregationLengthV6 "11": must be 12-128'),
        ({"aggregationLength": 33}, 'aggregationLength "33": must be 8-32'),
        ({"aggregationLength": "abc"}, 'aggregationLength "abc": must be a whole number (8-32)'),
    ],
    ids=[
        "IPv4 default route",
        "IPv4 below /8",
        "IPv6 default route",
        "IPv6 below /12",
        "IPv4 above /32",
        "not a number says the range",
    ],
)
def test_aggregation_lengths_have_a_floor_per_family(spec: dict[str, Any], message: str) -> None:
    [error] = errors_of([resource("BGPAdvertisement", "adv", **spec)])
    assert error.startswith('BGPAdvertisement "adv": ') and message in error


@pytest.mark.parametrize(
    ("pool", "adv", "message"),
    [
        (
            ["10.0.0.0/24"],
            {"aggregationLength": 16},
            'is shorter than /24, the most specific block of IPPool "p"',
        ),
        (["10.0.0.10-10.0.0.21"], {"aggregationLength": 24}, "use 31-32"),
        (
            ["10.0.0.0/24", "10.0.9.9"],
            {"aggregationLength": 24},
            '("10.0.9.9"): its aggregate would announce',
        ),
        (["fd00::/64"], {"aggregationLengthV6": 48}, 'aggregationLengthV6 "48": is shorter than /64'),
        (["10.0.0.0/24"], {"aggregationLength": 24}, None),
        (["10.0.0.0/24", "fd00::/64"], {"aggregationLength": 26, "aggregationLengthV6": 64}, None),
    ],
    ids=[
        "a /16 aggregate of a /24 pool covers other addresses",
        "a range allows only its most specific CIDR",
        "one single address forces /32",
        "IPv6 too",
        "the pool's own prefix is fine",
        "longer than the pool is fine",
    ],
)
def test_an_aggregate_stays_inside_its_pool(
    pool: list[str], adv: dict[str, Any], message: str | None
) -> None:
    docs = [
        {
            **resource("IPPool", "p", addresses=pool, avoidBuggyIPs=True),
            "metadata": {"name": "p", "labels": {"a": "b"}},
        },
        resource("BGPAdvertisement", "adv", ipPoolSelector={"matchLabels": {"a": "b"}}, **adv),
    ]
    if message is None:
        parse(docs)
    else:
        [error] = errors_of(docs)
        assert error.startswith('BGPAdvertisement "adv": aggregationLength') and message in error


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "must not be empty"),
        ("../../etc", "contains '/', ':', whitespace or a control character"),
        ("a" * 16, "is 16 bytes long; Linux allows at most 15"),
        ("eth/0", "contains '/'"),
        ("eth 0", "whitespace"),
        ("eth0\n", "whitespace"),
        (".", "is a path component"),
        ("..", "is a path component"),
        ("eth0:1", "contains '/', ':'"),
        ("éééééééé", "is 16 bytes long"),
    ],
    ids=[
        "empty",
        "path traversal",
        "16 bytes",
        "slash",
        "space",
        "newline",
        "dot",
        "dot-dot",
        "alias colon",
        "utf-8",
    ],
)
def test_l2_interfaces_must_be_linux_interface_names(name: str, message: str) -> None:
    [error] = errors_of([resource("L2Advertisement", "l2", interfaces=["eth0", name])])
    assert error.startswith('L2Advertisement "l2": interfaces[1]') and message in error
    assert "an interface name is 1-15 bytes" in error


def test_usual_interface_names_are_accepted() -> None:
    parse(
        [resource("L2Advertisement", "l2", interfaces=["eth0", "bond0.100", "enp3s0f1", "a" * 15, "br-lan"])]
    )


# --- untenanted namespaces (ADR 0004) ----------------------------------------------------------


def test_allow_untenanted_on_a_tenant_pool_is_an_error() -> None:
    [error] = errors_of(
        [
            resource("IPPool", "p", addresses=["10.0.0.0/24"], tenant="t", allowUntenanted=True),
            resource("Tenant", "t", namespaces=["n"]),
        ]
    )
    assert error.startswith('IPPool "p": allowUntenanted "true": is set on a pool of tenant "t"')


def test_a_platform_pool_no_one_may_use_warns_once_tenants_exist() -> None:
    docs = [
        resource("IPPool", "p", addresses=["10.0.0.1-10.0.0.9"]),
        resource("Tenant", "t", namespaces=["n"]),
    ]
    [warning] = [str(w) for w in parse(docs).warnings]
    assert warning.startswith('IPPool "p": allowUntenanted: is false, so no Service can use this pool')
    assert not parse(docs[:1]).warnings, "without Tenants every namespace may use it"


def test_a_service_in_an_unlisted_namespace_is_warned_or_refused() -> None:
    base = [
        resource("IPPool", "p", addresses=["10.0.0.1-10.0.0.9"]),
        resource("Tenant", "t", namespaces=["n"]),
    ]
    warnings = [str(w) for w in parse([*base, service("web", "other", cls=None)]).warnings]
    assert 'Service "other/web": metadata.namespace "other": gets no address (NoTenant)' in warnings[-1]
    pinned = service("web", "other", ip="10.0.0.2", cls=None)
    [error] = errors_of([*base, pinned])
    assert 'namespace "other" belongs to no Tenant, and pool "p" does not admit such namespaces' in error


def test_a_pinned_subnet_router_anycast_address_is_refused() -> None:
    svc = service("web", "d", ip="fd00:0:0:1::", cls=None)
    [error] = errors_of([resource("IPPool", "p", addresses=["fd00::/48"]), svc])
    assert '"fd00:0:0:1::": is a subnet-router anycast address (RFC 4291)' in error
