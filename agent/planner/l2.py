"""Layer-2 planning: one owner node per service, chosen without any API write.

(Stub: the layer-2 issue fills this in.)
"""

from __future__ import annotations

from collections.abc import Mapping

from agent.announcements import L2Announcement, Ownership
from agent.view import ClusterView


def plan_l2(
    view: ClusterView, node: str
) -> tuple[tuple[L2Announcement, ...], tuple[Ownership, ...], Mapping[str, str]]:
    """(announcements for ``node``, cluster-wide owners, service -> why unannounced)."""
    return (), (), {}
