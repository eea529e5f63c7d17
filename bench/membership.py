"""Benchmark membership: failure-detection time and traffic per node.

Two parts:

1. **Lab** (root only; skipped otherwise): three real ``python -m agent.membership``
   processes in network namespaces (lab.Lab).  ``--runs`` times each: SIGKILL one member
   at a random moment and time until *both* survivors report it gone (CLOCK_MONOTONIC is
   shared by all namespaces); then the same with SIGTERM (graceful LEAVE).  The victim is
   restarted and the cluster re-joined between runs.
2. **In process, on loopback** (any user): N members in one asyncio loop, each bound to its
   own 127.x address: datagrams and bytes sent/received per node per second at 3 and 50
   members (default settings, so 50 members run at the stretched period), and crash
   detection time at 50 members (time until every survivor noticed).

Run: ``sudo python bench/membership.py [--runs 20] [--seconds 3]``.  Prints figures, then
one JSON line: {"crash_p50_ms": ..., "crash_p95_ms": ..., "graceful_p50_ms": ..., ...}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.membership import Membership, MembershipSettings

KEY = b"bench-membership-key-0123456789abcdef"


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


# -- part 1: lab -------------------------------------------------------------------------
def lab_runs(runs: int) -> dict[str, float]:
    from lab import Lab

    with Lab(nodes=3) as lab:
        key = lab.workdir / "key"
        key.write_bytes(KEY)
        peers = [f"--peer={n}={lab.addr(n)}" for n in lab.nodes]
        procs: dict[str, Any] = {}
        offsets: dict[str, int] = {}

        def start(node: str) -> None:
            name = f"member-{node}"
            offsets[node] = len(lab.log(name))
            argv = [sys.executable, "-m", "agent.membership", "--node", node, "--key-file", str(key), *peers]
            procs[node] = lab.spawn(node, argv, name=name)

        def first(node: str, expected: set[str], since: float, timeout: float = 10.0) -> float:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                for line in lab.log(f"member-{node}").splitlines():
                    if line.startswith('{"t"'):
                        try:
                            rec = json.loads(line)
                        except ValueError:
                            continue
                        if rec["t"] >= since and set(rec["live"]) == expected:
                            return float(rec["t"])
                time.sleep(0.005)
            lab.stop(procs[node], signal.SIGTERM)  # its last line is its status
            tail = "\n".join(lab.log(f"member-{node}").splitlines()[-8:])
            raise RuntimeError(f"{node} never reported {sorted(expected)} after {since:.3f}:\n{tail}")

        for node in lab.nodes:
            start(node)
        results: dict[str, list[float]] = {"crash": [], "graceful": []}
        everyone, survivors = set(lab.nodes), {"node1", "node2"}
        t0 = time.monotonic()
        for node in lab.nodes:
            first(node, everyone, 0.0, timeout=60)
        print(f"lab: 3 members joined in {time.monotonic() - t0:.2f} s (incl. process start)")
        for mode, sig in (("crash", signal.SIGKILL), ("graceful", signal.SIGTERM)):
            for _ in range(runs):
                time.sleep(random.uniform(0.3, 0.5))  # a random phase against the heartbeat period
                t = time.monotonic()
                lab.stop(procs["node3"], sig)
                seen = max(first(n, survivors, t) for n in survivors)
                results[mode].append((seen - t) * 1000)
                restart = time.monotonic()
                start("node3")
                for node in lab.nodes:
                    first(node, everyone, restart, timeout=60)  # a process start on a loaded box
        out: dict[str, float] = {}
        for mode, values in results.items():
            out[f"{mode}_p50_ms"] = round(statistics.median(values), 1)
            out[f"{mode}_p95_ms"] = round(pct(values, 95), 1)
            out[f"{mode}_max_ms"] = round(max(values), 1)
            print(f"lab {mode:8s} detection over {len(values)} runs: p50 {out[f'{mode}_p50_ms']} ms, "
                  f"p95 {out[f'{mode}_p95_ms']} ms, max {out[f'{mode}_max_ms']} ms")
        return out


# -- part 2: in process ------------------------------------------------------------------
def _cluster(n: int, settings: MembershipSettings) -> list[Membership]:
    base = f"127.{random.randint(1, 250)}.{os.getpid() % 250}"
    addresses = {f"m{i}": f"{base}.{i + 1}" for i in range(n)}
    members = [Membership(name, KEY, settings, bind_host=addr) for name, addr in addresses.items()]
    for m in members:
        m.update_peers(addresses)
    return members


async def traffic(n: int, seconds: float) -> dict[str, float]:
    settings = MembershipSettings(port=random.randint(20000, 60000))
    members = _cluster(n, settings)
    await asyncio.gather(*(m.start() for m in members))
    try:
        deadline = time.monotonic() + 10
        while any(len(m.live()) != n for m in members) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        converged = all(len(m.live()) == n for m in members)
        if not converged:
            print(f"in-process {n} members did not all see each other within 10 s: short of CPU")
        before = [dict(m.status()["counters"]) for m in members]
        cpu0, t0 = time.process_time(), time.monotonic()
        await asyncio.sleep(seconds)
        cpu, elapsed = time.process_time() - cpu0, time.monotonic() - t0
        pairs = list(zip(members, before, strict=True))
        sent = [(m.status()["counters"]["sent"] - b["sent"]) / elapsed for m, b in pairs]
        recv = [(m.status()["counters"]["received"] - b["received"]) / elapsed for m, b in pairs]
        flaps = sum(len(m.live()) != n for m in members)
        period = float(members[0].status()["period_s"])
        # datagram size: header + name + numbers + entries + tag (what encode produced)
        from agent.membership.wire import encode, peer_id

        sample = members[0]._table  # a full heartbeat: one observation per other member
        full = tuple((peer_id(m.node), 1) for m in members[1:])[: settings.max_entries]
        size = len(encode(sample.message(1, next(iter(sample.peers.values())), time.monotonic(), full), KEY))
        crash: list[float] = []
        if n > 3 and converged:
            for victim in members[-3:]:
                t = time.monotonic()
                await victim.stop(graceful=False)
                survivors = [m for m in members if m._running]
                while any(victim.node in m.live() for m in survivors):
                    await asyncio.sleep(0.002)
                crash.append((time.monotonic() - t) * 1000)
    finally:
        for m in members:
            await m.stop(graceful=False)
    out = {
        f"pps_sent_per_node_{n}": round(statistics.median(sent), 1),
        f"pps_received_per_node_{n}": round(statistics.median(recv), 1),
        f"bytes_per_s_per_node_{n}": round(statistics.median(sent) * size),
        f"period_ms_{n}": round(period * 1000, 1),
        f"cpu_ms_per_node_per_s_{n}": round(cpu / elapsed / n * 1000, 2),
    }
    print(f"in-process {n:3d} members: period {period * 1000:.0f} ms, per node sent "
          f"{out[f'pps_sent_per_node_{n}']} pkt/s (max {max(sent):.1f}, "
          f"budget {settings.max_packets_per_second}), "
          f"received {out[f'pps_received_per_node_{n}']} pkt/s, datagram {size} B -> "
          f"{out[f'bytes_per_s_per_node_{n}']} B/s, CPU {out[f'cpu_ms_per_node_per_s_{n}']} ms/s per node, "
          f"members not seeing all: {flaps}")
    if crash:
        out[f"crash_detect_ms_{n}_inproc"] = round(max(crash), 1)
        print(f"in-process {n:3d} members: crash noticed by all survivors in "
              f"{', '.join(f'{c:.0f}' for c in crash)} ms "
              f"(bound {settings.dead_after * period * 1000:.0f} ms + check)")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=20, help="crash and graceful runs in the lab (>= 20 for p95)")
    p.add_argument("--seconds", type=float, default=3.0, help="traffic measurement window per size")
    args = p.parse_args()
    figures: dict[str, float] = {}
    if os.geteuid() == 0:
        figures.update(lab_runs(args.runs))
    else:
        print("lab part skipped: needs root (network namespaces)")
    for n in (3, 50):
        figures.update(asyncio.run(traffic(n, args.seconds)))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
