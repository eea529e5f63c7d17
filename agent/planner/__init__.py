"""The pure planner: ``plan(view, node) -> Plan``.  No I/O, no clock, no randomness.

Layer 2 (``l2``) elects one owner per service by a deterministic ranking of eligible
nodes; BGP (``bgp``) lets every eligible node announce.  Both read only the
:class:`~agent.view.ClusterView`.
"""

from __future__ import annotations

from agent.announcements import Plan
from agent.planner import bgp, l2
from agent.view import ClusterView


def plan(view: ClusterView, node: str) -> Plan:
    """What ``node`` announces given ``view``, and who owns every address cluster-wide."""
    l2_ann, l2_owners, l2_missing = l2.plan_l2(view, node)
    routes, bgp_owners, bgp_missing = bgp.plan_bgp(view, node)
    announced = {svc for o in (*l2_owners, *bgp_owners) for svc in o.services}
    unannounced = {k: v for k, v in {**bgp_missing, **l2_missing}.items() if k not in announced}
    return Plan(
        node=node,
        l2=l2_ann,
        bgp=routes,
        ownership=tuple(sorted((*l2_owners, *bgp_owners), key=lambda o: (o.ip, o.mode))),
        unannounced=unannounced,
        bgp_sessions=bgp.plan_sessions(view, node),
    )
