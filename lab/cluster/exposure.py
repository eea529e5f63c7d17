"""Is an address answered or routed?  Seen from where it matters: the LAN client and the routers.

A hostile test names addresses that must never be announced (forged, foreign, held by a host
that is no node) and watches them over a bounded window with :class:`Watch`:

- **at the client** (``python -m lab.arpping watch``, in the client's namespace): every
  ``interval`` it asks who has each address (an ARP request for IPv4, a Neighbour
  Solicitation for IPv6) and it captures every frame on the LAN that says an address is at
  some MAC -- replies, gratuitous ARPs, NAs -- so a one-off announcement between two asks
  is caught too;
- **at every router** (BIRD's own table, ``birdc show route``, both families): every route
  whose prefix contains a watched address, polled every ``route_interval``.

:meth:`Watch.result` then asks once more with the stock tools (``arping`` for IPv4,
``ndisc6`` for IPv6) and returns an :class:`Exposure`: per address, which lab hosts
answered (nodes by name; a host that is no node, such as the router for its own address or
an intruder holding one, by name too), and which routers routed it, via which next hops.
"""

from __future__ import annotations

import ipaddress
import json
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from lab.cluster.deploy import Cluster
from lab.errors import LabError
from lab.probe import arping_macs, log_line, ndisc_mac


@dataclass
class Exposure:
    """What the client and the routers saw for each watched address over one window."""

    seconds: float
    answered: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)  # ip -> host -> seen
    routed: dict[str, dict[str, set[str]]] = field(default_factory=dict)  # ip -> router -> next hops
    final: dict[str, set[str]] = field(default_factory=dict)  # ip -> hosts: arping/ndisc6 at the end
    nodes: frozenset[str] = frozenset()
    #: host -> seconds into the window until which its answers are expected (e.g. an owner
    #: announcing an address until the test kills it); only later ones count
    until: dict[str, float] = field(default_factory=dict)

    def by_nodes(self, ip: str) -> set[str]:
        """Nodes that answered or announced ``ip`` during the window (after ``until``) or at the end."""
        seen = {
            h for h, (_first, last) in self.answered.get(ip, {}).items() if last > self.until.get(h, -1.0)
        }
        return (seen | self.final.get(ip, set())) & self.nodes

    def exposed(self, ips: Iterable[str] | None = None) -> dict[str, str]:
        """ip -> how it leaked (answered by nodes, routed by routers), for every leaked address."""
        out = {}
        for ip in self.answered if ips is None else ips:
            parts = []
            if answered := self.by_nodes(ip):
                parts.append(f"answered by {', '.join(sorted(answered))}")
            if routed := {r: hops for r, hops in self.routed.get(ip, {}).items() if hops}:
                parts.append(
                    "routed by " + "; ".join(f"{r} via {sorted(h)}" for r, h in sorted(routed.items()))
                )
            if parts:
                out[ip] = ", ".join(parts)
        return out


class Watch:
    """Watch ``ips`` for ``seconds`` from the client and at every router (starts at once)."""

    def __init__(
        self,
        cluster: Cluster,
        ips: Iterable[str],
        seconds: float,
        *,
        client: str = "client",
        interval: float = 0.25,
        route_interval: float = 0.5,
    ) -> None:
        self.cluster, self.ips, self.seconds = cluster, sorted(set(ips)), seconds
        self.client, self.route_interval = client, route_interval
        lab = cluster.the_lab
        self.name = f"watch-{client}-{time.monotonic_ns()}"
        argv = [sys.executable, "-m", "lab.arpping", "watch", "eth0", str(seconds), *self.ips]
        self.proc = lab.spawn(client, [*argv, "--interval", str(interval)], name=self.name)
        log_line(lab, self.name, self.proc, lambda line: line == "ready", "the client's watch to start")
        self.started = time.monotonic()
        self.routed: dict[str, dict[str, set[str]]] = {ip: {} for ip in self.ips}
        self._nets = {ip: ipaddress.ip_address(ip) for ip in self.ips}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll_routes, name=self.name, daemon=True)
        self._thread.start()

    def _poll_routes(self) -> None:
        while not self._stop.is_set():
            for name, router in self.cluster.routers.items():
                for table in ("master4", "master6"):
                    try:
                        routes = router.routes(table)
                    except LabError:  # a router being stopped by the test: nothing to read
                        continue
                    for prefix, paths in routes.items():
                        net = ipaddress.ip_network(prefix, strict=False)
                        for ip, addr in self._nets.items():
                            if addr.version == net.version and addr in net:
                                self.routed[ip].setdefault(name, set()).update(p.next_hop for p in paths)
            self._stop.wait(self.route_interval)

    def now(self) -> float:
        """Seconds since the watch started (for :attr:`Exposure.until`)."""
        return time.monotonic() - self.started

    def result(self, until: Mapping[str, float] | None = None) -> Exposure:
        """Wait for the window to end, ask once more with arping/ndisc6, and say what was seen."""
        lab = self.cluster.the_lab
        try:
            self.proc.wait(timeout=self.seconds + 30)
        finally:
            self._stop.set()
            self._thread.join(timeout=30)
        lines = [line for line in lab.log(self.name).splitlines() if line.startswith("{")]
        if not lines:
            raise LabError(f"the client's watch printed no result: {lab.log(self.name)[-2000:]}")
        host_of = {lab.mac(h): h for h, (net, _) in lab.hosts.items() if net == "lan"}
        seen: Mapping[str, Mapping[str, list[float]]] = json.loads(lines[-1])
        answered = {
            ip: {host_of.get(mac, mac): (first, last) for mac, (first, last, _n) in macs.items()}
            for ip, macs in seen.items()
        }
        with ThreadPoolExecutor(max_workers=min(16, len(self.ips) or 1)) as pool:
            finals = list(pool.map(lambda ip: (ip, self._ask(ip, host_of)), self.ips))
        return Exposure(
            seconds=round(time.monotonic() - self.started, 2),
            answered=answered,
            routed=self.routed,
            final=dict(finals),
            nodes=frozenset(lab.nodes),
            until=dict(until or {}),
        )

    def _ask(self, ip: str, host_of: Mapping[str, str]) -> set[str]:
        lab = self.cluster.the_lab
        if ":" in ip:
            mac = ndisc_mac(lab, self.client, ip, tries=1)
            macs = {mac} if mac else set()
        else:
            macs = arping_macs(lab, self.client, ip, count=1, timeout=1)
        return {host_of.get(m, m) for m in macs}
