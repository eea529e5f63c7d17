"""Fixtures and helpers for tests that need the lab API server (``lab.apiserver``) in-process.

Use it from any test module::

    # ruff: noqa: F811  (the fixtures below are redefined as test arguments)
    from tests.apiserver_support import admin, apiserver  # noqa: F401  (pytest fixtures)

    async def test_x(apiserver, admin):
        await admin.load([...])
        client = await sa_client(apiserver, admin, "ns", "sa")   # a pod's identity, over HTTPS

``apiserver`` is a running :class:`lab.apiserver.ApiServer` (HTTPS on 127.0.0.1 with a free
port, its CA, and the admin Unix socket) in a temporary directory removed afterwards (short,
so the socket path stays under the 108-byte limit); ``admin`` is an
:class:`lab.apiserver.AdminClient` (``system:masters``).  :func:`sa_client` gives a lightkube
client that authenticates as a ServiceAccount exactly as a pod does (CA file, bearer token);
:func:`service_account_rbac` builds a ServiceAccount with a (Cluster)Role and binding.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from lightkube import AsyncClient
from lightkube.config.kubeconfig import KubeConfig
from lightkube.config.models import Cluster, User

from lab.apiserver import AdminClient, ApiServer


@pytest.fixture
async def apiserver() -> AsyncIterator[ApiServer]:
    work = Path(tempfile.mkdtemp(prefix="ilb-api-"))
    try:
        async with ApiServer(work) as server:
            yield server
    finally:
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture
async def admin(apiserver: ApiServer) -> AsyncIterator[AdminClient]:
    async with apiserver.admin() as client:
        yield client


def client_for_token(apiserver: ApiServer, token: str, namespace: str = "default") -> AsyncClient:
    """lightkube over HTTPS with the lab CA and a bearer token (a pod's connection)."""
    config = KubeConfig.from_one(
        cluster=Cluster(server=apiserver.url, certificate_auth=str(apiserver.ca_file)),
        user=User(token=token),
        namespace=namespace,
    )
    return AsyncClient(config, timeout=httpx2.Timeout(10.0), trust_env=False)


async def sa_client(apiserver: ApiServer, admin: AdminClient, namespace: str, name: str) -> AsyncClient:
    return client_for_token(apiserver, await admin.token(namespace, name), namespace)


def service_account_rbac(
    namespace: str,
    name: str,
    rules: list[dict[str, Any]],
    *,
    cluster: bool = False,
    bind_in: str | None = None,
) -> list[dict[str, Any]]:
    """A ServiceAccount, a Role (or ClusterRole with ``cluster``) holding ``rules``, and a binding.

    ``bind_in``: bind a ClusterRole with a RoleBinding in that namespace (namespaced grant).
    """
    rbac = "rbac.authorization.k8s.io/v1"
    subject = {"kind": "ServiceAccount", "name": name, "namespace": namespace}
    role_kind = "ClusterRole" if cluster else "Role"
    role_meta: dict[str, Any] = {"name": f"{name}-role"}
    if not cluster:
        role_meta["namespace"] = namespace
    out: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": namespace}},
        {"apiVersion": rbac, "kind": role_kind, "metadata": role_meta, "rules": rules},
    ]
    ref = {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": f"{name}-role"}
    if cluster and bind_in is None:
        binding_meta: dict[str, Any] = {"name": f"{name}-binding"}
        out.append(
            {
                "apiVersion": rbac,
                "kind": "ClusterRoleBinding",
                "metadata": binding_meta,
                "roleRef": ref,
                "subjects": [subject],
            }
        )
    else:
        binding_meta = {"name": f"{name}-binding", "namespace": bind_in or namespace}
        out.append(
            {
                "apiVersion": rbac,
                "kind": "RoleBinding",
                "metadata": binding_meta,
                "roleRef": ref,
                "subjects": [subject],
            }
        )
    return out
