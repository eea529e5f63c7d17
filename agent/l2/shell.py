"""The layer-2 shell: turns the plan's L2 announcements into answering ARP/NDP.

For every announced address the shell picks interfaces (the announcement's, else the
agent's ``interfaces`` setting, else the one whose subnet holds the address; NOARP links
and bond/bridge members are skipped) and keeps one :mod:`responder <agent.l2.responders>`
per interface and family.  What a claim by another host means is decided by the pure
rules in :mod:`ironlb.agent.l2.conflicts`; this module sends, sleeps and reports.

Life of an address (``status()["addresses"][ip]["state"]``):

- ``probing`` -- before every first announcement on this node (new address, takeover,
  agent start): RFC 5227 ARP probes / DAD-style NS, ``probe_count`` of them
  ``probe_interval`` apart, then ``probe_wait`` of listening.  A quiet round -> announce.
  A claimant that keeps answering past ``handover_grace`` -> ``conflict``; one that stops
  (the previous owner handing over) -> announce after the next quiet round.
- ``announcing`` -- answering; gratuitous ARP (both forms) / unsolicited NA sent at once
  and again at each ``garp_schedule`` offset, and every ``garp_interval`` if the
  advertisement asks for a periodic refresh.  A foreign claim is defended (one
  announcement per DEFEND_INTERVAL) and reported as a ``defending`` conflict; the
  address is probed every WATCH_INTERVAL until the other host is gone.
- ``conflict`` -- another host holds it: not announced; logged, counted, reported
  (``refused``), and probed again after 1 s, 2 s, 4 s ... up to ``conflict_retry``.
- ``no-interface`` -- no usable interface holds the address; retried on the next plan.

``on_change()`` is called on every state change (the daemon refreshes status and
metrics).  ``close()`` stops answering everywhere at once (the successor's GARP then wins).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ironlb.agent import netlink
from ironlb.agent.announcements import L2Announcement, Plan
from ironlb.agent.l2 import packets as pk
from ironlb.agent.l2.conflicts import DEFEND_INTERVAL, Claim, Guard, Verdict, retry_delay
from ironlb.agent.l2.responders import ArpResponder, NdpResponder, _Responder
from ironlb.agent.settings import L2Settings

log = logging.getLogger(__name__)

TICK = 0.25  # seconds between housekeeping passes (refresh, retries, contested addresses)
WATCH_INTERVAL = 2.0  # seconds between probes of an address a foreign host contests
CLEAR_AFTER = 3 * WATCH_INTERVAL  # a defending conflict with no claim for this long is over


@dataclass
class _Entry:
    ann: L2Announcement
    packed: bytes
    family: int
    interfaces: tuple[str, ...] = ()
    state: str = "new"
    since: float = field(default_factory=time.time)
    guard: Guard = field(init=False)
    probing: bool = False  # a probe round is running for it
    next_refresh: float | None = None  # monotonic: periodic GARP (garp_interval)
    retry_at: float | None = None  # monotonic: next probe of a refused address
    next_watch: float | None = None  # monotonic: next probe of a contested address

    def __post_init__(self) -> None:
        self.guard = Guard(self.ann.ip)


class L2Shell:
    """:class:`ironlb.agent.interfaces.Shell` for layer 2."""

    def __init__(self, node: str, settings: L2Settings) -> None:
        self.node = node
        self.settings = settings
        self.counters: Counter[str] = Counter()
        self.entries: dict[str, _Entry] = {}
        self.responders: dict[tuple[str, int], _Responder] = {}
        self.skipped: dict[str, str] = {}  # interface -> why it is not used
        self.own_macs: set[bytes] = set()  # every MAC of this host: never a foreign claim
        self.last_garp_burst_ms: float | None = None
        self.last_probe_ms: float | None = None  # first probe to announcing, last clean probe
        self._by_packed: dict[bytes, _Entry] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._ticking = False
        self._closed = False
        #: Called whenever an address changes state (the daemon refreshes status and metrics).
        self.on_change: Callable[[], None] = lambda: None

    # --- Shell protocol -------------------------------------------------------------------

    async def apply(self, plan: Plan) -> None:
        if self._closed:
            return
        wanted = {a.ip: a for a in plan.l2}
        for ip in [ip for ip in self.entries if ip not in wanted]:
            self._withdraw(self.entries.pop(ip))
        links, nets = await asyncio.to_thread(lambda: (netlink.links(), netlink.subnets()))
        self.own_macs.clear()
        self.own_macs.update(pk.mac_bytes(link.mac) for link in links.values() if link.mac.count(":") == 5)
        self.own_macs.discard(pk.ZERO_MAC)
        to_probe: list[_Entry] = []
        to_announce: list[_Entry] = []
        for ip, ann in wanted.items():
            entry = self.entries.get(ip)
            interfaces = self._interfaces(ann, links, nets)
            if entry is not None and entry.interfaces == interfaces:
                self._update(entry, ann)
                continue
            if entry is not None:
                self._withdraw(entry)
            entry = _Entry(ann, pk.ip_bytes(ip), 6 if ":" in ip else 4, interfaces)
            self.entries[ip] = entry
            self._by_packed[entry.packed] = entry
            if not interfaces:
                entry.state = "no-interface"
                log.warning("%s: no usable interface holds this address; not announced", ip)
                continue
            self._ensure_responders(entry, links)
            probe = self.settings.probe and self.settings.probe_count > 0
            (to_probe if probe else to_announce).append(entry)
        self._start_announcing(to_announce)
        self._probe(to_probe)
        self._close_idle()
        if not self._ticking:
            self._ticking = True
            self._spawn(self._tick_loop(), name="l2-tick")
        self.on_change()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            # _done already logged any failure with its traceback; close must go on withdrawing
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for responder in self.responders.values():
            responder.close()
        self.responders.clear()
        for entry in self.entries.values():
            entry.state = "withdrawn"

    def status(self) -> Mapping[str, Any]:
        states = Counter(e.state for e in self.entries.values())
        details = [e.guard.conflict.as_dict() for _, e in sorted(self.entries.items()) if e.guard.conflict]
        return {
            "addresses": {
                ip: {
                    "state": e.state,
                    "interfaces": list(e.interfaces),
                    "since": e.since,
                    **({"conflict": e.guard.conflict.as_dict()} if e.guard.conflict else {}),
                }
                for ip, e in sorted(self.entries.items())
            },
            "states": dict(states),
            "conflicts": sorted(ip for ip, e in self.entries.items() if e.state == "conflict"),
            "conflict_details": details,
            "counters": dict(self.counters),
            "interfaces": {
                f"{name}/v{fam}": {"mac": r.mac_text, "owned": len(r.owned)}
                for (name, fam), r in sorted(self.responders.items())
            },
            "skipped_interfaces": dict(self.skipped),
            "last_garp_burst_ms": self.last_garp_burst_ms,
            "last_probe_ms": self.last_probe_ms,
        }

    # --- interfaces and responders ----------------------------------------------------------

    def _interfaces(
        self, ann: L2Announcement, links: Mapping[str, netlink.Link], nets: list[Any]
    ) -> tuple[str, ...]:
        names = ann.interfaces or self.settings.interfaces
        if not names:
            found = netlink.interface_for(ann.ip, dict(links), nets)
            names = (found,) if found else ()
        usable = []
        by_index = {link.index: link for link in links.values()}
        for name in names:
            link = links.get(name)
            why = None
            if link is None:
                why = "does not exist"
            elif link.noarp:
                why = "is NOARP or loopback"
            elif link.master is not None and getattr(by_index.get(link.master), "kind", None) in (
                "bond",
                "bridge",
            ):
                why = "is a bond or bridge member (the address is answered on its master)"
            if why:
                if self.skipped.get(name) != why:
                    log.warning("interface %s %s; not answering there", name, why)
                self.skipped[name] = why
            else:
                usable.append(name)
        return tuple(sorted(usable))

    def _ensure_responders(self, entry: _Entry, links: Mapping[str, netlink.Link]) -> None:
        for name in entry.interfaces:
            key = (name, entry.family)
            if key in self.responders:
                continue
            link = links[name]
            cls = ArpResponder if entry.family == 4 else NdpResponder
            responder = cls(name, link.index, link.mac, self.own_macs, self.counters, self._on_claim)
            responder.start()
            self.responders[key] = responder

    def _close_idle(self) -> None:
        needed = {
            (name, e.family)
            for e in self.entries.values()
            if e.state not in ("withdrawn", "no-interface")
            for name in e.interfaces
        }
        for key, r in list(self.responders.items()):
            if key not in needed:
                r.close()
                del self.responders[key]

    def _each(self, entry: _Entry) -> list[_Responder]:
        return [r for name in entry.interfaces if (r := self.responders.get((name, entry.family)))]

    def _current(self, e: _Entry) -> bool:
        return not self._closed and self.entries.get(e.ann.ip) is e

    def _update(self, entry: _Entry, ann: L2Announcement) -> None:
        """Same address, same interfaces: only services or the refresh interval changed."""
        if entry.ann.garp_interval != ann.garp_interval and entry.state == "announcing":
            entry.next_refresh = time.monotonic() + ann.garp_interval if ann.garp_interval else None
        entry.ann = ann

    def _withdraw(self, entry: _Entry) -> None:
        for r in self._each(entry):
            r.owned.discard(entry.packed)
            r.probing.discard(entry.packed)
            r.unlisten(entry.packed)
        if self._by_packed.get(entry.packed) is entry:
            del self._by_packed[entry.packed]
        entry.state, entry.probing = "withdrawn", False

    # --- announcing -----------------------------------------------------------------------

    def _start_announcing(self, entries: list[_Entry]) -> None:
        if not entries:
            return
        now, wall = time.monotonic(), time.time()
        for e in entries:
            for r in self._each(e):
                r.probing.discard(e.packed)
                r.owned.add(e.packed)
                r.listen(e.packed)
            e.state, e.since, e.probing, e.retry_at, e.next_watch = "announcing", wall, False, None, None
            e.next_refresh = now + e.ann.garp_interval if e.ann.garp_interval else None
        log.info(
            "announcing %d address(es): %s",
            len(entries),
            ", ".join(e.ann.ip for e in entries[:10]) + (" ..." if len(entries) > 10 else ""),
        )
        schedule = self.settings.garp_schedule
        if schedule and schedule[0] <= 0:  # the first burst now, not one loop turn later
            t0 = time.perf_counter()
            self._send_garp(entries)
            self.last_garp_burst_ms = (time.perf_counter() - t0) * 1000
            schedule = schedule[1:]
        if schedule:
            self._spawn(self._garp_schedule(entries, now, schedule))
        self.on_change()

    def _send_garp(self, entries: list[_Entry]) -> None:
        batches: dict[tuple[str, int], list[bytes]] = {}
        for e in entries:
            if self._current(e) and e.state == "announcing":
                for name in e.interfaces:
                    batches.setdefault((name, e.family), []).append(e.packed)
        for key, addrs in batches.items():
            r = self.responders.get(key)
            if r is not None:
                r.announce(addrs)

    async def _garp_schedule(self, entries: list[_Entry], start: float, offsets: tuple[float, ...]) -> None:
        for offset in offsets:
            delay = start + offset - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            self._send_garp(entries)

    # --- claims by other hosts ---------------------------------------------------------------

    def _on_claim(self, responder: _Responder, addr: bytes, mac: bytes | None, kind: str) -> None:
        e = self._by_packed.get(addr)
        if e is None:
            return
        self.counters["claims"] += 1
        claim = Claim(responder.ifname, pk.mac_text(mac) if mac else "unknown", kind)
        if e.probing:
            e.guard.claimed_while_probing(claim)
            return
        if e.state != "announcing":
            return
        defend, changed = e.guard.claimed_while_announcing(claim, time.monotonic(), time.time())
        if e.next_watch is None:
            e.next_watch = time.monotonic() + WATCH_INTERVAL
        if defend:
            self.counters["defences"] += 1
            responder.announce([addr])
            log.warning(
                "CONFLICT: %s is claimed on %s by %s (%s); keeping it and defending (RFC 5227, "
                "at most once per %s s)",
                e.ann.ip,
                responder.ifname,
                claim.mac,
                kind,
                DEFEND_INTERVAL,
            )
        if changed:
            self.on_change()

    # --- probing --------------------------------------------------------------------------

    def _probe(self, entries: list[_Entry]) -> None:
        """Start probing ``entries`` (new, takeover or retry); the outcome arrives later."""
        if not entries:
            return
        now, wall = time.monotonic(), time.time()
        for e in entries:
            if e.state != "conflict":  # a refused address stays "conflict" while it is re-probed
                e.state, e.since = "probing", wall
            e.probing = True
            e.guard.start_probe(now, self.settings.handover_grace)
            for r in self._each(e):
                r.probing.add(e.packed)
                r.listen(e.packed)
        self._spawn(self._probe_rounds(entries))

    async def _probe_rounds(self, entries: list[_Entry]) -> None:
        pending, count, start = entries, self.settings.probe_count, time.monotonic()
        while pending:
            for i in range(count):
                if i:
                    await asyncio.sleep(self.settings.probe_interval)
                self._send_probes([e for e in pending if self._current(e) and e.probing])
            await asyncio.sleep(self.settings.probe_wait)
            now, wall = time.monotonic(), time.time()
            clean, again = [], []
            for e in pending:
                if not (self._current(e) and e.probing):
                    continue
                verdict = e.guard.end_round(now, wall)
                if verdict is Verdict.ANNOUNCE:
                    clean.append(e)
                elif verdict is Verdict.REFUSE:
                    self._refuse(e)
                else:
                    again.append(e)
            if clean:
                self.last_probe_ms = round((now - start) * 1000, 1)
            self._start_announcing(clean)
            pending, count = again, 1  # later rounds: one probe, then listen

    def _send_probes(self, entries: list[_Entry]) -> None:
        batches: dict[int, tuple[_Responder, list[bytes]]] = {}
        for e in entries:
            for r in self._each(e):
                batches.setdefault(id(r), (r, []))[1].append(e.packed)
        for r, addrs in batches.values():
            r.probe(addrs)

    def _refuse(self, e: _Entry) -> None:
        for r in self._each(e):
            r.probing.discard(e.packed)
            r.unlisten(e.packed)
        delay = retry_delay(e.guard.attempts, self.settings.conflict_retry)
        e.probing, e.retry_at = False, time.monotonic() + delay
        conflict = e.guard.conflict
        assert conflict is not None
        conflict.next_probe = time.time() + delay
        if e.state == "conflict":
            log.debug("%s is still in use by %s; probing again in %.1f s", e.ann.ip, conflict.mac, delay)
            return
        e.state, e.since = "conflict", time.time()
        self.counters["conflicts"] += 1
        log.warning(
            "CONFLICT: %s is already in use on %s by %s; not announcing it (probing again in %.1f s)",
            e.ann.ip,
            conflict.interface,
            conflict.mac,
            delay,
        )
        self.on_change()

    # --- housekeeping ---------------------------------------------------------------------

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            self._tick(time.monotonic())

    def _tick(self, now: float) -> None:
        """Periodic refresh, retries of refused addresses, watching contested ones."""
        refresh, retry, watch, changed = [], [], [], False
        for e in list(self.entries.values()):
            if e.state == "announcing":
                if e.next_refresh is not None and e.next_refresh <= now:
                    e.next_refresh = now + (e.ann.garp_interval or 0)
                    refresh.append(e)
                if e.guard.clear_if_quiet(now, CLEAR_AFTER):
                    e.next_watch = None
                    changed = True
                    log.info("%s: no other host claimed it for %.0f s; conflict over", e.ann.ip, CLEAR_AFTER)
                elif e.next_watch is not None and e.next_watch <= now:
                    e.next_watch = now + WATCH_INTERVAL
                    watch.append(e)
            elif e.state == "conflict" and not e.probing and e.retry_at is not None and e.retry_at <= now:
                retry.append(e)
        if refresh:
            self._send_garp(refresh)
            self.counters["refreshes"] += len(refresh)
        self._send_probes(watch)
        self._probe(retry)
        if changed:
            self.on_change()

    def _spawn(self, coro: Any, name: str | None = None) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if task.get_name() == "l2-tick":
            self._ticking = False
        if not task.cancelled() and task.exception() is not None:
            log.error("layer-2 task %s failed", task.get_name(), exc_info=task.exception())
