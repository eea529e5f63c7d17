"""The IPAM controller role: the one agent holding the Lease assigns addresses.

Start-up order is the point (MetalLB #1774/#2443: a restarted controller reshuffled
addresses): wait until every cache has listed, **rebuild** the allocator from what the
Services already record (annotation, else ``status.loadBalancer.ingress``), and only then
allocate anything new.  Services that already hold addresses are reconciled before new
ones, each group in key order -- the same order as :func:`ironlb.ipam.allocate_all`.

Each reconcile pass (triggered by any cache change, coalesced):

1. custom resources -> Config, keeping the last good version of invalid objects
   (:class:`~agent.kube.viewbuild.ConfigTracker`); invalid ones get ``Valid=False`` and a
   Warning Event;
2. services gone, no longer LoadBalancer or no longer ours -> release (and clear what we
   wrote, when the object still exists);
3. every service -> ``Allocator.allocate``; a changed answer is written (annotation first,
   the record a restart rebuilds from; then status) with an ``Allocated`` Event; a refusal
   is a Warning Event whose reason is the allocator's word (PoolExhausted, Forbidden...);
4. IPPool and Tenant status (usage per family, quota), written only when changed;
5. the announcement table from the latest plan (:meth:`Controller.publish`).

API failures never lose state: the pass stops, the allocator keeps its assignments, and
the pass is retried after a back-off.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from agent.announcements import Plan
from agent.kube.client import CRDS, SERVICES, KubeError
from agent.kube.informer import Caches
from agent.kube.viewbuild import ConfigTracker, recorded_assignment, recorded_ips, service_requests
from agent.kube.writers import (
    ANN_ANNOUNCEMENTS,
    COND_ALLOCATED,
    COND_ANNOUNCED,
    Writer,
    allocation_annotations,
    condition,
    same_conditions,
)
from agent.observability import Metrics
from ironlb.config import Config
from ironlb.errors import AllocationError
from ironlb.ipam import Allocator
from ironlb.model import RESOURCE_KINDS
from ironlb.service import Assignment, ServiceRequest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ControllerSettings:
    claim_classless: bool = False
    """Also serve LoadBalancer Services that set no loadBalancerClass."""
    retry_initial: float = 0.5
    """First back-off after a failed pass (doubles up to retry_max)."""
    retry_max: float = 10.0


class Controller:
    def __init__(
        self,
        caches: Caches,
        writer: Writer,
        settings: ControllerSettings | None = None,
        *,
        metrics: Metrics | None = None,
        plan: Callable[[], Plan | None] = lambda: None,
    ):
        self.caches, self.writer = caches, writer
        self.settings = settings or ControllerSettings()
        self.metrics = metrics or Metrics()
        self.plan = plan
        self.tracker = ConfigTracker()
        self.allocator: Allocator | None = None
        self.config: Config | None = None
        self.errors: dict[str, AllocationError] = {}
        self._written: dict[tuple[str, str], Any] = {}
        self.passes = 0
        self.wake = asyncio.Event()
        self.changed = caches.subscribe()

    # --- reading ----------------------------------------------------------------------

    def _config(self) -> Config:
        crds = [d for plural in CRDS for d in self.caches.items(plural)]
        return self.tracker.update(crds, self.caches.items("namespaces"))

    def _requests(self) -> dict[str, ServiceRequest]:
        requests, _ = service_requests(
            self.caches.items("services"), claim_classless=self.settings.claim_classless
        )
        return requests

    def rebuild(self) -> Allocator:
        """Allocator holding exactly what the cluster already records (nothing new)."""
        config = self._config()
        existing = []
        for key, request in self._requests().items():
            doc = self.caches.get("services", key)
            held = recorded_assignment(doc, request, config) if doc else None
            if held is not None:
                existing.append(held)
        self.config, self.allocator = config, Allocator(config, existing)
        log.info("controller rebuilt %d recorded assignments", len(existing))
        return self.allocator

    # --- the loop ---------------------------------------------------------------------

    async def run(self) -> None:
        await self.caches.wait_synced()
        self.rebuild()
        delay = self.settings.retry_initial
        while True:
            try:
                await self.reconcile()
                delay = self.settings.retry_initial
            except KubeError as exc:
                self.metrics.api_errors.labels("reconcile").inc()
                log.warning("reconcile stopped: %s; retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.settings.retry_max)
                continue
            await self._wait_change()

    async def _wait_change(self) -> None:
        changed = asyncio.create_task(self.changed.wait())
        woken = asyncio.create_task(self.wake.wait())
        try:
            await asyncio.wait({changed, woken}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            changed.cancel()
            woken.cancel()
        self.changed.clear()
        self.wake.clear()

    async def reconcile(self) -> None:
        """One full pass (see the module docstring)."""
        if self.allocator is None:
            self.rebuild()
        assert self.allocator is not None
        self.passes += 1
        config = self._config()
        if config is not self.config:
            self.config, self.allocator = config, Allocator(config, self.allocator.assignments.values())
        await self._report_invalid()
        requests = self._requests()
        await self._release_gone(requests)
        held = self.allocator.assignments
        order = sorted(requests, key=lambda k: (k not in held, k))
        for key in order:
            await self._allocate(requests[key])
        await self._pool_and_tenant_status()
        self.metrics.observe_usage(self.allocator.usage())
        await self.publish()

    async def _release_gone(self, requests: Mapping[str, ServiceRequest]) -> None:
        assert self.allocator is not None
        for key in [k for k in self.allocator.assignments if k not in requests]:
            self.allocator.release(key)
            self.errors.pop(key, None)
            doc = self.caches.get("services", key)
            log.info("released %s", key)
            if doc is not None and recorded_ips(doc):
                await self.writer.service_annotations(
                    doc, {**allocation_annotations(None), ANN_ANNOUNCEMENTS: None}
                )
                await self.writer.service_status(doc, [])
                await self.writer.event(
                    SERVICES, doc, "Released", "no longer a LoadBalancer served by IronLB"
                )

    async def _allocate(self, request: ServiceRequest) -> None:
        assert self.allocator is not None
        doc = self.caches.get("services", request.key)
        if doc is None:
            return
        try:
            assignment: Assignment | None = self.allocator.allocate(request)
            self.errors.pop(request.key, None)
        except AllocationError as exc:
            self.errors[request.key] = exc
            self.metrics.allocations.labels("failed", exc.reason).inc()
            await self.writer.event(SERVICES, doc, exc.reason, exc.message, warning=True)
            cond = condition(COND_ALLOCATED, False, exc.reason, exc.message)
            if not same_conditions((doc.get("status") or {}).get("conditions") or [], [cond]):
                await self.writer.service_status(doc, None, [cond])
            assignment = self.allocator.assignments.get(request.key)  # kept old addresses, if any
            if assignment is None:
                return
        assert assignment is not None
        recorded = [(ip, pool) for ip, pool in recorded_ips(doc)]
        wanted = [(a.ip, a.pool) for a in assignment.ips]
        ingress = [
            i.get("ip") for i in ((doc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        ]
        if recorded == wanted and ingress == list(assignment.addresses):
            return
        text = ", ".join(f"{ip} from pool {pool}" for ip, pool in wanted)
        await self.writer.service_annotations(doc, allocation_annotations(assignment))
        ok = request.key not in self.errors
        conds = [condition(COND_ALLOCATED, True, "Allocated", f"assigned {text}")] if ok else []
        await self.writer.service_status(doc, list(assignment.addresses), conds)
        self.metrics.allocations.labels("allocated", "").inc()
        await self.writer.event(SERVICES, doc, "Allocated", f"assigned {text}")

    # --- custom resource status -----------------------------------------------------------

    async def _write_once(self, kind: str, name: str, status: Mapping[str, Any]) -> None:
        key = (kind, name)
        comparable = json.dumps(_without_times(status), sort_keys=True)
        if self._written.get(key) == comparable:
            return
        cls = RESOURCE_KINDS[kind]
        await self.writer.object_status(CRDS[cls.PLURAL], name, status)
        self._written[key] = comparable

    async def _report_invalid(self) -> None:
        for (kind, name), issues in self.tracker.invalid.items():
            if kind not in RESOURCE_KINDS:
                continue
            message = "; ".join(str(i) for i in issues)
            kept = (kind, name) in self.tracker.last_good
            message += " (the last valid version stays in force)" if kept else " (ignored until fixed)"
            doc = self.caches.get(RESOURCE_KINDS[kind].PLURAL, name) or {"metadata": {"name": name}}
            await self.writer.event(
                CRDS[RESOURCE_KINDS[kind].PLURAL], doc, "InvalidConfig", message, warning=True
            )
            await self._write_once(
                kind, name, {"conditions": [condition("Valid", False, "InvalidConfig", message)]}
            )

    async def _pool_and_tenant_status(self) -> None:
        assert self.allocator is not None and self.config is not None
        for name, usage in self.allocator.usage().items():
            if ("IPPool", name) in self.tracker.invalid:
                continue
            status: dict[str, Any] = {}
            for fam in (4, 6):
                status[f"assignedIPv{fam}"] = usage.used.get(fam, 0)
                status[f"availableIPv{fam}"] = usage.size.get(fam, 0) - usage.used.get(fam, 0)
            full = all(status[f"availableIPv{f}"] <= 0 for f in (4, 6) if usage.size.get(f, 0))
            status["conditions"] = [
                condition("Valid", True, "Valid", "accepted"),
                condition(
                    "Exhausted",
                    full,
                    "Exhausted" if full else "AddressesAvailable",
                    "no free address left" if full else "addresses available",
                ),
            ]
            await self._write_once("IPPool", name, status)
        used = self.allocator.tenant_usage()
        for name, tenant in self.config.tenants.items():
            if ("Tenant", name) in self.tracker.invalid:
                continue
            quota = tenant.spec.maxAddresses
            n = used.get(name, 0)
            reached = quota is not None and n >= quota
            tstatus: dict[str, Any] = {
                "usedAddresses": n,
                "conditions": [
                    condition("Valid", True, "Valid", "accepted"),
                    condition(
                        "QuotaReached",
                        reached,
                        "QuotaReached" if reached else "WithinQuota",
                        f"{n} of {quota if quota is not None else 'unlimited'} addresses in use",
                    ),
                ],
            }
            if quota is not None:
                tstatus["maxAddresses"] = quota
            await self._write_once("Tenant", name, tstatus)

    # --- publishing who announces ---------------------------------------------------------

    async def publish(self) -> None:
        """Record, per Service, which node(s) announce its addresses, how and why."""
        plan = self.plan()
        if plan is None or self.allocator is None:
            return
        rows: dict[str, list[dict[str, Any]]] = {}
        for o in plan.ownership:
            for svc in o.services:
                rows.setdefault(svc, []).append(
                    {"ip": o.ip, "mode": o.mode, "nodes": list(o.nodes), "reason": o.reason}
                )
        for key in self.allocator.assignments:
            doc = self.caches.get("services", key)
            if doc is None:
                continue
            mine = sorted(rows.get(key, []), key=lambda r: (r["ip"], r["mode"]))
            text = json.dumps(mine, sort_keys=True, separators=(",", ":"))
            ann = (doc.get("metadata") or {}).get("annotations") or {}
            if ann.get(ANN_ANNOUNCEMENTS) == text:
                continue
            why = plan.unannounced.get(key, "no announcement yet")
            message = (
                "; ".join(
                    f"{r['ip']} by {', '.join(r['nodes']) or 'no node'} ({r['mode']}): {r['reason']}"
                    for r in mine
                )
                or why
            )
            await self.writer.service_annotations(doc, {ANN_ANNOUNCEMENTS: text})
            announced = any(r["nodes"] for r in mine)
            await self.writer.service_status(
                doc,
                None,
                [
                    condition(
                        COND_ANNOUNCED, announced, "Announcing" if announced else "NotAnnounced", message
                    )
                ],
            )
            await self.writer.event(
                SERVICES, doc, "Announcing" if announced else "NotAnnounced", message, warning=not announced
            )


def _without_times(status: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(status)
    if "conditions" in out:
        out["conditions"] = [
            {k: v for k, v in c.items() if k != "lastTransitionTime"} for c in out["conditions"]
        ]
    return out
