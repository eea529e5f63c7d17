"""Standalone source: a directory of manifests, watched for changes.

The directory holds YAML/JSON documents (``*.yaml``, ``*.yml``, ``*.json``, recursively,
several documents per file allowed): IronLB custom resources, ``v1 Namespace``, ``v1
Service``, ``v1 Node`` and ``discovery.k8s.io/v1 EndpointSlice``.  Every agent reading the
same directory computes the same view -- addresses come from the deterministic
:func:`ironlb.ipam.allocate_all` -- so standalone agents agree without talking.

Services, Nodes and EndpointSlices are read by :mod:`ironlb.agent.viewbuild`, exactly as the
Kubernetes source reads them.  Address stability: a Service may record what it holds in
``status.loadBalancer.ingress`` (as ``kubectl get -o yaml`` shows it); those addresses pass
the same trust check as in a cluster (pool, tenant, family, no double claim, older Service
first) and are fed to the allocator as existing assignments; refused ones are logged and
listed in ``view.rejected``.  Annotations such as ``ironlb.io/allocated-ips`` are IronLB's
output and never read.  Without a record, adding a Service may shift the first-free choice
of others: pin addresses with ``ironlb.io/loadBalancerIPs``.  Every LoadBalancer Service
without a ``loadBalancerClass`` is served too (the directory is the operator's).

Changes are found by polling file names, sizes and mtimes (cheap; no inotify dependency,
works on any filesystem, including ConfigMap-style symlink swaps).  A directory that does
not parse is reported (every issue logged) and the last good view is kept.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from ironlb import config as config_mod
from ironlb import ipam
from ironlb.agent.interfaces import Board
from ironlb.agent.view import ClusterView
from ironlb.agent.viewbuild import NODES, SERVICES, SLICES, ViewBuilder
from ironlb.errors import ConfigError, Issue

log = logging.getLogger(__name__)

SUFFIXES = (".yaml", ".yml", ".json")
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


def build_view(
    docs: list[Mapping[str, Any]], builder: ViewBuilder | None = None
) -> tuple[ClusterView, dict[str, str]]:
    """(view, service -> allocation error sentence). Raises ConfigError on invalid config.

    ``builder``: the one used for the previous directory state, so unchanged objects are
    not read again.
    """
    config = config_mod.parse(docs)
    builder = builder or ViewBuilder(claim_classless=True)
    builder.set_config(config)
    for kind, wanted in (("Service", SERVICES), ("Node", NODES), ("EndpointSlice", SLICES)):
        builder.replace(wanted, [d for d in docs if d.get("kind") == kind])
    recorded = builder.build()  # what the Services record, trust-checked
    assignments, errors = ipam.allocate_all(
        config, builder.requests.values(), existing=recorded.assignments.values()
    )
    return replace(recorded, assignments=assignments), {k: e.message for k, e in errors.items()}


class FileSource:
    """:class:`ironlb.agent.interfaces.Source` over a manifest directory."""

    def __init__(self, directory: Path, poll_interval: float = 0.2) -> None:
        self.directory = Path(directory)
        self.poll_interval = poll_interval
        self.errors: dict[str, str] = {}  # service -> why it has no address
        self.last_error: str | None = None  # why the directory is not being applied
        self.builder = ViewBuilder(claim_classless=True)

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
        view, self.errors = build_view(read_documents(self.directory), self.builder)
        for key, message in sorted(self.errors.items()):
            log.warning("service %s gets no address: %s", key, message)
        for key, refused in sorted(view.rejected.items()):
            for r in refused:
                log.warning("service %s: recorded address %s (%s); not used", key, r, r.reason)
        return view

    def attach(self, board: Board) -> None:
        """Nothing to add to the status board: the directory's problems are logged."""

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
