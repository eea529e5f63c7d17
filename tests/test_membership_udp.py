"""Membership over real UDP on loopback (no root): join, crash, LEAVE, source filter, flood,
key rotation, a blocked event loop, IPv6, the packet budget.

Each test binds its nodes to fresh 127.x.y.z addresses (all of 127/8 is local on Linux),
so parallel runs by other engineers do not collide.  Waiting is poll-with-timeout; the
bounds carry generous slack for a loaded machine, but each still fails if the mechanism
under test is missing.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from ironlb.agent.membership import Keyring, Membership, MembershipSettings
from ironlb.agent.membership.wire import HEARTBEAT, Message, encode

KEY = b"k" * 32
NEW = b"n" * 32
ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(60)


def _free_port(host: str, family: int = socket.AF_INET) -> int:
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


async def until(predicate: Callable[[], bool], timeout: float = 3.0) -> float:
    """Poll until ``predicate`` holds; return the seconds it took, fail after ``timeout``."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.002)
    return time.monotonic() - start


class Cluster:
    def __init__(self, n: int, keys: dict[str, Keyring] | None = None, **overrides: object) -> None:
        base = f"127.{random.randint(1, 250)}.{os.getpid() % 250 + 1}"
        self.addresses = {f"n{i}": f"{base}.{i + 1}" for i in range(n)}
        self.settings = MembershipSettings(**{"port": _free_port(f"{base}.1"), **overrides})  # type: ignore[arg-type]
        self.keys = keys or {}
        self.members = {name: self.make(name) for name in self.addresses}
        self.lost: dict[str, set[str]] = {name: set() for name in self.addresses}
        self._watchers: list[asyncio.Task[None]] = []

    def make(self, name: str, keys: Keyring | None = None) -> Membership:
        m = Membership(name, keys or self.keys.get(name, Keyring(KEY)), self.settings,
                       bind_host=self.addresses[name])
        m.update_peers(self.addresses)
        return m

    def live(self, name: str) -> frozenset[str]:
        return self.members[name].live()

    def everyone_sees_everyone(self) -> bool:
        return all(self.live(n) == set(self.addresses) for n in self.members)

    def watch(self, name: str) -> None:
        """Record every peer ``name`` ever drops from its live set from now on."""
        async def run() -> None:
            previous: frozenset[str] | None = None
            async for live in self.members[name].changes():
                if previous is not None:
                    self.lost[name] |= previous - live
                previous = live

        self._watchers.append(asyncio.create_task(run()))

    async def stop(self) -> None:
        for m in self.members.values():
            await m.stop(graceful=False)
        for task in self._watchers:
            task.cancel()


@pytest.fixture
async def cluster3() -> AsyncIterator[Cluster]:
    c = Cluster(3)
    await asyncio.gather(*(m.start() for m in c.members.values()))
    try:
        yield c
    finally:
        await c.stop()


async def test_three_nodes_join_and_report_status_as_json(cluster3: Cluster) -> None:
    await until(cluster3.everyone_sees_everyone, timeout=1.0)
    status = json.loads(json.dumps(cluster3.members["n0"].status()))
    assert status["peers"]["n1"]["state"] == "alive" and status["peers"]["n1"]["lane"] == "fast"
    assert status["peers"]["n1"]["key"] == "current" and status["keys"]["next"] is None
    assert status["counters"]["accepted"] > 0 and status["counters"]["bad_mac"] == 0
    assert min(status["receive_buffer"].values()) >= 1 << 20, "SO_RCVBUF(FORCE) took effect"


async def test_a_crashed_node_is_seen_dead_by_both_others_within_the_bound(cluster3: Cluster) -> None:
    await until(cluster3.everyone_sees_everyone)
    await cluster3.members["n2"].stop(graceful=False)
    bound = cluster3.settings.dead_after * cluster3.settings.interval
    took = await until(lambda: "n2" not in cluster3.live("n0") and "n2" not in cluster3.live("n1"))
    assert took <= bound + 0.15


async def test_a_graceful_stop_is_seen_at_once_and_changes_yields_it(cluster3: Cluster) -> None:
    await until(cluster3.everyone_sees_everyone)
    seen: list[frozenset[str]] = []

    async def watch() -> None:
        async for live in cluster3.members["n0"].changes():
            seen.append(live)

    watcher = asyncio.create_task(watch())
    await until(lambda: len(seen) == 1)
    start = time.monotonic()
    await cluster3.members["n2"].stop(graceful=True)
    await until(lambda: "n2" not in cluster3.live("n0") and "n2" not in cluster3.live("n1"), timeout=1.0)
    assert time.monotonic() - start < 0.09, "a LEAVE is faster than any crash detection"
    for survivor in ("n0", "n1"):  # told, not timed out: "left", never "dead"
        assert cluster3.members[survivor].status()["peers"]["n2"]["state"] == "left"
    await until(lambda: len(seen) == 2)
    assert seen == [frozenset({"n0", "n1", "n2"}), frozenset({"n0", "n1"})]
    await cluster3.members["n0"].stop()
    await asyncio.wait_for(watcher, 1.0)  # the iterator ends on stop


async def test_datagrams_from_unknown_sources_are_dropped_before_any_hmac(cluster3: Cluster) -> None:
    await until(cluster3.everyone_sees_everyone)
    target = cluster3.members["n0"]
    before = target.status()["counters"]
    inc = target.status()["incarnation"]
    stranger = cluster3.addresses["n0"].rsplit(".", 1)[0] + ".200"
    spoofer = cluster3.addresses["n1"]  # a peer's own address: passes the filter, fails the MAC
    dest = (cluster3.addresses["n0"], cluster3.settings.port)
    for source, count in ((stranger, 200), (spoofer, 100)):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((source, 0))
            for seq in range(1, count + 1):
                good = encode(Message(HEARTBEAT, "n1", 2**62, seq, inc), KEY)
                s.sendto(good[:-1] + bytes([good[-1] ^ 1]), dest)  # our key id, a wrong tag
                if seq % 50 == 0:
                    await asyncio.sleep(0.01)  # pace: this test is about the filter, not the buffer

    def delta(name: str) -> int:
        return int(target.status()["counters"][name] - before[name])

    await until(lambda: delta("unknown_source") >= 200 and delta("bad_mac") >= 100, timeout=3.0)
    await asyncio.sleep(0.05)
    assert (delta("unknown_source"), delta("bad_mac")) == (200, 100), "strangers never reach the HMAC"
    assert cluster3.everyone_sees_everyone()


async def test_a_flood_from_a_spoofed_peer_address_kills_nobody() -> None:
    c = Cluster(3)
    await asyncio.gather(*(m.start() for m in c.members.values()))
    try:
        await until(c.everyone_sees_everyone)
        for name in c.members:
            c.watch(name)
        target = c.members["n0"]
        before = target.status()["counters"]
        key_id = f"{Keyring(KEY).sign_id:08x}"
        argv = [sys.executable, "-m", "lab.flood", "udp", "--target", c.addresses["n0"],
                "--port", str(c.settings.port), "--rate", "20000", "--seconds", "3",
                "--bind", c.addresses["n1"], "--key-id", key_id]
        flood = await asyncio.create_subprocess_exec(*argv, cwd=ROOT, stdout=subprocess.PIPE)
        out, _ = await flood.communicate()
        sent = json.loads(out.decode().strip().splitlines()[-1])["sent"]
        await asyncio.sleep(0.2)
        after = target.status()["counters"]
        refused = sum(after[k] - before[k] for k in ("bad_mac", "malformed", "unknown_key"))
        assert sent >= 30_000 and refused >= 0.9 * sent, (sent, refused, after)
        forged = after["bad_mac"] - before["bad_mac"]
        assert forged >= 0.4 * sent, "forged heads cost an HMAC each and were refused"
        assert not any(c.lost.values()), f"the flood made someone drop a peer: {c.lost}"
    finally:
        await c.stop()


async def test_a_cluster_in_the_middle_of_a_key_rotation_is_one_cluster() -> None:
    keys = {"n0": Keyring(NEW, KEY), "n1": Keyring(KEY, NEW), "n2": Keyring(KEY, NEW)}  # step 2, rolling
    c = Cluster(3, keys)
    await asyncio.gather(*(m.start() for m in c.members.values()))
    try:
        await until(c.everyone_sees_everyone, timeout=2.0)
        peers = c.members["n1"].status()["peers"]
        assert peers["n0"]["key"] == "next" and peers["n2"]["key"] == "current"
        assert c.members["n0"].status()["peers"]["n1"]["key"] == "next"
    finally:
        await c.stop()


async def test_the_thread_keeps_heartbeating_through_a_short_event_loop_stall(cluster3: Cluster) -> None:
    await until(cluster3.everyone_sees_everyone)
    for name in cluster3.members:
        cluster3.watch(name)
    await asyncio.sleep(0.05)
    time.sleep(0.6)  # the whole event loop (all three members' loop side) blocks for 6 detection windows
    await asyncio.sleep(0.3)
    assert not any(cluster3.lost.values()), cluster3.lost


async def test_a_node_whose_event_loop_hangs_stops_heartbeating_so_peers_take_over() -> None:
    c = Cluster(2, max_loop_lag=0.3)
    await asyncio.gather(*(m.start() for m in c.members.values()))
    try:
        await until(c.everyone_sees_everyone)
        # the loop of both members hangs for a second: each thread stops heartbeating after 0.3 s
        time.sleep(1.0)
        assert c.members["n1"].status()["counters"]["loop_stalls"] == 1
        assert "n1" not in c.live("n0") and "n0" not in c.live("n1")
        await until(c.everyone_sees_everyone, timeout=2.0)  # and they come back when it runs again
    finally:
        await c.stop()


async def test_losing_every_peer_at_once_holds_until_kubernetes_says_their_nodes_are_not_ready(
    cluster3: Cluster,
) -> None:
    await until(cluster3.everyone_sees_everyone)
    survivor = cluster3.members["n2"]
    await asyncio.gather(*(cluster3.members[n].stop(graceful=False) for n in ("n0", "n1")))
    await until(lambda: survivor.status()["isolated_s"] is not None, timeout=1.0)
    await asyncio.sleep(0.3)
    assert survivor.live() == {"n0", "n1", "n2"}, "cut off, probably: take nothing over"
    survivor.update_peers(cluster3.addresses, ready={"n2"})  # the node controller marks them NotReady
    await until(lambda: survivor.live() == {"n2"}, timeout=1.0)
    assert survivor.status()["counters"]["isolations"] == 1


async def test_ipv6_members_on_the_loopback_find_each_other() -> None:
    ports = [_free_port("::1", socket.AF_INET6) for _ in range(2)]
    peers = {"a": f"[::1]:{ports[0]}", "b": f"[::1]:{ports[1]}"}
    members = [
        Membership(name, KEY, MembershipSettings(port=port), bind_host="::1")
        for name, port in zip(peers, ports, strict=True)
    ]
    for m in members:
        m.update_peers(peers)
    try:
        await asyncio.gather(*(m.start() for m in members))
        await until(lambda: all(m.live() == {"a", "b"} for m in members), timeout=1.0)
        await members[1].stop()
        await until(lambda: members[0].live() == {"a"}, timeout=0.5)
    finally:
        for m in members:
            await m.stop(graceful=False)


async def test_a_node_never_sends_more_than_its_packet_budget() -> None:
    c = Cluster(6, max_packets_per_second=100, interval=0.05, watchers=2)  # 2 fast + 3 slow lanes
    try:
        await asyncio.gather(*(m.start() for m in c.members.values()))
        await until(c.everyone_sees_everyone, timeout=2.0)
        before = {n: m.status()["counters"]["sent"] for n, m in c.members.items()}
        start = time.monotonic()
        await asyncio.sleep(1.5)  # measuring a rate needs wall time
        elapsed = time.monotonic() - start
        planned = c.settings.planned_rate(6)
        for name, m in c.members.items():
            rate = (m.status()["counters"]["sent"] - before[name]) / elapsed
            assert 0.5 * planned <= rate <= 100 * 1.1, (name, rate, planned)
    finally:
        await c.stop()


async def test_binding_a_taken_port_says_which_address_and_port() -> None:
    host = f"127.{random.randint(1, 250)}.{random.randint(1, 250)}.9"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        port = s.getsockname()[1]
        m = Membership("a", KEY, MembershipSettings(port=port), bind_host=host)
        with pytest.raises(OSError) as e:
            await m.start()
    assert host in str(e.value) and str(port) in str(e.value)
