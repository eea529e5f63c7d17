"""The Kubernetes API client wrapper: the one module that imports lightkube.

Everything above it works on plain ``dict`` objects (the JSON the API server speaks), so
swapping the client library touches one file.  Each resource IronLB reads or writes is a
:class:`Kind`.  In a pod the client uses the in-cluster service account (lightkube's
``KubeConfig.from_env()``, unchanged); standalone, a kubeconfig file.

Every request is counted in :attr:`KubeClient.calls` by (verb, API group, resource
[/subresource], namespace): the ``ironlb_kube_api_requests_total`` metric, the API write
rate the benchmarks report, and the RBAC table's test (every call a role makes must be
granted to it) all read that one record.

Errors are sorted by what the caller should do:

- :class:`NotFound` (404) and :class:`Conflict` (409: exists, or a stale resourceVersion)
  are answers, handled by the caller's logic;
- :class:`Gone` (410) means a watch's resourceVersion expired: relist;
- :class:`ApiUnavailable` is everything transient (connection refused, timeouts, 5xx,
  429): back off and retry; never crash, never drop state.

Only what the API server, or the way to it, does to a request is turned into these: an HTTP
error status (lightkube's ``ApiError`` is one) and a connection, timeout or protocol
failure, all ``httpx2.HTTPError``.  Anything else raised inside a call (a ``TypeError``, a
``KeyError``) is a bug, ours or the library's, and propagates as itself: retrying it would
only hide it.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import httpx2
from lightkube import AsyncClient
from lightkube.config.kubeconfig import KubeConfig
from lightkube.config.models import Cluster, User
from lightkube.core.exceptions import ConfigError as LightkubeConfigError
from lightkube.core.exceptions import NotReadyError
from lightkube.generic_resource import create_global_resource, create_namespaced_resource
from lightkube.types import PatchType

from ironlb.errors import IronLBError
from ironlb.model import API_GROUP, API_VERSION, RESOURCE_KINDS
from ironlb.nodestate import NodeState

FIELD_MANAGER = "ironlb"


class KubeError(IronLBError):
    """Base of errors from the API server; ``code`` is the HTTP status (0: no answer)."""

    def __init__(self, message: str, code: int = 0):
        self.code = code
        super().__init__(message)


class NotFound(KubeError):
    """The object does not exist."""


class Conflict(KubeError):
    """The object already exists, or its resourceVersion changed since we read it."""


class Gone(KubeError):
    """A watch's resourceVersion is too old: relist, then watch again."""


class ApiUnavailable(KubeError):
    """No usable answer (connection, timeout, 5xx, 429): back off and retry."""


@dataclass(frozen=True)
class Kind:
    """A resource type: where it lives in the API and whether it is namespaced."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def __str__(self) -> str:
        return f"{self.plural}.{self.group or 'core'}"


SERVICES = Kind("", "v1", "Service", "services")
NODES = Kind("", "v1", "Node", "nodes", namespaced=False)
NAMESPACES = Kind("", "v1", "Namespace", "namespaces", namespaced=False)
EVENTS = Kind("", "v1", "Event", "events")
ENDPOINT_SLICES = Kind("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices")
LEASES = Kind("coordination.k8s.io", "v1", "Lease", "leases")


def crd_kind(kind: str, plural: str) -> Kind:
    """One of IronLB's custom resources (cluster-scoped: pools and tenants are platform objects)."""
    return Kind(API_GROUP, API_VERSION, kind, plural, namespaced=False)


#: IronLB's configuration custom resources, by plural.
CRDS: dict[str, Kind] = {cls.PLURAL: crd_kind(cls.KIND, cls.PLURAL) for cls in RESOURCE_KINDS.values()}
#: What each node's speaker reports about itself (one object per node).
NODE_STATES = crd_kind(NodeState.KIND, NodeState.PLURAL)
#: Everything the speaker watches, by cache name (CRDs under their plural).
SPEAKER_KINDS: dict[str, Kind] = {
    "services": SERVICES,
    "endpointslices": ENDPOINT_SLICES,
    "nodes": NODES,
    "namespaces": NAMESPACES,
    **CRDS,
}
#: Everything the controller watches: configuration, Services, Namespaces, and the nodes'
#: reports (NodeStates, with Nodes for their readiness) to publish who announces what.
CONTROLLER_KINDS: dict[str, Kind] = {
    "services": SERVICES,
    "nodes": NODES,
    "namespaces": NAMESPACES,
    "nodestates": NODE_STATES,
    **CRDS,
}

#: Every kind either role watches (the lab declares these in its API stand-in).
AGENT_KINDS: dict[str, Kind] = {**SPEAKER_KINDS, **CONTROLLER_KINDS}


class Call(NamedTuple):
    """One kind of request: verb, API group, resource[/subresource], namespace ("" if none)."""

    verb: str
    group: str
    resource: str
    namespace: str


_classes: dict[Kind, Any] = {}


def _res(kind: Kind) -> Any:
    cls = _classes.get(kind)
    if cls is None:
        make = create_namespaced_resource if kind.namespaced else create_global_resource
        cls = make(kind.group, kind.version, kind.kind, kind.plural)
        _classes[kind] = cls
    return cls


def _wrap(exc: httpx2.HTTPError, what: str) -> KubeError:
    """The :class:`KubeError` that says what the caller should do about ``exc``."""
    if isinstance(exc, httpx2.HTTPStatusError):
        status = getattr(exc, "status", None)  # lightkube ApiError; watch ERROR events have no response
        response = getattr(exc, "response", None)
        code = int(getattr(status, "code", None) or (response.status_code if response is not None else 0))
        detail = _status_message(exc) or str(exc).splitlines()[0]
        message = f"{what}: HTTP {code}: {detail}"
        if code == 404:
            return NotFound(message, code)
        if code == 409:
            return Conflict(message, code)
        if code == 410:
            return Gone(message, code)
        return ApiUnavailable(message, code)
    return ApiUnavailable(f"{what}: {type(exc).__name__}: {exc}", 0)


def _status_message(exc: httpx2.HTTPStatusError) -> str:
    status = getattr(exc, "status", None)
    if status is not None and getattr(status, "code", None) is not None:
        return str(status.message or status.reason or "")
    try:
        body = exc.response.json() if getattr(exc, "response", None) is not None else None
    except (ValueError, httpx2.StreamError):  # not JSON, or a streamed body never read: no detail
        return ""
    return str(body.get("message") or body.get("reason") or "") if isinstance(body, dict) else ""


def _plain(obj: Any) -> dict[str, Any]:
    return dict(obj.to_dict()) if hasattr(obj, "to_dict") else dict(obj)


def _meta(body: Mapping[str, Any]) -> tuple[str, str | None]:
    meta = body.get("metadata") or {}
    return str(meta.get("name") or ""), meta.get("namespace")


class KubeClient:
    """Dict-in, dict-out access to the API server (see the module docstring for errors)."""

    def __init__(self, config: Any, *, timeout: float = 10.0):
        self._client = AsyncClient(
            config, field_manager=FIELD_MANAGER, timeout=httpx2.Timeout(timeout), trust_env=False
        )
        #: Requests made, by kind of request (see :class:`Call`).
        self.calls: Counter[Call] = Counter()

    def _count(self, verb: str, kind: Kind, namespace: str | None, sub: str = "") -> None:
        resource = f"{kind.plural}/{sub}" if sub else kind.plural
        self.calls[Call(verb, kind.group, resource, namespace or "")] += 1

    @classmethod
    def connect(
        cls, server: str | None = None, kubeconfig: str | None = None, timeout: float = 10.0
    ) -> KubeClient:
        """In-cluster credentials (a pod), a kubeconfig file, or a URL without credentials
        (``kubectl proxy`` on localhost).  Without both arguments lightkube's ``from_env()``
        decides: the pod's service account, else ``$KUBECONFIG`` / ``~/.kube/config``."""
        try:
            if server:
                config = KubeConfig.from_one(cluster=Cluster(server=server), user=User())
            elif kubeconfig:
                config = KubeConfig.from_file(kubeconfig)
            else:
                config = KubeConfig.from_env()
        except (LightkubeConfigError, OSError) as exc:
            where = (
                kubeconfig or os.environ.get("KUBECONFIG") or "in-cluster service account / ~/.kube/config"
            )
            raise ApiUnavailable(f"cannot load Kubernetes credentials from {where}: {exc}") from exc
        return cls(config, timeout=timeout)

    async def close(self) -> None:
        await self._client.close()

    async def list(self, kind: Kind) -> tuple[list[dict[str, Any]], str | None]:
        """Every object of ``kind`` (all namespaces) and the list's resourceVersion."""
        self._count("list", kind, None)
        try:
            it = (
                self._client.list(_res(kind), namespace="*")
                if kind.namespaced
                else self._client.list(_res(kind))
            )
            items = [_plain(o) async for o in it]
            try:
                version: str | None = it.resourceVersion
            except NotReadyError:  # the list carried no resourceVersion
                version = None
        except httpx2.HTTPError as exc:
            raise _wrap(exc, f"list {kind}") from exc
        return items, version

    async def watch(
        self, kind: Kind, resource_version: str | None
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """Events (ADDED/MODIFIED/DELETED, object) after ``resource_version``.

        Ends normally only when the server closes the stream; raises :class:`Gone` on 410
        and :class:`ApiUnavailable` on a broken connection.
        """
        ns: dict[str, Any] = {"namespace": "*"} if kind.namespaced else {}
        self._count("watch", kind, None)
        stream = self._client.watch(_res(kind), resource_version=resource_version, **ns)
        try:
            async for event, obj in stream:
                yield str(event), _plain(obj)
        except httpx2.HTTPError as exc:
            raise _wrap(exc, f"watch {kind}") from exc

    async def get(self, kind: Kind, name: str, namespace: str | None = None) -> dict[str, Any]:
        self._count("get", kind, namespace)
        try:
            ns: dict[str, Any] = {"namespace": namespace} if kind.namespaced else {}
            return _plain(await self._client.get(_res(kind), name, **ns))
        except httpx2.HTTPError as exc:
            raise _wrap(exc, f"get {kind} {namespace or ''}/{name}") from exc

    async def create(self, kind: Kind, body: Mapping[str, Any]) -> dict[str, Any]:
        return await self._write("create", kind, body)

    async def replace(self, kind: Kind, body: Mapping[str, Any]) -> dict[str, Any]:
        """PUT: with ``metadata.resourceVersion`` set, a compare-and-swap (409 if it moved)."""
        return await self._write("update", kind, body)

    async def _write(self, verb: str, kind: Kind, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST (``create``) or PUT (``update``) the whole object ``body``."""
        name, namespace = _meta(body)
        self._count(verb, kind, namespace)
        try:
            obj = _res(kind).from_dict({"apiVersion": kind.api_version, "kind": kind.kind, **body})
            ns: dict[str, Any] = {"namespace": namespace} if kind.namespaced else {}
            if verb == "create":
                return _plain(await self._client.create(obj, **ns))
            return _plain(await self._client.replace(obj, name, **ns))
        except httpx2.HTTPError as exc:
            what = "create" if verb == "create" else "replace"
            raise _wrap(exc, f"{what} {kind} {namespace or ''}/{name}") from exc

    async def patch(
        self, kind: Kind, name: str, namespace: str | None, patch: Mapping[str, Any], *, status: bool = False
    ) -> dict[str, Any]:
        """JSON merge patch (RFC 7386: ``None`` deletes a key); ``status`` targets the subresource."""
        res = _res(kind).Status if status else _res(kind)
        self._count("patch", kind, namespace, "status" if status else "")
        try:
            ns: dict[str, Any] = {"namespace": namespace} if kind.namespaced else {}
            out = await self._client.patch(res, name, dict(patch), patch_type=PatchType.MERGE, **ns)
            return _plain(out)
        except httpx2.HTTPError as exc:
            raise _wrap(exc, f"patch {kind}{'/status' if status else ''} {namespace or ''}/{name}") from exc

    async def delete(self, kind: Kind, name: str, namespace: str | None = None) -> None:
        self._count("delete", kind, namespace)
        try:
            ns: dict[str, Any] = {"namespace": namespace} if kind.namespaced else {}
            await self._client.delete(_res(kind), name, **ns)
        except httpx2.HTTPError as exc:
            raise _wrap(exc, f"delete {kind} {namespace or ''}/{name}") from exc
