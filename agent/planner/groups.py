"""Address groups: the unit both modes plan, and the unit the incremental planner replans.

A service's addresses are announced from one node, and services sharing an address are
announced from one node; so services are grouped by shared addresses (the connected
components of the service--address graph).  A group's *key* is its lowest address (string
order); groups never share an address, so keys are unique.  Services without addresses
belong to no group: there is nothing to announce.

:func:`group` computes groups from scratch.  :class:`Grouping` keeps them up to date as
services change: a change regroups only the components the changed services were or are
now part of.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import NamedTuple

from ironlb.service import Assignment


class Group(NamedTuple):
    key: str  # the lowest address
    ips: tuple[str, ...]  # sorted
    services: tuple[str, ...]  # "ns/name", sorted


def group(assignments: Mapping[str, Assignment], keys: Iterable[str] | None = None) -> list[Group]:
    """Groups of ``keys`` (default: every service), sorted by key.

    ``keys`` must be closed under sharing: every service sharing an address with one of them
    is among them.
    """
    chosen = [(k, assignments[k].addresses) for k in (assignments if keys is None else keys)]
    chosen = [(k, addrs) for k, addrs in chosen if addrs]
    count = sum(len(addrs) for _, addrs in chosen)
    seen = {ip for _, addrs in chosen for ip in addrs}
    if len(seen) == count:  # the common case: no address is shared, every service is a group
        plain = [
            Group(addrs[0], addrs, (k,)) if len(addrs) == 1 else Group(min(addrs), tuple(sorted(addrs)), (k,))
            for k, addrs in chosen
        ]
        plain.sort(key=lambda g: g.key)
        return plain
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for k, addrs in chosen:
        for ip in addrs:
            parent[find("ip:" + ip)] = find("svc:" + k)
    members: dict[str, tuple[set[str], list[str]]] = {}
    for k, addrs in chosen:
        ips, services = members.setdefault(find("svc:" + k), (set(), []))
        ips.update(addrs)
        services.append(k)
    out = [Group(min(ips), tuple(sorted(ips)), tuple(sorted(svcs))) for ips, svcs in members.values()]
    out.sort(key=lambda g: g.key)
    return out


class Grouping:
    """The groups of a changing set of services (incremental :func:`group`)."""

    def __init__(self) -> None:
        self.groups: dict[str, Group] = {}  # key -> group
        self.group_of: dict[str, str] = {}  # service -> group key
        self._addresses: dict[str, tuple[str, ...]] = {}  # service -> its addresses
        self._holders: dict[str, set[str]] = {}  # address -> services holding it

    def rebuild(self, assignments: Mapping[str, Assignment]) -> list[Group]:
        """Forget everything and group ``assignments``; returns the groups, sorted by key."""
        for index in (self.groups, self.group_of, self._addresses, self._holders):
            index.clear()
        for key, a in assignments.items():
            self._hold(key, a.addresses)
        groups = group(assignments)
        self._add(groups)
        return groups

    def update(
        self, assignments: Mapping[str, Assignment], changed: Iterable[str]
    ) -> tuple[set[str], set[str]]:
        """Regroup after ``changed`` services were added, removed or re-addressed.

        Returns (keys of groups that no longer exist as they were, keys of the new groups);
        a key can be in both when a group was rebuilt with the same lowest address.
        """
        seeds: set[str] = set()
        for key in changed:
            seeds.add(key)
            old = self.group_of.get(key)
            if old is not None:
                seeds.update(self.groups[old].services)
            for ip in self._addresses.pop(key, ()):
                holders = self._holders[ip]
                holders.discard(key)
                if not holders:
                    del self._holders[ip]
            a = assignments.get(key)
            if a is not None:
                self._hold(key, a.addresses)
        # Every component of the new graph a seed belongs to.  Old groups touched by it lie
        # inside it: a group without a changed service keeps all its edges.
        closure: set[str] = set()
        stack = list(seeds)
        while stack:
            key = stack.pop()
            if key in closure:
                continue
            closure.add(key)
            for ip in self._addresses.get(key, ()):
                stack.extend(self._holders[ip])
        removed = {g for key in closure if (g := self.group_of.pop(key, None)) is not None}
        for g in removed:
            del self.groups[g]
        fresh = group(assignments, (k for k in closure if k in self._addresses))
        self._add(fresh)
        return removed, {g.key for g in fresh}

    def _hold(self, key: str, addresses: tuple[str, ...]) -> None:
        if not addresses:
            return
        self._addresses[key] = addresses
        for ip in addresses:
            self._holders.setdefault(ip, set()).add(key)

    def _add(self, groups: Iterable[Group]) -> None:
        for g in groups:
            self.groups[g.key] = g
            for key in g.services:
                self.group_of[key] = g.key
