"""``ironlb-agent``: the node agent's command line.

Parses flags into :class:`agent.settings.Settings`, builds the source, membership and
shells, and runs :class:`agent.daemon.Daemon` until SIGTERM/SIGINT, which withdraws every
announcement before exiting (exit 0).  Bad flags or an unreadable configuration exit 2
with one line per problem, never a traceback.

Example (standalone)::

    ironlb-agent --source files --dir /etc/ironlb --node node1 --membership-key /etc/ironlb/key
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from agent.settings import DaemonSettings, L2Settings, MembershipOptions, Settings, SourceSettings
from ironlb.errors import ConfigError


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: must be comma-separated seconds, e.g. 0,0.25,0.5,1,2,4"
        ) from None


def parser() -> argparse.ArgumentParser:
    d_src, d_l2, d_mem = SourceSettings(), L2Settings(), MembershipOptions()
    p = argparse.ArgumentParser(
        prog="ironlb-agent",
        description="IronLB node agent: answers ARP/NDP (and BGP) for LoadBalancer addresses this node owns.",
    )
    p.add_argument(
        "--node", default=os.environ.get("NODE_NAME", ""), help="this node's name (default: $NODE_NAME)"
    )
    p.add_argument(
        "--source", choices=("files", "kube"), default=d_src.kind, help="where the cluster view comes from"
    )
    p.add_argument("--dir", type=Path, help="manifest directory for --source files")
    p.add_argument(
        "--poll-interval",
        type=float,
        default=d_src.poll_interval,
        help="seconds between checks of --dir (default %(default)s)",
    )
    p.add_argument(
        "--interfaces",
        default="",
        help="comma-separated interfaces to answer on when an "
        "L2Advertisement names none (default: by route lookup)",
    )
    p.add_argument(
        "--garp-schedule",
        type=_floats,
        default=d_l2.garp_schedule,
        help="seconds after takeover to send gratuitous ARP/NA (default 0,0.25,0.5,1,2,4)",
    )
    p.add_argument(
        "--no-probe", action="store_true", help="do not probe for conflicting hosts before announcing"
    )
    p.add_argument(
        "--conflict-retry",
        type=float,
        default=d_l2.conflict_retry,
        help="seconds before a conflicting address is probed again (default %(default)s)",
    )
    p.add_argument(
        "--membership",
        choices=("gossip", "static"),
        default=d_mem.mode,
        help="gossip: authenticated UDP heartbeats; static: assume every node's agent is alive",
    )
    p.add_argument(
        "--membership-key",
        type=Path,
        default=os.environ.get("IRONLB_MEMBERSHIP_KEY") or None,
        help="file holding the shared membership HMAC key (>= 32 bytes)",
    )
    p.add_argument("--membership-port", type=int, default=d_mem.port, help="UDP port (default %(default)s)")
    p.add_argument(
        "--membership-interval",
        type=float,
        default=d_mem.interval,
        help="heartbeat period, seconds (default %(default)s)",
    )
    p.add_argument(
        "--status-file", type=Path, help="write the agent's status here as JSON after every change"
    )
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    return p


def settings_from_args(args: argparse.Namespace) -> Settings:
    return Settings(
        node=args.node,
        source=SourceSettings(kind=args.source, directory=args.dir, poll_interval=args.poll_interval),
        l2=L2Settings(
            interfaces=tuple(i.strip() for i in args.interfaces.split(",") if i.strip()),
            garp_schedule=args.garp_schedule,
            probe=not args.no_probe,
            conflict_retry=args.conflict_retry,
        ),
        daemon=DaemonSettings(status_file=args.status_file),
        membership=MembershipOptions(
            mode=args.membership,
            key_file=args.membership_key,
            port=args.membership_port,
            interval=args.membership_interval,
        ),
    )


async def run(settings: Settings) -> None:
    from agent.daemon import Daemon, build_membership, build_shells
    from agent.observability import attach as attach_observability
    from agent.sources import make_source

    source = make_source(settings)
    membership = build_membership(settings)
    holder: list[Daemon] = []
    shells = build_shells(
        settings, peer_addresses=lambda: holder[0].peer_addresses() if holder else frozenset()
    )
    daemon = Daemon(settings, source, shells, membership)
    holder.append(daemon)
    attach_observability(daemon, source)  # metrics, /status, Kubernetes hooks (IRONLB_HTTP_ADDR)
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    try:
        await daemon.run()
    except asyncio.CancelledError:
        logging.getLogger("agent").info("stopped; every announcement withdrawn")


#: Cyclic-GC thresholds for the agent process. The agent keeps one large, long-lived
#: cluster view (10k services: ~10^6 objects) and replans over it; with CPython's default
#: first-generation threshold (700) the collector rescans it several times per plan, which
#: doubled plan time at 10k services (bench/reconcile.py). Reference counting still frees
#: everything acyclic at once; this only makes cycle collection rarer.
GC_THRESHOLDS = (50_000, 50, 100)


def configure_gc() -> None:
    """Apply :data:`GC_THRESHOLDS` (called once at agent start; benchmarks call it too)."""
    gc.set_threshold(*GC_THRESHOLDS)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    configure_gc()
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        settings = settings_from_args(args)
        asyncio.run(run(settings))
    except ConfigError as exc:
        print(f"ironlb-agent: invalid configuration:\n{exc}", file=sys.stderr)
        return 2
    except PermissionError as exc:
        print(
            f"ironlb-agent: {exc}; the agent needs CAP_NET_RAW and CAP_NET_ADMIN (run as root "
            "or grant the capabilities)",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
