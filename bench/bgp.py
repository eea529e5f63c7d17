"""BGP benchmark against BIRD in the lab (root). Last line: JSON.

One run, one lab (2 nodes + BIRD as the router):

- ``announce_p50_ms`` / ``_p95``: the agent's BGP shell is handed a plan with one more
  route -> the route is in the router's kernel table (BIRD exports what it learns at once;
  ``ip monitor route`` in the router namespace timestamps it).  node1, ExaBGP.
- ``gobgp_announce_p50_ms``: the same measurement with GoBGP on node2 announcing through
  its own CLI (``gobgp global rib add``); ``announce_ratio`` = ours / GoBGP.
- ``converge_10k_s`` / ``withdraw_10k_s``: 10,000 /32s handed to the shell -> all counted
  at BIRD (``birdc show route count``); then none.
- ``rss_mb``: this process (the agent's shell holding 10k routes) + the speaker
  (ExaBGP + relay) with 10k routes announced.
- ``graceful_withdraw_ms``: a real ``ironlb-agent`` process announcing one service gets
  SIGTERM -> the route is gone from the router (median of several runs).

Run: ``sudo python bench/bgp.py [--samples 50] [--graceful-runs 5]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import queue
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.announcements import BGPRoute, BGPSession, Plan
from agent.bgp.settings import BGPSettings
from agent.bgp.shell import BGPShell
from lab import Lab
from lab.agents import Agents, bgp_advertisement, bgp_peer, nodes, pool, service
from lab.routers import NODE_ASN, ROUTER_ASN, Bird, GoBGP, Neighbor, node_session, wait_for


class RouteMonitor:
    """``ip monitor route`` in the router namespace: prefix -> first time added / deleted."""

    def __init__(self, lab: Lab) -> None:
        argv = ["ip", "netns", "exec", lab.ns("router"), "ip", "-4", "monitor", "route"]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE)
        self.events: queue.Queue[tuple[float, bool, str]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        time.sleep(0.2)

    def close(self) -> None:
        self.proc.kill()  # by PID: our own child
        self.proc.wait(5)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace")
            now = time.monotonic()
            deleted = line.startswith("Deleted ")
            self.events.put((now, not deleted, line.removeprefix("Deleted ").split()[0]))

    def wait(self, prefix: str, added: bool, timeout: float = 10) -> float:
        deadline = time.monotonic() + timeout
        while True:
            t, add, pfx = self.events.get(timeout=max(0.01, deadline - time.monotonic()))
            if pfx in (prefix, prefix.removesuffix("/32")) and add == added:
                return t


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def session(lab: Lab) -> BGPSession:
    return node_session(lab, hold_time=9, keepalive_time=3)


def prefixes(n: int, base: int = 82) -> list[str]:
    return [f"10.{base + i // 65536}.{i // 256 % 256}.{i % 256}/32" for i in range(n)]


async def shell_part(lab: Lab, bird: Bird, mon: RouteMonitor, samples: int) -> dict[str, Any]:
    shell = BGPShell(
        "node1",
        BGPSettings(run_dir=lab.workdir / "run", command_prefix=("ip", "netns", "exec", lab.ns("node1"))),
    )
    sess = session(lab)
    try:
        await shell.apply(Plan(node="node1", bgp_sessions=(sess,)))
        await asyncio.to_thread(bird.wait_established, ["node1"], 20)
        routes: list[BGPRoute] = []
        lat = []
        for pfx in prefixes(samples, base=81):
            routes.append(BGPRoute(pfx, ("tor",)))
            t0 = time.monotonic()
            await shell.apply(Plan(node="node1", bgp=tuple(routes), bgp_sessions=(sess,)))
            lat.append((await asyncio.to_thread(mon.wait, pfx, True) - t0) * 1000)
        await shell.apply(Plan(node="node1", bgp_sessions=(sess,)))
        await asyncio.to_thread(wait_for, lambda: bird.count() == 0, 20, "empty table")

        big = tuple(BGPRoute(p, ("tor",)) for p in prefixes(10_000))
        t0 = time.monotonic()
        await shell.apply(Plan(node="node1", bgp=big, bgp_sessions=(sess,)))
        converge = await asyncio.to_thread(wait_for, lambda: bird.count() >= 10_000, 60, "10k routes", 0.02)
        converge = time.monotonic() - t0  # from handing over the plan
        speaker = shell.speakers["tor"].proc
        assert speaker is not None
        agent_rss = rss_mb(os.getpid())
        speaker_rss = rss_mb(speaker.pid) + sum(rss_mb(c) for c in children(speaker.pid))
        t0 = time.monotonic()
        await shell.apply(Plan(node="node1", bgp_sessions=(sess,)))
        withdraw = await asyncio.to_thread(wait_for, lambda: bird.count() == 0, 60, "10k withdrawn", 0.02)
        withdraw = time.monotonic() - t0
    finally:
        await shell.close()
    return {
        "announce_p50_ms": round(statistics.median(lat), 2),
        "announce_p95_ms": round(pct(lat, 0.95), 2),
        "converge_10k_s": round(converge, 3),
        "withdraw_10k_s": round(withdraw, 3),
        "agent_rss_mb": round(agent_rss, 1),
        "speaker_rss_mb": round(speaker_rss, 1),
        "rss_mb": round(agent_rss + speaker_rss, 1),
    }


def gobgp_part(lab: Lab, bird: Bird, mon: RouteMonitor, samples: int) -> dict[str, Any]:
    gobgp = GoBGP(
        lab,
        [Neighbor("router", lab.addr("router"), asn=ROUTER_ASN)],
        host="node2",
        asn=NODE_ASN,
        name="gobgp-node2",
    ).start()
    bird.wait_established(["node2"], 20)
    lat = []
    for pfx in prefixes(samples, base=90):
        t0 = time.monotonic()
        gobgp.cli("global", "rib", "add", "-a", "ipv4", pfx, "nexthop", lab.addr("node2"))
        lat.append((mon.wait(pfx, True) - t0) * 1000)
    gobgp.stop()
    return {
        "gobgp_announce_p50_ms": round(statistics.median(lat), 2),
        "gobgp_announce_p95_ms": round(pct(lat, 0.95), 2),
    }


def graceful_part(lab: Lab, mon: RouteMonitor, runs: int) -> dict[str, Any]:
    agents = Agents(lab, membership="static")
    peer = bgp_peer(lab, hold=9, nodeSelector={"matchLabels": {"bgp": "yes"}})
    adv = bgp_advertisement()
    agents.write(pool(), peer, adv, *nodes(lab, {"node1": {"bgp": "yes"}}), service("web", ip="10.77.0.200"))
    took = []
    for _ in range(runs):
        agents.start("node1")
        mon.wait("10.77.0.200", True, 30)
        time.sleep(0.3)
        t0 = time.monotonic()
        proc = agents.procs["node1"]
        os.kill(proc.pid, signal.SIGTERM)
        took.append((mon.wait("10.77.0.200", False, 10) - t0) * 1000)
        agents.stop("node1")
    return {
        "graceful_withdraw_ms": round(statistics.median(took), 1),
        "graceful_withdraw_p95_ms": round(pct(took, 0.95), 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--samples", type=int, default=50)
    ap.add_argument("--graceful-runs", type=int, default=5)
    args = ap.parse_args()
    with Lab(nodes=2) as lab:
        bird = Bird(
            lab, [Neighbor("node1", lab.addr("node1")), Neighbor("node2", lab.addr("node2"))], hold=9
        ).start()
        mon = RouteMonitor(lab)
        result = asyncio.run(shell_part(lab, bird, mon, args.samples))
        result.update(gobgp_part(lab, bird, mon, args.samples))
        result["announce_ratio"] = round(result["announce_p50_ms"] / result["gobgp_announce_p50_ms"], 2)
        result.update(graceful_part(lab, mon, args.graceful_runs))
        mon.close()
    for key, value in result.items():
        print(f"{key:28} {value}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
