"""The Kubernetes source: ClusterViews from informers (``ironlb-agent --source kube``).

``views()`` starts the informers (Services, EndpointSlices, Nodes, Namespaces and
IronLB's custom resources), and -- when this agent may be the controller -- the Lease
election and controller role of :class:`agent.kube.runtime.KubeRuntime`.  It yields the
first view once every cache has listed, then a new view after every change that alters
it (equal views are swallowed).  Changes arriving together coalesce into one view.

Per-Service parsing is memoised on the cached object's identity (the informer replaces an
object's dict on every change), so a change to one Service of 10,000 re-reads one.

Secrets are deliberately not watched: BGP passwords and the membership key reach the
agent as files mounted from Secrets (the NodeAgent component), so the agent's RBAC needs
no cluster-wide Secret read.  API server outages leave the last view in force.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Mapping
from typing import Any

from agent.kube.client import CRDS, KubeClient
from agent.kube.lease import LeaseSettings
from agent.kube.runtime import KubeRuntime, KubeSettings
from agent.kube.viewbuild import ConfigTracker, endpoint_nodes, is_ours, node_info, recorded_assignment
from agent.observability import Metrics
from agent.settings import Settings
from agent.view import ClusterView
from ironlb.config import Config
from ironlb.service import Assignment, request_from_manifest

log = logging.getLogger(__name__)


class KubeSource:
    def __init__(self, runtime: KubeRuntime, *, claim_classless: bool = False):
        self.runtime = runtime
        self.caches = runtime.caches
        self.claim_classless = claim_classless
        self.tracker = ConfigTracker()
        self._memo: dict[str, tuple[Mapping[str, Any], Config, Assignment | None]] = {}
        self.views_built = 0

    def build(self) -> ClusterView:
        """The current view from the caches."""
        crds = [d for plural in CRDS for d in self.caches.items(plural)]
        config = self.tracker.update(crds, self.caches.items("namespaces"))
        assignments: dict[str, Assignment] = {}
        services = self.caches.informers["services"].store
        for key in [k for k in self._memo if k not in services]:
            del self._memo[key]
        for key, doc in services.items():
            memo = self._memo.get(key)
            if memo is not None and memo[0] is doc and memo[1] is config:
                held = memo[2]
            else:
                request, _ = request_from_manifest(doc)
                ours = request is not None and is_ours(request, claim_classless=self.claim_classless)
                held = recorded_assignment(doc, request, config) if ours and request else None
                self._memo[key] = (doc, config, held)
            if held is not None:
                assignments[key] = held
        self.views_built += 1
        return ClusterView(
            config=config,
            assignments=assignments,
            endpoints=endpoint_nodes(self.caches.items("endpointslices")),
            nodes={n.name: n for n in (node_info(d) for d in self.caches.items("nodes"))},
        )

    async def views(self) -> AsyncIterator[ClusterView]:
        changed = self.caches.subscribe()
        tasks = [*self.caches.tasks(), asyncio.create_task(self.runtime.run_roles(), name="kube-roles")]
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
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task


def make_source(
    settings: Settings,
    *,
    server: str | None = None,
    kubeconfig: str | None = None,
    claim_classless: bool = False,
    controller: bool = True,
    kube: KubeSettings | None = None,
    metrics: Metrics | None = None,
    **_: Any,
) -> KubeSource:
    """The source ``agent.sources.make_source`` builds for ``--source kube``.

    Options not passed as arguments come from the environment (the DaemonSet sets them):
    ``IRONLB_KUBE_SERVER`` (URL without credentials, labs only), ``KUBECONFIG``,
    ``IRONLB_CLAIM_CLASSLESS=true``, ``IRONLB_CONTROLLER=false`` (announce only) and
    ``POD_NAMESPACE`` (where the controller Lease lives; default ironlb-system).
    """
    env = os.environ
    server = server or env.get("IRONLB_KUBE_SERVER") or None
    kubeconfig = kubeconfig or env.get("KUBECONFIG") or None
    claim_classless = claim_classless or env.get("IRONLB_CLAIM_CLASSLESS", "").lower() == "true"
    controller = controller and env.get("IRONLB_CONTROLLER", "true").lower() != "false"
    lease = LeaseSettings(namespace=env.get("POD_NAMESPACE") or LeaseSettings().namespace)
    kube = kube or KubeSettings(server=server, kubeconfig=kubeconfig, controller=controller, lease=lease)
    client = KubeClient.connect(kube.server, kube.kubeconfig)
    if claim_classless and not kube.allocation.claim_classless:
        from dataclasses import replace

        kube = replace(kube, allocation=replace(kube.allocation, claim_classless=True))
    runtime = KubeRuntime(client, settings.node, kube, metrics)
    return KubeSource(runtime, claim_classless=claim_classless)
