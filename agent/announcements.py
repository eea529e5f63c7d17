"""What the planner decides: the announcements one node makes, and why each owner was chosen.

These are plain frozen values.  Shells diff the previous and the new :class:`Plan` and
act on the difference, so an unchanged announcement is never touched.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True, order=True)
class L2Announcement:
    """Answer ARP/NDP for ``ip`` on this node."""

    ip: str
    services: tuple[str, ...]  # "ns/name", sorted
    interfaces: tuple[str, ...] = ()  # empty: the interface whose subnet holds ip (netlink decides)
    garp_interval: float | None = None  # periodic refresh, seconds; None = only on takeover


@dataclass(frozen=True, order=True)
class BGPRoute:
    """Announce ``prefix`` from this node to ``peers`` (BGPPeer names)."""

    prefix: str  # "10.0.0.5/32", "fd00::5/128" or an aggregate
    peers: tuple[str, ...]
    communities: tuple[str, ...] = ()  # normalised literals: "a:b" or "large:a:b:c"
    local_pref: int | None = None
    services: tuple[str, ...] = ()


@dataclass(frozen=True, order=True)
class BFDSettings:
    """BFD for one BGP session, from the BGPPeer's BFDProfile (intervals in milliseconds)."""

    receive_interval: int = 300
    transmit_interval: int = 300
    detect_multiplier: int = 3
    passive: bool = False


@dataclass(frozen=True, order=True)
class BGPSession:
    """A BGP session this node keeps, from a BGPPeer whose nodeSelector matches it."""

    name: str  # BGPPeer name
    peer_address: str
    peer_asn: int
    local_asn: int
    router_id: str
    peer_port: int = 179
    source_address: str | None = None  # None: the kernel picks (route lookup)
    hold_time: int = 90
    keepalive_time: int = 30
    connect_time: int = 5
    ebgp_multihop: bool = False
    graceful_restart: bool = False
    graceful_restart_time: int = 120  # seconds the router keeps our routes after we vanish (GR on)
    bfd: BFDSettings | None = None  # None: no BFD on this session
    password_ref: tuple[str, str] | None = None  # (Secret name, key); the file is read by the speaker only
    next_hops: tuple[str, ...] = ()  # this node's addresses to announce as next hop, at most one per family


@dataclass(frozen=True)
class Ownership:
    """Who announces one address, cluster-wide, and why (for status and `ironlb status`)."""

    ip: str
    mode: Literal["layer2", "bgp"]
    nodes: tuple[str, ...]  # layer2: exactly one owner (or none); bgp: every announcing node
    reason: str  # one sentence, e.g. "ranked first by sha256(node#ip) among eligible nodes"
    services: tuple[str, ...] = ()


@dataclass(frozen=True)
class Plan:
    """Everything ``node`` should announce, plus the cluster-wide ownership table."""

    node: str
    l2: tuple[L2Announcement, ...] = ()
    bgp: tuple[BGPRoute, ...] = ()
    ownership: tuple[Ownership, ...] = ()
    #: Service "ns/name" -> why it is not announced at all (no advertisement, no eligible node...).
    unannounced: Mapping[str, str] = field(default_factory=dict)
    #: BGP sessions this node keeps (even with no route to announce).
    bgp_sessions: tuple[BGPSession, ...] = ()
