"""The checked configuration: :class:`Config` and :class:`PoolInfo`, what ``parse`` returns.

Everything after ``ironlb.config.parse`` reads these and never re-checks them.  They are
immutable and indexed by name; derived facts that many callers need on hot paths (a
pool's parsed ranges and owner tenant, which tenant owns a namespace, the addresses a
pool never hands out) are computed once, here, and cached on the object.

This module sits below ``ironlb.validation`` and ``ironlb.ipam`` (both read a Config)
and above ``ironlb.model``; it imports neither of the first two, so the layers form no
circle: ``config -> validation -> ipam -> checked``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

import netaddr

from ironlb import addresses
from ironlb.errors import Issue
from ironlb.model import (
    BFDProfile,
    BGPAdvertisement,
    BGPPeer,
    IPPool,
    L2Advertisement,
    Tenant,
    selects_pool,
)
from ironlb.service import ServiceRequest


@dataclass(frozen=True)
class PoolInfo:
    """A pool with its derived facts."""

    pool: IPPool
    ranges: tuple[netaddr.IPRange, ...]
    tenant: str | None  # effective owner: spec.tenant, or the Tenant that lists it

    @property
    def name(self) -> str:
        return self.pool.name

    @property
    def allow_untenanted(self) -> bool:
        """Whether namespaces no Tenant lists may use this pool while Tenants exist."""
        return self.tenant is None and self.pool.spec.allowUntenanted

    def contains(self, ip: str | netaddr.IPAddress) -> bool:
        addr = netaddr.IPAddress(ip)
        return any(addr in r for r in self.ranges)

    def size(self, family: int | None = None) -> int:
        """Addresses in the pool's ranges (any magnitude: a /64 is 2**64), allocatable or not."""
        return sum(
            int(r.last) - int(r.first) + 1 for r in self.ranges if family is None or r.version == family
        )

    @cached_property
    def network_firsts(self) -> frozenset[int]:
        """First addresses of the IPv6 CIDR entries (/0-/126): their subnet-router anycast."""
        out = set()
        for text, block in zip(self.pool.spec.addresses, self.ranges, strict=True):
            prefix = addresses.cidr_prefix(text)
            if block.version == 6 and prefix is not None and prefix <= 126:
                out.add(int(block.first))
        return frozenset(out)


@dataclass(frozen=True)
class Config:
    """The whole checked configuration. Maps are keyed by object name."""

    pools: Mapping[str, PoolInfo] = field(default_factory=dict)
    peers: Mapping[str, BGPPeer] = field(default_factory=dict)
    l2_advertisements: Mapping[str, L2Advertisement] = field(default_factory=dict)
    bgp_advertisements: Mapping[str, BGPAdvertisement] = field(default_factory=dict)
    communities: Mapping[str, str] = field(default_factory=dict)  # alias -> literal
    tenants: Mapping[str, Tenant] = field(default_factory=dict)
    bfd_profiles: Mapping[str, BFDProfile] = field(default_factory=dict)
    namespaces: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # ns -> labels
    services: tuple[ServiceRequest, ...] = ()
    warnings: tuple[Issue, ...] = ()

    @cached_property
    def namespace_tenants(self) -> Mapping[str, str]:
        """namespace -> the tenant that lists it (the first by name, if two do: parse refuses that)."""
        out: dict[str, str] = {}
        for name, tenant in sorted(self.tenants.items()):
            for ns in tenant.spec.namespaces:
                out.setdefault(ns, name)
        return out

    def tenant_of_namespace(self, namespace: str) -> str | None:
        """The tenant that owns ``namespace``, or None for namespaces no Tenant lists."""
        return self.namespace_tenants.get(namespace)

    def selects_pool(self, adv: L2Advertisement | BGPAdvertisement, pool: str) -> bool:
        """Does ``adv`` announce the addresses of ``pool``? (:func:`ironlb.model.selects_pool`)"""
        info = self.pools.get(pool)
        return selects_pool(adv.spec, pool, info.pool.metadata.labels if info is not None else None)

    def selected_pools(self, adv: L2Advertisement | BGPAdvertisement) -> tuple[str, ...]:
        """The pools ``adv`` announces, by name."""
        return tuple(name for name in sorted(self.pools) if self.selects_pool(adv, name))

    def namespace_labels(self, namespace: str) -> Mapping[str, str]:
        labels = dict(self.namespaces.get(namespace, {}))
        labels.setdefault("kubernetes.io/metadata.name", namespace)
        return labels
