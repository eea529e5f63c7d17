"""``ironlb plan --diff BASE``: what a change to a stack does, as the PR comment shows it.

:func:`load_base` reads the base revision's plan from a git revision (the stack files of
the stacks directory at that revision), a stack file, or a plan saved with ``ironlb plan
--format json``.  :func:`diff` compares two plans (dicts from ``ironlb_cli.plan.build_plan``)
and lists, per section, what is added, removed or changed: Services (their addresses,
live or predicted, or the reason they get none), pools, BGP peers, tenants and
advertisements.  :func:`format_diff` writes it as text or as GitHub markdown.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ironlb.errors import ConfigError, IronLBError

ADDED, REMOVED, CHANGED = "added", "removed", "changed"
MARK = {ADDED: "+", REMOVED: "-", CHANGED: "~"}
#: section -> (plan key, identity field, compared fields)
SECTIONS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "Services": ("services", "service", ("addresses", "pools", "error")),
    "Pools": ("pools", "name", ("addresses", "tenant", "autoAssign", "disabled")),
    "BGP peers": (
        "peers",
        "name",
        ("peerAddress", "myASN", "peerASN", "holdTime", "keepaliveTime", "password"),
    ),
    "Tenants": ("tenants", "name", ("namespaces", "pools", "maxAddresses")),
    "Advertisements": ("advertisements", "name", ("kind", "pools", "peers")),
}


def load_base(
    base: str, stack: str, stacks_dir: Path, build: Callable[[str, Path], dict[str, Any]]
) -> dict[str, Any]:
    """The base plan: ``base`` is a plan JSON file, a stack file, or a git revision."""
    path = Path(base)
    if path.is_file() and path.suffix == ".json":
        try:
            plan = json.loads(path.read_text())
        except ValueError as exc:
            raise IronLBError(f"--diff {base}: not a plan JSON file ({exc})") from None
        if not isinstance(plan, dict) or "services" not in plan:
            raise IronLBError(f"--diff {base}: not written by `ironlb plan --format json`")
        return plan
    try:
        if path.is_file():
            return build(path.name.removeprefix("Pulumi.").removesuffix(".yaml"), path.parent)
        with tempfile.TemporaryDirectory(prefix="ironlb-plan-base-") as tmp:
            _checkout_stacks(base, stacks_dir, Path(tmp))
            return build(stack, Path(tmp))
    except ConfigError as exc:
        issues = "\n  - ".join(str(i) for i in exc.issues if not i.warning)
        raise IronLBError(
            f"--diff {base}: the base stack is invalid under this version's schema, so it cannot be "
            f"planned; compare against a plan JSON saved from it instead:\n  - {issues}"
        ) from None


def _git(args: list[str], cwd: Path) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise IronLBError(f"--diff needs git to read a revision: {exc}") from None
    if done.returncode != 0:
        raise IronLBError(done.stderr.strip() or f"git {' '.join(args)} failed")
    return done.stdout


def _checkout_stacks(rev: str, stacks_dir: Path, into: Path) -> None:
    """Write every stack file of ``stacks_dir`` as of ``rev`` into ``into``."""
    here = stacks_dir.resolve()
    try:
        top = Path(_git(["rev-parse", "--show-toplevel"], here).strip())
        _git(["rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], top)
    except IronLBError as exc:
        raise IronLBError(
            f'--diff "{rev}": not a file and not a git revision here ({exc}); '
            "give a revision (main, origin/main, a SHA), a stack file or a plan JSON file"
        ) from None
    rel = here.relative_to(top).as_posix()
    names = _git(["ls-tree", "--name-only", rev, "--", f"{rel}/"], top).split()
    for name in names:
        file = Path(name).name
        if file.startswith("Pulumi.") and file.endswith(".yaml"):
            (into / file).write_text(_git(["show", f"{rev}:{name}"], top))


def _index(plan: Mapping[str, Any], key: str, ident: str) -> dict[str, Mapping[str, Any]]:
    return {str(item[ident]): item for item in plan.get(key) or []}


def _describe(item: Mapping[str, Any], section: str) -> str:
    if section == "Services":
        if item.get("error"):
            return f"no address: {item.get('reason')}: {item['error']}"
        origin = item.get("origin") or {}
        return ", ".join(f"{ip} ({origin.get(ip, 'predicted')})" for ip in item.get("addresses") or []) or "-"
    fields = SECTIONS[section][2]
    return "; ".join(f"{f}: {_text(item.get(f))}" for f in fields if item.get(f) not in (None, [], ""))


def _text(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "-"
    if value is None or value == "":
        return "-"
    return str(value)


def _changes(old: Mapping[str, Any], new: Mapping[str, Any], section: str) -> list[str]:
    details = []
    for f in SECTIONS[section][2]:
        a, b = old.get(f), new.get(f)
        if a == b:
            continue
        if section == "Services" and f == "addresses":
            origin = new.get("origin") or {}
            after = ", ".join(f"{ip} ({origin.get(ip, 'predicted')})" for ip in b or []) or "none"
            details.append(f"{_text(a)} -> {after}")
        elif section == "Services" and f == "error":
            details.append(f"now gets no address: {new.get('reason')}: {b}" if b else "now gets an address")
        elif isinstance(a, list) and isinstance(b, list):
            plus = [f"+{v}" for v in b if v not in a]
            minus = [f"-{v}" for v in a if v not in b]
            details.append(f"{f}: {' '.join([*plus, *minus]) or ' -> '.join([_text(a), _text(b)])}")
        else:
            details.append(f"{f}: {_text(a)} -> {_text(b)}")
    return details


def diff(base: Mapping[str, Any], head: Mapping[str, Any]) -> dict[str, Any]:
    """Per section, the entries added, removed or changed from ``base`` to ``head``."""
    sections: dict[str, list[dict[str, Any]]] = {}
    for section, (key, ident, _) in SECTIONS.items():
        old, new = _index(base, key, ident), _index(head, key, ident)
        rows: list[dict[str, Any]] = []
        for name in sorted(old.keys() | new.keys()):
            if name not in old:
                rows.append({"change": ADDED, "name": name, "details": [_describe(new[name], section)]})
            elif name not in new:
                rows.append({"change": REMOVED, "name": name, "details": [_describe(old[name], section)]})
            else:
                details = _changes(old[name], new[name], section)
                if details:
                    rows.append({"change": CHANGED, "name": name, "details": details})
        sections[section] = rows
    dropped = {s["service"]: s["dropped"] for s in head.get("services") or [] if s.get("dropped")}
    return {
        "stack": head.get("stack"),
        "base": base.get("label") or "base",
        "sections": sections,
        "dropped": dropped,
    }


def summary(d: Mapping[str, Any]) -> str:
    parts = []
    for section, rows in d["sections"].items():
        counts = {c: sum(1 for r in rows if r["change"] == c) for c in (ADDED, CHANGED, REMOVED)}
        said = [f"{n} {c}" for c, n in counts.items() if n]
        if said:
            parts.append(f"{section.lower()}: {', '.join(said)}")
    return "; ".join(parts) or "no changes"


def format_diff(d: Mapping[str, Any], markdown: bool = False) -> str:
    head = f"IronLB plan for stack {d['stack']} against {d['base']}: {summary(d)}"
    lines = [f"## {head}" if markdown else head]
    for section, rows in d["sections"].items():
        if not rows:
            continue
        lines.append("")
        if markdown:
            lines += [f"### {section}", "| | NAME | WHAT |", "|---|---|---|"]
            for r in rows:
                what = "; ".join(r["details"]).replace("|", "\\|")
                lines.append(f"| {MARK[r['change']]} | {r['name']} | {what} |")
        else:
            lines.append(f"{section}:")
            width = max(len(r["name"]) for r in rows)
            lines += [
                f"  {MARK[r['change']]} {r['name'].ljust(width)}  {'; '.join(r['details'])}" for r in rows
            ]
    if d.get("dropped"):
        lines.append("")
        lines.append(
            "### Live addresses the change withdraws" if markdown else "Live addresses the change withdraws:"
        )
        for svc, why in sorted(d["dropped"].items()):
            lines += [f"- {svc}: {w}" if markdown else f"  - {svc}: {w}" for w in why]
    return "\n".join(lines) + "\n"
