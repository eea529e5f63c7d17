"""BGP planning: which sessions this node keeps, and which prefixes it sends to which peer.

Pure functions of the :class:`~agent.view.ClusterView`; no I/O.

Sessions (:func:`plan_sessions`): one per BGPPeer whose ``nodeSelector`` matches this
node.  The router ID defaults to the node's IPv4 address; the next hops are the peer's
``sourceAddress`` (for its family) and otherwise the node's first address per family.

Routes (:func:`plan_bgp`): for every assigned address, every BGPAdvertisement that
selects the address's pool (``ipPools`` by name, ``ipPoolSelector`` by label; neither
means every pool) announces it from every *eligible* node:

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
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from functools import lru_cache

import netaddr

from agent.announcements import BGPRoute, BGPSession, Ownership
from agent.view import ClusterView, NodeInfo
from ironlb.model import BGPAdvertisement, BGPPeer, parse_community
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


def session_for(peer: BGPPeer, info: NodeInfo | None) -> BGPSession | None:
    """The session ``info``'s node keeps with ``peer``; None without any IPv4 router ID."""
    spec = peer.spec
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
        password_ref=(ref.name, ref.key) if ref else None,
        next_hops=tuple(next_hops),
    )


def plan_sessions(view: ClusterView, node: str) -> tuple[BGPSession, ...]:
    """Sessions ``node`` keeps: one per BGPPeer whose nodeSelector matches it."""
    labels = _labels(view, node)
    info = view.nodes.get(node)
    sessions = (
        session_for(peer, info)
        for _, peer in sorted(view.config.peers.items())
        if _peer_selects(peer, labels)
    )
    return tuple(s for s in sessions if s is not None)


def _adv_selects_pool(view: ClusterView, adv: BGPAdvertisement, pool: str) -> bool:
    spec = adv.spec
    if not spec.ipPools and spec.ipPoolSelector is None:
        return True
    if pool in spec.ipPools:
        return True
    info = view.config.pools.get(pool)
    if spec.ipPoolSelector is not None and info is not None:
        return spec.ipPoolSelector.matches(dict(info.pool.metadata.labels))
    return False


def _node_usable(view: ClusterView, info: NodeInfo) -> bool:
    return info.ready and not info.network_unavailable and not info.excluded and view.is_alive(info.name)


def _communities(view: ClusterView, adv: BGPAdvertisement) -> tuple[str, ...]:
    return tuple(parse_community(view.config.communities.get(c, c)) for c in adv.spec.communities)


def _prefix(ip: str, adv: BGPAdvertisement) -> str:
    v6 = ":" in ip
    length = adv.spec.aggregationLengthV6 if v6 else adv.spec.aggregationLength
    if length == (128 if v6 else 32):  # the common case, without parsing
        return f"{ip}/{length}"
    return _aggregate(ip, length)


@lru_cache(maxsize=65536)
def _aggregate(ip: str, length: int) -> str:
    return str(netaddr.IPNetwork(f"{ip}/{length}").cidr)


class _Acc:
    """Attributes gathered for one (prefix, peer) on this node."""

    def __init__(self) -> None:
        self.communities: set[str] = set()
        self.local_pref: int | None = None
        self.services: set[str] = set()


def _why_none(view: ClusterView, a: Assignment, advs: list[BGPAdvertisement]) -> str:
    """One sentence: why no node announces ``a`` over BGP."""
    names = ", ".join(x.name for x in advs)
    usable = [n for n in view.nodes.values() if _node_usable(view, n)]
    if not usable:
        return f"BGPAdvertisement {names} selects it, but no node is ready, reachable and not excluded"
    if a.traffic_policy == "Local" and not any(n.name in view.endpoints.get(a.service, ()) for n in usable):
        return (
            f"BGPAdvertisement {names} selects it, but externalTrafficPolicy is Local "
            "and no node has a ready endpoint"
        )
    return (
        f"BGPAdvertisement {names} selects it, but no eligible node has a session with its peers "
        "(check the advertisement's nodeSelector/peers and the BGPPeers' nodeSelectors)"
    )


def plan_bgp(
    view: ClusterView, node: str
) -> tuple[tuple[BGPRoute, ...], tuple[Ownership, ...], Mapping[str, str]]:
    """(routes for ``node``, cluster-wide announcers, service -> why unannounced)."""
    peers = view.config.peers
    advs = [adv for _, adv in sorted(view.config.bgp_advertisements.items())]
    # node -> names of peers it keeps a session with
    node_peers = {
        name: {p for p, peer in peers.items() if _peer_selects(peer, dict(info.labels))}
        for name, info in view.nodes.items()
    }
    mine: dict[tuple[str, str], _Acc] = defaultdict(_Acc)  # (prefix, peer) -> attributes
    owners: dict[str, tuple[set[str], set[str], list[str]]] = {}  # ip -> (nodes, services, adv names)
    missing: dict[str, str] = {}
    # Per advertisement, computed once per plan (not per address): the usable nodes it
    # selects that keep a session with one of its peers -> those peers.
    reach: dict[str, dict[str, set[str]]] = {}
    for adv in advs:
        targets = set(adv.spec.peers) if adv.spec.peers else set(peers)
        sel = adv.spec.nodeSelector
        reach[adv.name] = {
            info.name: to
            for info in view.nodes.values()
            if _node_usable(view, info)
            and (sel is None or sel.matches(dict(info.labels)))
            and (to := targets & node_peers.get(info.name, set()))
        }
    selects: dict[tuple[str, str], bool] = {}  # (adv, pool) -> selects
    communities: dict[str, tuple[str, ...]] = {}  # adv -> resolved literals
    for key, assignment in sorted(view.assignments.items()):
        announced_any = False
        selecting: list[BGPAdvertisement] = []
        local = assignment.traffic_policy == "Local"
        ready = view.endpoints.get(key, frozenset())
        for assigned in assignment.ips:
            for adv in advs:
                hit = selects.get((adv.name, assigned.pool))
                if hit is None:
                    hit = selects[(adv.name, assigned.pool)] = _adv_selects_pool(view, adv, assigned.pool)
                if not hit:
                    continue
                selecting.append(adv)
                announcers = reach[adv.name]
                names_ = [n for n in announcers if n in ready] if local else list(announcers)
                if not names_:
                    continue
                announced_any = True
                nodes, services, names = owners.setdefault(assigned.ip, (set(), set(), []))
                nodes.update(names_)
                services.add(key)
                if adv.name not in names:
                    names.append(adv.name)
                if node not in announcers or (local and node not in ready):
                    continue
                prefix = _prefix(assigned.ip, adv)
                for peer_name in announcers[node]:
                    acc = mine[(prefix, peer_name)]
                    if adv.name not in communities:
                        communities[adv.name] = _communities(view, adv)
                    acc.communities.update(communities[adv.name])
                    acc.services.add(key)
                    spec = peers[peer_name].spec
                    if adv.spec.localPref is not None and spec.myASN == spec.peerASN:
                        acc.local_pref = max(acc.local_pref or 0, adv.spec.localPref)
        if not announced_any:
            if selecting:
                missing[key] = _why_none(view, assignment, selecting)
            else:
                pools = ", ".join(sorted({a.pool for a in assignment.ips}))
                missing[key] = f"no BGPAdvertisement selects its pool {pools}"
    return _group(mine), _ownership(view, owners), missing


def _group(mine: Mapping[tuple[str, str], _Acc]) -> tuple[BGPRoute, ...]:
    """Merge (prefix, peer) entries with equal attributes into one route per attribute set."""
    grouped: dict[tuple[str, tuple[str, ...], int | None, tuple[str, ...]], set[str]] = defaultdict(set)
    for (prefix, peer), acc in mine.items():
        attrs = (prefix, tuple(sorted(acc.communities)), acc.local_pref, tuple(sorted(acc.services)))
        grouped[attrs].add(peer)
    return tuple(
        sorted(
            BGPRoute(prefix=p, peers=tuple(sorted(to)), communities=c, local_pref=lp, services=s)
            for (p, c, lp, s), to in grouped.items()
        )
    )


def _ownership(
    view: ClusterView, owners: Mapping[str, tuple[set[str], set[str], list[str]]]
) -> tuple[Ownership, ...]:
    rows = []
    for ip, (nodes, services, names) in sorted(owners.items()):
        local = any(view.assignments[s].traffic_policy == "Local" for s in services if s in view.assignments)
        who = (
            "every node with a ready endpoint (externalTrafficPolicy Local)"
            if local
            else "every eligible node (externalTrafficPolicy Cluster)"
        )
        reason = f"announced over BGP by {who}: {len(nodes)} via BGPAdvertisement {', '.join(names)}"
        rows.append(
            Ownership(
                ip=ip, mode="bgp", nodes=tuple(sorted(nodes)), reason=reason, services=tuple(sorted(services))
            )
        )
    return tuple(rows)


def routes_by_peer(routes: Iterable[BGPRoute]) -> dict[str, list[BGPRoute]]:
    """peer name -> routes to send it (helper for shells)."""
    out: dict[str, list[BGPRoute]] = defaultdict(list)
    for route in routes:
        for peer in route.peers:
            out[peer].append(route)
    return dict(out)
