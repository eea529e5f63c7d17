"""Manifests -> :class:`~ironlb.agent.view.ClusterView`: the one reading of Services, Nodes, EndpointSlices.

Both sources build their views here (the Kubernetes source from its informer caches, the
files source from a manifest directory), and so does the IPAM controller, for what it
rebuilds from and the rejections it reports.  Every node and the controller therefore read
the cluster the same way: a Node's InternalIP addresses in the order the Node lists them,
IPv4 first; Ready unless a ``Ready`` condition says otherwise; an endpoint counts unless
``ready`` is false; a missing namespace is ``default``.

**Trust** (docs/decisions/0062-trust-boundary.md).  A Service's addresses are read from
``status.loadBalancer.ingress`` only, which only the controller may write; annotations are
tenant-writable and never read here, not even ``ironlb.io/allocated-ips``.  Each address is
re-checked with :class:`ironlb.ipam.TrustCheck` (its pool, the pool's tenant against the
Service's namespace, family, no double claim).  Where Services record the same address,
the older one goes first (:func:`precedence`: ``creationTimestamp``, set by the API server,
then ``namespace/name``): the same order on every node and in the controller, so all
agree, and a Service created later to claim a held address never displaces its holder.
What fails is left out of ``assignments`` (never announced) and listed in ``rejected``.

**Incremental.**  Callers feed changes (:meth:`ViewBuilder.put`, :meth:`~ViewBuilder.delete`,
or :meth:`~ViewBuilder.replace` with a whole set) and :meth:`ViewBuilder.build` redoes only
what they touch: a Service's request is parsed once per object; only Services sharing an
address with a changed one are re-checked together (precedence needs nothing else); node
and endpoint rows are rebuilt per changed object.  A table nothing changed in is the same
object as in the previous view, so the planner skips it by identity.  A Config whose pools,
tenants or namespaces changed re-checks every Service (rare; linear); one that differs only
elsewhere (advertisements, peers) re-checks none.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from ironlb import addresses
from ironlb.agent.view import ClusterView, NodeInfo
from ironlb.config import Config
from ironlb.ipam import Rejected, TrustCheck
from ironlb.service import Assignment, ServiceRequest, request_from_manifest

Kind = Literal["services", "nodes", "endpointslices"]
SERVICES: Kind = "services"
NODES: Kind = "nodes"
SLICES: Kind = "endpointslices"
KINDS: tuple[Kind, ...] = (SERVICES, NODES, SLICES)
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
V = TypeVar("V")


# --- one object at a time (pure) ---------------------------------------------------------------


def _meta(doc: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = doc.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def object_key(kind: Kind, doc: Mapping[str, Any]) -> str:
    """``namespace/name`` (namespace defaulting to ``default``) for Services and slices; a Node's name."""
    meta = _meta(doc)
    name = str(meta.get("name") or "")
    return name if kind == NODES else f"{meta.get('namespace') or 'default'}/{name}"


def recorded_ips(doc: Mapping[str, Any]) -> tuple[str, ...]:
    """The addresses in ``status.loadBalancer.ingress``, as written (hostname entries skipped)."""
    status = doc.get("status")
    lb = status.get("loadBalancer") if isinstance(status, Mapping) else None
    ingress = lb.get("ingress") if isinstance(lb, Mapping) else None
    if not isinstance(ingress, list):
        return ()
    return tuple(str(i["ip"]) for i in ingress if isinstance(i, Mapping) and i.get("ip"))


def precedence(doc: Mapping[str, Any], key: str) -> tuple[str, str]:
    """Order between Services recording one address: older first (server-set), then by key."""
    return str(_meta(doc).get("creationTimestamp") or ""), key


def _conditions(status: Mapping[str, Any]) -> dict[Any, Any]:
    found = status.get("conditions")
    if not isinstance(found, list):
        return {}
    return {c.get("type"): c.get("status") for c in found if isinstance(c, Mapping)}


def node_info(doc: Mapping[str, Any]) -> NodeInfo:
    """A ``v1 Node`` as the planner sees it: InternalIPs in the Node's order, IPv4 first."""
    meta = _meta(doc)
    status = doc.get("status")
    status = status if isinstance(status, Mapping) else {}
    found = status.get("addresses")
    ips = [
        str(a.get("address"))
        for a in (found if isinstance(found, list) else ())
        if isinstance(a, Mapping) and a.get("type") == "InternalIP" and a.get("address")
    ]
    ips.sort(key=lambda ip: ":" in ip)  # stable: the Node's primary address of each family first
    conds = _conditions(status)
    labels = meta.get("labels")
    return NodeInfo(
        name=str(meta.get("name") or ""),
        labels=dict(labels) if isinstance(labels, Mapping) else {},
        ready=conds.get("Ready", "True") == "True",
        network_unavailable=conds.get("NetworkUnavailable") == "True",
        addresses=tuple(ips),
    )


def slice_nodes(doc: Mapping[str, Any]) -> tuple[str | None, frozenset[str]]:
    """(the slice's Service key, or None; nodes holding an endpoint not marked ``ready: false``)."""
    meta = _meta(doc)
    labels = meta.get("labels")
    service = labels.get(SERVICE_NAME_LABEL) if isinstance(labels, Mapping) else None
    if not service:
        return None, frozenset()
    endpoints = doc.get("endpoints")
    nodes = set()
    for ep in endpoints if isinstance(endpoints, list) else ():
        if not isinstance(ep, Mapping) or not ep.get("nodeName"):
            continue
        conds = ep.get("conditions")
        if not (isinstance(conds, Mapping) and conds.get("ready") is False):
            nodes.add(str(ep["nodeName"]))
    return f"{meta.get('namespace') or 'default'}/{service}", frozenset(nodes)


def endpoint_nodes(slices: Iterable[Mapping[str, Any]]) -> dict[str, frozenset[str]]:
    """Service key -> nodes with a ready endpoint, over many slices (for externalTrafficPolicy Local)."""
    out: dict[str, frozenset[str]] = {}
    for doc in slices:
        key, nodes = slice_nodes(doc)
        if key is not None:
            out[key] = out.get(key, frozenset()) | nodes
    return out


@dataclass(frozen=True)
class _Service:
    """One cached Service as read: its request (None: not ours) and what its status records."""

    doc: Mapping[str, Any]
    request: ServiceRequest | None
    recorded: tuple[str, ...] = ()
    claims: frozenset[str] = frozenset()  # canonical addresses among ``recorded``
    rank: tuple[str, str] = ("", "")


def read_service(doc: Mapping[str, Any], key: str, *, claim_classless: bool) -> _Service:
    request, _ = request_from_manifest(doc)
    if request is None or not request.is_ours(claim_classless=claim_classless):
        return _Service(doc, None)
    recorded = recorded_ips(doc)
    claims = set()
    for text in recorded:
        try:
            claims.add(str(addresses.parse_ip(text)))
        except ValueError:
            continue  # the check rejects it (Invalid) on its own; it claims nothing
    return _Service(doc, request, recorded, frozenset(claims), precedence(doc, key))


def _trust_inputs(config: Config) -> tuple[Any, ...]:
    """What :class:`~ironlb.ipam.TrustCheck` reads of a Config (an advertisement edit changes none)."""
    return config.pools, config.tenants, config.namespaces


# --- the builder --------------------------------------------------------------------------------


@dataclass
class _Tables:
    """The published tables; each is replaced (never mutated) when something in it changed."""

    assignments: Mapping[str, Assignment] = field(default_factory=dict)
    rejected: Mapping[str, tuple[Rejected, ...]] = field(default_factory=dict)
    endpoints: Mapping[str, frozenset[str]] = field(default_factory=dict)
    nodes: Mapping[str, NodeInfo] = field(default_factory=dict)


class ViewBuilder:
    """Services, Nodes and EndpointSlices in; trusted ClusterViews out, rebuilt per change."""

    def __init__(self, *, claim_classless: bool = False) -> None:
        self.claim_classless = claim_classless
        self.config = Config()
        self._check: TrustCheck | None = None
        self._docs: dict[Kind, dict[str, Mapping[str, Any]]] = {k: {} for k in KINDS}
        self._dirty: dict[Kind, set[str]] = {k: set() for k in KINDS}
        self._services: dict[str, _Service] = {}
        self._claims: dict[str, set[str]] = {}  # address -> keys of the Services recording it
        self._trusted: dict[str, Assignment] = {}
        self._rejected: dict[str, tuple[Rejected, ...]] = {}
        self._nodes: dict[str, NodeInfo] = {}
        self._slices: dict[str, tuple[str | None, frozenset[str]]] = {}
        self._slices_of: dict[str, set[str]] = {}  # service key -> its slice keys
        self._endpoints: dict[str, frozenset[str]] = {}
        self._out = _Tables()

    # --- input ---------------------------------------------------------------------------

    def set_config(self, config: Config) -> None:
        """The Config to check against; Services are re-checked only if what the check reads changed."""
        if config is self.config:
            return
        if _trust_inputs(config) != _trust_inputs(self.config):
            self._check = None  # pools, tenants or namespaces moved: re-check every Service
        self.config = config

    def put(self, kind: Kind, doc: Mapping[str, Any]) -> None:
        """An object added or changed (the same object again is free)."""
        key = object_key(kind, doc)
        docs = self._docs[kind]
        if docs.get(key) is not doc:
            docs[key] = doc
            self._dirty[kind].add(key)

    def delete(self, kind: Kind, doc: Mapping[str, Any]) -> None:
        key = object_key(kind, doc)
        if self._docs[kind].pop(key, None) is not None:
            self._dirty[kind].add(key)

    def replace(self, kind: Kind, docs: Iterable[Mapping[str, Any]]) -> None:
        """The whole set of one kind (e.g. re-read from files): only objects that differ count."""
        new = {object_key(kind, d): d for d in docs}
        old = self._docs[kind]
        for key in [k for k in old if k not in new]:
            del old[key]
            self._dirty[kind].add(key)
        for key, doc in new.items():
            if old.get(key) != doc:
                old[key] = doc
                self._dirty[kind].add(key)

    # --- output --------------------------------------------------------------------------

    @property
    def requests(self) -> Mapping[str, ServiceRequest]:
        """Our LoadBalancer Services (as of the last :meth:`build`), by key."""
        return {k: s.request for k, s in self._services.items() if s.request is not None}

    def build(self) -> ClusterView:
        """The view for everything fed so far (tables nothing touched are reused)."""
        out = self._out
        if self._check is None:
            self._check = TrustCheck(self.config)
            self._dirty[SERVICES].update(self._docs[SERVICES], self._services)
        if self._dirty[SERVICES]:
            changed = self._services_changed(self._check)
            if changed[0]:
                out.assignments = dict(self._trusted)
            if changed[1]:
                out.rejected = dict(self._rejected)
        if self._dirty[NODES] and self._nodes_changed():
            out.nodes = dict(self._nodes)
        if self._dirty[SLICES] and self._slices_changed():
            out.endpoints = dict(self._endpoints)
        return ClusterView(
            config=self.config,
            assignments=out.assignments,
            endpoints=out.endpoints,
            nodes=out.nodes,
            rejected=out.rejected,
        )

    # --- services: parse, index claims, check per component ------------------------------

    def _services_changed(self, check: TrustCheck) -> tuple[bool, bool]:
        """Re-read dirty Services and re-check every Service sharing an address with them."""
        dirty, self._dirty[SERVICES] = self._dirty[SERVICES], set()
        docs = self._docs[SERVICES]
        todo = set(dirty)
        for key in dirty:
            old = self._services.pop(key, None)
            doc = docs.get(key)
            if old is not None:
                if doc is not None and old.doc is doc:  # same object, new Config: reuse the reading
                    self._services[key] = old
                    todo.update(*(self._claims.get(ip, ()) for ip in old.claims))
                    continue
                self._unclaim(key, old.claims, todo)
            if doc is None:
                continue
            new = read_service(doc, key, claim_classless=self.claim_classless)
            self._services[key] = new
            for ip in new.claims:
                holders = self._claims.setdefault(ip, set())
                holders.add(key)
                todo.update(holders)
        return self._recheck(check, todo)

    def _unclaim(self, key: str, claims: Iterable[str], todo: set[str]) -> None:
        for ip in claims:
            holders = self._claims.get(ip)
            if holders is not None:
                holders.discard(key)
                todo.update(holders)
                if not holders:
                    del self._claims[ip]

    def _component(self, start: str) -> list[str]:
        """Every Service linked to ``start`` by a shared recorded address."""
        seen, stack = {start}, [start]
        while stack:
            svc = self._services.get(stack.pop())
            for ip in svc.claims if svc is not None else ():
                for other in self._claims.get(ip, ()):
                    if other not in seen:
                        seen.add(other)
                        stack.append(other)
        return list(seen)

    def _recheck(self, check: TrustCheck, todo: set[str]) -> tuple[bool, bool]:
        moved_trusted = moved_rejected = False
        done: set[str] = set()
        for start in todo:
            if start in done:
                continue
            component = self._component(start)
            done.update(component)
            mine = [k for k in component if (s := self._services.get(k)) is not None and s.request]
            mine.sort(key=lambda k: self._services[k].rank)
            items = [(self._services[k].request, self._services[k].recorded) for k in mine]
            verdicts = check.check_all((r, rec) for r, rec in items if r is not None)
            for key in component:
                verdict = verdicts.get(key)
                request = self._services[key].request if key in self._services else None
                held = verdict.assignment(request) if verdict and request else None
                bad = verdict.rejected if verdict else ()
                if self._trusted.get(key) != held:
                    moved_trusted = True
                    if held is None:
                        del self._trusted[key]
                    else:
                        self._trusted[key] = held
                if self._rejected.get(key, ()) != bad:
                    moved_rejected = True
                    if bad:
                        self._rejected[key] = bad
                    else:
                        del self._rejected[key]
        return moved_trusted, moved_rejected

    # --- nodes and endpoints --------------------------------------------------------------

    def _nodes_changed(self) -> bool:
        dirty, self._dirty[NODES] = self._dirty[NODES], set()
        changed = False
        for key in dirty:
            doc = self._docs[NODES].get(key)
            info = node_info(doc) if doc is not None and key else None
            changed |= _put(self._nodes, key, info)
        return changed

    def _slices_changed(self) -> bool:
        dirty, self._dirty[SLICES] = self._dirty[SLICES], set()
        services: set[str] = set()
        for key in dirty:
            old = self._slices.pop(key, None)
            if old is not None and old[0] is not None:
                services.add(old[0])
                self._slices_of.get(old[0], set()).discard(key)
            doc = self._docs[SLICES].get(key)
            if doc is None:
                continue
            new = slice_nodes(doc)
            self._slices[key] = new
            if new[0] is not None:
                services.add(new[0])
                self._slices_of.setdefault(new[0], set()).add(key)
        changed = False
        for svc in services:
            keys = self._slices_of.get(svc)
            nodes = frozenset().union(*(self._slices[k][1] for k in keys)) if keys else None
            if not keys:
                self._slices_of.pop(svc, None)
            changed |= _put(self._endpoints, svc, nodes)
        return changed


def _put(table: dict[str, V], key: str, value: V | None) -> bool:
    """Set ``table[key]`` (None: remove it); True when that changed the table."""
    if table.get(key) == value:
        return False
    if value is None:
        del table[key]
    else:
        table[key] = value
    return True
