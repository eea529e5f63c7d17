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
    except Exception as exc:
        if args.debug:
            raise
        print(f"error: {type(exc).__name__}: {exc} (run with --debug for details)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
