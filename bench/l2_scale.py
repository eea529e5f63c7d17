"""Layer-2 scale: one agent owning 10,000 VIPs.

- ``arp_latency_ratio``: p50 of the agent's ARP reply latency for a VIP divided by p50 of
  the kernel's own reply for the node's address, measured from the client in the same run,
  interleaved (so machine noise hits both alike);
- ``rss_mb``: the agent's resident memory with 10,000 VIPs announced;
- ``garp_1000_ms``: 1,000 more VIPs are added; span from the first to the last of their
  gratuitous ARPs seen on the client (``garp_1000_agent_ms``: the agent's own send time).

Lab: one node, a 10.78.0.0/16 subnet on its LAN, standalone manifests (JSON), static
membership.  Run as root: ``python bench/l2_scale.py [--vips 10000]``.  Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lab import Lab  # noqa: E402
from lab.agents import Agents  # noqa: E402
from lab.manifests import l2_advertisement, nodes, pool, service  # noqa: E402
from lab.probe import log_line  # noqa: E402
from lab.waiting import wait_for  # noqa: E402


def services(start: int, count: int) -> list[dict[str, Any]]:
    """Classless Services (the standalone agents serve those) in namespace "scale"."""
    return [service(f"s{i:05}", "scale", cls=None) for i in range(start, start + count)]


def write_json(path: Path, docs: list[dict[str, Any]]) -> None:
    tmp = path.with_name("." + path.name)
    tmp.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}))
    tmp.replace(path)


def announcing(agents: Agents) -> int:
    st = agents.status("node1") or {}
    return int(st.get("shells", {}).get("L2Shell", {}).get("states", {}).get("announcing", 0))


def wait_announcing(agents: Agents, n: int, timeout: float) -> float:
    """Seconds until node1 announces ``n`` VIPs."""
    start = time.monotonic()
    wait_for(
        f"{n} VIPs announcing",
        lambda: announcing(agents),
        lambda count: count >= n,
        timeout=timeout,
        interval=0.1,
    )
    return time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--vips", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=300)
    args = parser.parse_args()
    with Lab(nodes=1) as lab:
        lab.run("node1", "ip", "addr", "add", "10.78.0.1/16", "dev", "eth0")
        lab.run("client", "ip", "addr", "add", "10.78.255.254/16", "dev", "eth0")
        agents = Agents(lab, membership="static")
        write_json(
            agents.dir / "base.json",
            [pool("scale", "10.78.0.10-10.78.127.255"), l2_advertisement(), *nodes(lab)],
        )
        write_json(agents.dir / "services.json", services(0, args.vips))
        t0 = time.monotonic()
        agents.start_all(wait=False)
        up = wait_announcing(agents, args.vips, 300)
        print(f"{args.vips} VIPs announcing {up:.1f} s after start")
        pid = agents.procs["node1"].pid
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
        rss_kb = int(next(ln.split()[1] for ln in lines if ln.startswith("VmRSS")))
        owned = sorted(
            (agents.status("node1") or {})["l2"], key=lambda ip: tuple(int(x) for x in ip.split("."))
        )
        vip = owned[len(owned) // 2]  # in the middle of the table
        out = lab.run(
            "client",
            sys.executable,
            "-m",
            "lab.arpping",
            "latency",
            "eth0",
            str(args.samples),
            vip,
            "10.78.0.1",
            timeout=300,
        ).stdout
        lat = json.loads(out)
        ratio = lat[vip] / lat["10.78.0.1"]
        print(
            f"ARP reply p50: agent {lat[vip]:.0f} us (VIP), kernel {lat['10.78.0.1']:.0f} us (node address), "
            f"ratio {ratio:.2f}, lost {lat['lost']}"
        )
        argv = [sys.executable, "-m", "lab.arpping", "garps", "eth0", "10.78.", "1000", "60"]
        sniff = lab.spawn("client", argv, name="garps")
        assert log_line(lab, "garps", sniff, bool, "the GARP sniffer to start") == "ready"
        write_json(agents.dir / "more.json", services(args.vips, 1000))
        wait_announcing(agents, args.vips + 1000, 120)
        garp = json.loads(
            log_line(lab, "garps", sniff, lambda line: line.startswith("{"), "the GARP count", 70)
        )
        lab.stop(sniff, timeout=10)
        agent_ms = (agents.status("node1") or {})["shells"]["L2Shell"]["last_garp_burst_ms"]
        print(
            f"GARP for 1000 new VIPs: {garp['seen']} seen on the client over {garp['span_ms']:.1f} ms "
            f"(agent send loop {agent_ms:.1f} ms); total run {time.monotonic() - t0:.0f} s"
        )
        print(
            json.dumps(
                {
                    "vips": args.vips,
                    "arp_latency_ratio": round(ratio, 2),
                    "arp_agent_p50_us": round(lat[vip]),
                    "arp_kernel_p50_us": round(lat["10.78.0.1"]),
                    "rss_mb": round(rss_kb / 1024, 1),
                    "garp_1000_ms": round(garp["span_ms"], 1),
                    "garp_1000_agent_ms": round(agent_ms, 1),
                    "startup_10k_s": round(up, 1),
                }
            )
        )


if __name__ == "__main__":
    main()
