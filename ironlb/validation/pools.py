"""Rules about pools and tenants: overlaps, special addresses, ownership, untenanted namespaces."""

from __future__ import annotations

from collections.abc import Iterable

import netaddr

from ironlb import addresses
from ironlb.checked import Config
from ironlb.errors import Issue


def overlapping_pools(config: Config) -> Iterable[Issue]:
    """No address may belong to two pools (or twice to one pool)."""
    blocks = sorted(
        (int(r.first), int(r.last), r.version, name, i)
        for name, info in config.pools.items()
        for i, r in enumerate(info.ranges)
    )
    active: dict[int, list[tuple[int, int, int, str, int]]] = {4: [], 6: []}
    for block in blocks:
        first, last, family, name, i = block
        live = [b for b in active[family] if b[1] >= first]
        for other in live:
            o_name, o_i = other[3], other[4]
            text = config.pools[name].pool.spec.addresses[i]
            o_text = config.pools[o_name].pool.spec.addresses[o_i]
            shared = netaddr.IPRange(
                netaddr.IPAddress(first, family), netaddr.IPAddress(min(last, other[1]), family)
            )
            where = "another entry of the same pool" if o_name == name else f'IPPool "{o_name}"'
            yield Issue(
                "IPPool",
                name,
                f"addresses[{i}]",
                text,
                f'overlaps {where} (addresses[{o_i}] "{o_text}") in {_range_text(shared)}; '
                "pools may not overlap",
            )
        live.append(block)
        active[family] = live


def _range_text(r: netaddr.IPRange) -> str:
    cidrs = r.cidrs()
    return str(cidrs[0]) if len(cidrs) == 1 else f"{r[0]}-{r[-1]}"


def tenant_references(config: Config) -> Iterable[Issue]:
    """pool.tenant and tenant.pools name real objects and agree; one owner per pool/namespace."""
    known = ", ".join(sorted(config.tenants)) or "none defined"
    for name, info in sorted(config.pools.items()):
        t = info.pool.spec.tenant
        if t is not None and t not in config.tenants:
            yield Issue("IPPool", name, "tenant", t, f'no Tenant named "{t}" (known tenants: {known})')
    owner: dict[str, str] = {}
    ns_owner: dict[str, str] = {}
    for tname, tenant in sorted(config.tenants.items()):
        for i, pname in enumerate(tenant.spec.pools):
            owned = config.pools.get(pname)
            if owned is None:
                yield Issue("Tenant", tname, f"pools[{i}]", pname, f'no IPPool named "{pname}"')
                continue
            if pname in owner:
                yield Issue(
                    "Tenant",
                    tname,
                    f"pools[{i}]",
                    pname,
                    f'IPPool "{pname}" is already owned by Tenant "{owner[pname]}"; a pool has one tenant',
                )
                continue
            owner[pname] = tname
            declared = owned.pool.spec.tenant
            if declared is not None and declared != tname:
                yield Issue(
                    "Tenant",
                    tname,
                    f"pools[{i}]",
                    pname,
                    f'IPPool "{pname}" says its tenant is "{declared}"; make spec.tenant and '
                    "the Tenant's pools agree",
                )
        for i, ns in enumerate(tenant.spec.namespaces):
            if ns in ns_owner:
                yield Issue(
                    "Tenant",
                    tname,
                    f"namespaces[{i}]",
                    ns,
                    f'namespace is already owned by Tenant "{ns_owner[ns]}"; a namespace has one tenant',
                )
            else:
                ns_owner[ns] = tname
    for name, info in sorted(config.pools.items()):
        if info.tenant is None:
            continue
        for i, ns in enumerate(info.pool.spec.serviceAllocation.namespaces):
            if ns_owner.get(ns) != info.tenant:
                yield Issue(
                    "IPPool",
                    name,
                    f"serviceAllocation.namespaces[{i}]",
                    ns,
                    f'namespace is not owned by the pool\'s tenant "{info.tenant}", so no service '
                    "there can use this pool",
                    warning=True,
                )


def special_purpose(config: Config) -> Iterable[Issue]:
    """Warn about pool entries in documentation, benchmarking or 6to4 ranges (ADR 0003).

    Entries that cannot work at all (loopback, link-local, multicast ...) are refused
    earlier, by the pool's own schema (``ironlb.fields``).
    """
    for name, info in sorted(config.pools.items()):
        for i, (text, block) in enumerate(zip(info.pool.spec.addresses, info.ranges, strict=True)):
            warning = addresses.block_warning(block)
            if warning is not None:
                yield Issue("IPPool", name, f"addresses[{i}]", text, warning, warning=True)


def network_broadcast(config: Config) -> Iterable[Issue]:
    """Warn when an IPv4 CIDR entry can hand out its network or broadcast address."""
    for name, info in sorted(config.pools.items()):
        avoid = info.pool.spec.avoidBuggyIPs
        for i, (text, block) in enumerate(zip(info.pool.spec.addresses, info.ranges, strict=True)):
            prefix = addresses.cidr_prefix(text)
            if block.version != 4 or prefix is None or prefix > 30:
                continue
            ends = (("network", block.first), ("broadcast", block.last))
            exposed = [(what, v) for what, v in ends if not (avoid and addresses.is_buggy(v))]
            if not exposed:
                continue
            listed = " and ".join(f"{netaddr.IPAddress(v, 4)} ({what})" for what, v in exposed)
            fix = (
                "set avoidBuggyIPs: true, or list the range between them instead"
                if prefix <= 24 and not avoid
                else "list the range between them instead of the CIDR"
            )
            yield Issue(
                "IPPool",
                name,
                f"addresses[{i}]",
                text,
                f"can hand out {listed} of {text}, which some hosts and routers mishandle; {fix}",
                warning=True,
            )


def untenanted_pools(config: Config) -> Iterable[Issue]:
    """allowUntenanted only on pools without a tenant; warn about pools no Service can use (ADR 0004)."""
    for name, info in sorted(config.pools.items()):
        spec = info.pool.spec
        if spec.allowUntenanted and info.tenant is not None:
            yield Issue(
                "IPPool",
                name,
                "allowUntenanted",
                "true",
                f'is set on a pool of tenant "{info.tenant}"; a tenant\'s pool serves only its own '
                "namespaces, so only a pool without a tenant can admit untenanted namespaces",
            )
        elif config.tenants and info.tenant is None and not spec.allowUntenanted and not spec.disabled:
            yield Issue(
                "IPPool",
                name,
                "allowUntenanted",
                None,
                "is false, so no Service can use this pool: Tenants exist, a tenant uses only its own "
                "pools, and namespaces no Tenant lists need allowUntenanted: true; set it, or give "
                "the pool a tenant",
                warning=True,
            )
