"""The trust check (issue 10): which recorded addresses a Service may really hold.

A table of cases reads like the attack list of issue 10, then hypothesis tests the
guarantee itself: nothing a tenant writes on its Service (labels, annotations, forged
controller annotations, pinned addresses, pool names, sharing keys, families) makes the
check accept an address outside the pools the namespace may use, or one another
Service already holds and may not share.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ironlb import ipam
from ironlb.config import Config, parse
from ironlb.model import ANN_ALLOCATED_IPS, ANN_ALLOCATED_POOL, ANN_IPS, ANN_POOL, ANN_SHARING
from ironlb.service import AssignedIP, Assignment, Port, ServiceRequest, request_from_manifest
from lab.manifests import resource, service
from tests.factories import assignment, req

CONFIG = parse(
    [
        resource("Tenant", "red", namespaces=["red-a", "red-b"], pools=["red"]),
        resource("Tenant", "blue", namespaces=["blue-a"]),
        resource("IPPool", "red", addresses=["10.1.0.0/24", "fd00:1::/64"]),
        resource("IPPool", "blue", addresses=["10.2.0.0/24"], tenant="blue"),
        resource("IPPool", "shared", addresses=["10.9.0.0/24"], allowUntenanted=True),
        resource("IPPool", "closed", addresses=["10.8.0.0/24"], disabled=True),
        resource(
            "IPPool",
            "edge",
            addresses=["10.7.0.0/24"],
            allowUntenanted=True,
            serviceAllocation={"namespaces": ["ingress"]},
        ),
        resource(
            "IPPool",
            "front",
            addresses=["10.6.0.0/24"],
            allowUntenanted=True,
            serviceAllocation={"serviceSelector": {"matchLabels": {"tier": "front"}}},
        ),
        resource("IPPool", "old", addresses=["10.5.0.0/24"], allowUntenanted=True, disabled=True),
    ]
)
CHECK = ipam.TrustCheck(CONFIG)


def held(key: str, *ips: str, **fields: Any) -> Assignment:
    return assignment(key, *ips, pool="x", **fields)


Case = tuple[str, ServiceRequest, list[str], list[Assignment], list[str], dict[str, str]]
# (id, request, recorded, accepted before, addresses that pass, rejected address -> reason)
CASES: list[Case] = [
    ("an address of the tenant's own pool passes", req("red-a/web"), ["10.1.0.5"], [], ["10.1.0.5"], {}),
    (
        "an address in no pool is withdrawn",
        req("red-a/web"),
        ["10.77.0.99"],
        [],
        [],
        {"10.77.0.99": "NoPool"},
    ),
    (
        "another tenant's address is withdrawn",
        req("red-a/web"),
        ["10.2.0.16"],
        [],
        [],
        {"10.2.0.16": "OtherTenant"},
    ),
    (
        "a tenant may not hold a platform address",
        req("red-a/web"),
        ["10.9.0.1"],
        [],
        [],
        {"10.9.0.1": "OtherTenant"},
    ),
    (
        "an unlisted namespace may not hold a tenant's address",
        req("default/web"),
        ["10.1.0.1"],
        [],
        [],
        {"10.1.0.1": "OtherTenant"},
    ),
    (
        "an unlisted namespace may hold an address of a pool admitting it",
        req("default/web"),
        ["10.9.0.1"],
        [],
        ["10.9.0.1"],
        {},
    ),
    (
        "an unlisted namespace may not hold one of a pool not admitting it",
        req("default/web"),
        ["10.8.0.1"],
        [],
        [],
        {"10.8.0.1": "NoTenant"},
    ),
    (
        "a pool's namespaces leave other namespaces out",
        req("default/web"),
        ["10.7.0.1"],
        [],
        [],
        {"10.7.0.1": "Forbidden"},
    ),
    ("a pool's namespaces let theirs in", req("ingress/web"), ["10.7.0.1"], [], ["10.7.0.1"], {}),
    (
        "a serviceSelector the labels do not match",
        req("default/web"),
        ["10.6.0.1"],
        [],
        [],
        {"10.6.0.1": "Forbidden"},
    ),
    (
        "a serviceSelector the labels match",
        req("default/web", labels={"tier": "front"}),
        ["10.6.0.1"],
        [],
        ["10.6.0.1"],
        {},
    ),
    ("a disabled pool keeps what it handed out", req("default/web"), ["10.5.0.9"], [], ["10.5.0.9"], {}),
    (
        "a family the Service does not request",
        req("red-a/web"),
        ["10.1.0.5", "fd00:1::5"],
        [],
        ["10.1.0.5"],
        {"fd00:1::5": "WrongFamily"},
    ),
    (
        "dual stack holds one of each family",
        req("red-a/web", family_policy="PreferDualStack"),
        ["fd00:1::5", "10.1.0.5"],
        [],
        ["fd00:1::5", "10.1.0.5"],
        {},
    ),
    (
        "a second address of one family",
        req("red-a/web"),
        ["10.1.0.5", "10.1.0.6"],
        [],
        ["10.1.0.5"],
        {"10.1.0.6": "WrongFamily"},
    ),
    (
        "a forged first address does not hide a valid second",
        req("red-a/web"),
        ["10.2.0.16", "10.1.0.5"],
        [],
        ["10.1.0.5"],
        {"10.2.0.16": "OtherTenant"},
    ),
    (
        "text that is not an address",
        req("red-a/web"),
        ["not-an-ip", "10.1.0.300", "10.1.0.0/24", " 10.1.0.7 "],
        [],
        ["10.1.0.7"],
        {"not-an-ip": "Invalid", "10.1.0.300": "Invalid", "10.1.0.0/24": "Invalid"},
    ),
    ("a repeated address counts once", req("red-a/web"), ["10.1.0.5", "10.1.0.5"], [], ["10.1.0.5"], {}),
    (
        "an address another Service holds is a Conflict",
        req("red-a/web"),
        ["10.1.0.5"],
        [held("red-b/db", "10.1.0.5")],
        [],
        {"10.1.0.5": "Conflict"},
    ),
    (
        "an address another Service holds under the same sharing key passes",
        req("red-a/web", sharing_key="k", ports=(Port(80),)),
        ["10.1.0.5"],
        [held("red-b/db", "10.1.0.5", sharing_key="k", ports=(Port(5432),))],
        ["10.1.0.5"],
        {},
    ),
    (
        "a sharing key cannot share a port",
        req("red-a/web", sharing_key="k", ports=(Port(80),)),
        ["10.1.0.5"],
        [held("red-b/db", "10.1.0.5", sharing_key="k", ports=(Port(80),))],
        [],
        {"10.1.0.5": "Conflict"},
    ),
    (
        "the Service's own earlier claim is no conflict",
        req("red-a/web"),
        ["10.1.0.5"],
        [held("red-a/web", "10.1.0.5")],
        ["10.1.0.5"],
        {},
    ),
    (
        "the subnet-router anycast address is never held",
        req("red-a/web", families=(6,)),
        ["fd00:1::"],
        [],
        [],
        {"fd00:1::": "Reserved"},
    ),
    (
        "another loadBalancerClass holds nothing of ours",
        req("red-a/web", load_balancer_class="other.io/lb"),
        ["10.1.0.5"],
        [],
        [],
        {"10.1.0.5": "NotOurs"},
    ),
    (
        "the requested pool and pinned addresses only narrow allocation, not trust",
        req("red-a/web", pool="ghost", requested_ips=("10.1.0.9",)),
        ["10.1.0.5"],
        [],
        ["10.1.0.5"],
        {},
    ),
]


@pytest.mark.parametrize(
    ("request_", "recorded", "before", "passes", "rejected"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_the_trust_check(
    request_: ServiceRequest,
    recorded: list[str],
    before: list[Assignment],
    passes: list[str],
    rejected: dict[str, str],
) -> None:
    accepted: dict[str, list[Assignment]] = {}
    for earlier in before:
        for ip in earlier.addresses:
            accepted.setdefault(ip, []).append(earlier)
    verdict = CHECK.check(request_, recorded, accepted)
    assert [a.ip for a in verdict.accepted] == passes
    assert {r.ip: r.reason for r in verdict.rejected} == rejected
    for r in verdict.rejected:
        assert r.message and str(r).startswith(r.ip), "every rejection says why"
    for a in verdict.accepted:
        assert CONFIG.pools[a.pool].contains(a.ip), "each passing address comes with its pool"


def test_rejections_name_the_pool_and_the_reason() -> None:
    [why] = CHECK.check(req("red-a/web"), ["10.2.0.16"]).rejected
    assert str(why) == (
        '10.2.0.16 is in IPPool "blue", which this Service may not use: '
        'pool "blue" belongs to tenant "blue", not to tenant "red"'
    )


def test_the_assignment_of_a_verdict() -> None:
    request = req("red-a/web", sharing_key="k", ports=(Port(80),))
    verdict = CHECK.check(request, ["10.2.0.1", "10.1.0.5"])
    assert verdict.assignment(request) == Assignment(
        "red-a/web", (AssignedIP("10.1.0.5", "red"),), sharing_key="k", ports=(Port(80),)
    )
    assert CHECK.check(request, ["10.2.0.1"]).assignment(request) is None


def test_a_forged_claim_never_displaces_an_accepted_service() -> None:
    legit = req("red-a/web")
    forger = req("red-b/forger")
    verdicts = CHECK.check_all([(legit, ["10.1.0.5"]), (forger, ["10.1.0.5", "10.1.0.6"])])
    assert [a.ip for a in verdicts["red-a/web"].accepted] == ["10.1.0.5"]
    assert [a.ip for a in verdicts["red-b/forger"].accepted] == ["10.1.0.6"]
    assert [r.reason for r in verdicts["red-b/forger"].rejected] == ["Conflict"]


def test_forged_controller_annotations_change_nothing() -> None:
    """Issue 10's attack: annotations naming an address in no pool, a foreign one and a ghost pool."""
    annotations = {ANN_ALLOCATED_IPS: "10.77.0.99,10.2.0.16", ANN_ALLOCATED_POOL: "red", ANN_POOL: "ghost"}
    manifest = service("evil", "red-a", annotations=annotations, cls=None)
    request, _ = request_from_manifest(manifest)
    assert request is not None
    forged = ["10.77.0.99", "10.2.0.16"]  # what the forged annotation said
    verdict = CHECK.check(request, forged)
    assert not verdict.accepted
    assert {r.ip: r.reason for r in verdict.rejected} == {"10.77.0.99": "NoPool", "10.2.0.16": "OtherTenant"}


# --- hypothesis: nothing a tenant writes escapes its pools --------------------------------------

POOL_BLOCKS = {
    "p0": ["10.0.0.0/28"],
    "p1": ["10.0.1.0/28", "fd00:1::/64"],
    "p2": ["10.0.2.0/28"],
    "p3": ["fd00:3::/120"],
    "p4": ["10.0.4.0/28"],
}
NAMESPACES = ("n1", "n2", "n3")  # n1 -> t1, n2 -> t2 when tenants exist; n3 is never listed
CANDIDATES = (
    "10.0.0.1",
    "10.0.1.1",
    "fd00:1::1",
    "fd00:1::",
    "10.0.2.9",
    "fd00:3::",
    "fd00:3::2",
    "10.0.4.1",
    "10.0.9.9",
    "fd00:9::1",
    "garbage",
)


@st.composite
def configs(draw: st.DrawFn) -> Config:
    with_tenants = draw(st.booleans())
    docs: list[dict[str, Any]] = []
    if with_tenants:
        docs += [resource("Tenant", "t1", namespaces=["n1"]), resource("Tenant", "t2", namespaces=["n2"])]
    for name, blocks in POOL_BLOCKS.items():
        tenant = draw(st.sampled_from((None, "t1", "t2"))) if with_tenants else None
        spec: dict[str, Any] = {"addresses": blocks}
        if tenant is not None:
            spec["tenant"] = tenant
        elif draw(st.booleans()):
            spec["allowUntenanted"] = True
        allowed_ns = draw(
            st.one_of(st.just([]), st.lists(st.sampled_from(NAMESPACES), max_size=2, unique=True))
        )
        selector = draw(st.sampled_from((None, None, {"matchLabels": {"tier": "front"}})))
        spec["serviceAllocation"] = {
            "namespaces": allowed_ns,
            **({"serviceSelector": selector} if selector else {}),
        }
        docs.append(resource("IPPool", name, **spec))
    return parse(docs)


def tenant_manifest(draw: Any, namespace: str, name: str) -> ServiceRequest:
    """Everything a tenant can write on a Service in its own namespace."""
    ann: dict[str, str] = {}
    if draw(st.booleans()):
        ann[ANN_ALLOCATED_IPS] = ",".join(draw(st.lists(st.sampled_from(CANDIDATES[:-1]), max_size=3)))
    if draw(st.booleans()):
        ann[ANN_ALLOCATED_POOL] = draw(st.sampled_from((*POOL_BLOCKS, "ghost")))
    if draw(st.booleans()):
        ann[ANN_POOL] = draw(st.sampled_from((*POOL_BLOCKS, "ghost")))
    if draw(st.booleans()):
        ann[ANN_IPS] = draw(st.sampled_from(CANDIDATES[:-1]))
    if draw(st.booleans()):
        ann[ANN_SHARING] = draw(st.sampled_from(("k", "other-tenants-key")))
    manifest = service(
        name,
        namespace,
        annotations=ann,
        labels=draw(st.sampled_from(({}, {"tier": "front"}, {"tier": "back"}))),
        cls=None,
        port=draw(st.sampled_from((80, 443))),
        ipFamilyPolicy=draw(st.sampled_from(("SingleStack", "PreferDualStack", "RequireDualStack"))),
        ipFamilies=draw(st.sampled_from((["IPv4"], ["IPv6"], ["IPv4", "IPv6"], ["IPv6", "IPv4"]))),
    )
    request, _ = request_from_manifest(manifest)
    assert request is not None
    return request


def allowed_pools(config: Config, namespace: str) -> set[str]:
    """The oracle, written independently of ironlb.ipam: pools the namespace may ever use."""
    owner = next((t for t, ten in config.tenants.items() if namespace in ten.spec.namespaces), None)
    out = set()
    for name, info in config.pools.items():
        spec = info.pool.spec
        if info.tenant != owner:
            continue
        if owner is None and config.tenants and not spec.allowUntenanted:
            continue
        if spec.serviceAllocation.namespaces and namespace not in spec.serviceAllocation.namespaces:
            continue
        out.add(name)
    return out


@settings(max_examples=300, deadline=None)
@given(data=st.data(), config=configs())
def test_nothing_a_tenant_writes_gets_an_address_outside_its_allowed_pools(
    data: st.DataObject, config: Config
) -> None:
    check = ipam.TrustCheck(config)
    namespace = data.draw(st.sampled_from(NAMESPACES))
    request = tenant_manifest(data.draw, namespace, "svc")
    recorded = data.draw(st.lists(st.sampled_from(CANDIDATES), max_size=4))
    others = [tenant_manifest(data.draw, data.draw(st.sampled_from(NAMESPACES)), f"o{i}") for i in range(2)]
    accepted: dict[str, list[Assignment]] = {}
    for other in others:  # what other Services already hold (whatever their own verdict was)
        ips = data.draw(st.lists(st.sampled_from(CANDIDATES[:-1]), max_size=2, unique=True))
        assignment = Assignment.for_request(other, tuple(AssignedIP(ip, "?") for ip in ips))
        for ip in ips:
            accepted.setdefault(ip, []).append(assignment)
    verdict = check.check(request, recorded, accepted)
    allowed = allowed_pools(config, namespace)
    assert len(verdict.accepted) + len(verdict.rejected) <= len(recorded)
    for got in verdict.accepted:
        assert got.pool in allowed, (namespace, got, allowed)
        assert config.pools[got.pool].contains(got.ip)
        assert got.ip not in ("fd00:1::", "fd00:3::"), "never a subnet-router anycast address"
        assert got.family in request.wanted_families()
        for holder in accepted.get(got.ip, []):
            assert ipam.can_share(request, holder) is None, (got, holder)
    assert len({a.family for a in verdict.accepted}) == len(verdict.accepted), "one address per family"
