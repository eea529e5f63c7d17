"""The daemon: runs a Source, Membership, the pure planner and the shells together.

It knows them only by the protocols of :mod:`ironlb.agent.interfaces`; the concrete parts
are built by the process's entry point (:mod:`ironlb.agent.main`).

Loop: every new cluster view (source) and every change of the live set (membership)
marks the state dirty; one replan task then computes ``plan(view, node)`` and hands the
whole plan to each shell *in order* (shells act only on the difference).  Bursts of
changes coalesce into one replan.  A shell that raises is logged and retried on the next
change; it never stops the others.

Shutdown (cancellation, SIGTERM): in ``finally`` and under :func:`asyncio.shield`, every
shell's ``close()`` runs (withdraw: stop answering ARP/NDP, withdraw routes) while the
membership leaves gracefully, so the successor takes over at once.

A heartbeat, independent of replans, ticks every second and at once (at most ten times a
second) when a shell reports a state change: it runs :attr:`Daemon.tickers` (the status
board behind ``/healthz``, ``/status`` and ``/metrics``; the NodeState reporter) and
rewrites the status file.  So an idle agent stays live, and what it reports follows the
shells within a second.  :meth:`Daemon.stuck` and :meth:`Daemon.not_ready` are the
daemon's own health checks.

Extension points -- keep these one-line edits:

- :func:`ironlb.agent.main.build_shells` returns the shells, in apply order (layer 2 first,
  then BGP).
- :attr:`Daemon.hooks`: callables ``hook(plan, view)`` run after every apply (metrics,
  Kubernetes status); exceptions are logged, never fatal.
- :attr:`Daemon.tickers`: callables run on every heartbeat (on the event loop).

For the metrics, :attr:`Daemon.timing` says when the applied plan was handed to the shells,
how long computing it took, and when this node first learnt of the change it answers (a
new cluster view, a change of the live set): the start of a takeover.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from ironlb.agent import planner
from ironlb.agent.announcements import Plan
from ironlb.agent.interfaces import Membership, Shell, Source
from ironlb.agent.metrics import Timing
from ironlb.agent.observability import ownership_rows, rejected_rows
from ironlb.agent.settings import Settings
from ironlb.agent.view import ClusterView

log = logging.getLogger(__name__)

#: Seconds before a failed apply is retried when nothing else changes.
RETRY_AFTER = 5.0
#: Seconds between heartbeats when nothing changes (and the least time between two).
TICK, MIN_TICK = 1.0, 0.1

Hook = Callable[[Plan, ClusterView], "Awaitable[None] | None"]


class Daemon:
    """One agent: replans on every change and applies the plan to every shell."""

    def __init__(
        self,
        settings: Settings,
        source: Source,
        shells: list[Shell],
        membership: Membership | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.source = source
        self.shells = shells
        self.membership = membership
        self.hooks: list[Hook] = []
        self.tickers: list[Callable[[], None]] = []
        self.view: ClusterView | None = None
        self.plan: Plan | None = None
        self.planner = planner.Planner(settings.node, check_every=planner.CHECK_EVERY)
        self.replans = 0
        self.timing: Timing | None = None  # of the last replan (wall clock), for the metrics
        self._changed_at: float | None = None  # the first change since the last replan (wall clock)
        self._dirty = asyncio.Event()
        self._status_dirty = asyncio.Event()
        for shell in shells:
            shell.on_change = self._status_dirty.set
        self._ready = asyncio.Event()
        self._closed = False
        self._members_started = membership is None
        self._replanning_since: float | None = None

    # --- health ---------------------------------------------------------------------------

    def stuck(self) -> str | None:
        """Liveness: a replan (a shell's apply) running far longer than any should."""
        since = self._replanning_since
        limit = self.settings.daemon.stuck_after
        if since is not None and self.clock() - since > limit:
            return f"a replan has been running for more than {limit:.0f} s"
        return None

    def not_ready(self) -> str | None:
        """Readiness: a cluster view exists, membership started, the first plan applied."""
        if self.view is None:
            return "no cluster view yet"
        if not self._members_started:
            return "membership not started yet"
        if self.plan is None:
            return "no plan applied yet"
        return None

    # --- status ---------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        plan, membership = self.plan, self.membership
        return {
            "node": self.settings.node,
            "replans": self.replans,
            "live": sorted(membership.live()) if membership else None,
            "ownership": ownership_rows(plan) if plan else [],
            "l2": [a.ip for a in plan.l2] if plan else [],
            "unannounced": dict(plan.unannounced) if plan else {},
            "rejected": rejected_rows(self.view.rejected if self.view else {}),
            "shells": {type(s).__name__: s.status() for s in self.shells},
            "membership": dict(membership.status()) if membership else None,
        }

    def _write_status(self) -> None:
        path = self.settings.daemon.status_file
        if path is None:
            return
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.status(), indent=1, sort_keys=True, default=str))
        os.replace(tmp, path)

    # --- running --------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until cancelled; always withdraw in ``finally``."""
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._heartbeat(), name="heartbeat")
                tg.create_task(self._watch_source(), name="source")
                await self._ready.wait()
                if self.membership is not None:
                    await self.membership.start()
                    self._members_started = True
                    tg.create_task(self._watch_membership(), name="membership")
                self._dirty.set()
                tg.create_task(self._replan_loop(), name="replan")
        finally:
            await asyncio.shield(self.close())

    async def close(self) -> None:
        """Close every shell (bounded), then leave membership gracefully. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        # Shells withdraw and membership announces LEAVE at the same time: the successor
        # should start announcing while this node stops answering, not after a slow BGP close.
        steps: list[tuple[str, Awaitable[None]]] = [(type(s).__name__, s.close()) for s in self.shells]
        if self.membership is not None:
            steps.append(("membership", self.membership.stop(graceful=True)))
        results = await asyncio.gather(
            *(asyncio.wait_for(step, self.settings.daemon.close_timeout) for _, step in steps),
            return_exceptions=True,
        )
        for (name, _), result in zip(steps, results, strict=True):
            if isinstance(result, BaseException):  # one failing shell must not stop the others' withdraw
                log.error("closing %s failed: %r", name, result)
        with contextlib.suppress(OSError):
            self._write_status()

    async def _watch_source(self) -> None:
        async for view in self.source.views():
            self.view = view
            if self.settings.node not in view.nodes:
                log.warning(
                    "node %r is not among the Node objects (%s); it will announce nothing",
                    self.settings.node,
                    ", ".join(sorted(view.nodes)) or "none",
                )
            if self.membership is not None:
                self.membership.update_peers(
                    {
                        n.name: n.addresses[0]
                        for n in view.nodes.values()
                        if n.addresses and n.name != self.settings.node
                    },
                    ready={n.name for n in view.nodes.values() if n.ready},  # the grab-all guard (ADR 0030)
                )
            self._ready.set()
            self._changed()

    async def _watch_membership(self) -> None:
        assert self.membership is not None
        async for live in self.membership.changes():
            log.info("live agents: %s", ", ".join(sorted(live)))
            self._changed()

    def _changed(self) -> None:
        """Something the plan depends on changed: replan (and remember when, for the metrics)."""
        if self._changed_at is None:
            self._changed_at = time.time()
        self._dirty.set()

    async def _heartbeat(self) -> None:
        """Tick every second, and at once (at most 10/s) when a shell changes state."""
        while True:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation
            # that lands as the event is set (gh-86296), and the heartbeat would outlive SIGTERM.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(TICK):
                    await self._status_dirty.wait()
            self._status_dirty.clear()
            self.tick()
            await asyncio.sleep(MIN_TICK)

    def tick(self) -> None:
        """Run every ticker and rewrite the status file (on the loop; never raises)."""
        for ticker in self.tickers:
            try:
                ticker()
            except Exception:  # a broken reporter must not stop the heartbeat (liveness)
                log.exception("ticker %r failed", ticker)
        try:
            self._write_status()
        except OSError as exc:
            log.warning("cannot write status file: %s", exc)

    async def _replan_loop(self) -> None:
        while True:
            await self._dirty.wait()
            if self.settings.daemon.settle:
                await asyncio.sleep(self.settings.daemon.settle)
            self._dirty.clear()
            await self.replan()

    async def replan(self) -> Plan | None:
        """Plan from the current view and live set; apply to every shell in order."""
        if self.view is None:
            return None
        changed_at, self._changed_at = self._changed_at or time.time(), None
        live = self.membership.live() if self.membership is not None else None
        view = replace(self.view, live_members=live)
        mismatches = self.planner.stats.mismatches
        started = time.perf_counter()
        new = self.planner.plan(view)  # incremental; equal to planner.plan(view, node)
        planned = time.perf_counter() - started
        if self.planner.stats.mismatches != mismatches:
            log.error("planner bug, the full plan was used instead: %s", self.planner.last_mismatch)
        self.plan = new
        self.replans += 1
        self.timing = Timing(changed_at=changed_at, applied_at=time.time(), plan_seconds=planned)
        self._replanning_since = self.clock()
        try:
            await self._apply(new, view)
        finally:
            self._replanning_since = None
        return new

    async def _apply(self, new: Plan, view: ClusterView) -> None:
        for shell in self.shells:
            try:
                await shell.apply(new)
            except Exception:  # one shell's failure must not stop the others: logged with traceback, retried
                log.exception(
                    "%s failed to apply the plan; retrying in %s s", type(shell).__name__, RETRY_AFTER
                )
                asyncio.get_running_loop().call_later(RETRY_AFTER, self._dirty.set)
        for hook in self.hooks:
            try:
                result = hook(new, view)
                if inspect.isawaitable(result):
                    await result
            except Exception:  # a hook (metrics, status) must never stop the daemon: logged with traceback
                log.exception("hook %r failed", hook)
        self._status_dirty.set()
