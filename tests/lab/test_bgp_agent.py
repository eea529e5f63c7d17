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
from lab.agents import Agents, bgp_advertisement, bgp_peer, nodes, pool, service
from lab.bgpnode import NodeShell
from lab.routers import BfdTimers, Bird, Frr, GoBGP, Neighbor, node_session, wait_for

pytestmark = [pytest.mark.lab, pytest.mark.timeout(120)]

VIP = "10.77.0.200"


def bgp_docs(lab: Lab) -> list[dict[str, Any]]:
    peer = bgp_peer(lab, hold=6)
    adv = bgp_advertisement(communities=["65000:42"])
    return [pool(), peer, adv, *nodes(lab), service("web", ip=VIP)]


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
    wait_for(lambda: hops(bird) == every, 20, "a path from every agent")
    assert bird.routes()[f"{VIP}/32"][0].communities == ("65000:42",)

    def session_state() -> object:
        status = agents.status("node1") or {}
        return status.get("shells", {}).get("BGPShell", {}).get("sessions", {}).get("tor", {}).get("state")

    # The status file is rewritten periodically: it may lag the router's view briefly.
    wait_for(lambda: session_state() == "established", 10, "node1's status to show the session established")
    status = agents.wait_status("node1")
    assert any(o["mode"] == "bgp" and o["ip"] == VIP for o in status["ownership"])

    start = time.monotonic()
    agents.stop("node1", signal.SIGTERM)
    took = wait_for(lambda: lab.addr("node1") not in hops(bird), 5, "node1's path gone after SIGTERM")
    assert time.monotonic() - start < 3, "SIGTERM withdraws at once"
    wait_for(lambda: not ns_pids(lab, "node1"), 5, "no process left on node1")

    agents.stop("node2", signal.SIGKILL)
    took = wait_for(
        lambda: lab.addr("node2") not in hops(bird), 6, "node2's path gone within the hold time (6 s)"
    )
    assert took < 6
    wait_for(lambda: not ns_pids(lab, "node2"), 5, "no orphaned speaker on node2")
    assert hops(bird) == {lab.addr("node3")}

    agents.start("node1")
    wait_for(lambda: lab.addr("node1") in hops(bird), 20, "a restarted agent announces again")


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
        await asyncio.to_thread(
            wait_for,
            lambda: frr.established().get(lab.addr("node1"), False),
            20,
            "FRR session Established",
            0.1,
        )
        await asyncio.to_thread(wait_for, lambda: f"{VIP}/32" in frr.routes(), 10, "the route at FRR", 0.05)
        assert frr.routes()[f"{VIP}/32"][0].next_hop == lab.addr("node1")
        await asyncio.to_thread(
            wait_for, lambda: frr.bfd_peers().get(lab.addr("node1")) == "up", 10, "BFD up at FRR", 0.05
        )
        for _ in range(100):  # the shell reads BIRD's BFD state once a second
            if (await shell.session("tor")).get("bfd") == "up":
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"the shell never reported BFD up: {await shell.session('tor')}")
        lab.run("node1", "ip", "link", "set", "eth0", "down")  # power or link loss: no FIN, no Cease
        took = await asyncio.to_thread(
            wait_for, lambda: f"{VIP}/32" not in frr.routes(), 5, "FRR dropped the route (BFD)", 0.01
        )
        assert took < 1.5, f"FRR kept the route {took:.2f} s: far beyond BFD's 0.3 s detection (hold is 9 s)"
        lab.run("node1", "ip", "link", "set", "eth0", "up")
        await asyncio.to_thread(wait_for, lambda: f"{VIP}/32" in frr.routes(), 20, "the route back", 0.05)
        await shell.apply(Plan(node="node1", bgp_sessions=(md5,)))  # the service is deleted
        await asyncio.to_thread(
            wait_for, lambda: f"{VIP}/32" not in frr.routes(), 10, "withdrawn at FRR", 0.05
        )
    finally:
        frr.stop()


async def test_interop_gobgp(lab: Lab, shell: NodeShell) -> None:
    gobgp = GoBGP(lab, [Neighbor("node1", lab.addr("node1"))]).start()
    await shell.apply(node1_plan(lab))
    await asyncio.to_thread(
        wait_for,
        lambda: gobgp.established().get(lab.addr("node1"), False),
        20,
        "GoBGP session Established",
        0.1,
    )
    await asyncio.to_thread(wait_for, lambda: f"{VIP}/32" in gobgp.routes(), 10, "the route at GoBGP", 0.05)
    assert gobgp.routes()[f"{VIP}/32"][0].next_hop == lab.addr("node1")
    await shell.apply(Plan(node="node1", bgp_sessions=node1_plan(lab).bgp_sessions))
    await asyncio.to_thread(
        wait_for, lambda: f"{VIP}/32" not in gobgp.routes(), 10, "withdrawn at GoBGP", 0.05
    )
