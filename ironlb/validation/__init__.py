"""Cross-object rules: the checks that need more than one object at a time.

``check(config)`` returns a list of :class:`~ironlb.errors.Issue` (errors and warnings);
``ironlb.config.parse`` calls it after every object has passed its own schema, and
raises one ConfigError holding every error.  Each rule is a small function over the
Config; the rules are independent, so one bad object never hides another's problem.

- ``pools``    -- overlaps, special-purpose and network/broadcast addresses, tenants and
  untenanted namespaces
- ``bgp``      -- ASNs, router IDs, references from advertisements, aggregation lengths
- ``services`` -- what Services request: pools, pinned addresses, sharing, quotas

Errors: overlapping pools, unknown references (advertisement -> pool/peer/community,
pool <-> tenant), a pool or namespace claimed by two tenants, allowUntenanted on a
tenant's pool, router-ID clashes, aggregates reaching outside their pools, requested
addresses or pools a service may not use (or that are never handed out), pinned
addresses two services cannot share, tenant quotas below what pinned addresses need.
Warnings (``Issue(warning=True)``): documentation/benchmarking ranges in pools, CIDR
pools that can hand out an IPv4 network or broadcast address, pools no Service can use,
Services in namespaces no Tenant lists, reserved ASNs, selectors that match nothing,
pool namespaces outside the owning tenant.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ironlb.checked import Config
from ironlb.errors import Issue
from ironlb.validation.bgp import RESERVED_ASNS as RESERVED_ASNS
from ironlb.validation.bgp import (
    advertisement_references,
    aggregation_lengths,
    bfd_references,
    reserved_asns,
    router_ids,
)
from ironlb.validation.pools import (
    network_broadcast,
    overlapping_pools,
    special_purpose,
    tenant_references,
    untenanted_pools,
)
from ironlb.validation.services import service_requests, untenanted_services

RULES: tuple[Callable[[Config], Iterable[Issue]], ...] = (
    overlapping_pools,
    special_purpose,
    network_broadcast,
    tenant_references,
    untenanted_pools,
    reserved_asns,
    router_ids,
    advertisement_references,
    aggregation_lengths,
    bfd_references,
    bfd_references,
    service_requests,
    untenanted_services,
)


def check(config: Config) -> list[Issue]:
    """Every cross-object problem in ``config``, errors and warnings alike."""
    issues: list[Issue] = []
    for rule in RULES:
        issues.extend(rule(config))
    return issues
