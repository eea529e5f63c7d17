"""Standalone source: a directory of manifests, watched for changes.

The directory holds YAML/JSON documents (``*.yaml``, ``*.yml``, ``*.json``, recursively,
several documents per file allowed): IronLB custom resources, ``v1 Namespace``, ``v1
Service``, ``v1 Node`` and ``discovery.k8s.io/v1 EndpointSlice``.  Every agent reading the
same directory computes the same view -- addresses come from the deterministic
:func:`ironlb.ipam.allocate_all` -- so standalone agents agree without talking.

Address stability: a Service may record what it holds with the annotations
``ironlb.io/allocated-ips`` (and ``ironlb.io/ip-allocated-from-pool``), which are fed to
the allocator as existing assignments; otherwise adding a service may shift the
first-free choice of others (pin addresses with ``ironlb.io/loadBalancerIPs``).

Changes are found by polling file names, sizes and mtimes (cheap; no inotify dependency,
works on any filesystem, including ConfigMap-style symlink swaps).  A directory that does
not parse is reported (every issue logged) and the last good view is kept.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from agent.view import ClusterView, NodeInfo
from ironlb import config as config_mod
from ironlb import ipam
from ironlb.errors import ConfigError, Issue
from ironlb.model import ANN_ALLOCATED_IPS
from ironlb.service import AssignedIP, Assignment

log = logging.getLogger(__name__)

SUFFIXES = (".yaml", ".yml", ".json")
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
Snapshot = tuple[tuple[str, int, int], ...]


def snapshot(directory: Path) -> Snapshot:
    """(path, size, mtime_ns) of every manifest file, sorted; cheap enough to poll."""
    out = []
    for path in sorted(directory.rglob("*")):
        if path.suffix in SUFFIXES and not any(p.startswith(".") for p in path.relative_to(directory).parts):
            try:
                st = path.stat()
            except OSError:
                continue
            out.append((str(path), st.st_size, st.st_mtime_ns))
    return tuple(out)


def read_documents(directory: Path) -> list[Mapping[str, Any]]:
    """Every document in the directory; ConfigError naming the file on unreadable input."""
    docs: list[Mapping[str, Any]] = []
    issues: list[Issue] = []
    for name, _, _ in snapshot(directory):
        path = Path(name)
        try:
            text = path.read_text()
            loaded = [json.loads(text)] if path.suffix == ".json" else list(yaml.safe_load_all(text))
        except (OSError, ValueError, yaml.YAMLError) as exc:
            issues.append(Issue("File", str(path), "", None, f"cannot be read as YAML/JSON: {exc}"))
            continue
        for i, doc in enumerate(loaded):
            if doc is None:
                continue
            if isinstance(doc, Mapping) and doc.get("kind") == "List" and isinstance(doc.get("items"), list):
                docs.extend(d for d in doc["items"] if isinstance(d, Mapping))
            elif isinstance(doc, Mapping):
                docs.append(doc)
            else:
                issues.append(
                    Issue(
                        "File", str(path), f"document[{i}]", None, "must be a mapping (a Kubernetes object)"
                    )
                )
    if issues:
        raise ConfigError(issues)
    return docs


def _condition(status: Mapping[str, Any], kind: str) -> str | None:
    for cond in status.get("conditions") or []:
        if isinstance(cond, Mapping) and cond.get("type") == kind:
            return str(cond.get("status"))
    return None


def node_from_manifest(doc: Mapping[str, Any]) -> NodeInfo:
    """A ``v1 Node`` as the planner sees it; Ready defaults to true when no condition is given."""
    meta, status = doc.get("metadata") or {}, doc.get("status") or {}
    addrs = [
        str(a.get("address"))
        for a in status.get("addresses") or []
        if isinstance(a, Mapping) and a.get("type") == "InternalIP" and a.get("address")
    ]
    addrs.sort(key=lambda a: ":" in a)  # IPv4 first
    return NodeInfo(
        name=str(meta.get("name")),
        labels=dict(meta.get("labels") or {}),
        ready=_condition(status, "Ready") in (None, "True"),
        network_unavailable=_condition(status, "NetworkUnavailable") == "True",
        addresses=tuple(addrs),
    )


def endpoints_from_slices(docs: Iterable[Mapping[str, Any]]) -> dict[str, frozenset[str]]:
    """Service "ns/name" -> nodes holding a ready endpoint (ready unset counts as ready)."""
    out: dict[str, set[str]] = {}
    for doc in docs:
        meta = doc.get("metadata") or {}
        service = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
        if not service:
            continue
        key = f"{meta.get('namespace') or 'default'}/{service}"
        nodes = out.setdefault(key, set())
        for ep in doc.get("endpoints") or []:
            if not isinstance(ep, Mapping) or not ep.get("nodeName"):
                continue
            if (ep.get("conditions") or {}).get("ready", True) is not False:
                nodes.add(str(ep["nodeName"]))
    return {k: frozenset(v) for k, v in out.items()}


def recorded_assignments(
    config: config_mod.Config, services: Iterable[Mapping[str, Any]]
) -> list[Assignment]:
    """Assignments recorded on Service manifests (``ironlb.io/allocated-ips``), for stability."""
    requests = {r.key: r for r in config.services}
    out = []
    for doc in services:
        meta = doc.get("metadata") or {}
        key = f"{meta.get('namespace') or 'default'}/{meta.get('name')}"
        text = str((meta.get("annotations") or {}).get(ANN_ALLOCATED_IPS) or "")
        req = requests.get(key)
        if req is None or not text.strip():
            continue
        ips = []
        for ip in (s.strip() for s in text.split(",") if s.strip()):
            pool = next((p.name for p in config.pools.values() if _contains(p, ip)), None)
            if pool is not None:
                ips.append(AssignedIP(ip, pool))
        if ips:
            out.append(Assignment.for_request(req, tuple(ips)))
    return out


def _contains(pool: config_mod.PoolInfo, ip: str) -> bool:
    try:
        return pool.contains(ip)
    except Exception:
        return False


def build_view(docs: list[Mapping[str, Any]]) -> tuple[ClusterView, dict[str, str]]:
    """(view, service -> allocation error sentence). Raises ConfigError on invalid config."""
    config = config_mod.parse(docs)
    by_kind: dict[str, list[Mapping[str, Any]]] = {}
    for doc in docs:
        by_kind.setdefault(str(doc.get("kind")), []).append(doc)
    existing = recorded_assignments(config, by_kind.get("Service", []))
    assignments, errors = ipam.allocate_all(config, existing=existing)
    nodes = {n.name: n for n in map(node_from_manifest, by_kind.get("Node", [])) if n.name}
    view = ClusterView(
        config=config,
        assignments=assignments,
        endpoints=endpoints_from_slices(by_kind.get("EndpointSlice", [])),
        nodes=nodes,
    )
    return view, {k: e.message for k, e in errors.items()}


class FileSource:
    """:class:`agent.interfaces.Source` over a manifest directory."""

    def __init__(self, directory: Path, poll_interval: float = 0.2) -> None:
        self.directory = Path(directory)
        self.poll_interval = poll_interval
        self.errors: dict[str, str] = {}  # service -> why it has no address
        self.last_error: str | None = None  # why the directory is not being applied

    def load(self) -> ClusterView:
        """Read and build the view once (ConfigError when the directory is invalid)."""
        if not self.directory.is_dir():
            raise ConfigError(
                [
                    Issue(
                        "Directory",
                        str(self.directory),
                        "",
                        None,
                        "does not exist or is not a directory (--dir)",
                    )
                ]
            )
        view, self.errors = build_view(read_documents(self.directory))
        for key, message in sorted(self.errors.items()):
            log.warning("service %s gets no address: %s", key, message)
        return view

    async def views(self) -> AsyncIterator[ClusterView]:
        seen: Snapshot | None = None
        while True:
            current = await asyncio.to_thread(snapshot, self.directory) if self.directory.is_dir() else ()
            if current != seen:
                seen = current
                try:
                    view = await asyncio.to_thread(self.load)
                except ConfigError as exc:
                    self.last_error = str(exc)
                    log.error(
                        "manifests in %s are invalid; keeping the last good view:\n%s", self.directory, exc
                    )
                else:
                    self.last_error = None
                    yield view
            await asyncio.sleep(self.poll_interval)
