"""The membership shell: asyncio UDP sockets and timers around the pure :class:`Table`.

Every node sends a signed heartbeat to every other node once per period (a direct
mesh; see docs/decisions/0030-membership.md for why not SWIM gossip or Leases), checks
its peers' deadlines, and on a graceful stop sends LEAVE so successors act at once.

Sockets: with a wildcard ``bind_host`` ("0.0.0.0", "::" or "") one IPv4 and one IPv6
socket (IPV6_V6ONLY) are opened, so peers of both families work; a specific address opens
only its family.  Input is never trusted: every datagram goes through the authenticated
decoder and the table's acceptance rules; nothing a packet contains can raise out of the
receive callback.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import random
import socket
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from agent.membership.core import ALIVE, Peer, Table
from agent.membership.settings import MembershipSettings, parse_address
from agent.membership.wire import HEARTBEAT, LEAVE, Malformed, decode, encode

log = logging.getLogger("ironlb.membership")

WILDCARDS = {"", "0.0.0.0", "::"}


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, owner: Membership) -> None:
        self.owner = owner

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.owner._on_datagram(data)

    def error_received(self, exc: Exception) -> None:  # ICMP unreachable and the like
        self.owner._table.counters["send_errors"] += 1


class Membership:
    """Which agents are alive, learnt from a signed UDP heartbeat mesh."""

    def __init__(
        self,
        node: str,
        key: bytes,
        settings: MembershipSettings | None = None,
        bind_host: str = "0.0.0.0",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not node or len(node.encode()) > 253:
            raise ValueError(f"node name {node!r} must be 1-253 bytes")
        if not key:
            raise ValueError("membership key must not be empty (use load_key)")
        self.node = node
        self.settings = settings or MembershipSettings()
        self._key = key
        self._bind_host = bind_host
        self._clock = clock
        self._table = Table(node, time.time_ns(), self.settings, clock())
        self._transports: dict[int, asyncio.DatagramTransport] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._waiters: set[asyncio.Future[None]] = set()
        self._running = False
        self._closed = False
        self._states: dict[str, str] = {}

    # -- API --------------------------------------------------------------------------
    def update_peers(self, peers: Mapping[str, str]) -> None:
        """Set the members (node name -> "ip", "ip:port" or "[ip6]:port"); this node may be included."""
        parsed = {
            name: parse_address(name, text, self.settings.port)
            for name, text in peers.items()
            if name != self.node
        }
        if self._table.set_peers(parsed, self._clock()):
            self._notify()

    async def start(self) -> None:
        """Open the sockets, start heartbeats; return once every peer answered or after join_timeout."""
        if self._running:
            return
        loop = asyncio.get_running_loop()
        for family, host in self._bind_targets():
            try:
                sock = socket.socket(family, socket.SOCK_DGRAM)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind((host, self.settings.port))
            except OSError as e:
                sock.close()
                if self._bind_host in WILDCARDS and family == socket.AF_INET6:
                    log.warning("membership: no IPv6 socket on port %d (%s)", self.settings.port, e)
                    continue
                await self._close_transports()
                raise OSError(e.errno, f"membership: cannot bind UDP {host!r} port {self.settings.port}: "
                                       f"{e.strerror}") from e
            transport, _ = await loop.create_datagram_endpoint(lambda: _Protocol(self), sock=sock)
            self._transports[family] = transport
        self._running = True
        self._tasks = [
            asyncio.create_task(self._send_loop(), name=f"membership-send-{self.node}"),
            asyncio.create_task(self._check_loop(), name=f"membership-check-{self.node}"),
        ]
        await self._wait_joined(self.settings.join_timeout)

    async def stop(self, graceful: bool = True) -> None:
        """Stop; when ``graceful``, first tell every peer we LEAVE so they act at once."""
        if not self._running:
            self._finish()
            return
        self._running = False
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        try:
            if graceful:
                for i in range(self.settings.leave_repeats):
                    if i:
                        await asyncio.sleep(0.01)
                    for peer in list(self._table.peers.values()):
                        self._send(peer, LEAVE)
        finally:
            await self._close_transports()
            self._finish()

    def live(self) -> frozenset[str]:
        """Names of the nodes whose agent is alive now, this node included."""
        return self._table.live()

    async def changes(self) -> AsyncIterator[frozenset[str]]:
        """Yield the live set now, then every time it changes (a slow reader gets the newest).

        Ends when the membership is stopped.
        """
        last: frozenset[str] | None = None
        while not self._closed:
            current = self._table.live()
            if current != last:
                last = current
                yield current
                continue
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.add(waiter)
            try:
                await waiter
            finally:
                self._waiters.discard(waiter)

    def status(self) -> Mapping[str, Any]:
        """Per-peer state, last heard, counters; JSON-able."""
        now = self._clock()
        return {
            "node": self.node,
            "running": self._running,
            "incarnation": self._table.incarnation,
            "port": self.settings.port,
            "period_s": round(self._table.period(), 4),
            "live": sorted(self._table.live()),
            "peers": self._table.status(now),
            "counters": dict(self._table.counters),
        }

    # -- internals --------------------------------------------------------------------
    def _bind_targets(self) -> list[tuple[int, str]]:
        if self._bind_host in WILDCARDS:
            return [(socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")]
        ip = ipaddress.ip_address(self._bind_host)
        return [(socket.AF_INET6 if ip.version == 6 else socket.AF_INET, str(ip))]

    async def _close_transports(self) -> None:
        for transport in self._transports.values():
            transport.close()
        self._transports = {}
        await asyncio.sleep(0)  # let the transports' close callbacks run

    def _finish(self) -> None:
        self._closed = True
        self._notify()

    def _notify(self) -> None:
        for waiter in list(self._waiters):
            if not waiter.done():
                waiter.set_result(None)
        for name, peer in self._table.peers.items():
            if self._states.get(name, "unknown") != peer.state:
                log.info("membership: %s is %s (was %s)", name, peer.state, self._states.get(name, "unknown"))
                self._states[name] = peer.state

    async def _wait_joined(self, timeout: float) -> None:
        deadline = self._clock() + timeout
        while any(p.state != ALIVE for p in self._table.peers.values()):
            remaining = deadline - self._clock()
            if remaining <= 0:
                return
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.add(waiter)
            try:
                await asyncio.wait_for(waiter, min(remaining, self._table.period()))
            except TimeoutError:
                pass
            finally:
                self._waiters.discard(waiter)

    def _send(self, peer: Peer, kind: int) -> None:
        family = socket.AF_INET6 if ":" in peer.address[0] else socket.AF_INET
        transport = self._transports.get(family)
        if transport is None:
            self._table.counters["send_errors"] += 1
            return
        now = self._clock()
        entries = self._table.entries(now) if kind == HEARTBEAT else ()
        data = encode(self._table.message(kind, peer, now, entries), self._key)
        transport.sendto(data, peer.address)
        self._table.counters["sent"] += 1

    async def _send_loop(self) -> None:
        start = 0
        while True:
            peers = list(self._table.peers.values())
            if peers:
                start = (start + 1) % len(peers)
                now = self._clock()
                for peer in peers[start:] + peers[:start]:
                    if self._table.bucket.take(now):
                        self._send(peer, HEARTBEAT)
                    else:
                        self._table.counters["rate_limited"] += 1
            # jitter only upwards: a round never comes before the bucket has refilled for it
            await asyncio.sleep(self._table.period() * random.uniform(1.0, 1.1))

    async def _check_loop(self) -> None:
        while True:
            now = self._clock()
            if self._table.expire(now):
                self._notify()
            wait = min(self._table.next_deadline(now) - now, self._table.period() / 2)
            await asyncio.sleep(max(wait, 0.002))

    def _on_datagram(self, data: bytes) -> None:
        table = self._table
        table.counters["received"] += 1
        try:
            msg = decode(data, self._key)
        except Malformed as e:
            table.counters[e.reason] += 1
            return
        try:
            now = self._clock()
            changed, reply = table.receive(msg, now)
            if changed:
                self._notify()
            if reply and self._running and table.bucket.take(now):
                self._send(table.peers[msg.sender], HEARTBEAT)
        except Exception:  # never let one datagram take the agent down
            table.counters["malformed"] += 1
            log.exception("membership: unexpected error handling a datagram from %r", msg.sender)
