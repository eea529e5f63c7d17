"""The stack's BGP peers as lab routers: one BIRD 2 per peer address, in its own namespace.

Each rendered BGPPeer is a top-of-rack router with the peer's address and ASN, accepting a
session from every lab node (the nodes' ASN is the peer's ``myASN``) with the MD5 password
of the Secret the peer names (the revealed value: the agents must present the same one).
Every session carries both IPv4 and IPv6 unicast (the agents announce IPv6 addresses over
the IPv4 session with the node's IPv6 address as next hop), and BIRD exports what it learns
into its namespace's FIB with ECMP (``merge paths``), so a client behind the router reaches
a node through it.

This reuses :class:`lab.routers.Bird` (process, ``birdc``, route parsing) and only writes
its own configuration: a two-channel session per node, which the lab's generic router
config does not express.
"""

from __future__ import annotations

from collections.abc import Mapping

from lab.cluster.topology import Peer
from lab.netns import Lab
from lab.routers import Bird, Neighbor


class PeerRouter(Bird):
    """BIRD for one stack peer (``peer.router`` is its lab host)."""

    def __init__(self, lab: Lab, peer: Peer, password: str | None, name: str | None = None) -> None:
        neighbors = [Neighbor(n, lab.addr(n), asn=peer.node_asn, password=password) for n in lab.nodes]
        super().__init__(
            lab,
            neighbors,
            host=peer.router,
            asn=peer.router_asn,
            hold=peer.hold,
            name=name or f"bird-{peer.name}",
        )
        self.peer = peer

    def config(self) -> str:
        out = [
            f"router id {self.lab.addr(self.host, 4)};",
            "protocol device { scan time 10; }",
            "protocol kernel k4 { ipv4 { export all; import none; }; merge paths on; }",
            "protocol kernel k6 { ipv6 { export all; import none; }; merge paths on; }",
        ]
        v6 = ":" in self.peer.address
        for n in self.neighbors:
            address = self.lab.addr(n.name, 6 if v6 else 4)
            lines = [
                f"protocol bgp {n.name} {{",
                f"  local {self.peer.address} as {self.asn};",
                f"  neighbor {address} as {n.asn};",
                f"  hold time {self.hold}; connect retry time 1; error wait time 1, 2;",
                "  ipv4 { import all; export none; gateway direct; };",
                "  ipv6 { import all; export none; gateway direct; };",
            ]
            if n.password:
                lines.append(f'  password "{n.password}";')
            if n.asn == self.asn:
                lines.append("  direct;")
            out += [*lines, "}"]
        return "\n".join(out) + "\n"


def password_of(
    secrets: Mapping[tuple[str, str], Mapping[str, str]], namespace: str, peer: Peer
) -> str | None:
    """The revealed password the peer's Secret holds (None when the peer has none)."""
    if peer.password_ref is None:
        return None
    name, key = peer.password_ref
    data = secrets.get((namespace, name))
    if data is None or key not in data:
        raise KeyError(f'BGPPeer "{peer.name}": Secret {namespace}/{name} has no key "{key}" in the render')
    return data[key]
