"""BGP planning: which sessions this node keeps, and which prefixes it sends to which peer.

Pure functions of the :class:`~ironlb.agent.view.ClusterView`; no I/O.

Sessions (:func:`plan_sessions`): one per BGPPeer whose ``nodeSelector`` matches this
node.  The router ID defaults to the node's IPv4 address; the next hops are the peer's
``sourceAddress`` (for its family) and otherwise the node's first address per family.

Routes (:func:`plan_bgp`): for every assigned address, every BGPAdvertisement that
selects the address's pool (:func:`ironlb.model.selects_pool`: ``ipPools`` by name,
``ipPoolSelector`` by label; neither means every pool) announces it from every *eligible* node:

- the node is ready, its network available, not excluded by label, its agent alive, and
  it matches the advertisement's ``nodeSelector``;
- ``externalTrafficPolicy: Local``: it also has a ready endpoint of the service (so
  next hops follow endpoints); ``Cluster``: every such node (routers get ECMP);
- it keeps a session with at least one of the advertisement's peers (``peers``; empty
  means all).

The prefix is the address itself (/32, /128) or its covering ``aggregationLength`` /
``aggregationLengthV6`` network.  Communities (aliases resolved) are unioned when
several advertisements send one prefix to one peer; local preference takes the highest
and is sent to iBGP peers only.  Routes to different peers with equal attributes share
one :class:`BGPRoute`.

Shape: :class:`BGPContext` holds what every group reads besides its own services (computed
once per view); :func:`plan_group` decides one address group (:mod:`ironlb.agent.planner.groups`);
:func:`all_routes` merges the groups' per-prefix attributes (aggregates span groups).
:meth:`BGPContext.signature` is everything a pool's groups read from the context, for the
incremental planner.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping
from functools import lru_cache
from typing import NamedTuple

import netaddr

from ironlb.agent.announcements import BFDSettings, BGPRoute, BGPSession, Ownership
from ironlb.agent.planner.groups import Group, group
from ironlb.agent.planner.selection import needs_endpoints, node_unusable
from ironlb.agent.view import ClusterView, NodeInfo
from ironlb.bfd import BFDProfileSpec
from ironlb.model import BFDProfile, BGPAdvertisement, BGPPeer, parse_community
from ironlb.service import Assignment


def _labels(view: ClusterView, node: str) -> dict[str, str]:
    info = view.nodes.get(node)
    return dict(info.labels) if info else {}


def _family_address(info: NodeInfo | None, family: int) -> str | None:
    for addr in info.addresses if info else ():
        if netaddr.IPAddress(addr).version == family:
            return addr
    return None


def _peer_selects(peer: BGPPeer, labels: dict[str, str]) -> bool:
    selector = peer.spec.nodeSelector
    return selector is None or selector.matches(labels)


def session_for(
    peer: BGPPeer, info: NodeInfo | None, profiles: Mapping[str, BFDProfile] | None = None
) -> BGPSession | None:
    """The session ``info``'s node keeps with ``peer``; None without any IPv4 router ID."""
    spec = peer.spec
    profile = (profiles or {}).get(spec.bfdProfile) if spec.bfdProfile else None
    router_id = spec.routerID or _family_address(info, 4)
    if router_id is None:
        return None
    hold, keepalive = spec.effective_timers()
    next_hops: list[str] = []
    source_family = netaddr.IPAddress(spec.sourceAddress).version if spec.sourceAddress else None
    for family in (4, 6):
        if spec.sourceAddress and source_family == family:
            next_hops.append(spec.sourceAddress)
        elif (addr := _family_address(info, family)) is not None:
            next_hops.append(addr)
    ref = spec.passwordSecretRef
    return BGPSession(
        name=peer.name,
        peer_address=spec.peerAddress,
        peer_asn=spec.peerASN,
        local_asn=spec.myASN,
        router_id=router_id,
        peer_port=spec.peerPort,
        source_address=spec.sourceAddress,
        hold_time=hold,
        keepalive_time=keepalive,
        connect_time=spec.connectTime,
        ebgp_multihop=spec.ebgpMultiHop,
        graceful_restart=spec.enableGracefulRestart,
        graceful_restart_time=spec.gracefulRestartTime,
        bfd=_bfd(profile.spec) if profile is not None else None,
        password_ref=(ref.name, ref.key) if ref else None,
        next_hops=tuple(next_hops),
    )


def _bfd(spec: BFDProfileSpec) -> BFDSettings:
    return BFDSettings(spec.receiveInterval, spec.transmitInterval, spec.detectMultiplier, spec.passiveMode)


def plan_sessions(view: ClusterView, node: str) -> tuple[BGPSession, ...]:
    """Sessions ``node`` keeps: one per BGPPeer whose nodeSelector matches it."""
    labels = _labels(view, node)
    info = view.nodes.get(node)
    sessions = (
        session_for(peer, info, view.config.bfd_profiles)
        for _, peer in sorted(view.config.peers.items())
        if _peer_selects(peer, labels)
    )
    return tuple(s for s in sessions if s is not None)


class BGPContext:
    """What BGP decisions read besides a group's own services; one per view, memoised."""

    def __init__(self, view: ClusterView, node: str) -> None:
        self.node = node
        self.config = view.config  # the context reads the view only through these three
        self.nodes = view.nodes
        self.live = view.live_members
        peers = view.config.peers
        self.advs = [adv for _, adv in sorted(view.config.bgp_advertisements.items())]
        #: peers whose session is iBGP (they get localPref)
        self.ibgp = frozenset(name for name, p in peers.items() if p.spec.myASN == p.spec.peerASN)
        labels = {name: dict(info.labels) for name, info in view.nodes.items()}
        sessions = {
            name: {p for p, peer in peers.items() if _peer_selects(peer, lab)} for name, lab in labels.items()
        }
        live = view.live_members
        #: nodes that may announce at all (ready, reachable, not excluded)
        self.usable = frozenset(n.name for n in view.nodes.values() if node_unusable(n, live) is None)
        #: advertisement -> usable node it selects that keeps a session with one of its peers -> those peers
        self.reach: dict[str, dict[str, frozenset[str]]] = {}
        for adv in self.advs:
            targets = set(adv.spec.peers) if adv.spec.peers else set(peers)
            sel = adv.spec.nodeSelector
            self.reach[adv.name] = {
                name: frozenset(to)
                for name in sorted(self.usable)
                if (sel is None or sel.matches(labels[name])) and (to := targets & sessions[name])
            }
        #: advertisement -> the nodes of ``reach``, sorted (one tuple shared by every row it fills)
        self.announcers = {name: tuple(r) for name, r in self.reach.items()}
        self.texts: dict[str, str] = {}  # one copy of each repeated sentence
        self._selecting: dict[str, tuple[BGPAdvertisement, ...]] = {}
        self._communities: dict[str, tuple[str, ...]] = {}

    def selecting(self, pool: str) -> tuple[BGPAdvertisement, ...]:
        """Advertisements selecting ``pool``, by name."""
        found = self._selecting.get(pool)
        if found is None:
            found = self._selecting[pool] = tuple(a for a in self.advs if self.config.selects_pool(a, pool))
        return found

    def communities(self, adv: BGPAdvertisement) -> tuple[str, ...]:
        """``adv``'s communities as literals (aliases resolved)."""
        found = self._communities.get(adv.name)
        if found is None:
            aliases = self.config.communities
            found = self._communities[adv.name] = tuple(
                parse_community(aliases.get(c, c)) for c in adv.spec.communities
            )
        return found

    def signature(self, pool: str) -> Hashable:
        """Everything :func:`plan_group` reads from this context for a group using ``pool``."""
        advs = self.selecting(pool)
        if not advs:
            return ()
        return (advs, tuple((self.reach[a.name], self.communities(a)) for a in advs), self.ibgp, self.usable)


def _prefix(ip: str, adv: BGPAdvertisement) -> str:
    v6 = ":" in ip
    length = adv.spec.aggregationLengthV6 if v6 else adv.spec.aggregationLength
    if length == (128 if v6 else 32):  # the common case, without parsing
        return f"{ip}/{length}"
    return _aggregate(ip, length)


@lru_cache(maxsize=65536)
def _aggregate(ip: str, length: int) -> str:
    return str(netaddr.IPNetwork(f"{ip}/{length}").cidr)


NO_SERVICES: frozenset[str] = frozenset()
#: Attributes of one prefix towards one peer: (communities, localPref, services), sorted tuples.
Attrs = tuple[tuple[str, ...], int | None, tuple[str, ...]]


class BGPResult(NamedTuple):
    """One group's decision: what this node sends, the announcer rows, unannounced services."""

    prefixes: Mapping[str, Mapping[str, Attrs]]  # prefix -> peer -> attributes (this node only)
    owners: tuple[Ownership, ...]  # sorted by address
    missing: Mapping[str, str]  # service -> why not announced over BGP
    unselected: frozenset[str] = frozenset()  # services no BGPAdvertisement selects


def _why_none(ctx: BGPContext, view: ClusterView, a: Assignment, advs: list[BGPAdvertisement]) -> str:
    """One sentence: why no node announces ``a`` over BGP."""
    names = ", ".join(dict.fromkeys(x.name for x in advs))
    if not ctx.usable:
        return f"BGPAdvertisement {names} selects it, but no node is ready, reachable and not excluded"
    ready = view.endpoints.get(a.service, frozenset())
    if needs_endpoints(a) and not any(n in ready for n in ctx.usable):
        return (
            f"BGPAdvertisement {names} selects it, but externalTrafficPolicy is Local "
            "and no node has a ready endpoint"
        )
    return (
        f"BGPAdvertisement {names} selects it, but no eligible node has a session with its peers "
        "(check the advertisement's nodeSelector/peers and the BGPPeers' nodeSelectors)"
    )


def plan_group(ctx: BGPContext, view: ClusterView, g: Group) -> BGPResult:
    """Which nodes announce group ``g`` over BGP, and what ``ctx.node`` sends of it to which peer."""
    node = ctx.node
    mine: dict[str, dict[str, tuple[set[str], list[int], set[str]]]] = {}  # prefix -> peer -> acc
    owners: dict[str, tuple[list[tuple[str, ...]], set[str], list[str]]] = {}  # ip -> nodes, services, advs
    missing: dict[str, str] = {}
    unselected: list[str] = []
    for key in g.services:
        assignment = view.assignments[key]
        announced_any = False
        selecting: list[BGPAdvertisement] = []
        local = needs_endpoints(assignment)
        ready = view.endpoints.get(key, frozenset())
        for assigned in assignment.ips:
            for adv in ctx.selecting(assigned.pool):
                selecting.append(adv)
                announcers = ctx.reach[adv.name]
                names = (
                    tuple(sorted(n for n in ready if n in announcers)) if local else ctx.announcers[adv.name]
                )
                if not names:
                    continue
                announced_any = True
                nodes, services, advs = owners.setdefault(assigned.ip, ([], set(), []))
                nodes.append(names)
                services.add(key)
                if adv.name not in advs:
                    advs.append(adv.name)
                if node not in announcers or (local and node not in ready):
                    continue
                by_peer = mine.setdefault(_prefix(assigned.ip, adv), {})
                for peer in announcers[node]:
                    acc = by_peer.get(peer)
                    if acc is None:
                        acc = by_peer[peer] = (set(), [], set())
                    acc[0].update(ctx.communities(adv))
                    acc[2].add(key)
                    if adv.spec.localPref is not None and peer in ctx.ibgp:
                        acc[1].append(adv.spec.localPref)
        if not announced_any:
            if selecting:
                missing[key] = _why_none(ctx, view, assignment, selecting)
            else:
                pools = ", ".join(sorted({a.pool for a in assignment.ips}))
                missing[key] = ctx.texts.setdefault(pools, f"no BGPAdvertisement selects its pool {pools}")
                unselected.append(key)
    prefixes = {
        prefix: {
            peer: (tuple(sorted(c)), max(lp) if lp else None, tuple(sorted(s)))
            for peer, (c, lp, s) in by.items()
        }
        for prefix, by in mine.items()
    }
    return BGPResult(
        prefixes, _ownership(view, owners), missing, frozenset(unselected) if unselected else NO_SERVICES
    )


def _ownership(
    view: ClusterView, owners: Mapping[str, tuple[list[tuple[str, ...]], set[str], list[str]]]
) -> tuple[Ownership, ...]:
    if not owners:
        return ()
    rows = []
    for ip, (announcers, services, names) in sorted(owners.items()):
        local = any(needs_endpoints(view.assignments[s]) for s in services)
        who = (
            "every node with a ready endpoint (externalTrafficPolicy Local)"
            if local
            else "every eligible node (externalTrafficPolicy Cluster)"
        )
        nodes = announcers[0] if len(announcers) == 1 else tuple(sorted(set().union(*announcers)))
        reason = f"announced over BGP by {who}: {len(nodes)} via BGPAdvertisement {', '.join(names)}"
        rows.append(
            Ownership(ip=ip, mode="bgp", nodes=nodes, reason=reason, services=tuple(sorted(services)))
        )
    return tuple(rows)


def merge(parts: Iterable[Mapping[str, Attrs]]) -> dict[str, Attrs]:
    """One prefix's attributes from several groups (aggregates): union communities and
    services, highest localPref."""
    acc: dict[str, tuple[set[str], list[int], set[str]]] = {}
    for part in parts:
        for peer, (communities, local_pref, services) in part.items():
            c, lp, s = acc.setdefault(peer, (set(), [], set()))
            c.update(communities)
            s.update(services)
            if local_pref is not None:
                lp.append(local_pref)
    return {
        peer: (tuple(sorted(c)), max(lp) if lp else None, tuple(sorted(s)))
        for peer, (c, lp, s) in acc.items()
    }


def routes_for(prefix: str, by_peer: Mapping[str, Attrs]) -> tuple[BGPRoute, ...]:
    """The routes of one prefix: peers with equal attributes share one :class:`BGPRoute`."""
    if len(by_peer) == 1:
        ((peer, (communities, local_pref, services)),) = by_peer.items()
        return (BGPRoute(prefix, (peer,), communities, local_pref, services),)
    grouped: dict[Attrs, list[str]] = defaultdict(list)
    for peer, attrs in by_peer.items():
        grouped[attrs].append(peer)
    routes = (BGPRoute(prefix, tuple(sorted(to)), *attrs) for attrs, to in grouped.items())
    return tuple(sorted(routes, key=lambda r: r.peers))  # peer sets are disjoint


def all_routes(prefixes: Mapping[str, list[Mapping[str, Attrs]]]) -> tuple[BGPRoute, ...]:
    """Every route, sorted, from each prefix's per-group attributes."""
    out: list[BGPRoute] = []
    for prefix in sorted(prefixes):
        parts = prefixes[prefix]
        out.extend(routes_for(prefix, parts[0] if len(parts) == 1 else merge(parts)))
    return tuple(out)


def plan_bgp(
    view: ClusterView, node: str
) -> tuple[tuple[BGPRoute, ...], tuple[Ownership, ...], Mapping[str, str]]:
    """(routes for ``node``, cluster-wide announcers, service -> why unannounced)."""
    ctx = BGPContext(view, node)
    prefixes: dict[str, list[Mapping[str, Attrs]]] = defaultdict(list)
    owners: list[Ownership] = []
    missing: dict[str, str] = {}
    for g in group(view.assignments):
        result = plan_group(ctx, view, g)
        for prefix, by_peer in result.prefixes.items():
            prefixes[prefix].append(by_peer)
        owners.extend(result.owners)
        missing.update(result.missing)
    owners.sort(key=lambda o: o.ip)
    return all_routes(prefixes), tuple(owners), missing
