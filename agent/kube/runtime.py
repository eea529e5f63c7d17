"""``ironlb-controller``: informers, Lease election and controller terms, wired here.

Every replica runs the informers all the time (Services, Nodes, Namespaces, NodeStates and
IronLB's configuration), so a standby's caches are warm.  A
:class:`~ironlb.agent.kube.lease.LeaseElector` campaigns; while it leads, a fresh
:class:`~ironlb.agent.kube.controller.Controller` runs (rebuild first, then allocate).  Losing the
Lease cancels it at once; a new term starts with a new rebuild, so no state from an old
term can leak into decisions.  With the default Lease (2 s, renew deadline 1.5 s, retry
0.5 s; docs/decisions/0061-controller-and-speaker.md) a standby takes over within about
2.5 s of the leader's crash, and at once (one retry period) after a clean stop, which
hands the Lease back.

Health: live while the loop ticks (every second, :meth:`ControllerRuntime.tick`); ready
once every cache has listed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from ironlb.agent.kube.client import CONTROLLER_KINDS, KubeClient
from ironlb.agent.kube.controller import Controller, ControllerSettings
from ironlb.agent.kube.informer import Caches, InformerSettings
from ironlb.agent.kube.lease import LeaseElector, LeaseSettings
from ironlb.agent.kube.writers import Writer
from ironlb.agent.metrics import ControllerMetrics
from ironlb.agentconfig import AgentConfig

log = logging.getLogger(__name__)


def lease_settings(config: AgentConfig) -> LeaseSettings:
    lease = config.kubernetes.lease
    return LeaseSettings(
        name=lease.name,
        namespace=config.namespace,
        duration=lease.duration_seconds,
        renew_deadline=lease.renew_deadline_seconds,
        retry_period=lease.retry_period_seconds,
    )


class ControllerRuntime:
    """One controller replica: warm caches, a campaign, and a controller while leading."""

    def __init__(
        self,
        client: KubeClient,
        identity: str,
        config: AgentConfig | None = None,
        metrics: ControllerMetrics | None = None,
        *,
        allocation: ControllerSettings | None = None,
        informer: InformerSettings | None = None,
    ):
        self.client = client
        self.identity = identity
        self.config = config or AgentConfig()
        self.metrics = metrics or ControllerMetrics()
        self.allocation = allocation or ControllerSettings(
            claim_classless=self.config.kubernetes.claim_classless
        )
        resync = InformerSettings(resync_seconds=self.config.kubernetes.resync_seconds)
        self.caches = Caches(client, CONTROLLER_KINDS, informer or resync)
        self.controller: Controller | None = None
        self.terms = 0
        self._lost = asyncio.Event()
        self.elector = LeaseElector(
            client, identity, lease_settings(self.config), on_change=self._on_leadership
        )

    def status(self) -> dict[str, Any]:
        ctrl = self.controller
        return {
            "identity": self.identity,
            "leader": self.elector.is_leader,
            "lease_holder": self.elector.holder,
            "terms": self.terms,
            "controller_passes": ctrl.passes if ctrl else 0,
            "allocation_errors": {
                k: f"{e.reason}: {e.message}" for k, e in (ctrl.errors if ctrl else {}).items()
            },
            "relists": {name: inf.relists for name, inf in self.caches.informers.items()},
            "synced": not self.not_ready(),
        }

    def not_ready(self) -> str | None:
        """Readiness: every cache has listed at least once."""
        waiting = sorted(n for n, inf in self.caches.informers.items() if not inf.synced.is_set())
        return f"caches not synced yet: {', '.join(waiting)}" if waiting else None

    def _on_leadership(self, leader: bool) -> None:
        self.metrics.observe_leadership(leader)
        if not leader:
            self._lost.set()

    async def run(self) -> None:
        """Informers, election and controller terms, until cancelled (the Lease is released)."""
        tasks = [*self.caches.tasks(), asyncio.create_task(self.elector.run(), name="lease")]
        try:
            await self._terms()
        finally:
            for task in reversed(tasks):  # the elector first: it releases the Lease
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _terms(self) -> None:
        while True:
            await self.elector.leading.wait()
            self._lost.clear()
            self.terms += 1
            self.controller = Controller(
                self.caches,
                Writer(self.client, self.identity),
                self.allocation,
                metrics=self.metrics,
            )
            log.info("%s leads: controller term %d", self.identity, self.terms)
            task = asyncio.create_task(self.controller.run(), name="controller")
            lost = asyncio.create_task(self._lost.wait())
            try:
                done, _ = await asyncio.wait({task, lost}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                task.cancel()
                lost.cancel()
                await asyncio.wait({task, lost})  # never raises; a crash is read below
                self.controller.feed.close()  # also when the term ended before it started
            if task in done and not task.cancelled() and task.exception() is not None:
                log.error("controller stopped: %r", task.exception(), exc_info=task.exception())
            self.controller = None
            if task in done:  # crashed, not deposed: give the Lease a moment
                await asyncio.sleep(self.elector.settings.retry_period)
