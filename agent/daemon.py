"""The daemon: wires a Source, Membership, the pure planner and the shells together.

Loop: every new cluster view (source) and every change of the live set (membership)
marks the state dirty; one replan task then computes ``plan(view, node)`` and hands the
whole plan to each shell *in order* (shells act only on the difference).  Bursts of
changes coalesce into one replan.  A shell that raises is logged and retried on the next
change; it never stops the others.

Shutdown (cancellation, SIGTERM): in ``finally`` and under :func:`asyncio.shield`, every
shell's ``close()`` runs (withdraw: stop answering ARP/NDP, withdraw routes) while the
membership leaves gracefully, so the successor takes over at once.

Extension points -- keep these one-line edits:

- :func:`build_shells` returns the shells, in apply order (layer 2 first; the BGP shell
  is appended by the BGP work).
- :attr:`Daemon.hooks`: callables ``hook(plan, view)`` run after every apply (metrics,
  Kubernetes status); exceptions are logged, never fatal.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any, Protocol

from agent import planner
from agent.announcements import Plan
from agent.interfaces import MembershipView, Shell, Source
from agent.settings import Settings
from agent.view import ClusterView

log = logging.getLogger(__name__)

#: Seconds before a failed apply is retried when nothing else changes.
RETRY_AFTER = 5.0

Hook = Callable[[Plan, ClusterView], "Awaitable[None] | None"]


class Membership(MembershipView, Protocol):
    """What the daemon needs of membership beyond :class:`MembershipView`."""

    def update_peers(self, peers: Mapping[str, str]) -> None: ...
    async def start(self) -> None: ...
    async def stop(self, graceful: bool) -> None: ...


def build_shells(settings: Settings, *, peer_addresses: Callable[[], frozenset[str]]) -> list[Shell]:
    """The shells this agent runs, in apply order. ``peer_addresses``: other nodes' addresses now."""
    from agent.l2.shell import L2Shell

    shells: list[Shell] = [L2Shell(settings.node, settings.l2, peer_addresses=peer_addresses)]
    from agent.bgp.shell import BGPShell

    shells.append(BGPShell(settings.node, getattr(settings, "bgp", None)))
    return shells


def build_membership(settings: Settings) -> Membership | None:
    """Gossip membership (agent.membership), or None for ``static`` (every node's agent alive)."""
    if settings.membership.mode == "static":
        return None
    from agent.membership import Membership as Gossip
    from agent.membership.settings import MembershipSettings, load_key

    assert settings.membership.key_file is not None  # Settings checked it
    opts = settings.membership
    ms = MembershipSettings(
        interval=opts.interval,
        dead_after=opts.dead_after,
        suspect_after=min(2, opts.dead_after),
        port=opts.port,
    )
    member: Membership = Gossip(settings.node, load_key(str(opts.key_file)), ms)
    return member


class Daemon:
    """One agent: replans on every change and applies the plan to every shell."""

    def __init__(
        self, settings: Settings, source: Source, shells: list[Shell], membership: Membership | None = None
    ) -> None:
        self.settings = settings
        self.source = source
        self.shells = shells
        self.membership = membership
        self.hooks: list[Hook] = []
        self.view: ClusterView | None = None
        self.plan: Plan | None = None
        self.replans = 0
        self._dirty = asyncio.Event()
        self._status_dirty = asyncio.Event()
        for shell in shells:
            if hasattr(shell, "on_change"):
                shell.on_change = self._status_dirty.set
        self._ready = asyncio.Event()
        self._closed = False

    # --- status ---------------------------------------------------------------------------

    def peer_addresses(self) -> frozenset[str]:
        """Addresses of every other node in the current view (used to tell peers from conflicts)."""
        if self.view is None:
            return frozenset()
        return frozenset(
            a for n in self.view.nodes.values() if n.name != self.settings.node for a in n.addresses
        )

    def status(self) -> dict[str, Any]:
        plan = self.plan
        return {
            "node": self.settings.node,
            "replans": self.replans,
            "live": sorted(self.membership.live()) if self.membership else None,
            "ownership": [
                {
                    "ip": o.ip,
                    "mode": o.mode,
                    "nodes": list(o.nodes),
                    "reason": o.reason,
                    "services": list(o.services),
                }
                for o in (plan.ownership if plan else ())
            ],
            "l2": [a.ip for a in plan.l2] if plan else [],
            "unannounced": dict(plan.unannounced) if plan else {},
            "shells": {type(s).__name__: s.status() for s in self.shells},
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
                tg.create_task(self._watch_source(), name="source")
                await self._ready.wait()
                if self.membership is not None:
                    await self.membership.start()
                    tg.create_task(self._watch_membership(), name="membership")
                self._dirty.set()
                tg.create_task(self._replan_loop(), name="replan")
                if self.settings.daemon.status_file is not None:
                    tg.create_task(self._status_loop(), name="status")
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
                    }
                )
            self._ready.set()
            self._dirty.set()

    async def _watch_membership(self) -> None:
        assert self.membership is not None
        async for live in self.membership.changes():
            log.info("live agents: %s", ", ".join(sorted(live)))
            self._dirty.set()

    async def _status_loop(self) -> None:
        """Rewrite the status file on a shell state change (at most 10/s) and at least once a second."""
        while True:
            with contextlib.suppress(TimeoutError):  # also refresh counters once a second
                await asyncio.wait_for(self._status_dirty.wait(), 1.0)
            self._status_dirty.clear()
            try:
                self._write_status()
            except OSError as exc:
                log.warning("cannot write status file: %s", exc)
            await asyncio.sleep(0.1)

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
        live = self.membership.live() if self.membership is not None else None
        view = replace(self.view, live_members=live)
        new = planner.plan(view, self.settings.node)
        self.plan = new
        self.replans += 1
        for shell in self.shells:
            try:
                await shell.apply(new)
            except Exception:
                log.exception(
                    "%s failed to apply the plan; retrying in %s s", type(shell).__name__, RETRY_AFTER
                )
                asyncio.get_running_loop().call_later(RETRY_AFTER, self._dirty.set)
        for hook in self.hooks:
            try:
                result = hook(new, view)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("hook %r failed", hook)
        try:
            self._write_status()
        except OSError as exc:
            log.warning("cannot write status file: %s", exc)
        return new
