"""Least-privilege RBAC for the node agent: every verb granted, and why.

The agent (``ironlb-agent --source kube``) reads IronLB's custom resources, Services,
EndpointSlices, Nodes and Namespaces; it writes only what it owns: a Service's
load-balancer status and the allocation annotations, the status of our pools and peers,
Events, and (namespaced) the Lease used to elect the one allocator.  It never reads
Secrets through the API: BGP passwords and the membership key are mounted as files, so a
compromised agent cannot list the cluster's Secrets.

Each grant is a :class:`Grant` with its reason; ``tests/test_components_rbac.py`` lists
every verb again, so widening a rule is a reviewed change in two places.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ironlb.model import API_GROUP, RESOURCE_KINDS


@dataclass(frozen=True)
class Grant:
    """One RBAC rule plus the reason it exists."""

    api_group: str
    resources: tuple[str, ...]
    verbs: tuple[str, ...]
    why: str

    def rule(self) -> dict[str, Any]:
        return {"apiGroups": [self.api_group], "resources": list(self.resources), "verbs": list(self.verbs)}


READ = ("get", "list", "watch")
_OUR_PLURALS = tuple(sorted(cls.PLURAL for cls in RESOURCE_KINDS.values()))

#: Cluster-wide grants (ClusterRole).
CLUSTER_GRANTS: tuple[Grant, ...] = (
    Grant(API_GROUP, _OUR_PLURALS, READ, "read pools, peers, advertisements, communities and tenants"),
    Grant(
        API_GROUP,
        ("ippools/status", "bgppeers/status"),
        ("patch",),
        "report pool usage and BGP session state",
    ),
    Grant("", ("services",), READ, "see LoadBalancer Services in every namespace"),
    Grant("", ("services",), ("patch",), "record the ironlb.io/ip-allocated-from-pool annotation"),
    Grant("", ("services/status",), ("patch",), "write status.loadBalancer.ingress (the assigned IP)"),
    Grant(
        "discovery.k8s.io",
        ("endpointslices",),
        READ,
        "externalTrafficPolicy=Local: announce only from nodes with a ready endpoint",
    ),
    Grant("", ("nodes",), READ, "node labels (nodeSelectors, exclusion label) and readiness"),
    Grant("", ("namespaces",), READ, "namespace labels for pool namespaceSelectors and tenants"),
    Grant("", ("events",), ("create", "patch"), "explain allocation failures and conflicts as Events"),
    Grant("events.k8s.io", ("events",), ("create", "patch"), "the same through the events.k8s.io API"),
)

#: Grants in the agent's own namespace only (Role).
NAMESPACE_GRANTS: tuple[Grant, ...] = (
    Grant(
        "coordination.k8s.io",
        ("leases",),
        ("get", "create", "update"),
        "elect the single allocator (compare-and-swap on one Lease)",
    ),
)


def cluster_rules() -> list[dict[str, Any]]:
    return [g.rule() for g in CLUSTER_GRANTS]


def namespace_rules() -> list[dict[str, Any]]:
    return [g.rule() for g in NAMESPACE_GRANTS]
