"""Membership over real UDP on loopback (no root): join, crash, LEAVE, spoofing, IPv6, rate.

Each test binds its nodes to fresh 127.x.y.z addresses (all of 127/8 is local on Linux),
so parallel runs by other engineers do not collide.  Waiting is poll-with-timeout.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import time
from collections.abc import AsyncIterator, Callable

import pytest

from agent.membership import Membership, MembershipSettings
from agent.membership.wire import HEARTBEAT, Message, encode

KEY = b"k" * 32
pytestmark = pytest.mark.timeout(30)


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
    def __init__(self, n: int, **overrides: object) -> None:
        base = f"127.{random.randint(1, 250)}.{os.getpid() % 250 + 1}"
        self.addresses = {f"n{i}": f"{base}.{i + 1}" for i in range(n)}
        self.settings = MembershipSettings(**{"interval": 0.05, "port": _free_port(f"{base}.1"), **overrides})  # type: ignore[arg-type]
        self.members = {name: self.make(name) for name in self.addresses}

    def make(self, name: str, key: bytes = KEY) -> Membership:
        m = Membership(name, key, self.settings, bind_host=self.addresses[name])
        m.update_peers(self.addresses)
        return m

    def live(self, name: str) -> frozenset[str]:
        return self.members[name].live()


@pytest.fixture
async def cluster3() -> AsyncIterator[Cluster]:
    c = Cluster(3)
    await asyncio.gather(*(m.start() for m in c.members.values()))
    try:
        yield c
    finally:
        for m in c.members.values():
            await m.stop(graceful=False)


async def test_three_nodes_join_and_report_status_as_json(cluster3: Cluster) -> None:
    everyone = frozenset(cluster3.addresses)
    await until(lambda: all(cluster3.live(n) == everyone for n in everyone), timeout=1.0)
    status = cluster3.members["n0"].status()
    assert json.loads(json.dumps(status))["peers"]["n1"]["state"] == "alive"
    assert status["counters"]["accepted"] > 0 and status["counters"]["bad_mac"] == 0


async def test_a_crashed_node_is_seen_dead_by_both_others_within_the_bound(cluster3: Cluster) -> None:
    await until(lambda: all(len(cluster3.live(n)) == 3 for n in cluster3.members))
    await cluster3.members["n2"].stop(graceful=False)
    bound = cluster3.settings.dead_after * cluster3.settings.interval
    took = await until(lambda: "n2" not in cluster3.live("n0") and "n2" not in cluster3.live("n1"))
    assert took <= bound + 0.15


async def test_a_graceful_stop_is_seen_at_once_and_changes_yields_it(cluster3: Cluster) -> None:
    await until(lambda: all(len(cluster3.live(n)) == 3 for n in cluster3.members))
    seen: list[frozenset[str]] = []

    async def watch() -> None:
        async for live in cluster3.members["n0"].changes():
            seen.append(live)

    watcher = asyncio.create_task(watch())
    await until(lambda: len(seen) == 1)
    start = time.monotonic()
    await cluster3.members["n2"].stop(graceful=True)
    await until(lambda: "n2" not in cluster3.live("n0") and "n2" not in cluster3.live("n1"), timeout=1.0)
    assert time.monotonic() - start < 0.5
    for survivor in ("n0", "n1"):  # told, not timed out: "left", never "dead"
        assert cluster3.members[survivor].status()["peers"]["n2"]["state"] == "left"
    await until(lambda: len(seen) == 2)
    assert seen == [frozenset({"n0", "n1", "n2"}), frozenset({"n0", "n1"})]
    await cluster3.members["n0"].stop()
    await asyncio.wait_for(watcher, 1.0)  # the iterator ends on stop


async def test_spoofed_and_garbage_datagrams_are_ignored(cluster3: Cluster) -> None:
    await until(lambda: all(len(cluster3.live(n)) == 3 for n in cluster3.members))
    target = cluster3.members["n0"]
    await cluster3.members["n2"].stop(graceful=False)
    await until(lambda: "n2" not in target.live())
    inc = target.status()["incarnation"]
    before = target.status()["counters"]
    rng = random.Random(4)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        dest = (cluster3.addresses["n0"], cluster3.settings.port)
        for seq in range(1, 51):  # a forger without the key pretends n2 is back
            mark: int = target.status()["counters"]["received"]
            s.sendto(encode(Message(HEARTBEAT, "n2", 2**62, seq, inc), b"wrong-key" * 4), dest)
            for _ in range(10):
                s.sendto(rng.randbytes(rng.randint(0, 1500)), dest)

            def arrived(mark: int = mark) -> bool:
                return bool(target.status()["counters"]["received"] >= mark + 11)

            await until(arrived, timeout=2.0)  # pace the flood: the socket buffer is finite
    counters = {k: v - before[k] for k, v in target.status()["counters"].items()}
    assert counters["bad_mac"] >= 50 and counters["malformed"] + counters["bad_mac"] >= 550
    assert "n2" not in target.live() and "n1" in target.live()


async def test_ipv6_members_on_the_loopback_find_each_other() -> None:
    ports = [_free_port("::1", socket.AF_INET6) for _ in range(2)]
    peers = {"a": f"[::1]:{ports[0]}", "b": f"[::1]:{ports[1]}"}
    members = [
        Membership(name, KEY, MembershipSettings(interval=0.05, port=port), bind_host="::1")
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
    c = Cluster(5, max_packets_per_second=20)  # period becomes 4 / 20 = 0.2 s
    try:
        await asyncio.gather(*(m.start() for m in c.members.values()))
        await until(lambda: all(len(c.live(n)) == 5 for n in c.members), timeout=2.0)
        before = {n: m.status()["counters"]["sent"] for n, m in c.members.items()}
        start = time.monotonic()
        await asyncio.sleep(1.5)  # measuring a rate needs wall time
        elapsed = time.monotonic() - start
        for name, m in c.members.items():
            rate = (m.status()["counters"]["sent"] - before[name]) / elapsed
            assert 10 <= rate <= 20 * 1.1, (name, rate)
            assert m.status()["period_s"] == pytest.approx(0.2)
    finally:
        for m in c.members.values():
            await m.stop(graceful=False)


async def test_binding_a_taken_port_says_which_address_and_port() -> None:
    host = f"127.{random.randint(1, 250)}.{random.randint(1, 250)}.9"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        port = s.getsockname()[1]
        m = Membership("a", KEY, MembershipSettings(port=port), bind_host=host)
        with pytest.raises(OSError) as e:
            await m.start()
    assert host in str(e.value) and str(port) in str(e.value)
