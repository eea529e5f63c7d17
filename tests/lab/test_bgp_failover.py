"""Node loss with BFD, and agent restarts with graceful restart, judged by BIRD as the router.

Real ``ironlb-agent`` processes in the node namespaces, configured by manifests (a
BFDProfile, BGPPeers naming it, graceful restart on a peer).  A node's loss is simulated
without a FIN: ``ip link set eth0 down`` in its namespace, so only BFD (or the hold timer)
can tell the router.
"""

from __future__ import annotations

import signal
import time

import pytest

from lab import Lab
from lab.agents import Agents
from lab.manifests import bfd_profile, bgp_advertisement, lab_service, nodes, pool, router_peer
from lab.routers import BfdTimers, Bird, Neighbor
from lab.waiting import holds, wait_for

pytestmark = [pytest.mark.lab, pytest.mark.timeout(180)]

VIP = "10.77.0.200"
HOLD = 9  # seconds: what the router would wait without BFD
#: How long "the router kept the route" must hold after the session went down to mean graceful
#: restart is at work: without GR, BIRD flushes a closed session's routes at once (milliseconds,
#: shared/notes/lab.md), so 1.5 s is 100 times that, and still well inside the 8 s restart time.
GR_KEPT_WINDOW = 1.5
#: The same after a crash: 3 s in, the stale route must still be there (restart time 8 s).
STALE_KEPT_WINDOW = 3.0


def kernel_hops(lab: Lab, prefix: str = VIP) -> set[str]:
    """Next hops of ``prefix`` in the router namespace's FIB (one, or ECMP ``nexthop via`` lines)."""
    words = lab.run("router", "ip", "-4", "route", "show", prefix).stdout.split()
    return {words[i + 1] for i, w in enumerate(words[:-1]) if w == "via"}


def session_down(bird: Bird, protocol: str) -> None:
    wait_for(
        f"BIRD's session {protocol} down",
        lambda: bird.protocols().get(protocol),
        lambda s: s != "Established",
    )


def test_link_loss_drops_only_that_next_hop_within_bfd_detection(lab: Lab) -> None:
    bird = Bird(
        lab, [Neighbor(n, lab.addr(n), bfd=True) for n in lab.nodes], hold=HOLD, bfd=BfdTimers(100, 3)
    )
    bird.start()
    agents = Agents(lab, membership="static")
    peer = router_peer(lab, hold=HOLD, bfdProfile="fast")
    agents.write(pool(), bfd_profile(), peer, bgp_advertisement(), *nodes(lab), lab_service("web", ip=VIP))
    agents.start_all()
    every = {lab.addr(n) for n in lab.nodes}
    wait_for(
        "ECMP over every node in the router's FIB",
        lambda: kernel_hops(lab),
        lambda hops: hops == every,
        timeout=30,
    )
    wait_for("BFD up", bird.bfd_sessions, lambda s: set(s.values()) == {"Up"} and len(s) == 3)

    start = time.monotonic()
    lab.run("node2", "ip", "link", "set", "eth0", "down")  # no FIN, no Cease: only BFD can tell
    down = time.monotonic()
    hops = wait_for(
        "node2's next hop dropped",
        lambda: kernel_hops(lab),
        lambda h: lab.addr("node2") not in h,
        timeout=HOLD,
        interval=0.005,
    )
    took = time.monotonic() - down
    assert hops == every - {lab.addr("node2")}, "ECMP keeps the other two"
    # Detection is 3 x 100 ms; the rest is BIRD withdrawing and the kernel route update.
    # The margin is for this shared machine; without BFD this takes the hold time (9 s).
    assert took < 1.5, f"the router dropped node2 after {took:.3f} s; BFD should take about 0.3 s"
    assert time.monotonic() - start < 2

    lab.run("node2", "ip", "link", "set", "eth0", "up")
    wait_for(
        "node2 back after the link returns", lambda: kernel_hops(lab), lambda hops: hops == every, timeout=30
    )


def test_graceful_restart_keeps_routes_through_an_agent_restart_and_expires_without_one(lab: Lab) -> None:
    bird = Bird(lab, [Neighbor("node1", lab.addr("node1"))], hold=HOLD)
    bird.start()
    watch = lab.spawn("router", ["ip", "-4", "monitor", "route"], name="routewatch")
    agents = Agents(lab, membership="static")
    peer = router_peer(
        lab,
        hold=HOLD,
        enableGracefulRestart=True,
        gracefulRestartTime=8,
        nodeSelector={"matchLabels": {"bgp": "yes"}},
    )
    docs = [
        pool(),
        peer,
        bgp_advertisement(),
        *nodes(lab, {"node1": {"bgp": "yes"}}),
        lab_service("web", ip=VIP),
    ]
    agents.write(*docs)
    agents.start("node1")
    node1 = {lab.addr("node1")}
    wait_for("the route from node1", lambda: kernel_hops(lab), lambda hops: hops == node1, timeout=30)

    def deleted() -> bool:
        return any(line.startswith(f"Deleted {VIP}") for line in lab.log("routewatch").splitlines())

    # An orderly restart (SIGTERM, as a rolling update does): the router keeps the route.
    agents.stop("node1", signal.SIGTERM)
    session_down(bird, "node1")
    holds(
        "GR keeps the route while node1 restarts",
        lambda: (kernel_hops(lab), deleted()),
        lambda seen: seen == (node1, False),
        seconds=GR_KEPT_WINDOW,
    )
    agents.start("node1")
    bird.wait_established(["node1"], 20)
    agents.write(*docs, lab_service("api", ip="10.77.0.201"))  # the restarted speaker exports again
    wait_for(
        "a new route after restart",
        lambda: kernel_hops(lab, "10.77.0.201"),
        lambda hops: hops == node1,
        timeout=30,
    )
    assert not deleted(), "the route never left the router's FIB during the restart"

    # A crash with no comeback: the route is stale, then cleared after the restart time.
    agents.stop("node1", signal.SIGKILL)
    start = time.monotonic()
    session_down(bird, "node1")
    holds(
        "the stale route kept a few seconds after the crash",
        lambda: kernel_hops(lab),
        lambda hops: hops == node1,
        seconds=STALE_KEPT_WINDOW,
    )
    wait_for("the stale route cleared", lambda: kernel_hops(lab), lambda h: not h, timeout=20, interval=0.1)
    took = time.monotonic() - start
    assert 6 < took < 16, f"cleared {took:.1f} s after the crash; restart time is 8 s"
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
    docs = [pool(), bfd_profile(), router_peer(lab, hold=HOLD, bfdProfile="fast"), bgp_advertisement()]
    agents.write(*docs, *nodes(lab), lab_service("web", ip=VIP))
    caps = "-all,+net_raw,+net_admin"
    setpriv = ["setpriv", f"--bounding-set={caps}", f"--inh-caps={caps}", f"--ambient-caps={caps}"]
    agents.procs["node1"] = lab.spawn("node1", [*setpriv, *agents.argv("node1")], name="agent-node1")
    wait_for(
        "the route from the restricted agent",
        lambda: kernel_hops(lab),
        lambda hops: hops == {lab.addr("node1")},
        timeout=30,
    )
    wait_for(
        "BFD up with the restricted agent",
        lambda: bird.bfd_sessions().get(lab.addr("node1")),
        lambda state: state == "Up",
    )

    def bird_pid() -> int | None:
        status = agents.status("node1") or {}
        pid = status.get("shells", {}).get("BGPShell", {}).get("speaker", {}).get("pid")
        return int(pid) if pid else None

    wait_for("the agent's status to name its BIRD", bird_pid)
    assert capabilities(agents.procs["node1"].pid) == capabilities(bird_pid() or 0) == 0x3000
    agents.stop("node1", signal.SIGTERM)
    wait_for("withdrawn on SIGTERM", lambda: kernel_hops(lab), lambda h: not h, timeout=5, interval=0.02)
