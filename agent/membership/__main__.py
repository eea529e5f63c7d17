"""Run one membership member on its own: ``python -m ironlb.agent.membership``.

For the lab, the benchmark and debugging a deployment's network (does UDP reach every
node? is the key the same everywhere?).  Prints one JSON line per change of the live set,
``{"t": <CLOCK_MONOTONIC seconds>, "node": ..., "live": [...]}`` (the monotonic clock is
shared by all processes on a host, so a test can compare it with the time it killed a
peer), and the full status as a last line on exit.  SIGTERM/SIGINT stop gracefully (LEAVE).

    python -m ironlb.agent.membership --node n1 --key-file /etc/ironlb/key [--next-key-file FILE] \\
        --peer n1=10.0.0.1 --peer n2=10.0.0.2 --peer n3=fd00::3 [--interval 0.025]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time

from ironlb.agent.membership.node import Membership
from ironlb.agent.membership.settings import MembershipSettings, load_keys
from ironlb.errors import ConfigError


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m ironlb.agent.membership", description=__doc__.split("\n")[0])
    p.add_argument("--node", required=True, help="this node's name")
    p.add_argument("--key-file", required=True, help="file holding the shared key (>= 32 bytes)")
    p.add_argument("--next-key-file", help="during a key rotation: the other key, accepted too")
    p.add_argument("--peer", action="append", default=[], metavar="NAME=ADDR", help="a member (repeat)")
    p.add_argument("--bind", default="0.0.0.0", help="address to bind (default: all, IPv4 and IPv6)")
    p.add_argument("--interval", type=float, default=None, help="fast-lane heartbeat period, seconds")
    p.add_argument("--port", type=int, default=None, help="UDP port")
    return p.parse_args(argv)


async def _run(ns: argparse.Namespace) -> int:
    overrides = {k: v for k, v in (("interval", ns.interval), ("port", ns.port)) if v is not None}
    settings = MembershipSettings(**overrides)
    peers: dict[str, str] = {}
    for item in ns.peer:
        name, sep, addr = item.partition("=")
        if not sep or not name or not addr:
            print(f'--peer "{item}": must be NAME=ADDR', file=sys.stderr)
            return 2
        peers[name] = addr
    member = Membership(ns.node, load_keys(ns.key_file, ns.next_key_file), settings, bind_host=ns.bind)
    member.update_peers(peers)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async def report() -> None:
        async for live in member.changes():
            line = {"t": time.monotonic(), "node": ns.node, "live": sorted(live)}
            print(json.dumps(line), flush=True)

    await member.start()
    reporter = asyncio.create_task(report())
    try:
        await stop.wait()
    finally:
        await member.stop(graceful=True)
        await reporter
        print(json.dumps({"status": member.status()}), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        return asyncio.run(_run(_args(argv)))
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
