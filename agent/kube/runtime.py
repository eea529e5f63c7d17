"""``ironlb-agent --source kube``: one process, two roles, wired here.

- **Announcer** (every node): the informers feed :class:`agent.sources.kube.KubeSource`,
  whose views drive the daemon's planner and shells like any other source.
- **Controller** (one node at a time): a :class:`~agent.kube.lease.LeaseElector`
  campaigns; while it leads, a fresh :class:`~agent.kube.controller.Controller` runs
  (rebuild first, then allocate).  Losing the Lease cancels it at once; a new term starts
  with a new rebuild, so no state from an old term can leak into decisions.

The daemon hands every applied plan to :meth:`KubeRuntime.on_plan` (a daemon hook); the
controller publishes its ownership rows on the Services.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from agent.announcements import Plan
from agent.kube.client import AGENT_KINDS, KubeClient
from agent.kube.controller import Controller, ControllerSettings
from agent.kube.informer import Caches, InformerSettings
from agent.kube.lease import LeaseElector, LeaseSettings
from agent.kube.writers import Writer
from agent.observability import Metrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KubeSettings:
    server: str | None = None
    """API server URL without credentials (tests, the lab); default: in-cluster or kubeconfig."""
    kubeconfig: str | None = None
    controller: bool = True
    """Campaign for the controller role (False: announce only)."""
    watch_namespaces: bool = True
    """Watch Namespaces (for pools' namespaceSelector). kmock cannot serve /api/v1/namespaces."""
    lease: LeaseSettings = field(default_factory=LeaseSettings)
    informer: InformerSettings = field(default_factory=InformerSettings)
    allocation: ControllerSettings = field(default_factory=ControllerSettings)


class KubeRuntime:
    def __init__(
        self,
        client: KubeClient,
        node: str,
        settings: KubeSettings | None = None,
        metrics: Metrics | None = None,
    ):
        self.client = client
        self.node = node
        self.settings = settings or KubeSettings()
        self.metrics = metrics or Metrics()
        kinds = {k: v for k, v in AGENT_KINDS.items() if self.settings.watch_namespaces or k != "namespaces"}
        self.caches = Caches(client, kinds, self.settings.informer)
        self.latest_plan: Plan | None = None
        self.controller: Controller | None = None
        self._lost = asyncio.Event()
        self.elector = LeaseElector(client, node, self.settings.lease, on_change=self._on_leadership)

    def on_plan(self, plan: Plan, view: Any = None) -> None:
        """Daemon hook: remember the plan; the controller republishes ownership."""
        self.latest_plan = plan
        if self.controller is not None:
            self.controller.wake.set()

    def status(self) -> dict[str, Any]:
        ctrl = self.controller
        return {
            "leader": self.elector.is_leader,
            "lease_holder": self.elector.holder,
            "controller_passes": ctrl.passes if ctrl else 0,
            "allocation_errors": {
                k: f"{e.reason}: {e.message}" for k, e in (ctrl.errors if ctrl else {}).items()
            },
            "relists": {name: inf.relists for name, inf in self.caches.informers.items()},
        }

    def _on_leadership(self, leader: bool) -> None:
        self.metrics.leader.set(1 if leader else 0)
        if not leader:
            self._lost.set()

    async def run_roles(self) -> None:
        """Election and the controller role (the informers are run by the source)."""
        if not self.settings.controller:
            await asyncio.Event().wait()
        election = asyncio.create_task(self.elector.run(), name="lease")
        try:
            while True:
                await self.elector.leading.wait()
                self._lost.clear()
                self.controller = Controller(
                    self.caches,
                    Writer(self.client, self.node),
                    self.settings.allocation,
                    metrics=self.metrics,
                    plan=lambda: self.latest_plan,
                )
                log.info("%s is the controller", self.node)
                task = asyncio.create_task(self.controller.run(), name="controller")
                lost = asyncio.create_task(self._lost.wait())
                done, _ = await asyncio.wait({task, lost}, return_when=asyncio.FIRST_COMPLETED)
                for t in (task, lost):
                    t.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await t
                if task in done and not task.cancelled() and task.exception() is not None:
                    log.error("controller stopped: %r", task.exception())
                self.controller = None
                if task in done:  # crashed, not deposed: give the Lease a moment
                    await asyncio.sleep(self.settings.lease.retry_period)
        finally:
            election.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await election
