"""IPAM rules as a table: each case is a config, services allocated in order, and what the last one gets."""

from __future__ import annotations

from typing import Any

import pytest

from ironlb import ipam
from ironlb.config import Config, parse
from ironlb.errors import AllocationError
from ironlb.service import AssignedIP, Assignment, Port, ServiceRequest
from lab.manifests import namespace, pool, tenant
from tests.factories import req

TENANTS = [
    pool("red", "10.1.0.0/30", tenant="red"),
    pool("shared", "10.9.0.0/30", allowUntenanted=True),
    tenant("red", namespaces=["red-a"], maxAddresses=2),
    tenant("blue", namespaces=["blue-a"]),
]

# (id, docs, earlier requests, request, expected addresses or error reason)
CASES: list[tuple[str, list[dict[str, Any]], list[ServiceRequest], ServiceRequest, tuple[str, ...] | str]] = [
    (
        "the first service gets the lowest address",
        [pool("a", "10.0.0.0/29")],
        [],
        req("d/s"),
        ("10.0.0.0",),
    ),
    (
        "the second service gets the next one",
        [pool("a", "10.0.0.0/29")],
        [req("d/s1")],
        req("d/s2"),
        ("10.0.0.1",),
    ),
    (
        "avoidBuggyIPs skips .0 and .255",
        [pool("a", "10.0.0.255-10.0.1.1", avoidBuggyIPs=True)],
        [],
        req("d/s"),
        ("10.0.1.1",),
    ),
    (
        "a requested address is given exactly",
        [pool("a", "10.0.0.0/29")],
        [],
        req("d/s", requested_ips=("10.0.0.5",)),
        ("10.0.0.5",),
    ),
    (
        "a requested address outside every pool fails NoPool",
        [pool("a", "10.0.0.0/29")],
        [],
        req("d/s", requested_ips=("10.7.0.5",)),
        "NoPool",
    ),
    (
        "a requested pool is used even when another comes first",
        [pool("a", "10.0.0.0/29"), pool("b", "10.0.1.0/29")],
        [],
        req("d/s", pool="b"),
        ("10.0.1.0",),
    ),
    (
        "an unknown requested pool fails NoPool",
        [pool("a", "10.0.0.0/29")],
        [],
        req("d/s", pool="zz"),
        "NoPool",
    ),
    (
        "lower priority number is tried first",
        [
            pool("a", "10.0.0.0/29", serviceAllocation={"priority": 5}),
            pool("b", "10.0.1.0/29", serviceAllocation={"priority": 1}),
        ],
        [],
        req("d/s"),
        ("10.0.1.0",),
    ),
    (
        "equal priority falls back to pool name",
        [pool("b", "10.0.1.0/29"), pool("a", "10.0.0.0/29")],
        [],
        req("d/s"),
        ("10.0.0.0",),
    ),
    (
        "a pool whose selector matches beats a plain pool",
        [
            pool("a", "10.0.0.0/29"),
            pool("z", "10.0.2.0/29", serviceAllocation={"namespaces": ["d"], "priority": 9}),
        ],
        [],
        req("d/s"),
        ("10.0.2.0",),
    ),
    (
        "a pool for other namespaces is skipped",
        [pool("a", "10.0.0.0/29", serviceAllocation={"namespaces": ["x"]}), pool("b", "10.0.1.0/29")],
        [],
        req("d/s"),
        ("10.0.1.0",),
    ),
    (
        "namespaceSelector matches namespace labels",
        [
            pool(
                "a", "10.0.0.0/29", serviceAllocation={"namespaceSelector": {"matchLabels": {"env": "prod"}}}
            ),
            namespace("p", env="prod"),
        ],
        [],
        req("p/s"),
        ("10.0.0.0",),
    ),
    (
        "namespaceSelector that does not match leaves no pool",
        [pool("a", "10.0.0.0/29", serviceAllocation={"namespaceSelector": {"matchLabels": {"env": "prod"}}})],
        [],
        req("d/s"),
        "NoPool",
    ),
    (
        "serviceSelector matches service labels",
        [pool("a", "10.0.0.0/29", serviceAllocation={"serviceSelector": {"matchLabels": {"tier": "edge"}}})],
        [],
        req("d/s", labels={"tier": "edge"}),
        ("10.0.0.0",),
    ),
    (
        "autoAssign false pools are used only by name",
        [pool("a", "10.0.0.0/29", autoAssign=False)],
        [],
        req("d/s"),
        "NoPool",
    ),
    (
        "autoAssign false pools can be named",
        [pool("a", "10.0.0.0/29", autoAssign=False)],
        [],
        req("d/s", pool="a"),
        ("10.0.0.0",),
    ),
    (
        "a disabled pool makes no new allocation",
        [pool("a", "10.0.0.0/29", disabled=True)],
        [],
        req("d/s"),
        "NoPool",
    ),
    (
        "a full pool fails PoolExhausted",
        [pool("a", "10.0.0.0/31")],
        [req("d/1"), req("d/2")],
        req("d/3"),
        "PoolExhausted",
    ),
    (
        "a full pool stays full after a refusal",
        [pool("a", "10.0.0.0/31", "10.0.0.4/31")],
        [req("d/1"), req("d/2"), req("d/3"), req("d/4")],
        req("d/5"),
        "PoolExhausted",
    ),
    ("a tenant service uses its tenant's pool", TENANTS, [], req("red-a/s"), ("10.1.0.0",)),
    ("a platform service never gets a tenant's pool", TENANTS, [], req("default/s"), ("10.9.0.0",)),
    (
        "a tenant without pools gets nothing (no fallback to shared pools)",
        TENANTS,
        [],
        req("blue-a/s"),
        "NoPool",
    ),
    ("naming another tenant's pool is Forbidden", TENANTS, [], req("blue-a/s", pool="red"), "Forbidden"),
    (
        "a tenant's namespace never uses a pool admitting untenanted namespaces",
        TENANTS,
        [],
        req("red-a/s", pool="shared"),
        "Forbidden",
    ),
    (
        "an unlisted namespace gets NoTenant when no pool admits it",
        [pool("shared", "10.9.0.0/30"), tenant("red", namespaces=["red-a"])],
        [],
        req("default/s"),
        "NoTenant",
    ),
    (
        "an unlisted namespace naming a pool that does not admit it gets NoTenant",
        [pool("shared", "10.9.0.0/30"), tenant("red", namespaces=["red-a"])],
        [],
        req("default/s", pool="shared"),
        "NoTenant",
    ),
    (
        "an unlisted namespace pinning an address there gets NoTenant",
        [pool("shared", "10.9.0.0/30"), tenant("red", namespaces=["red-a"])],
        [],
        req("default/s", requested_ips=("10.9.0.2",)),
        "NoTenant",
    ),
    (
        "an unlisted namespace skips pools that do not admit it",
        [
            pool("closed", "10.8.0.0/30"),
            pool("open", "10.9.0.0/30", allowUntenanted=True),
            tenant("red", namespaces=["red-a"]),
        ],
        [],
        req("default/s"),
        ("10.9.0.0",),
    ),
    (
        "without Tenants every namespace uses every pool",
        [pool("shared", "10.9.0.0/30")],
        [],
        req("default/s"),
        ("10.9.0.0",),
    ),
    (
        "the subnet-router anycast address is never handed out",
        [pool("a", "fd00::/64")],
        [],
        req("d/s", families=(6,)),
        ("fd00::1",),
    ),
    (
        "pinning the subnet-router anycast address is Invalid",
        [pool("a", "fd00::/64")],
        [],
        req("d/s", requested_ips=("fd00::",)),
        "Invalid",
    ),
    (
        "a range skips the anycast address of every /64 it crosses",
        [pool("a", "fd00::ffff:ffff:ffff:ffff-fd00:0:0:1::1")],
        [req("d/s1", families=(6,))],
        req("d/s2", families=(6,)),
        ("fd00:0:0:1::1",),
    ),
    (
        "a CIDR entry longer than /64 skips its own first address",
        [pool("a", "fd00::100/120")],
        [],
        req("d/s", families=(6,)),
        ("fd00::101",),
    ),
    (
        "requesting another tenant's address is Forbidden",
        TENANTS,
        [],
        req("blue-a/s", requested_ips=("10.1.0.3",)),
        "Forbidden",
    ),
    (
        "a tenant service may not pin a shared-pool address",
        TENANTS,
        [],
        req("red-a/s", requested_ips=("10.9.0.1",)),
        "Forbidden",
    ),
    (
        "the quota stops a tenant at maxAddresses",
        TENANTS,
        [req("red-a/1"), req("red-a/2")],
        req("red-a/3"),
        "QuotaExceeded",
    ),
    (
        "a shared address does not count twice against the quota",
        TENANTS,
        [req("red-a/1", sharing_key="k", ports=(Port(80),)), req("red-a/2")],
        req("red-a/3", sharing_key="k", ports=(Port(443),)),
        ("10.1.0.0",),
    ),
    (
        "same key and distinct ports share an address",
        [pool("a", "10.0.0.0/29")],
        [req("d/1", sharing_key="k", ports=(Port(80),))],
        req("d/2", sharing_key="k", ports=(Port(443),)),
        ("10.0.0.0",),
    ),
    (
        "same key but the same port gets its own address",
        [pool("a", "10.0.0.0/29")],
        [req("d/1", sharing_key="k", ports=(Port(80),))],
        req("d/2", sharing_key="k", ports=(Port(80),)),
        ("10.0.0.1",),
    ),
    (
        "same port on another protocol may share",
        [pool("a", "10.0.0.0/29")],
        [req("d/1", sharing_key="k", ports=(Port(53, "UDP"),))],
        req("d/2", sharing_key="k", ports=(Port(53),)),
        ("10.0.0.0",),
    ),
    (
        "ETP=Local sharing needs the same selector",
        [pool("a", "10.0.0.0/29")],
        [req("d/1", sharing_key="k", ports=(Port(80),), traffic_policy="Local", selector={"app": "x"})],
        req("d/2", sharing_key="k", ports=(Port(81),), traffic_policy="Local", selector={"app": "y"}),
        ("10.0.0.1",),
    ),
    (
        "requesting an address held without a sharing key is a Conflict",
        [pool("a", "10.0.0.0/29")],
        [req("d/1", requested_ips=("10.0.0.3",))],
        req("d/2", requested_ips=("10.0.0.3",)),
        "Conflict",
    ),
    (
        "RequireDualStack gets one address of each family",
        [pool("a", "10.0.0.0/30", "fd00::/126")],
        [],
        req("d/s", family_policy="RequireDualStack"),
        ("10.0.0.0", "fd00::1"),
    ),
    (
        "RequireDualStack follows the family order",
        [pool("a", "10.0.0.0/30", "fd00::/126")],
        [],
        req("d/s", family_policy="RequireDualStack", families=(6, 4)),
        ("fd00::1", "10.0.0.0"),
    ),
    (
        "RequireDualStack without IPv6 addresses fails",
        [pool("a", "10.0.0.0/30")],
        [],
        req("d/s", family_policy="RequireDualStack"),
        "NoPool",
    ),
    (
        "PreferDualStack takes what exists",
        [pool("a", "10.0.0.0/30")],
        [],
        req("d/s", family_policy="PreferDualStack"),
        ("10.0.0.0",),
    ),
    (
        "IPv6 single stack",
        [pool("a", "10.0.0.0/30", "fd00::10-fd00::12")],
        [],
        req("d/s", families=(6,)),
        ("fd00::10",),
    ),
    (
        "SingleStack requesting two families is Invalid",
        [pool("a", "10.0.0.0/30", "fd00::/126")],
        [],
        req("d/s", requested_ips=("10.0.0.1", "fd00::1")),
        "Invalid",
    ),
    (
        "another loadBalancerClass is Invalid",
        [pool("a", "10.0.0.0/30")],
        [],
        req("d/s", load_balancer_class="other.io/lb"),
        "Invalid",
    ),
]


@pytest.mark.parametrize(
    ("docs", "before", "request_", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_allocation_rules(docs, before, request_, expected) -> None:
    alloc = ipam.Allocator(parse(docs))
    for earlier in before:
        alloc.allocate(earlier)
    if isinstance(expected, str):
        with pytest.raises(AllocationError) as info:
            alloc.allocate(request_)
        assert info.value.reason == expected, info.value.message
        assert info.value.service == request_.key
        assert request_.key not in alloc.assignments
    else:
        assert alloc.allocate(request_).addresses == expected


def config_one_pool(addrs: str = "10.0.0.0/29", **spec: Any) -> Config:
    return parse([pool("a", addrs, **spec)])


def test_allocation_is_idempotent() -> None:
    alloc = ipam.Allocator(config_one_pool())
    first = alloc.allocate(req("d/s"))
    alloc.allocate(req("d/t"))
    assert alloc.allocate(req("d/s")) == first


def test_a_full_pool_refuses_every_further_request_until_a_release() -> None:
    alloc = ipam.Allocator(config_one_pool("10.0.0.0/31"))
    alloc.allocate(req("d/1"))
    alloc.allocate(req("d/2"))
    for attempt in range(3):
        with pytest.raises(AllocationError):
            alloc.allocate(req(f"d/x{attempt}"))
    alloc.release("d/1")
    assert alloc.allocate(req("d/y")).addresses == ("10.0.0.0",)


def test_a_released_address_is_reused_lowest_first() -> None:
    alloc = ipam.Allocator(config_one_pool())
    for i in range(4):
        alloc.allocate(req(f"d/s{i}"))
    alloc.release("d/s2")
    alloc.release("d/s1")
    assert alloc.allocate(req("d/new")).addresses == ("10.0.0.1",)
    assert alloc.allocate(req("d/new2")).addresses == ("10.0.0.2",)
    assert alloc.allocate(req("d/new3")).addresses == ("10.0.0.4",)


def test_a_changed_request_is_re_evaluated() -> None:
    alloc = ipam.Allocator(config_one_pool())
    assert alloc.allocate(req("d/s")).addresses == ("10.0.0.0",)
    assert alloc.allocate(req("d/s", requested_ips=("10.0.0.6",))).addresses == ("10.0.0.6",)
    assert alloc.usage()["a"].used == {4: 1, 6: 0}


def test_a_failed_change_keeps_the_old_address() -> None:
    alloc = ipam.Allocator(config_one_pool())
    alloc.allocate(req("d/s"))
    with pytest.raises(AllocationError):
        alloc.allocate(req("d/s", requested_ips=("10.9.9.9",)))
    assert alloc.assignments["d/s"].addresses == ("10.0.0.0",)


def test_existing_assignments_survive_a_disabled_pool() -> None:
    before = ipam.Allocator(config_one_pool())
    kept = before.allocate(req("d/s"))
    after = ipam.Allocator(config_one_pool(disabled=True), before.assignments.values())
    assert after.allocate(req("d/s")) == kept
    with pytest.raises(AllocationError) as info:
        after.allocate(req("d/t"))
    assert info.value.reason == "NoPool"


def test_adding_a_better_pool_moves_nothing() -> None:
    before = ipam.Allocator(config_one_pool())
    kept = before.allocate(req("d/s"))
    better = pool("better", "10.5.0.0/29", serviceAllocation={"priority": 0, "namespaces": ["d"]})
    after = ipam.Allocator(parse([pool("a", "10.0.0.0/29"), better]), before.assignments.values())
    assert after.allocate(req("d/s")) == kept
    assert after.allocate(req("d/t")).addresses == ("10.5.0.0",)


def test_an_address_whose_pool_is_removed_is_replaced_on_reallocation() -> None:
    existing = [Assignment("d/s", (AssignedIP("10.7.0.1", "gone"),))]
    alloc = ipam.Allocator(config_one_pool(), existing)
    assert alloc.assignments["d/s"].addresses == ("10.7.0.1",), "the constructor keeps what it is given"
    assert alloc.allocate(req("d/s")).addresses == ("10.0.0.0",)


def test_usage_and_tenant_usage_count_shared_addresses_once() -> None:
    alloc = ipam.Allocator(parse(TENANTS))
    alloc.allocate(req("red-a/1", sharing_key="k", ports=(Port(80),)))
    alloc.allocate(req("red-a/2", sharing_key="k", ports=(Port(81),)))
    alloc.allocate(req("default/x"))
    assert alloc.tenant_usage() == {"blue": 0, "red": 1}
    usage = alloc.usage()
    assert usage["red"] == ipam.PoolUsage("red", {4: 1, 6: 0}, {4: 4, 6: 0}, "red")
    assert usage["shared"].used[4] == 1
    alloc.release("red-a/1")
    assert alloc.tenant_usage()["red"] == 1, "still held by red-a/2"
    alloc.release("red-a/2")
    assert alloc.tenant_usage()["red"] == 0


def test_may_use_explains_refusals() -> None:
    alloc = ipam.Allocator(parse(TENANTS))
    assert alloc.may_use(req("red-a/s"), "red") is None
    assert alloc.may_use(req("blue-a/s"), "red") == 'pool "red" belongs to tenant "red", not to tenant "blue"'
    assert alloc.may_use(req("d/s"), "nope") == 'pool "nope" does not exist'


def test_allocate_all_is_deterministic_and_order_independent() -> None:
    config = parse([pool("a", "10.0.0.0/28"), pool("b", "fd00::/124")])
    reqs = [
        req(f"ns{i % 3}/s{i}", family_policy="PreferDualStack" if i % 2 else "SingleStack") for i in range(12)
    ]
    first, errors = ipam.allocate_all(config, reqs)
    second, _ = ipam.allocate_all(config, list(reversed(reqs)))
    assert first == second
    assert not errors
    assert ipam.allocate(config, first.values(), reqs[0]) == first[reqs[0].key]


def test_allocate_all_keeps_existing_and_drops_deleted_services() -> None:
    existing = [
        Assignment("d/z", (AssignedIP("10.0.0.5", "a"),)),
        Assignment("d/gone", (AssignedIP("10.0.0.0", "a"),)),
    ]
    result, errors = ipam.allocate_all(config_one_pool(), [req("d/a"), req("d/z")], existing)
    assert not errors
    assert result["d/z"].addresses == ("10.0.0.5",)
    assert result["d/a"].addresses == ("10.0.0.0",), "the deleted service's address is free again"
    assert "d/gone" not in result


def test_an_anycast_address_held_from_before_is_replaced_on_reallocation() -> None:
    existing = [Assignment("d/s", (AssignedIP("fd00::", "a"),))]
    alloc = ipam.Allocator(parse([pool("a", "fd00::/64")]), existing)
    assert alloc.allocate(req("d/s", families=(6,))).addresses == ("fd00::1",)
