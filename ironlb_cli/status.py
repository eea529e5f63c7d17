"""``ironlb status``: which node announces each address, how, and why.

Two places to ask:

- ``--url http://127.0.0.1:7950`` -- one speaker's ``/status`` (standalone mode, the demo,
  or on a node whose speaker has ``status.enabled``; it listens on loopback by default): the
  plan's cluster-wide ownership table plus that speaker's shells (per-address state,
  conflicts found by probing the LAN, BGP sessions);
- the cluster (default when no URL is given): every Service IronLB serves
  (``loadBalancerClass: ironlb.io/ironlb``; ``--classless`` adds those without a class, for
  installs that claim them), with the addresses the controller recorded in
  ``status.loadBalancer.ingress`` -- which only the controller can write; the
  ``ironlb.io/allocated-ips`` annotation is tenant-writable and never read -- and what it
  published from the speakers' NodeStates (``ironlb.io/announcements``, rows for those
  addresses only, with any address conflict, and the ``ironlb.io/Announced`` condition).

The table: SERVICE, IP, MODE, NODES, STATE, CONFLICT, WHY.  ``--ip`` narrows it to one
address; ``--json`` prints the rows for scripts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ironlb.errors import IronLBError
from ironlb_cli.livestate import recorded

ANN_ANNOUNCEMENTS = "ironlb.io/announcements"  # written by agent.kube.writers
COND_ANNOUNCED = "ironlb.io/Announced"
COLUMNS = ("SERVICE", "IP", "MODE", "NODES", "STATE", "CONFLICT", "WHY")


def register(sub: Any) -> None:
    p = sub.add_parser("status", help="which node announces each address, how and why")
    p.add_argument("--url", help="a speaker's /status endpoint, e.g. http://127.0.0.1:7950 (off by default)")
    p.add_argument("--server", help="API server URL that needs no credentials (e.g. `kubectl proxy`)")
    p.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config, in-cluster)")
    p.add_argument("--ip", help="show only this address")
    p.add_argument(
        "--classless",
        action="store_true",
        help="also Services without a loadBalancerClass (installs with claimClassless)",
    )
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for an answer (default 5)")
    p.add_argument(
        "--export",
        metavar="FILE",
        help="write the addresses IronLB's Services hold to FILE, for `ironlb plan --live FILE`",
    )
    p.set_defaults(func=run)


def rows_from_agent(doc: Mapping[str, Any]) -> list[dict[str, str]]:
    """Table rows from an agent's /status document."""
    shells: Mapping[str, Any] = doc.get("shells") or {}
    states: dict[str, str] = {}
    conflicts: dict[str, str] = {}
    for status in shells.values():
        if not isinstance(status, Mapping):
            continue
        for ip, entry in (status.get("addresses") or {}).items():
            states[ip] = str(entry.get("state", ""))
            if entry.get("conflict"):
                conflicts[ip] = str(entry["conflict"])
        for ip in status.get("conflicts") or ():
            conflicts.setdefault(str(ip), "in use by another host")
    node = doc.get("node")
    rows = []
    for o in doc.get("ownership") or ():
        ip, nodes = str(o.get("ip")), [str(n) for n in o.get("nodes") or ()]
        if ip in states and node in nodes:
            state = f"{states[ip]} (on {node})"
        else:
            state = "announced" if nodes else "not announced"
        rows.append(
            {
                "SERVICE": ",".join(o.get("services") or ()) or "-",
                "IP": ip,
                "MODE": str(o.get("mode")),
                "NODES": ",".join(nodes) or "-",
                "STATE": state,
                "CONFLICT": conflicts.get(ip, "no"),
                "WHY": str(o.get("reason", "")),
            }
        )
    for svc, why in sorted((doc.get("unannounced") or {}).items()):
        rows.append(
            {
                "SERVICE": svc,
                "IP": "-",
                "MODE": "-",
                "NODES": "-",
                "STATE": "not announced",
                "CONFLICT": "no",
                "WHY": str(why),
            }
        )
    return rows


def rows_from_services(
    services: Iterable[Mapping[str, Any]], *, classless: bool = False
) -> list[dict[str, str]]:
    """Table rows from Service objects: addresses from their status, announcements as published."""
    docs = list(services)
    by_key = {_key(d): d for d in docs}
    rows = []
    for key, ips in recorded(docs, classless=classless).items():
        doc = by_key[key]
        ann = (doc.get("metadata") or {}).get("annotations") or {}
        try:
            published = json.loads(ann.get(ANN_ANNOUNCEMENTS) or "[]")
        except ValueError:
            published = []
        published = published if isinstance(published, list) else []
        conds = {c.get("type"): c for c in (doc.get("status") or {}).get("conditions") or []}
        cond = conds.get(COND_ANNOUNCED) or {}
        for ip in ips:
            mine = [r for r in published if isinstance(r, Mapping) and r.get("ip") == ip]
            if not mine:
                rows.append(
                    {
                        "SERVICE": key,
                        "IP": ip,
                        "MODE": "-",
                        "NODES": "-",
                        "STATE": "not announced",
                        "CONFLICT": "-",
                        "WHY": str(cond.get("message") or "no announcement published yet"),
                    }
                )
            for r in mine:
                nodes = [str(n) for n in r.get("nodes") or ()]
                found = [c for c in r.get("conflicts") or () if isinstance(c, Mapping)]
                rows.append(
                    {
                        "SERVICE": key,
                        "IP": ip,
                        "MODE": str(r.get("mode") or "-"),
                        "NODES": ",".join(nodes) or "-",
                        "STATE": "announced" if nodes else "not announced",
                        "CONFLICT": ", ".join(f"{c.get('mac')} seen by {c.get('node')}" for c in found)
                        or "-",
                        "WHY": str(r.get("reason", "")),
                    }
                )
    return rows


def _key(doc: Mapping[str, Any]) -> str:
    """``namespace/name``, as :func:`ironlb_cli.livestate.recorded` keys a Service."""
    meta = doc.get("metadata") or {}
    return f"{meta.get('namespace', 'default')}/{meta.get('name')}"


def render(rows: Sequence[Mapping[str, str]]) -> str:
    """A plain aligned table (WHY last and unpadded, it is the long one)."""
    if not rows:
        return "no addresses allocated or announced"
    widths = {c: max(len(c), *(len(r.get(c, "")) for r in rows)) for c in COLUMNS[:-1]}
    lines = ["  ".join([*(c.ljust(widths[c]) for c in COLUMNS[:-1]), COLUMNS[-1]])]
    for r in rows:
        lines.append("  ".join([*(r.get(c, "").ljust(widths[c]) for c in COLUMNS[:-1]), r.get("WHY", "")]))
    return "\n".join(lines)


def fetch_agent(url: str, timeout: float) -> dict[str, Any]:
    target = url.rstrip("/") + ("" if url.rstrip("/").endswith("/status") else "/status")
    try:
        with urllib.request.urlopen(target, timeout=timeout) as resp:
            doc = json.loads(resp.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise IronLBError(
            f"cannot read {target}: {exc}; is the agent running with its HTTP endpoint?"
        ) from exc
    if not isinstance(doc, dict):
        raise IronLBError(f"{target} did not return a JSON object")
    return doc


async def fetch_services(server: str | None, kubeconfig: str | None, timeout: float) -> list[dict[str, Any]]:
    from ironlb.agent.kube.client import SERVICES, KubeClient, KubeError

    client = KubeClient.connect(server, kubeconfig, timeout=timeout)
    try:
        items, _ = await client.list(SERVICES)
    except KubeError as exc:
        raise IronLBError(f"cannot list Services: {exc}") from exc
    finally:
        await client.close()
    return items


def run(args: argparse.Namespace) -> int:
    if args.export:
        from pathlib import Path

        from ironlb_cli.livestate import export_document

        services = asyncio.run(fetch_services(args.server, args.kubeconfig, args.timeout))
        doc = export_document(services, classless=args.classless)
        Path(args.export).write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
        print(f"wrote the addresses of {len(doc['services'])} Services to {args.export}")
        return 0
    if args.url:
        rows = rows_from_agent(fetch_agent(args.url, args.timeout))
    else:
        services = asyncio.run(fetch_services(args.server, args.kubeconfig, args.timeout))
        rows = rows_from_services(services, classless=args.classless)
    if args.ip:
        rows = [r for r in rows if r["IP"] == args.ip]
    print(json.dumps(rows, indent=1) if args.json else render(rows))
    return 0
