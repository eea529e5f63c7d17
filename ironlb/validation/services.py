"""Rules about Services: requested pools and addresses, sharing, quotas, untenanted namespaces."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import netaddr

from ironlb.checked import Config
from ironlb.errors import Issue
from ironlb.ipam import PoolIndex, can_share, never_handed_out, no_tenant_refusal, pool_refusal
from ironlb.model import ANN_IPS, ANN_POOL


def service_requests(config: Config) -> Iterable[Issue]:
    """Requested pools and addresses must be ones the service may use; pinned addresses must fit."""
    index = PoolIndex(config.pools)
    pinned: dict[str, list[tuple[str, str]]] = defaultdict(list)  # ip -> [(service, field)]
    for svc in sorted(config.services, key=lambda s: s.key):
        if svc.foreign:
            continue
        if svc.pool is not None:
            info = config.pools.get(svc.pool)
            field = f"metadata.annotations[{ANN_POOL}]"
            if info is None:
                known = ", ".join(sorted(config.pools)) or "none defined"
                yield Issue(
                    "Service",
                    svc.key,
                    field,
                    svc.pool,
                    f'no IPPool named "{svc.pool}" (known pools: {known})',
                )
            elif (refused := pool_refusal(config, svc, info)) is not None:
                yield Issue("Service", svc.key, field, svc.pool, f"may not use this pool: {refused}")
        for ip in svc.requested_ips:
            field = f"metadata.annotations[{ANN_IPS}]"
            addr = netaddr.IPAddress(ip)
            holder = index.pool_at(addr.version, int(addr))
            if holder is None:
                yield Issue(
                    "Service",
                    svc.key,
                    field,
                    ip,
                    "is in no IPPool; request an address inside a pool this service may use",
                )
                continue
            refusal = pool_refusal(config, svc, config.pools[holder])
            if refusal is not None:
                yield Issue(
                    "Service",
                    svc.key,
                    field,
                    ip,
                    f'is in IPPool "{holder}", which this service may not use: {refusal}',
                )
            elif (reserved := never_handed_out(config.pools[holder], addr.version, int(addr))) is not None:
                yield Issue("Service", svc.key, field, ip, f"{reserved}; request another address")
            elif svc.pool is not None and holder != svc.pool:
                yield Issue(
                    "Service",
                    svc.key,
                    field,
                    ip,
                    f'is in IPPool "{holder}", not in the requested pool "{svc.pool}"',
                )
            pinned[ip].append((svc.key, field))
    by_key = {s.key: s for s in config.services}
    for ip, holders in sorted(pinned.items()):
        first = by_key[holders[0][0]]
        for key, field in holders[1:]:
            why = can_share(first, by_key[key])
            if why is not None:
                yield Issue(
                    "Service",
                    key,
                    field,
                    ip,
                    f'is also requested by Service "{first.key}" and the two cannot share it: {why}',
                )
    yield from _pinned_quota(config, pinned)


def _pinned_quota(config: Config, pinned: dict[str, list[tuple[str, str]]]) -> Iterable[Issue]:
    need: dict[str, set[str]] = defaultdict(set)
    for ip, holders in pinned.items():
        for key, _ in holders:
            tenant = config.tenant_of_namespace(key.partition("/")[0])
            if tenant is not None:
                need[tenant].add(ip)
    for tname, ips in sorted(need.items()):
        quota = config.tenants[tname].spec.maxAddresses
        if quota is not None and len(ips) > quota:
            yield Issue(
                "Tenant",
                tname,
                "maxAddresses",
                quota,
                f"is below the {len(ips)} addresses its services "
                f"pin with {ANN_IPS}; raise the quota to at least {len(ips)} or unpin addresses",
            )


def untenanted_services(config: Config) -> Iterable[Issue]:
    """Warn about a Service that will get no address because its namespace has no Tenant (ADR 0004)."""
    for svc in sorted(config.services, key=lambda s: s.key):
        if svc.foreign or svc.pool or svc.requested_ips:
            continue  # a named pool or a pinned address is checked (as an error) by service_requests
        refusal = no_tenant_refusal(config, svc.namespace)
        if refusal is not None:
            yield Issue(
                "Service",
                svc.key,
                "metadata.namespace",
                svc.namespace,
                f"gets no address (NoTenant): {refusal}",
                warning=True,
            )
