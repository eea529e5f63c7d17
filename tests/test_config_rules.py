"""parse(): single-object messages say what is allowed; cross-object rules; warnings do not fail."""

from __future__ import annotations

from typing import Any

import pytest

from ironlb.config import parse
from ironlb.errors import ConfigError
from ironlb.model import BGPPeerSpec, parse_community


def obj(kind: str, name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "ironlb.io/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec}


def errors_of(docs: list[dict[str, Any]]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse(docs)
    return [str(i) for i in info.value.issues]


@pytest.mark.parametrize(
    ("docs", "message"),
    [
        (
            [obj("IPPool", "tenant-a", addresses=["10.0.0.0/24", "10.0.0.0/33"])],
            'IPPool "tenant-a": addresses[1] "10.0.0.0/33": prefix length must be 0-32 for IPv4',
        ),
        (
            [obj("BGPPeer", "p", myASN=0, peerASN=1, peerAddress="192.0.2.1")],
            'BGPPeer "p": myASN "0": must be 1-4294967295',
        ),
        (
            [
                obj("IPPool", "a", addresses=["10.0.0.0/24"]),
                obj("IPPool", "b", addresses=["10.0.0.8-10.0.0.9"]),
            ],
            'IPPool "b": addresses[0] "10.0.0.8-10.0.0.9": overlaps IPPool "a" '
            '(addresses[0] "10.0.0.0/24") in 10.0.0.8/31; pools may not overlap',
        ),
        (
            [obj("Tenant", "t", namespaces=["x"]), obj("Tenant", "u", namespaces=["x"])],
            'Tenant "u": namespaces[0] "x": namespace is already owned by Tenant "t"; '
            "a namespace has one tenant",
        ),
        (
            [obj("BGPAdvertisement", "adv", communities=["gold"])],
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
            obj("IPPool", "a", addresses=["10.0.0.0/33"]),
            obj("BGPPeer", "p", myASN=0, peerASN=1, peerAddress="nope"),
            obj("Tenant", "t", pools=["ghost"]),
        ]
    )
    assert len(found) == 4


@pytest.mark.parametrize("asn", [23456, 64500, 65535, 70000, 4294967295])
def test_reserved_asns_warn_but_parse(asn: int) -> None:
    config = parse([obj("BGPPeer", "p", myASN=asn, peerASN=64513, peerAddress="192.0.2.1")])
    assert [w.field for w in config.warnings] == ["myASN"]
    assert all(w.warning for w in config.warnings)


def test_a_pool_listed_by_a_tenant_belongs_to_it() -> None:
    config = parse(
        [obj("IPPool", "a", addresses=["10.0.0.0/24"]), obj("Tenant", "t", pools=["a"], namespaces=["n"])]
    )
    assert config.pools["a"].tenant == "t"
    assert config.tenant_of_namespace("n") == "t"
    assert config.tenant_of_namespace("other") is None


def test_an_advertisement_selector_matching_no_pool_warns() -> None:
    config = parse([obj("L2Advertisement", "l", ipPoolSelector={"matchLabels": {"x": "y"}})])
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
