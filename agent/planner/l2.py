"""Layer-2 planning: one owner node per address group, chosen without any API write.

Every agent runs this same pure function on the same view, so they all agree on the
owner without talking (beyond membership).

1. **Groups** (:mod:`ironlb.agent.planner.groups`): a service's addresses, and every service
   sharing one of them, have one owner.  The group's *key* is its lowest address.
2. **Advertisements.**  An L2Advertisement covers an address when it selects the
   address's pool (:func:`ironlb.model.selects_pool`).  Addresses no
   advertisement covers are not announced in layer 2.
3. **Eligible nodes** for a group: every node in the view that matches the ``nodeSelector``
   of an advertisement covering the group, whose agent is alive (membership), that is
   Ready, not NetworkUnavailable, not labelled exclude-from-external-load-balancers, and --
   for services with ``externalTrafficPolicy: Local`` -- holds a ready endpoint of each
   such service in the group.
4. **Ranking** (:mod:`ironlb.agent.planner.ranking`).  Eligible nodes sorted by
   ``sha256(node + "#" + key)``; the first owns the group.  Losing one node moves only the
   groups it owned (consistent-hash-like spread).

The owner announces each address on the interfaces named by the covering advertisements
that match it (none named: the interface whose subnet holds the address), with the
shortest ``garpInterval`` among them.

Shape: :class:`L2Context` holds what every group reads besides its own services (computed
once per view, memoised); :func:`plan_group` decides one group.  :meth:`L2Context.signature`
is everything a pool's groups read from the context, so the incremental planner replans a
group only when its services or one of its pools' signatures changed.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from types import MappingProxyType
from typing import NamedTuple

from ironlb.agent.announcements import L2Announcement, Ownership
from ironlb.agent.planner.groups import Group, group
from ironlb.agent.planner.ranking import SHARED, Ranking, digest
from ironlb.agent.planner.ranking import rank as rank
from ironlb.agent.planner.selection import needs_endpoints, node_unusable
from ironlb.agent.view import ClusterView, NodeInfo
from ironlb.model import L2Advertisement

NOTHING: Mapping[str, str] = MappingProxyType({})


def node_matches(adv: L2Advertisement, node: NodeInfo) -> bool:
    sel = adv.spec.nodeSelector
    return sel is None or sel.matches(dict(node.labels))


class L2Result(NamedTuple):
    """One group's decision: this node's announcements, the owner rows, unannounced services."""

    announcements: tuple[L2Announcement, ...]  # sorted by address
    owners: tuple[Ownership, ...]  # sorted by address
    missing: Mapping[str, str]  # service -> why not announced in layer 2
    unselected: frozenset[str] = frozenset()  # services no L2Advertisement selects


class L2Context:
    """What layer-2 decisions read besides a group's own services; one per view, memoised."""

    def __init__(self, view: ClusterView, node: str, ranking: Ranking = SHARED) -> None:
        self.node = node
        self.ranking = ranking
        self.config = view.config  # the context reads the view only through these three
        self.nodes = view.nodes
        self.live = view.live_members
        self.advs = sorted(view.config.l2_advertisements.values(), key=lambda a: a.name)
        self.all_nodes = tuple(sorted(view.nodes))
        self.node_set = ranking.nodes(frozenset(self.all_nodes))
        self._covering: dict[str, tuple[L2Advertisement, ...]] = {}
        self._reasons: dict[tuple[str, ...], Mapping[str, str]] = {}
        self.texts: dict[tuple[str, ...], str] = {}  # one copy of each repeated sentence
        self._advertising: dict[tuple[str, ...], tuple[tuple[L2Advertisement, ...], Mapping[str, str]]] = {}
        self._terms: dict[tuple[str, str], tuple[bool, tuple[str, ...], float | None]] = {}

    def covering(self, pool: str) -> tuple[L2Advertisement, ...]:
        """Advertisements covering ``pool``, by name."""
        found = self._covering.get(pool)
        if found is None:
            found = self._covering[pool] = tuple(a for a in self.advs if self.config.selects_pool(a, pool))
        return found

    def reasons(self, advs: tuple[L2Advertisement, ...]) -> Mapping[str, str]:
        """node -> why it cannot own a group covered by ``advs`` (endpoints aside); eligible nodes absent."""
        key = tuple(a.name for a in advs)
        found = self._reasons.get(key)
        if found is None:
            found = self._reasons[key] = {
                n.name: r for n in self.nodes.values() if (r := _why_not(n, self.live, advs))
            }
        return found

    def advertising(self, pools: tuple[str, ...]) -> tuple[tuple[L2Advertisement, ...], Mapping[str, str]]:
        """(advertisements covering any of ``pools``, by name; :meth:`reasons` for them)."""
        found = self._advertising.get(pools)
        if found is None:
            if len(pools) == 1:
                advs = self.covering(pools[0])
            else:
                names = {a.name for p in pools for a in self.covering(p)}
                advs = tuple(a for a in self.advs if a.name in names)
            found = self._advertising[pools] = (advs, self.reasons(advs) if advs else NOTHING)
        return found

    def terms(self, pool: str, owner: str) -> tuple[bool, tuple[str, ...], float | None]:
        """(any covering advertisement matches ``owner``, its interfaces, shortest garpInterval)."""
        found = self._terms.get((pool, owner))
        if found is None:
            info = self.nodes[owner]
            matching = [a for a in self.covering(pool) if node_matches(a, info)]
            intervals = [a.spec.garpInterval for a in matching if a.spec.garpInterval is not None]
            found = self._terms[(pool, owner)] = (
                bool(matching),
                tuple(sorted({i for a in matching for i in a.spec.interfaces})),
                min(intervals) if intervals else None,
            )
        return found

    def signature(self, pool: str) -> Hashable:
        """Everything :func:`plan_group` reads from this context for a group using ``pool``.

        A group over several pools reads the union of their advertisements; its eligibility
        is still a function of the per-pool reasons and matches compared here.
        """
        advs = self.covering(pool)
        if not advs:
            return ()
        matches = tuple(tuple(node_matches(a, self.nodes[n]) for a in advs) for n in self.all_nodes)
        return (advs, self.all_nodes, tuple(sorted(self.reasons(advs).items())), matches)


def _why_not(node: NodeInfo, live: frozenset[str] | None, advs: Iterable[L2Advertisement]) -> str | None:
    """Why ``node`` cannot own a group, endpoints aside (None: eligible)."""
    if not any(node_matches(a, node) for a in advs):
        return "matches no advertisement's nodeSelector"
    return node_unusable(node, live)


def _summary(reasons: Mapping[str, str]) -> str:
    if not reasons:
        return "no nodes are known (no Node objects in the view)"
    return "; ".join(f"{n}: {r}" for n, r in sorted(reasons.items()))


def plan_group(ctx: L2Context, view: ClusterView, g: Group) -> L2Result:
    """Who owns group ``g`` in layer 2, and what ``ctx.node`` announces of it."""
    assignments = view.assignments
    services = g.services
    if len(services) == 1:
        pools = {ip.ip: ip.pool for ip in assignments[services[0]].ips}
    else:
        pools = {ip.ip: ip.pool for s in services for ip in assignments[s].ips}
    group_pools = tuple(sorted(set(pools.values())))
    group_advs, reasons = ctx.advertising(group_pools)
    if not group_advs:
        why_not = ctx.texts.setdefault(
            group_pools, f"no L2Advertisement selects pool {', '.join(group_pools)}"
        )
        return L2Result((), (), dict.fromkeys(services, why_not), frozenset(services))
    local = [s for s in services if needs_endpoints(assignments[s])]
    if local:  # only nodes holding a ready endpoint of every Local service (usually a few)
        ready = frozenset.intersection(*(view.endpoints.get(s, frozenset()) for s in local))
        candidates = [n for n in ready if n in ctx.node_set and n not in reasons]
        eligible = len(candidates)
        if eligible:
            owner = min(candidates, key=lambda n: digest(n, g.key))
    else:
        eligible = len(ctx.all_nodes) - len(reasons)
        if eligible:
            owner = ctx.ranking.owner(g.key, ctx.node_set, reasons)
    if eligible <= 0:
        if local:
            reasons = dict(reasons)
            for n in ctx.all_nodes:
                if n not in reasons and (r := _no_endpoint(n, view, local)):
                    reasons[n] = r
        why_not = f"no eligible node for layer 2: {_summary(reasons)}"
        return L2Result((), (), dict.fromkeys(services, why_not))
    # No count of eligible nodes here: it changes with every node event, and the reason is
    # published (NodeState, the Service's annotation), so a count would rewrite every row.
    why = f"ranked first by sha256(node#{g.key}) among eligible nodes" + (
        " with a ready endpoint" if local else ""
    )
    announcements: list[L2Announcement] = []
    owners: list[Ownership] = []
    missing: dict[str, str] = {}
    for ip in g.ips:
        matched, interfaces, interval = ctx.terms(pools[ip], owner)
        holders = (
            services if len(services) == 1 else tuple(s for s in services if ip in assignments[s].addresses)
        )
        if not matched:
            for s in holders:
                missing.setdefault(s, f"{ip}: no L2Advertisement for pool {pools[ip]} matches owner {owner}")
            continue
        owners.append(Ownership(ip=ip, mode="layer2", nodes=(owner,), reason=why, services=holders))
        if owner == ctx.node:
            announcements.append(L2Announcement(ip, holders, interfaces, interval))
    return L2Result(tuple(announcements), tuple(owners), missing or NOTHING)


def _no_endpoint(node: str, view: ClusterView, local_services: list[str]) -> str | None:
    """Why ``node`` cannot own a group whose externalTrafficPolicy Local services it lacks."""
    for svc in local_services:
        if node not in view.endpoints.get(svc, frozenset()):
            return f"no ready endpoint of {svc} (externalTrafficPolicy Local)"
    return None


def plan_l2(
    view: ClusterView, node: str
) -> tuple[tuple[L2Announcement, ...], tuple[Ownership, ...], Mapping[str, str]]:
    """(announcements for ``node``, cluster-wide owners, service -> why unannounced)."""
    ctx = L2Context(view, node)
    announcements: list[L2Announcement] = []
    owners: list[Ownership] = []
    missing: dict[str, str] = {}
    for g in group(view.assignments):
        result = plan_group(ctx, view, g)
        announcements.extend(result.announcements)
        owners.extend(result.owners)
        missing.update(result.missing)
    return tuple(sorted(announcements)), tuple(owners), missing
