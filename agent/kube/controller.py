"""The IPAM controller: the one ``ironlb-controller`` replica holding the Lease assigns addresses.

Start-up order is the point (MetalLB #1774/#2443: a restarted controller reshuffled
addresses): wait until every cache has listed, **rebuild** the allocator from what the
Services already record, and only then allocate anything new.  Services that already hold
addresses are reconciled before new ones, each group in key order -- the same order as
:func:`ironlb.ipam.allocate_all`.

**What the controller trusts** (docs/decisions/0062-trust-boundary.md): its own allocator
while it leads, and at a rebuild only ``status.loadBalancer.ingress`` as the speakers read it
(:mod:`ironlb.agent.viewbuild`: every address re-checked with the TrustCheck, older Service first
where two record one address), so a rebuild takes exactly what the speakers announce and a
forged claim can never displace another Service.  The annotations ``ironlb.io/allocated-ips``
and ``ip-allocated-from-pool`` are output only, never read.

Each reconcile pass (triggered by any cache change, coalesced):

1. custom resources -> Config, keeping the last good version of invalid objects
   (:class:`~ironlb.agent.kube.viewfeed.ConfigTracker`); invalid ones get ``Valid=False`` and a
   Warning Event;
2. services gone, no longer LoadBalancer or no longer ours -> release (and clear what we
   wrote, when the object still exists);
3. every service -> ``Allocator.allocate``; a changed answer is written (annotation, then
   status) with an ``Allocated`` Event; a refusal is a Warning Event whose reason is the
   allocator's word (PoolExhausted, Forbidden...).  A record the controller did not write
   (status addresses the TrustCheck refuses, annotations that disagree with its answer) is
   rewritten to its answer, or removed, with one Warning Event (``AddressRejected`` with the
   check's reason, or ``RecordRewritten``), condition ``ironlb.io/RecordTrusted=False`` and
   the counters ``ironlb_address_rejections_total`` / ``ironlb_records_rewritten_total``:
   reported once, here, rather than by every speaker;
4. status of every IronLB object, written only when changed: IPPool (usage per family),
   Tenant (``used`` against ``quota``), BGPPeer (sessions summed from the NodeStates),
   advertisements and Communities (condition ``Valid``);
5. who announces each address, from the speakers' NodeStates (:meth:`Controller.publish`):
   annotation ``ironlb.io/announcements`` and condition ``ironlb.io/Announced``, written
   only when the answer changed, and an Event only when the announcing nodes changed.

API failures never lose state: the pass stops, the allocator keeps its assignments, and
the pass is retried after a back-off.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ironlb.agent.kube.client import CRDS, SERVICES, KubeError
from ironlb.agent.kube.informer import Caches
from ironlb.agent.kube.nodestate import peer_statuses, published_rows
from ironlb.agent.kube.records import compare, describe
from ironlb.agent.kube.viewfeed import CacheFeed, ConfigTracker
from ironlb.agent.kube.writers import (
    ANN_ANNOUNCEMENTS,
    COND_ALLOCATED,
    COND_ANNOUNCED,
    COND_TRUSTED,
    Writer,
    allocation_annotations,
    condition,
    same_conditions,
)
from ironlb.agent.metrics import ControllerMetrics
from ironlb.agent.view import ClusterView
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
        metrics: ControllerMetrics | None = None,
    ):
        self.caches, self.writer = caches, writer
        self.settings = settings or ControllerSettings()
        self.metrics = metrics or ControllerMetrics()
        self.feed = CacheFeed(caches, claim_classless=self.settings.claim_classless)
        self.allocator: Allocator | None = None
        self.config: Config | None = None
        self.errors: dict[str, AllocationError] = {}
        self._written: dict[tuple[str, str], Any] = {}
        self.passes = 0
        self.wake = asyncio.Event()
        self.changed = caches.subscribe()

    # --- reading ----------------------------------------------------------------------

    @property
    def tracker(self) -> ConfigTracker:
        return self.feed.tracker

    def _requests(self) -> Mapping[str, ServiceRequest]:
        return self.feed.builder.requests

    def rebuild(self) -> Allocator:
        """Allocator holding exactly what the speakers trust the Services to hold (nothing new)."""
        view = self.feed.view()
        existing = list(view.assignments.values())
        self.config, self.allocator = view.config, Allocator(view.config, existing)
        log.info("controller rebuilt %d recorded assignments", len(existing))
        for key, refused in sorted(view.rejected.items()):
            log.warning("not rebuilt from %s: %s", key, "; ".join(f"{r} ({r.reason})" for r in refused))
        return self.allocator

    # --- the loop ---------------------------------------------------------------------

    async def run(self) -> None:
        try:
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
        finally:
            self.feed.close()  # the caches outlive this term

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
        started = time.perf_counter()
        self.passes += 1
        view = self.feed.view()
        config = view.config
        if config is not self.config:
            self.config, self.allocator = config, Allocator(config, self.allocator.assignments.values())
        await self._report_invalid()
        requests = self._requests()
        await self._release_gone(requests)
        held = self.allocator.assignments
        order = sorted(requests, key=lambda k: (k not in held, k))
        for key in order:
            await self._allocate(requests[key], view)
        await self._pool_and_tenant_status()
        await self._other_status()
        self.metrics.observe_usage(self.allocator.usage())
        self.metrics.observe_pending(e.reason for e in self.errors.values())
        await self.publish()
        self.metrics.reconcile_seconds.observe(time.perf_counter() - started)

    async def _release_gone(self, requests: Mapping[str, ServiceRequest]) -> None:
        assert self.allocator is not None
        for key in [k for k in self.allocator.assignments if k not in requests]:
            self.allocator.release(key)
            self.errors.pop(key, None)
            doc = self.caches.get("services", key)
            log.info("released %s", key)
            if doc is not None and compare(doc, None, None).changes:
                await self.writer.service_annotations(
                    doc, {**allocation_annotations(None), ANN_ANNOUNCEMENTS: None}
                )
                await self.writer.service_status(doc, [])
                await self.writer.event(
                    SERVICES, doc, "Released", "no longer a LoadBalancer served by IronLB"
                )

    async def _allocate(self, request: ServiceRequest, view: ClusterView) -> None:
        assert self.allocator is not None
        doc = self.caches.get("services", request.key)
        if doc is None:
            return
        conds: list[dict[str, Any]] = []
        try:
            assignment: Assignment | None = self.allocator.allocate(request)
            self.errors.pop(request.key, None)
        except AllocationError as exc:
            self.errors[request.key] = exc
            self.metrics.allocations.labels("failed", exc.reason).inc()
            await self.writer.event(SERVICES, doc, exc.reason, exc.message, warning=True)
            conds.append(condition(COND_ALLOCATED, False, exc.reason, exc.message))
            assignment = self.allocator.assignments.get(request.key)  # kept old addresses, if any
        await self._record(request, doc, assignment, view, conds)

    async def _record(
        self,
        request: ServiceRequest,
        doc: Mapping[str, Any],
        held: Assignment | None,
        view: ClusterView,
        conds: list[dict[str, Any]],
    ) -> None:
        """Make the Service record ``held`` (annotations, then status); report what was not ours."""
        key = request.key
        ours = self.writer.ingress_written.get(key, ())
        fix = compare(doc, held, view.assignments.get(key), view.rejected.get(key, ()), ours)
        existing = (doc.get("status") or {}).get("conditions") or []
        was_distrusted = any(c.get("type") == COND_TRUSTED and c.get("status") == "False" for c in existing)
        if fix.event is not None:
            conds.append(condition(COND_TRUSTED, False, fix.reason, fix.message))
        elif was_distrusted:
            conds.append(
                condition(COND_TRUSTED, True, "Trusted", "status and annotations hold what IronLB assigned")
            )
        new = held is not None and fix.ingress is not None and key not in self.errors
        if new:
            conds.append(condition(COND_ALLOCATED, True, "Allocated", f"assigned {describe(held)}"))
        if fix.annotations is not None:
            await self.writer.service_annotations(doc, fix.annotations)
            if fix.event is not None:
                self.metrics.records_rewritten.labels("annotations").inc()
        if fix.ingress is not None or not same_conditions(existing, conds):
            await self.writer.service_status(doc, fix.ingress, conds)
            if fix.ingress is not None and fix.event is not None:
                self.metrics.records_rewritten.labels("status").inc()
        if fix.event is not None and await self.writer.event(
            SERVICES, doc, fix.event, fix.message, warning=True
        ):
            for r in fix.rejected:  # counted once per report, as the Event is sent once
                self.metrics.rejections.labels(r.reason).inc()
        if new:
            self.metrics.allocations.labels("allocated", "").inc()
            await self.writer.event(SERVICES, doc, "Allocated", f"assigned {describe(held)}")

    # --- custom resource status -----------------------------------------------------------

    async def _write_once(self, kind: str, name: str, status: Mapping[str, Any]) -> None:
        """Write ``status`` unless this term wrote it already or the object already holds it."""
        key = (kind, name)
        comparable = json.dumps(_without_times(status), sort_keys=True)
        if self._written.get(key) == comparable:
            return
        cls = RESOURCE_KINDS[kind]
        current = ((self.caches.get(cls.PLURAL, name) or {}).get("status")) or {}
        held = {k: current.get(k) for k in status} if isinstance(current, Mapping) else {}
        if json.dumps(_without_times(held), sort_keys=True) != comparable:
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
            if RESOURCE_KINDS[kind].STATUS is not None:  # a kind without status has only the Event
                await self._write_once(
                    kind, name, {"conditions": [condition("Valid", False, "InvalidConfig", message)]}
                )

    async def _pool_and_tenant_status(self) -> None:
        assert self.allocator is not None and self.config is not None
        for name, usage in self.allocator.usage().items():
            if ("IPPool", name) in self.tracker.invalid:
                continue
            status: dict[str, Any] = dict(usage.status_counts())  # capped: a /64 exceeds JSON integers
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
                "used": n,
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
            tstatus["quota"] = quota  # None clears it (merge patch) when the quota is removed
            await self._write_once("Tenant", name, tstatus)

    async def _other_status(self) -> None:
        """BGPPeer sessions (from the NodeStates) and Valid on advertisements and Communities."""
        assert self.config is not None
        nodes = {d["metadata"]["name"]: d for d in self.caches.items("nodes") if d.get("metadata")}
        sessions = peer_statuses(self.caches.items("nodestates"), nodes)
        valid = [condition("Valid", True, "Valid", "accepted")]
        for name in self.config.peers:
            if ("BGPPeer", name) not in self.tracker.invalid:
                summary = sessions.get(name, {"state": "", "sessions": []})
                await self._write_once("BGPPeer", name, {**summary, "conditions": valid})
        for kind, names in (
            ("L2Advertisement", self.config.l2_advertisements),
            ("BGPAdvertisement", self.config.bgp_advertisements),
            ("Community", self._communities()),
        ):
            for name in names:
                if (kind, name) not in self.tracker.invalid:
                    await self._write_once(kind, name, {"conditions": valid})

    def _communities(self) -> list[str]:
        return [str((d.get("metadata") or {}).get("name")) for d in self.caches.items("communities")]

    # --- publishing who announces ---------------------------------------------------------

    async def publish(self) -> None:
        """Record, per Service, which node(s) announce its addresses, how and why (from NodeStates)."""
        if self.allocator is None:
            return
        nodes = {d["metadata"]["name"]: d for d in self.caches.items("nodes") if d.get("metadata")}
        rows = published_rows(self.caches.items("nodestates"), nodes)
        for key, assignment in self.allocator.assignments.items():
            doc = self.caches.get("services", key)
            if doc is None:
                continue
            mine = [r for r in rows.get(key, []) if r["ip"] in assignment.addresses]
            mine += [
                {"ip": ip, "mode": "", "nodes": [], "reason": "no node reports it yet"}
                for ip in assignment.addresses
                if not any(r["ip"] == ip for r in mine)
            ]
            mine.sort(key=lambda r: (r["ip"], r["mode"]))
            text = json.dumps(mine, sort_keys=True, separators=(",", ":"))
            ann = (doc.get("metadata") or {}).get("annotations") or {}
            before = ann.get(ANN_ANNOUNCEMENTS)
            if before == text:
                continue
            message = "; ".join(
                f"{r['ip']} by {', '.join(r['nodes']) or 'no node'}"
                + (f" ({r['mode']})" if r["mode"] else "")
                + f": {r['reason']}"
                for r in mine
            )
            await self.writer.service_annotations(doc, {ANN_ANNOUNCEMENTS: text})
            announced = any(r["nodes"] for r in mine)
            reason = "Announcing" if announced else "NotAnnounced"
            await self.writer.service_status(
                doc, None, [condition(COND_ANNOUNCED, announced, reason, message)]
            )
            if _who(mine) != _who(_rows(before)):  # a new reason alone is no news
                await self.writer.event(SERVICES, doc, reason, message, warning=not announced)


def _rows(text: Any) -> list[Any]:
    """The rows of a published ``ironlb.io/announcements`` annotation ([] when absent or unreadable)."""
    try:
        rows = json.loads(text) if isinstance(text, str) else []
    except ValueError:
        return []
    return rows if isinstance(rows, list) else []


def _who(rows: list[Any]) -> set[tuple[str, str, tuple[str, ...]]]:
    """Which nodes announce which address, how: what an Event is worth sending for."""
    return {
        (str(r.get("ip")), str(r.get("mode")), tuple(str(n) for n in r.get("nodes") or ()))
        for r in rows
        if isinstance(r, Mapping)
    }


def _without_times(status: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(status)
    if out.get("conditions"):
        out["conditions"] = [
            {k: v for k, v in c.items() if k != "lastTransitionTime"} for c in out["conditions"]
        ]
    return out
