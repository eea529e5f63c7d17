"""The agent's BGP shell alone, run inside a lab node's namespace and driven from the test.

Shell-level lab tests and ``bench/bgp.py`` hand plans straight to a
:class:`~ironlb.agent.bgp.shell.BGPShell`.  The shell (and the BIRD it starts) must live in the
node's network namespace, as in the real agent, so it runs in its own process there::

    python -m lab.bgpnode SOCKET --node node1 --run-dir DIR --secrets-dir DIR

and takes JSON requests, one per line, on the Unix socket ``SOCKET`` (in the lab's work
directory, visible from every namespace): ``{"op": "apply", "plan": ...}`` ->
``{"ok": true, "t0": <monotonic at apply>, "t1": ...}`` (or ``"error"``: the shell's
message), ``{"op": "status"}`` -> the shell's status, ``{"op": "close"}`` -> withdraws
and exits.  CLOCK_MONOTONIC is system-wide, so ``t0`` compares with the test's clock.

:class:`NodeShell` is the test side.  Nothing here is product code: the product runs the
shell inside ``ironlb-agent``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

from ironlb.agent.announcements import BFDSettings, BGPRoute, BGPSession, Plan
from lab.errors import LabError
from lab.netns import Lab
from lab.waiting import eventually


def plan_to_json(plan: Plan) -> dict[str, Any]:
    return {
        "node": plan.node,
        "bgp": [dataclasses.asdict(r) for r in plan.bgp],
        "bgp_sessions": [dataclasses.asdict(s) for s in plan.bgp_sessions],
    }


def _tuples(data: dict[str, Any]) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}


def plan_from_json(data: dict[str, Any]) -> Plan:
    sessions = []
    for raw in data["bgp_sessions"]:
        fields = _tuples(raw)
        if fields.get("bfd") is not None:
            fields["bfd"] = BFDSettings(**fields["bfd"])
        sessions.append(BGPSession(**fields))
    routes = tuple(BGPRoute(**_tuples(r)) for r in data["bgp"])
    return Plan(node=data["node"], bgp=routes, bgp_sessions=tuple(sessions))


async def _serve(args: argparse.Namespace) -> None:
    from ironlb.agent.bgp.settings import BGPSettings
    from ironlb.agent.bgp.shell import BGPShell
    from ironlb.agent.bgp.speaker import SpeakerError

    settings = BGPSettings(run_dir=args.run_dir, secrets_dir=args.secrets_dir, listen_port=args.listen_port)
    shell = BGPShell(args.node, settings)
    done = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            req = json.loads(line)
            plan = plan_from_json(req["plan"]) if req["op"] == "apply" else None
            reply: dict[str, Any] = {"ok": True}
            t0 = time.monotonic()  # the plan exists: from here on it is the agent's own work
            try:
                if plan is not None:
                    await shell.apply(plan)
                elif req["op"] == "status":
                    reply["status"] = shell.status()
                elif req["op"] == "close":
                    await shell.close()
            except SpeakerError as exc:
                reply = {"ok": False, "error": str(exc)}
            reply.update(t0=t0, t1=time.monotonic())
            writer.write(json.dumps(reply, default=str).encode() + b"\n")
            await writer.drain()
            if req["op"] == "close":
                writer.close()
                done.set()
                return

    server = await asyncio.start_unix_server(handle, path=str(args.socket), limit=1 << 26)
    try:
        await done.wait()
    finally:
        server.close()
        await shell.close()


class NodeShell:
    """A BGP shell running in ``node``'s namespace (see module docstring)."""

    def __init__(
        self, lab: Lab, node: str, *, secrets_dir: Path | None = None, listen_port: int = 1790
    ) -> None:
        self.lab, self.node = lab, node
        self.socket = lab.workdir / f"bgpnode-{node}.sock"
        self.run_dir = lab.workdir / f"run-{node}"
        argv = [sys.executable, "-m", "lab.bgpnode", str(self.socket), "--node", node]
        argv += ["--run-dir", str(self.run_dir), "--listen-port", str(listen_port)]
        argv += ["--secrets-dir", str(secrets_dir or lab.workdir / "secrets")]
        self.proc = lab.spawn(node, argv, name=f"bgpnode-{node}")
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        try:
            return await asyncio.open_unix_connection(str(self.socket), limit=1 << 26)
        except OSError:  # not listening yet
            return None

    async def _call(self, req: dict[str, Any], timeout: float = 60) -> dict[str, Any]:
        if self._writer is None:
            self._reader, self._writer = await eventually(
                f"bgpnode on {self.node} to accept connections",
                self._connect,
                timeout=20,
                abort=self.lab.exited(self.proc),
            )
        assert self._reader is not None and self._writer is not None
        self._writer.write(json.dumps(req).encode() + b"\n")
        await self._writer.drain()
        line = await asyncio.wait_for(self._reader.readline(), timeout)
        if not line:
            raise LabError(
                f"bgpnode on {self.node} went away: {self.lab.log(f'bgpnode-{self.node}')[-2000:]}"
            )
        reply: dict[str, Any] = json.loads(line)
        return reply

    async def apply(self, plan: Plan, check: bool = True) -> dict[str, Any]:
        """Hand ``plan`` to the shell; raise LabError with the shell's message if it failed."""
        reply = await self._call({"op": "apply", "plan": plan_to_json(plan)})
        if check and not reply["ok"]:
            raise LabError(f"{self.node}: apply failed: {reply['error']}")
        return reply

    async def status(self) -> dict[str, Any]:
        status: dict[str, Any] = (await self._call({"op": "status"}))["status"]
        return status

    async def session(self, name: str) -> dict[str, Any]:
        row: dict[str, Any] = (await self.status())["sessions"].get(name, {})
        return row

    async def close(self) -> None:
        """Withdraw (graceful restart shutdown) and end the process."""
        if self.proc.poll() is None:
            try:
                await self._call({"op": "close"}, timeout=20)
            except (LabError, OSError, TimeoutError):
                pass
            await asyncio.to_thread(self.lab.stop, self.proc)
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("socket", type=Path)
    ap.add_argument("--node", required=True)
    ap.add_argument("--run-dir", type=Path, required=True)
    ap.add_argument("--secrets-dir", type=Path, required=True)
    ap.add_argument("--listen-port", type=int, default=1790)
    asyncio.run(_serve(ap.parse_args()))


if __name__ == "__main__":
    main()
