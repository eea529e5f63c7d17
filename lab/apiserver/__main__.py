"""``python -m lab.apiserver``: run the lab API server until SIGTERM (see the package docstring)."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from pathlib import Path

from lab.apiserver.server import serve, split_host_port


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m lab.apiserver",
        description="Kubernetes API stand-in that enforces the API server's rules and reports violations.",
    )
    parser.add_argument(
        "--listen",
        action="append",
        required=True,
        metavar="HOST:PORT",
        help="HTTPS listener for pods (repeatable; IPv6 as [ADDR]:PORT)",
    )
    parser.add_argument("--socket", required=True, type=Path, help="Unix socket for the test process (admin)")
    parser.add_argument("--pki-dir", required=True, type=Path, help="where ca.crt, server.crt and keys live")
    parser.add_argument(
        "--history", type=int, default=10000, help="watch events kept for resourceVersion replays"
    )
    args = parser.parse_args(argv)
    try:
        listen = [split_host_port(text) for text in args.listen]
    except ValueError as exc:
        parser.error(str(exc))
    asyncio.run(serve(listen, args.socket, args.pki_dir, args.history))


if __name__ == "__main__":
    main()
