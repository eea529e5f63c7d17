"""Node loss with BFD, and agent restarts with graceful restart, judged by BIRD as the router.

Real ``ironlb-agent`` processes in the node namespaces, configured by manifests (a
BFDProfile, BGPPeers naming it, graceful restart on a peer).  A node's loss is simulated
without a FIN: ``ip link set eth0 down`` in its namespace, so only BFD (or the hold timer)
can tell the router.
"""

from __future__ import annotations

import signal
import time
from typing import Any

import pytest

from lab import Lab
from lab.agents import Agents, bgp_advertisement, bgp_peer, nodes, pool, resource, service
from lab.routers import BfdTimers, Bird, Neighbor, wait_for

pytestmark = [pytest.mark.lab, pytest.mark.timeout(180)]

VIP = "10.77.0.200"
HOLD = 9  # seconds: what the router would wait without BFD


def kernel_hops(lab: Lab, prefix: str = VIP) -> set[str]:
    """Next hops of ``prefix`` in the router namespace's FIB (one, or ECMP ``nexthop via`` lines)."""
    words = lab.run("router", "ip", "-4", "route", "show", prefix).stdout.split()
    return {words[i + 1] for i, w in enumerate(words[:-1]) if w == "via"}


def bfd_profile(name: str = "fast", **spec: Any) -> dict[str, Any]:
    return resource("BFDProfile", name, {"receiveInterval": 100, "transmitInterval": 100, **spec})


def test_link_loss_drops_only_that_next_hop_within_bfd_detection(lab: Lab) -> None:
    bird = Bird(
        lab, [Neighbor(n, lab.addr(n), bfd=True) for n in lab.nodes], hold=HOLD, bfd=BfdTimers(100, 3)
    )
    bird.start()
    agents = Agents(lab, membership="static")
    peer = bgp_peer(lab, hold=HOLD, bfdProfile="fast")
    agents.write(pool(), bfd_profile(), peer, bgp_advertisement(), *nodes(lab), service("web", ip=VIP))
    agents.start_all()
    every = {lab.addr(n) for n in lab.nodes}
    wait_for(lambda: kernel_hops(lab) == every, 30, "ECMP over every node in the router's FIB", 0.05)
    wait_for(
        lambda: set(bird.bfd_sessions().values()) == {"Up"} and len(bird.bfd_sessions()) == 3, 10, "BFD up"
    )

    start = time.monotonic()
    lab.run("node2", "ip", "link", "set", "eth0", "down")  # no FIN, no Cease: only BFD can tell
    took = wait_for(
        lambda: lab.addr("node2") not in kernel_hops(lab), HOLD, "node2's next hop dropped", 0.005
    )
    assert kernel_hops(lab) == every - {lab.addr("node2")}, "ECMP keeps the other two"
    # Detection is 3 x 100 ms; the rest is BIRD withdrawing and the kernel route update.
    # The margin is for this shared machine; without BFD this takes the hold time (9 s).
    assert took < 1.5, f"the router dropped node2 after {took:.3f} s; BFD should take about 0.3 s"
    assert time.monotonic() - start < 2

    lab.run("node2", "ip", "link", "set", "eth0", "up")
    wait_for(lambda: kernel_hops(lab) == every, 30, "node2 back after the link returns", 0.05)


def test_graceful_restart_keeps_routes_through_an_agent_restart_and_expires_without_one(lab: Lab) -> None:
    bird = Bird(lab, [Neighbor("node1", lab.addr("node1"))], hold=HOLD)
    bird.start()
    watch = lab.spawn("router", ["ip", "-4", "monitor", "route"], name="routewatch")
    agents = Agents(lab, membership="static")
    peer = bgp_peer(
        lab,
        hold=HOLD,
        enableGracefulRestart=True,
        gracefulRestartTime=8,
        nodeSelector={"matchLabels": {"bgp": "yes"}},
    )
    docs = [pool(), peer, bgp_advertisement(), *nodes(lab, {"node1": {"bgp": "yes"}}), service("web", ip=VIP)]
    agents.write(*docs)
    agents.start("node1")
    wait_for(lambda: kernel_hops(lab) == {lab.addr("node1")}, 30, "the route from node1", 0.05)

    def deleted() -> bool:
        return any(line.startswith(f"Deleted {VIP}") for line in lab.log("routewatch").splitlines())

    # An orderly restart (SIGTERM, as a rolling update does): the router keeps the route.
    agents.stop("node1", signal.SIGTERM)
    wait_for(lambda: bird.protocols().get("node1") != "Established", 10, "the session closed", 0.05)
    time.sleep(1.5)
    assert kernel_hops(lab) == {lab.addr("node1")} and not deleted(), (
        "GR keeps the route while node1 restarts"
    )
    agents.start("node1")
    bird.wait_established(["node1"], 20)
    agents.write(*docs, service("api", ip="10.77.0.201"))  # the restarted speaker exports again
    wait_for(lambda: kernel_hops(lab, "10.77.0.201") == {lab.addr("node1")}, 30, "a new route after restart")
    assert not deleted(), "the route never left the router's FIB during the restart"

    # A crash with no comeback: the route is stale, then cleared after the restart time.
    agents.stop("node1", signal.SIGKILL)
    start = time.monotonic()
    wait_for(lambda: bird.protocols().get("node1") != "Established", 10, "the session lost", 0.05)
    time.sleep(3)
    assert kernel_hops(lab) == {lab.addr("node1")}, "still kept a few seconds after the crash"
    took = wait_for(lambda: not kernel_hops(lab), 20, "the stale route cleared", 0.1) + 3
    assert 6 < time.monotonic() - start < 16, f"cleared {took:.1f} s after the crash; restart time is 8 s"
    lab.stop(watch)


def capabilities(pid: int) -> int:
    for line in open(f"/proc/{pid}/status").read().splitlines():  # noqa: SIM115 - procfs
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    raise AssertionError(f"no CapEff for {pid}")


def test_the_agent_and_its_bird_need_only_net_raw_and_net_admin(lab: Lab) -> None:
    """As the DaemonSet runs it: every capability dropped but NET_RAW and NET_ADMIN (CapEff 0x3000)."""
    bird = Bird(lab, [Neighbor("node1", lab.addr("node1"), bfd=True)], hold=HOLD, bfd=BfdTimers(100, 3))
    bird.start()
    agents = Agents(lab, membership="static")
    docs = [pool(), bfd_profile(), bgp_peer(lab, hold=HOLD, bfdProfile="fast"), bgp_advertisement()]
    agents.write(*docs, *nodes(lab), service("web", ip=VIP))
    caps = "-all,+net_raw,+net_admin"
    setpriv = ["setpriv", f"--bounding-set={caps}", f"--inh-caps={caps}", f"--ambient-caps={caps}"]
    agents.procs["node1"] = lab.spawn("node1", [*setpriv, *agents.argv("node1")], name="agent-node1")
    wait_for(lambda: kernel_hops(lab) == {lab.addr("node1")}, 30, "the route from the restricted agent", 0.05)
    wait_for(
        lambda: bird.bfd_sessions().get(lab.addr("node1")) == "Up", 10, "BFD up with the restricted agent"
    )

    def bird_pid() -> int | None:
        status = agents.status("node1") or {}
        pid = status.get("shells", {}).get("BGPShell", {}).get("speaker", {}).get("pid")
        return int(pid) if pid else None

    wait_for(lambda: bird_pid() is not None, 10, "the agent's status to name its BIRD")
    assert capabilities(agents.procs["node1"].pid) == capabilities(bird_pid() or 0) == 0x3000
    agents.stop("node1", signal.SIGTERM)
    wait_for(lambda: not kernel_hops(lab), 5, "withdrawn on SIGTERM", 0.02)
