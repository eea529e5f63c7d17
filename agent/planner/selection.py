"""Selection rules both modes share: which nodes may announce, and for which services it matters.

Which pools an advertisement covers is the schema's rule, :func:`ironlb.model.selects_pool`
(asked through :meth:`ironlb.checked.Config.selects_pool`).

- :func:`node_unusable`: why a node may not announce at all, whatever the advertisement:
  its agent is not alive (membership), it is not Ready, its network is unavailable, or it is
  labelled exclude-from-external-load-balancers.
- :func:`needs_endpoints`: only ``externalTrafficPolicy: Local`` services depend on where
  their endpoints are; the incremental planner uses it to ignore endpoint churn elsewhere.
"""

from __future__ import annotations

from ironlb.agent.view import NodeInfo
from ironlb.service import Assignment


def node_unusable(node: NodeInfo, live: frozenset[str] | None) -> str | None:
    """Why ``node`` can announce nothing (None: it can); ``live`` None means every agent is alive."""
    if live is not None and node.name not in live:
        return "agent not alive"
    if not node.ready:
        return "not Ready"
    if node.network_unavailable:
        return "NetworkUnavailable"
    if node.excluded:
        return "excluded from external load balancers"
    return None


def needs_endpoints(assignment: Assignment) -> bool:
    """True when where the service's ready endpoints are decides who announces it."""
    return assignment.traffic_policy == "Local"
