"""``ironlb validate FILE...`` and ``ironlb crds``: check configuration, print the CRDs.

``validate`` reads every file (multi-document YAML; IronLB objects, Namespaces and
Services in any mix, or Pulumi stack files ``stacks/Pulumi.<stack>.yaml``), parses them
together as one configuration with ``ironlb.config.parse``, and prints either a one-line
summary plus warnings (exit 0) or every error (exit 1).  YAML syntax errors are reported as
``file:line:column``; no input ever produces a traceback.  Each document is tagged with its
file so errors can say where an object came from.

``crds`` prints the CustomResourceDefinitions generated from the schema as YAML,
ready for ``kubectl apply -f -``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import yaml

from ironlb.config import Config, parse
from ironlb.crds import crd_manifests
from ironlb.errors import ConfigError, Issue
from ironlb.ipam import allocate_all
from ironlb.metallb import foreign_issues


def register(subparsers: Any) -> None:
    """Add the ``validate`` and ``crds`` subcommands."""
    p = subparsers.add_parser(
        "validate",
        help="check YAML files of IronLB objects, Namespaces and Services (all parsed together)",
        description="Check IronLB configuration. Exit 0 when valid, 1 listing every error.",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="YAML files (multi-document); '-' for stdin")
    p.add_argument("--quiet", "-q", action="store_true", help="print nothing when valid")
    p.add_argument(
        "--allocate", action="store_true", help="also preview which address each LoadBalancer Service gets"
    )
    p.set_defaults(func=run_validate)
    c = subparsers.add_parser("crds", help="print IronLB's CustomResourceDefinitions as YAML")
    c.set_defaults(func=run_crds)


def load_documents(
    paths: Sequence[str],
    stdin: TextIO | None = None,
    origins: dict[tuple[str, str], str] | None = None,
    stacks: bool = False,
) -> tuple[list[Any], list[str]]:
    """All YAML documents of ``paths`` in order, and the problems (file:line: message) reading them.

    ``origins``, when given, is filled with (kind, name) -> file for every object read.
    With ``stacks``, a Pulumi stack file stands for the objects it declares (read as
    ``pulumi up`` and ``ironlb plan`` read it), and a document that is neither a Kubernetes
    object nor a stack file is a problem, not silently nothing.
    """
    docs: list[Any] = []
    problems: list[str] = []
    for path in _expand(paths):
        try:
            text = (stdin or sys.stdin).read() if path == "-" else Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}")
            continue
        try:
            found = [d for d in yaml.safe_load_all(text) if d is not None]
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else path
            what = getattr(exc, "problem", None) or str(exc)
            context = getattr(exc, "context", None)
            problems.append(f"{where}: YAML syntax error: {what}" + (f" ({context})" if context else ""))
            continue
        if stacks:
            found = _objects(path, found, problems)
        docs.extend(found)
        if origins is not None:
            for doc in found:
                origins.setdefault(_identity(doc), path)
    return docs, problems


def _objects(path: str, found: list[Any], problems: list[str]) -> list[Any]:
    """``found`` with each stack file replaced by its objects; other non-objects reported."""
    out: list[Any] = []
    for number, doc in enumerate(found, 1):
        if not isinstance(doc, dict) or "kind" in doc or "apiVersion" in doc:
            out.append(doc)  # an object, or what parse reports better (not a mapping, no kind)
        elif path != "-" and _is_stack_file(doc):
            out.extend(_stack_objects(Path(path), problems))
        else:
            problems.append(
                f"{path}: document {number}: not a Kubernetes object (no kind) nor a Pulumi stack file "
                "(a top-level config: mapping); give IronLB objects, Namespaces and Services, or "
                "stacks/Pulumi.<stack>.yaml"
            )
    return out


def _is_stack_file(doc: Any) -> bool:
    # imported here: the components package imports Pulumi's SDK, needed only for stack files
    from ironlb.components.stackconfig import is_stack_file

    return is_stack_file(doc)


def _stack_objects(path: Path, problems: list[str]) -> list[Any]:
    """The objects of a stack file (secrets redacted); its stack-level problems go to ``problems``."""
    from ironlb.components.offline import stack_documents  # Pulumi's SDK: only for stack files

    try:
        return stack_documents(path)
    except ConfigError as exc:
        problems.extend(f"{path}: {issue}" for issue in exc.issues)
    except FileNotFoundError as exc:  # a tenant stack whose platform stack file is not beside it
        problems.append(f"{path}: {exc}")
    return []


def _expand(paths: Sequence[str]) -> list[str]:
    """Files as given; a directory stands for its *.yaml and *.yml files, sorted."""
    out: list[str] = []
    for path in paths:
        p = Path(path)
        if path != "-" and p.is_dir():
            out.extend(str(f) for f in sorted(p.iterdir()) if f.suffix in (".yaml", ".yml") and f.is_file())
        else:
            out.append(path)
    return out


def _identity(doc: Any) -> tuple[str, str]:
    """(kind, name) as Issue names objects: Services as namespace/name."""
    if not isinstance(doc, dict):
        return ("", "")
    meta = doc.get("metadata")
    if not isinstance(meta, dict):
        meta = {}
    name = str(meta.get("name") or "")
    if doc.get("kind") == "Service":
        name = f"{meta.get('namespace') or 'default'}/{name}"
    return (str(doc.get("kind") or ""), name)


def _where(issue: Issue, origins: dict[tuple[str, str], str], many: bool) -> str:
    origin = origins.get((issue.kind, issue.name))
    return f"{issue}  [{origin}]" if many and origin else str(issue)


def summary(config: Config) -> str:
    """One line: what the configuration holds."""
    parts = [
        (len(config.pools), "pool"),
        (len(config.peers), "BGP peer"),
        (len(config.l2_advertisements), "L2 advertisement"),
        (len(config.bgp_advertisements), "BGP advertisement"),
        (len(config.tenants), "tenant"),
        (len(config.services), "LoadBalancer service"),
    ]
    text = ", ".join(f"{n} {word}{'' if n == 1 else 's'}" for n, word in parts)
    return f"valid: {text}"


def check_files(
    paths: Sequence[str], stdin: TextIO | None = None
) -> tuple[Config | None, list[str], list[str]]:
    """(config or None, errors, warnings) as printable lines.

    Files that fail to read or parse as YAML are reported, and the rest is still checked,
    so one run lists every problem.
    """
    origins: dict[tuple[str, str], str] = {}
    docs, problems = load_documents(paths, stdin, origins, stacks=True)
    many = len(set(origins.values())) > 1

    def show(issues: list[Issue]) -> list[str]:
        return [_where(i, origins, many) for i in issues]

    foreign, docs = foreign_issues(docs)  # MetalLB objects are reported, never silently skipped
    try:
        config = parse(docs)
    except ConfigError as exc:
        return None, problems + show(foreign) + show(exc.issues), show(exc.warnings)
    if foreign:
        return None, problems + show(foreign), show(list(config.warnings))
    if problems:
        return None, problems, show(list(config.warnings))
    return config, [], show(list(config.warnings))


def run_validate(args: argparse.Namespace) -> int:
    config, errors, warnings = check_files(args.files)
    for line in warnings:
        print(f"warning: {line}", file=sys.stderr)
    if config is None:
        plural = "" if len(errors) == 1 else "s"
        print(f"invalid configuration ({len(errors)} error{plural}):", file=sys.stderr)
        for line in errors:
            print(f"  - {line}", file=sys.stderr)
        return 1
    if not args.quiet:
        print(summary(config))
    if args.allocate:
        assignments, failures = allocate_all(config)
        for key in sorted(set(assignments) | set(failures)):
            if key in assignments:
                ips = ", ".join(f"{a.ip} ({a.pool})" for a in assignments[key].ips)
                print(f"  {key}: {ips}")
            if key in failures:
                print(f"  {key}: not allocated: {failures[key].reason}: {failures[key].message}")
    return 0


def run_crds(args: argparse.Namespace) -> int:
    sys.stdout.write(yaml.safe_dump_all(crd_manifests(), sort_keys=False, width=100))
    return 0
