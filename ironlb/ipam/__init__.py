"""IPAM: pure, deterministic address allocation, and the check that re-reads what was allocated.

No I/O and no clock: the controller, ``ironlb plan`` and every agent compute the same
answer from the same Config.  Modules:

- ``rules``     -- who may use which pool (tenancy, untenanted namespaces,
  serviceAllocation) and who may share an address; one policy for every path
- ``space``     -- address -> pool, and which of a pool's addresses are handed out;
  integer arithmetic, never enumeration, so IPv6 pools of any size work
- ``allocator`` -- :class:`Allocator`, :func:`allocate`, :func:`allocate_all`
- ``holdings``  -- who holds which address, with the counts usage and quotas read
- ``trust``     -- :class:`TrustCheck`: which recorded addresses the config allows

The public names are importable from ``ironlb.ipam``.
"""

from ironlb.ipam.allocator import STATUS_COUNT_MAX, Allocator, PoolUsage, allocate, allocate_all
from ironlb.ipam.rules import Refusal, can_share, no_tenant_refusal, pool_refusal
from ironlb.ipam.space import PoolIndex, never_handed_out
from ironlb.ipam.trust import Accepted, Rejected, TrustCheck, Verdict

__all__ = [
    "STATUS_COUNT_MAX",
    "Accepted",
    "Allocator",
    "PoolIndex",
    "PoolUsage",
    "Refusal",
    "Rejected",
    "TrustCheck",
    "Verdict",
    "allocate",
    "allocate_all",
    "can_share",
    "never_handed_out",
    "no_tenant_refusal",
    "pool_refusal",
]
