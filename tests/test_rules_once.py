"""Rules stated once: which pools an advertisement selects, whose Service it is, which IPv4
addresses ``avoidBuggyIPs`` skips.

Each rule is one function (:func:`ironlb.model.selects_pool`, :func:`ironlb.service.is_ours`,
:func:`ironlb.addresses.is_buggy`); these tests state each rule as a table and check that the
places acting on it (validation's Config, the planner, ``ironlb plan``, the allocator, the
trust check, the view builder, ``ironlb status``) give the same answer.
"""

from __future__ import annotations

from typing import Any

import netaddr
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ironlb import addresses, ipam
from ironlb.agent.planner import plan
from ironlb.agent.view import ClusterView, NodeInfo
from ironlb.agent.viewbuild import read_service
from ironlb.config import parse
from ironlb.errors import AllocationError
from ironlb.model import LOAD_BALANCER_CLASS, L2AdvertisementSpec, selects_pool
from ironlb.service import AssignedIP, Assignment, ServiceRequest, is_ours
from ironlb_cli.livestate import recorded
from ironlb_cli.plan import _selected

GV = "ironlb.io/v1alpha1"


def doc(kind: str, name: str, labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, **({"labels": labels} if labels else {})}
    return {"apiVersion": GV, "kind": kind, "metadata": meta, "spec": spec}


POOLS = [
    doc("IPPool", "gold", {"tier": "gold"}, addresses=["10.0.1.0/24"]),
    doc("IPPool", "iron", {"tier": "iron"}, addresses=["10.0.2.0/24"]),
    doc("IPPool", "bare", addresses=["10.0.3.0/24"]),
]

# --- selection ------------------------------------------------------------------------------

SELECTIONS = [
    pytest.param({}, ["bare", "gold", "iron"], id="neither names nor a selector: every pool"),
    pytest.param({"ipPools": ["gold"]}, ["gold"], id="a name selects that pool only"),
    pytest.param(
        {"ipPoolSelector": {"matchLabels": {"tier": "iron"}}}, ["iron"], id="a selector selects by label"
    ),
    pytest.param(
        {"ipPools": ["gold"], "ipPoolSelector": {"matchLabels": {"tier": "iron"}}},
        ["gold", "iron"],
        id="names and a selector add up",
    ),
    pytest.param(
        {"ipPools": ["gold"], "ipPoolSelector": {}},
        ["bare", "gold", "iron"],
        id="an empty selector matches every pool, names or not",
    ),
    pytest.param(
        {"ipPoolSelector": {"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}},
        ["bare"],
        id="a selector on a missing label",
    ),
]


@pytest.mark.parametrize(("spec", "selected"), SELECTIONS)
def test_every_reader_of_an_advertisement_selects_the_same_pools(
    spec: dict[str, Any], selected: list[str]
) -> None:
    config = parse([*POOLS, doc("L2Advertisement", "adv", **spec)])
    adv = config.l2_advertisements["adv"]
    assert list(config.selected_pools(adv)) == selected, "validation's view"
    assert [p for p in sorted(config.pools) if config.selects_pool(adv, p)] == selected
    model_says = [
        p for p, i in sorted(config.pools.items()) if selects_pool(adv.spec, p, i.pool.metadata.labels)
    ]
    assert model_says == selected, "the rule itself"
    shown = _selected(config, adv)
    assert shown == (["(all)"] if not spec else selected), "ironlb plan"
    view = ClusterView(
        config=config,
        nodes={"n1": NodeInfo("n1", addresses=("192.0.2.1",))},
        assignments={
            f"ns/{p}": Assignment(f"ns/{p}", (AssignedIP(f"10.0.{i}.10", p),))
            for i, p in ((1, "gold"), (2, "iron"), (3, "bare"))
        },
    )
    announced = sorted(a.services[0].split("/")[1] for a in plan(view, "n1").l2)
    assert announced == selected, "the planner announces the selected pools' addresses only"


def test_an_unknown_pool_is_selected_by_name_only() -> None:
    spec = L2AdvertisementSpec.model_validate({"ipPools": ["gone"], "ipPoolSelector": {}})
    assert selects_pool(spec, "gone", None)
    assert not selects_pool(spec, "other", None), "no selector matches a pool that does not exist"


# --- whose Service ----------------------------------------------------------------------------

CLASSES = [
    pytest.param(LOAD_BALANCER_CLASS, False, True, id="our class is always ours"),
    pytest.param(LOAD_BALANCER_CLASS, True, True, id="our class, classless claimed too"),
    pytest.param(None, False, False, id="no class is not ours by default"),
    pytest.param(None, True, True, id="no class is ours when the install claims classless"),
    pytest.param("example.com/other", True, False, id="another class is never ours"),
]


def service(cls: str | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": "LoadBalancer", "ports": [{"port": 80}]}
    if cls is not None:
        spec["loadBalancerClass"] = cls
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": spec,
        "status": {"loadBalancer": {"ingress": [{"ip": "10.0.3.7"}]}},
    }


@pytest.mark.parametrize(("cls", "claim", "ours"), CLASSES)
def test_every_reader_of_a_services_class_agrees(cls: str | None, claim: bool, ours: bool) -> None:
    assert is_ours(cls, claim_classless=claim) is ours
    request = ServiceRequest("default", "web", load_balancer_class=cls)
    assert request.is_ours(claim_classless=claim) is ours
    assert request.foreign is (cls not in (None, LOAD_BALANCER_CLASS)), "foreign: another balancer's"
    assert (read_service(service(cls), "default/web", claim_classless=claim).request is not None) is ours
    assert bool(recorded([service(cls)], classless=claim)) is ours, "ironlb status / plan --live"


def test_the_allocator_refuses_another_balancers_service_and_serves_a_classless_one() -> None:
    alloc = ipam.Allocator(parse(POOLS))
    with pytest.raises(AllocationError, match="is not IronLB's"):
        alloc.allocate(ServiceRequest("default", "other", load_balancer_class="example.com/other"))
    assert alloc.allocate(ServiceRequest("default", "classless", load_balancer_class=None)).addresses


# --- avoidBuggyIPs ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ip", "buggy"),
    [
        ("10.0.0.0", True),
        ("10.0.0.255", True),
        ("10.0.1.0", True),
        ("10.0.0.1", False),
        ("10.0.0.254", False),
    ],
)
def test_the_buggy_address_rule(ip: str, buggy: bool) -> None:
    assert addresses.is_buggy(int(netaddr.IPAddress(ip))) is buggy


@given(st.integers(0, 2**32 - 1), st.integers(0, 2000))
def test_the_buggy_count_counts_what_the_rule_says(first: int, span: int) -> None:
    last = min(first + span, 2**32 - 1)
    assert addresses.buggy_count(first, last) == sum(addresses.is_buggy(v) for v in range(first, last + 1))


def test_a_pool_avoiding_buggy_addresses_never_hands_one_out_and_reports_its_size() -> None:
    config = parse([doc("IPPool", "p", addresses=["10.0.0.0/23"], avoidBuggyIPs=True)])
    alloc = ipam.Allocator(config)
    got = [alloc.allocate(ServiceRequest("default", f"s{i}")).addresses[0] for i in range(508)]
    assert not [ip for ip in got if addresses.is_buggy(int(netaddr.IPAddress(ip)))]
    assert alloc.usage()["p"].size[4] == 512 - 4
    assert not [w for w in config.warnings if w.field == "addresses[0]"], "no network/broadcast warning"
