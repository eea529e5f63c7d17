"""Shared helpers for the Kubernetes tests (tests/test_kube_*.py), on the lab API server.

The tests run IronLB's roles against :mod:`lab.apiserver` in-process (the fixtures in
``tests/apiserver_support.py``): HTTPS, a bearer token per ServiceAccount, RBAC from the
RBAC objects **the NodeAgent component renders** (loaded unmodified with the rest of the
install by :func:`install`), CRD schema validation and pruning, status subresources,
resourceVersion conflicts.  Each role connects exactly as it does standalone: a kubeconfig
file (server, CA, token) given to :meth:`KubeClient.connect`.  The server's report
(:func:`violations`) counts every 403, pruned or ignored field, 409 and 422, so a test can
assert there were none.

What the stand-in does not reproduce (see ``lab/apiserver/__init__.py``): admission
plugins, server-side apply, pagination, bookmarks, ownerReference garbage collection.

The informer's failure tests stay on kmock (:func:`kmock_client` and friends), which can
script what no well-behaved server does on cue: a 410 in the middle of a watch, a stream
closed early.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Iterable
from pathlib import Path
from typing import Any, TypeVar

import kmock as km
import yaml

from ironlb.agent.kube.client import AGENT_KINDS, CONTROLLER_KINDS, LEASES, Kind, KubeClient
from ironlb.agent.kube.controller import Controller, ControllerSettings
from ironlb.agent.kube.informer import Caches, InformerSettings
from ironlb.agent.kube.writers import Writer
from ironlb.components.node_agent import NodeAgent
from ironlb.components.offline import manifests, run_mocked
from lab.manifests import namespace
from tests.apiserver_support import service_account_rbac

NS = "ironlb-system"
KEY = "a-membership-key-of-at-least-32-bytes"
T = TypeVar("T")
SERVICE_NAMESPACES = ("team-a", "team-b", "red-ns", "blue-ns")  # "default" exists already


# --- kmock (scripted failures) ---------------------------------------------------------------

SVC = km.resource("", "v1", "services")


def kmock_client(mock: Any, timeout: float = 3.0) -> KubeClient:
    """Our client on kmock's URL (no credentials, as through ``kubectl proxy``)."""
    return KubeClient.connect(server=str(mock.servers[0].url), timeout=timeout)


def kmock_declare(mock: Any) -> None:
    """Make every kind IronLB watches listable (empty) in kmock."""
    for kind in [*AGENT_KINDS.values(), LEASES]:
        group = f"{kind.group}/" if kind.group else ""
        mock.resources[f"{group}{kind.version}/{kind.plural}"] = {"namespaced": kind.namespaced}


def kmock_put(mock: Any, kind: Kind, body: dict[str, Any]) -> None:
    meta = body["metadata"]
    resource = km.resource(kind.group, kind.version, kind.plural)
    mock.objects[resource, meta.get("namespace"), meta["name"]] = body


# --- the lab API server ----------------------------------------------------------------------


def rendered_install(**args: Any) -> list[dict[str, Any]]:
    """What ``NodeAgent`` renders: CRDs, both roles' RBAC, settings, workloads (secrets redacted)."""
    settings: Any = {"membership_key": KEY, **args}  # NodeAgentArgs, as each test passes them
    ev = run_mocked(lambda: NodeAgent("ironlb", settings) and None)
    return manifests(ev)


async def install(admin: Any, *extra: dict[str, Any], **args: Any) -> None:
    """Load the rendered install, the Services' namespaces and ``extra`` objects, as cluster admin."""
    base = [namespace(n) for n in SERVICE_NAMESPACES]
    await admin.load([*base, *rendered_install(**args), *extra])


async def role_client(
    apiserver: Any, admin: Any, role: str, directory: Path, timeout: float = 5.0
) -> KubeClient:
    """A client with the ``role`` ServiceAccount's identity, through a kubeconfig file."""
    return await account_client(apiserver, admin, NS, f"ironlb-{role}", directory, timeout)


async def account_client(
    apiserver: Any, admin: Any, namespace: str, account: str, directory: Path, timeout: float = 5.0
) -> KubeClient:
    """Our client as any ServiceAccount (a bearer token in a kubeconfig file, as in a pod)."""
    token = await admin.token(namespace, account)
    path = directory / f"{namespace}.{account}.kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "lab",
                        "cluster": {"server": apiserver.url, "certificate-authority": str(apiserver.ca_file)},
                    }
                ],
                "users": [{"name": account, "user": {"token": token}}],
                "contexts": [{"name": account, "context": {"cluster": "lab", "user": account}}],
                "current-context": account,
            }
        )
    )
    return KubeClient.connect(kubeconfig=str(path), timeout=timeout)


#: What a tenant may do with Services in its namespace: everything but status, which decides
#: what is announced (CVE-2020-8554); docs/decisions/0062-trust-boundary.md.
TENANT_RULES = [
    {
        "apiGroups": [""],
        "resources": ["services"],
        "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"],
    }
]
#: A misconfiguration the trust check must survive: the tenant may write Service status too.
MISCONFIGURED_TENANT_RULES = [
    *TENANT_RULES,
    {"apiGroups": [""], "resources": ["services/status"], "verbs": ["get", "update", "patch"]},
]


async def tenant_client(
    apiserver: Any, admin: Any, namespace: str, directory: Path, *, status: bool = False
) -> KubeClient:
    """A tenant's client: a ServiceAccount in ``namespace`` with the recommended Role (+ status)."""
    rules = MISCONFIGURED_TENANT_RULES if status else TENANT_RULES
    await admin.load(service_account_rbac(namespace, "tenant", rules))
    return await account_client(apiserver, admin, namespace, "tenant", directory)


def user(role: str) -> str:
    return f"system:serviceaccount:{NS}:ironlb-{role}"


def violations(apiserver: Any, *roles: str) -> dict[str, list[Any]]:
    """The server's violations (forbidden, pruned, ignored, conflicts, invalid...), of ``roles`` if given."""
    users = {user(r) for r in roles}
    report = apiserver.report()
    out = {}
    for key, found in report["violations"].items():
        mine = [v for v in found if not users or v.get("user") in users]
        if mine:
            out[key] = mine
    return out


async def get(admin: Any, kind: Kind, name: str, namespace: str | None = None) -> dict[str, Any]:
    found = await admin.get(kind.api_version, kind.kind, name, namespace=namespace)
    return found or {}


async def events(admin: Any, name: str | None = None) -> list[tuple[str, str, str]]:
    out = []
    for e in await admin.list("v1", "Event"):
        if name is None or (e.get("involvedObject") or {}).get("name") == name:
            out.append((e["type"], e["reason"], e["message"]))
    return out


def ingress_ips(doc: dict[str, Any]) -> list[str]:
    return [i.get("ip") for i in ((doc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []]


def annotation(doc: dict[str, Any], key: str) -> str | None:
    value = ((doc.get("metadata") or {}).get("annotations") or {}).get(key)
    return str(value) if value is not None else None


def names(items: Iterable[dict[str, Any]]) -> list[str]:
    return sorted(str(i["metadata"]["name"]) for i in items)


def generator(views: AsyncIterator[T]) -> AsyncGenerator[T, None]:
    """A source's ``views()`` as the async generator it is, so a test can ``aclose`` it."""
    assert isinstance(views, AsyncGenerator), type(views)
    return views


async def cancel(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancel ``tasks`` and wait until each has finished."""
    tasks = list(tasks)
    for t in tasks:
        t.cancel()
    for t in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await t


@contextlib.asynccontextmanager
async def running_controller(
    client: KubeClient, settings: ControllerSettings, informer: InformerSettings
) -> AsyncIterator[Controller]:
    """One controller term with its own caches (a restart is a new one), cancelled on exit."""
    caches = Caches(client, CONTROLLER_KINDS, informer)
    ctrl = Controller(caches, Writer(client, "controller-0"), settings)
    tasks = [*caches.tasks(), asyncio.create_task(ctrl.run())]
    try:
        yield ctrl
    finally:
        await cancel(tasks)


async def set_ingress(admin: Any, name: str, *ips: str, namespace: str = "default") -> None:
    """Write ``status.loadBalancer.ingress`` as the cluster admin (what only the controller may do)."""
    code, answer = await admin.request(
        "PATCH",
        f"/api/v1/namespaces/{namespace}/services/{name}/status",
        {"status": {"loadBalancer": {"ingress": [{"ip": ip} for ip in ips]}}},
        content_type="application/merge-patch+json",
    )
    assert code == 200, answer
