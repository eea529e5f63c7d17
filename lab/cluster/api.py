"""Plain synchronous REST to the lab's API stand-in (:mod:`lab.apiserver`), as admin or as a user.

- :class:`Api` talks over the stand-in's Unix socket, which it trusts as cluster admin
  (``system:masters``): the harness loads the rendered objects, registers Nodes, writes Pod
  status (the lab kubelet writes as admin, not as ``system:node:<name>``: the stand-in has no
  Node authorizer), mints tokens and reads the violation report.
- :class:`UserApi` talks HTTPS with a bearer token to a ``--listen`` address, exactly as a
  pod or ``kubectl`` would; used for a tenant's requests from the lab client's namespace.

Paths are built from the kind: built-in kinds from :data:`BUILTIN`, custom resources from
the CustomResourceDefinitions this client has created (or is told about).  Errors come back
as (status, body); :meth:`Api.check` turns a non-2xx answer into :class:`ApiError`.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

#: kind -> (plural, namespaced) for the built-ins the lab touches
BUILTIN: dict[str, tuple[str, bool]] = {
    "Namespace": ("namespaces", False),
    "Node": ("nodes", False),
    "Service": ("services", True),
    "Endpoints": ("endpoints", True),
    "EndpointSlice": ("endpointslices", True),
    "Event": ("events", True),
    "Lease": ("leases", True),
    "ConfigMap": ("configmaps", True),
    "Secret": ("secrets", True),
    "ServiceAccount": ("serviceaccounts", True),
    "Pod": ("pods", True),
    "DaemonSet": ("daemonsets", True),
    "Deployment": ("deployments", True),
    "ResourceQuota": ("resourcequotas", True),
    "ClusterRole": ("clusterroles", False),
    "ClusterRoleBinding": ("clusterrolebindings", False),
    "Role": ("roles", True),
    "RoleBinding": ("rolebindings", True),
    "CustomResourceDefinition": ("customresourcedefinitions", False),
}
JSON = "application/json"
MERGE = "application/merge-patch+json"


class ApiError(RuntimeError):
    """An API request failed; the message names the request and the server's answer."""

    def __init__(self, what: str, status: int, body: Any) -> None:
        self.status, self.body = status, body
        message = body.get("message") if isinstance(body, Mapping) else body
        super().__init__(f"{what}: HTTP {status}: {message}")


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(str(self.unix_path))
        self.sock = sock


class _Paths:
    def __init__(self) -> None:
        self.kinds: dict[str, tuple[str, str, bool]] = {}  # kind -> (group, plural, namespaced)

    def learn(self, crd: Mapping[str, Any]) -> None:
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        self.kinds[str(names.get("kind"))] = (
            str(spec.get("group")),
            str(names.get("plural")),
            spec.get("scope") == "Namespaced",
        )

    def path(
        self, api_version: str, kind: str, namespace: str | None = None, name: str = "", sub: str = ""
    ) -> str:
        if kind in BUILTIN:
            plural, namespaced = BUILTIN[kind]
        elif kind in self.kinds:
            _, plural, namespaced = self.kinds[kind]
        else:
            raise KeyError(f"kind {kind} ({api_version}) is neither built in nor from a known CRD")
        root = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        ns = f"/namespaces/{namespace}" if namespaced and namespace else ""
        return root + ns + f"/{plural}" + (f"/{name}" if name else "") + (f"/{sub}" if sub else "")


class _Rest:
    def __init__(self) -> None:
        self.paths = _Paths()

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        raise NotImplementedError

    def _headers(self) -> dict[str, str]:
        return {}

    def request(
        self, method: str, path: str, body: Any = None, content_type: str = JSON, timeout: float = 10
    ) -> tuple[int, Any]:
        conn = self._connection(timeout)
        try:
            data = json.dumps(body) if body is not None else None
            conn.request(
                method,
                path,
                body=data,
                headers={"Content-Type": content_type, "Accept": JSON, **self._headers()},
            )
            resp = conn.getresponse()
            raw = resp.read()
        finally:
            conn.close()
        try:
            return resp.status, json.loads(raw) if raw else None
        except ValueError:
            return resp.status, raw.decode(errors="replace")

    @staticmethod
    def check(what: str, answer: tuple[int, Any]) -> Any:
        status, body = answer
        if not 200 <= status < 300:
            raise ApiError(what, status, body)
        return body

    def _path_of(self, obj: Mapping[str, Any], name: bool = True, sub: str = "") -> str:
        meta = obj.get("metadata") or {}
        return self.paths.path(
            str(obj["apiVersion"]),
            str(obj["kind"]),
            meta.get("namespace"),
            str(meta.get("name", "")) if name else "",
            sub,
        )

    def create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        if obj.get("kind") == "CustomResourceDefinition":
            self.paths.learn(obj)
        what = f"create {obj.get('kind')} {(obj.get('metadata') or {}).get('name')}"
        result: dict[str, Any] = self.check(what, self.request("POST", self._path_of(obj, name=False), obj))
        return result

    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> dict[str, Any] | None:
        status, body = self.request("GET", self.paths.path(api_version, kind, namespace, name))
        if status == 404:
            return None
        result: dict[str, Any] = self.check(f"get {kind} {name}", (status, body))
        return result

    def list(self, api_version: str, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        body = self.check(f"list {kind}", self.request("GET", self.paths.path(api_version, kind, namespace)))
        return list(body.get("items") or [])

    def patch(
        self,
        api_version: str,
        kind: str,
        name: str,
        patch: Mapping[str, Any],
        namespace: str | None = None,
        sub: str = "",
    ) -> dict[str, Any]:
        path = self.paths.path(api_version, kind, namespace, name, sub)
        result: dict[str, Any] = self.check(
            f"patch {kind} {name}{'/' + sub if sub else ''}", self.request("PATCH", path, patch, MERGE)
        )
        return result

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> None:
        self.check(
            f"delete {kind} {name}",
            self.request("DELETE", self.paths.path(api_version, kind, namespace, name)),
        )


class Api(_Rest):
    """Cluster admin over the stand-in's Unix socket."""

    def __init__(self, socket_path: Path) -> None:
        super().__init__()
        self.socket_path = socket_path

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        return _UnixConnection(self.socket_path, timeout)

    def load(self, manifests: Iterable[Mapping[str, Any]]) -> None:
        """Create every object, in the order given (the render's apply order)."""
        for m in manifests:
            self.create(m)

    def token(self, namespace: str, service_account: str) -> str:
        """A bearer token for the ServiceAccount, through the TokenRequest API."""
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"audiences": []}}
        path = f"/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}/token"
        answer = self.check(f"token for {namespace}/{service_account}", self.request("POST", path, body))
        return str(answer["status"]["token"])

    def report(self, since: float | None = None) -> dict[str, Any]:
        path = "/lab/v1/report" + (f"?since={since}" if since is not None else "")
        result: dict[str, Any] = self.check("violation report", self.request("GET", path))
        return result


class UserApi(_Rest):
    """A user with a bearer token over HTTPS (call it from inside the namespace that reaches the server)."""

    def __init__(self, host: str, port: int, token: str, ca_file: Path, paths: _Paths | None = None) -> None:
        super().__init__()
        self.host, self.port, self.token = host, port, token
        self.context = ssl.create_default_context(cafile=str(ca_file))
        if paths is not None:
            self.paths = paths

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        return http.client.HTTPSConnection(self.host, self.port, timeout=timeout, context=self.context)

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}
