"""What an agent tells the outside: metrics, health, the status table, structured logs.

- :class:`Metrics` -- one prometheus-client registry per process: allocations, pool usage,
  BGP sessions up, announcements, address conflicts, failovers, leadership, API errors,
  every Kubernetes API request by verb and resource, recorded addresses the trust check
  refused, and the layer-2 shell's counters of foreign claims, defences and NDP packets
  dropped for a bad hop limit.
- :class:`StatusBoard` -- health, readiness and the status document, refreshed **on the
  event loop** by :meth:`StatusBoard.tick` (the speaker's daemon ticks it every second and
  at once when a shell changes state; the controller ticks it every second), so ``/status``
  and ``/metrics`` follow the shells within a second, whether or not anything replans.
  The HTTP threads (``agent.endpoints``) only read immutable snapshots, so they never race
  with the shells.
- Health means health: ``live()`` fails when the loop has not ticked for ``max_stall``
  seconds or a liveness check reports a problem (a shell whose status says it is broken, a
  replan stuck for minutes); ``ready()`` fails until a cluster view exists and every
  readiness check passes.  An idle agent keeps ticking, so it stays healthy forever.
- :func:`setup_logging` -- one JSON object per log line (ts, level, logger, msg, extras),
  or plain text: ``logFormat`` in the settings.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from agent.announcements import Ownership, Plan

log = logging.getLogger(__name__)

#: A health check: None when fine, else one sentence saying what is wrong.
Check = Callable[[], "str | None"]


class _ApiRequests(Collector):
    """``ironlb_kube_api_requests_total`` read from the Kubernetes client's own count."""

    def __init__(self) -> None:
        self.sources: list[Callable[[], Mapping[Any, int]]] = []

    def collect(self) -> Iterable[CounterMetricFamily]:
        family = CounterMetricFamily(
            "ironlb_kube_api_requests",
            "Kubernetes API requests by verb and resource",
            labels=["verb", "resource"],
        )
        totals: dict[tuple[str, str], int] = {}
        for source in self.sources:
            for call, n in dict(source()).items():
                resource = f"{call.group}/{call.resource}" if call.group else call.resource
                key = (call.verb, resource)
                totals[key] = totals.get(key, 0) + n
        for (verb, resource), n in sorted(totals.items()):
            family.add_metric([verb, resource], n)
        yield family


#: Layer-2 shell counters exported as Prometheus counters: shell key -> (metric, help).
L2_COUNTERS = {
    "claims": ("ironlb_l2_claims", "Packets from another host claiming one of our addresses"),
    "defences": ("ironlb_l2_defences", "Announcements sent to defend an address against a claim (RFC 5227)"),
    "bad_hop_limit": ("ironlb_l2_bad_hop_limit", "NDP packets dropped: hop limit not 255 (RFC 4861)"),
}


class _ShellCounters(Collector):
    """The L2 shell's own counters (read at the last tick), as ``*_total`` counters."""

    def __init__(self) -> None:
        self.values: Mapping[str, int] = {}

    def collect(self) -> Iterable[CounterMetricFamily]:
        values = self.values
        for key, (name, text) in L2_COUNTERS.items():
            family = CounterMetricFamily(name, text)
            family.add_metric([], int(values.get(key, 0)))
            yield family


class Metrics:
    """The Prometheus metrics (names are part of the public interface)."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.allocations = Counter(
            "ironlb_allocations_total",
            "Allocation attempts by result and reason",
            ["result", "reason"],
            registry=r,
        )
        self.pool_used = Gauge(
            "ironlb_pool_addresses_used",
            "Addresses in use per pool and family",
            ["pool", "family"],
            registry=r,
        )
        self.pool_size = Gauge(
            "ironlb_pool_addresses_total", "Pool size per family", ["pool", "family"], registry=r
        )
        self.sessions_up = Gauge("ironlb_bgp_sessions_up", "BGP sessions in Established state", registry=r)
        self.announcements = Gauge(
            "ironlb_announcements", "Addresses this node announces", ["mode"], registry=r
        )
        self.conflicts = Gauge(
            "ironlb_address_conflicts", "Addresses held back: in use by another host on the LAN", registry=r
        )
        self.failovers = Counter(
            "ironlb_failovers_total", "Addresses whose announcing node changed", ["mode"], registry=r
        )
        self.leader = Gauge("ironlb_controller_leader", "1 while this controller holds the Lease", registry=r)
        self.api_errors = Counter(
            "ironlb_kube_api_errors_total", "Failed Kubernetes API calls", ["operation"], registry=r
        )
        self.healthy = Gauge("ironlb_healthy", "1 while liveness passes", registry=r)
        self.rejected = Gauge(
            "ironlb_rejected_addresses",
            "Addresses in Services' status that the trust check refuses now (never announced)",
            ["reason"],
            registry=r,
        )
        self.rejections = Counter(
            "ironlb_address_rejections_total",
            "Recorded addresses refused by the trust check, counted when first seen, by reason",
            ["reason"],
            registry=r,
        )
        self.records_rewritten = Counter(
            "ironlb_records_rewritten_total",
            "Service records (annotations, status) the controller found it had not written and rewrote",
            ["field"],
            registry=r,
        )
        self.api_requests = _ApiRequests()
        r.register(self.api_requests)
        self.l2_counters = _ShellCounters()
        r.register(self.l2_counters)
        self._rejected_seen: frozenset[tuple[str, str, str]] = frozenset()
        self._rejected_reasons: set[str] = set()

    def observe_plan(self, plan: Plan, previous: Plan | None) -> None:
        self.announcements.labels("layer2").set(len(plan.l2))
        self.announcements.labels("bgp").set(len(plan.bgp))
        if previous is None:
            return
        before = {(o.ip, o.mode): o.nodes for o in previous.ownership}
        for row in plan.ownership:
            old = before.get((row.ip, row.mode))
            if old and row.nodes and old != row.nodes and row.mode == "layer2":
                self.failovers.labels(row.mode).inc()

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

    def observe_shells(self, statuses: Mapping[str, Mapping[str, Any]]) -> None:
        up = conflicts = 0
        totals = dict.fromkeys(L2_COUNTERS, 0)
        for status in statuses.values():
            sessions = status.get("sessions") or {}
            rows = sessions.values() if isinstance(sessions, Mapping) else sessions
            up += sum(
                1 for s in rows if isinstance(s, Mapping) and str(s.get("state", "")).lower() == "established"
            )
            found = status.get("conflicts") or ()
            conflicts += len(found) if isinstance(found, (list, tuple, Mapping)) else 0
            counters = status.get("counters")
            if isinstance(counters, Mapping):
                for key in L2_COUNTERS:
                    value = counters.get(key)
                    totals[key] += value if isinstance(value, int) else 0
        self.l2_counters.values = totals
        self.sessions_up.set(up)
        self.conflicts.set(conflicts)

    def observe_usage(self, usage: Mapping[str, Any]) -> None:
        """``usage``: ironlb.ipam PoolUsage values by pool name."""
        for name, u in usage.items():
            for family in (4, 6):
                self.pool_used.labels(name, f"ipv{family}").set(u.used.get(family, 0))
                self.pool_size.labels(name, f"ipv{family}").set(u.size.get(family, 0))


def ownership_rows(plan: Plan) -> list[dict[str, Any]]:
    """The plan's cluster-wide ownership table as JSON-able rows."""
    return [_row(o) for o in plan.ownership]


def _row(o: Ownership) -> dict[str, Any]:
    return {
        "ip": o.ip,
        "mode": o.mode,
        "nodes": list(o.nodes),
        "reason": o.reason,
        "services": list(o.services),
    }


def shell_statuses(shells: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Every shell's ``status()`` (a shell that raises is reported, never propagated)."""
    out: dict[str, dict[str, Any]] = {}
    for name, shell in shells.items():
        try:
            out[name] = dict(shell.status())
        except Exception as exc:  # a broken shell must not break /status or the tick
            out[name] = {"healthy": False, "problem": f"status() failed: {type(exc).__name__}: {exc}"}
    return out


def shell_problems(statuses: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Shells whose status says they are broken (``healthy: false``, with ``problem``)."""
    return [
        f"{name}: {status.get('problem') or 'unhealthy'}"
        for name, status in sorted(statuses.items())
        if status.get("healthy") is False
    ]


class StatusBoard:
    """Health, readiness and the status snapshot, taken on the loop; read from any thread."""

    def __init__(
        self,
        node: str,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        *,
        max_stall: float = 15.0,
    ):
        self.node = node
        self.metrics = metrics or Metrics()
        self.clock = clock
        self.max_stall = max_stall
        self.plan: Plan | None = None
        self.shells: dict[str, Any] = {}  # name -> object with status()
        self.statuses: dict[str, dict[str, Any]] = {}  # the shells' status at the last tick
        self.extra_fn: Callable[[], Mapping[str, Any]] | None = None  # e.g. the Kubernetes runtime's
        self.live_checks: list[Check] = []
        self.ready_checks: list[Check] = []
        self.ready = False  # a cluster view arrived (speaker) / caches synced (controller)
        self.last_tick = clock()
        self._plan_part = '"ownership": [], "unannounced": {}, "local": {"bgp": [], "l2": []}'
        self.rejected: dict[str, list[dict[str, str]]] = {}  # service -> refused recorded addresses
        self._rejected_in: Any = None
        self._snapshot = b"{}"
        self._problems: tuple[list[str], list[str]] = ([], ["not started"])
        self._lock = threading.Lock()

    def record_plan(self, plan: Plan) -> None:
        """Call after every plan is applied (the daemon's hook)."""
        self.metrics.observe_plan(plan, self.plan)
        self.plan = plan
        self.ready = True
        part = {
            "ownership": ownership_rows(plan),
            "unannounced": dict(plan.unannounced),
            "local": {"l2": [a.ip for a in plan.l2], "bgp": [r.prefix for r in plan.bgp]},
        }
        self._plan_part = json.dumps(part, default=str, sort_keys=True)[1:-1]  # encoded once per plan
        self.tick()

    def record_rejected(self, rejected: Mapping[str, Iterable[Any]]) -> None:
        """Call with every view's ``rejected``: metrics, a log line per new refusal, ``/status``."""
        if rejected is self._rejected_in:
            return
        self._rejected_in = rejected
        for svc, r in self.metrics.observe_rejections(rejected):
            log.warning(
                "not announcing %s for %s: it %s (%s); the controller reports it on the Service",
                r.ip,
                svc,
                r.message,
                r.reason,
            )
        self.rejected = {
            svc: [{"ip": r.ip, "reason": r.reason, "message": r.message} for r in rows]
            for svc, rows in sorted(rejected.items())
        }

    def refresh(self) -> None:
        """Old name of :meth:`tick`."""
        self.tick()

    def tick(self) -> None:
        """Re-read shells and checks and take a new snapshot (on the event loop)."""
        self.last_tick = self.clock()
        self.statuses = shell_statuses(self.shells)
        self.metrics.observe_shells(self.statuses)
        live = [*shell_problems(self.statuses), *_run(self.live_checks)]
        ready = [] if self.ready else ["no cluster view yet"]
        ready += [*live, *_run(self.ready_checks)]
        doc: dict[str, Any] = {
            "node": self.node,
            "ready": not ready,
            "shells": self.statuses,
            "rejected": self.rejected,
        }
        if live or ready:
            doc["problems"] = sorted(set(live + ready))
        if self.extra_fn is not None:
            try:
                doc["kubernetes"] = dict(self.extra_fn())
            except Exception as exc:  # the status document must survive a broken reporter
                doc["kubernetes"] = {"error": f"{type(exc).__name__}: {exc}"}
        rest = json.dumps(doc, default=str, sort_keys=True)
        data = ("{" + self._plan_part + ", " + rest[1:]).encode()
        self.metrics.healthy.set(0 if live else 1)
        with self._lock:
            self._snapshot = data
            self._problems = (live, ready)

    def snapshot(self) -> bytes:
        with self._lock:
            return self._snapshot

    def live(self) -> tuple[bool, str]:
        """(ok, why) for ``/healthz`` (any thread)."""
        stalled = self.clock() - self.last_tick
        if stalled >= self.max_stall:
            return False, f"event loop stalled: no tick for {stalled:.0f} s"
        with self._lock:
            live = list(self._problems[0])
        return (not live, "; ".join(live) or "ok")

    def readiness(self) -> tuple[bool, str]:
        """(ok, why) for ``/readyz`` (any thread)."""
        ok, why = self.live()
        if not ok:
            return ok, why
        with self._lock:
            ready = list(self._problems[1])
        return (not ready, "; ".join(ready) or "ok")

    def healthy(self) -> bool:
        return self.live()[0]


def _run(checks: Iterable[Check]) -> list[str]:
    out = []
    for check in checks:
        try:
            problem = check()
        except Exception as exc:  # a failing check is itself a problem to report, not a crash
            problem = f"check failed: {type(exc).__name__}: {exc}"
        if problem:
            out.append(problem)
    return out


_STD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line; ``extra=`` fields are kept as keys."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        doc.update({k: v for k, v in record.__dict__.items() if k not in _STD})
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


def setup_logging(level: str = "info", log_format: str = "json") -> None:
    """Configure the root logger once (JSON lines for machines, plain text for humans), on stderr."""
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter()
        if log_format == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
