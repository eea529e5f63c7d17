"""The membership shell: UDP sockets and one thread around the pure :class:`Table`.

Why a thread and not the event loop: with crash detection around 100 ms, a replan or a
slow API call that blocks the agent's event loop for 100 ms would make this node look
dead to everyone, and make it read its peers' heartbeats late.  The membership thread
sends, reads and judges on its own schedule; Python switches to it within the GIL's
switch interval (5 ms) even while the loop computes.  It is not a way to look alive while
the agent is not: while the event loop has not run for ``max_loop_lag`` seconds, the
thread stops heartbeating, so the peers take over this node's addresses.

The hostile LAN (docs/decisions/0030-membership.md):

- **source filter**: a datagram whose source address is not a known peer's is dropped
  and counted before anything else (no HMAC, no parsing);
- **batch drain**: every wakeup reads until the socket is empty (EAGAIN), up to
  :data:`BATCH` datagrams, then runs the timers, so a flood costs one ``recvfrom`` and a
  set lookup per datagram and cannot starve our own heartbeats;
- **receive buffer**: ``SO_RCVBUF`` (``SO_RCVBUFFORCE`` with CAP_NET_ADMIN, else capped by
  ``net.core.rmem_max``) of ``settings.receive_buffer`` bytes, 4 MiB by default.  Sizing:
  the kernel charges a small datagram about 1 KiB of buffer (skb truesize); the mesh itself
  needs at most ``max_packets_per_second`` (200/s) arriving, so 4 MiB holds 20 s of mesh
  traffic, or about 80 ms of a 50,000 packets/s flood -- longer than this thread is ever
  kept off the CPU on a sane host, so what a flood can drop is what arrives faster than we
  read, not what arrives while we are descheduled.

Sockets: with a wildcard ``bind_host`` ("0.0.0.0", "::" or "") one IPv4 and one IPv6
socket (IPV6_V6ONLY) are opened; a specific address opens only its family.  Nothing a
packet contains can raise out of the thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import math
import os
import select
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Collection, Mapping
from typing import Any

from ironlb.agent.membership.core import ALIVE, Outgoing, Table
from ironlb.agent.membership.settings import MembershipSettings, parse_address
from ironlb.agent.membership.wire import LEAVE, Keyring, Malformed, decode, encode

log = logging.getLogger("ironlb.membership")

WILDCARDS = {"", "0.0.0.0", "::"}
#: Datagrams read per socket per wakeup before the timers run again.
BATCH = 512
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
_MAX_WAIT = 0.05  # the thread looks at the clock at least this often


class Membership:
    """Which agents are alive, learnt from a signed UDP heartbeat mesh."""

    def __init__(
        self,
        node: str,
        key: bytes | Keyring,
        settings: MembershipSettings | None = None,
        bind_host: str = "0.0.0.0",
        clock: Callable[[], float] = time.monotonic,
        *,
        next_key: bytes | None = None,
    ) -> None:
        if not node or len(node.encode()) > 253:
            raise ValueError(f"node name {node!r} must be 1-253 bytes")
        if not key:
            raise ValueError("membership key must not be empty (use load_key)")
        self.node = node
        self.settings = settings or MembershipSettings()
        self._keys = key if isinstance(key, Keyring) else Keyring(key, next_key)
        self._bind_host = bind_host
        self._clock = clock
        self._lock = threading.Lock()  # guards the table: the thread and the loop both use it
        self._table = Table(node, time.time_ns(), self.settings, clock())
        self._sources: frozenset[str] = frozenset()
        self._socks: dict[int, socket.socket] = {}
        self._rcvbuf: dict[int, int] = {}
        self._thread: threading.Thread | None = None
        self._wake: tuple[int, int] | None = None
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_tick = clock()
        self._lagging = False
        self._ticker: asyncio.Task[None] | None = None
        self._waiters: set[asyncio.Future[None]] = set()
        self._running = False
        self._closed = False
        self._states: dict[str, str] = {}
        self._isolated_logged = False

    # -- API --------------------------------------------------------------------------
    def update_peers(self, peers: Mapping[str, str], ready: Collection[str] | None = None) -> None:
        """Set the members (node name -> "ip", "ip:port" or "[ip6]:port"); this node may be included.

        ``ready``: names of nodes whose Kubernetes Node is Ready (None: assume all are).
        Datagrams are accepted only from these addresses.
        """
        parsed = {
            name: parse_address(name, text, self.settings.port)
            for name, text in peers.items()
            if name != self.node
        }
        with self._lock:
            changed = self._table.set_peers(parsed, self._clock(), ready)
            self._sources = frozenset(ip for ip, _ in parsed.values())
        self._poke()
        if changed:
            self._notify()

    async def start(self) -> None:
        """Open the sockets, start the thread; return once every peer answered or after join_timeout."""
        if self._running:
            return
        self._loop = asyncio.get_running_loop()
        self._open_sockets()
        self._wake = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._stopping, self._running = False, True
        self._loop_tick = self._clock()
        self._ticker = asyncio.create_task(self._tick_loop(), name=f"membership-tick-{self.node}")
        self._thread = threading.Thread(target=self._run, name=f"membership-{self.node}", daemon=True)
        self._thread.start()
        await self._wait_joined(self.settings.join_timeout)

    async def stop(self, graceful: bool = True) -> None:
        """Stop; when ``graceful``, first tell every peer we LEAVE so they act at once."""
        if not self._running:
            self._finish()
            return
        self._running, self._stopping = False, True
        self._poke()
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        thread = self._thread
        if thread is not None:
            await asyncio.get_running_loop().run_in_executor(None, thread.join, 5.0)
        try:
            if graceful:
                for i in range(self.settings.leave_repeats):
                    if i:
                        await asyncio.sleep(0.01)
                    with self._lock:
                        now = self._clock()
                        self._transmit(
                            [
                                (p.address, self._table.message(LEAVE, p, now))
                                for p in self._table.peers.values()
                            ]
                        )
        finally:
            for sock in self._socks.values():
                sock.close()
            self._socks = {}
            if self._wake is not None:
                for fd in self._wake:
                    os.close(fd)
                self._wake = None
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
        """Per-peer state, lanes, votes, keys, counters; JSON-able."""
        with self._lock:
            now, table = self._clock(), self._table
            peers = table.status(now)
            for row in peers.values():
                kid = row.pop("key_id")
                row["key"] = self._keys.label(kid) if kid else None  # "current", "next" or not heard
            return {
                "node": self.node,
                "running": self._running,
                "incarnation": table.incarnation,
                "port": self.settings.port,
                "fast_period_s": self.settings.interval,
                "slow_period_s": round(table.slow_period(), 4),
                "receive_buffer": dict(self._rcvbuf),
                "isolated_s": None if table.isolated_since is None else round(now - table.isolated_since, 3),
                "keys": {
                    "current": f"{self._keys.sign_id:08x}",
                    "next": None if self._keys.also_id is None else f"{self._keys.also_id:08x}",
                },
                "live": sorted(table.live()),
                "peers": peers,
                "counters": dict(table.counters),
            }

    # -- the loop side ------------------------------------------------------------------
    async def _tick_loop(self) -> None:
        """Prove to the thread that the agent's event loop still runs."""
        while True:
            self._loop_tick = self._clock()
            await asyncio.sleep(0.1)

    def _finish(self) -> None:
        self._closed = True
        self._notify()

    def _notify(self) -> None:
        for waiter in list(self._waiters):
            if not waiter.done():
                waiter.set_result(None)
        with self._lock:
            states = {name: peer.state for name, peer in self._table.peers.items()}
            isolated = self._table.isolated_since is not None
        for name, state in states.items():
            if self._states.get(name, "unknown") != state:
                log.info("membership: %s is %s (was %s)", name, state, self._states.get(name, "unknown"))
                self._states[name] = state
        if isolated != self._isolated_logged:
            self._isolated_logged = isolated
            if isolated:
                log.warning(
                    "membership: every peer went silent at once while their Nodes are Ready: "
                    "this node is probably cut off; keeping the last live set, taking nothing over"
                )
            else:
                log.info("membership: no longer cut off")

    async def _wait_joined(self, timeout: float) -> None:
        deadline = self._clock() + timeout
        while any(p.state != ALIVE for p in list(self._table.peers.values())):
            remaining = deadline - self._clock()
            if remaining <= 0:
                return
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.add(waiter)
            try:  # asyncio.timeout: 3.11's wait_for can swallow a cancellation (gh-86296)
                async with asyncio.timeout(min(remaining, 0.05)):
                    await waiter
            except TimeoutError:
                pass
            finally:
                self._waiters.discard(waiter)

    def _poke(self) -> None:
        """Wake the thread (new peers, stop)."""
        if self._wake is not None:
            with contextlib.suppress(BlockingIOError, OSError):
                os.write(self._wake[1], b"\0")

    def _notify_from_thread(self) -> None:
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closing: nobody is waiting any more
                loop.call_soon_threadsafe(self._notify)

    # -- sockets --------------------------------------------------------------------------
    def _bind_targets(self) -> list[tuple[int, str]]:
        if self._bind_host in WILDCARDS:
            return [(socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")]
        ip = ipaddress.ip_address(self._bind_host)
        return [(socket.AF_INET6 if ip.version == 6 else socket.AF_INET, str(ip))]

    def _open_sockets(self) -> None:
        for family, host in self._bind_targets():
            sock = socket.socket(family, socket.SOCK_DGRAM)
            try:
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                try:  # beyond net.core.rmem_max with CAP_NET_ADMIN (the agent has it)
                    sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, self.settings.receive_buffer)
                except PermissionError:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.settings.receive_buffer)
                sock.setblocking(False)
                sock.bind((host, self.settings.port))
            except OSError as e:
                sock.close()
                if self._bind_host in WILDCARDS and family == socket.AF_INET6:
                    log.warning("membership: no IPv6 socket on port %d (%s)", self.settings.port, e)
                    continue
                for other in self._socks.values():
                    other.close()
                self._socks = {}
                raise OSError(
                    e.errno, f"membership: cannot bind UDP {host!r} port {self.settings.port}: {e.strerror}"
                ) from e
            self._socks[family] = sock
            self._rcvbuf[int(family)] = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)

    def _transmit(self, out: list[Outgoing]) -> None:
        """Sign and send (the caller holds the lock)."""
        counters = self._table.counters
        for address, msg in out:
            sock = self._socks.get(socket.AF_INET6 if ":" in address[0] else socket.AF_INET)
            if sock is None:
                counters["send_errors"] += 1
                continue
            try:
                sock.sendto(encode(msg, self._keys), address)
                counters["sent"] += 1
            except OSError:  # a full send buffer, no route: the peer will miss this one
                counters["send_errors"] += 1

    # -- the thread -----------------------------------------------------------------------
    def _run(self) -> None:
        poller = select.poll()
        socks = {sock.fileno(): sock for sock in self._socks.values()}
        for fd in socks:
            poller.register(fd, select.POLLIN)
        assert self._wake is not None
        wake_fd = self._wake[0]
        poller.register(wake_fd, select.POLLIN)
        while not self._stopping:
            try:
                self._turn(poller, socks, wake_fd)
            except Exception:  # a bug in one turn must not silence this node for good (it would look dead)
                log.exception("membership: unexpected error; carrying on")
                time.sleep(0.01)

    def _turn(self, poller: select.poll, socks: dict[int, socket.socket], wake_fd: int) -> None:
        now = self._clock()
        lagging = now - self._loop_tick > self.settings.max_loop_lag
        with self._lock:
            wake_at = self._table.next_deadline(now)
            if not lagging:
                wake_at = min(wake_at, self._table.next_send())
        timeout = min(max(wake_at - now, 0.0), _MAX_WAIT)
        events = poller.poll(math.ceil(timeout * 1000))
        changed = False
        for fd, _ in events:
            if fd == wake_fd:
                with contextlib.suppress(BlockingIOError):
                    os.read(wake_fd, 4096)
            elif fd in socks:
                changed |= self._drain(socks[fd])
        now = self._clock()
        self._note_lag(lagging)
        with self._lock:
            changed |= self._table.expire(now)
            if not lagging and not self._stopping:
                self._transmit(self._table.outgoing(now))
        if changed:
            self._notify_from_thread()

    def _drain(self, sock: socket.socket) -> bool:
        """Read until the socket is empty or BATCH datagrams; True if the live set changed."""
        table, sources, keys = self._table, self._sources, self._keys
        counters = table.counters
        changed = False
        with self._lock:
            for _ in range(BATCH):
                try:
                    data, addr = sock.recvfrom(2048)
                except BlockingIOError:
                    break
                except OSError:  # e.g. a queued ICMP error; the next read gets data again
                    counters["receive_errors"] += 1
                    break
                counters["received"] += 1
                if addr[0] not in sources:
                    counters["unknown_source"] += 1
                    continue
                try:
                    msg = decode(data, keys)
                except Malformed as e:
                    counters[e.reason] += 1
                    continue
                changed |= table.receive(msg, self._clock())
        return changed

    def _note_lag(self, lagging: bool) -> None:
        if lagging and not self._lagging:
            self._table.counters["loop_stalls"] += 1
            log.warning(
                "membership: the agent's event loop has not run for %.1f s; "
                "heartbeats stop so that peers take over",
                self.settings.max_loop_lag,
            )
        elif self._lagging and not lagging:
            log.info("membership: the event loop runs again; heartbeats resume")
        self._lagging = lagging
