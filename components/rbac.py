"""Least-privilege RBAC, per role: every grant, and why.  This table is the one place.

Two roles, split as MetalLB splits them (docs/decisions/0061-controller-and-speaker.md):

- **speaker** (DaemonSet, every node, hostNetwork): reads the configuration and the
  cluster; writes only its own NodeState (status, on change) and Events about address
  conflicts.
- **controller** (Deployment, two replicas, one elected by a Lease): holds every other
  write: Service annotations and status, the status of IronLB's objects, Events, the Lease.

Neither role reads Secrets through the API (BGP passwords and the membership key are files
mounted into the speaker only), lists Pods, deletes anything or uses a wildcard.  Grants
whose ``namespaced`` is true go into a Role in IronLB's namespace, the rest into a
ClusterRole.  ``tests/test_components_rbac.py`` runs each role against an API server and
checks that every request it makes is granted here and every grant here is used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ironlb.model import API_GROUP, RESOURCE_KINDS
from ironlb.nodestate import NodeState

SPEAKER = "speaker"
CONTROLLER = "controller"


@dataclass(frozen=True)
class Grant:
    """One RBAC rule plus the reason it exists."""

    api_group: str
    resources: tuple[str, ...]
    verbs: tuple[str, ...]
    why: str
    namespaced: bool = False
    """A Role in IronLB's own namespace, not a ClusterRole."""
    resource_names: tuple[str, ...] = ()
    """Only these objects (RBAC cannot limit create, list or watch by name)."""

    def rule(self) -> dict[str, Any]:
        rule: dict[str, Any] = {
            "apiGroups": [self.api_group],
            "resources": list(self.resources),
            "verbs": list(self.verbs),
        }
        if self.resource_names:
            rule["resourceNames"] = list(self.resource_names)
        return rule


READ = ("list", "watch")  # informers list then watch; nothing reads one object by name
CONFIG_PLURALS = tuple(sorted(cls.PLURAL for cls in RESOURCE_KINDS.values()))
STATUS_PLURALS = tuple(sorted(cls.PLURAL + "/status" for cls in RESOURCE_KINDS.values() if cls.STATUS))
NODESTATES = NodeState.PLURAL


def grants(role: str, lease_name: str = "ironlb-controller") -> tuple[Grant, ...]:
    """Every grant of ``role`` (``speaker`` or ``controller``)."""
    if role == SPEAKER:
        return (
            Grant(
                API_GROUP,
                CONFIG_PLURALS,
                READ,
                "the configuration it plans from: pools, advertisements, peers, communities, tenants",
            ),
            Grant("", ("services",), READ, "LoadBalancer Services and the addresses the controller recorded"),
            Grant(
                "discovery.k8s.io",
                ("endpointslices",),
                READ,
                "externalTrafficPolicy Local: announce only from nodes with a ready endpoint",
            ),
            Grant("", ("nodes",), READ, "node addresses, labels and readiness; its Node owns its NodeState"),
            Grant("", ("namespaces",), READ, "namespace labels for pools' namespaceSelector and tenants"),
            Grant(
                API_GROUP,
                (NODESTATES,),
                ("get", "create"),
                "read back its own NodeState at start, create it the first time",
            ),
            Grant(
                API_GROUP,
                (f"{NODESTATES}/status",),
                ("patch",),
                "report what this node announces, its BGP sessions and address conflicts (on change)",
            ),
            Grant(
                "", ("events",), ("create",), "a Warning Event when a foreign host holds a Service's address"
            ),
        )
    if role == CONTROLLER:
        return (
            Grant(
                API_GROUP,
                (*CONFIG_PLURALS, NODESTATES),
                READ,
                "the configuration it allocates from, and every node's NodeState (who announces)",
            ),
            Grant("", ("services",), READ, "LoadBalancer Services in every namespace"),
            Grant(
                "",
                ("services",),
                ("patch",),
                "its output annotations (ironlb.io/allocated-ips, ip-allocated-from-pool: for people, "
                "never read back) and ironlb.io/announcements",
            ),
            Grant(
                "",
                ("services/status",),
                ("patch",),
                "status.loadBalancer.ingress and the AddressAllocated / Announced conditions",
            ),
            Grant(
                "",
                ("nodes",),
                READ,
                "node readiness: a NodeState of a node that is gone or not Ready is ignored",
            ),
            Grant("", ("namespaces",), READ, "namespace labels for pools' namespaceSelector and tenants"),
            Grant(
                API_GROUP,
                STATUS_PLURALS,
                ("patch",),
                "pool usage, tenant quota use, BGP sessions per peer, and Valid=False on any invalid object",
            ),
            Grant("", ("events",), ("create",), "allocations, refusals, invalid objects, who announces"),
            Grant(
                "coordination.k8s.io",
                ("leases",),
                ("create",),
                "create the controller Lease the first time",
                namespaced=True,
            ),
            Grant(
                "coordination.k8s.io",
                ("leases",),
                ("get", "update"),
                "elect one controller: read and renew or take over its Lease (compare-and-swap)",
                namespaced=True,
                resource_names=(lease_name,),
            ),
        )
    raise ValueError(f"unknown role {role!r}; roles: {SPEAKER}, {CONTROLLER}")


def cluster_rules(role: str, lease_name: str = "ironlb-controller") -> list[dict[str, Any]]:
    return [g.rule() for g in grants(role, lease_name) if not g.namespaced]


def namespace_rules(role: str, lease_name: str = "ironlb-controller") -> list[dict[str, Any]]:
    return [g.rule() for g in grants(role, lease_name) if g.namespaced]
