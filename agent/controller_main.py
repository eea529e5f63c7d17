"""``ironlb-controller``: the IPAM controller (a Deployment of two Lease-elected replicas).

It reads the same settings file as the speaker (``$IRONLB_CONFIG``; ``namespace``,
``logLevel``/``logFormat``, ``metrics``, ``health``, ``kubernetes``), connects with the
pod's service account, and runs :class:`ironlb.agent.kube.runtime.ControllerRuntime` until
SIGTERM/SIGINT, which hands the Lease back so the standby takes over at once.  Its
identity in the Lease is ``$POD_NAME`` (downward API), else the host name.  It needs no
capability, no host network and no writable file: only the API server.

Bad settings exit 2 with one line per problem, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from ironlb.agent import endpoints
from ironlb.agent.logs import setup_logging
from ironlb.agent.main import FLAG_KEYS as SPEAKER_FLAGS
from ironlb.agent.main import add_http_flags, exit_code, load_config
from ironlb.agent.observability import StatusBoard
from ironlb.agentconfig import AgentConfig

log = logging.getLogger("ironlb.agent.controller")
PROGRAM = "ironlb-controller"

#: Seconds between health ticks.
TICK = 1.0
#: The speaker's flags that mean the same for the controller (same settings keys).
SHARED_FLAGS = frozenset(
    {
        "log_level",
        "log_format",
        "kubeconfig",
        *(f"{x}_{y}" for x in ("metrics", "health", "status") for y in ("address", "port")),
        "status",
    }
)

FLAG_KEYS = {
    **{dest: key for dest, key in SPEAKER_FLAGS.items() if dest in SHARED_FLAGS},
    "namespace": "namespace",
}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROGRAM,
        description="IronLB IPAM controller: assigns addresses to LoadBalancer Services and publishes "
        "who announces them. Settings come from $IRONLB_CONFIG; each flag overrides one key of it.",
    )
    p.add_argument("--config", type=Path, help="settings file (default: $IRONLB_CONFIG; none: defaults)")
    p.add_argument("--identity", help="name in the Lease (default: $POD_NAME, else the host name)")
    p.add_argument("--namespace", help="where the Lease lives (default: the settings' namespace)")
    p.add_argument("--kubeconfig", help="standalone: a kubeconfig file (default: in-cluster, $KUBECONFIG)")
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"))
    p.add_argument("--log-format", choices=("json", "text"))
    add_http_flags(p)
    return p


async def run(config: AgentConfig, identity: str, env: Mapping[str, str]) -> None:
    from ironlb.agent.kube.client import KubeClient
    from ironlb.agent.kube.runtime import ControllerRuntime

    kube = config.kubernetes
    client = KubeClient.connect(kubeconfig=str(kube.kubeconfig) if kube.kubeconfig else None)
    runtime = ControllerRuntime(client, identity, config)
    board = StatusBoard(identity, runtime.metrics)
    board.ready = True  # readiness comes from the caches (below), not from a plan
    board.ready_checks.append(runtime.not_ready)
    board.extra_fn = runtime.status
    runtime.metrics.api_requests.sources.append(lambda: client.calls)
    servers = endpoints.start(board, config, env)
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    ticker = asyncio.create_task(_tick(board), name="tick")
    try:
        await runtime.run()
    except asyncio.CancelledError:
        log.info("stopped; the Lease is handed back")
    finally:
        ticker.cancel()
        endpoints.stop(servers)
        await client.close()


async def _tick(board: StatusBoard) -> None:
    while True:
        board.tick()
        await asyncio.sleep(TICK)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    env = os.environ

    def body() -> None:
        config, _ = load_config(args, env, FLAG_KEYS)
        setup_logging(config.log_level, config.log_format)
        identity = args.identity or env.get("POD_NAME") or socket.gethostname()
        asyncio.run(run(config, identity, env))

    return exit_code(PROGRAM, body)


if __name__ == "__main__":
    sys.exit(main())
