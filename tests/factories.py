"""The model objects tests build by hand: one factory each.

Documents (IPPool, Service, Node, EndpointSlice... as dicts) come from :mod:`lab.manifests`,
which the lab and the benchmarks share; this module builds what only tests construct
directly: service requests, assignments, plans and BGP sessions, with the defaults most
tests want and every field a keyword away.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ironlb.agent.announcements import BGPRoute, BGPSession, L2Announcement, Ownership, Plan
from ironlb.service import AssignedIP, Assignment, ServiceRequest

WEB = "default/web"


def req(key: str, **fields: Any) -> ServiceRequest:
    """The request of Service ``key`` ("namespace/name"), with any other ``fields``."""
    namespace, _, name = key.partition("/")
    return ServiceRequest(namespace=namespace, name=name, **fields)


def assignment(key: str, *ips: str, pool: str = "lan", local: bool = False, **fields: Any) -> Assignment:
    """Service ``key`` holding ``ips`` from ``pool`` (``local``: externalTrafficPolicy Local)."""
    policy = {"traffic_policy": "Local"} if local else {}
    return Assignment(key, tuple(AssignedIP(ip, pool) for ip in ips), **{**policy, **fields})


def owned_plan(
    owner: str,
    *ips: str,
    node: str = "n1",
    reason: str = "ranked first among eligible nodes",
    services: tuple[str, ...] = (WEB,),
    prefixes: tuple[str, ...] = (),
) -> Plan:
    """``node``'s plan when ``owner`` owns each of ``ips`` at layer 2: ``node`` announces them
    if it is the owner; ``prefixes``: BGP routes to the peer "tor" besides."""
    return Plan(
        node=node,
        l2=tuple(L2Announcement(ip, services) for ip in ips) if owner == node else (),
        bgp=tuple(BGPRoute(p, ("tor",)) for p in prefixes),
        ownership=tuple(Ownership(ip, "layer2", (owner,), reason, services) for ip in ips),
    )


#: A session to a top-of-rack router at 10.0.0.1 (eBGP 64513 -> 64512) from 10.0.0.11.
SESSION = BGPSession(
    name="tor",
    peer_address="10.0.0.1",
    peer_asn=64512,
    local_asn=64513,
    router_id="10.0.0.11",
    source_address="10.0.0.11",
)


def bgp_session(**fields: Any) -> BGPSession:
    """:data:`SESSION` with ``fields`` replaced."""
    return dataclasses.replace(SESSION, **fields)
