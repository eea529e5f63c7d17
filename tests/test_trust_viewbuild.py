"""Issue 10's forged state, speaker side and pure: what a tenant writes never reaches a node's plan.

Each case is a cluster (two tenants, a shared pool, three nodes, a router) plus Services
a hostile tenant wrote: forged controller annotations (addresses in no pool, another
tenant's, the router's; forged pool names), a forged status (a tenant wrongly granted
``services/status``), forged claims on addresses other Services hold.  The view is built by
:mod:`ironlb.agent.viewbuild`, as both sources and the controller build it, and planned for every
node by the reference planner: the forged addresses are in no node's plan, legitimate
Services keep theirs, and every node computes the same view whatever order the objects
arrived in.  The same attacks against the real roles on the API stand-in are in
tests/test_trust_kube.py.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from ironlb.agent import planner
from ironlb.agent.view import ClusterView
from ironlb.agent.viewbuild import NODES, SERVICES, ViewBuilder
from ironlb.config import parse
from ironlb.model import ANN_ALLOCATED_IPS, ANN_ALLOCATED_POOL, ANN_POOL
from lab.manifests import node, resource, service

ROUTER = "192.168.0.1"
NO_POOL, BLUE_IP, RED_IP, SHARED_IP = "10.77.0.99", "10.78.0.16", "10.77.1.5", "10.79.0.5"


CONFIG = parse(
    [
        resource("IPPool", "red", addresses=["10.77.1.0/28"]),
        resource("IPPool", "blue", addresses=["10.78.0.0/27"]),
        resource("IPPool", "shared", addresses=["10.79.0.0/28"], allowUntenanted=True),
        resource("Tenant", "red", namespaces=["red-ns"], pools=["red"]),
        resource("Tenant", "blue", namespaces=["blue-ns"], pools=["blue"]),
        resource("L2Advertisement", "l2", ipPools=["red", "shared"]),
        resource("BGPPeer", "router", myASN=64512, peerASN=64513, peerAddress=ROUTER),
        resource("BGPAdvertisement", "bgp", ipPools=["blue"]),
    ]
)
NODE_DOCS = [node(f"n{i}", f"192.168.0.1{i}", ready=None) for i in (1, 2, 3)]


FORGED_ANNOTATIONS = {
    ANN_ALLOCATED_IPS: f"{NO_POOL},{BLUE_IP},{ROUTER}",
    ANN_ALLOCATED_POOL: "red",
    ANN_POOL: "ghost",  # a pool that does not exist: allocation fails, nothing rewrites the rest
}
EARLIER, LATER = "2026-12-01T10:00:00Z", "2026-12-02T10:00:00Z"

# (id, Services, {service: addresses it holds}, {service: [(address, reason)]}, never announced)
Case = tuple[
    str, list[dict[str, Any]], dict[str, tuple[str, ...]], dict[str, list[tuple[str, str]]], set[str]
]
CASES: list[Case] = [
    (
        "forged controller annotations (no pool, another tenant's, the router's) are not even read",
        [
            service("api", "blue-ns", BLUE_IP, created=EARLIER),
            service("evil", "red-ns", annotations=FORGED_ANNOTATIONS, created=EARLIER),
        ],
        {"blue-ns/api": (BLUE_IP,)},
        {},
        {NO_POOL, ROUTER},
    ),
    (
        "a forged status (tenant wrongly granted services/status) is refused address by address",
        [service("evil", "red-ns", NO_POOL, BLUE_IP, ROUTER, created=LATER)],
        {},
        {"red-ns/evil": [(NO_POOL, "NoPool"), (BLUE_IP, "OtherTenant"), (ROUTER, "NoPool")]},
        {NO_POOL, BLUE_IP, ROUTER},
    ),
    (
        "a forged pool name changes nothing: the pool is found from the address",
        [service("web", "red-ns", RED_IP, annotations={ANN_ALLOCATED_POOL: "blue"}, created=EARLIER)],
        {"red-ns/web": (RED_IP,)},
        {},
        set(),
    ),
    (
        "a forged claim on another tenant's address never displaces its holder, whoever is older",
        [
            service("api", "blue-ns", BLUE_IP, created=LATER),
            service("evil", "red-ns", BLUE_IP, created=EARLIER),
        ],
        {"blue-ns/api": (BLUE_IP,)},
        {"red-ns/evil": [(BLUE_IP, "OtherTenant")]},
        set(),
    ),
    (
        "a later Service claiming an address an older one holds in a shared pool is refused",
        [
            service("victim", "default", SHARED_IP, created=EARLIER),
            service("claimer", "default", SHARED_IP, created=LATER),
        ],
        {"default/victim": (SHARED_IP,)},
        {"default/claimer": [(SHARED_IP, "Conflict")]},
        set(),
    ),
    (
        "an untenanted namespace cannot hold a tenant's address",
        [service("stray", "default", RED_IP, created=EARLIER)],
        {},
        {"default/stray": [(RED_IP, "OtherTenant")]},
        {RED_IP},
    ),
]


def build(docs: list[dict[str, Any]]) -> ClusterView:
    builder = ViewBuilder()
    builder.set_config(CONFIG)
    for doc in NODE_DOCS:
        builder.put(NODES, doc)
    for doc in docs:
        builder.put(SERVICES, doc)
    return builder.build()


@pytest.mark.parametrize(
    ("services", "held", "rejected", "never"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_forged_state_never_reaches_a_plan(
    services: list[dict[str, Any]],
    held: dict[str, tuple[str, ...]],
    rejected: dict[str, list[tuple[str, str]]],
    never: set[str],
) -> None:
    view = build(services)
    assert {k: a.addresses for k, a in view.assignments.items()} == held
    assert {k: [(r.ip, r.reason) for r in rs] for k, rs in view.rejected.items()} == rejected
    forged = {(k, ip) for k, rs in rejected.items() for ip, _ in rs}
    for name in ("n1", "n2", "n3"):
        plan = planner.plan(view, name)
        local = {a.ip for a in plan.l2} | {r.prefix.split("/")[0] for r in plan.bgp}
        owned = {(s, o.ip) for o in plan.ownership if o.nodes for s in o.services}
        assert not local & never and not {o.ip for o in plan.ownership} & never, (
            f"{name} plans a forged address"
        )
        assert not owned & forged, f"{name} announces an address for a Service that does not hold it"
        for key, ips in held.items():
            assert {ip for s, ip in owned if s == key} == set(ips), f"{key} keeps its addresses"


def test_every_node_computes_the_same_view_whatever_order_the_objects_arrive_in() -> None:
    docs = [
        service("victim", "default", SHARED_IP, created=EARLIER),
        service("claimer", "default", SHARED_IP, created=LATER),
    ]
    docs += [
        service("b-same-age", "default", "10.79.0.6", created=EARLIER),
        service("a-same-age", "default", "10.79.0.6", created=EARLIER),
    ]
    views = [build(list(order)) for order in itertools.permutations(docs)]
    assert all(v == views[0] for v in views)
    assert views[0].assignments["default/a-same-age"].addresses == ("10.79.0.6",), "same age: by name"
    assert "default/b-same-age" not in views[0].assignments


def test_when_the_holder_goes_away_the_next_claim_in_precedence_holds() -> None:
    builder = ViewBuilder()
    builder.set_config(CONFIG)
    victim = service("victim", "default", SHARED_IP, created=EARLIER)
    builder.put(SERVICES, victim)
    builder.put(SERVICES, service("claimer", "default", SHARED_IP, created=LATER))
    assert set(builder.build().assignments) == {"default/victim"}
    builder.delete(SERVICES, victim)
    view = builder.build()
    assert view.assignments["default/claimer"].addresses == (SHARED_IP,) and view.rejected == {}
