"""kmock as a stand-alone Kubernetes API server for lab tests (``python -m lab.kmock_server``).

The end-to-end lab test runs real ``ironlb-agent --source kube`` processes inside node
namespaces; they need an API server they can reach over the lab LAN.  This driver runs
kmock's in-memory Kubernetes emulator (the same one the in-process kmock tests use) in
the router namespace:

- **TCP** on ``--host``/``--port`` (e.g. ``10.77.0.1:6443``): what the agents talk to;
- **a Unix socket** ``--socket`` in the lab's per-run directory: what the test process
  (root namespace) talks to.  Filesystem sockets are not bound to a network namespace, so
  the test needs no ``ip netns exec`` per request and sends no traffic outside the lab.

Both listeners serve the same handler (one object store).  The kmock gaps are worked
around as here (and reused by ``tests/kube_support.py``): every kind the agent watches
is declared, and PUT with a resourceVersion compare-and-swap is installed for Leases (the
election needs it).  kmock cannot even parse ``/api/v1/namespaces`` (a 500 before any
reaction runs), so this driver answers that path itself: a fixed list of Namespaces
(``--namespace``, no labels) and a watch that stays open and silent.  The socket file
appears only once both listeners are up, so waiting for it is the readiness check.
SIGTERM/SIGINT stop it cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import itertools
import os
import signal
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp.web
import kmock as km

from agent.kube.client import AGENT_KINDS, LEASES, Kind


def res(kind: Kind) -> km.resource:
    return km.resource(kind.group, kind.version, kind.plural)


def declare_all(mock: Any) -> None:
    """Make every kind the agent watches listable (empty) in kmock."""
    for kind in [*AGENT_KINDS.values(), LEASES]:
        group = f"{kind.group}/" if kind.group else ""
        mock.resources[f"{group}{kind.version}/{kind.plural}"] = {"namespaced": kind.namespaced}
    mock.resources["v1/events"] = {"namespaced": True}


def _status(code: int, reason: str, message: str) -> Any:
    body = {
        "apiVersion": "v1",
        "kind": "Status",
        "status": "Failure",
        "code": code,
        "reason": reason,
        "message": message,
        "metadata": {},
    }
    return km.Response(status=code, payload=body)  # type: ignore[attr-defined]  # public, not in __all__


def install_put_with_cas(mock: Any, kind: Kind = LEASES) -> None:
    counter = itertools.count(1)
    resource = res(kind)

    def put(request: km.Request) -> Any:
        key = (resource, request.namespace, request.name)
        if key not in mock.objects or mock.objects[key].deleted:
            return _status(404, "NotFound", f"{kind.plural} {request.name} not found")
        current = mock.objects[key].raw
        sent = (request.data.get("metadata") or {}).get("resourceVersion")
        have = (current.get("metadata") or {}).get("resourceVersion")
        if sent != have:
            return _status(409, "Conflict", f"resourceVersion {sent} is stale (now {have})")
        new = copy.deepcopy(request.data)
        new.setdefault("metadata", {})["resourceVersion"] = str(next(counter))
        mock.objects[key] = new
        return new

    mock["put", resource] << put


NAMESPACES_PATH = "/api/v1/namespaces"


def namespaces_handler(mock: Any, names: Sequence[str], stop: asyncio.Event) -> Any:
    """kmock's handler, with ``/api/v1/namespaces`` (list and watch) answered here."""
    items = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}} for n in names]

    async def handle(request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        if request.path != NAMESPACES_PATH:
            response: aiohttp.web.StreamResponse = await mock(request)
            return response
        if request.query.get("watch") not in ("true", "1"):
            body = {"apiVersion": "v1", "kind": "NamespaceList", "metadata": {"resourceVersion": "1"}}
            return aiohttp.web.json_response({**body, "items": items})
        stream = aiohttp.web.StreamResponse(headers={"Content-Type": "application/json"})
        await stream.prepare(request)
        await stop.wait()  # a watch on a list that never changes
        return stream

    return handle


async def serve(host: str, port: int, socket_path: Path, namespaces: Sequence[str]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with km.KubernetesEmulator() as mock:
        declare_all(mock)
        install_put_with_cas(mock)
        runner = aiohttp.web.ServerRunner(
            aiohttp.web.Server(namespaces_handler(mock, namespaces, stop)), shutdown_timeout=1
        )
        await runner.setup()
        await aiohttp.web.TCPSite(runner, host, port).start()
        tmp = socket_path.with_name(f".{socket_path.name}.tmp")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        site = aiohttp.web.UnixSite(runner, str(tmp))
        await site.start()
        os.replace(tmp, socket_path)  # ready: both listeners accept
        print(f"kmock serving on http://{host}:{port} and unix:{socket_path}", flush=True)
        try:
            await stop.wait()
        finally:
            await runner.cleanup()
            with contextlib.suppress(FileNotFoundError):
                socket_path.unlink()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lab.kmock_server", description=__doc__)
    parser.add_argument("--host", required=True, help="address to listen on (inside the namespace)")
    parser.add_argument("--port", type=int, default=6443)
    parser.add_argument("--socket", required=True, type=Path, help="Unix socket for the test process")
    parser.add_argument("--namespace", action="append", default=[], help="a Namespace to list (repeatable)")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.host, args.port, args.socket, args.namespace or ["default"]))


if __name__ == "__main__":
    main()
