"""Watch which node serves a VIP, from the client: prints ``ready`` once the given node
answers, then connects in a tight loop (50 ms connect timeout) until another node answers
and prints ``moved <node> <CLOCK_MONOTONIC seconds>``.  Used by bench/l2_failover.py.

Run: ``python -m lab.tcpwatch IP PORT OLD_NODE [TIMEOUT]`` inside the client namespace.
"""

from __future__ import annotations

import socket
import sys
import time

from lab.errors import WaitTimeout
from lab.waiting import wait_for


def ask(ip: str, port: int, timeout: float) -> str | None:
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect((ip, port))
            return sock.recv(64).decode(errors="replace").strip() or None
        except OSError:
            return None


def main() -> int:
    ip, port, old = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    limit = float(sys.argv[4]) if len(sys.argv) > 4 else 30.0
    deadline = time.monotonic() + limit
    try:
        wait_for(
            f"{old} to answer",
            lambda: ask(ip, port, 0.5),
            lambda who: who == old,
            timeout=limit,
            interval=0.01,
        )
    except WaitTimeout:
        print("never-ready", flush=True)
        return 1
    print("ready", flush=True)
    try:
        who = wait_for(
            "another node to answer",
            lambda: ask(ip, port, 0.05),
            lambda who: who is not None and who != old,
            timeout=max(0.0, deadline - time.monotonic()),
            interval=0,
        )
    except WaitTimeout:
        print("timeout", flush=True)
        return 1
    print(f"moved {who} {time.monotonic():.6f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
