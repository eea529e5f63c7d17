"""Entry point of the ``ironlb`` console command.

Subcommands are discovered: every module in ``ironlb_cli`` that defines
``register(subparsers)`` adds one (or more) subcommands, setting ``func`` on its parser.
User errors exit 1 with the message on stderr, never a traceback; ``--debug`` shows it.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

import ironlb_cli
from ironlb.errors import ConfigError, IronLBError

#: Top-level modules that only the ``pulumi`` extra installs (pyproject.toml; the agent image has
#: none of them), plus our own packages that need them: a command that reaches one without the
#: extra says how to get it (tests/test_packaging.py keeps this set and the extra in step).
PULUMI_SIDE = frozenset(
    {"pulumi", "pulumi_kubernetes", "grpc", "google"}  # the SDKs (google: protobuf)
    | {"cryptography", "kubernetes_validate", "jsonschema", "referencing"}  # stack secrets, render checks
    | {"ironlb.components"}  # ours, absent from the agent image
)


def describe(exc: Exception, command: str | None) -> str:
    """The one-line message for an unexpected error (a missing Pulumi side says what to install)."""
    name = exc.name if isinstance(exc, ModuleNotFoundError) and exc.name else ""
    missing = next((m for m in sorted(PULUMI_SIDE) if name == m or name.startswith(f"{m}.")), "")
    if missing:
        return (
            f"`ironlb {command}` needs IronLB's Pulumi side (module {missing!r} is not installed): "
            "pip install 'ironlb[pulumi]'"
        )
    return f"{type(exc).__name__}: {exc} (run with --debug for details)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ironlb",
        description="IronLB: a bare-metal LoadBalancer for Kubernetes, Pulumi-native.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks for unexpected errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(ironlb_cli.__path__), key=lambda m: m.name):
        if info.name in ("main", "__main__"):
            continue
        module = importlib.import_module(f"ironlb_cli.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print("invalid configuration:", file=sys.stderr)
        for issue in exc.issues:
            print(f"  - {issue}", file=sys.stderr)
        return 1
    except IronLBError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the command line's last resort: one line, no traceback (--debug shows it)
        if args.debug:
            raise
        print(f"error: {describe(exc, args.command)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
