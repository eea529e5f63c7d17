"""``ironlb import metallb FILE... [--from-cluster]``: a MetalLB configuration as an IronLB stack.

Reads ``metallb.io`` objects and LoadBalancer Services (files, multi-document YAML, or the
cluster through a read-only kubeconfig), converts them with :func:`ironlb.metallb.convert`
and writes the ``ironlb:*`` keys of a stack file (stdout, or ``--out Pulumi.<stack>.yaml``).
The result is checked with the shared schema exactly as ``pulumi preview`` would check it.
The report (stderr) names, per object and field, what was converted with a step left to
the user and what could not be converted, and why.

Exit 0 when everything converted; 3 when some fields could not be converted (the stack
is still written, without them); 1 when the input or the converted stack is invalid.
See docs/migrate-from-metallb.md for running both side by side.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from ironlb.errors import ConfigError, IronLBError
from ironlb.metallb import FIELDS, Note, convert
from ironlb_cli.livestate import list_with

HEADER = "# IronLB stack converted from MetalLB by `ironlb import metallb`; review before use.\n"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("import", help="convert another load balancer's configuration to IronLB")
    kinds = parser.add_subparsers(dest="source", metavar="SOURCE", required=True)
    p = kinds.add_parser(
        "metallb",
        help="MetalLB objects and annotated Services -> an IronLB stack config",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("files", nargs="*", metavar="FILE", help="YAML files (multi-document)")
    p.add_argument(
        "--from-cluster", action="store_true", help="read metallb.io objects and Services from the cluster"
    )
    p.add_argument(
        "--kubeconfig", help="with --from-cluster: kubeconfig file (default: $KUBECONFIG, ~/.kube/config)"
    )
    p.add_argument("--context", help="with --from-cluster: kubeconfig context")
    p.add_argument("--out", help="write a stack file here (default: stdout)")
    p.set_defaults(func=run)


def read_files(paths: list[str]) -> list[Any]:
    from ironlb_cli.validate import load_documents

    docs, problems = load_documents(paths)
    if problems:
        raise IronLBError("cannot read the input:\n  " + "\n  ".join(problems))
    return docs


def read_cluster(kubeconfig: str | None, context: str | None) -> list[Any]:
    """Every metallb.io object of the kinds we convert, and every Service (read-only)."""
    from lightkube.core.exceptions import ApiError
    from lightkube.generic_resource import create_namespaced_resource
    from lightkube.resources.core_v1 import Service

    def lister(client: Any) -> list[Any]:
        docs: list[Any] = []
        for kind, version in sorted({**{k: "v1beta1" for k in FIELDS}, "BGPPeer": "v1beta2"}.items()):
            res = create_namespaced_resource("metallb.io", version, kind, kind.lower() + "s")
            try:
                docs += [
                    {"apiVersion": f"metallb.io/{version}", "kind": kind, **o.to_dict()}
                    for o in client.list(res, namespace="*")
                ]
            except ApiError as exc:
                if exc.status.code != 404:  # 404: MetalLB's CRD for this kind is not installed
                    raise
        services = client.list(Service, namespace="*")
        return docs + [{"apiVersion": "v1", "kind": "Service", **s.to_dict()} for s in services]

    return list_with(kubeconfig, context, lister, what="MetalLB objects", needs="needs get/list on them")


def check(values: dict[str, Any]) -> None:
    """The converted stack through the same checks as ``pulumi preview`` (raises ConfigError)."""
    from ironlb.components.stackconfig import documents, spec_from_values
    from ironlb.config import parse

    parse(documents(spec_from_values({**values, "membershipKey": "[secret]"} | _password_keys(values))))


def _password_keys(values: dict[str, Any]) -> dict[str, str]:
    return {p["passwordConfig"]: "[secret]" for p in values.get("peers", []) if "passwordConfig" in p}


def stack_text(values: dict[str, Any]) -> str:
    config = {f"ironlb:{k}": v for k, v in sorted(values.items())}
    return HEADER + yaml.safe_dump({"config": config}, sort_keys=False, default_flow_style=False, width=110)


def report(notes: list[Note]) -> str:
    steps = [n for n in notes if n.converted]
    missing = [n for n in notes if not n.converted]
    lines = []
    if steps:
        lines += ["converted, with a step for you:", *(f"  - {n}" for n in steps)]
    if missing:
        lines += ["not converted:", *(f"  - {n}" for n in missing)]
    return "\n".join(lines) + ("\n" if lines else "")


def run(args: argparse.Namespace) -> int:
    if not args.files and not args.from_cluster:
        raise IronLBError("give MetalLB YAML files, or --from-cluster")
    docs = read_files(args.files) if args.files else []
    if args.from_cluster:
        docs += read_cluster(args.kubeconfig, args.context)
    values, notes = convert(docs)
    if not values:
        raise IronLBError("found no MetalLB objects or LoadBalancer Services to convert")
    try:
        check(values)
    except ConfigError as exc:
        sys.stderr.write(report(notes))
        raise ConfigError(exc.issues) from None
    text = stack_text(values)
    if args.out:
        Path(args.out).write_text(text)
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    sys.stderr.write(report(notes))
    return 3 if any(not n.converted for n in notes) else 0
