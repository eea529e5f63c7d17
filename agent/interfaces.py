"""The seams between the agent's pure core and its shells.

- A :class:`Source` produces cluster views (from a directory of manifests, or from the
  Kubernetes API).  Views come without ``live_members``; the daemon adds membership.
  ``attach`` lets a source report through the agent's status board, seen as a
  :class:`Board` (the Kubernetes source: its NodeState, API counters and cache
  readiness); a directory source has nothing to add.
- A :class:`Shell` acts on a plan: the layer-2 responder, the BGP speaker.  ``apply`` is
  given the whole new plan and must act only on the difference from the last one;
  ``close`` withdraws everything it announced (called from ``finally``).  It calls its
  ``on_change`` whenever its state changes in a way worth reporting at once.
- A :class:`Membership` tells which agents are alive, and is told who the peers are.
- Shells and membership are :class:`Reporting`: the status board shows their ``status()``.

The daemon and the status board depend only on these protocols, so every shell, source and
membership is replaceable by a fake in tests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Collection, Mapping
from typing import Any, Protocol

from ironlb.agent.announcements import Plan
from ironlb.agent.metrics import Metrics
from ironlb.agent.view import ClusterView

#: What a component's status looks like to the board: JSON-able, by part name.
Statuses = Mapping[str, Mapping[str, Any]]


class Reporting(Protocol):
    def status(self) -> Mapping[str, Any]:
        """JSON-able status: per-address state, conflicts, sessions, peers, counters."""
        ...


class Board(Protocol):
    """The agent's status board as a source sees it (:class:`ironlb.agent.observability.StatusBoard`)."""

    metrics: Metrics
    #: Readiness checks: None when fine, else one sentence saying what is missing.
    ready_checks: list[Callable[[], str | None]]
    #: Called after every tick with the last applied plan and the shells' statuses.
    observers: list[Callable[[Plan | None, Statuses], None]]
    #: A further section of the status document (``kubernetes``).
    extra_fn: Callable[[], Mapping[str, Any]] | None


class Source(Protocol):
    def views(self) -> AsyncIterator[ClusterView]:
        """Yield a complete view now, then a new one every time something changed."""
        ...

    def attach(self, board: Board) -> None:
        """Report through ``board``: readiness checks, a status section, metrics, per-tick work."""
        ...


class Shell(Reporting, Protocol):
    #: Called on every state change worth reporting at once (the daemon ticks its heartbeat).
    on_change: Callable[[], None]

    async def apply(self, plan: Plan) -> None:
        """Make the world match ``plan`` (only touching what changed)."""
        ...

    async def close(self) -> None:
        """Withdraw everything this shell announced. Safe to call twice."""
        ...


class Membership(Reporting, Protocol):
    def live(self) -> frozenset[str]:
        """Names of nodes whose agent is alive right now (including this node)."""
        ...

    def changes(self) -> AsyncIterator[frozenset[str]]:
        """Yield the live set every time it changes."""
        ...

    def update_peers(self, peers: Mapping[str, str], ready: Collection[str] | None = None) -> None:
        """The other nodes (name -> address), and which of them are Ready (None: all)."""
        ...

    async def start(self) -> None: ...

    async def stop(self, graceful: bool) -> None:
        """Stop; when ``graceful``, tell the peers first so they act at once."""
        ...
