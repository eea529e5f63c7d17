"""The BGP shell and its BIRD against BIRD as the top-of-rack router, judged by the router.

Each node's shell runs in its own process inside the node's namespace
(:class:`lab.bgpnode.NodeShell`), as it does inside the agent, and starts BIRD there;
the test hands it plans.  The router BIRD exports what it learns into its namespace's
kernel table with ``merge paths on``, so ECMP is visible in its FIB.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import pytest

from ironlb import addresses
from ironlb.agent.announcements import BGPRoute, BGPSession, Plan
from ironlb.agent.planner import plan
from ironlb.agent.view import ClusterView, NodeInfo
from ironlb.config import Config, PoolInfo
from ironlb.model import BGPAdvertisement, BGPPeer, IPPool
from ironlb.service import AssignedIP, Assignment
from lab import VIP_PORT, Lab
from lab.bgpnode import NodeShell
from lab.routers import NODE_ASN, ROUTER_ASN, Bird, Neighbor, node_session
from lab.waiting import eventually

pytestmark = [pytest.mark.lab, pytest.mark.timeout(120)]

VIP = "10.77.0.200"
VIP6 = "fd77::c8"

Shells = dict[str, NodeShell]
#: How long a session must have been up before a change, so that a flap it caused would show in
#: BIRD's "since" column (compared with a 0.1 s tolerance: it has millisecond resolution).
FLAP_VISIBLE = 1.1


def session(lab: Lab, node: str, family: int = 4, **kw: object) -> BGPSession:
    base = node_session(lab, node, hold_time=6, keepalive_time=2, family=family)
    return dataclasses.replace(base, **kw)  # type: ignore[arg-type]


@pytest.fixture
async def shells(lab: Lab) -> AsyncIterator[Shells]:
    out = {n: NodeShell(lab, n) for n in lab.nodes}
    try:
        yield out
    finally:
        await asyncio.gather(*(s.close() for s in out.values()))


async def session_state(shell: NodeShell, name: str, state: str, timeout: float = 5) -> dict[str, Any]:
    """The shell's status row of session ``name`` once it shows ``state`` (it reads BIRD each second)."""
    return await eventually(
        f"session {name} to be {state}", lambda: shell.session(name), lambda row: row.get("state") == state
    )


async def hops(bird: Bird, prefix: str = f"{VIP}/32", table: str = "master4") -> set[str]:
    """Next hops of ``prefix`` at the router (read off the event loop: it runs birdc)."""
    routes = await asyncio.to_thread(bird.routes, table)
    return {p.next_hop for p in routes.get(prefix, [])}


async def routes(bird: Bird) -> set[str]:
    """The prefixes the router holds (read off the event loop)."""
    return set(await asyncio.to_thread(bird.routes))


def md5_failures(lab: Lab, host: str = "router") -> int:
    """Segments ``host``'s kernel refused for a wrong TCP MD5 signature (TcpExt TCPMD5Failure)."""
    lines = [line.split() for line in lab.run(host, "cat", "/proc/net/netstat").stdout.splitlines()]
    for names, values in zip(lines[::2], lines[1::2], strict=True):
        if names[0] == "TcpExt:" and "TCPMD5Failure" in names:
            return int(values[names.index("TCPMD5Failure")])
    raise AssertionError("no TCPMD5Failure counter in /proc/net/netstat")


def route_plan(node: str, sessions: Iterable[BGPSession], *routes: BGPRoute) -> Plan:
    return Plan(node=node, bgp=tuple(routes), bgp_sessions=tuple(sessions))


async def test_ecmp_routes_real_tcp_communities_and_withdraw(lab: Lab, shells: Shells) -> None:
    bird = Bird(lab, [Neighbor(n, lab.addr(n)) for n in lab.nodes]).start()
    lab.start_vip_servers()
    route = BGPRoute(f"{VIP}/32", ("tor",), ("65000:7", "large:64513:1:2"))
    for n, shell in shells.items():
        await shell.apply(route_plan(n, [session(lab, n)], route))
    want = {lab.addr(n) for n in lab.nodes}
    await eventually("a path from every node at the router", lambda: hops(bird), lambda h: h == want)
    (path, *_) = bird.routes()[f"{VIP}/32"]
    assert path.communities == ("65000:7",) and path.large_communities == ("64513:1:2",)
    kernel = bird.kernel_routes()
    assert all(f"nexthop via {a}" in kernel for a in want), kernel  # ECMP in the router's FIB
    reply = lab.run("extclient", "nc", "-w", "3", VIP, str(VIP_PORT), timeout=10).stdout
    assert reply.strip() in lab.nodes, f"TCP from behind the router reached {reply!r}"
    status = await session_state(shells["node1"], "tor", "established")  # read once a second
    assert status["prefixes_sent"] == 1 and status["uptime_s"] >= 0, status
    await shells["node1"].apply(route_plan("node1", [session(lab, "node1")]))  # the service is deleted
    await eventually("node1's path withdrawn", lambda: hops(bird), lambda h: h == want - {lab.addr("node1")})
    assert bird.protocols()["node1"] == "Established", "withdrawing a route keeps the session"


async def test_md5_right_password_establishes_wrong_never_does(lab: Lab, shells: Shells) -> None:
    bird = Bird(lab, [Neighbor(n, lab.addr(n), password="s3cret!") for n in ("node1", "node2")]).start()
    for name, pw in (("right", "s3cret!"), ("wrong", "guess")):
        (lab.workdir / "secrets" / name).mkdir(parents=True)
        (lab.workdir / "secrets" / name / "password").write_text(pw + "\n")
    await shells["node1"].apply(
        route_plan("node1", [session(lab, "node1", password_ref=("right", "password"))])
    )
    await shells["node2"].apply(
        route_plan("node2", [session(lab, "node2", password_ref=("wrong", "password"))])
    )
    await asyncio.to_thread(bird.wait_established, ["node1"], 15)
    # Not a fixed wait: the router's kernel counts every segment refused for a wrong MD5
    # signature; three mean node2 tried (and BIRD retried) with the wrong password.
    await eventually(
        "3 segments refused for a wrong MD5 signature", lambda: md5_failures(lab), lambda n: n >= 3
    )
    assert bird.protocols()["node2"] != "Established"
    assert (await shells["node2"].session("tor"))["state"] != "established"
    for shell in shells.values():
        assert "s3cret" not in repr(await shell.status()) and "guess" not in repr(await shell.status())
    for node in ("node1", "node2"):  # nothing with the password stays on disk, and nothing in argv
        assert [p.name for p in (lab.workdir / f"run-{node}" / "bgp").iterdir()] in (
            ["lock", "bird.ctl"],
            ["bird.ctl", "lock"],
        )
    pids = lab.run("node1", "ip", "netns", "pids", lab.ns("node1")).stdout.split()
    assert len(pids) >= 2, "the shell and its BIRD run in node1's namespace"
    for pid in pids:
        try:
            seen = Path(f"/proc/{pid}/cmdline").read_bytes() + Path(f"/proc/{pid}/environ").read_bytes()
        except FileNotFoundError:  # `ip netns pids` itself, already gone
            continue
        assert b"s3cret" not in seen, f"the password is in the argv or environment of pid {pid}"
    assert "s3cret" not in lab.log("bgpnode-node1")


async def test_ibgp_local_pref_and_ipv6_routes_arrive(lab: Lab, shells: Shells) -> None:
    bird = Bird(
        lab, [Neighbor("ibgp1", lab.addr("node1"), asn=ROUTER_ASN), Neighbor("v6n1", lab.addr("node1", 6))]
    ).start()
    ibgp = session(lab, "node1", local_asn=ROUTER_ASN)
    v6 = session(lab, "node1", family=6)
    await shells["node1"].apply(
        route_plan(
            "node1",
            [ibgp, v6],
            BGPRoute(f"{VIP}/32", ("tor",), local_pref=250),
            BGPRoute(f"{VIP6}/128", ("tor6",)),
        )
    )
    await eventually("the iBGP route", lambda: routes(bird), lambda r: f"{VIP}/32" in r)
    assert bird.routes()[f"{VIP}/32"][0].local_pref == 250
    await eventually(
        "the IPv6 /128", lambda: hops(bird, f"{VIP6}/128", "master6"), lambda h: h == {lab.addr("node1", 6)}
    )
    assert f"{VIP6} " in bird.kernel_routes(6)


def etp_view(lab: Lab, endpoints: Iterable[str]) -> ClusterView:
    pool = IPPool.build("lan", {"addresses": ["10.77.0.200-10.77.0.250"]})
    cfg = Config(
        pools={"lan": PoolInfo(pool, (addresses.parse_block("10.77.0.200-10.77.0.250"),), None)},
        peers={
            "tor": BGPPeer.build(
                "tor",
                {
                    "myASN": NODE_ASN,
                    "peerASN": ROUTER_ASN,
                    "holdTime": 3,
                    "connectTime": 1,
                    "peerAddress": lab.addr("router"),
                },
            )
        },
        bgp_advertisements={"all": BGPAdvertisement.build("all", {})},
    )
    return ClusterView(
        config=cfg,
        assignments={
            "default/web": Assignment("default/web", (AssignedIP(VIP, "lan"),), traffic_policy="Local")
        },
        endpoints={"default/web": frozenset(endpoints)},
        nodes={n: NodeInfo(n, addresses=(lab.addr(n, 4), lab.addr(n, 6))) for n in lab.nodes},
    )


async def test_etp_local_next_hops_follow_endpoints(lab: Lab, shells: Shells) -> None:
    bird = Bird(lab, [Neighbor(n, lab.addr(n)) for n in lab.nodes]).start()
    for eps in (["node1"], ["node2", "node3"], ["node3"]):
        view = etp_view(lab, eps)
        for n, shell in shells.items():
            await shell.apply(plan(view, n))
        want = {lab.addr(n) for n in eps}
        ok = want.__eq__  # a set compared with the set hops() returns
        await eventually(f"next hops = endpoints on {eps}", lambda: hops(bird), ok)


async def test_router_restart_brings_sessions_and_routes_back(lab: Lab, shells: Shells) -> None:
    bird = Bird(lab, [Neighbor("node1", lab.addr("node1"))]).start()
    await shells["node1"].apply(route_plan("node1", [session(lab, "node1")], BGPRoute(f"{VIP}/32", ("tor",))))
    node1 = {lab.addr("node1")}
    await eventually("the route", lambda: hops(bird), lambda h: h == node1)
    pid = (await shells["node1"].status())["speaker"]["pid"]
    bird.stop()
    await eventually(
        "node1 to see its session go down",
        lambda: shells["node1"].session("tor"),
        lambda row: row["state"] != "established",
        interval=0.02,
    )
    bird.start()
    start = asyncio.get_running_loop().time()
    await eventually("the route back", lambda: hops(bird), lambda h: h == node1, timeout=20)
    took = asyncio.get_running_loop().time() - start
    assert (await shells["node1"].status())["speaker"]["pid"] == pid, "BIRD reconnected by itself"
    assert took < 15


async def test_changing_or_removing_one_session_leaves_the_other_alone(lab: Lab, shells: Shells) -> None:
    bird = Bird(lab, [Neighbor("node1", lab.addr("node1")), Neighbor("v6n1", lab.addr("node1", 6))]).start()
    v4, v6 = session(lab, "node1"), session(lab, "node1", family=6)
    node1 = shells["node1"]
    await node1.apply(route_plan("node1", [v4, v6], BGPRoute(f"{VIP}/32", ("tor",))))
    await asyncio.to_thread(bird.wait_established, ["node1", "v6n1"], 15)
    await asyncio.sleep(FLAP_VISIBLE)
    v6_before, v4_before = bird.since("v6n1"), bird.since("node1")
    await node1.apply(
        route_plan(
            "node1",
            [v4, dataclasses.replace(v6, hold_time=9)],
            BGPRoute(f"{VIP}/32", ("tor",)),
            BGPRoute("10.77.0.201/32", ("tor",)),
        )
    )
    await eventually("the added route", lambda: routes(bird), lambda r: "10.77.0.201/32" in r)
    await asyncio.to_thread(bird.wait_established, ["v6n1"], 15)
    assert abs(bird.since("node1") - v4_before) < 0.1, "the v4 session never flapped"
    assert abs(bird.since("v6n1") - v6_before) > 0.5, "the changed session restarted"
    assert (await node1.status())["session_restarts"] == 1
    await node1.apply(route_plan("node1", [v4], BGPRoute(f"{VIP}/32", ("tor",))))  # the v6 peer is deleted
    await eventually(
        "the removed session closed",
        lambda: asyncio.to_thread(bird.protocols),
        lambda states: states["v6n1"] != "Established",
    )
    await eventually(
        "the route dropped from the plan withdrawn", lambda: routes(bird), lambda r: "10.77.0.201/32" not in r
    )
    assert abs(bird.since("node1") - v4_before) < 0.1, "removing the other session left this one alone"
