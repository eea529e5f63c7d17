"""The layer-2 shell: turns the plan's L2 announcements into answering ARP/NDP.

For every announced address the shell picks interfaces (the announcement's, else the
agent's ``--interfaces``, else the one whose subnet holds the address; NOARP links and
bond/bridge members are skipped) and keeps one :mod:`responder <agent.l2.responders>` per
interface and family.

Life of an address (``status()["addresses"][ip]["state"]``):

- ``probing`` -- new to the cluster (no other node owned it in the previous plan, or the
  agent just started): RFC 5227 ARP probes / DAD-style NS are sent; any non-IronLB MAC
  that claims the address makes it a ``conflict``.  Takeovers from another node skip the
  probe: the old owner may still be answering for a few milliseconds, and waiting would
  lengthen every failover.
- ``announcing`` -- answering; gratuitous ARP (both forms) / unsolicited NA sent at once
  and again at each ``garp_schedule`` offset, and every ``garp_interval`` if the
  advertisement asks for a periodic refresh.
- ``conflict`` -- another host answers for it: not announced; logged, counted, shown in
  status, and probed again after ``conflict_retry`` seconds.
- ``no-interface`` -- no usable interface holds the address; retried on the next plan.

``close()`` stops answering everywhere at once (the successor's GARP then wins).
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

from agent import netlink
from agent.announcements import L2Announcement, Plan
from agent.l2 import packets as pk
from agent.l2.responders import ArpResponder, NdpResponder, PeerMacs, _Responder
from agent.settings import L2Settings

log = logging.getLogger(__name__)


@dataclass
class _Entry:
    ann: L2Announcement
    packed: bytes
    family: int
    interfaces: tuple[str, ...] = ()
    state: str = "new"
    since: float = field(default_factory=time.time)
    conflict: dict[str, Any] | None = None
    next_refresh: float | None = None


class L2Shell:
    """:class:`agent.interfaces.Shell` for layer 2."""

    def __init__(
        self, node: str, settings: L2Settings, peer_addresses: Callable[[], frozenset[str]] = frozenset
    ) -> None:
        self.node = node
        self.settings = settings
        self.peer_addresses = peer_addresses
        self.peers = PeerMacs()
        self.counters: Counter[str] = Counter()
        self.entries: dict[str, _Entry] = {}
        self.responders: dict[tuple[str, int], _Responder] = {}
        self.skipped: dict[str, str] = {}  # interface -> why it is not used
        self.last_garp_burst_ms: float | None = None
        self._prev: Plan | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        #: Called whenever an address changes state (the daemon refreshes its status file).
        self.on_change: Callable[[], None] = lambda: None

    # --- Shell protocol -------------------------------------------------------------------

    async def apply(self, plan: Plan) -> None:
        if self._closed:
            return
        self.peers.update(self.peer_addresses())
        prev_owner = {
            o.ip: o.nodes for o in (self._prev.ownership if self._prev else ()) if o.mode == "layer2"
        }
        first = self._prev is None
        self._prev = plan
        wanted = {a.ip: a for a in plan.l2}
        for ip in [ip for ip in self.entries if ip not in wanted]:
            self._withdraw(self.entries.pop(ip))
        links, nets = await asyncio.to_thread(lambda: (netlink.links(), netlink.subnets()))
        to_probe: list[_Entry] = []
        to_announce: list[_Entry] = []
        for ip, ann in wanted.items():
            entry = self.entries.get(ip)
            interfaces = self._interfaces(ann, links, nets)
            if entry is not None and entry.interfaces == interfaces and entry.ann == ann:
                continue
            if entry is not None:
                self._withdraw(entry)
            entry = _Entry(ann, pk.ip_bytes(ip), 6 if ":" in ip else 4, interfaces)
            self.entries[ip] = entry
            if not interfaces:
                entry.state = "no-interface"
                log.warning("%s: no usable interface holds this address; not announced", ip)
                continue
            self._ensure_responders(entry, links)
            takeover = bool(prev_owner.get(ip)) and prev_owner[ip][0] != self.node
            if (
                self.settings.probe
                and self.settings.probe_count
                and not takeover
                and (first or ip not in prev_owner)
            ):
                to_probe.append(entry)
            else:
                to_announce.append(entry)
        self._start_announcing(to_announce)
        if to_probe:
            self._begin_probe(to_probe)
            self._spawn(self._probe_then_announce(to_probe))
        self._close_idle()
        if any(e.ann.garp_interval for e in self.entries.values()) and not any(
            t.get_name() == "l2-refresh" for t in self._tasks
        ):
            self._spawn(self._refresh_loop(), name="l2-refresh")

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for responder in self.responders.values():
            responder.close()
        self.responders.clear()
        for entry in self.entries.values():
            entry.state = "withdrawn"

    def status(self) -> Mapping[str, Any]:
        states = Counter(e.state for e in self.entries.values())
        return {
            "addresses": {
                ip: {
                    "state": e.state,
                    "interfaces": list(e.interfaces),
                    "since": e.since,
                    **({"conflict": e.conflict} if e.conflict else {}),
                }
                for ip, e in sorted(self.entries.items())
            },
            "states": dict(states),
            "conflicts": sorted(ip for ip, e in self.entries.items() if e.state == "conflict"),
            "counters": dict(self.counters),
            "interfaces": {
                f"{name}/v{fam}": {"mac": r.mac_text, "owned": len(r.owned)}
                for (name, fam), r in sorted(self.responders.items())
            },
            "skipped_interfaces": dict(self.skipped),
            "peer_macs": sorted(pk.mac_text(m) for m in self.peers.macs),
            "last_garp_burst_ms": self.last_garp_burst_ms,
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
            responder = cls(name, link.index, link.mac, self.peers, self.counters)
            responder.start()
            self.responders[key] = responder

    def _close_idle(self) -> None:
        for key, r in list(self.responders.items()):
            if not r.owned and not r.probing:
                r.close()
                del self.responders[key]

    def _each(self, entry: _Entry) -> list[_Responder]:
        return [r for name in entry.interfaces if (r := self.responders.get((name, entry.family)))]

    def _withdraw(self, entry: _Entry) -> None:
        for r in self._each(entry):
            r.owned.discard(entry.packed)
            r.probing.pop(entry.packed, None)
            r.foreign.pop(entry.packed, None)
            if isinstance(r, NdpResponder):
                r.unlisten(entry.packed)
        entry.state = "withdrawn"

    # --- announcing -----------------------------------------------------------------------

    def _start_announcing(self, entries: list[_Entry]) -> None:
        if not entries:
            return
        now = time.monotonic()
        for e in entries:
            for r in self._each(e):
                if isinstance(r, NdpResponder) and e.packed not in r.probing:
                    r.listen(e.packed)
                r.probing.pop(e.packed, None)
                r.owned.add(e.packed)
            e.state, e.since, e.conflict = "announcing", time.time(), None
            e.next_refresh = now + e.ann.garp_interval if e.ann.garp_interval else None
        log.info(
            "announcing %d address(es): %s",
            len(entries),
            ", ".join(e.ann.ip for e in entries[:10]) + (" ..." if len(entries) > 10 else ""),
        )
        self._spawn(self._garp_schedule(entries))
        self.on_change()

    def _send_garp(self, entries: list[_Entry]) -> None:
        batches: dict[tuple[str, int], list[bytes]] = {}
        for e in entries:
            if self.entries.get(e.ann.ip) is not e or e.state != "announcing":
                continue
            for name in e.interfaces:
                batches.setdefault((name, e.family), []).append(e.packed)
        for key, addrs in batches.items():
            r = self.responders.get(key)
            if r is not None:
                r.announce(addrs)  # type: ignore[attr-defined]

    async def _garp_schedule(self, entries: list[_Entry]) -> None:
        start = time.monotonic()
        for i, offset in enumerate(self.settings.garp_schedule):
            delay = start + offset - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            t0 = time.perf_counter()
            self._send_garp(entries)
            if i == 0:
                self.last_garp_burst_ms = (time.perf_counter() - t0) * 1000

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            now = time.monotonic()
            due = [
                e
                for e in self.entries.values()
                if e.state == "announcing" and e.next_refresh is not None and e.next_refresh <= now
            ]
            for e in due:
                e.next_refresh = now + (e.ann.garp_interval or 0)
            if due:
                self._send_garp(due)
                self.counters["refreshes"] += len(due)

    # --- probing --------------------------------------------------------------------------

    def _begin_probe(self, entries: list[_Entry]) -> None:
        for e in entries:
            e.state, e.since = "probing", time.time()
            for r in self._each(e):
                r.probing[e.packed] = set()
                if isinstance(r, NdpResponder):
                    r.listen(e.packed)

    async def _probe_then_announce(self, entries: list[_Entry]) -> None:
        for r in {id(r): r for e in entries for r in self._each(e)}.values():
            if isinstance(r, ArpResponder):
                r.ask_peers()
        for i in range(self.settings.probe_count):
            if i:
                await asyncio.sleep(self.settings.probe_interval)
            batches: dict[int, tuple[_Responder, list[bytes]]] = {}
            for e in entries:
                if self.entries.get(e.ann.ip) is e and e.state == "probing":
                    for r in self._each(e):
                        batches.setdefault(id(r), (r, []))[1].append(e.packed)
            for r, addrs in batches.values():
                r.probe(addrs)  # type: ignore[attr-defined]
        await asyncio.sleep(self.settings.probe_wait)
        try:
            known = await asyncio.to_thread(netlink.neighbour_macs, self.peer_addresses())
            self.peers.macs.update(pk.mac_bytes(m) for m in known)
        except (netlink.NetlinkError, ValueError) as exc:
            log.debug("cannot read peer MACs from the neighbour table: %s", exc)
        clean: list[_Entry] = []
        for e in entries:
            if self.entries.get(e.ann.ip) is not e or e.state != "probing":
                continue
            claims = {
                (r.ifname, mac)
                for r in self._each(e)
                for mac in r.probing.get(e.packed, ())
                if mac not in self.peers.macs
            }
            if claims:
                ifname, mac = sorted(claims)[0]
                self._conflict(e, ifname, mac)
            else:
                clean.append(e)
        self._start_announcing(clean)

    def _conflict(self, e: _Entry, ifname: str, mac: bytes) -> None:
        for r in self._each(e):
            r.probing.pop(e.packed, None)
            if isinstance(r, NdpResponder):
                r.unlisten(e.packed)
        e.state, e.since = "conflict", time.time()
        e.conflict = {
            "mac": pk.mac_text(mac),
            "interface": ifname,
            "detected": time.time(),
            "retry_in": self.settings.conflict_retry,
        }
        self.counters["conflicts"] += 1
        log.warning(
            "CONFLICT: %s is already in use on %s by %s; not announcing it (probing again in %s s)",
            e.ann.ip,
            ifname,
            pk.mac_text(mac),
            self.settings.conflict_retry,
        )
        asyncio.get_running_loop().call_later(self.settings.conflict_retry, self._reprobe, e)
        self.on_change()

    def _reprobe(self, e: _Entry) -> None:
        if not self._closed and self.entries.get(e.ann.ip) is e and e.state == "conflict":
            self._begin_probe([e])
            self._spawn(self._probe_then_announce([e]))

    def _spawn(self, coro: Any, name: str | None = None) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("layer-2 task %s failed", task.get_name(), exc_info=task.exception())
