"""Membership between real processes in network namespaces (root): crash, LEAVE, a node
cut off, spoofing, a 50,000 packets/s flood, and a key rotation by rolling restarts.

Each node runs ``python -m ironlb.agent.membership`` (one JSON line per change of its live set,
stamped with CLOCK_MONOTONIC, which all namespaces share), so the test can compare the
moment it killed a peer with the moment each survivor noticed, and read the counters it
prints on exit (what the flood cost: refused before the HMAC, bad tags).  The same flood
against the rendered install, watching who owns each address, is in
``tests/lab/test_cluster_hostile_lan.py``.

The processes and their readers are :class:`lab.membership.Members` (shared with
bench/membership.py).  Written against today's lab (``lab.Lab``); to port to the cluster-mode
lab, replace its ``spawn`` with the cluster's pod runner and keep the assertions.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ironlb.agent.membership.settings import MembershipSettings
from ironlb.agent.membership.wire import key_id
from lab import Lab
from lab.flood import flood_result, start_membership_flood, udp_drops
from lab.membership import Members
from lab.waiting import holds

pytestmark = [pytest.mark.lab, pytest.mark.timeout(120)]

S = MembershipSettings()
CRASH_BOUND = S.dead_after * S.interval + 0.15  # detection window plus scheduling slack on a busy CI box
KEY = "lab-membership-key-0123456789abcdef0123456789"
NEXT_KEY = "lab-membership-next-key-0123456789abcdef012345"
ROOT = str(Path(__file__).resolve().parents[2])
EVERYONE = {"node1", "node2", "node3"}
#: One detection window: a member that would drop a peer does so within it.
WINDOW = S.dead_after * S.interval
#: How long a member cut off from every peer must keep its set: its peers dropped it within one
#: window, it would have dropped them in the same one; ten windows is ample.
CUT_OFF_HOLD = 10 * WINDOW
#: How long nothing may change once a spoofer or a flood has exited: the datagrams still queued
#: are read within milliseconds, and a suspicion they caused would show within one window.
AFTER_TRAFFIC = 3 * WINDOW


def start_members(lab: Lab, family: int = 4, keys: tuple[str, ...] = ("key",)) -> Members:
    return Members(lab, key=KEY, next_key=NEXT_KEY, family=family, keys=keys)


@pytest.mark.parametrize("family", [4, 6], ids=["IPv4", "IPv6"])
def test_a_killed_member_is_seen_dead_by_both_survivors_within_the_bound(lab: Lab, family: int) -> None:
    members = start_members(lab, family)
    killed = members.stop("node3", signal.SIGKILL)
    for survivor in ("node1", "node2"):
        noticed = members.wait_live(survivor, {"node1", "node2"}, since=killed)
        assert noticed - killed <= CRASH_BOUND, f"{survivor} took {noticed - killed:.3f} s"


def test_a_gracefully_stopped_member_is_seen_gone_at_once_and_can_rejoin(lab: Lab) -> None:
    members = start_members(lab)
    stopped = members.stop("node3", signal.SIGTERM)
    for survivor in ("node1", "node2"):
        noticed = members.wait_live(survivor, {"node1", "node2"}, since=stopped)
        # a crash cannot be noticed sooner than (dead_after - 1) fast periods: this was the LEAVE
        assert noticed - stopped <= 0.07, f"{survivor} took {noticed - stopped:.3f} s to see the LEAVE"
    restarted = time.monotonic()
    members.start("node3")
    for node in EVERYONE:
        members.wait_live(node, EVERYONE, since=restarted, timeout=10)


def test_a_node_cut_off_keeps_its_set_while_the_others_drop_it_and_healing_converges(lab: Lab) -> None:
    members = start_members(lab)
    cut = time.monotonic()
    lab.run("node3", "ip", "link", "set", "eth0", "down")
    members.wait_live("node1", {"node1", "node2"}, since=cut)
    members.wait_live("node2", {"node1", "node2"}, since=cut)
    holds(
        "node3 lost every peer at once: it must not go it alone (its reports)",
        lambda: members.reports("node3", cut),
        lambda reports: reports == [],
        seconds=CUT_OFF_HOLD,
    )
    healed = time.monotonic()
    lab.run("node3", "ip", "link", "set", "eth0", "up")
    for node in ("node1", "node2"):
        took = members.wait_live(node, EVERYONE, since=healed) - healed
        assert took <= 1.0, f"{node} took {took:.3f} s to converge after the heal"
    status = members.status("node3")
    assert status["counters"]["isolations"] == 1 and status["isolated_s"] is None


SPOOF = """
import socket, sys, time
sys.path.insert(0, sys.argv[1])
from ironlb.agent.membership.wire import HEARTBEAT, Message, encode
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for seq in range(1, 201):
    for target in sys.argv[2:]:
        forged = encode(Message(HEARTBEAT, "node3", 2**62, seq, 0), b"not-the-cluster-key" * 2)
        s.sendto(forged, (target, 7947))
        s.sendto(b"\\x00" * (seq % 60), (target, 7947))
    time.sleep(0.002)
"""


def test_heartbeats_from_a_host_that_is_no_node_are_dropped_unread(lab: Lab) -> None:
    members = start_members(lab)
    killed = members.stop("node3", signal.SIGKILL)
    members.wait_live("node1", {"node1", "node2"}, since=killed)
    lab.run("client", sys.executable, "-c", SPOOF, ROOT, lab.addr("node1"), lab.addr("node2"), timeout=20)
    holds(
        "node3 never seen alive again (node1's and node2's reports)",
        lambda: [members.reports(n, killed + 0.5) for n in ("node1", "node2")],
        lambda reports: all("node3" not in live for lives in reports for live in lives),
        seconds=AFTER_TRAFFIC,
    )
    for node in ("node1", "node2"):
        assert all("node3" not in live for live in members.reports(node, killed + 0.5))
        counters = members.status(node)["counters"]
        assert counters["unknown_source"] >= 400, counters  # every one of them, before any HMAC
        assert counters["bad_mac"] == counters["unknown_key"] == counters["malformed"] == 0, counters


def _flood(lab: Lab, target: str, seconds: float) -> subprocess.Popen[bytes]:
    return start_membership_flood(lab, target, key_id=key_id(KEY.encode()), seconds=seconds)


def test_a_50k_pps_flood_makes_no_member_suspect_anyone(lab: Lab) -> None:
    members = start_members(lab)
    start, drops = time.monotonic(), udp_drops(lab, "node1")
    flood = _flood(lab, "node1", seconds=10)
    assert flood.wait(timeout=30) == 0, lab.log("flood")
    result = flood_result(lab)
    holds(
        "no member changed its live set under the flood (their reports)",
        lambda: [members.reports(node, start) for node in lab.nodes],
        lambda reports: not any(reports),
        seconds=AFTER_TRAFFIC,
    )
    assert result["pps"] >= 45_000, result
    for node in lab.nodes:
        assert members.reports(node, start) == [], f"{node} changed its live set under the flood"
    counters = members.status("node1")["counters"]
    refused = counters["bad_mac"] + counters["unknown_source"] + counters["malformed"]
    dropped = udp_drops(lab, "node1") - drops
    print(f"flood {result}; node1 refused {refused}, stalls {counters['stalls']}, kernel drops {dropped}")
    assert counters["bad_mac"] >= 0.4 * result["sent"], "forged heads from node addresses cost an HMAC each"
    assert counters["unknown_source"] >= 0.4 * result["sent"], "the rest never got past the source filter"
    assert refused >= 0.99 * result["sent"], "the member kept up: it read and refused the flood"
    assert counters["isolations"] == 0, counters
    # A stall is this member finding its own loop 50 ms late; it then reads its backlog before
    # judging anyone. On a 2-core host running the flood, three members and the kernel's
    # softirq, the scheduler can deschedule it that long once; a flood that starved the loop
    # would stall it every death window (10 s / 0.1 s = 100 times).
    assert counters["stalls"] <= 2, counters


def test_a_key_rotation_by_rolling_restarts_never_splits_the_cluster(lab: Lab) -> None:
    members = start_members(lab, keys=("key",))
    begin = time.monotonic()
    windows: list[tuple[str, float, float]] = []  # (node, stopped, everyone sees it again)
    steps = [("key", "next"), ("next", "key"), ("next",)]  # accept next; sign with next; drop the old
    for keys in steps:
        for node in lab.nodes:  # one at a time, as a DaemonSet rolls
            stopped = members.stop(node, signal.SIGTERM)
            members.start(node, keys)
            done = max(members.wait_live(other, EVERYONE, since=stopped, timeout=10) for other in lab.nodes)
            windows.append((node, stopped, done))

    def restarting(node: str, t: float) -> bool:
        return any(n == node and a <= t <= b for n, a, b in windows)

    for observer in lab.nodes:
        for line in members.lines(observer):
            if "live" in line and line["t"] >= begin and not restarting(observer, line["t"]):
                missing = EVERYONE - set(line["live"])
                split = [m for m in missing if not restarting(m, line["t"])]
                assert not split, f"{observer} lost {split} at {line['t'] - begin:.2f} s: not a restart"
    for node in lab.nodes:
        members.status(node)
        runs = [x["status"] for x in members.lines(node) if "status" in x]
        assert len(runs) == 1 + len(steps), f"{node}: one status per run"
        for run in runs:
            assert run["counters"]["unknown_key"] == run["counters"]["bad_mac"] == 0, run["counters"]
        assert {p["key"] for p in runs[-1]["peers"].values()} == {"current"}, runs[-1]["peers"]
