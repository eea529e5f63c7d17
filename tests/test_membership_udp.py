"""Membership over real UDP on loopback (no root): join, crash, LEAVE, source filter, flood,
key rotation, a blocked event loop, IPv6, the packet budget.

Each test binds its nodes to fresh 127.x.y.z addresses (all of 127/8 is local on Linux),
so parallel runs by other engineers do not collide.  Waiting is poll-with-timeout
(:mod:`lab.waiting`); the bounds carry generous slack for a loaded machine, but each still
fails if the mechanism under test is missing.  "Nothing happened" is held for a stated
number of detection windows (``dead_after * interval``, 0.1 s by default).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ironlb.agent.membership import Keyring, Membership, MembershipSettings
from ironlb.agent.membership.wire import HEARTBEAT, Message, encode
from lab.flood import udp_flood_argv
from lab.waiting import always, eventually

KEY = b"k" * 32
NEW = b"n" * 32
ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(60)


def _free_port(host: str, family: int = socket.AF_INET) -> int:
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


#: Seconds between reads while waiting: fine enough to time a detection against its bound.
POLL = 0.002
#: One detection window with the default settings (dead_after x interval = 4 x 25 ms).
WINDOW = MembershipSettings().dead_after * MembershipSettings().interval
#: How long "nobody dropped a peer" must hold once the event loop runs again after a stall: the
#: thread's verdicts reach the loop's watchers within one window; three is ample.
AFTER_STALL = 3 * WINDOW
#: How long a survivor that lost every peer must keep them: a node that would take over does so
#: within one detection window of noticing; three windows past "isolated" is ample.
ISOLATED_HOLD = 3 * WINDOW
#: Once every forged datagram has been counted, how long the counts must stay put: all were sent
#: before counting began, so any straggler is read within milliseconds.
DRAINED = 0.05


async def everyone(c: Cluster, timeout: float = 3.0) -> None:
    await eventually(
        "every member to see every other", c.everyone_sees_everyone, timeout=timeout, interval=POLL
    )


class Cluster:
    def __init__(self, n: int, keys: dict[str, Keyring] | None = None, **overrides: object) -> None:
        base = f"127.{random.randint(1, 250)}.{os.getpid() % 250 + 1}"
        self.addresses = {f"n{i}": f"{base}.{i + 1}" for i in range(n)}
        self.settings = MembershipSettings(**{"port": _free_port(f"{base}.1"), **overrides})  # type: ignore[arg-type]
        self.keys = keys or {}
        self.members = {name: self.make(name) for name in self.addresses}
        self.lost: dict[str, set[str]] = {name: set() for name in self.addresses}
        self._watchers: list[asyncio.Task[None]] = []
        self.watching: set[str] = set()

    def make(self, name: str, keys: Keyring | None = None) -> Membership:
        m = Membership(
            name, keys or self.keys.get(name, Keyring(KEY)), self.settings, bind_host=self.addresses[name]
        )
        m.update_peers(self.addresses)
        return m

    def live(self, name: str) -> frozenset[str]:
        return self.members[name].live()

    def everyone_sees_everyone(self) -> bool:
        return all(self.live(n) == set(self.addresses) for n in self.members)

    def watch(self, name: str) -> None:
        """Record every peer ``name`` ever drops from its live set from now on (``watching``
        lists the names whose watcher has its first live set)."""

        async def run() -> None:
            previous: frozenset[str] | None = None
            async for live in self.members[name].changes():
                if previous is not None:
                    self.lost[name] |= previous - live
                previous = live
                self.watching.add(name)

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
    await everyone(cluster3, timeout=1.0)
    status = json.loads(json.dumps(cluster3.members["n0"].status()))
    assert status["peers"]["n1"]["state"] == "alive" and status["peers"]["n1"]["lane"] == "fast"
    assert status["peers"]["n1"]["key"] == "current" and status["keys"]["next"] is None
    assert status["counters"]["accepted"] > 0 and status["counters"]["bad_mac"] == 0
    assert min(status["receive_buffer"].values()) >= 1 << 20, "SO_RCVBUF(FORCE) took effect"


async def n2_dropped(cluster: Cluster, timeout: float) -> None:
    """Until neither n0 nor n1 has n2 in its live set."""
    await eventually(
        "n0 and n1 to drop n2",
        lambda: cluster.live("n0") | cluster.live("n1"),
        lambda live: "n2" not in live,
        timeout=timeout,
        interval=POLL,
    )


async def test_a_crashed_node_is_seen_dead_by_both_others_within_the_bound(cluster3: Cluster) -> None:
    await everyone(cluster3)
    await cluster3.members["n2"].stop(graceful=False)
    bound = cluster3.settings.dead_after * cluster3.settings.interval
    start = time.monotonic()
    await n2_dropped(cluster3, timeout=3.0)
    took = time.monotonic() - start
    assert took <= bound + 0.15


async def test_a_graceful_stop_is_seen_at_once_and_changes_yields_it(cluster3: Cluster) -> None:
    await everyone(cluster3)
    seen: list[frozenset[str]] = []

    async def watch() -> None:
        async for live in cluster3.members["n0"].changes():
            seen.append(live)

    watcher = asyncio.create_task(watch())
    await eventually("the first live set", lambda: seen, lambda got: len(got) == 1, interval=POLL)
    start = time.monotonic()
    await cluster3.members["n2"].stop(graceful=True)
    await n2_dropped(cluster3, timeout=1.0)
    assert time.monotonic() - start < 0.09, "a LEAVE is faster than any crash detection"
    for survivor in ("n0", "n1"):  # told, not timed out: "left", never "dead"
        assert cluster3.members[survivor].status()["peers"]["n2"]["state"] == "left"
    await eventually("the live set without n2", lambda: seen, lambda got: len(got) == 2, interval=POLL)
    assert seen == [frozenset({"n0", "n1", "n2"}), frozenset({"n0", "n1"})]
    await cluster3.members["n0"].stop()
    await asyncio.wait_for(watcher, 1.0)  # the iterator ends on stop


async def test_datagrams_from_unknown_sources_are_dropped_before_any_hmac(cluster3: Cluster) -> None:
    await everyone(cluster3)
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

    def counted() -> tuple[int, int]:
        return delta("unknown_source"), delta("bad_mac")

    await eventually(
        "300 datagrams counted", counted, lambda n: n[0] >= 200 and n[1] >= 100, timeout=3.0, interval=POLL
    )
    await always("no more counted", counted, lambda n: n == (200, 100), seconds=DRAINED, interval=POLL)
    assert counted() == (200, 100), "strangers never reach the HMAC"
    assert cluster3.everyone_sees_everyone()


async def test_a_flood_from_a_spoofed_peer_address_kills_nobody() -> None:
    c = Cluster(3)
    await asyncio.gather(*(m.start() for m in c.members.values()))
    try:
        await everyone(c)
        for name in c.members:
            c.watch(name)
        target = c.members["n0"]
        before = target.status()["counters"]
        argv = udp_flood_argv(
            c.addresses["n0"], port=c.settings.port, rate=20_000, seconds=3, key_id=Keyring(KEY).sign_id
        )
        argv += ["--bind", c.addresses["n1"]]
        flood = await asyncio.create_subprocess_exec(*argv, cwd=ROOT, stdout=subprocess.PIPE)
        out, _ = await flood.communicate()
        sent = json.loads(out.decode().strip().splitlines()[-1])["sent"]

        def refusals() -> int:
            after = target.status()["counters"]
            return int(sum(after[k] - before[k] for k in ("bad_mac", "malformed", "unknown_key")))

        # the flood is over when it exits; the datagrams still queued are read within moments
        await eventually("90% of the flood refused", refusals, lambda n: n >= 0.9 * sent, timeout=3.0)
        after = target.status()["counters"]
        refused = refusals()
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
        await everyone(c, timeout=2.0)
        peers = c.members["n1"].status()["peers"]
        assert peers["n0"]["key"] == "next" and peers["n2"]["key"] == "current"
        assert c.members["n0"].status()["peers"]["n1"]["key"] == "next"
    finally:
        await c.stop()


async def test_the_thread_keeps_heartbeating_through_a_short_event_loop_stall(cluster3: Cluster) -> None:
    await everyone(cluster3)
    for name in cluster3.members:
        cluster3.watch(name)
    await eventually(
        "every watcher to start",
        lambda: cluster3.watching,
        lambda watching: watching == set(cluster3.members),
    )
    time.sleep(0.6)  # the whole event loop (all three members' loop side) blocks for 6 detection windows
    await always(
        "nobody drops a peer", lambda: cluster3.lost, lambda lost: not any(lost.values()), seconds=AFTER_STALL
    )


async def test_a_node_whose_event_loop_hangs_stops_heartbeating_so_peers_take_over() -> None:
    c = Cluster(2, max_loop_lag=0.3)
    await asyncio.gather(*(m.start() for m in c.members.values()))
    try:
        await everyone(c)
        # the loop of both members hangs for a second: each thread stops heartbeating after 0.3 s
        time.sleep(1.0)
        assert c.members["n1"].status()["counters"]["loop_stalls"] == 1
        assert "n1" not in c.live("n0") and "n0" not in c.live("n1")
        await everyone(c, timeout=2.0)  # and they come back when it runs again
    finally:
        await c.stop()


async def test_losing_every_peer_at_once_holds_until_kubernetes_says_their_nodes_are_not_ready(
    cluster3: Cluster,
) -> None:
    await everyone(cluster3)
    survivor = cluster3.members["n2"]
    await asyncio.gather(*(cluster3.members[n].stop(graceful=False) for n in ("n0", "n1")))
    await eventually(
        "n2 to see itself isolated",
        lambda: survivor.status()["isolated_s"],
        lambda s: s is not None,
        timeout=1.0,
        interval=POLL,
    )
    await always(
        "cut off, probably: take nothing over",
        survivor.live,
        lambda live: live == {"n0", "n1", "n2"},
        seconds=ISOLATED_HOLD,
    )
    survivor.update_peers(cluster3.addresses, ready={"n2"})  # the node controller marks them NotReady
    await eventually("n2 alone", survivor.live, lambda live: live == {"n2"}, timeout=1.0, interval=POLL)
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
        await eventually(
            "a and b to see each other",
            lambda: [m.live() for m in members],
            lambda live: live == [{"a", "b"}] * 2,
            timeout=1.0,
            interval=POLL,
        )
        await members[1].stop()
        await eventually(
            "a to see b leave", members[0].live, lambda live: live == {"a"}, timeout=0.5, interval=POLL
        )
    finally:
        for m in members:
            await m.stop(graceful=False)


async def test_a_node_never_sends_more_than_its_packet_budget() -> None:
    c = Cluster(6, max_packets_per_second=100, interval=0.05, watchers=2)  # 2 fast + 3 slow lanes
    try:
        await asyncio.gather(*(m.start() for m in c.members.values()))
        await everyone(c, timeout=2.0)
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
