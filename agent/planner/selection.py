"""Selection rules both modes share: which pools an advertisement covers, which nodes may announce.

- :func:`selects_pool`: an advertisement (L2 or BGP) selects a pool when it names the pool in
  ``ipPools``, its ``ipPoolSelector`` matches the pool's labels, or it has neither (all pools).
- :func:`node_unusable`: why a node may not announce at all, whatever the advertisement:
  its agent is not alive (membership), it is not Ready, its network is unavailable, or it is
  labelled exclude-from-external-load-balancers.
- :func:`needs_endpoints`: only ``externalTrafficPolicy: Local`` services depend on where
  their endpoints are; the incremental planner uses it to ignore endpoint churn elsewhere.
"""

from __future__ import annotations

from ironlb.agent.view import NodeInfo
from ironlb.config import Config
from ironlb.model import BGPAdvertisement, L2Advertisement
from ironlb.service import Assignment


def selects_pool(adv: L2Advertisement | BGPAdvertisement, config: Config, pool: str) -> bool:
    """True when ``adv`` announces addresses of ``pool``."""
    spec = adv.spec
    if spec.ipPools and pool in spec.ipPools:
        return True
    if spec.ipPoolSelector is not None:
        info = config.pools.get(pool)
        return info is not None and spec.ipPoolSelector.matches(dict(info.pool.metadata.labels))
    return not spec.ipPools


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
