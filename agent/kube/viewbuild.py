"""Informer stores -> the values the agent's core consumes (pure, no I/O).

Used by both roles: the Kubernetes Source (announcer on every node) and the IPAM
controller, so both read the cluster the same way.

- :class:`ConfigTracker` parses IronLB's custom resources and Namespaces into one
  :class:`~ironlb.config.Config`, keeping **the last good version of every object**: an
  object that fails validation (alone or against the others) is replaced by its last
  version that passed, or left out if it never passed, and reported in ``invalid`` so the
  controller can set a condition and an Event on it.
- :func:`service_requests`, :func:`recorded_assignment`, :func:`endpoint_nodes` and
  :func:`node_info` read Services, EndpointSlices and Nodes.

A Service's addresses are read from what the controller recorded on it: the annotation
``ironlb.io/allocated-ips`` (+ ``ip-allocated-from-pool``), else ``status.loadBalancer``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.view import ClusterView, NodeInfo
from ironlb import addresses
from ironlb.config import Config, parse
from ironlb.errors import ConfigError, Issue
from ironlb.model import ANN_ALLOCATED_IPS, ANN_ALLOCATED_POOL, LOAD_BALANCER_CLASS, RESOURCE_KINDS
from ironlb.service import AssignedIP, Assignment, ServiceRequest, request_from_manifest

ObjKey = tuple[str, str]  # (kind, name)


def _doc_key(doc: Mapping[str, Any]) -> ObjKey:
    return str(doc.get("kind") or ""), str((doc.get("metadata") or {}).get("name") or "")


@dataclass
class ConfigTracker:
    """Parse custom resources, keeping the last good version of each invalid one."""

    config: Config = field(default_factory=Config)
    last_good: dict[ObjKey, dict[str, Any]] = field(default_factory=dict)
    invalid: dict[ObjKey, list[Issue]] = field(default_factory=dict)
    max_rounds: int = 8
    _last_input: Any = None

    def update(
        self, resources: Iterable[Mapping[str, Any]], namespaces: Iterable[Mapping[str, Any]]
    ) -> Config:
        current = {_doc_key(d): _strip(d) for d in resources}
        ns_docs = [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": d.get("metadata") or {}} for d in namespaces
        ]
        if (current, ns_docs) == self._last_input:
            return self.config  # unchanged input: the same Config object (callers memoise on it)
        self._last_input = (current, ns_docs)
        chosen = dict(current)
        invalid: dict[ObjKey, list[Issue]] = {}
        for _ in range(self.max_rounds):
            try:
                config = parse([*chosen.values(), *ns_docs])
            except ConfigError as exc:
                blamed = _blame(exc.issues, chosen)
                if not blamed:  # an issue we cannot pin on one object: keep the old config
                    invalid[("", "")] = list(exc.issues)
                    self.invalid = invalid
                    return self.config
                for key, issues in blamed.items():
                    invalid.setdefault(key, []).extend(issues)
                    old = self.last_good.get(key)
                    if old is not None and chosen.get(key) != old:
                        chosen[key] = old
                    else:
                        chosen.pop(key, None)
                continue
            for key in chosen:
                if key not in invalid:
                    self.last_good[key] = chosen[key]
            for key in [k for k in self.last_good if k not in current]:
                del self.last_good[key]  # deleted objects are gone for good
            self.config, self.invalid = config, invalid
            return config
        self.invalid = invalid
        return self.config


def _strip(doc: Mapping[str, Any]) -> dict[str, Any]:
    meta = doc.get("metadata") or {}
    keep = {k: meta[k] for k in ("name", "namespace", "labels", "annotations") if k in meta}
    return {
        "apiVersion": doc.get("apiVersion"),
        "kind": doc.get("kind"),
        "metadata": keep,
        "spec": doc.get("spec") or {},
    }


def _blame(issues: Iterable[Issue], chosen: Mapping[ObjKey, Any]) -> dict[ObjKey, list[Issue]]:
    out: dict[ObjKey, list[Issue]] = {}
    for issue in issues:
        key = (issue.kind, issue.name)
        if key in chosen:
            out.setdefault(key, []).append(issue)
    return out


def is_ours(request: ServiceRequest, *, claim_classless: bool) -> bool:
    """Does IronLB serve this LoadBalancer Service? (our class, or no class with the flag)."""
    cls = request.load_balancer_class
    return cls == LOAD_BALANCER_CLASS or (cls is None and claim_classless)


def service_requests(
    services: Iterable[Mapping[str, Any]], *, claim_classless: bool
) -> tuple[dict[str, ServiceRequest], dict[str, list[Issue]]]:
    """Our LoadBalancer Services, by key, plus the problems found while reading them."""
    out: dict[str, ServiceRequest] = {}
    problems: dict[str, list[Issue]] = {}
    for doc in services:
        request, issues = request_from_manifest(doc)
        if request is None or not is_ours(request, claim_classless=claim_classless):
            continue
        out[request.key] = request
        if issues:
            problems[request.key] = issues
    return out, problems


def recorded_ips(doc: Mapping[str, Any]) -> list[tuple[str, str | None]]:
    """(ip, pool) pairs the controller recorded on a Service (annotation, else status)."""
    ann = (doc.get("metadata") or {}).get("annotations") or {}
    ips = [s.strip() for s in str(ann.get(ANN_ALLOCATED_IPS, "")).split(",") if s.strip()]
    pools = [s.strip() for s in str(ann.get(ANN_ALLOCATED_POOL, "")).split(",") if s.strip()]
    if not ips:
        ingress = ((doc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        ips = [str(i["ip"]) for i in ingress if isinstance(i, Mapping) and i.get("ip")]
    out: list[tuple[str, str | None]] = []
    for i, text in enumerate(ips):
        try:
            ip = addresses.parse_host(text)
        except ValueError:
            continue
        pool = pools[i] if len(pools) == len(ips) else (pools[0] if pools else None)
        out.append((ip, pool))
    return out


def recorded_assignment(doc: Mapping[str, Any], request: ServiceRequest, config: Config) -> Assignment | None:
    pairs = recorded_ips(doc)
    if not pairs:
        return None
    ips = []
    for ip, pool in pairs:
        if pool is None or pool not in config.pools:
            pool = next((n for n, p in config.pools.items() if p.contains(ip)), pool or "")
        ips.append(AssignedIP(ip, pool))
    return Assignment.for_request(request, tuple(ips))


def endpoint_nodes(slices: Iterable[Mapping[str, Any]]) -> dict[str, frozenset[str]]:
    """service key -> nodes with at least one ready endpoint (for externalTrafficPolicy Local)."""
    out: dict[str, set[str]] = {}
    for sl in slices:
        meta = sl.get("metadata") or {}
        svc = (meta.get("labels") or {}).get("kubernetes.io/service-name")
        if not svc:
            continue
        nodes = out.setdefault(f"{meta.get('namespace')}/{svc}", set())
        for ep in sl.get("endpoints") or []:
            ready = (ep.get("conditions") or {}).get("ready")
            if ep.get("nodeName") and ready is not False:
                nodes.add(str(ep["nodeName"]))
    return {k: frozenset(v) for k, v in out.items()}


def node_info(doc: Mapping[str, Any]) -> NodeInfo:
    meta = doc.get("metadata") or {}
    status = doc.get("status") or {}
    conds = {c.get("type"): c.get("status") for c in status.get("conditions") or [] if isinstance(c, Mapping)}
    ips = [
        str(a.get("address"))
        for a in status.get("addresses") or []
        if isinstance(a, Mapping) and a.get("type") == "InternalIP" and a.get("address")
    ]
    ips.sort(key=lambda ip: (":" in ip, ip))
    return NodeInfo(
        name=str(meta.get("name")),
        labels=dict(meta.get("labels") or {}),
        ready=conds.get("Ready", "True") == "True",
        network_unavailable=conds.get("NetworkUnavailable") == "True",
        addresses=tuple(ips),
    )


def build_view(
    config: Config,
    services: Iterable[Mapping[str, Any]],
    slices: Iterable[Mapping[str, Any]],
    nodes: Iterable[Mapping[str, Any]],
    *,
    claim_classless: bool = False,
) -> ClusterView:
    """The ClusterView the planner consumes (without live_members: the daemon adds them)."""
    assignments: dict[str, Assignment] = {}
    for doc in services:
        request, _ = request_from_manifest(doc)
        if request is None or not is_ours(request, claim_classless=claim_classless):
            continue
        assignment = recorded_assignment(doc, request, config)
        if assignment is not None:
            assignments[request.key] = assignment
    return ClusterView(
        config=config,
        assignments=assignments,
        endpoints=endpoint_nodes(slices),
        nodes={n.name: n for n in (node_info(d) for d in nodes)},
    )


CRD_KINDS = tuple(RESOURCE_KINDS.values())
