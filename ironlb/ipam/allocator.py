"""The allocator: pure, deterministic address allocation for LoadBalancer Services.

:class:`Allocator` holds the addresses every service has (``assignments``) and hands
out new ones.  It does no I/O and reads no clock, so the controller, ``ironlb plan`` and
standalone agents on every node compute the *same* answer from the same input.

Rules for one request, in order:

1. requested IPs (annotation / ``loadBalancerIP``): exactly those, or an error;
2. the requested pool (annotation): only that pool;
3. autoAssign pools whose selectors (namespaces, namespaceSelector, serviceSelector)
   match the service, by ``priority`` (lower first), then by name;
4. autoAssign pools with no selectors, by priority, then name.

Before any of that, :func:`~ironlb.ipam.rules.pool_refusal` decides whether a pool is
allowed at all (tenancy, untenanted namespaces, serviceAllocation); naming a pool or
requesting an address never bypasses it.  Quotas (``Tenant.spec.maxAddresses``) count
distinct addresses, so an address shared by several services counts once.

Within a pool the lowest free address is taken (:class:`~ironlb.ipam.space.Cursor`),
skipping what the pool never hands out; pool sizes are allocatable counts of any
magnitude, and nothing is enumerated, so a /48 allocates as fast as a /24.

Stability: the constructor keeps every existing assignment verbatim (even if its pool
was disabled, edited or removed), so a restart never moves an address; callers rebuild
only from assignments that passed :class:`~ironlb.ipam.trust.TrustCheck`.  An existing
assignment is re-checked only when its own service is allocated again: addresses that
still satisfy the request are kept; only those that no longer do (pool removed, tenant
changed, request changed) are replaced.  If the re-evaluation fails, the old
assignment stays in place and the error is raised.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import netaddr

from ironlb.checked import Config, PoolInfo
from ironlb.errors import AllocationError
from ironlb.ipam.holdings import Holdings
from ironlb.ipam.rules import Refusal, can_share, no_tenant_refusal, pool_refusal
from ironlb.ipam.space import Cursor, PoolIndex, Space, never_handed_out
from ironlb.service import AssignedIP, Assignment, ServiceRequest

#: Largest count written to an IPPool's status: 2**53 - 1, the largest integer JSON (and
#: the API server's integer check) carries exactly.  A /64 reports this, not 2**64 - 1.
STATUS_COUNT_MAX = 2**53 - 1


@dataclass(frozen=True)
class PoolUsage:
    """Addresses in use and allocatable size, per family (4, 6). Sizes are ints of any magnitude."""

    pool: str
    used: Mapping[int, int]
    size: Mapping[int, int]
    tenant: str | None

    def available(self, family: int) -> int:
        return max(0, self.size.get(family, 0) - self.used.get(family, 0))

    def status_counts(self) -> dict[str, int]:
        """``assignedIPv4``/``availableIPv4``/... for IPPool status, capped at :data:`STATUS_COUNT_MAX`."""
        out: dict[str, int] = {}
        for family in (4, 6):
            out[f"assignedIPv{family}"] = min(self.used.get(family, 0), STATUS_COUNT_MAX)
            out[f"availableIPv{family}"] = min(self.available(family), STATUS_COUNT_MAX)
        return out


def _event_reason(refusal: Refusal) -> str:
    """The AllocationError reason for a pool refusal (NoTenant stays; the rest is Forbidden)."""
    return "NoTenant" if refusal.reason == "NoTenant" else "Forbidden"


def _text(value: int, family: int) -> str:
    return str(netaddr.IPAddress(value, family))


class Allocator:
    """Assignments of every service plus the indexes that make allocation fast."""

    def __init__(self, config: Config, existing: Iterable[Assignment] = ()) -> None:
        self._config = config
        self._ns_tenant = config.namespace_tenants
        self._requests: dict[str, ServiceRequest] = {}
        self._cursors: dict[tuple[str, int], Cursor] = {}
        self._index = PoolIndex(config.pools)
        self._candidates: dict[tuple[str, tuple[tuple[str, str], ...]], tuple[PoolInfo, ...]] = {}
        for family in (4, 6):
            for name, info in config.pools.items():
                if any(r.version == family for r in info.ranges):
                    self._cursors[(name, family)] = Cursor(Space(info, family))
        self._h = Holdings(config, self._index, self._cursors)
        self._assignments = self._h.assignments
        self._held = self._h.held
        self._tenant_ips = self._h.tenant_ips
        self._shared = self._h.shared
        self._pool_used = self._h.pool_used
        for assignment in existing:
            self._hold(assignment)

    # --- read side -------------------------------------------------------------------

    @property
    def assignments(self) -> Mapping[str, Assignment]:
        """service key ("ns/name") -> its Assignment."""
        return dict(self._assignments)

    def usage(self) -> dict[str, PoolUsage]:
        """pool name -> addresses in use and allocatable size, per family (sizes of any magnitude)."""
        return {
            name: PoolUsage(
                pool=name,
                used=dict(self._pool_used[name]),
                size={f: self._capacity(name, f) for f in (4, 6)},
                tenant=info.tenant,
            )
            for name, info in sorted(self._config.pools.items())
        }

    def _capacity(self, pool: str, family: int) -> int:
        cursor = self._cursors.get((pool, family))
        return 0 if cursor is None else cursor.space.capacity()

    def tenant_usage(self) -> dict[str, int]:
        """tenant -> distinct addresses its services hold (a shared address counts once)."""
        return {t: len(self._tenant_ips.get(t, {})) for t in sorted(self._config.tenants)}

    def tenant_of(self, namespace: str) -> str | None:
        return self._ns_tenant.get(namespace)

    def pool_of(self, ip: str) -> str | None:
        """The pool whose ranges hold ``ip``, or None."""
        return self._index.pool_of(ip)

    def may_use(self, request: ServiceRequest, pool: str) -> str | None:
        """None when ``request`` may take addresses from ``pool``, else the reason sentence."""
        info = self._config.pools.get(pool)
        if info is None:
            return f'pool "{pool}" does not exist'
        refusal = pool_refusal(self._config, request, info, self.tenant_of(request.namespace))
        return None if refusal is None else refusal.message

    # --- state changes ---------------------------------------------------------------

    def release(self, service_key: str) -> None:
        """Forget the service's assignment; its addresses become free (unless shared)."""
        self._requests.pop(service_key, None)
        old = self._assignments.pop(service_key, None)
        if old is not None:
            self._unhold(old)

    def allocate(self, request: ServiceRequest) -> Assignment:
        """Give ``request`` its addresses (idempotent), or raise AllocationError."""
        key = request.key
        old = self._assignments.get(key)
        if old is not None and self._requests.get(key) == request:
            return old
        if old is not None:
            self._unhold(old)
            del self._assignments[key]
        try:
            new = self._choose(request, old)
        except AllocationError:
            if old is not None and self._still_allowed(request, old):
                self._hold(old)  # keep serving while the user fixes the request
            else:
                self._requests.pop(key, None)
            raise
        self._hold(new)
        self._requests[key] = request
        return new

    def _still_allowed(self, request: ServiceRequest, old: Assignment) -> bool:
        """Every old address is in a pool the service may still use (and not taken since)."""
        for held in old.ips:
            addr = netaddr.IPAddress(held.ip)
            pool = self._pool_at(addr.version, int(addr))
            if pool is None or self.may_use(request, pool) is not None:
                return False
            if never_handed_out(self._config.pools[pool], addr.version, int(addr)) is not None:
                return False
            if self._share_conflict(request, addr.version, int(addr)) is not None:
                return False
        return True

    # --- the decision ----------------------------------------------------------------

    def _fail(self, request: ServiceRequest, reason: str, message: str) -> AllocationError:
        return AllocationError(request.key, reason, message)

    def _choose(self, request: ServiceRequest, old: Assignment | None) -> Assignment:
        if request.foreign:
            raise self._fail(
                request, "Invalid", f'loadBalancerClass "{request.load_balancer_class}" is not IronLB\'s'
            )
        chosen = self._requested(request) if request.requested_ips else self._by_pools(request, old)
        self._check_quota(request, chosen)
        return Assignment.for_request(request, tuple(chosen))

    def _requested(self, request: ServiceRequest) -> list[AssignedIP]:
        families = [netaddr.IPAddress(ip).version for ip in request.requested_ips]
        if len(set(families)) != len(families):
            raise self._fail(
                request,
                "Invalid",
                "requests two addresses of one family; ask for at most one IPv4 and one IPv6 address",
            )
        if request.family_policy == "SingleStack" and len(families) > 1:
            raise self._fail(
                request,
                "Invalid",
                "is SingleStack but requests both an IPv4 and an IPv6 address; "
                "use ipFamilyPolicy PreferDualStack or RequireDualStack",
            )
        if request.family_policy == "RequireDualStack" and len(families) < 2:
            raise self._fail(
                request,
                "Invalid",
                "is RequireDualStack but requests only one address; request one IPv4 and one IPv6 address",
            )
        chosen = []
        for ip in request.requested_ips:
            addr = netaddr.IPAddress(ip)
            family, value = addr.version, int(addr)
            pool = self._pool_at(family, value)
            if pool is None:
                raise self._fail(request, "NoPool", f"requested address {ip} is in no IPPool")
            if request.pool is not None and pool != request.pool:
                raise self._fail(
                    request,
                    "Invalid",
                    f'requested address {ip} is in pool "{pool}", not in the requested pool "{request.pool}"',
                )
            refusal = pool_refusal(
                self._config, request, self._config.pools[pool], self.tenant_of(request.namespace)
            )
            if refusal is not None:
                raise self._fail(
                    request, _event_reason(refusal), f"may not use requested address {ip}: {refusal}"
                )
            reserved = never_handed_out(self._config.pools[pool], family, value)
            if reserved is not None:
                raise self._fail(request, "Invalid", f"requested address {ip} {reserved}")
            if self._config.pools[pool].pool.spec.disabled:
                raise self._fail(
                    request,
                    "NoPool",
                    f'requested address {ip} is in pool "{pool}", which is '
                    "disabled (it keeps existing allocations but makes no new ones)",
                )
            conflict = self._share_conflict(request, family, value)
            if conflict is not None:
                raise self._fail(request, "Conflict", f"requested address {ip} {conflict}")
            chosen.append(AssignedIP(str(addr), pool))
        return chosen

    def _share_conflict(self, request: ServiceRequest, family: int, value: int) -> str | None:
        for other in sorted(self._held[family].get(value, ())):
            why = can_share(request, self._assignments[other])
            if why is not None:
                return f'is held by "{other}" and cannot be shared: {why}'
        return None

    def _candidates_for(self, request: ServiceRequest) -> tuple[PoolInfo, ...]:
        """Usable autoAssign pools in rule order (selector pools first), cached per namespace+labels."""
        cache_key = (request.namespace, tuple(sorted(request.labels.items())))
        found = self._candidates.get(cache_key)
        if found is None:
            tenant = self.tenant_of(request.namespace)
            usable = [
                info
                for info in self._config.pools.values()
                if info.pool.spec.autoAssign
                and not info.pool.spec.disabled
                and pool_refusal(self._config, request, info, tenant) is None
            ]
            usable.sort(
                key=lambda i: (
                    not i.pool.spec.serviceAllocation.has_selectors,
                    i.pool.spec.serviceAllocation.priority,
                    i.name,
                )
            )
            found = self._candidates[cache_key] = tuple(usable)
        return found

    def _by_pools(self, request: ServiceRequest, old: Assignment | None) -> list[AssignedIP]:
        if request.pool is not None:
            info = self._config.pools.get(request.pool)
            if info is None:
                raise self._fail(request, "NoPool", f'requested pool "{request.pool}" does not exist')
            refusal = pool_refusal(self._config, request, info, self.tenant_of(request.namespace))
            if refusal is not None:
                raise self._fail(
                    request, _event_reason(refusal), f'may not use requested pool "{request.pool}": {refusal}'
                )
            pools: tuple[PoolInfo, ...] = (info,)
        else:
            pools = self._candidates_for(request)
            untenanted = no_tenant_refusal(self._config, request.namespace) if not pools else None
            if untenanted is not None:
                raise self._fail(request, "NoTenant", untenanted.message)
        wanted = request.wanted_families()
        chosen: list[AssignedIP] = []
        failures: list[AllocationError] = []
        for family in wanted:
            kept = self._keep(request, old, family)
            got = kept or self._pick(request, pools, family)
            if isinstance(got, AllocationError):
                failures.append(got)
            else:
                chosen.append(got)
        if request.family_policy == "RequireDualStack" and failures:
            raise failures[0]
        if not chosen:
            raise failures[0]
        return chosen

    def _keep(self, request: ServiceRequest, old: Assignment | None, family: int) -> AssignedIP | None:
        """The old address of ``family`` if it still satisfies the request (never reshuffle)."""
        if old is None:
            return None
        for held in old.ips:
            addr = netaddr.IPAddress(held.ip)
            if addr.version != family:
                continue
            pool = self._pool_at(family, int(addr))
            if pool is None or (request.pool is not None and pool != request.pool):
                return None
            if self.may_use(request, pool) is not None:
                return None
            if never_handed_out(self._config.pools[pool], family, int(addr)) is not None:
                return None  # held from before the rule (an IPv6 anycast address): replace it
            if self._share_conflict(request, family, int(addr)) is not None:
                return None
            return AssignedIP(held.ip, pool)
        return None

    def _pick(
        self, request: ServiceRequest, pools: tuple[PoolInfo, ...], family: int
    ) -> AssignedIP | AllocationError:
        name = f"IPv{family}"
        if not pools:
            return self._fail(
                request,
                "NoPool",
                f"no pool this service may use has {name} addresses "
                "(check pool tenant, namespaces, selectors and autoAssign)",
            )
        if len(pools) == 1 and pools[0].pool.spec.disabled:
            return self._fail(
                request,
                "NoPool",
                f'pool "{pools[0].name}" is disabled (it keeps existing allocations but makes no new ones)',
            )
        held = self._held[family]
        any_family = False
        if request.sharing_key is not None:  # reuse an address already held under this key
            shared = self._shared.get(request.sharing_key, {})
            usable = {p.name for p in pools}
            for fam, value in sorted(shared):
                if fam != family:
                    continue
                pool = self._pool_at(family, value)
                if pool is None or pool not in usable:
                    continue
                if self._share_conflict(request, family, value) is None:
                    return AssignedIP(_text(value, family), pool)
        for info in pools:
            cursor = self._cursors.get((info.name, family))
            if cursor is None:
                continue
            any_family = True
            free = cursor.peek(held)
            if free is not None:
                return AssignedIP(_text(free, family), info.name)
        if not any_family:
            which = f'pool "{pools[0].name}" has' if request.pool else "no pool this service may use has"
            return self._fail(request, "NoPool", f"{which} {name} addresses")
        names = ", ".join(p.name for p in pools)
        return self._fail(request, "PoolExhausted", f"no free {name} address in {names}")

    def _check_quota(self, request: ServiceRequest, chosen: list[AssignedIP]) -> None:
        tenant = self.tenant_of(request.namespace)
        if tenant is None:
            return
        quota = self._config.tenants[tenant].spec.maxAddresses
        if quota is None:
            return
        mine = self._tenant_ips.get(tenant, {})
        new = {(a.family, int(netaddr.IPAddress(a.ip))) for a in chosen} - set(mine)
        if len(mine) + len(new) > quota:
            raise self._fail(
                request,
                "QuotaExceeded",
                f'tenant "{tenant}" holds {len(mine)} addresses; '
                f"{len(new)} more would exceed its quota maxAddresses={quota}",
            )

    # --- indexes ---------------------------------------------------------------------

    def _pool_at(self, family: int, value: int) -> str | None:
        return self._index.pool_at(family, value)

    def _hold(self, assignment: Assignment) -> None:
        self._h.hold(assignment)

    def _unhold(self, assignment: Assignment) -> None:
        self._h.unhold(assignment)


def allocate(config: Config, existing: Iterable[Assignment], request: ServiceRequest) -> Assignment:
    """Functional form: the Assignment ``request`` gets given ``existing`` ones."""
    return Allocator(config, existing).allocate(request)


def allocate_all(
    config: Config,
    requests: Iterable[ServiceRequest] | None = None,
    existing: Iterable[Assignment] = (),
) -> tuple[dict[str, Assignment], dict[str, AllocationError]]:
    """Allocate every service deterministically: the same input gives the same output everywhere.

    ``requests`` (default ``config.services``) is the complete set of live services:
    existing assignments of services not in it are dropped.  Services that already have
    an assignment are handled first (kept when still valid), then the rest, each group
    sorted by key.  Returns (assignments, errors), both keyed by service.  A service
    whose re-evaluation failed but whose old addresses are still allowed keeps them and
    also appears in ``errors`` (so the user sees why the change did not apply).
    """
    reqs = {r.key: r for r in (config.services if requests is None else requests)}
    before = {a.service: a for a in existing if a.service in reqs}
    allocator = Allocator(config, before.values())
    errors: dict[str, AllocationError] = {}
    order = sorted(k for k in reqs if k in before) + sorted(k for k in reqs if k not in before)
    for key in order:
        try:
            allocator.allocate(reqs[key])
        except AllocationError as exc:
            errors[key] = exc
    return dict(allocator.assignments), errors
