"""``ironlb plan --stack NAME``: what a stack gives every service, before anything is applied.

Reads the stack file exactly as the Pulumi program does (``ironlb.components.stackconfig``),
parses it with the shared schema, and predicts every Service's addresses
(``ironlb_cli.planning``): addresses the cluster already holds (``--live FILE`` from
``ironlb status --export``, or ``--from-cluster`` with a read-only kubeconfig) are kept
and marked *live*; the rest are *predicted*, in an order that does not depend on the
stack file's list order.  Prints tenants (namespaces, pools, quota and use), pools
(capacity and use per family), BGP peers, advertisements, and each service with its
addresses or the reason it gets none.  A tenant stack is planned against the pools its
platform stack grants it.

``--diff BASE`` (a git revision, a stack file, or a plan saved with ``--format json``)
shows what the change does instead: Services, pools, peers, tenants and advertisements
added, removed or changed (``ironlb_cli.plandiff``); the base's Services keep their
addresses, so a Service the change adds never moves another.  This is what the PR
comment shows.

``--format markdown`` writes GitHub tables (for ``$GITHUB_STEP_SUMMARY``); ``--format
json`` is for scripts.  Exit 1 with the schema's messages when the stack is invalid;
exit 3 when any service would get no address, unless ``--allow-unassigned``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ironlb.errors import IronLBError

if TYPE_CHECKING:
    from ironlb.checked import Config
    from ironlb.model import BGPAdvertisement, L2Advertisement


@dataclass(frozen=True)
class Table:
    title: str
    headers: tuple[str, ...]
    rows: list[tuple[str, ...]]


def build_plan(
    stack: str,
    stacks_dir: Path,
    *,
    live: Mapping[str, tuple[str, ...]] | None = None,
    base: Mapping[str, tuple[str, ...]] | None = None,
) -> dict[str, Any]:
    """The plan as a JSON-able dict (raises ConfigError on invalid config).

    ``live``: addresses the cluster holds (kept, marked live); ``base``: addresses the
    base revision's plan gave its Services (kept for Services not live)."""
    from ironlb.components.offline import load_stack
    from ironlb.ipam import Allocator
    from ironlb_cli.planning import predict

    try:
        loaded = load_stack(stack, stacks_dir)
    except FileNotFoundError as exc:
        raise IronLBError(str(exc)) from None
    config = loaded.config
    prediction = predict(config, live, base)
    assignments, errors = prediction.assignments, prediction.errors
    allocator = Allocator(config, assignments.values())
    usage = allocator.usage()
    tenant_use = allocator.tenant_usage()
    plan: dict[str, Any] = {
        "stack": stack,
        "platform": loaded.spec.platform.stack if loaded.spec.platform else None,
        "tenants": [
            {
                "name": name,
                "namespaces": list(t.spec.namespaces),
                "pools": sorted(p for p, i in config.pools.items() if i.tenant == name),
                "maxAddresses": t.spec.maxAddresses,
                "used": tenant_use.get(name, 0),
            }
            for name, t in sorted(config.tenants.items())
        ],
        "pools": [
            {
                "name": name,
                "tenant": info.tenant,
                "addresses": list(info.pool.spec.addresses),
                "autoAssign": info.pool.spec.autoAssign,
                "disabled": info.pool.spec.disabled,
                "size": {f"IPv{f}": usage[name].size.get(f, 0) for f in (4, 6)},
                "used": {f"IPv{f}": usage[name].used.get(f, 0) for f in (4, 6)},
            }
            for name, info in sorted(config.pools.items())
        ],
        "peers": [
            {
                "name": name,
                "peerAddress": p.spec.peerAddress,
                "myASN": p.spec.myASN,
                "peerASN": p.spec.peerASN,
                "holdTime": p.spec.effective_timers()[0],
                "keepaliveTime": p.spec.effective_timers()[1],
                "password": p.spec.passwordSecretRef is not None,
            }
            for name, p in sorted(config.peers.items())
        ],
        "advertisements": [
            *(
                {"kind": "L2", "name": n, "pools": _selected(config, a), "peers": []}
                for n, a in sorted(config.l2_advertisements.items())
            ),
            *(
                {
                    "kind": "BGP",
                    "name": n,
                    "pools": _selected(config, a),
                    "peers": list(a.spec.peers) or ["(all)"],
                }
                for n, a in sorted(config.bgp_advertisements.items())
            ),
        ],
        "services": [],
        "warnings": [str(w) for w in config.warnings],
    }
    for request in sorted(config.services, key=lambda r: r.key):
        got = assignments.get(request.key)
        err = errors.get(request.key)
        plan["services"].append(
            {
                "service": request.key,
                "addresses": list(got.addresses) if got else [],
                "pools": sorted({a.pool for a in got.ips}) if got else [],
                "origin": dict(prediction.origin.get(request.key, {})),
                "dropped": list(prediction.dropped.get(request.key, ())),
                "error": err.message if err else None,
                "reason": err.reason if err else None,
            }
        )
    return plan


def _selected(config: Config, adv: L2Advertisement | BGPAdvertisement) -> list[str]:
    """The pools ``adv`` announces, by name; ``(all)`` when it names none and has no selector."""
    if not adv.spec.ipPools and adv.spec.ipPoolSelector is None:
        return ["(all)"]
    return list(config.selected_pools(adv))


def tables(plan: dict[str, Any]) -> list[Table]:
    def dash(v: Any) -> str:
        return "-" if v in (None, "", []) else str(v)

    return [
        Table(
            "Tenants",
            ("TENANT", "NAMESPACES", "POOLS", "QUOTA", "USED"),
            [
                (
                    t["name"],
                    ", ".join(t["namespaces"]),
                    dash(", ".join(t["pools"])),
                    dash(t["maxAddresses"]),
                    str(t["used"]),
                )
                for t in plan["tenants"]
            ],
        ),
        Table(
            "Pools",
            ("POOL", "TENANT", "AUTO", "IPv4 USED/SIZE", "IPv6 USED/SIZE", "ADDRESSES"),
            [
                (
                    p["name"],
                    dash(p["tenant"]),
                    ("yes" if p["autoAssign"] else "no") + (" (disabled)" if p["disabled"] else ""),
                    f"{p['used']['IPv4']}/{p['size']['IPv4']}",
                    f"{p['used']['IPv6']}/{p['size']['IPv6']}",
                    ", ".join(p["addresses"]),
                )
                for p in plan["pools"]
            ],
        ),
        Table(
            "BGP peers",
            ("PEER", "ADDRESS", "ASN (node -> peer)", "HOLD/KEEPALIVE", "PASSWORD"),
            [
                (
                    p["name"],
                    p["peerAddress"],
                    f"{p['myASN']} -> {p['peerASN']}",
                    f"{p['holdTime']}s/{p['keepaliveTime']}s",
                    "secret" if p["password"] else "none",
                )
                for p in plan["peers"]
            ],
        ),
        Table(
            "Advertisements",
            ("KIND", "NAME", "POOLS", "PEERS"),
            [
                (a["kind"], a["name"], ", ".join(a["pools"]), dash(", ".join(a["peers"])))
                for a in plan["advertisements"]
            ],
        ),
        Table(
            "Services",
            ("SERVICE", "ADDRESSES", "POOL", "STATUS"),
            [
                (
                    s["service"],
                    dash(
                        ", ".join(
                            f"{ip} ({s.get('origin', {}).get(ip, 'predicted')})" for ip in s["addresses"]
                        )
                    ),
                    dash(", ".join(s["pools"])),
                    "ok" if not s["error"] else f"{s['reason']}: {s['error']}",
                )
                for s in plan["services"]
            ],
        ),
    ]


def format_text(plan: dict[str, Any], markdown: bool = False) -> str:
    failed = sum(1 for s in plan["services"] if s["error"])
    head = (
        f"Stack {plan['stack']}: {len(plan['tenants'])} tenants, {len(plan['pools'])} pools, "
        f"{len(plan['peers'])} peers, {len(plan['services'])} services ({failed} without an address)"
    )
    if plan["platform"]:
        head += f"; pools granted by {plan['platform']}"
    lines = [f"## IronLB plan: {head}" if markdown else head]
    for table in tables(plan):
        lines.append("")
        lines.append(f"### {table.title}" if markdown else f"{table.title}:")
        if not table.rows:
            lines.append("_none_" if markdown else "  (none)")
            continue
        if markdown:
            lines.append("| " + " | ".join(table.headers) + " |")
            lines.append("|" + "---|" * len(table.headers))
            lines.extend("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in table.rows)
        else:
            widths = [max(len(r[i]) for r in [table.headers, *table.rows]) for i in range(len(table.headers))]
            for row in [table.headers, *table.rows]:
                lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    if plan["warnings"]:
        lines.append("")
        lines.append("### Warnings" if markdown else "Warnings:")
        lines.extend(f"- {w}" if markdown else f"  - {w}" for w in plan["warnings"])
    return "\n".join(lines) + "\n"


def _live(args: argparse.Namespace) -> Mapping[str, tuple[str, ...]] | None:
    from ironlb_cli import livestate

    if args.live:
        return livestate.read_export(Path(args.live))
    if args.from_cluster:
        return livestate.from_cluster(args.kubeconfig, args.context)
    return None


def run(args: argparse.Namespace) -> int:
    from ironlb_cli.render import default_stacks_dir

    stacks_dir = Path(args.stacks_dir) if args.stacks_dir else default_stacks_dir()
    live = _live(args)
    unassigned_exit = 0 if args.allow_unassigned else 3
    if args.diff:
        from ironlb_cli import plandiff

        base = plandiff.load_base(args.diff, args.stack, stacks_dir, lambda s, d: build_plan(s, d, live=live))
        held = {s["service"]: tuple(s["addresses"]) for s in base["services"] if s.get("addresses")}
        plan = build_plan(args.stack, stacks_dir, live=live, base=held)
        changes = plandiff.diff({**base, "label": args.diff}, plan)
        if args.format == "json":
            print(json.dumps({"diff": changes, "plan": plan}, indent=2, sort_keys=True))
        else:
            markdown = args.format == "markdown"
            print(plandiff.format_diff(changes, markdown=markdown), end="")
            if markdown:
                full = format_text(plan, markdown=True)
                print(f"\n<details><summary>Full plan</summary>\n\n{full}\n</details>")
    else:
        plan = build_plan(args.stack, stacks_dir, live=live)
        if args.format == "json":
            print(json.dumps(plan, indent=2, sort_keys=True))
        else:
            print(format_text(plan, markdown=args.format == "markdown"), end="")
    return unassigned_exit if any(s["error"] for s in plan["services"]) else 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "plan",
        help="show tenants, pools, peers and the address every service would get, or what a change does",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--stack", required=True, help="stack name (stacks/Pulumi.<stack>.yaml)")
    parser.add_argument("--stacks-dir", help="directory holding the stack files (default: ./stacks)")
    parser.add_argument("--format", choices=("text", "markdown", "json"), default="text")
    parser.add_argument(
        "--diff",
        metavar="BASE",
        help="show the change against BASE: a git revision, a stack file, or a plan saved with --format json",
    )
    live = parser.add_mutually_exclusive_group()
    live.add_argument(
        "--live", metavar="FILE", help="addresses the cluster holds, from `ironlb status --export FILE`"
    )
    live.add_argument(
        "--from-cluster",
        action="store_true",
        help="read the addresses the cluster holds (needs only get/list on services)",
    )
    parser.add_argument(
        "--kubeconfig", help="with --from-cluster: kubeconfig file (default: $KUBECONFIG, ~/.kube/config)"
    )
    parser.add_argument(
        "--context", help="with --from-cluster: kubeconfig context (default: the current one)"
    )
    parser.add_argument(
        "--allow-unassigned",
        action="store_true",
        help="exit 0 even when a service would get no address (default: exit 3)",
    )
    parser.add_argument("--strict", action="store_true", help=argparse.SUPPRESS)  # the default since 0.2
    parser.set_defaults(func=run)
