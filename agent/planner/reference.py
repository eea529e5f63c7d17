"""The reference plan: every address group decided from scratch, ``plan(view, node) -> Plan``.

This is the definition of a correct plan.  The incremental :class:`~ironlb.agent.planner.incremental.Planner`
must return exactly the same value, and falls back to this path for a resync.  Both call the
same per-group rules (:func:`~ironlb.agent.planner.l2.plan_group`,
:func:`~ironlb.agent.planner.bgp.plan_group`);
this module only puts their results together.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

from ironlb.agent.announcements import L2Announcement, Ownership, Plan
from ironlb.agent.planner import bgp, l2
from ironlb.agent.planner.groups import Group, group
from ironlb.agent.view import ClusterView


def unannounced(
    view: ClusterView, g: Group, l2_result: l2.L2Result, bgp_result: bgp.BGPResult
) -> dict[str, str]:
    """Services of ``g`` announced in neither mode -> why.

    The reason comes from the mode whose advertisements select the service (both, when both
    do); a service no advertisement selects says so for both kinds.
    """
    l2_missing, bgp_missing = l2_result.missing, bgp_result.missing
    if not l2_missing and not bgp_missing:
        return {}
    announced = {s for o in (*l2_result.owners, *bgp_result.owners) for s in o.services}
    out: dict[str, str] = {}
    for s in g.services:
        if s in announced:
            continue
        l2_why = None if s in l2_result.unselected else l2_missing.get(s)
        bgp_why = None if s in bgp_result.unselected else bgp_missing.get(s)
        if l2_why is not None and bgp_why is not None:
            out[s] = f"layer 2: {l2_why}; BGP: {bgp_why}"
        elif l2_why is not None or bgp_why is not None:
            out[s] = l2_why or bgp_why or ""
        else:
            pools = ", ".join(sorted({ip.pool for ip in view.assignments[s].ips}))
            out[s] = f"no L2Advertisement or BGPAdvertisement selects pool {pools}"
    return out


def plan(view: ClusterView, node: str) -> Plan:
    """What ``node`` announces given ``view``, and who owns every address cluster-wide."""
    l2_ctx, bgp_ctx = l2.L2Context(view, node), bgp.BGPContext(view, node)
    announcements: list[L2Announcement] = []
    owners: list[Ownership] = []
    prefixes: dict[str, list[Mapping[str, bgp.Attrs]]] = defaultdict(list)
    missing: dict[str, str] = {}
    for g in group(view.assignments):
        l2_result = l2.plan_group(l2_ctx, view, g)
        bgp_result = bgp.plan_group(bgp_ctx, view, g)
        announcements.extend(l2_result.announcements)
        owners.extend(l2_result.owners)
        owners.extend(bgp_result.owners)
        for prefix, by_peer in bgp_result.prefixes.items():
            prefixes[prefix].append(by_peer)
        missing.update(unannounced(view, g, l2_result, bgp_result))
    announcements.sort(key=lambda a: a.ip)
    owners.sort(key=lambda o: (o.ip, o.mode))
    return Plan(
        node=node,
        l2=tuple(announcements),
        bgp=bgp.all_routes(prefixes),
        ownership=tuple(owners),
        unannounced=missing,
        bgp_sessions=bgp.plan_sessions(view, node),
    )
