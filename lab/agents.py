"""Run real ``ironlb-agent`` processes in a lab on a standalone manifest directory.

Each node's agent reads the same directory (``<workdir>/manifests``), so they compute the
same view; membership is the real gossip protocol with a per-run key file (or ``static``).
Every agent writes its status JSON to ``<workdir>/status-<node>.json``.  The documents come
from :mod:`lab.manifests` (:func:`~lab.manifests.lab_service` is a Service as these agents read it).

    agents = Agents(lab)
    agents.write(pool(), l2_advertisement(), *nodes(lab), lab_service("web", ip="10.77.0.200"))
    agents.start_all()
    agents.wait_owner("10.77.0.200")      # -> "node2" once every agent agrees
    agents.stop("node2", signal.SIGKILL)
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from lab.errors import WaitTimeout
from lab.netns import Lab
from lab.waiting import wait_for


class Agents:
    """The agents of one lab: a shared manifest directory, one process per node."""

    def __init__(self, lab: Lab, membership: str = "gossip", extra_args: Iterable[str] = ()) -> None:
        self.lab = lab
        self.dir = lab.workdir / "manifests"
        self.dir.mkdir(exist_ok=True)
        self.key = lab.workdir / "membership.key"
        if not self.key.exists():
            self.key.write_text(secrets.token_hex(32))
            os.chmod(self.key, 0o600)
        self.membership = membership
        self.extra_args = list(extra_args)
        self.procs: dict[str, Any] = {}

    def write(self, *docs: Mapping[str, Any], name: str = "cluster.yaml") -> None:
        """Replace one manifest file atomically (agents notice within the poll interval)."""
        tmp = self.dir / f".{name}.tmp"
        tmp.write_text(yaml.safe_dump_all([dict(d) for d in docs], sort_keys=False))
        os.replace(tmp, self.dir / name)

    def status_path(self, node: str) -> Path:
        return self.lab.workdir / f"status-{node}.json"

    def argv(self, node: str, extra: Iterable[str] = ()) -> list[str]:
        argv = [
            sys.executable,
            "-m",
            "ironlb.agent.main",
            "--source",
            "files",
            "--dir",
            str(self.dir),
            "--node",
            node,
            "--status-file",
            str(self.status_path(node)),
            "--membership",
            self.membership,
            "--poll-interval",
            "0.1",
            "--run-dir",  # each agent its own (its BIRD's control socket), never the host's /run/ironlb
            str(self.lab.workdir / f"run-{node}"),
            "--secrets-dir",
            str(self.lab.workdir / "secrets"),
        ]
        if self.membership == "gossip":
            argv += ["--membership-key", str(self.key)]
        return argv + self.extra_args + list(extra)

    def start(self, node: str, extra: Iterable[str] = ()) -> None:
        self.status_path(node).unlink(missing_ok=True)
        self.procs[node] = self.lab.spawn(node, self.argv(node, extra), name=f"agent-{node}")

    def start_all(self, extra: Iterable[str] = (), wait: bool = True) -> None:
        for node in self.lab.nodes:
            self.start(node, extra)
        if wait:
            for node in self.lab.nodes:
                self.wait_status(node)

    def stop(self, node: str, sig: int = signal.SIGTERM) -> int:
        return self.lab.stop(self.procs.pop(node), sig)

    def status(self, node: str) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads(self.status_path(node).read_text())
            return data
        except (OSError, ValueError):
            return None

    def wait_status(self, node: str, timeout: float = 40) -> dict[str, Any]:
        proc = self.procs.get(node)
        try:
            return wait_for(
                f"the agent on {node} to write its status",
                lambda: self.status(node),
                timeout=timeout,
                abort=self.lab.exited(proc) if proc is not None else None,
            )
        except WaitTimeout as exc:
            raise WaitTimeout(f"{exc}\n{self.lab.log(f'agent-{node}')[-3000:]}") from None

    def owners(self, ip: str) -> dict[str, str | None]:
        """Each running agent's idea of who owns ``ip``."""
        out: dict[str, str | None] = {}
        for node in self.procs:
            st = self.status(node) or {}
            rows = [o for o in st.get("ownership", []) if o["ip"] == ip and o["mode"] == "layer2"]
            out[node] = rows[0]["nodes"][0] if rows and rows[0]["nodes"] else None
        return out

    def announcing(self, node: str) -> dict[str, str]:
        """ip -> layer-2 state on ``node`` (probing, announcing, conflict...)."""
        st = self.status(node) or {}
        addrs = st.get("shells", {}).get("L2Shell", {}).get("addresses", {})
        return {ip: a["state"] for ip, a in addrs.items()}

    def wait_owner(self, ip: str, timeout: float = 20) -> str:
        """Wait until every running agent agrees on one owner of ``ip`` and it is announcing."""

        def seen() -> tuple[dict[str, str | None], str | None]:
            """(each agent's owner, the layer-2 state on the owner they all name)."""
            owners = self.owners(ip)
            named = set(owners.values())
            owner = named.pop() if len(named) == 1 else None
            return owners, self.announcing(owner).get(ip) if owner in self.procs else None

        owners, _ = wait_for(
            f"every agent to agree on one announcing owner of {ip} (owners, its state)",
            seen,
            lambda view: view[1] == "announcing",
            timeout=timeout,
        )
        owner = next(iter(owners.values()))
        assert owner is not None
        return owner
