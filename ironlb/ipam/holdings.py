"""Holdings: who holds which address, with the counters usage, quotas and sharing read.

The :class:`~ironlb.ipam.Allocator` decides; this records the decision.  Every address is
kept as ``(family, int)`` and reference-counted per tenant and per sharing key, so an
address shared by several Services counts once against a quota and a pool's use, and
every update is O(addresses of one Service).  Releasing the last holder hands the
address back to its pool's :class:`~ironlb.ipam.space.Cursor`.
"""

from __future__ import annotations

from collections.abc import Mapping

import netaddr

from ironlb.checked import Config
from ironlb.ipam.space import Cursor, PoolIndex
from ironlb.service import Assignment


class Holdings:
    """Assignments by service, holders by address, and per-tenant / per-key / per-pool counts."""

    def __init__(self, config: Config, index: PoolIndex, cursors: Mapping[tuple[str, int], Cursor]) -> None:
        self._ns_tenant = config.namespace_tenants
        self._index = index
        self._cursors = cursors
        self.assignments: dict[str, Assignment] = {}
        self.held: dict[int, dict[int, set[str]]] = {4: {}, 6: {}}  # family -> int -> services
        self.tenant_ips: dict[str, dict[tuple[int, int], int]] = {}  # tenant -> address -> refs
        self.shared: dict[str, dict[tuple[int, int], int]] = {}  # sharing key -> address -> refs
        self.pool_used: dict[str, dict[int, int]] = {p: {4: 0, 6: 0} for p in config.pools}

    @staticmethod
    def _ref(
        table: dict[str, dict[tuple[int, int], int]], owner: str | None, addr: tuple[int, int], delta: int
    ) -> None:
        if owner is None:
            return
        refs = table.setdefault(owner, {})
        left = refs.get(addr, 0) + delta
        if left > 0:
            refs[addr] = left
        else:
            refs.pop(addr, None)

    def hold(self, assignment: Assignment) -> None:
        self.assignments[assignment.service] = assignment
        tenant = self._ns_tenant.get(assignment.service.partition("/")[0])
        for held in assignment.ips:
            addr = netaddr.IPAddress(held.ip)
            family, value = addr.version, int(addr)
            holders = self.held[family].setdefault(value, set())
            if not holders:
                pool = self._index.pool_at(family, value)
                if pool is not None:
                    self.pool_used[pool][family] += 1
            holders.add(assignment.service)
            self._ref(self.tenant_ips, tenant, (family, value), 1)
            self._ref(self.shared, assignment.sharing_key, (family, value), 1)

    def unhold(self, assignment: Assignment) -> None:
        tenant = self._ns_tenant.get(assignment.service.partition("/")[0])
        for held in assignment.ips:
            addr = netaddr.IPAddress(held.ip)
            family, value = addr.version, int(addr)
            holders = self.held[family].get(value)
            if holders is None:
                continue
            holders.discard(assignment.service)
            if not holders:
                del self.held[family][value]
                pool = self._index.pool_at(family, value)
                if pool is not None:
                    self.pool_used[pool][family] -= 1
                    cursor = self._cursors.get((pool, family))
                    if cursor is not None:
                        cursor.released(value)
            self._ref(self.tenant_ips, tenant, (family, value), -1)
            self._ref(self.shared, assignment.sharing_key, (family, value), -1)
