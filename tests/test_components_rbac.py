"""The agent's RBAC, verb by verb: widening it must be a reviewed change here too."""

from __future__ import annotations

import pytest

from components import rbac
from components.node_agent import NodeAgent
from components.offline import manifests, run_mocked

OURS = ("bgpadvertisements", "bgppeers", "communities", "ippools", "l2advertisements", "tenants")

#: (apiGroup, resource, verb) -> why. Every verb the agent gets, listed again on purpose.
EXPECTED_CLUSTER = {
    **{("ironlb.io", r, v): "read IronLB's own objects" for r in OURS for v in ("get", "list", "watch")},
    ("ironlb.io", "ippools/status", "patch"): "report pool usage",
    ("ironlb.io", "bgppeers/status", "patch"): "report BGP session state",
    ("", "services", "get"): "see LoadBalancer Services",
    ("", "services", "list"): "see LoadBalancer Services",
    ("", "services", "watch"): "see LoadBalancer Services",
    ("", "services", "patch"): "record the allocated-from-pool annotation",
    ("", "services/status", "patch"): "write the assigned IP",
    ("discovery.k8s.io", "endpointslices", "get"): "ETP=Local: nodes with ready endpoints",
    ("discovery.k8s.io", "endpointslices", "list"): "ETP=Local: nodes with ready endpoints",
    ("discovery.k8s.io", "endpointslices", "watch"): "ETP=Local: nodes with ready endpoints",
    ("", "nodes", "get"): "node labels and readiness",
    ("", "nodes", "list"): "node labels and readiness",
    ("", "nodes", "watch"): "node labels and readiness",
    ("", "namespaces", "get"): "namespace labels for selectors and tenants",
    ("", "namespaces", "list"): "namespace labels for selectors and tenants",
    ("", "namespaces", "watch"): "namespace labels for selectors and tenants",
    ("", "events", "create"): "explain failures as Events",
    ("", "events", "patch"): "explain failures as Events (count updates)",
    ("events.k8s.io", "events", "create"): "the same through events.k8s.io",
    ("events.k8s.io", "events", "patch"): "the same through events.k8s.io",
}
EXPECTED_NAMESPACE = {
    ("coordination.k8s.io", "leases", "get"): "read the allocator Lease",
    ("coordination.k8s.io", "leases", "create"): "create the allocator Lease",
    ("coordination.k8s.io", "leases", "update"): "renew / take over the Lease (compare-and-swap)",
}


def _triples(rules):
    return {
        (g, r, v)
        for rule in rules
        for g in rule["apiGroups"]
        for r in rule["resources"]
        for v in rule["verbs"]
    }


def _rendered_rules():
    ev = run_mocked(lambda: NodeAgent("ironlb", {"membership_key": "k"}) and None)
    found = {m["kind"]: m for m in manifests(ev) if m["kind"] in ("ClusterRole", "Role")}
    return found["ClusterRole"]["rules"], found["Role"]["rules"]


def test_cluster_role_grants_exactly_the_listed_verbs():
    cluster, _ = _rendered_rules()
    assert _triples(cluster) == set(EXPECTED_CLUSTER)


def test_namespaced_role_grants_exactly_the_listed_verbs():
    _, role = _rendered_rules()
    assert _triples(role) == set(EXPECTED_NAMESPACE)


@pytest.mark.parametrize("resource", ["secrets", "pods", "configmaps", "*"])
def test_agent_cannot_read_or_write(resource):
    cluster, role = _rendered_rules()
    assert not any(r == resource for _, r, _ in _triples(cluster) | _triples(role))


def test_no_wildcards_and_no_escalation_verbs():
    cluster, role = _rendered_rules()
    verbs = {v for _, _, v in _triples(cluster) | _triples(role)}
    assert verbs <= {"get", "list", "watch", "create", "update", "patch"}
    assert not {"delete", "deletecollection", "escalate", "bind", "impersonate", "*"} & verbs


def test_every_grant_says_why():
    assert all(g.why.strip() for g in (*rbac.CLUSTER_GRANTS, *rbac.NAMESPACE_GRANTS))
