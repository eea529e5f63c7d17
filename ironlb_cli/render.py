"""``ironlb render --stack NAME --out DIR``: the Kubernetes manifests a stack would create.

Runs the stack's Pulumi program under Pulumi's own mock runtime (``ironlb.components.offline``)
-- no engine, no cloud credentials -- and writes one YAML file per object, named
``NNN-<kind>-[<namespace>.]<name>.yaml`` in apply order, keys sorted, so the same stack
always gives byte-identical output.  Secret values are redacted (Pulumi marks them; every
Secret's data is redacted regardless).  Every manifest is checked against the Kubernetes
JSON schemas and every IronLB object against our CRD schema before anything is written.

The directory is directly usable as the agent's standalone source (``--source DIR``) and
by GitOps tools.  Files from an earlier render (``NNN-*.yaml``) are replaced; nothing else
in DIR is touched.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

import yaml

from ironlb.errors import ConfigError, IronLBError

RENDERED = re.compile(r"^\d{3}-.+\.yaml$")


def default_stacks_dir() -> Path:
    """./stacks when it exists, else the stacks/ next to the installed program."""
    here = Path("stacks")
    return here if here.is_dir() else Path(__file__).resolve().parents[1] / "stacks"


def dump(manifest: dict[str, Any]) -> str:
    return yaml.safe_dump(manifest, sort_keys=True, default_flow_style=False, width=120)


def render(stack: str, stacks_dir: Path, *, validate: bool = True) -> list[tuple[str, str]]:
    """[(file name, YAML text)] for ``stack``; raises ConfigError / IronLBError."""
    from ironlb.components.base import InvalidConfigError
    from ironlb.components.offline import evaluate_stack, file_name, load_stack, manifests

    try:
        loaded = load_stack(stack, stacks_dir)
        found = manifests(evaluate_stack(loaded))
    except FileNotFoundError as exc:
        raise IronLBError(str(exc)) from None
    except InvalidConfigError as exc:
        raise ConfigError(exc.issues) from None
    if validate:
        from ironlb.components.manifest_check import check_all

        bad = check_all(found)
        if bad:
            raise IronLBError("rendered manifests fail schema validation:\n  " + "\n  ".join(bad))
    return [(file_name(i, m), dump(m)) for i, m in enumerate(found)]


def write(files: list[tuple[str, str]], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for old in out.iterdir():
        if old.is_file() and RENDERED.match(old.name):
            old.unlink()
    for name, text in files:
        (out / name).write_text(text)


def run(args: argparse.Namespace) -> int:
    files = render(
        args.stack,
        Path(args.stacks_dir) if args.stacks_dir else default_stacks_dir(),
        validate=not args.skip_validation,
    )
    write(files, Path(args.out))
    print(f"rendered {len(files)} manifests for stack {args.stack} into {args.out}", file=sys.stderr)
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "render",
        help="write the Kubernetes manifests a stack would create (offline, secrets redacted)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--stack", required=True, help="stack name (stacks/Pulumi.<stack>.yaml)")
    parser.add_argument("--out", required=True, help="directory to write one YAML file per object into")
    parser.add_argument("--stacks-dir", help="directory holding the stack files (default: ./stacks)")
    parser.add_argument(
        "--skip-validation",
        action="store_true",
        help="do not check manifests against the Kubernetes and CRD schemas",
    )
    parser.set_defaults(func=run)
