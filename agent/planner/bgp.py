"""BGP planning: which prefixes this node announces to which peers.

(Stub: the BGP issue fills this in.)
"""

from __future__ import annotations

from collections.abc import Mapping

from agent.announcements import BGPRoute, Ownership
from agent.view import ClusterView


def plan_bgp(
    view: ClusterView, node: str
) -> tuple[tuple[BGPRoute, ...], tuple[Ownership, ...], Mapping[str, str]]:
    """(routes for ``node``, cluster-wide announcers, service -> why unannounced)."""
    return (), (), {}
