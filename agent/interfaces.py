"""The seams between the agent's pure core and its shells.

- A :class:`Source` produces cluster views (from a directory of manifests, or from the
  Kubernetes API).  Views come without ``live_members``; the daemon adds membership.
- A :class:`Shell` acts on a plan: the layer-2 responder, the BGP speaker.  ``apply`` is
  given the whole new plan and must act only on the difference from the last one;
  ``close`` withdraws everything it announced (called from ``finally``).
- A :class:`MembershipView` tells which agents are alive.

The daemon depends only on these protocols, so every shell is replaceable by a fake in
tests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol

from ironlb.agent.announcements import Plan
from ironlb.agent.view import ClusterView


class Source(Protocol):
    def views(self) -> AsyncIterator[ClusterView]:
        """Yield a complete view now, then a new one every time something changes."""
        ...


class Shell(Protocol):
    async def apply(self, plan: Plan) -> None:
        """Make the world match ``plan`` (only touching what changed)."""
        ...

    async def close(self) -> None:
        """Withdraw everything this shell announced. Safe to call twice."""
        ...

    def status(self) -> Mapping[str, Any]:
        """JSON-able status: per-address state, conflicts, sessions, counters."""
        ...


class MembershipView(Protocol):
    def live(self) -> frozenset[str]:
        """Names of nodes whose agent is alive right now (including this node)."""
        ...

    def changes(self) -> AsyncIterator[frozenset[str]]:
        """Yield the live set every time it changes."""
        ...
