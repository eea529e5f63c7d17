"""The Prometheus registry of each program, built from :mod:`ironlb.agent.metric_catalog`.

- :class:`Metrics` -- what both programs export: build info, health, Kubernetes API
  requests and errors, and prometheus-client's process and Python collectors.
- :class:`SpeakerMetrics` -- the speaker's: its plan (announcements, takeovers, planning
  time), the announcement and failover histograms, the trust check's refusals, and the
  layer-2, BGP and membership families.  Those last three are read at scrape time from
  the shells' ``status()`` snapshots the status board takes on every tick
  (:meth:`SpeakerMetrics.observe_tick`), so they can never disagree with ``/status``.
- :class:`ControllerMetrics` -- the controller's: allocations, pool usage, pending
  Services, records rewritten, leadership, pass time.

Every family is declared in the catalog; ``_make`` refuses a name that is not, so the docs
and the conventions test cover everything that is exported.

Timing the first announcement (:class:`AnnounceTimer`).  When a plan gives this node an
address, the address is noted with the time the plan was handed to the shells and, when
another node owned it before (a takeover), the time this node learnt of the change that
caused the replan (:class:`Timing`, from the daemon).  On each tick the layer-2 shell's
status says when the address went ``announcing`` (the first gratuitous ARP/NA goes out at
that moment, after the probe): the two differences are the announcement and failover
durations.  A BGP route counts as announced once the plan is applied with the BGP speaker
running.  An address refused (conflict) or withdrawn before it is announced is dropped
unobserved; one still pending after :data:`PENDING_TIMEOUT` seconds too.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from ironlb import __version__
from ironlb.agent import shell_metrics
from ironlb.agent.announcements import Plan
from ironlb.agent.metric_catalog import CONTROLLER, LATENCY_BUCKETS, SPEAKER, WORK_BUCKETS, spec

# The *_created series double every counter and histogram and no dashboard reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]

#: Seconds an address may wait for its first announcement before it is no longer timed.
PENDING_TIMEOUT = 120.0


@dataclass(frozen=True)
class Timing:
    """When a replan happened (wall clock, seconds), from the daemon."""

    changed_at: float  # the first change (cluster view, live set) this replan answers
    applied_at: float  # the plan handed to the shells
    plan_seconds: float = 0.0  # computing the plan


class _Families(Collector):
    """A collector whose families are computed at scrape time by ``fn``."""

    def __init__(self, fn: Callable[[], Iterable[Metric]]) -> None:
        self.fn = fn

    def collect(self) -> Iterable[Metric]:
        return list(self.fn())


class _ApiRequests(Collector):
    """``ironlb_kube_api_requests_total``, read from the Kubernetes clients' own counts."""

    def __init__(self) -> None:
        #: Callables returning a client's counts: call (verb, group, resource) -> n.
        self.sources: list[Callable[[], Mapping[Any, int]]] = []

    def collect(self) -> Iterable[Metric]:
        family = shell_metrics.family("ironlb_kube_api_requests_total")
        totals: dict[tuple[str, str], int] = {}
        for source in self.sources:
            for call, n in dict(source()).items():
                resource = f"{call.group}/{call.resource}" if call.group else call.resource
                totals[(call.verb, resource)] = totals.get((call.verb, resource), 0) + n
        for labels, n in sorted(totals.items()):
            family.add_metric(list(labels), n)
        yield family


class Metrics:
    """What every IronLB program exports (names are part of the public interface)."""

    role = SPEAKER

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        build = self._make("ironlb_build_info")
        build.labels(__version__, platform.python_version(), self.role).set(1)
        self.healthy = self._make("ironlb_healthy")
        self.api_errors = self._make("ironlb_kube_api_errors_total")
        self.rejections = self._make("ironlb_address_rejections_total")
        self.api_requests = _ApiRequests()
        self.registry.register(self.api_requests)

    def _make(self, name: str, **kwargs: Any) -> Any:
        s = spec(name)
        if self.role not in s.roles:
            raise ValueError(f"{name} is not a {self.role} metric (agent/metric_catalog.py)")
        cls = {"counter": Counter, "gauge": Gauge, "histogram": Histogram}[s.kind]
        return cls(s.name, s.help, list(s.labels), registry=self.registry, **kwargs)

    def observe_tick(self, statuses: Mapping[str, Mapping[str, Any]], membership: Mapping[str, Any]) -> None:
        """The status board's tick (shells' and membership's status); nothing for the controller."""


class ControllerMetrics(Metrics):
    """The IPAM controller's metrics; pool and pending gauges are the leader's only."""

    role = CONTROLLER

    def __init__(self, registry: CollectorRegistry | None = None):
        super().__init__(registry)
        self.leader = self._make("ironlb_controller_leader")
        self.terms = self._make("ironlb_controller_terms_total")
        self.allocations = self._make("ironlb_allocations_total")
        self.records_rewritten = self._make("ironlb_records_rewritten_total")
        self.reconcile_seconds = self._make("ironlb_reconcile_duration_seconds", buckets=WORK_BUCKETS)
        self.pool_size = self._make("ironlb_pool_addresses")
        self.pool_used = self._make("ironlb_pool_addresses_used")
        self.pending = self._make("ironlb_services_pending")
        self._pools: set[tuple[str, str]] = set()
        self._reasons: set[str] = set()

    def observe_leadership(self, leader: bool) -> None:
        self.leader.set(1 if leader else 0)
        if leader:
            self.terms.inc()
        else:  # a standby reports no pool usage: sum() over replicas stays right
            self.observe_usage({})
            self.observe_pending(())

    def observe_usage(self, usage: Mapping[str, Any]) -> None:
        """``usage``: ironlb.ipam PoolUsage values by pool name; pools gone are removed."""
        now = set()
        for name, u in usage.items():
            for family in (4, 6):
                key = (name, f"ipv{family}")
                now.add(key)
                self.pool_used.labels(*key).set(u.used.get(family, 0))
                self.pool_size.labels(*key).set(u.size.get(family, 0))
        for key in self._pools - now:
            self.pool_used.remove(*key)
            self.pool_size.remove(*key)
        self._pools = now

    def observe_pending(self, reasons: Iterable[str]) -> None:
        """The reason of every Service whose allocation fails now (a reason gone reads 0)."""
        counts: dict[str, int] = {}
        for reason in reasons:
            counts[reason] = counts.get(reason, 0) + 1
        self._reasons.update(counts)
        for reason in self._reasons:
            self.pending.labels(reason).set(counts.get(reason, 0))


class SpeakerMetrics(Metrics):
    """The speaker's metrics (see the module docstring)."""

    role = SPEAKER

    def __init__(self, registry: CollectorRegistry | None = None):
        super().__init__(registry)
        self.announcements = self._make("ironlb_announcements")
        self.failovers = self._make("ironlb_failovers_total")
        self.replans = self._make("ironlb_replans_total")
        self.plan_seconds = self._make("ironlb_plan_duration_seconds", buckets=WORK_BUCKETS)
        self.announce_seconds = self._make("ironlb_announcement_duration_seconds", buckets=LATENCY_BUCKETS)
        self.failover_seconds = self._make("ironlb_failover_duration_seconds", buckets=LATENCY_BUCKETS)
        self.rejected = self._make("ironlb_rejected_addresses")
        self.conflicts = self._make("ironlb_address_conflicts")
        self.timer = AnnounceTimer()
        self.statuses: Mapping[str, Mapping[str, Any]] = {}
        self.membership: Mapping[str, Any] = {}
        self._rejected_seen: frozenset[tuple[str, str, str]] = frozenset()
        self._rejected_reasons: set[str] = set()
        self.registry.register(_Families(lambda: shell_metrics.families(self.statuses, self.membership)))

    def observe_plan(self, plan: Plan, previous: Plan | None, timing: Timing | None = None) -> None:
        self.announcements.labels("layer2").set(len(plan.l2))
        self.announcements.labels("bgp").set(len(plan.bgp))
        self.replans.inc()
        if timing is not None:
            self.plan_seconds.observe(timing.plan_seconds)
        for _ in self.timer.planned(plan, previous, timing):
            self.failovers.labels("layer2").inc()

    def observe_tick(self, statuses: Mapping[str, Mapping[str, Any]], membership: Mapping[str, Any]) -> None:
        self.statuses, self.membership = statuses, membership
        conflicts = 0
        for status in statuses.values():
            found = status.get("conflicts") or ()
            conflicts += len(found) if isinstance(found, (list, tuple, Mapping)) else 0
        self.conflicts.set(conflicts)
        for mode, announce, failover in self.timer.settle(statuses, time.time()):
            self.announce_seconds.labels(mode).observe(announce)
            if failover is not None:
                self.failover_seconds.labels(mode).observe(failover)

    def observe_rejections(self, rejected: Mapping[str, Iterable[Any]]) -> list[tuple[str, Any]]:
        """A view's ``rejected`` (service -> Rejected): set the gauge, count and return the new ones."""
        now = {(svc, r.ip, r.reason): r for svc, rows in rejected.items() for r in rows}
        new = sorted((k, r) for k, r in now.items() if k not in self._rejected_seen)
        self._rejected_seen = frozenset(now)
        by_reason: dict[str, int] = {}
        for _, _, reason in now:
            by_reason[reason] = by_reason.get(reason, 0) + 1
        self._rejected_reasons.update(by_reason)
        for reason in self._rejected_reasons:  # a reason that went away reads 0, not its last count
            self.rejected.labels(reason).set(by_reason.get(reason, 0))
        for (_, _, reason), _r in new:
            self.rejections.labels(reason).inc()
        return [(svc, r) for (svc, _, _), r in new]


class AnnounceTimer:
    """Addresses waiting for their first announcement on this node (see the module docstring)."""

    def __init__(self) -> None:
        #: (mode, ip) -> (applied_at, changed_at when a takeover else None)
        self.pending: dict[tuple[str, str], tuple[float, float | None]] = {}

    def planned(self, plan: Plan, previous: Plan | None, timing: Timing | None) -> list[str]:
        """Note the addresses ``plan`` newly gives this node; return those it takes over."""
        before_l2 = {a.ip for a in previous.l2} if previous else set()
        before_bgp = {r.prefix for r in previous.bgp} if previous else set()
        if self.pending:
            wanted = {("layer2", a.ip) for a in plan.l2} | {("bgp", r.prefix) for r in plan.bgp}
            for key in [k for k in self.pending if k not in wanted]:
                del self.pending[key]
        new = [a for a in plan.l2 if a.ip not in before_l2]
        owners: dict[str, tuple[str, ...]] = {}
        if new and previous is not None:  # the cluster-wide table only when this node gained some
            owners = {o.ip: o.nodes for o in previous.ownership if o.mode == "layer2"}
        takeovers = []
        for a in new:
            old = owners.get(a.ip) or ()
            takeover = bool(old) and plan.node not in old
            if takeover:
                takeovers.append(a.ip)
            if timing is not None:
                self.pending[("layer2", a.ip)] = (timing.applied_at, timing.changed_at if takeover else None)
        if timing is not None:
            for r in plan.bgp:
                if r.prefix not in before_bgp:
                    self.pending[("bgp", r.prefix)] = (timing.applied_at, None)
        return takeovers

    def settle(
        self, statuses: Mapping[str, Mapping[str, Any]], now: float
    ) -> list[tuple[str, float, float | None]]:
        """(mode, announcement s, failover s or None) for every pending address now announced."""
        if not self.pending:
            return []
        addresses: dict[str, Mapping[str, Any]] = {}
        bgp_running = False
        for status in statuses.values():
            found = status.get("addresses")
            if isinstance(found, Mapping):
                addresses.update(found)
            speaker = status.get("speaker")
            if isinstance(speaker, Mapping) and speaker.get("state") == "running":
                bgp_running = True
        out: list[tuple[str, float, float | None]] = []
        for key, (applied, changed) in list(self.pending.items()):
            mode, ip = key
            if now - applied > PENDING_TIMEOUT:
                del self.pending[key]
                continue
            if mode == "bgp":
                if bgp_running:
                    del self.pending[key]
                    out.append((mode, max(0.0, now - applied), None))
                continue
            row = addresses.get(ip)
            state = row.get("state") if isinstance(row, Mapping) else None
            if state in ("conflict", "no-interface", "withdrawn"):
                del self.pending[key]
            elif state == "announcing" and isinstance(row, Mapping):
                since = float(row.get("since") or now)
                if since >= applied - 0.001:  # not an announcement left from an earlier plan
                    del self.pending[key]
                    out.append((mode, since - applied, None if changed is None else since - changed))
        return out
