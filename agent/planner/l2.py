"""Layer-2 planning: one owner node per address group, chosen without any API write.

Every agent runs this same pure function on the same view, so they all agree on the
owner without talking (beyond membership).

1. **Groups.**  A service's addresses are announced from one node, and services sharing an
   address are announced from one node; so addresses are grouped (union-find over
   services) and each group gets one owner.  The group's *key* is its lowest address.
2. **Advertisements.**  An L2Advertisement covers an address when it names the address's
   pool, its ``ipPoolSelector`` matches the pool's labels, or it names no pool and has no
   selector (all pools).  Addresses no advertisement covers are not announced in layer 2.
3. **Eligible nodes** for a group: every node in the view that matches the ``nodeSelector``
   of an advertisement covering the group, whose agent is alive (membership), that is
   Ready, not NetworkUnavailable, not labelled exclude-from-external-load-balancers, and --
   for services with ``externalTrafficPolicy: Local`` -- holds a ready endpoint of each
   such service in the group.
4. **Ranking.**  Eligible nodes sorted by ``sha256(node + "#" + key)``; the first owns the
   group.  Losing one node moves only the groups it owned (consistent-hash-like spread).

The owner announces each address on the interfaces named by the covering advertisements
that match it (none named: the interface whose subnet holds the address), with the
shortest ``garpInterval`` among them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache

from agent.announcements import L2Announcement, Ownership
from agent.view import ClusterView, NodeInfo
from ironlb.model import L2Advertisement
from ironlb.service import Assignment


def rank(nodes: Iterable[str], key: str) -> list[str]:
    """Nodes in ownership order for ``key`` (first = owner): sha256(node#key), then name."""
    return list(_ranking(key, tuple(sorted(nodes))))


@lru_cache(maxsize=65536)
def _ranking(key: str, nodes: tuple[str, ...]) -> tuple[str, ...]:
    """Memoised ranking: replans reuse it, since a key's order depends only on the node set."""
    return tuple(sorted(nodes, key=lambda n: (hashlib.sha256(f"{n}#{key}".encode()).digest(), n)))


def covers(adv: L2Advertisement, view: ClusterView, pool: str) -> bool:
    """True when ``adv`` announces addresses of ``pool``."""
    spec = adv.spec
    if spec.ipPools and pool in spec.ipPools:
        return True
    if spec.ipPoolSelector is not None:
        info = view.config.pools.get(pool)
        return info is not None and spec.ipPoolSelector.matches(dict(info.pool.metadata.labels))
    return not spec.ipPools


def node_matches(adv: L2Advertisement, node: NodeInfo) -> bool:
    sel = adv.spec.nodeSelector
    return sel is None or sel.matches(dict(node.labels))


@dataclass
class _Group:
    ips: set[str]
    services: set[str]


def _groups(assignments: Mapping[str, Assignment]) -> list[_Group]:
    """Union-find over services: a service's addresses, and every service sharing one of them."""
    seen: set[str] = set()
    shared = False
    for a in assignments.values():
        for ip in a.addresses:
            shared = shared or ip in seen
            seen.add(ip)
    if not shared:  # the common case: every service is its own group
        plain = [_Group(set(a.addresses), {key}) for key, a in assignments.items() if a.addresses]
        return sorted(plain, key=lambda g: min(g.ips))
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for key, a in assignments.items():
        for ip in a.addresses:
            parent[find("ip:" + ip)] = find("svc:" + key)
    groups: dict[str, _Group] = {}
    for key, a in assignments.items():
        if not a.addresses:
            continue
        g = groups.setdefault(find("svc:" + key), _Group(set(), set()))
        g.ips.update(a.addresses)
        g.services.add(key)
    return sorted(groups.values(), key=lambda g: min(g.ips))


def _why_not(node: NodeInfo, view: ClusterView, advs: list[L2Advertisement]) -> str | None:
    """Why ``node`` cannot own a group, endpoints aside (None: eligible)."""
    if not any(node_matches(a, node) for a in advs):
        return "matches no advertisement's nodeSelector"
    if not view.is_alive(node.name):
        return "agent not alive"
    if not node.ready:
        return "not Ready"
    if node.network_unavailable:
        return "NetworkUnavailable"
    if node.excluded:
        return "excluded from external load balancers"
    return None


def _no_endpoint(node: str, view: ClusterView, local_services: list[str]) -> str | None:
    """Why ``node`` cannot own a group whose externalTrafficPolicy Local services it lacks."""
    for svc in local_services:
        if node not in view.endpoints.get(svc, frozenset()):
            return f"no ready endpoint of {svc} (externalTrafficPolicy Local)"
    return None


def _summary(reasons: dict[str, str]) -> str:
    if not reasons:
        return "no nodes are known (no Node objects in the view)"
    return "; ".join(f"{n}: {r}" for n, r in sorted(reasons.items()))


def plan_l2(
    view: ClusterView, node: str
) -> tuple[tuple[L2Announcement, ...], tuple[Ownership, ...], Mapping[str, str]]:
    """(announcements for ``node``, cluster-wide owners, service -> why unannounced)."""
    advs = sorted(view.config.l2_advertisements.values(), key=lambda a: a.name)
    announcements: list[L2Announcement] = []
    owners: list[Ownership] = []
    missing: dict[str, str] = {}
    all_nodes = tuple(sorted(view.nodes))
    # Node eligibility depends on the covering advertisements, not on the group: compute
    # it once per distinct advertisement set (usually one) instead of per group.
    base_reasons: dict[tuple[str, ...], dict[str, str]] = {}
    pools_used = set(view.config.pools) | {a.pool for s in view.assignments.values() for a in s.ips}
    covering = {pool: [a for a in advs if covers(a, view, pool)] for pool in pools_used}
    for group in _groups(view.assignments):
        services = sorted(group.services)
        pools = {ip.ip: ip.pool for s in services for ip in view.assignments[s].ips}
        ip_advs = {ip: covering[pool] for ip, pool in pools.items()}
        group_pools = set(pools.values())
        group_advs = [a for a in advs if any(a in covering[p] for p in group_pools)]
        if not group_advs:
            for s in services:
                missing[s] = f"no L2Advertisement selects pool {', '.join(sorted(set(pools.values())))}"
            continue
        local = [s for s in services if view.assignments[s].traffic_policy == "Local"]
        adv_key = tuple(a.name for a in group_advs)
        if adv_key not in base_reasons:
            base_reasons[adv_key] = {
                n.name: r for n in view.nodes.values() if (r := _why_not(n, view, group_advs))
            }
        reasons = base_reasons[adv_key]
        if local:
            reasons = dict(reasons)
            for n in all_nodes:
                if n not in reasons and (r := _no_endpoint(n, view, local)):
                    reasons[n] = r
        eligible_count = len(all_nodes) - len(reasons)
        if eligible_count <= 0:
            for s in services:
                missing[s] = f"no eligible node for layer 2: {_summary(reasons)}"
            continue
        key = min(group.ips)
        owner = next(n for n in _ranking(key, all_nodes) if n not in reasons)
        owner_info = view.nodes[owner]
        why = (
            f"ranked first of {eligible_count} eligible node{'s' if eligible_count != 1 else ''} "
            f"by sha256(node#{key})" + (" among nodes with a ready endpoint" if local else "")
        )
        for ip in sorted(group.ips):
            matching = [a for a in ip_advs[ip] if node_matches(a, owner_info)]
            svc_of_ip = tuple(s for s in services if ip in view.assignments[s].addresses)
            if not matching:
                for s in svc_of_ip:
                    missing.setdefault(
                        s, f"{ip}: no L2Advertisement for pool {pools[ip]} matches owner {owner}"
                    )
                continue
            owners.append(Ownership(ip=ip, mode="layer2", nodes=(owner,), reason=why, services=svc_of_ip))
            if owner == node:
                interfaces = tuple(sorted({i for a in matching for i in a.spec.interfaces}))
                intervals = [a.spec.garpInterval for a in matching if a.spec.garpInterval is not None]
                announcements.append(
                    L2Announcement(
                        ip=ip,
                        services=svc_of_ip,
                        interfaces=interfaces,
                        garp_interval=min(intervals) if intervals else None,
                    )
                )
    return tuple(sorted(announcements)), tuple(owners), missing
