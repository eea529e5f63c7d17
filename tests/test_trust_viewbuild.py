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

ROUTER = "192.168.0.1"
NO_POOL, BLUE_IP, RED_IP, SHARED_IP = "10.77.0.99", "10.78.0.16", "10.77.1.5", "10.79.0.5"


def cr(kind: str, name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "ironlb.io/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec}


CONFIG = parse(
    [
        cr("IPPool", "red", addresses=["10.77.1.0/28"]),
        cr("IPPool", "blue", addresses=["10.78.0.0/27"]),
        cr("IPPool", "shared", addresses=["10.79.0.0/28"], allowUntenanted=True),
        cr("Tenant", "red", namespaces=["red-ns"], pools=["red"]),
        cr("Tenant", "blue", namespaces=["blue-ns"], pools=["blue"]),
        cr("L2Advertisement", "l2", ipPools=["red", "shared"]),
        cr("BGPPeer", "router", myASN=64512, peerASN=64513, peerAddress=ROUTER),
        cr("BGPAdvertisement", "bgp", ipPools=["blue"]),
    ]
)
NODE_DOCS = [
    {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": f"n{i}"},
        "status": {"addresses": [{"type": "InternalIP", "address": f"192.168.0.1{i}"}]},
    }
    for i in (1, 2, 3)
]


def svc(
    ns: str,
    name: str,
    *ingress: str,
    created: str = "2026-12-01T10:00:00Z",
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": ns,
            "creationTimestamp": created,
            "annotations": annotations or {},
        },
        "spec": {
            "type": "LoadBalancer",
            "loadBalancerClass": "ironlb.io/ironlb",
            "ports": [{"port": 80, "protocol": "TCP"}],
        },
    }
    if ingress:
        doc["status"] = {"loadBalancer": {"ingress": [{"ip": ip} for ip in ingress]}}
    return doc


FORGED_ANNOTATIONS = {
    ANN_ALLOCATED_IPS: f"{NO_POOL},{BLUE_IP},{ROUTER}",
    ANN_ALLOCATED_POOL: "red",
    ANN_POOL: "ghost",  # a pool that does not exist: allocation fails, nothing rewrites the rest
}
LATER = "2026-12-02T10:00:00Z"

# (id, Services, {service: addresses it holds}, {service: [(address, reason)]}, never announced)
Case = tuple[
    str, list[dict[str, Any]], dict[str, tuple[str, ...]], dict[str, list[tuple[str, str]]], set[str]
]
CASES: list[Case] = [
    (
        "forged controller annotations (no pool, another tenant's, the router's) are not even read",
        [svc("blue-ns", "api", BLUE_IP), svc("red-ns", "evil", annotations=FORGED_ANNOTATIONS)],
        {"blue-ns/api": (BLUE_IP,)},
        {},
        {NO_POOL, ROUTER},
    ),
    (
        "a forged status (tenant wrongly granted services/status) is refused address by address",
        [svc("red-ns", "evil", NO_POOL, BLUE_IP, ROUTER, created=LATER)],
        {},
        {"red-ns/evil": [(NO_POOL, "NoPool"), (BLUE_IP, "OtherTenant"), (ROUTER, "NoPool")]},
        {NO_POOL, BLUE_IP, ROUTER},
    ),
    (
        "a forged pool name changes nothing: the pool is found from the address",
        [svc("red-ns", "web", RED_IP, annotations={ANN_ALLOCATED_POOL: "blue"})],
        {"red-ns/web": (RED_IP,)},
        {},
        set(),
    ),
    (
        "a forged claim on another tenant's address never displaces its holder, whoever is older",
        [svc("blue-ns", "api", BLUE_IP, created=LATER), svc("red-ns", "evil", BLUE_IP)],
        {"blue-ns/api": (BLUE_IP,)},
        {"red-ns/evil": [(BLUE_IP, "OtherTenant")]},
        set(),
    ),
    (
        "a later Service claiming an address an older one holds in a shared pool is refused",
        [svc("default", "victim", SHARED_IP), svc("default", "claimer", SHARED_IP, created=LATER)],
        {"default/victim": (SHARED_IP,)},
        {"default/claimer": [(SHARED_IP, "Conflict")]},
        set(),
    ),
    (
        "an untenanted namespace cannot hold a tenant's address",
        [svc("default", "stray", RED_IP)],
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
    docs = [svc("default", "victim", SHARED_IP), svc("default", "claimer", SHARED_IP, created=LATER)]
    docs += [svc("default", "b-same-age", "10.79.0.6"), svc("default", "a-same-age", "10.79.0.6")]
    views = [build(list(order)) for order in itertools.permutations(docs)]
    assert all(v == views[0] for v in views)
    assert views[0].assignments["default/a-same-age"].addresses == ("10.79.0.6",), "same age: by name"
    assert "default/b-same-age" not in views[0].assignments


def test_when_the_holder_goes_away_the_next_claim_in_precedence_holds() -> None:
    builder = ViewBuilder()
    builder.set_config(CONFIG)
    victim = svc("default", "victim", SHARED_IP)
    builder.put(SERVICES, victim)
    builder.put(SERVICES, svc("default", "claimer", SHARED_IP, created=LATER))
    assert set(builder.build().assignments) == {"default/victim"}
    builder.delete(SERVICES, victim)
    view = builder.build()
    assert view.assignments["default/claimer"].addresses == (SHARED_IP,) and view.rejected == {}
