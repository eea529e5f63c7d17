"""``ironlb demo``: the entry point of the lab demo, which lives in :mod:`lab.demo`.

The demo deploys the rendered stack unmodified into the cluster-mode network-namespace lab
and prints who announces each Service and whether a client reaches it (see
:mod:`lab.demo`).  ``lab/`` is a part of the source checkout that no wheel or image ships
(pyproject.toml), so this module imports it only when the command runs, and only from the
checkout this package sits in; anywhere else, and when not root on Linux, the command
fails with one line saying what it needs.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from ironlb.errors import IronLBError

CHECKOUT = Path(__file__).resolve().parents[1]


def register(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="deploy a stack unmodified into a network-namespace lab and show what it announces (root)",
    )
    p.add_argument(
        "--once", action="store_true", help="print the table once everything is announced, then tear down"
    )
    p.add_argument("--stack", default="dev", help="stack to render and deploy (default dev; prod works too)")
    p.add_argument(
        "--timeout", type=float, default=90.0, help="seconds to wait for every announcement (default 90)"
    )
    p.add_argument(
        "--interval", type=float, default=1.0, help="seconds between observations when watching (default 1)"
    )
    p.add_argument("--keep-logs", metavar="DIR", help="copy the lab's logs to DIR before teardown")
    p.set_defaults(func=run)


def use_checkout_lab(root: Path = CHECKOUT) -> None:
    """Make ``root``'s ``lab`` package importable, or fail with one line if there is none."""
    if not (root / "lab" / "demo.py").is_file():
        raise IronLBError(
            "ironlb demo runs from a source checkout of IronLB (the lab/ package ships in no wheel "
            "or image): clone the repository, then ./scripts/setup && .venv/bin/ironlb demo --once"
        )
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))


def run(args: argparse.Namespace) -> int:
    if sys.platform != "linux" or os.geteuid() != 0:
        raise IronLBError("ironlb demo builds network namespaces: run it as root on Linux (sudo)")
    use_checkout_lab()
    from lab import demo

    if Path(demo.__file__).resolve().parents[1] != CHECKOUT:
        raise IronLBError(f"ironlb demo: the lab package found ({demo.__file__}) is not this checkout's")
    keep = Path(args.keep_logs) if args.keep_logs else None
    return demo.run(args.stack, once=args.once, timeout=args.timeout, interval=args.interval, keep_logs=keep)
