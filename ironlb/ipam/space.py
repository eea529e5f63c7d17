"""Address space: which pool holds an address, and which of a pool's addresses can be handed out.

Everything here works on integers (netaddr's ``int(ip)``) and never enumerates a range,
so a /48 or a /64 costs what a /24 does: lookups are a bisect, sizes are arithmetic.

- :class:`PoolIndex`: address -> pool, per family (sorted spans + bisect).
- :class:`Space`: one pool's addresses of one family, minus those never handed out:
  IPv4 ``.0``/``.255`` when the pool sets ``avoidBuggyIPs``, and for IPv6 the
  subnet-router anycast addresses (:func:`ironlb.addresses.subnet_router_anycast`,
  ADR 0003).  :meth:`Space.capacity` counts what is left, of any magnitude.
- :class:`Cursor`: lowest-free search over a Space.  It keeps a cursor plus a heap of
  addresses released below it, so "lowest free" is O(log n) per allocation instead of a
  scan from the start, and the result equals a rebuilt allocator's (restart-safe).
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Mapping

import netaddr

from ironlb import addresses
from ironlb.checked import PoolInfo


def never_handed_out(info: PoolInfo, family: int, value: int) -> str | None:
    """Why ``value`` is never handed out, even when pinned (a phrase), or None."""
    if family == 6 and addresses.subnet_router_anycast(value, info.network_firsts):
        return (
            "is a subnet-router anycast address (RFC 4291), which routers answer; IronLB never hands it out"
        )
    return None


class PoolIndex:
    """Which pool holds an address: per family, sorted (first, last, pool) spans and a bisect."""

    __slots__ = ("_ends", "_names", "_starts")

    def __init__(self, pools: Mapping[str, PoolInfo]) -> None:
        self._starts: dict[int, list[int]] = {}
        self._ends: dict[int, list[int]] = {}
        self._names: dict[int, list[str]] = {}
        for family in (4, 6):
            spans = sorted(
                (int(r.first), int(r.last), name)
                for name, info in pools.items()
                for r in info.ranges
                if r.version == family
            )
            self._starts[family] = [s for s, _, _ in spans]
            self._ends[family] = [e for _, e, _ in spans]
            self._names[family] = [n for _, _, n in spans]

    def pool_at(self, family: int, value: int) -> str | None:
        """The pool whose ranges hold address ``value`` of ``family``, or None."""
        i = bisect.bisect_right(self._starts[family], value) - 1
        if i >= 0 and value <= self._ends[family][i]:
            return self._names[family][i]
        return None

    def pool_of(self, ip: str | netaddr.IPAddress) -> str | None:
        addr = netaddr.IPAddress(ip)
        return self.pool_at(addr.version, int(addr))


class Space:
    """One pool's addresses of one family, minus those it never hands out."""

    __slots__ = ("avoid_buggy", "ends", "family", "firsts", "starts")

    def __init__(self, info: PoolInfo, family: int) -> None:
        spans = sorted((int(r.first), int(r.last)) for r in info.ranges if r.version == family)
        self.starts = [s for s, _ in spans]
        self.ends = [e for _, e in spans]
        self.family = family
        self.avoid_buggy = info.pool.spec.avoidBuggyIPs and family == 4
        self.firsts = info.network_firsts if family == 6 else frozenset()

    def skipped(self, value: int) -> bool:
        """Never handed out by automatic allocation."""
        if self.family == 6:
            return addresses.subnet_router_anycast(value, self.firsts)
        return self.avoid_buggy and addresses.is_buggy(value)

    def capacity(self) -> int:
        """How many addresses automatic allocation can hand out (any magnitude, O(spans))."""
        total = 0
        for first, last in zip(self.starts, self.ends, strict=True):
            total += last - first + 1
            if self.family == 6:
                total -= addresses.anycast_count(first, last, self.firsts)
            elif self.avoid_buggy:
                total -= addresses.buggy_count(first, last)
        return total

    def advance(self, value: int) -> int | None:
        """The smallest address >= value inside the spans, or None past the end."""
        i = bisect.bisect_right(self.starts, value) - 1
        if i >= 0 and value <= self.ends[i]:
            return value
        if i + 1 < len(self.starts):
            return self.starts[i + 1]
        return None


class Cursor:
    """Lowest-free search over one :class:`Space`."""

    __slots__ = ("heap", "next", "space")

    def __init__(self, space: Space) -> None:
        self.space = space
        self.next = space.starts[0] if space.starts else 0  # everything free below `next` is in `heap`
        self.heap: list[int] = []

    def peek(self, used: Mapping[int, object]) -> int | None:
        """The lowest free address (not committed: the caller marks it used)."""
        space, heap = self.space, self.heap
        while heap and (heap[0] in used or space.skipped(heap[0])):
            heapq.heappop(heap)
        cur = space.advance(self.next)
        while cur is not None and (cur in used or space.skipped(cur)):
            cur = space.advance(cur + 1)
        if cur is None:
            self.next = space.ends[-1] + 1 if space.ends else 0
        else:
            self.next = cur
        if heap and (cur is None or heap[0] < cur):
            return heap[0]
        return cur

    def released(self, value: int) -> None:
        if value < self.next:
            heapq.heappush(self.heap, value)
