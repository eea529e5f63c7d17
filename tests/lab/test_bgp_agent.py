"""The real ``ironlb-agent`` speaking BGP to BIRD, and interop with FRR (BGP + BFD) and GoBGP.

Agents run as processes in the node namespaces on a standalone manifest directory
(lab.agents); the interop tests hand plans to the BGP shell running in node1's namespace
(lab.bgpnode).  The router's view (birdc / vtysh / gobgp) is the judge.
"""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from ironlb.agent.announcements import BFDSettings, BGPRoute, Plan
from lab import Lab
from lab.agents import Agents
from lab.bgpnode import NodeShell
from lab.manifests import bgp_advertisement, lab_service, nodes, pool, router_peer
from lab.routers import BfdTimers, Bird, Frr, GoBGP, Neighbor, node_session
from lab.waiting import eventually, wait_for

pytestmark = [pytest.mark.lab, pytest.mark.timeout(120)]

VIP = "10.77.0.200"


def bgp_docs(lab: Lab) -> list[dict[str, Any]]:
    peer = router_peer(lab, hold=6)
    adv = bgp_advertisement(communities=["65000:42"])
    return [pool(), peer, adv, *nodes(lab), lab_service("web", ip=VIP)]


def hops(bird: Bird) -> set[str]:
    return {p.next_hop for p in bird.routes().get(f"{VIP}/32", [])}


def ns_pids(lab: Lab, node: str) -> list[str]:
    return lab.run("router", "ip", "netns", "pids", lab.ns(node)).stdout.split()


def test_agents_announce_and_sigterm_sigkill_withdraw(lab: Lab) -> None:
    bird = Bird(lab, [Neighbor(n, lab.addr(n)) for n in lab.nodes]).start()
    agents = Agents(lab, membership="static")
    agents.write(*bgp_docs(lab))
    agents.start_all()
    every = {lab.addr(n) for n in lab.nodes}
    wait_for("a path from every agent", lambda: hops(bird), lambda h: h == every, timeout=20)
    assert bird.routes()[f"{VIP}/32"][0].communities == ("65000:42",)

    def session_state() -> object:
        status = agents.status("node1") or {}
        return status.get("shells", {}).get("BGPShell", {}).get("sessions", {}).get("tor", {}).get("state")

    # The status file is rewritten periodically: it may lag the router's view briefly.
    wait_for("node1's status to show the session established", session_state, lambda s: s == "established")
    status = agents.wait_status("node1")
    assert any(o["mode"] == "bgp" and o["ip"] == VIP for o in status["ownership"])

    start = time.monotonic()
    agents.stop("node1", signal.SIGTERM)
    wait_for(
        "node1's path gone after SIGTERM", lambda: hops(bird), lambda h: lab.addr("node1") not in h, timeout=5
    )
    assert time.monotonic() - start < 3, "SIGTERM withdraws at once"
    wait_for("no process left on node1", lambda: ns_pids(lab, "node1"), lambda pids: not pids, timeout=5)

    agents.stop("node2", signal.SIGKILL)
    start = time.monotonic()
    wait_for(
        "node2's path gone within the hold time (6 s)",
        lambda: hops(bird),
        lambda h: lab.addr("node2") not in h,
        timeout=6,
    )
    assert time.monotonic() - start < 6
    wait_for("no orphaned speaker on node2", lambda: ns_pids(lab, "node2"), lambda pids: not pids, timeout=5)
    assert hops(bird) == {lab.addr("node3")}

    agents.start("node1")
    wait_for(
        "a restarted agent announces again", lambda: hops(bird), lambda h: lab.addr("node1") in h, timeout=20
    )


@pytest.fixture
async def shell(lab: Lab) -> AsyncIterator[NodeShell]:
    s = NodeShell(lab, "node1")
    try:
        yield s
    finally:
        await s.close()


def node1_plan(lab: Lab, bfd: BFDSettings | None = None, hold: int = 6) -> Plan:
    sess = node_session(lab, hold_time=hold, keepalive_time=1, bfd=bfd)
    return Plan(node="node1", bgp=(BGPRoute(f"{VIP}/32", ("tor",)),), bgp_sessions=(sess,))


async def established(router: Frr | GoBGP, lab: Lab) -> None:
    """Wait (off the event loop: the probe runs the router's CLI) for node1's session."""
    await asyncio.to_thread(
        wait_for,
        f"{type(router).__name__} session Established",
        router.established,
        lambda sessions: sessions.get(lab.addr("node1"), False),
        timeout=20,
        interval=0.1,
    )


async def route(
    router: Frr | GoBGP, what: str, present: bool, timeout: float, interval: float = 0.05
) -> None:
    """Wait (off the event loop) until the VIP's route is at ``router`` (or gone, when not ``present``)."""
    await asyncio.to_thread(
        wait_for,
        what,
        router.routes,
        lambda routes: (f"{VIP}/32" in routes) == present,
        timeout=timeout,
        interval=interval,
    )


async def test_interop_frr_with_bfd(lab: Lab, shell: NodeShell) -> None:
    """FRR's bgpd and bfdd as the router, with MD5: the session, the route, BFD, link loss drops it."""
    (lab.workdir / "secrets" / "frr").mkdir(parents=True)
    (lab.workdir / "secrets" / "frr" / "password").write_text("frr-md5!pw\n")
    neighbor = Neighbor("node1", lab.addr("node1"), password="frr-md5!pw", bfd=True)
    frr = Frr(lab, [neighbor], bfd=BfdTimers(100, 3), hold=9)  # only BFD can beat the 9 s hold time
    frr.start()
    try:
        plan = node1_plan(lab, BFDSettings(100, 100, 3), hold=9)
        md5 = dataclasses.replace(plan.bgp_sessions[0], password_ref=("frr", "password"))
        await shell.apply(dataclasses.replace(plan, bgp_sessions=(md5,)))
        await established(frr, lab)
        await route(frr, "the route at FRR", True, 10)
        assert frr.routes()[f"{VIP}/32"][0].next_hop == lab.addr("node1")
        await asyncio.to_thread(
            wait_for,
            "BFD up at FRR",
            lambda: frr.bfd_peers().get(lab.addr("node1")),
            lambda state: state == "up",
        )
        # the shell reads BIRD's BFD state once a second
        await eventually(
            "the shell to report BFD up", lambda: shell.session("tor"), lambda s: s.get("bfd") == "up"
        )
        lab.run("node1", "ip", "link", "set", "eth0", "down")  # power or link loss: no FIN, no Cease
        down = time.monotonic()
        await route(frr, "FRR dropped the route (BFD)", False, 5, interval=0.01)
        took = time.monotonic() - down
        assert took < 1.5, f"FRR kept the route {took:.2f} s: far beyond BFD's 0.3 s detection (hold is 9 s)"
        lab.run("node1", "ip", "link", "set", "eth0", "up")
        await route(frr, "the route back", True, 20)
        await shell.apply(Plan(node="node1", bgp_sessions=(md5,)))  # the service is deleted
        await route(frr, "withdrawn at FRR", False, 10)
    finally:
        frr.stop()


async def test_interop_gobgp(lab: Lab, shell: NodeShell) -> None:
    gobgp = GoBGP(lab, [Neighbor("node1", lab.addr("node1"))]).start()
    await shell.apply(node1_plan(lab))
    await established(gobgp, lab)
    await route(gobgp, "the route at GoBGP", True, 10)
    assert gobgp.routes()[f"{VIP}/32"][0].next_hop == lab.addr("node1")
    await shell.apply(Plan(node="node1", bgp_sessions=node1_plan(lab).bgp_sessions))
    await route(gobgp, "withdrawn at GoBGP", False, 10)
