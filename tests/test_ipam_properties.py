"""Property tests: random allocate / release / pool-edit / restart sequences keep the IPAM invariants.

Invariants checked after every step:
- no address is held by two services unless they may legally share it;
- every address lies inside a pool the holding service may use (tenant isolation, and
  namespaces no Tenant lists only in pools with allowUntenanted);
- no IPv6 subnet-router anycast address is ever handed out, pinned or not;
- no tenant holds more distinct addresses than its quota;
- rebuilding an Allocator from its assignments reproduces them exactly, and the rebuilt
  allocator then answers the next request exactly as the original does.
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from ironlb import ipam
from ironlb.config import Config, parse
from ironlb.errors import AllocationError
from ironlb.service import Port, ServiceRequest
from lab.manifests import resource, tenant

POOLS: dict[str, dict[str, Any]] = {
    "p0": {"addresses": ["10.0.0.0/29"], "allowUntenanted": True},
    "p1": {"addresses": ["10.0.1.0/30"], "tenant": "t"},
    "p2": {"addresses": ["10.0.2.0/31", "fd00::/126"], "allowUntenanted": True},
    "p3": {
        "addresses": ["10.0.3.0/30"],
        "serviceAllocation": {"namespaces": ["ns1"], "priority": 1},
        "allowUntenanted": True,
    },
    "p4": {"addresses": ["10.0.4.0/30", "fd00:4::/127"]},  # no allowUntenanted: nobody may use it
}
NAMESPACES = ("ns0", "ns1", "tn")
REQUESTABLE = ("10.0.0.3", "10.0.1.1", "10.0.2.1", "fd00::2", "fd00::", "10.0.3.2", "10.0.4.1", "10.0.9.9")


def build(disabled: frozenset[str], removed: frozenset[str]) -> Config:
    docs = [tenant("t", ["tn"], quota=2)]
    docs += [
        resource("IPPool", n, spec, disabled=n in disabled) for n, spec in POOLS.items() if n not in removed
    ]
    return parse(docs)


requests = st.builds(
    ServiceRequest,
    namespace=st.sampled_from(NAMESPACES),
    name=st.sampled_from(("a", "b", "c", "d")),
    ports=st.sampled_from(((Port(80),), (Port(81),), (Port(80), Port(53, "UDP")))),
    requested_ips=st.one_of(st.just(()), st.tuples(st.sampled_from(REQUESTABLE))),
    pool=st.one_of(st.none(), st.sampled_from(tuple(POOLS))),
    sharing_key=st.sampled_from((None, "k")),
    traffic_policy=st.sampled_from(("Cluster", "Local")),
    family_policy=st.sampled_from(("SingleStack", "PreferDualStack", "RequireDualStack")),
    families=st.sampled_from(((4,), (6,), (4, 6), (6, 4))),
)


class IPAMMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.disabled: frozenset[str] = frozenset()
        self.removed: frozenset[str] = frozenset()
        self.config = build(self.disabled, self.removed)
        self.alloc = ipam.Allocator(self.config)
        self.live: dict[str, ServiceRequest] = {}
        self.satisfied: set[str] = set()  # services whose assignment answers their current request

    @rule(request=requests)
    def allocate(self, request: ServiceRequest) -> None:
        try:
            got = self.alloc.allocate(request)
        except AllocationError as exc:
            assert exc.reason in {
                "PoolExhausted",
                "QuotaExceeded",
                "Forbidden",
                "NoTenant",
                "NoPool",
                "Conflict",
                "Invalid",
            }
            assert exc.message
            self.satisfied.discard(request.key)
        else:
            self.satisfied.add(request.key)
            assert self.alloc.allocate(request) == got, "allocation is idempotent"
            if request.requested_ips:
                assert set(got.addresses) == set(request.requested_ips)
        self.live[request.key] = request

    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        if self.live:
            key = data.draw(st.sampled_from(sorted(self.live)))
            self.alloc.release(key)
            del self.live[key]
            self.satisfied.discard(key)

    @rule(
        pool=st.sampled_from(tuple(POOLS)), action=st.sampled_from(("disable", "enable", "remove", "restore"))
    )
    def edit_pool(self, pool: str, action: str) -> None:
        if action == "disable":
            self.disabled |= {pool}
        elif action == "enable":
            self.disabled -= {pool}
        elif action == "remove":
            self.removed |= {pool}
        else:
            self.removed -= {pool}
        self.config = build(self.disabled, self.removed)
        before = self.alloc.assignments
        self.alloc = ipam.Allocator(self.config, before.values())
        for key in sorted(self.live):  # the controller re-evaluates every service after a config change
            old = before.get(key)
            try:
                new = self.alloc.allocate(self.live[key])
            except AllocationError:
                self.satisfied.discard(key)
                continue
            was_satisfied = key in self.satisfied
            self.satisfied.add(key)
            if old is not None and was_satisfied and action in ("enable", "restore"):
                # PreferDualStack may gain the missing family, but nothing held is moved
                assert set(old.addresses) <= set(new.addresses), "adding or enabling a pool moves nothing"

    @rule(request=requests)
    def restart(self, request: ServiceRequest) -> None:
        rebuilt = ipam.Allocator(self.config, self.alloc.assignments.values())
        assert rebuilt.assignments == self.alloc.assignments
        assert rebuilt.usage() == self.alloc.usage()
        assert rebuilt.tenant_usage() == self.alloc.tenant_usage()
        if request.key in self.live or request.key in self.alloc.assignments:
            return  # a fresh allocator has not seen the old request; compare new services only
        outcomes: list[object] = []
        for a in (self.alloc, rebuilt):
            try:
                outcomes.append(a.allocate(request))
            except AllocationError as exc:
                outcomes.append((exc.reason, exc.message))
        assert outcomes[0] == outcomes[1], "a rebuilt allocator decides exactly like the original"
        self.live[request.key] = request
        if request.key in self.alloc.assignments:
            self.satisfied.add(request.key)

    @invariant()
    def addresses_are_shared_only_legally(self) -> None:
        for a, b in combinations(self.alloc.assignments.values(), 2):
            if set(a.addresses) & set(b.addresses):
                assert ipam.can_share(a, b) is None, (a, b)

    @invariant()
    def addresses_lie_in_pools_the_service_may_use(self) -> None:
        for key, assignment in self.alloc.assignments.items():
            request = self.live[key]
            for held in assignment.ips:
                pool = self.alloc.pool_of(held.ip)
                assert pool is not None, f"{key} holds {held.ip} outside every pool"
                assert self.alloc.may_use(request, pool) is None, (key, held.ip, pool)

    @invariant()
    def no_subnet_router_anycast_is_handed_out(self) -> None:
        for assignment in self.alloc.assignments.values():
            for held in assignment.ips:
                assert held.ip not in ("fd00::", "fd00:4::"), (assignment.service, held.ip)

    @invariant()
    def no_tenant_exceeds_its_quota(self) -> None:
        for name, used in self.alloc.tenant_usage().items():
            quota = self.config.tenants[name].spec.maxAddresses
            assert quota is None or used <= quota


IPAMMachine.TestCase.settings = settings(
    max_examples=200, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestIPAMInvariants = IPAMMachine.TestCase
