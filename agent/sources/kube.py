"""The Kubernetes source: the speaker's ClusterViews from informers (``source.kind: kube``).

``views()`` starts the informers (Services, EndpointSlices, Nodes, Namespaces and IronLB's
configuration) and yields the first view once every cache has listed, then a new view
after every change that alters it (equal views are swallowed).  Changes arriving together
coalesce into one view.  The view is built by :mod:`ironlb.agent.viewbuild`, fed event by event
(:class:`~ironlb.agent.kube.viewfeed.CacheFeed`), so a change to one Service of 10,000 re-reads
and re-checks one, and a Node or EndpointSlice event one row.

What is announced: only the addresses in each Service's ``status.loadBalancer.ingress``
(written by the controller alone) that pass the trust check, never an annotation
(docs/decisions/0062-trust-boundary.md).  Refused addresses are in ``view.rejected``: the
speaker counts them (``ironlb_rejected_addresses``) and lists them in its ``/status``; the
Event and condition on the Service come from the controller, once, not from every node.

The speaker only reads the cluster, with two exceptions it owns: its NodeState (what this
node announces, its BGP sessions, address conflicts; :mod:`ironlb.agent.kube.nodestate`), written
only on change, and Warning Events about address conflicts.  Allocation, Service status
and every other write belong to ``ironlb-controller``.

Secrets are deliberately not watched: BGP passwords and the membership key reach the
agent as files mounted from Secrets, so the speaker's RBAC needs no Secret read.  API
server outages leave the last view in force.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from ironlb.agent.interfaces import Board
from ironlb.agent.kube.client import SPEAKER_KINDS, KubeClient
from ironlb.agent.kube.informer import Caches, InformerSettings
from ironlb.agent.kube.nodestate import NodeStateReporter
from ironlb.agent.kube.viewfeed import CacheFeed
from ironlb.agent.settings import Settings
from ironlb.agent.view import ClusterView

log = logging.getLogger(__name__)


class KubeSource:
    def __init__(
        self,
        client: KubeClient,
        node: str,
        caches: Caches,
        *,
        claim_classless: bool = False,
        status_debounce: float = 0.2,
    ):
        self.client = client
        self.node = node
        self.caches = caches
        self.claim_classless = claim_classless
        self.feed = CacheFeed(caches, claim_classless=claim_classless)
        self.reporter = NodeStateReporter(client, node, caches, debounce=status_debounce)
        self.views_built = 0

    def attach(self, board: Board) -> None:
        """Report through the board: NodeState from every tick's plan and shell statuses, the
        API request and error counters, the caches' readiness, a ``kubernetes`` status section."""
        board.metrics.api_requests.sources.append(lambda: self.client.calls)
        self.reporter.on_error = lambda: board.metrics.api_errors.labels("nodestate").inc()
        board.observers.append(self.reporter.observe)
        board.extra_fn = self.status
        board.ready_checks.append(self.not_ready)

    def status(self) -> dict[str, Any]:
        return {
            "nodestate_writes": self.reporter.writes,
            "relists": {name: inf.relists for name, inf in self.caches.informers.items()},
            "views": self.views_built,
        }

    def not_ready(self) -> str | None:
        waiting = sorted(n for n, inf in self.caches.informers.items() if not inf.synced.is_set())
        return f"caches not synced yet: {', '.join(waiting)}" if waiting else None

    def build(self) -> ClusterView:
        """The current view from the caches (only what changed since the last one is redone)."""
        self.views_built += 1
        return self.feed.view()

    async def views(self) -> AsyncIterator[ClusterView]:
        changed = self.caches.subscribe()
        tasks = [*self.caches.tasks(), asyncio.create_task(self.reporter.run(), name="nodestate")]
        try:
            await self.caches.wait_synced()
            last: ClusterView | None = None
            while True:
                changed.clear()
                view = self.build()
                if view != last:
                    last = view
                    yield view
                await changed.wait()
                await asyncio.sleep(0)  # let a burst of watch events land first
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self.client.close()


def make_source(settings: Settings) -> KubeSource:
    """The source ``ironlb.agent.sources.make_source`` builds for ``source.kind: kube``.

    Credentials: in a pod, the service account (lightkube's in-cluster config, unchanged);
    standalone, ``kubernetes.kubeconfig`` (``--kubeconfig``), else ``$KUBECONFIG``.
    """
    kube = settings.kubernetes
    client = KubeClient.connect(kubeconfig=str(kube.kubeconfig) if kube.kubeconfig else None)
    caches = Caches(client, SPEAKER_KINDS, InformerSettings(resync_seconds=kube.resync_seconds))
    return KubeSource(
        client,
        settings.node,
        caches,
        claim_classless=kube.claim_classless,
        status_debounce=kube.status_debounce_seconds,
    )
