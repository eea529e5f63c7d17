"""Routers for the lab: BIRD 2 (the main top-of-rack peer), FRR (bgpd, bfdd) and GoBGP.

Each class writes its daemon's config, starts it in a lab host's namespace as a tracked
process (stopped by PID), and reads the router's own view back, parsed:

- :class:`Bird` (:mod:`lab.routers.bird`) -- ``birdc show route all`` -> :class:`BgpPath`
  per next hop (communities, large communities, local pref), session and BFD states, kernel
  export with ``merge paths on`` so ECMP lands in the router namespace's FIB;
- :class:`Frr` (:mod:`lab.routers.frr`) -- zebra + bgpd (+ bfdd) as the ``frr`` user,
  queried with ``vtysh ... json``;
- :class:`GoBGP` (:mod:`lab.routers.gobgp`) -- ``gobgpd`` with its gRPC API on the
  namespace's loopback, queried with ``gobgp ... -j``.

The node-side ASN is one for all nodes (eBGP to the router by default, so paths from
every node are equal and merge into ECMP).  :class:`BfdTimers` turns BFD on at the router
for neighbours with ``bfd=True``.
"""

from lab.routers.bird import Bird, parse_bfd_sessions, parse_bird_routes
from lab.routers.common import NODE_ASN, ROUTER_ASN, BfdTimers, BgpPath, Neighbor, node_session
from lab.routers.frr import Frr
from lab.routers.gobgp import GoBGP

__all__ = [
    "NODE_ASN",
    "ROUTER_ASN",
    "BfdTimers",
    "BgpPath",
    "Bird",
    "Frr",
    "GoBGP",
    "Neighbor",
    "node_session",
    "parse_bfd_sessions",
    "parse_bird_routes",
]
