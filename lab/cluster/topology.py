"""The lab network a rendered stack asks for (pure: manifests in, :class:`ClusterTopology` out).

What the manifests decide, and how:

- **LAN prefixes.**  IPv4: the /24 holding the BGPPeers' ``peerAddress`` (every peer must be
  on it: the lab has no multihop routers); without peers, the /24 of the first layer-2 pool
  address.  IPv6: the /64 of an IPv6 ``peerAddress``, else of the first IPv6 layer-2 pool
  address, else ``fd77::/64``.
- **Routers.**  One lab router per distinct peer address (prod: 10.20.0.1 and 10.20.0.2 ->
  ``router`` and ``router2``), each its own namespace running its own BIRD: two ToRs are two
  boxes with their own ASN, sessions, RIB and FIB, and a test can stop one.  The first
  router is every host's default gateway and routes the LAN behind it (``extclient``).
- **Node interface.**  The name the L2Advertisements give (prod: ``bond0``), else ``eth0``;
  the lab gives each node one LAN interface, so two different names are an error.
- **Node labels.**  The union of every workload's ``nodeSelector`` (prod:
  ``node-role.kubernetes.io/worker``), plus ``kubernetes.io/os=linux``,
  ``kubernetes.io/arch=amd64`` and ``kubernetes.io/hostname``: every lab node is a worker
  every rendered workload may run on.
- **AnyIP.**  Every range of every IPPool is accepted locally on every node (``ip route add
  local CIDR dev lo``; the kernel never answers ARP/NDP for them, see :mod:`lab`): the lab's
  stand-in for kube-proxy, which on a real node accepts a LoadBalancer address for the
  Service's endpoints.  Which node *receives* the traffic is still decided only by the
  agents (ARP/NDP answers, BGP next hops).
- **Extra hosts.**  ``api`` (the Kubernetes API stand-in) gets a free LAN host number that no
  pool, router, node or client uses; so does every host a test asks for by name
  (``extra_hosts``: e.g. ``intruder``, a LAN host that is no node, for the hostile-LAN tests).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import netaddr

from ironlb.addresses import parse_block
from ironlb.model import BGPAdvertisementSpec, L2AdvertisementSpec, selects_pool
from lab.netns import Topology

Manifest = Mapping[str, Any]
DEFAULT_V6_LAN = "fd77::/64"
NODE_BASE = 10
CLIENT = 100


class TopologyError(ValueError):
    """The rendered stack asks for a network the lab cannot build; the message says why."""


@dataclass(frozen=True)
class Peer:
    """One BGPPeer as the lab router facing it sees it."""

    name: str
    router: str  # lab host name
    address: str
    router_asn: int  # the peer's ASN (peerASN): the router's own
    node_asn: int  # myASN: the nodes' ASN
    hold: int
    password_ref: tuple[str, str] | None = None  # (Secret name, key), in the agents' namespace


@dataclass(frozen=True)
class ClusterTopology:
    topology: Topology
    peers: tuple[Peer, ...]
    node_labels: Mapping[str, str]
    l2_pools: frozenset[str]  # pools some L2Advertisement selects
    bgp_pools: frozenset[str]  # pools some BGPAdvertisement selects
    pool_ranges: Mapping[str, tuple[netaddr.IPRange, ...]] = field(default_factory=dict)

    def pool_of(self, ip: str) -> str | None:
        addr = netaddr.IPAddress(ip)
        return next((p for p, ranges in self.pool_ranges.items() if any(addr in r for r in ranges)), None)


def of_kind(manifests: Iterable[Manifest], kind: str) -> list[Manifest]:
    return [m for m in manifests if m.get("kind") == kind]


def _spec(m: Manifest) -> Mapping[str, Any]:
    spec = m.get("spec")
    return spec if isinstance(spec, Mapping) else {}


def _name(m: Manifest) -> str:
    return str((m.get("metadata") or {}).get("name", ""))


def _selected(adverts: Sequence[Manifest], pools: Mapping[str, Mapping[str, str]]) -> frozenset[str]:
    """Pools the advertisements select, by the schema's one rule (:func:`ironlb.model.selects_pool`)."""
    out: set[str] = set()
    for adv in adverts:
        kind = L2AdvertisementSpec if adv.get("kind") == "L2Advertisement" else BGPAdvertisementSpec
        spec = kind.model_validate(_spec(adv))
        out.update(p for p, labels in pools.items() if selects_pool(spec, p, labels))
    return frozenset(out)


def _lan_v4(peers: Sequence[Manifest], l2_first: Sequence[netaddr.IPAddress]) -> ipaddress.IPv4Network:
    v4 = [str(_spec(p).get("peerAddress")) for p in peers if ":" not in str(_spec(p).get("peerAddress"))]
    seed = v4[0] if v4 else next((str(a) for a in l2_first if a.version == 4), "10.77.0.1")
    lan = ipaddress.IPv4Network(f"{seed}/24", strict=False)
    for p in peers:
        addr = ipaddress.ip_address(str(_spec(p).get("peerAddress")))
        if addr.version == 4 and addr not in lan:
            raise TopologyError(
                f'BGPPeer "{_name(p)}": peerAddress "{addr}" is not on the LAN {lan} of the other '
                "peers; the lab builds one LAN and no multihop routers"
            )
    return lan


def _lan_v6(peers: Sequence[Manifest], l2_first: Sequence[netaddr.IPAddress]) -> ipaddress.IPv6Network:
    v6 = [str(_spec(p).get("peerAddress")) for p in peers if ":" in str(_spec(p).get("peerAddress"))]
    seed = v6[0] if v6 else next((str(a) for a in l2_first if a.version == 6), None)
    return (
        ipaddress.IPv6Network(f"{seed}/64", strict=False) if seed else ipaddress.IPv6Network(DEFAULT_V6_LAN)
    )


def _routers(peers: Sequence[Manifest], lan4: ipaddress.IPv4Network) -> dict[str, int]:
    """peerAddress -> host number on the LAN (IPv6 peers must match an IPv4 router's number)."""
    numbers: dict[str, int] = {}
    for p in peers:
        addr = ipaddress.ip_address(str(_spec(p).get("peerAddress")))
        if addr.version == 4:
            numbers.setdefault(str(addr), int(addr) - int(lan4.network_address))
    for p in peers:
        addr = ipaddress.ip_address(str(_spec(p).get("peerAddress")))
        if addr.version == 6:
            number = int(format(int(addr) & 0xFFFF, "x"))  # fd00:20::2 -> host 2 (the lab's v6 scheme)
            if number not in numbers.values():
                raise TopologyError(
                    f'BGPPeer "{_name(p)}": peerAddress "{addr}" matches no IPv4 peer\'s router; the lab '
                    "numbers a router's IPv6 address like its IPv4 one (10.0.0.2 and fd00::2)"
                )
            numbers[str(addr)] = number
    return numbers


def _interface(adverts: Sequence[Manifest]) -> str:
    names = sorted({str(i) for a in adverts for i in (_spec(a).get("interfaces") or [])})
    if len(names) > 1:
        raise TopologyError(
            f"L2Advertisements name interfaces {', '.join(names)}; the lab gives every node one LAN "
            "interface, so they must name at most one"
        )
    return names[0] if names else "eth0"


def node_labels(manifests: Iterable[Manifest]) -> dict[str, str]:
    """Labels every lab node carries: the union of the workloads' nodeSelectors, plus the well-known ones."""
    labels = {"kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}
    for m in manifests:
        if m.get("kind") in ("DaemonSet", "Deployment"):
            template = _spec(m).get("template") or {}
            labels.update(
                {str(k): str(v) for k, v in ((template.get("spec") or {}).get("nodeSelector") or {}).items()}
            )
    return labels


def _free_number(
    taken: set[int],
    cidrs: Sequence[netaddr.IPRange],
    lan4: ipaddress.IPv4Network,
    what: str = "the API server",
) -> int:
    for n in range(250, 2, -1):
        addr = netaddr.IPAddress(str(lan4[n]))
        if n not in taken and not any(addr in r for r in cidrs):
            return n
    raise TopologyError(f"no free host number on {lan4} for {what}: the pools cover it")


def derive(manifests: Sequence[Manifest], nodes: int, extra_hosts: Sequence[str] = ()) -> ClusterTopology:
    """The lab for ``manifests`` with ``nodes`` nodes and ``extra_hosts`` (raises TopologyError)."""
    pools = {
        _name(p): dict((p.get("metadata") or {}).get("labels") or {}) for p in of_kind(manifests, "IPPool")
    }
    ranges = {
        _name(p): tuple(parse_block(str(a)) for a in (_spec(p).get("addresses") or []))
        for p in of_kind(manifests, "IPPool")
    }
    l2_adverts, peers = of_kind(manifests, "L2Advertisement"), of_kind(manifests, "BGPPeer")
    l2_pools = _selected(l2_adverts, pools)
    bgp_pools = _selected(of_kind(manifests, "BGPAdvertisement"), pools)
    l2_first = [r[0] for p in sorted(l2_pools) for r in ranges[p]]
    lan4, lan6 = _lan_v4(peers, l2_first), _lan_v6(peers, l2_first)
    router_numbers = _routers(peers, lan4) or {str(lan4[1]): 1}
    ordered = sorted(set(router_numbers.values()))
    names = ["router" if i == 0 else f"router{i + 1}" for i in range(len(ordered))]
    host_of = {n: names[ordered.index(n)] for n in ordered}
    all_ranges = [r for rs in ranges.values() for r in rs]
    taken = {*ordered, CLIENT, *range(NODE_BASE + 1, NODE_BASE + nodes + 1)}
    for number, what in [(n, "router") for n in ordered] + [(CLIENT, "client")]:
        addr = netaddr.IPAddress(str(lan4[number]))
        if any(addr in r for r in all_ranges):
            raise TopologyError(f"the lab's {what} address {addr} lies in a pool range")
    extra = {"api": _free_number(taken, all_ranges, lan4)}
    for host in extra_hosts:
        if host in extra or host in ("client", "extclient", "bridge", *names) or host.startswith("node"):
            raise TopologyError(
                f"extra host {host!r}: that name is taken (api, client, extclient, bridge, routers, nodes)"
            )
        extra[host] = _free_number(taken | set(extra.values()), all_ranges, lan4, f"host {host!r}")
    anyip = sorted({str(c) for r in all_ranges for c in r.cidrs()})
    topology = Topology(
        lan=(str(lan4), str(lan6)),
        routers=tuple(ordered),
        node_interface=_interface(l2_adverts),
        anyip=tuple(anyip),
        extra=extra,
        client=CLIENT,
        node_base=NODE_BASE,
    )
    out_peers = []
    for p in peers:
        spec = _spec(p)
        ref = spec.get("passwordSecretRef") or None
        out_peers.append(
            Peer(
                name=_name(p),
                router=host_of[router_numbers[str(ipaddress.ip_address(str(spec["peerAddress"])))]],
                address=str(spec["peerAddress"]),
                router_asn=int(spec["peerASN"]),
                node_asn=int(spec["myASN"]),
                hold=int(spec.get("holdTime") or 90),
                password_ref=(str(ref["name"]), str(ref.get("key", "password"))) if ref else None,
            )
        )
    return ClusterTopology(topology, tuple(out_peers), node_labels(manifests), l2_pools, bgp_pools, ranges)
