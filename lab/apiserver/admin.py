"""The test process's client: cluster admin over the server's Unix socket.

:class:`AdminClient` speaks plain HTTP over the socket (``httpx2``, lightkube's HTTP
library) and finds each kind's plural and scope through the server's discovery endpoints,
as kubectl does, so it loads any manifest the server serves -- including custom resources
right after their CRD.  :meth:`AdminClient.load` creates objects in dependency order
(:data:`ORDER`) and stops at the first failure with a :class:`LoadError` that names the
object and quotes the server's message.  :meth:`AdminClient.lightkube_client` gives a
lightkube ``AsyncClient`` over the same socket, for tests that want typed access.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx2
from lightkube import AsyncClient
from lightkube.config.kubeconfig import KubeConfig
from lightkube.config.models import Cluster, User

MERGE = "application/merge-patch+json"
BASE_URL = "http://apiserver"

#: Creation order by kind (unlisted kinds go between Secrets and the workloads).
ORDER = (
    "Namespace",
    "CustomResourceDefinition",
    "ServiceAccount",
    "ClusterRole",
    "Role",
    "ClusterRoleBinding",
    "RoleBinding",
    "ConfigMap",
    "Secret",
    "*",
    "Service",
    "DaemonSet",
    "Deployment",
    "Pod",
)


class AdminError(Exception):
    """The server refused an admin request: ``code`` and the Status message."""

    def __init__(self, code: int, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"HTTP {code}: {message}")


class LoadError(AdminError):
    """An object of a manifest set could not be created (names the object)."""


def _rank(manifest: Mapping[str, Any]) -> int:
    kind = str(manifest.get("kind"))
    return ORDER.index(kind) if kind in ORDER else ORDER.index("*")


def _where(manifest: Mapping[str, Any]) -> str:
    meta = manifest.get("metadata") or {}
    ns = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f'{manifest.get("kind")} "{ns}{meta.get("name")}"'


class AdminClient:
    def __init__(self, socket: Path, timeout: float = 10.0) -> None:
        self.socket = Path(socket)
        transport = httpx2.AsyncHTTPTransport(uds=str(self.socket))
        self._http = httpx2.AsyncClient(transport=transport, base_url=BASE_URL, timeout=timeout)
        self._discovery: dict[str, dict[str, tuple[str, bool]]] = {}

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AdminClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- raw -------------------------------------------------------------------------------
    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        params: Mapping[str, str] | None = None,
    ) -> tuple[int, Any]:
        """(status code, decoded JSON body) of one request; never raises on an HTTP error."""
        content = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": content_type} if content is not None else {}
        response = await self._http.request(method, path, content=content, headers=headers, params=params)
        try:
            return response.status_code, response.json()
        except ValueError:
            return response.status_code, response.text

    async def _ok(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        code, answer = await self.request(method, path, body, **kw)
        if code >= 300:
            message = answer.get("message", "") if isinstance(answer, dict) else str(answer)
            raise AdminError(code, message)
        return answer

    # -- paths -----------------------------------------------------------------------------
    async def _resource(self, api_version: str, kind: str) -> tuple[str, bool]:
        for attempt in (1, 2):
            if api_version not in self._discovery or attempt == 2:
                path = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
                code, answer = await self.request("GET", path)
                found: dict[str, tuple[str, bool]] = {}
                if code == 200 and isinstance(answer, dict):
                    for r in answer.get("resources") or []:
                        if "/" not in r["name"]:
                            found[r["kind"]] = (r["name"], bool(r.get("namespaced")))
                self._discovery[api_version] = found
            if kind in self._discovery[api_version]:
                return self._discovery[api_version][kind]
        raise AdminError(404, f"the server does not serve {kind} in {api_version}")

    async def path(self, api_version: str, kind: str, name: str = "", namespace: str | None = None) -> str:
        plural, namespaced = await self._resource(api_version, kind)
        base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        if namespaced:
            base += f"/namespaces/{namespace or 'default'}"
        return f"{base}/{plural}/{name}" if name else f"{base}/{plural}"

    # -- objects ---------------------------------------------------------------------------
    async def create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        meta = obj.get("metadata") or {}
        path = await self.path(
            str(obj.get("apiVersion")), str(obj.get("kind")), namespace=meta.get("namespace")
        )
        result: dict[str, Any] = await self._ok("POST", path, dict(obj))
        return result

    async def load(self, manifests: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Create every manifest, in dependency order; LoadError names the first that fails."""
        out = []
        for manifest in sorted((m for m in manifests if m), key=_rank):
            try:
                out.append(await self.create(manifest))
            except AdminError as exc:
                raise LoadError(exc.code, f"{_where(manifest)}: {exc.message}") from exc
        return out

    async def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> dict[str, Any] | None:
        code, answer = await self.request("GET", await self.path(api_version, kind, name, namespace))
        if code == 404:
            return None
        if code >= 300:
            raise AdminError(code, str(answer))
        result: dict[str, Any] = answer
        return result

    async def list(self, api_version: str, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        plural, namespaced = await self._resource(api_version, kind)
        path = (
            await self.path(api_version, kind, namespace=namespace)
            if namespace or not namespaced
            else (
                (f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}") + f"/{plural}"
            )
        )
        answer = await self._ok("GET", path)
        return list(answer.get("items") or [])

    async def patch(
        self,
        api_version: str,
        kind: str,
        name: str,
        patch: Any,
        *,
        namespace: str | None = None,
        subresource: str = "",
        content_type: str = MERGE,
    ) -> dict[str, Any]:
        path = await self.path(api_version, kind, name, namespace)
        path += f"/{subresource}" if subresource else ""
        result: dict[str, Any] = await self._ok("PATCH", path, patch, content_type=content_type)
        return result

    async def replace(self, obj: Mapping[str, Any], subresource: str = "") -> dict[str, Any]:
        meta = obj.get("metadata") or {}
        path = await self.path(
            str(obj.get("apiVersion")), str(obj.get("kind")), str(meta.get("name")), meta.get("namespace")
        )
        path += f"/{subresource}" if subresource else ""
        result: dict[str, Any] = await self._ok("PUT", path, dict(obj))
        return result

    async def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> None:
        await self._ok("DELETE", await self.path(api_version, kind, name, namespace))

    async def token(self, namespace: str, service_account: str) -> str:
        """A bearer token for ``system:serviceaccount:<namespace>:<service_account>``."""
        path = f"/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}/token"
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}}
        answer = await self._ok("POST", path, body)
        return str(answer["status"]["token"])

    async def report(self, since: float | None = None) -> dict[str, Any]:
        params = {"since": str(since)} if since is not None else None
        result: dict[str, Any] = await self._ok("GET", "/lab/v1/report", params=params)
        return result

    def lightkube_client(self, timeout: float = 10.0) -> AsyncClient:
        """lightkube as cluster admin over the socket (close it with ``await client.close()``)."""
        config = KubeConfig.from_one(cluster=Cluster(server=BASE_URL), user=User())
        transport = httpx2.AsyncHTTPTransport(uds=str(self.socket))
        return AsyncClient(config, transport=transport, timeout=httpx2.Timeout(timeout), trust_env=False)
