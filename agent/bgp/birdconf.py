"""Render this node's BIRD 2 configuration from its BGP sessions and routes (pure).

One BIRD process speaks every session of the node.  Each session gets its own pair of
route tables, fed by a static protocol per family, and one ``protocol bgp`` exporting
that pair::

    static s4_<id> (routes, blackhole) -> table t4_<id> -> bgp_<id> ipv4 channel
    static s6_<id> (routes, blackhole) -> table t6_<id> -> bgp_<id> ipv6 channel

So two sessions can carry different prefixes with different attributes, and a route
change is a change of one static protocol: on ``configure`` BIRD diffs the old and new
static routes and sends only the difference; a ``protocol bgp`` whose lines did not change
is never reset.  ``<id>`` is the BGPPeer name made a BIRD symbol plus a hash of the name,
stable across renders.

Routes are ``blackhole`` statics (never installed anywhere: the config has no kernel
protocol) whose BGP attributes are set in the route's own block (communities, large
communities, local preference).  The next hop is this node's address of the family,
forced with ``next hop self`` + ``next hop address`` per channel.  A multihop session with
BFD and no ``sourceAddress`` uses that address of the peer's family as its local address
(BIRD requires one for multihop BFD).

BIRD never accepts sessions from routers here: the agent always connects out.  BIRD still
opens a listening socket per session address, so it listens on ``listen_port`` (an
unprivileged port, not 179: no CAP_NET_BIND_SERVICE, and no clash with another BGP
daemon on the host such as Calico's BIRD).

The MD5 password is written in double quotes; BIRD's config strings have no escapes, so
:func:`password_problem` rejects what cannot be written (``"``, line breaks, NUL, more
than 80 bytes: TCP-MD5's key limit).  See docs/decisions/0041-bird-speaker.md.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ironlb.agent.announcements import BGPSession

#: Seconds BIRD started with ``-R`` waits for every graceful-restart session's End-of-RIB
#: before exporting anyway (we import nothing, so there is nothing to converge on).
GR_WAIT = 10
#: TCP-MD5 key limit (TCP_MD5SIG_MAXKEYLEN).
MAX_PASSWORD_BYTES = 80
#: Most seconds between reconnect attempts after errors (the first waits ``connectTime``).
MAX_ERROR_WAIT = 10


class RouteLike(Protocol):
    """What a route needs to say to be rendered (the plan's BGPRoute has these fields)."""

    @property
    def prefix(self) -> str: ...
    @property
    def communities(self) -> tuple[str, ...]: ...
    @property
    def local_pref(self) -> int | None: ...


@dataclass(frozen=True, order=True)
class Route:
    """One prefix as sent on one session (the next hop comes from the session)."""

    prefix: str
    communities: tuple[str, ...] = ()  # "a:b" or "large:a:b:c"
    local_pref: int | None = None


@dataclass(frozen=True)
class Peering:
    """One session as BIRD runs it: the session, its routes (prefix -> route), its password."""

    session: BGPSession
    routes: Mapping[str, RouteLike] = field(default_factory=dict)
    password: str | None = None


def ident(session: str) -> str:
    """A stable BIRD symbol suffix for the BGPPeer ``session``: ``tor_a_3f2a1b``."""
    readable = re.sub(r"[^A-Za-z0-9]", "_", session)[:40]
    return f"{readable}_{hashlib.sha256(session.encode()).hexdigest()[:6]}"


def protocol_name(session: str) -> str:
    """The ``protocol bgp`` name of ``session`` (what ``show protocols`` lists)."""
    return f"bgp_{ident(session)}"


def password_problem(password: str) -> str | None:
    """Why ``password`` cannot be a BIRD/TCP-MD5 password, or None when it can."""
    if not password:
        return "is empty"
    if any(c in password for c in '"\r\n\0'):
        return "may not contain double quotes, line breaks or NUL characters (BIRD cannot quote them)"
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        return f"is longer than {MAX_PASSWORD_BYTES} bytes (the TCP-MD5 key limit)"
    return None


def _community_block(route: RouteLike) -> str:
    steps = []
    for c in route.communities:
        if c.startswith("large:"):
            a, b, d = c.removeprefix("large:").split(":")
            steps.append(f"bgp_large_community.add(({a},{b},{d}));")
        else:
            a, b = c.split(":")
            steps.append(f"bgp_community.add(({a},{b}));")
    if route.local_pref is not None:
        steps.append(f"bgp_local_pref = {route.local_pref};")
    return f" {{ {' '.join(steps)} }}" if steps else ""


def _statics(name: str, family: int, table: str, routes: Sequence[RouteLike]) -> list[str]:
    blocks: dict[tuple[tuple[str, ...], int | None], str] = {}  # memo: most routes share attributes
    lines = [f"protocol static {name} {{", f"  ipv{family} {{ table {table}; }};"]
    for route in routes:
        if not route.communities and route.local_pref is None:  # the common case, cheapest path
            lines.append(f"  route {route.prefix} blackhole;")
            continue
        key = (route.communities, route.local_pref)
        block = blocks.get(key)
        if block is None:
            block = blocks[key] = _community_block(route)
        lines.append(f"  route {route.prefix} blackhole{block};")
    lines.append("}")
    return lines


def _hops(session: BGPSession) -> dict[int, str]:
    return {6 if ":" in a else 4: a for a in session.next_hops}


def _bgp(p: Peering, listen_port: int) -> list[str]:
    s, i = p.session, ident(p.session.name)
    source = s.source_address
    if source is None and s.ebgp_multihop and s.bfd is not None:  # BIRD needs one for multihop BFD
        source = _hops(s).get(6 if ":" in s.peer_address else 4)
    local = f"local {source} port" if source else "local port"
    lines = [
        f"protocol bgp {protocol_name(s.name)} {{",
        f'  description "BGPPeer {s.name}";',
        f"  router id {s.router_id};",
        f"  {local} {listen_port} as {s.local_asn};",
        f"  neighbor {s.peer_address} port {s.peer_port} as {s.peer_asn};",
        f"  hold time {s.hold_time};",
    ]
    if source:
        lines.append("  strict bind on;")
    if 0 < s.keepalive_time < s.hold_time:  # otherwise BIRD's own: hold time / 3
        lines.append(f"  keepalive time {s.keepalive_time};")
    wait_max = max(s.connect_time, MAX_ERROR_WAIT)
    lines += [
        f"  connect delay time 1; connect retry time {s.connect_time};",
        f"  error wait time {s.connect_time}, {wait_max};",
        "  multihop 255;" if s.ebgp_multihop else "  direct;",
    ]
    if p.password is not None:
        lines.append(f'  password "{p.password}";')
    if s.graceful_restart:
        lines.append(f"  graceful restart on; graceful restart time {s.graceful_restart_time};")
    else:
        lines.append("  graceful restart off;")
    if s.bfd is not None:
        b = s.bfd
        lines.append(
            f"  bfd {{ min rx interval {b.receive_interval} ms; min tx interval {b.transmit_interval} ms; "
            f"multiplier {b.detect_multiplier}; passive {'on' if b.passive else 'off'}; }};"
        )
    for family, hop in sorted(_hops(s).items()):
        lines.append(
            f"  ipv{family} {{ table t{family}_{i}; import none; export all; "
            f"next hop self; next hop address {hop}; }};"
        )
    lines.append("}")
    return lines


def render(node: str, peerings: Sequence[Peering], *, listen_port: int) -> str:
    """The whole BIRD configuration for ``node``: every session, in name order."""
    ordered = sorted(peerings, key=lambda p: p.session.name)
    router_id = min((p.session.router_id for p in ordered), default="0.0.0.1")
    out = [
        f"# BIRD configuration of the IronLB agent on node {node}; generated, do not edit.",
        "log stderr { info, remote, warning, error, auth, fatal, bug };",
        f"router id {router_id};",
        'timeformat protocol "%s";',
        f"graceful restart wait {GR_WAIT};",
        "protocol device { scan time 60; }",
    ]
    if any(p.session.bfd is not None for p in ordered):
        out.append("protocol bfd bfd_ironlb { }")
    for p in ordered:
        i = ident(p.session.name)
        by_family: dict[int, list[RouteLike]] = {4: [], 6: []}
        for prefix in sorted(p.routes):
            by_family[6 if ":" in prefix else 4].append(p.routes[prefix])
        for family in sorted(_hops(p.session)):
            out.append(f"ipv{family} table t{family}_{i};")
            out += _statics(f"s{family}_{i}", family, f"t{family}_{i}", by_family[family])
        out += _bgp(p, listen_port)
    return "\n".join(out) + "\n"
