"""Netlink: the only module that imports pyroute2.

What the agent needs from the kernel's view of the host:

- :func:`links` -- every interface with its index, MAC, flags, kind and master, so the
  layer-2 shell can skip NOARP links and bond/bridge members (ARP/NDP is answered on the
  bond or bridge itself, where the address lives);
- :func:`interface_for` -- the interface whose *connected subnet* holds an address.  This
  deliberately reads interface addresses instead of ``ip route get``: a node that accepts
  VIPs through an AnyIP ``local`` route (or kube-proxy's dummy device) would make the route
  lookup answer ``lo``.

Calls are synchronous and quick; async callers use ``asyncio.to_thread``.  Failures are
wrapped in :class:`NetlinkError` naming the operation.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError as _PyNetlinkError

IFF_UP = 0x1
IFF_LOOPBACK = 0x8
IFF_NOARP = 0x80


class NetlinkError(RuntimeError):
    """A netlink request failed; the message names the operation."""


@dataclass(frozen=True)
class Link:
    name: str
    index: int
    mac: str
    flags: int
    kind: str | None  # "bridge", "bond", "veth", "vlan", ... (None for physical NICs)
    master: int | None  # ifindex of the bond/bridge this link is enslaved to

    @property
    def up(self) -> bool:
        return bool(self.flags & IFF_UP)

    @property
    def noarp(self) -> bool:
        return bool(self.flags & (IFF_NOARP | IFF_LOOPBACK))


def _ipr() -> IPRoute:
    return IPRoute()


def links() -> dict[str, Link]:
    """Every interface, by name."""
    out: dict[str, Link] = {}
    try:
        with _ipr() as ipr:
            for msg in ipr.link("dump"):
                info = msg.get("IFLA_LINKINFO")
                name = msg.get("IFLA_IFNAME")
                if not name:
                    continue
                out[name] = Link(
                    name=name,
                    index=int(msg["index"]),
                    mac=str(msg.get("IFLA_ADDRESS") or "00:00:00:00:00:00"),
                    flags=int(msg["flags"]),
                    kind=info.get("IFLA_INFO_KIND") if info else None,
                    master=msg.get("IFLA_MASTER"),
                )
    except (OSError, _PyNetlinkError) as exc:
        raise NetlinkError(f"listing interfaces failed: {exc}") from exc
    return out


def subnets() -> list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, int]]:
    """(connected subnet, ifindex) of every address on the host, longest prefix first."""
    out = []
    try:
        with _ipr() as ipr:
            for msg in ipr.addr("dump"):
                addr = msg.get("IFA_ADDRESS")
                if not addr:
                    continue
                net = ipaddress.ip_network(f"{addr}/{msg['prefixlen']}", strict=False)
                out.append((net, int(msg["index"])))
    except (OSError, _PyNetlinkError, ValueError) as exc:
        raise NetlinkError(f"listing addresses failed: {exc}") from exc
    out.sort(key=lambda item: -item[0].prefixlen)
    return out


def interface_for(
    ip: str,
    all_links: dict[str, Link] | None = None,
    nets: list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, int]] | None = None,
) -> str | None:
    """Name of the non-loopback interface whose subnet holds ``ip`` (longest prefix), or None."""
    addr = ipaddress.ip_address(ip)
    all_links = links() if all_links is None else all_links
    by_index = {link.index: link for link in all_links.values()}
    for net, index in subnets() if nets is None else nets:
        link = by_index.get(index)
        if link is None or link.flags & IFF_LOOPBACK or net.prefixlen == net.max_prefixlen:
            continue
        if addr.version == net.version and addr in net:
            return link.name
    return None
