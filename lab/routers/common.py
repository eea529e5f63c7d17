"""What every lab router shares: ASNs, the sessions it accepts, paths as read back."""

from __future__ import annotations

from dataclasses import dataclass

from ironlb.agent.announcements import BFDSettings, BGPSession
from lab.netns import Lab

ROUTER_ASN = 64512
NODE_ASN = 64513


@dataclass(frozen=True)
class BfdTimers:
    """BFD on the router side: both intervals in milliseconds, and the detect multiplier."""

    interval_ms: int = 100
    multiplier: int = 3
    graceful: bool = False  # BIRD: BFD down starts graceful restart instead of dropping (``bfd graceful``)


@dataclass(frozen=True)
class Neighbor:
    """A session the router accepts from one node."""

    name: str
    address: str
    asn: int = NODE_ASN
    password: str | None = None
    multihop: bool = False
    bfd: bool = False  # run BFD with this neighbour (the router's BfdTimers)


@dataclass(frozen=True)
class BgpPath:
    """One path to a prefix as the router holds it."""

    next_hop: str
    communities: tuple[str, ...] = ()  # "a:b"
    large_communities: tuple[str, ...] = ()  # "a:b:c"
    local_pref: int | None = None
    source: str = ""  # BIRD protocol / peer address


def node_session(
    lab: Lab,
    node: str = "node1",
    hold_time: int = 9,
    keepalive_time: int = 3,
    *,
    family: int = 4,
    bfd: BFDSettings | None = None,
    graceful_restart: bool = False,
    graceful_restart_time: int = 120,
    name: str | None = None,
) -> BGPSession:
    """The session ``node`` keeps with the lab router (eBGP, NODE_ASN -> ROUTER_ASN, 1 s retry)."""
    return BGPSession(
        name=name or ("tor6" if family == 6 else "tor"),
        peer_address=lab.addr("router", family),
        peer_asn=ROUTER_ASN,
        local_asn=NODE_ASN,
        router_id=lab.addr(node),
        source_address=lab.addr(node, family),
        hold_time=hold_time,
        keepalive_time=keepalive_time,
        connect_time=1,
        graceful_restart=graceful_restart,
        graceful_restart_time=graceful_restart_time,
        bfd=bfd,
        next_hops=(lab.addr(node, 4), lab.addr(node, 6)),
    )
