"""Cross-object rules: the checks that need more than one object at a time.

``check(config)`` returns a list of :class:`~ironlb.errors.Issue` (errors and warnings);
``ironlb.config.parse`` calls it after every object has passed its own schema, and
raises one ConfigError holding every error.  Each rule is a small function over the
Config; the rules are independent, so one bad object never hides another's problem.

Errors: overlapping pools, unknown references (advertisement -> pool/peer/community,
pool <-> tenant), a pool or namespace claimed by two tenants, router-ID clashes,
requested addresses or pools a service may not use, pinned addresses two services
cannot share, tenant quotas below what pinned addresses need.
Warnings (``Issue(warning=True)``): reserved ASNs, selectors that match nothing,
pool namespaces outside the owning tenant.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import netaddr

from ironlb.errors import Issue
from ironlb.ipam import can_share, pool_refusal
from ironlb.model import ANN_IPS, ANN_POOL, BGPAdvertisement, L2Advertisement

if TYPE_CHECKING:
    from ironlb.config import Config

#: ASNs that are reserved or documentation-only (RFC 7607, 6793, 5398, 7300, 4893).
RESERVED_ASNS: tuple[tuple[int, int, str], ...] = (
    (0, 0, "reserved (RFC 7607)"),
    (23456, 23456, "AS_TRANS (RFC 6793)"),
    (64496, 64511, "reserved for documentation (RFC 5398)"),
    (65535, 65535, "reserved (RFC 7300)"),
    (65536, 65551, "reserved for documentation (RFC 5398)"),
    (65552, 131071, "reserved (IANA)"),
    (4294967295, 4294967295, "reserved (RFC 7300)"),
)


def check(config: Config) -> list[Issue]:
    """Every cross-object problem in ``config``, errors and warnings alike."""
    issues: list[Issue] = []
    for rule in RULES:
        issues.extend(rule(config))
    return issues


# --- pools and tenants -------------------------------------------------------------------


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


# --- BGP ---------------------------------------------------------------------------------


def reserved_asns(config: Config) -> Iterable[Issue]:
    for name, peer in sorted(config.peers.items()):
        for field in ("myASN", "peerASN"):
            asn = getattr(peer.spec, field)
            for low, high, why in RESERVED_ASNS:
                if low <= asn <= high:
                    yield Issue(
                        "BGPPeer",
                        name,
                        field,
                        asn,
                        f"is {why}; use a private ASN (64512-65534 or 4200000000-4294967294) or one you own",
                        warning=True,
                    )


def router_ids(config: Config) -> Iterable[Issue]:
    """A router ID must not be a peer's address, nor be shared by peers selecting other nodes."""
    peer_addresses = {p.spec.peerAddress: n for n, p in config.peers.items()}
    by_id: dict[str, list[str]] = defaultdict(list)
    for name, peer in sorted(config.peers.items()):
        rid = peer.spec.routerID
        if rid is None:
            continue
        if rid in peer_addresses:
            yield Issue(
                "BGPPeer",
                name,
                "routerID",
                rid,
                f'equals the peerAddress of BGPPeer "{peer_addresses[rid]}"; the router would see '
                "its own identifier and refuse the session",
            )
        by_id[rid].append(name)
    for rid, names in by_id.items():
        first = config.peers[names[0]]
        for other in names[1:]:
            peer = config.peers[other]
            if peer.spec.nodeSelector != first.spec.nodeSelector or peer.spec.myASN != first.spec.myASN:
                yield Issue(
                    "BGPPeer",
                    other,
                    "routerID",
                    rid,
                    f'is also the routerID of BGPPeer "{names[0]}" for other nodes or another myASN; '
                    "each BGP speaker needs its own router ID (leave routerID unset to use the node's)",
                )


def advertisement_references(config: Config) -> Iterable[Issue]:
    """Advertisements name existing pools, peers and community aliases; selectors match something."""
    adverts: list[tuple[str, str, L2Advertisement | BGPAdvertisement]] = [
        *(("L2Advertisement", n, a) for n, a in sorted(config.l2_advertisements.items())),
        *(("BGPAdvertisement", n, a) for n, a in sorted(config.bgp_advertisements.items())),
    ]
    pools = ", ".join(sorted(config.pools)) or "none defined"
    for kind, name, adv in adverts:
        for i, pname in enumerate(adv.spec.ipPools):
            if pname not in config.pools:
                yield Issue(
                    kind, name, f"ipPools[{i}]", pname, f'no IPPool named "{pname}" (known pools: {pools})'
                )
        sel = adv.spec.ipPoolSelector
        if sel is not None and not any(
            sel.matches(dict(p.pool.metadata.labels)) for p in config.pools.values()
        ):
            yield Issue(
                kind,
                name,
                "ipPoolSelector",
                None,
                "matches no IPPool's labels, so it announces nothing",
                warning=True,
            )
    for name, adv in sorted(config.bgp_advertisements.items()):
        peers = ", ".join(sorted(config.peers)) or "none defined"
        for i, pname in enumerate(adv.spec.peers):
            if pname not in config.peers:
                yield Issue(
                    "BGPAdvertisement",
                    name,
                    f"peers[{i}]",
                    pname,
                    f'no BGPPeer named "{pname}" (known peers: {peers})',
                )
        for i, community in enumerate(adv.spec.communities):
            if (
                community[:1].isalpha()
                and not community.startswith("large:")
                and community not in config.communities
            ):
                aliases = ", ".join(sorted(config.communities)) or "none defined"
                yield Issue(
                    "BGPAdvertisement",
                    name,
                    f"communities[{i}]",
                    community,
                    f"is not a literal community and no Community defines this alias (aliases: {aliases})",
                )


# --- services ----------------------------------------------------------------------------


def service_requests(config: Config) -> Iterable[Issue]:
    """Requested pools and addresses must be ones the service may use; pinned addresses must fit."""
    spans = sorted(
        (int(r.first), int(r.last), r.version, n) for n, i in config.pools.items() for r in i.ranges
    )
    pinned: dict[str, list[tuple[str, str]]] = defaultdict(list)  # ip -> [(service, field)]
    for svc in sorted(config.services, key=lambda s: s.key):
        if svc.load_balancer_class not in (None, "ironlb.io/ironlb"):
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
            elif (why := pool_refusal(config, svc, info)) is not None:
                yield Issue("Service", svc.key, field, svc.pool, f"may not use this pool: {why}")
        for ip in svc.requested_ips:
            field = f"metadata.annotations[{ANN_IPS}]"
            addr = netaddr.IPAddress(ip)
            holder = next((n for f, la, v, n in spans if v == addr.version and f <= int(addr) <= la), None)
            if holder is None:
                yield Issue(
                    "Service",
                    svc.key,
                    field,
                    ip,
                    "is in no IPPool; request an address inside a pool this service may use",
                )
                continue
            why = pool_refusal(config, svc, config.pools[holder])
            if why is not None:
                yield Issue(
                    "Service",
                    svc.key,
                    field,
                    ip,
                    f'is in IPPool "{holder}", which this service may not use: {why}',
                )
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


RULES: tuple[Callable[[Config], Iterable[Issue]], ...] = (
    overlapping_pools,
    tenant_references,
    reserved_asns,
    router_ids,
    advertisement_references,
    service_requests,
)
