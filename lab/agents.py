"""Run real ``ironlb-agent`` processes in a lab on a standalone manifest directory.

Each node's agent reads the same directory (``<workdir>/manifests``), so they compute the
same view; membership is the real gossip protocol with a per-run key file (or ``static``).
Every agent writes its status JSON to ``<workdir>/status-<node>.json``.

    agents = Agents(lab)
    agents.write(pool(), l2_advertisement(), *nodes(lab), service("web", ip="10.77.0.200"))
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
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from lab.netns import VIP_PORT, Lab, LabError
from lab.routers import NODE_ASN, ROUTER_ASN

POOL_V4 = "10.77.0.200-10.77.0.250"
POOL_V6 = "fd77::c8-fd77::fa"


def resource(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    """An IronLB custom resource document."""
    return {"apiVersion": "ironlb.io/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec}


def pool(name: str = "lan", addresses: Iterable[str] = (POOL_V4, POOL_V6), **spec: Any) -> dict[str, Any]:
    return resource("IPPool", name, {"addresses": list(addresses), **spec})


def l2_advertisement(name: str = "lan", **spec: Any) -> dict[str, Any]:
    return resource("L2Advertisement", name, spec)


def bgp_advertisement(name: str = "tor", **spec: Any) -> dict[str, Any]:
    return resource("BGPAdvertisement", name, spec)


def bgp_peer(lab: Lab, name: str = "tor", hold: int = 9, **spec: Any) -> dict[str, Any]:
    """A BGPPeer from the nodes (NODE_ASN) to the lab router (ROUTER_ASN), 1 s connect retry."""
    return resource(
        "BGPPeer",
        name,
        {
            "myASN": NODE_ASN,
            "peerASN": ROUTER_ASN,
            "peerAddress": lab.addr("router"),
            "holdTime": hold,
            "connectTime": 1,
            **spec,
        },
    )


def nodes(lab: Lab, labels: Mapping[str, Mapping[str, str]] | None = None) -> list[dict[str, Any]]:
    """v1 Node manifests for every lab node (InternalIP = its LAN IPv4 and IPv6 address)."""
    return [
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": n, "labels": dict((labels or {}).get(n, {}))},
            "status": {
                "conditions": [{"type": "Ready", "status": "True"}],
                "addresses": [
                    {"type": "InternalIP", "address": lab.addr(n, 4)},
                    {"type": "InternalIP", "address": lab.addr(n, 6)},
                ],
            },
        }
        for n in lab.nodes
    ]


def service(
    name: str,
    ip: str | Iterable[str] | None = None,
    *,
    namespace: str = "default",
    etp: str = "Cluster",
    families: Iterable[str] = ("IPv4",),
    port: int = VIP_PORT,
) -> dict[str, Any]:
    ips = [ip] if isinstance(ip, str) else list(ip or [])
    fams = list(families)
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if ips:
        meta["annotations"] = {"ironlb.io/loadBalancerIPs": ",".join(ips)}
    spec: dict[str, Any] = {
        "type": "LoadBalancer",
        "externalTrafficPolicy": etp,
        "selector": {"app": name},
        "ports": [{"port": port, "protocol": "TCP"}],
        "ipFamilies": fams,
        "ipFamilyPolicy": "RequireDualStack" if len(fams) > 1 else "SingleStack",
    }
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec}


def endpoint_slice(service_name: str, on_nodes: Iterable[str], namespace: str = "default") -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{service_name}-eps",
            "namespace": namespace,
            "labels": {"kubernetes.io/service-name": service_name},
        },
        "addressType": "IPv4",
        "endpoints": [
            {"addresses": ["10.244.0.1"], "nodeName": n, "conditions": {"ready": True}} for n in on_nodes
        ],
    }


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
        deadline = time.monotonic() + timeout
        while True:
            st = self.status(node)
            if st is not None:
                return st
            proc = self.procs.get(node)
            if proc is not None and proc.poll() is not None:
                raise LabError(
                    f"agent on {node} exited {proc.returncode}:\n{self.lab.log(f'agent-{node}')[-3000:]}"
                )
            if time.monotonic() > deadline:
                raise LabError(
                    f"agent on {node} wrote no status in {timeout} s:\n"
                    f"{self.lab.log(f'agent-{node}')[-3000:]}"
                )
            time.sleep(0.05)

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
        deadline = time.monotonic() + timeout
        while True:
            owners = set(self.owners(ip).values())
            if len(owners) == 1 and None not in owners:
                owner = owners.pop()
                assert owner is not None
                if owner in self.procs and self.announcing(owner).get(ip) == "announcing":
                    return owner
            if time.monotonic() > deadline:
                raise LabError(f"agents do not agree on an announcing owner of {ip}: {self.owners(ip)}")
            time.sleep(0.05)

    def pick_ip_owned_by(self, node: str, candidates: Iterable[str]) -> str:
        """First candidate the planner would give ``node`` (all current agents alive)."""
        from ironlb.agent.planner.l2 import rank  # the lab may use the planner's pure ranking

        alive = sorted(self.procs)
        for ip in candidates:
            if rank(alive, ip)[0] == node:
                return ip
        raise LabError(f"no candidate address ranks {node} first among {alive}")


def signal_name(sig: int) -> str:
    return signal.Signals(sig).name
