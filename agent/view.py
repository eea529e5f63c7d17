"""The cluster view: everything the planner needs to know, as one immutable value.

Sources (a directory of manifests, or the Kubernetes informers) build a
:class:`ClusterView` through :mod:`ironlb.agent.viewbuild`; membership supplies ``live_members``.
The planner reads nothing else, which is what makes it pure and testable as a table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ironlb.config import Config
from ironlb.ipam import Rejected
from ironlb.model import EXCLUDE_LABEL
from ironlb.service import Assignment


@dataclass(frozen=True)
class NodeInfo:
    """A Kubernetes node as the planner sees it."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    ready: bool = True
    network_unavailable: bool = False
    addresses: tuple[str, ...] = ()  # InternalIP addresses, IPv4 first

    @property
    def excluded(self) -> bool:
        """True when the node carries the exclude-from-external-load-balancers label."""
        return EXCLUDE_LABEL in self.labels


@dataclass(frozen=True)
class ClusterView:
    """Services with their assigned addresses, endpoints, nodes, config, live agents."""

    config: Config
    #: "ns/name" -> the addresses it holds: recorded ones that passed the trust check
    #: (:mod:`ironlb.agent.viewbuild`); for the files source, also what it allocated
    assignments: Mapping[str, Assignment] = field(default_factory=dict)
    #: "ns/name" -> nodes with a ready endpoint
    endpoints: Mapping[str, frozenset[str]] = field(default_factory=dict)
    nodes: Mapping[str, NodeInfo] = field(default_factory=dict)  # node name -> NodeInfo
    #: Node names whose agent is alive (membership). None means "unknown: assume all alive".
    live_members: frozenset[str] | None = None
    #: "ns/name" -> recorded addresses the trust check refused (never announced), with the reason
    rejected: Mapping[str, tuple[Rejected, ...]] = field(default_factory=dict)

    def is_alive(self, node: str) -> bool:
        return self.live_members is None or node in self.live_members
