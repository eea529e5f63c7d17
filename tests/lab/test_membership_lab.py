"""Membership between real processes in network namespaces (root): crash, LEAVE, partition, spoofing.

Each node runs ``python -m agent.membership`` (one JSON line per change of its live set,
stamped with CLOCK_MONOTONIC, which all namespaces share), so the test can compare the
moment it killed a peer with the moment each survivor noticed.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from agent.membership.settings import MembershipSettings
from lab import Lab

pytestmark = [pytest.mark.lab, pytest.mark.timeout(60)]

S = MembershipSettings()
CRASH_BOUND = S.dead_after * S.interval + 0.25  # detection window plus scheduling slack on a busy CI box
KEY = "lab-membership-key-0123456789abcdef0123456789"


class Members:
    """One membership process per lab node, and readers for what each one printed."""

    def __init__(self, lab: Lab, family: int = 4) -> None:
        self.lab = lab
        self.family = family
        key = lab.workdir / "membership.key"
        key.write_text(KEY + "\n")
        self.peers = [f"--peer={n}={lab.addr(n, family)}" for n in lab.nodes]
        self.key = str(key)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        for node in lab.nodes:
            self.start(node)
        everyone = set(lab.nodes)
        for node in lab.nodes:
            self.wait_live(node, everyone, since=0.0, timeout=10)

    def start(self, node: str) -> None:
        argv = [sys.executable, "-m", "agent.membership", "--node", node, "--key-file", self.key, *self.peers]
        self.procs[node] = self.lab.spawn(node, argv, name=f"member-{node}")

    def lines(self, node: str) -> list[dict[str, Any]]:
        out = []
        for line in self.lab.log(f"member-{node}").splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:  # a line still being written
                    pass
        return out

    def wait_live(self, node: str, expected: set[str], since: float, timeout: float = 5.0) -> float:
        """CLOCK_MONOTONIC time at which ``node`` first reported ``expected`` after ``since``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines(node):
                if "live" in line and line["t"] >= since and set(line["live"]) == expected:
                    return float(line["t"])
            time.sleep(0.01)
        seen = [(round(x["t"] - since, 3), x["live"]) for x in self.lines(node) if "live" in x]
        raise AssertionError(f"{node} never reported {sorted(expected)} within {timeout} s; it said {seen}")

    def stop(self, node: str, sig: int) -> float:
        t = time.monotonic()
        self.lab.stop(self.procs[node], sig)
        return t

    def status(self, node: str) -> dict[str, Any]:
        """Stop ``node`` gracefully and return the status it printed on exit."""
        self.lab.stop(self.procs[node], signal.SIGTERM)
        final = [x["status"] for x in self.lines(node) if "status" in x]
        assert final, self.lab.log(f"member-{node}")
        return dict(final[-1])


@pytest.mark.parametrize("family", [4, 6], ids=["IPv4", "IPv6"])
def test_a_killed_member_is_seen_dead_by_both_survivors_within_the_bound(lab: Lab, family: int) -> None:
    members = Members(lab, family)
    killed = members.stop("node3", signal.SIGKILL)
    for survivor in ("node1", "node2"):
        noticed = members.wait_live(survivor, {"node1", "node2"}, since=killed)
        assert noticed - killed <= CRASH_BOUND, f"{survivor} took {noticed - killed:.3f} s"


def test_a_gracefully_stopped_member_is_seen_gone_at_once_and_can_rejoin(lab: Lab) -> None:
    members = Members(lab)
    stopped = members.stop("node3", signal.SIGTERM)
    for survivor in ("node1", "node2"):
        noticed = members.wait_live(survivor, {"node1", "node2"}, since=stopped)
        # a crash cannot be noticed sooner than (dead_after - 1) periods = 0.3 s: this was the LEAVE
        assert noticed - stopped <= 0.25, f"{survivor} took {noticed - stopped:.3f} s to see the LEAVE"
    restarted = time.monotonic()
    members.start("node3")
    for node in ("node1", "node2", "node3"):
        members.wait_live(node, {"node1", "node2", "node3"}, since=restarted, timeout=10)


def test_a_partition_splits_the_views_and_healing_converges_them(lab: Lab) -> None:
    members = Members(lab)
    cut = time.monotonic()
    lab.run("node3", "ip", "link", "set", "eth0", "down")
    members.wait_live("node1", {"node1", "node2"}, since=cut)
    members.wait_live("node2", {"node1", "node2"}, since=cut)
    members.wait_live("node3", {"node3"}, since=cut)  # each side sees the other dead
    healed = time.monotonic()
    lab.run("node3", "ip", "link", "set", "eth0", "up")
    for node in ("node1", "node2", "node3"):
        took = members.wait_live(node, {"node1", "node2", "node3"}, since=healed) - healed
        assert took <= 1.0, f"{node} took {took:.3f} s to converge after the heal"


SPOOF = """
import socket, sys, time
sys.path.insert(0, sys.argv[1])
from agent.membership.wire import HEARTBEAT, Message, encode
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for seq in range(1, 201):
    for target in sys.argv[2:]:
        forged = encode(Message(HEARTBEAT, "node3", 2**62, seq, 0), b"not-the-cluster-key" * 2)
        s.sendto(forged, (target, 7947))
        s.sendto(b"\\x00" * (seq % 60), (target, 7947))
    time.sleep(0.002)  # pace the flood: the receiver's socket buffer is finite
"""


def test_spoofed_heartbeats_with_the_wrong_key_do_not_revive_a_dead_member(lab: Lab) -> None:
    members = Members(lab)
    killed = members.stop("node3", signal.SIGKILL)
    members.wait_live("node1", {"node1", "node2"}, since=killed)
    root = str(Path(__file__).resolve().parents[2])
    lab.run("client", sys.executable, "-c", SPOOF, root, lab.addr("node1"), lab.addr("node2"), timeout=20)
    time.sleep(0.3)  # heartbeats keep flowing; any revival would be printed by now
    for node in ("node1", "node2"):
        after = [x["live"] for x in members.lines(node) if "live" in x and x["t"] > killed]
        assert all("node3" not in live for live in after), after
        status = members.status(node)
        # every forged datagram that was read was refused (a busy box may drop some unread)
        assert status["counters"]["bad_mac"] >= 100 and status["counters"]["malformed"] >= 100
        assert status["counters"]["accepted"] < status["counters"]["received"] - 200
