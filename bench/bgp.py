"""BGP benchmark against BIRD as the router in the lab (root). Last line: one JSON object.

One run, one lab (3 nodes + BIRD as the router, BFD on at the router):

- ``announce_p50_ms`` / ``_p95``: the BGP shell (in node1's namespace, lab.bgpnode) is
  handed a plan with one more route -> the route is in the router's kernel table (``ip
  monitor route`` in the router namespace timestamps it; CLOCK_MONOTONIC is system-wide).
- ``gobgp_announce_p50_ms``: the same with GoBGP on node3 driven by its CLI (reference).
- ``converge_10k_s`` / ``withdraw_10k_s``: 10,000 /32s handed to the shell (plan -> BIRD
  reconfigured) -> all counted in the router's RIB; then none.  ``bird_converge_10k_s`` /
  ``bird_withdraw_10k_s``: BIRD -> BIRD in the same run, the same count: a plain BIRD on
  node3 enables (disables) a static protocol holding the same 10,000 routes.  Medians of
  ``--rounds`` alternating rounds; ``converge_ratio_vs_bird`` = ours / BIRD's.
- ``node_loss_p95_ms``: node1 and node2 announce one address (ECMP, BFD 50 ms x 3);
  ``ip link set eth0 down`` in node2's namespace (no FIN, no Cease) -> node2's next hop is
  gone from the router's kernel route.  ``--loss-runs`` runs.
- ``rss_mb``: the shell's process holding 10k routes + its BIRD; ``agent_rss_mb``: a real
  ``ironlb-agent`` with one route + its BIRD.
- ``graceful_withdraw_ms``: a real ``ironlb-agent`` announcing one service gets SIGTERM
  -> the route is gone from the router.

Run: ``sudo python bench/bgp.py [--samples 50] [--rounds 3] [--loss-runs 10] [--graceful-runs 5]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import queue
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ironlb.agent.announcements import BFDSettings, BGPRoute, BGPSession, Plan
from ironlb.agent.bgp.birdctl import Control
from lab import Lab
from lab.agents import Agents
from lab.bgpnode import NodeShell
from lab.manifests import bgp_advertisement, lab_service, nodes, pool, router_peer
from lab.probe import rss_mb, wait_subscribed
from lab.routers import NODE_ASN, ROUTER_ASN, BfdTimers, Bird, GoBGP, Neighbor, node_session
from lab.waiting import eventually, wait_for

VIP = "10.77.0.200"
BFD = BFDSettings(50, 50, 3)


class RouteMonitor:
    """``ip monitor route`` in the router namespace: (time, added?, prefix, line) per route event."""

    def __init__(self, lab: Lab) -> None:
        argv = ["ip", "netns", "exec", lab.ns("router"), "ip", "-4", "monitor", "route"]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.events: queue.Queue[tuple[float, bool, str, str]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        wait_subscribed(lab, "router", self.proc)

    def close(self) -> None:
        self.proc.kill()  # by PID: our own child
        self.proc.wait(5)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip()
            if line.startswith(("\t", " ")):  # a multipath route's "nexthop via" lines
                continue
            deleted = line.startswith("Deleted ")
            words = line.removeprefix("Deleted ").split()
            self.events.put((time.monotonic(), not deleted, words[0] if words else "", line))

    def drain(self) -> None:
        while not self.events.empty():
            self.events.get_nowait()

    def wait(self, prefix: str, added: bool, timeout: float = 10, via: str | None = None) -> float:
        """Time of the first event adding (removing) ``prefix`` (as a single path ``via``, if given)."""
        deadline = time.monotonic() + timeout
        while True:
            t, add, pfx, line = self.events.get(timeout=max(0.01, deadline - time.monotonic()))
            right = pfx in (prefix, prefix.removesuffix("/32")) and add == added
            if right and (via is None or f" via {via} " in line):
                return t


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def prefixes(n: int, base: int = 82) -> list[str]:
    return [f"10.{base + i // 65536}.{i // 256 % 256}.{i % 256}/32" for i in range(n)]


def plan(sess: BGPSession, pfxs: list[str] | tuple[str, ...]) -> Plan:
    return Plan(node=sess.name, bgp=tuple(BGPRoute(p, (sess.name,)) for p in pfxs), bgp_sessions=(sess,))


async def count(ctl: Control) -> int:
    m = re.search(r"(\d+) of \d+ routes", (await ctl.command("show route count table master4")).text)
    return int(m.group(1)) if m else 0


async def until_count(ctl: Control, want: int, timeout: float = 60) -> float:
    """The monotonic time at which the router first counts ``want`` routes."""
    await eventually(
        f"the router to count {want} routes",
        lambda: count(ctl),
        lambda n: n == want,
        timeout=timeout,
        interval=0.001,
    )
    return time.monotonic()


def reference_bird(lab: Lab) -> tuple[subprocess.Popen[bytes], Path]:
    """A plain BIRD on node3 holding 10k routes in a disabled static protocol: (process, socket)."""
    d = lab.workdir / "refbird"
    d.mkdir()
    routes = "\n".join(f"  route {p} blackhole;" for p in prefixes(10_000))
    a = lab.addr("node3")
    (d / "bird.conf").write_text(
        f"router id {a};\nprotocol device {{ }}\nprotocol static ref {{ disabled; ipv4;\n{routes}\n}}\n"
        f"protocol bgp tor {{ local {a} as {NODE_ASN}; neighbor {lab.addr('router')} as {ROUTER_ASN};\n"
        "  hold time 9; connect delay time 1; connect retry time 1;\n"
        f"  ipv4 {{ import none; export all; next hop self; }};\n}}\n"
    )
    proc = lab.spawn(
        "node3", ["bird", "-f", "-c", str(d / "bird.conf"), "-s", str(d / "bird.ctl")], name="refbird"
    )
    wait_for("the reference BIRD's socket", (d / "bird.ctl").exists, interval=0.01, abort=lab.exited(proc))
    return proc, d / "bird.ctl"


async def bulk_part(lab: Lab, bird: Bird, shell: NodeShell, rounds: int) -> dict[str, Any]:
    sess = node_session(lab, "node1")
    ref_proc, ref_path = reference_bird(lab)
    ref_ctl = Control(ref_path)
    await ref_ctl.open()
    await asyncio.to_thread(bird.wait_established, ["node1", "node3"], 20)
    router = Control(bird.ctl)
    await router.open()
    big = prefixes(10_000)
    ours: dict[str, list[float]] = {"converge": [], "withdraw": []}
    ref: dict[str, list[float]] = {"converge": [], "withdraw": []}
    for _ in range(rounds):
        reply = await shell.apply(plan(sess, big))
        ours["converge"].append(await until_count(router, 10_000) - reply["t0"])
        reply = await shell.apply(plan(sess, []))
        ours["withdraw"].append(await until_count(router, 0) - reply["t0"])
        t0 = time.monotonic()
        await ref_ctl.command("enable ref")
        ref["converge"].append(await until_count(router, 10_000) - t0)
        t0 = time.monotonic()
        await ref_ctl.command("disable ref")
        ref["withdraw"].append(await until_count(router, 0) - t0)
    await shell.apply(plan(sess, big))
    await until_count(router, 10_000)
    status = await shell.status()
    shell_rss = rss_mb(shell.proc.pid) + rss_mb(int(status["speaker"]["pid"]))
    await shell.apply(plan(sess, []))
    await until_count(router, 0)
    router.close()
    ref_ctl.close()
    lab.stop(ref_proc)  # node3 hosts GoBGP next
    med = statistics.median
    return {
        "converge_10k_s": round(med(ours["converge"]), 4),
        "withdraw_10k_s": round(med(ours["withdraw"]), 4),
        "bird_converge_10k_s": round(med(ref["converge"]), 4),
        "bird_withdraw_10k_s": round(med(ref["withdraw"]), 4),
        "converge_ratio_vs_bird": round(med(ours["converge"]) / med(ref["converge"]), 2),
        "withdraw_ratio_vs_bird": round(med(ours["withdraw"]) / med(ref["withdraw"]), 2),
        "rss_mb": round(shell_rss, 1),
    }


async def announce_part(lab: Lab, shell: NodeShell, mon: RouteMonitor, samples: int) -> dict[str, Any]:
    sess = node_session(lab, "node1")
    lat = []
    pfxs: list[str] = []
    for pfx in prefixes(samples, base=81):
        pfxs.append(pfx)
        reply = await shell.apply(plan(sess, pfxs))
        lat.append((await asyncio.to_thread(mon.wait, pfx, True) - reply["t0"]) * 1000)
    await shell.apply(plan(sess, []))
    return {"announce_p50_ms": round(statistics.median(lat), 2), "announce_p95_ms": round(pct(lat, 0.95), 2)}


async def node_loss_part(
    lab: Lab, bird: Bird, mon: RouteMonitor, shells: dict[str, NodeShell], runs: int
) -> dict[str, Any]:
    for n in ("node1", "node2"):
        sess = node_session(lab, n, bfd=BFD)
        await shells[n].apply(Plan(n, bgp=(BGPRoute(f"{VIP}/32", ("tor",)),), bgp_sessions=(sess,)))
    took = await asyncio.to_thread(node_loss_runs, lab, bird, mon, runs)
    return {
        "node_loss_p50_ms": round(statistics.median(took), 1),
        "node_loss_p95_ms": round(pct(took, 0.95), 1),
        "node_loss_max_ms": round(max(took), 1),
    }


def router_hops(lab: Lab) -> set[str]:
    words = lab.run("router", "ip", "-4", "route", "show", VIP).stdout.split()
    return {words[i + 1] for i, w in enumerate(words[:-1]) if w == "via"}


def node_loss_runs(lab: Lab, bird: Bird, mon: RouteMonitor, runs: int) -> list[float]:
    both = {lab.addr("node1"), lab.addr("node2")}
    took = []
    for _ in range(runs):
        wait_for("ECMP over node1 and node2", lambda: router_hops(lab), lambda hops: hops == both, timeout=30)
        wait_for(
            "BFD up with node2",
            lambda: bird.bfd_sessions().get(lab.addr("node2")),
            lambda state: state == "Up",
            interval=0.01,
        )
        time.sleep(0.5)
        mon.drain()
        t0 = time.monotonic()  # before `ip` even starts: the figure includes its start (a few ms)
        lab.run("node2", "ip", "link", "set", "eth0", "down")  # no FIN, no Cease: only BFD tells the router
        took.append((mon.wait(VIP, True, 15, via=lab.addr("node1")) - t0) * 1000)
        assert router_hops(lab) == {lab.addr("node1")}
        lab.run("node2", "ip", "link", "set", "eth0", "up")
    return took


def gobgp_part(lab: Lab, bird: Bird, mon: RouteMonitor, samples: int) -> dict[str, Any]:
    gobgp = GoBGP(
        lab,
        [Neighbor("router", lab.addr("router"), asn=ROUTER_ASN)],
        host="node3",
        asn=NODE_ASN,
        name="gobgp-node3",
    ).start()
    bird.wait_established(["node3"], 20)
    lat = []
    for pfx in prefixes(samples, base=90):
        t0 = time.monotonic()
        gobgp.cli("global", "rib", "add", "-a", "ipv4", pfx, "nexthop", lab.addr("node3"))
        lat.append((mon.wait(pfx, True) - t0) * 1000)
    gobgp.stop()
    return {
        "gobgp_announce_p50_ms": round(statistics.median(lat), 2),
        "gobgp_announce_p95_ms": round(pct(lat, 0.95), 2),
    }


def graceful_part(lab: Lab, mon: RouteMonitor, runs: int) -> dict[str, Any]:
    agents = Agents(lab, membership="static")
    peer = router_peer(lab, hold=9, nodeSelector={"matchLabels": {"bgp": "yes"}})
    agents.write(
        pool(), peer, bgp_advertisement(), *nodes(lab, {"node1": {"bgp": "yes"}}), lab_service("web", ip=VIP)
    )
    took, rss = [], 0.0
    for _ in range(runs):
        agents.start("node1")
        mon.wait(VIP, True, 30)
        time.sleep(0.3)
        proc = agents.procs["node1"]
        status = agents.wait_status("node1")
        bird_pid = status["shells"]["BGPShell"]["speaker"]["pid"]
        rss = rss_mb(proc.pid) + rss_mb(int(bird_pid))
        t0 = time.monotonic()
        os.kill(proc.pid, signal.SIGTERM)
        took.append((mon.wait(VIP, False, 10) - t0) * 1000)
        agents.stop("node1")
    return {
        "graceful_withdraw_ms": round(statistics.median(took), 1),
        "graceful_withdraw_p95_ms": round(pct(took, 0.95), 1),
        "agent_rss_mb": round(rss, 1),
    }


async def shell_parts(lab: Lab, bird: Bird, mon: RouteMonitor, args: argparse.Namespace) -> dict[str, Any]:
    shells = {n: NodeShell(lab, n) for n in ("node1", "node2")}
    try:
        await shells["node1"].apply(plan(node_session(lab, "node1"), []))
        result = await announce_part(lab, shells["node1"], mon, args.samples)
        result.update(await bulk_part(lab, bird, shells["node1"], args.rounds))
        result.update(await node_loss_part(lab, bird, mon, shells, args.loss_runs))
    finally:
        await asyncio.gather(*(s.close() for s in shells.values()))
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--loss-runs", type=int, default=10)
    ap.add_argument("--graceful-runs", type=int, default=5)
    args = ap.parse_args()
    with Lab(nodes=3) as lab:
        neighbors = [Neighbor(n, lab.addr(n), bfd=n != "node3") for n in lab.nodes]
        bird = Bird(
            lab, neighbors, hold=9, bfd=BfdTimers(BFD.transmit_interval, BFD.detect_multiplier)
        ).start()
        mon = RouteMonitor(lab)
        try:
            result = asyncio.run(shell_parts(lab, bird, mon, args))
            result.update(gobgp_part(lab, bird, mon, args.samples))
            result["announce_ratio_vs_gobgp"] = round(
                result["announce_p50_ms"] / result["gobgp_announce_p50_ms"], 2
            )
            result.update(graceful_part(lab, mon, args.graceful_runs))
        finally:
            mon.close()
    for key, value in result.items():
        print(f"{key:28} {value}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
