"""Deploy a stack's rendered install into a fresh lab, unmodified, and take it down again.

:class:`Cluster` does, in order (``start``; ``teardown`` undoes everything in all cases):

1. **Render** the stack as ``ironlb render`` does (Pulumi's mocks, the same schema check),
   but with its secrets revealed (:mod:`ironlb.components.stacksecrets`, the documented example
   passphrase of the stack), into ``<workdir>/manifests`` (0700; files 0600; never logged).
2. **Topology** from the manifests (:mod:`lab.cluster.topology`), and the lab built on it.
3. **API server**: ``python -m lab.apiserver`` in the ``api`` host's namespace on its LAN
   address, port 6443, with a per-lab CA; the harness uses its admin Unix socket.
4. **Load** every rendered object in apply order as admin; before that the namespaces a
   cluster always has (default, kube-system, kube-public, kube-node-lease), after it the
   ``kube-root-ca.crt`` ConfigMap in every namespace (as kube-controller-manager publishes it).
5. **Nodes**: one Node object per lab node (labels from the topology, InternalIP v4 and v6,
   Ready), status written through ``/status``.
6. **Routers**: one BIRD per BGP peer address (:mod:`lab.cluster.routers`), MD5 password =
   the revealed Secret value.
7. **Workload side**: on every node a TCP server (``lab.vipserver``) on every TCP port of
   every Service, answering with the node's name; one EndpointSlice per Service with a ready
   endpoint on every node (so ``externalTrafficPolicy: Local`` has local endpoints).
8. **Kubelet**: every Pod of every rendered DaemonSet and Deployment (:mod:`lab.cluster.workloads`),
   run by :mod:`lab.cluster.kubelet`.

Then :mod:`lab.cluster.checks` holds what tests and benchmarks ask of the running cluster.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from lab.cluster.api import Api
from lab.cluster.kubelet import Kubelet
from lab.cluster.routers import PeerRouter, password_of
from lab.cluster.sandbox import SandboxFactory
from lab.cluster.topology import ClusterTopology, derive, of_kind
from lab.cluster.workloads import Node, PodPlacement, place
from lab.errors import LabError
from lab.netns import Lab
from lab.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]
API_PORT = 6443
#: The passphrases the stack files document (their comments; docs/pulumi.md): lab use only.
PASSPHRASES = {"dev": "ironlb-dev", "prod": "ironlb-prod-example", "platform": "ironlb-platform-example"}
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def render_revealed(stack: str, stacks_dir: Path, passphrase: str, out: Path) -> list[dict[str, Any]]:
    """The stack's manifests with real secret values, also written (0600) into ``out``."""
    from ironlb.components.base import InvalidConfigError
    from ironlb.components.manifest_check import check_all
    from ironlb.components.offline import evaluate_stack, file_name, load_stack, manifests
    from ironlb.errors import ConfigError

    try:
        found = manifests(
            evaluate_stack(load_stack(stack, stacks_dir, passphrase=passphrase)), reveal_secrets=True
        )
    except InvalidConfigError as exc:
        raise ConfigError(exc.issues) from None
    bad = check_all(found)
    if bad:
        raise LabError("the rendered manifests fail schema validation:\n  " + "\n  ".join(bad))
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    for i, m in enumerate(found):
        fd = os.open(out / file_name(i, m), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            yaml.safe_dump(m, f, sort_keys=True)
    return found


def _secrets(manifests: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, str]]:
    out = {}
    for m in of_kind(manifests, "Secret"):
        meta = m["metadata"]
        data = {k: base64.b64decode(v).decode() for k, v in (m.get("data") or {}).items()}
        data.update({k: str(v) for k, v in (m.get("stringData") or {}).items()})
        out[(str(meta.get("namespace")), str(meta["name"]))] = data
    return out


class Cluster:
    """One stack deployed in one lab (see the module docstring)."""

    def __init__(
        self,
        stack: str,
        *,
        nodes: int = 3,
        stacks_dir: Path | None = None,
        passphrase: str | None = None,
        extra_hosts: tuple[str, ...] = (),
    ) -> None:
        self.stack, self.node_count, self.extra_hosts = stack, nodes, extra_hosts
        self.stacks_dir = stacks_dir or REPO / "stacks"
        self.passphrase = passphrase or PASSPHRASES.get(stack) or ""
        self.lab: Lab | None = None
        self.api: Api | None = None
        self.kubelet: Kubelet | None = None
        self.routers: dict[str, PeerRouter] = {}
        self.manifests: list[dict[str, Any]] = []
        self.topo: ClusterTopology | None = None
        self.placements: list[PodPlacement] = []
        self.started_at = 0.0
        self.workdir: Path | None = None

    def __enter__(self) -> Cluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.teardown()

    # --- accessors that fail clearly before start -----------------------------------------------

    @property
    def the_lab(self) -> Lab:
        if self.lab is None:
            raise LabError("the cluster is not started")
        return self.lab

    @property
    def admin(self) -> Api:
        if self.api is None:
            raise LabError("the cluster's API server is not started")
        return self.api

    @property
    def topology(self) -> ClusterTopology:
        if self.topo is None:
            raise LabError("the cluster is not started")
        return self.topo

    @property
    def agent_namespace(self) -> str:
        workloads = [m for m in self.manifests if m["kind"] in ("DaemonSet", "Deployment")]
        return str(workloads[0]["metadata"]["namespace"]) if workloads else "ironlb-system"

    @property
    def api_host(self) -> str:
        return self.the_lab.addr("api")

    @property
    def ca_file(self) -> Path:
        return self.the_lab.workdir / "pki" / "ca.crt"

    # --- start ------------------------------------------------------------------------------------

    def start(self) -> Cluster:
        try:
            self._start()
        except BaseException:
            self.teardown()
            raise
        return self

    def _start(self) -> None:
        self.started_at = time.monotonic()
        self.workdir = Path(tempfile.mkdtemp(prefix=f"ilb-{self.stack}-"))
        self.manifests = render_revealed(
            self.stack, self.stacks_dir, self.passphrase, self.workdir / "manifests"
        )
        self.topo = derive(self.manifests, self.node_count, self.extra_hosts)
        lab = self.lab = Lab(nodes=self.node_count, topology=self.topo.topology, workdir=self.workdir).build()
        self.api = self._start_api()
        self._load()
        self._register_nodes()
        self._start_routers()
        self._start_workload()
        self.placements = place(self.manifests, self.nodes())
        self.kubelet = Kubelet(lab, self.admin, self.api_host, API_PORT, SandboxFactory(lab, ("api",)))
        self.kubelet.run(self.placements)

    def _start_api(self) -> Api:
        lab = self.the_lab
        sock = lab.workdir / "api.sock"
        if len(str(sock)) > 100:
            raise LabError(f"socket path {sock} is too long for AF_UNIX: shorten TMPDIR")
        argv = [sys.executable, "-m", "lab.apiserver", "--listen", f"{self.api_host}:{API_PORT}"]
        argv += ["--socket", str(sock), "--pki-dir", str(lab.workdir / "pki")]
        proc = lab.spawn("api", argv, name="apiserver")
        wait_for("the API server's admin socket", sock.exists, timeout=30, abort=lab.exited(proc))
        return Api(sock)

    def _load(self) -> None:
        api = self.admin
        rendered = {m["metadata"]["name"] for m in of_kind(self.manifests, "Namespace")}
        for ns in SYSTEM_NAMESPACES:  # the stand-in may have them already, as a real server does
            if ns not in rendered and api.get("v1", "Namespace", ns) is None:
                api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        api.load(self.manifests)
        ca = self.ca_file.read_text()
        for ns in sorted(rendered | set(SYSTEM_NAMESPACES)):
            meta = {"name": "kube-root-ca.crt", "namespace": ns}
            api.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"ca.crt": ca}})

    def nodes(self) -> list[Node]:
        labels = self.topology.node_labels
        return [Node(n, {**labels, "kubernetes.io/hostname": n}) for n in self.the_lab.nodes]

    def _register_nodes(self) -> None:
        lab = self.the_lab
        for node in self.nodes():
            self.admin.create(
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {"name": node.name, "labels": dict(node.labels)},
                }
            )
            status = {
                "conditions": [
                    {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "lab node"}
                ],
                "addresses": [
                    {"type": "InternalIP", "address": lab.addr(node.name, 4)},
                    {"type": "InternalIP", "address": lab.addr(node.name, 6)},
                    {"type": "Hostname", "address": node.name},
                ],
            }
            self.admin.patch("v1", "Node", node.name, {"status": status}, sub="status")

    def _start_routers(self) -> None:
        secrets = _secrets(self.manifests)
        for peer in self.topology.peers:
            if peer.router in {r.host for r in self.routers.values()}:
                continue  # an IPv6 peer of a router that already runs
            password = password_of(secrets, self.agent_namespace, peer)
            router = PeerRouter(self.the_lab, peer, password)
            router.start()
            self.routers[peer.name] = router

    def services(self) -> list[Mapping[str, Any]]:
        return [
            m
            for m in of_kind(self.manifests, "Service")
            if (m.get("spec") or {}).get("type") == "LoadBalancer"
        ]

    def _start_workload(self) -> None:
        lab = self.the_lab
        ports = sorted(
            {
                int(p["port"])
                for s in self.services()
                for p in s["spec"].get("ports") or []
                if p.get("protocol", "TCP") == "TCP"
            }
        )
        for node in lab.nodes:
            argv = [sys.executable, "-m", "lab.vipserver", "--name", node, *(f"--port={p}" for p in ports)]
            lab.spawn(node, argv, name=f"backend-{node}")
        for svc in self.services():
            meta = svc["metadata"]
            eps = {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": f"{meta['name']}-lab",
                    "namespace": meta["namespace"],
                    "labels": {"kubernetes.io/service-name": meta["name"]},
                },
                "addressType": "IPv4",
                "endpoints": [
                    {
                        "addresses": [lab.addr(n)],
                        "nodeName": n,
                        "conditions": {"ready": True, "serving": True, "terminating": False},
                    }
                    for n in lab.nodes
                ],
                "ports": [
                    {
                        "name": p.get("name", ""),
                        "port": int(p.get("targetPort", p["port"])),
                        "protocol": p.get("protocol", "TCP"),
                    }
                    for p in svc["spec"].get("ports") or []
                ],
            }
            self.admin.create(eps)

    # --- teardown -----------------------------------------------------------------------------------

    def teardown(self) -> None:
        """Stop pods (gracefully), routers, the API server and the lab. Idempotent; never raises."""
        if self.kubelet is not None:
            try:
                self.kubelet.stop()
            finally:
                self.kubelet = None
        for router in self.routers.values():
            try:
                router.stop()
            except (LabError, OSError):
                pass
        self.routers.clear()
        if self.lab is not None:
            self.lab.teardown()
            self.lab = None
        self.api = None
        if self.workdir is not None and not os.environ.get("IRONLB_LAB_KEEP"):
            shutil.rmtree(self.workdir, ignore_errors=True)  # it holds the revealed secrets
            self.workdir = None

    # --- what tests ask of the cluster ----------------------------------------------------------------

    def worker(self, pod: str) -> Any:
        if self.kubelet is None or pod not in self.kubelet.workers:
            raise LabError(f"no running pod {pod!r}")
        return self.kubelet.workers[pod]

    def pods(self, workload: str | None = None) -> list[PodPlacement]:
        return [p for p in self.placements if workload is None or p.workload == workload]

    def kill_pod(self, pod: str, sig: int = signal.SIGKILL, down_for: float | None = None) -> int:
        """SIGKILL the pod's (first) container's process, as a crash would; the kubelet restarts it
        (at once the first time, then with back-off; after exactly ``down_for`` seconds if given)."""
        pid: int = self.worker(pod).kill(sig=sig, down_for=down_for)
        return pid

    def edit(
        self, api_version: str, kind: str, name: str, patch: Mapping[str, Any], namespace: str | None = None
    ) -> dict[str, Any]:
        """A merge patch as cluster admin (e.g. a pool edit)."""
        return self.admin.patch(api_version, kind, name, patch, namespace)


@contextmanager
def deployed(stack: str, **kwargs: Any) -> Iterator[Cluster]:
    cluster = Cluster(stack, **kwargs)
    try:
        yield cluster.start()
    finally:
        cluster.teardown()
