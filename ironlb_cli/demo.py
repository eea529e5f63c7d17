"""``ironlb demo``: the whole chain on one machine, no cluster needed (root, Linux).

It builds the network-namespace lab (a router running BIRD, three nodes, a client on one
LAN), renders the ``dev`` stack (``ironlb render``) into manifests, starts a real
``ironlb-agent`` on every node on those manifests (standalone file source; every agent
computes the same allocation), and prints a table: each service, its address, mode, the
owner node (layer 2) or BIRD's next hops (BGP), and whether the client reaches it over TCP
(the reply names the node that answered).

``--once`` waits until every address is announced (bounded), prints one table and tears
down; otherwise the table refreshes until Ctrl-C.  Teardown (agents, BIRD, namespaces)
always runs, also on Ctrl-C or an error.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from ironlb.errors import IronLBError

KEEP_KINDS = {
    "IPPool",
    "BGPPeer",
    "L2Advertisement",
    "BGPAdvertisement",
    "Community",
    "Tenant",
    "Service",
    "Namespace",
}
COLUMNS = ("SERVICE", "IP", "MODE", "OWNER / NEXT HOPS", "CLIENT TCP")


def register(sub: Any) -> None:
    p = sub.add_parser("demo", help="run the lab demo: router (BIRD), 3 agents, a client (root)")
    p.add_argument(
        "--once", action="store_true", help="print one table when everything is announced, then stop"
    )
    p.add_argument("--stack", default="dev", help="stack to render (default dev)")
    p.add_argument(
        "--timeout", type=float, default=45.0, help="seconds to wait for announcements (default 45)"
    )
    p.add_argument("--interval", type=float, default=2.0, help="seconds between table refreshes (default 2)")
    p.set_defaults(func=run)


def render_manifests(stack: str, out: Path) -> list[dict[str, Any]]:
    """Render the stack with ``ironlb render`` and keep what the standalone agents read."""
    from ironlb_cli import main as cli

    rendered = out / "rendered"
    argv = ["render", "--stack", stack, "--out", str(rendered)]
    bundled = Path(__file__).resolve().parents[1] / "stacks"
    if not Path("stacks").is_dir() and bundled.is_dir():  # run from outside the repository
        argv += ["--stacks-dir", str(bundled)]
    code = cli.main(argv)
    if code != 0:
        raise IronLBError(f"ironlb render --stack {stack} failed (exit {code}); see the messages above")
    docs = []
    for path in sorted(rendered.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") in KEEP_KINDS:
                docs.append(doc)
    return docs


def table_rows(lab: Any, agents: Any, bird: Any) -> list[dict[str, str]]:
    from lab.probe import who_serves

    status = next((s for s in (agents.status(n) for n in lab.nodes) if s), None) or {}
    routes = bird.routes()
    rows = []
    for o in status.get("ownership", []):
        ip = o["ip"]
        if o["mode"] == "bgp":
            hops = sorted({p.next_hop for p in routes.get(f"{ip}/32", routes.get(f"{ip}/128", []))})
            names = {lab.addr(n): n for n in lab.nodes}
            who = ", ".join(names.get(h, h) for h in hops) or "no route at the router"
        else:
            who = ", ".join(o["nodes"]) or "none"
        reply = who_serves(lab, "client", ip, timeout=1)
        rows.append(
            {
                "SERVICE": ",".join(o.get("services") or []),
                "IP": ip,
                "MODE": o["mode"],
                "OWNER / NEXT HOPS": who,
                "CLIENT TCP": f"ok (answered by {reply})" if reply else "FAILED",
            }
        )
    for svc, why in sorted((status.get("unannounced") or {}).items()):
        rows.append(
            {
                "SERVICE": svc,
                "IP": "-",
                "MODE": "-",
                "OWNER / NEXT HOPS": f"not announced: {why}",
                "CLIENT TCP": "-",
            }
        )
    return rows


def render_table(rows: list[dict[str, str]]) -> str:
    if not rows:
        return "(no service announced yet)"
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in COLUMNS}
    lines = ["  ".join(c.ljust(widths[c]) for c in COLUMNS)]
    lines += ["  ".join(r[c].ljust(widths[c]) for c in COLUMNS) for r in rows]
    return "\n".join(lines)


def _complete(rows: list[dict[str, str]]) -> bool:
    if any(r["IP"] == "-" for r in rows):  # a service is still unannounced
        return False
    v4 = [r for r in rows if ":" not in r["IP"]]
    return bool(v4) and all(r["CLIENT TCP"].startswith("ok") for r in v4)


def run(args: argparse.Namespace) -> int:
    if sys.platform != "linux" or os.geteuid() != 0:
        raise IronLBError("ironlb demo builds network namespaces: run it as root on Linux (sudo)")
    from ironlb.addresses import parse_block
    from lab.agents import Agents, endpoint_slice, nodes
    from lab.netns import Lab
    from lab.routers import Bird, Neighbor

    workdir = Path(tempfile.mkdtemp(prefix="ironlb-demo-"))
    docs = render_manifests(args.stack, workdir)
    lab = Lab(nodes=3)
    try:
        lab.build()
        bgp_nets = sorted(
            {
                a
                for d in docs
                if d["kind"] == "IPPool" and d["metadata"]["name"].endswith("bgp")
                for a in d["spec"]["addresses"]
                if ":" not in a
            }
        )
        # No kube-proxy here: every node accepts every pool address locally (AnyIP routes on
        # lo; the lab's arp_ignore keeps the kernel from answering ARP for them, so only the
        # agents announce). BGP addresses arrive routed: the client routes them via the router.
        accept = sorted(
            {
                str(cidr)
                for d in docs
                if d["kind"] == "IPPool"
                for a in d["spec"]["addresses"]
                for cidr in parse_block(a).cidrs()
            }
        )
        for net in accept:
            family = "-6" if ":" in net else "-4"
            for node in lab.nodes:
                lab.run(node, "ip", family, "route", "replace", "local", net, "dev", "lo")
        for net in bgp_nets:
            lab.run("client", "ip", "route", "replace", net, "via", lab.addr("router"))
        lab.start_vip_servers()
        bird = Bird(lab, [Neighbor(n, lab.addr(n)) for n in lab.nodes]).start()
        agents = Agents(lab, membership="gossip")
        # Services with externalTrafficPolicy Local need ready endpoints: put them on node1 and node2
        local = [
            d["metadata"]["name"]
            for d in docs
            if d["kind"] == "Service" and d["spec"].get("externalTrafficPolicy") == "Local"
        ]
        slices = [endpoint_slice(name, lab.nodes[:2]) for name in local]
        agents.write(*docs, *nodes(lab), *slices)
        agents.start_all()
        print(
            f"lab {lab.tag}: router (BIRD), {', '.join(lab.nodes)}, client; stack {args.stack!r}; "
            f"logs in {lab.workdir}",
            flush=True,
        )
        deadline = time.monotonic() + args.timeout
        while True:
            rows = table_rows(lab, agents, bird)
            if not args.once:
                print("\033[2J\033[H" + time.strftime("%H:%M:%S ") + "(Ctrl-C stops and tears down)")
                print(render_table(rows), flush=True)
            elif _complete(rows) or time.monotonic() > deadline:
                print(render_table(rows))
                return 0 if _complete(rows) else 1
            time.sleep(args.interval if not args.once else 0.5)
    except KeyboardInterrupt:
        return 130
    finally:
        lab.teardown()
        shutil.rmtree(workdir, ignore_errors=True)
        print("lab torn down", file=sys.stderr)
