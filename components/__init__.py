"""IronLB's Pulumi components: the declarative half.

One ComponentResource per concept, each with type token ``ironlb:index:<ClassName>``
(the form component providers require, so other languages can consume them later):

- :class:`NodeAgent` -- namespace, CRDs, RBAC, config, membership key, DaemonSet;
- :class:`IpPool`, :class:`BgpPeer`, :class:`L2Advertisement`, :class:`BgpAdvertisement`,
  :class:`Community`, :class:`BfdProfile` -- one ``ironlb.io`` custom resource each,
  validated by the schema;
- :class:`Tenant` -- a team's namespaces, pools and quotas;
- :class:`LoadBalancerService` -- a Service of type LoadBalancer served by IronLB.

``ironlb.components.program`` turns a stack's config into these; ``ironlb.components.offline`` runs that
program under Pulumi's mock runtime for ``ironlb render`` / ``ironlb plan``.  Nothing here
imports the agent (import-linter enforces it).
"""

from ironlb.components.base import InvalidConfigError
from ironlb.components.bfd import BfdProfile
from ironlb.components.node_agent import NodeAgent
from ironlb.components.resources import BgpAdvertisement, BgpPeer, Community, IpPool, L2Advertisement
from ironlb.components.service import LoadBalancerService
from ironlb.components.tenant import Tenant

#: Every component class (for the component provider and the Analyzer test).
COMPONENTS = (
    NodeAgent,
    IpPool,
    BgpPeer,
    L2Advertisement,
    BgpAdvertisement,
    Community,
    BfdProfile,
    Tenant,
    LoadBalancerService,
)

__all__ = [
    "COMPONENTS",
    "BfdProfile",
    "BgpAdvertisement",
    "BgpPeer",
    "Community",
    "InvalidConfigError",
    "IpPool",
    "L2Advertisement",
    "LoadBalancerService",
    "NodeAgent",
    "Tenant",
]
