"""A pod's sandbox: what outlives its containers' restarts (network, emptyDir volumes).

- **Network.**  A ``hostNetwork`` pod uses its node's namespace; its IP is the node's.  Any
  other pod gets a namespace of its own with one veth to its node, like a routed CNI (ptp):
  pod ``k`` on node ``i`` is ``10.244.i.(4k+2)/30`` with the node side at ``.(4k+1)`` as its
  gateway; the node forwards, and the lab hosts that must answer pods (the API server's host)
  route ``10.244.i.0/24`` via node ``i``'s LAN address.  So a controller's API traffic leaves
  through its node's LAN interface, as in a cluster.  Pods are IPv4 only; no NetworkPolicy,
  no pod-to-pod routes between nodes other than through those routes.
- **emptyDir.**  A directory per volume under the pod's directory in the lab work dir
  (mode 0777, as the kubelet makes it); ``medium: Memory`` is a tmpfs of ``sizeLimit``
  mounted there (in the harness's mount namespace) and unmounted when the pod goes.  A
  disk-backed ``sizeLimit`` is not enforced (the kubelet would evict the pod).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from lab.cluster.resolve import Volume
from lab.netns import Lab

POD_NET = "10.244"


@dataclass
class Sandbox:
    pod: str
    host: str  # the lab "host" name to run in: the node, or the pod's own namespace
    ip: str
    directory: Path
    mounts: list[Path] = field(default_factory=list)

    def volume_dir(self, name: str) -> Path:
        return self.directory / "volumes" / name

    def release(self) -> None:
        """Unmount the memory-backed emptyDirs (lazily: a dying process may still hold them)."""
        for path in reversed(self.mounts):
            subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)
        self.mounts.clear()


class SandboxFactory:
    """Creates sandboxes on the lab's nodes; remembers the node routes it has set up."""

    def __init__(self, lab: Lab, route_hosts: tuple[str, ...]) -> None:
        self.lab = lab
        self.route_hosts = route_hosts
        self._next = itertools.count(1)
        self._routed: set[str] = set()

    def _node_index(self, node: str) -> int:
        return self.lab.nodes.index(node) + 1

    def _route_node(self, node: str) -> None:
        if node in self._routed:
            return
        self.lab.run(node, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        for host in self.route_hosts:
            self.lab.run(
                host,
                "ip",
                "route",
                "replace",
                f"{POD_NET}.{self._node_index(node)}.0/24",
                "via",
                self.lab.addr(node),
            )
        self._routed.add(node)

    def create(self, pod: str, node: str, host_network: bool) -> Sandbox:
        directory = self.lab.workdir / "pods" / pod
        directory.mkdir(parents=True, exist_ok=True)
        os.chmod(directory, 0o700)
        if host_network:
            return Sandbox(pod, node, self.lab.addr(node), directory)
        return self._network(pod, node, directory)

    def add_volumes(self, box: Sandbox, volumes: dict[str, Volume]) -> None:
        """The pod's emptyDir directories (memory-backed ones as tmpfs of their size limit)."""
        for vol in volumes.values():
            if vol.kind not in ("emptyDir", "memory"):
                continue
            path = box.volume_dir(vol.name)
            path.mkdir(parents=True, exist_ok=True)
            if vol.kind == "memory":
                size = f",size={vol.size_limit}" if vol.size_limit else ""
                subprocess.run(
                    ["mount", "-t", "tmpfs", "-o", f"mode=0777{size}", "tmpfs", str(path)], check=True
                )
                box.mounts.append(path)
            os.chmod(path, 0o777)

    def _network(self, pod: str, node: str, directory: Path) -> Sandbox:
        self._route_node(node)
        k = next(self._next)
        if k > 63:
            raise ValueError("the lab gives each node at most 63 non-hostNetwork pods")
        short = f"p{k}"
        ns = self.lab.add_netns(short)
        i = self._node_index(node)
        gw, ip = f"{POD_NET}.{i}.{4 * k + 1}", f"{POD_NET}.{i}.{4 * k + 2}"
        node_dev = f"vp{k}"
        subprocess.run(
            [
                "ip",
                "link",
                "add",
                "eth0",
                "netns",
                ns,
                "type",
                "veth",
                "peer",
                "name",
                node_dev,
                "netns",
                self.lab.ns(node),
            ],
            check=True,
            capture_output=True,
        )
        self.lab.run(node, "ip", "addr", "add", f"{gw}/30", "dev", node_dev)
        self.lab.run(node, "ip", "link", "set", node_dev, "up")
        for argv in (
            ("ip", "link", "set", "lo", "up"),
            ("ip", "addr", "add", f"{ip}/30", "dev", "eth0"),
            ("ip", "link", "set", "eth0", "up"),
            ("ip", "route", "add", "default", "via", gw),
        ):
            self.lab.run(short, *argv)
        return Sandbox(pod, short, ip, directory)


def release_all(boxes: list[Sandbox]) -> None:
    for box in boxes:
        with contextlib.suppress(OSError):
            box.release()
