"""What an agent tells the outside: health, readiness, the status document, and when metrics are read.

- :class:`StatusBoard` -- health, readiness and the status document, refreshed **on the
  event loop** by :meth:`StatusBoard.tick` (the speaker's daemon ticks it every second and
  at once when a shell changes state; the controller ticks it every second), so ``/status``
  and ``/metrics`` follow the shells within a second, whether or not anything replans.
  Each tick takes every shell's ``status()`` and the membership's (peers by state, lanes,
  keys in use, isolation, counters), puts them in ``/status`` and hands them to the
  metrics (:mod:`ironlb.agent.metrics`).  The HTTP threads (``ironlb.agent.endpoints``) only read
  immutable snapshots, so they never race with the shells.
- Health means health: ``live()`` fails when the loop has not ticked for ``max_stall``
  seconds or a liveness check reports a problem (a shell whose status says it is broken, a
  replan stuck for minutes); ``ready()`` fails until a cluster view exists and every
  readiness check passes.  An idle agent keeps ticking, so it stays healthy forever.

The metric families are declared in :mod:`ironlb.agent.metric_catalog` (docs/metrics.md); log
output is :mod:`ironlb.agent.logs`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ironlb.agent.announcements import Ownership, Plan
from ironlb.agent.interfaces import Reporting, Statuses
from ironlb.agent.metrics import Metrics, SpeakerMetrics, Timing

log = logging.getLogger(__name__)

#: A health check: None when fine, else one sentence saying what is wrong.
Check = Callable[[], "str | None"]


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


def rejected_rows(rejected: Mapping[str, Iterable[Any]]) -> dict[str, list[dict[str, str]]]:
    """``view.rejected`` (service -> refused addresses) as JSON-able rows, by service."""
    return {
        svc: [{"ip": r.ip, "reason": r.reason, "message": r.message} for r in rows]
        for svc, rows in sorted(rejected.items())
    }


def shell_statuses(shells: Mapping[str, Reporting]) -> dict[str, dict[str, Any]]:
    """Every shell's ``status()`` (a shell that raises is reported, never propagated)."""
    return {name: status_of(shell) for name, shell in shells.items()}


def status_of(part: Reporting) -> dict[str, Any]:
    """One part's ``status()`` as a dict; a part that raises reports it (never propagated)."""
    try:
        return dict(part.status())
    except Exception as exc:  # a broken shell must not break /status or the tick
        return {"healthy": False, "problem": f"status() failed: {type(exc).__name__}: {exc}"}


def shell_problems(statuses: Statuses) -> list[str]:
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
        self.metrics: Metrics = metrics or SpeakerMetrics()
        self.clock = clock
        self.max_stall = max_stall
        self.plan: Plan | None = None
        self.shells: dict[str, Reporting] = {}
        self.statuses: dict[str, dict[str, Any]] = {}  # the shells' status at the last tick
        self.membership: Reporting | None = None  # the speaker's membership; None when static
        self.extra_fn: Callable[[], Mapping[str, Any]] | None = None  # e.g. the Kubernetes runtime's
        self.live_checks: list[Check] = []
        self.ready_checks: list[Check] = []
        #: Run after every tick with the last recorded plan and the shells' statuses (a source's
        #: report, e.g. the speaker's NodeState); one that raises is logged, never fatal.
        self.observers: list[Callable[[Plan | None, Statuses], None]] = []
        self.ready = False  # a cluster view arrived (speaker) / caches synced (controller)
        self.last_tick = clock()
        self._plan_part = '"ownership": [], "unannounced": {}, "local": {"bgp": [], "l2": []}'
        self.rejected: dict[str, list[dict[str, str]]] = {}  # service -> refused recorded addresses
        self._rejected_in: Any = None
        self._snapshot = b"{}"
        self._problems: tuple[list[str], list[str]] = ([], ["not started"])
        self._lock = threading.Lock()

    @property
    def speaker(self) -> SpeakerMetrics:
        """The speaker's metrics (plans and refusals are the speaker's only)."""
        if not isinstance(self.metrics, SpeakerMetrics):
            raise TypeError(f"{type(self.metrics).__name__} has no plan metrics: a speaker's board only")
        return self.metrics

    def record_plan(self, plan: Plan, timing: Timing | None = None) -> None:
        """Call after every plan is applied (the daemon's hook, with the daemon's timing)."""
        self.speaker.observe_plan(plan, self.plan, timing)
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
        for svc, r in self.speaker.observe_rejections(rejected):
            log.warning(
                "not announcing %s for %s: it %s (%s); the controller reports it on the Service",
                r.ip,
                svc,
                r.message,
                r.reason,
            )
        self.rejected = rejected_rows(rejected)

    def tick(self) -> None:
        """Re-read shells and checks and take a new snapshot (on the event loop)."""
        self.last_tick = self.clock()
        self.statuses = shell_statuses(self.shells)
        membership = status_of(self.membership) if self.membership is not None else {}
        self.metrics.observe_tick(self.statuses, membership)
        live = [*shell_problems(self.statuses), *_run(self.live_checks)]
        ready = [] if self.ready else ["no cluster view yet"]
        ready += [*live, *_run(self.ready_checks)]
        doc: dict[str, Any] = {
            "node": self.node,
            "ready": not ready,
            "shells": self.statuses,
            "rejected": self.rejected,
        }
        if self.membership is not None:
            doc["membership"] = membership
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
        for observer in self.observers:
            try:
                observer(self.plan, self.statuses)
            except Exception:  # a broken reporter must not stop the heartbeat: logged with traceback
                log.exception("status observer %r failed", observer)

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
