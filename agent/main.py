"""``ironlb-agent``: the speaker (one per node) -- settings, wiring, and a clean exit.

Settings come from one file, ``$IRONLB_CONFIG`` (or ``--config``; the NodeAgent component
mounts its ConfigMap there), checked by :mod:`ironlb.agentconfig`; command-line flags, for
standalone use, override single keys of it and are checked with it.  The node's name is
``--node`` or ``$NODE_NAME`` (the downward API).  Then the source, membership and shells
are built (:func:`build_shells`, :func:`build_membership`: the only place that names the
concrete parts) and :class:`ironlb.agent.daemon.Daemon` runs until SIGTERM/SIGINT, which withdraws
every announcement before exiting (exit 0).  A bad settings file or flag exits 2 with one
line per problem (key, value, what is allowed), never a traceback.

Examples::

    ironlb-agent                          # in a pod: everything from $IRONLB_CONFIG
    ironlb-agent --source files --dir /etc/ironlb/manifests --node node1 \\
        --membership-key /etc/ironlb/key  # standalone, no Kubernetes
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ironlb import agentconfig
from ironlb.agent import endpoints
from ironlb.agent.logs import fatal, setup_logging
from ironlb.agent.metrics import SpeakerMetrics
from ironlb.agent.observability import StatusBoard
from ironlb.agent.settings import Settings
from ironlb.errors import ConfigError, IronLBError, Issue

if TYPE_CHECKING:
    from ironlb.agent.daemon import Daemon
    from ironlb.agent.interfaces import Shell
    from ironlb.agent.membership import Membership

log = logging.getLogger("agent")
PROGRAM = "ironlb-agent"
#: Said when the kernel refuses a raw socket or a netlink change.
NEEDS = "the agent needs CAP_NET_RAW and CAP_NET_ADMIN (run as root or grant the capabilities)"


def _floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: must be comma-separated seconds, e.g. 0,0.25,0.5,1,2,4"
        ) from None


#: flag destination -> settings key it overrides (dotted camelCase, as in the file).
FLAG_KEYS = {
    "source": "source.kind",
    "dir": "source.directory",
    "poll_interval": "source.pollInterval",
    "interfaces": "l2.interfaces",
    "garp_schedule": "l2.garpSchedule",
    "probe": "l2.probe",
    "conflict_retry": "l2.conflictRetry",
    "membership": "membership.mode",
    "membership_key": "membership.keyFile",
    "membership_next_key": "membership.nextKeyFile",
    "membership_port": "membership.port",
    "membership_interval": "membership.interval",
    "status_file": "daemon.statusFile",
    "log_level": "logLevel",
    "log_format": "logFormat",
    "metrics_address": "metrics.address",
    "metrics_port": "metrics.port",
    "health_address": "health.address",
    "health_port": "health.port",
    "status": "status.enabled",
    "status_address": "status.address",
    "status_port": "status.port",
    "kubeconfig": "kubernetes.kubeconfig",
    "run_dir": "runDir",
    "secrets_dir": "secretsDir",
}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROGRAM,
        description="IronLB speaker: answers ARP/NDP and speaks BGP for the LoadBalancer addresses "
        "this node owns. Settings come from $IRONLB_CONFIG; each flag overrides one key of it.",
        argument_default=None,
    )
    p.add_argument("--config", type=Path, help="settings file (default: $IRONLB_CONFIG; none: defaults)")
    p.add_argument("--node", help="this node's name (default: $NODE_NAME)")
    p.add_argument("--source", choices=("files", "kube"), help="where the cluster view comes from")
    p.add_argument("--dir", help="manifest directory for --source files")
    p.add_argument("--poll-interval", type=float, help="seconds between checks of --dir")
    p.add_argument(
        "--interfaces",
        type=lambda t: [i.strip() for i in t.split(",") if i.strip()],
        help="comma-separated interfaces to answer on when an L2Advertisement names none",
    )
    p.add_argument("--garp-schedule", type=_floats, help="seconds after takeover to send gratuitous ARP/NA")
    p.add_argument("--no-probe", dest="probe", action="store_const", const=False, help="do not probe first")
    p.add_argument(
        "--conflict-retry", type=float, help="seconds before a conflicting address is probed again"
    )
    p.add_argument("--membership", choices=("gossip", "static"), help="gossip, or static (all alive)")
    p.add_argument("--membership-key", help="file holding the shared membership key (>= 32 bytes)")
    p.add_argument("--membership-next-key", help="during a key rotation: the next key's file")
    p.add_argument("--membership-port", type=int, help="membership UDP port")
    p.add_argument("--membership-interval", type=float, help="heartbeat period, seconds")
    p.add_argument("--status-file", help="also write the agent's status here as JSON")
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"))
    p.add_argument("--log-format", choices=("json", "text"))
    add_http_flags(p)
    p.add_argument("--kubeconfig", help="standalone --source kube: a kubeconfig file")
    p.add_argument("--run-dir", help="memory-backed scratch directory (BGP speaker files)")
    p.add_argument("--secrets-dir", help="where BGP password Secrets are mounted")
    return p


def add_http_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--metrics-address", help="'podIP' or an IP for /metrics")
    p.add_argument("--metrics-port", type=int, help="port for /metrics (0: off)")
    p.add_argument("--health-address", help="'podIP' or an IP for /healthz and /readyz")
    p.add_argument("--health-port", type=int, help="port for /healthz and /readyz (0: off)")
    p.add_argument("--status", action="store_const", const=True, help="serve /status (off by default)")
    p.add_argument("--status-address", help="address for /status (default 127.0.0.1)")
    p.add_argument("--status-port", type=int, help="port for /status")


def overrides(args: argparse.Namespace, keys: Mapping[str, str] = FLAG_KEYS) -> dict[str, Any]:
    """The settings keys the given flags override (flags not given override nothing)."""
    return {key: getattr(args, dest) for dest, key in keys.items() if getattr(args, dest, None) is not None}


def load_config(
    args: argparse.Namespace, env: Mapping[str, str], keys: Mapping[str, str] = FLAG_KEYS
) -> tuple[agentconfig.AgentConfig, str]:
    """The settings file (if any) with the flags applied, checked; and where it came from."""
    path = args.config or (Path(env["IRONLB_CONFIG"]) if env.get("IRONLB_CONFIG") else None)
    doc = agentconfig.read(path) if path is not None else None
    origin = str(path) if path is not None else "flags"
    return agentconfig.merged(doc, overrides(args, keys), origin), origin


def settings_from_args(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    config, origin = load_config(args, env)
    return Settings(node=args.node or env.get("NODE_NAME", ""), config=config, origin=origin)


def build_shells(settings: Settings) -> list[Shell]:
    """The shells this agent runs, in apply order: layer 2, then BGP."""
    from ironlb.agent.bgp.shell import BGPShell
    from ironlb.agent.l2.shell import L2Shell

    return [L2Shell(settings.node, settings.l2), BGPShell(settings.node, settings.bgp)]


def build_membership(settings: Settings) -> Membership | None:
    """Gossip membership (:mod:`ironlb.agent.membership`), or None for ``static`` (every agent alive)."""
    if settings.membership.mode == "static":
        return None
    from ironlb.agent.membership import Membership, MembershipSettings, load_keys

    assert settings.membership.key_file is not None  # Settings checked it
    opts = settings.membership
    ms = MembershipSettings(
        interval=opts.interval,
        dead_after=opts.dead_after,
        suspect_after=min(2, opts.dead_after),
        port=opts.port,
    )
    # During a key rotation the next key is accepted too (docs/decisions/0030-membership.md).
    keys = load_keys(str(opts.key_file), str(opts.next_key_file) if opts.next_key_file else None)
    return Membership(settings.node, keys, ms)


async def run(settings: Settings, env: Mapping[str, str] | None = None) -> None:
    from ironlb.agent.daemon import Daemon
    from ironlb.agent.sources import make_source

    source = make_source(settings)
    daemon = Daemon(settings, source, build_shells(settings), build_membership(settings))
    board = observe(daemon)
    source.attach(board)
    servers = endpoints.start(board, settings.config, os.environ if env is None else env)
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    try:
        await daemon.run()
    except asyncio.CancelledError:
        log.info("stopped; every announcement withdrawn")
    finally:
        endpoints.stop(servers)


def observe(daemon: Daemon) -> StatusBoard:
    """The status board behind /healthz, /readyz, /status and /metrics, ticked by the daemon."""
    board = StatusBoard(daemon.settings.node, SpeakerMetrics())
    board.shells = {type(s).__name__: s for s in daemon.shells}
    board.membership = daemon.membership
    board.live_checks.append(daemon.stuck)
    board.ready_checks.append(daemon.not_ready)
    daemon.hooks.append(lambda plan, view: board.record_plan(plan, daemon.timing))
    daemon.hooks.append(lambda plan, view: board.record_rejected(view.rejected))
    daemon.tickers.append(board.tick)
    return board


#: Cyclic-GC thresholds for the agent process. The agent keeps one large, long-lived
#: cluster view (10k services: ~10^6 objects) and replans over it; with CPython's default
#: first-generation threshold (700) the collector rescans it several times per plan, which
#: doubled plan time at 10k services (bench/reconcile.py). Reference counting still frees
#: everything acyclic at once; this only makes cycle collection rarer.
GC_THRESHOLDS = (50_000, 50, 100)


def configure_gc() -> None:
    """Apply :data:`GC_THRESHOLDS` (called once at agent start; benchmarks call it too)."""
    gc.set_threshold(*GC_THRESHOLDS)


def prepare_run_dir(path: Path) -> None:
    """Create the scratch directory (0700) if the pod's emptyDir or the host lacks it."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            [Issue(agentconfig.KIND, str(path), "runDir", str(path), f"cannot be created ({exc.strerror})")]
        ) from None


def exit_code(program: str, body: Callable[[], None], *, permission_hint: str = "") -> int:
    """Run ``body``; what it raises becomes one line and an exit code, never a traceback.

    2: the operator must fix something (bad settings, a port in use or an address not on this
    host, missing permissions: ``permission_hint`` says which); 1: another IronLB error (e.g.
    no usable Kubernetes credentials); 0: stopped, by a signal or Ctrl-C.  Both programs'
    ``main`` end here.
    """
    try:
        body()
    except ConfigError as exc:
        fatal(program, f"invalid configuration:\n{exc}")
        return 2
    except PermissionError as exc:
        fatal(program, f"{exc}; {permission_hint}" if permission_hint else str(exc))
        return 2
    except endpoints.EndpointError as exc:
        fatal(program, str(exc))
        return 2
    except IronLBError as exc:
        fatal(program, str(exc))
        return 1
    except KeyboardInterrupt:
        pass
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    configure_gc()

    def body() -> None:
        settings = settings_from_args(args)
        setup_logging(settings.config.log_level, settings.config.log_format)
        prepare_run_dir(settings.config.run_dir)
        asyncio.run(run(settings))

    return exit_code(PROGRAM, body, permission_hint=NEEDS)


if __name__ == "__main__":
    sys.exit(main())
