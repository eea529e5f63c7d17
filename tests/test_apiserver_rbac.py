"""Lab API server: authentication (tokens, 401) and RBAC from the stored Roles and bindings (403).

The table tests state the RBAC rules as sentences against the authoriser; the HTTP tests
check the same decisions end to end, for a ServiceAccount talking HTTPS with a minted token,
and that each denial is reported with the real server's message.
"""

# ruff: noqa: F811  (pytest fixtures imported from tests.apiserver_support are redefined as arguments)
from __future__ import annotations

import ssl
from typing import Any

import httpx2
import pytest
from lightkube.core.exceptions import ApiError
from lightkube.resources.core_v1 import Namespace, Service
from lightkube.types import PatchType

from lab.apiserver import AdminClient, ApiServer
from lab.apiserver.rbac import Attributes, Authorizer, User, rule_allows
from lab.apiserver.store import Store
from lab.manifests import namespace, service
from tests.apiserver_support import admin, apiserver, client_for_token, sa_client, service_account_rbac  # noqa: F401

READ = ["get", "list", "watch"]


@pytest.mark.parametrize(
    ("rule", "attrs", "allowed"),
    [
        (
            {"apiGroups": [""], "resources": ["services"], "verbs": READ},
            Attributes("get", "", "services"),
            True,
        ),
        (
            {"apiGroups": [""], "resources": ["services"], "verbs": READ},
            Attributes("patch", "", "services"),
            False,
        ),
        (
            {"apiGroups": [""], "resources": ["services"], "verbs": ["patch"]},
            Attributes("patch", "", "services", "status"),
            False,
        ),
        (
            {"apiGroups": [""], "resources": ["services/status"], "verbs": ["patch"]},
            Attributes("patch", "", "services", "status"),
            True,
        ),
        (
            {"apiGroups": [""], "resources": ["services/*"], "verbs": ["patch"]},
            Attributes("patch", "", "services", "status"),
            True,
        ),
        (
            {"apiGroups": ["*"], "resources": ["*/status"], "verbs": ["*"]},
            Attributes("update", "ironlb.io", "tenants", "status"),
            True,
        ),
        (
            {"apiGroups": ["ironlb.io"], "resources": ["ippools/status"], "verbs": ["patch"]},
            Attributes("patch", "ironlb.io", "tenants", "status"),
            False,
        ),
        (
            {"apiGroups": ["apps"], "resources": ["services"], "verbs": READ},
            Attributes("get", "", "services"),
            False,
        ),
        (
            {"apiGroups": [""], "resources": ["leases"], "verbs": ["update"], "resourceNames": ["ironlb"]},
            Attributes("update", "", "leases", name="ironlb"),
            True,
        ),
        (
            {"apiGroups": [""], "resources": ["leases"], "verbs": ["update"], "resourceNames": ["ironlb"]},
            Attributes("update", "", "leases", name="other"),
            False,
        ),
        (
            {"apiGroups": [""], "resources": ["leases"], "verbs": ["create"], "resourceNames": ["ironlb"]},
            Attributes("create", "", "leases"),
            False,
        ),
        (
            {"apiGroups": [""], "resources": ["leases"], "verbs": ["list"], "resourceNames": ["ironlb"]},
            Attributes("list", "", "leases"),
            False,
        ),
    ],
    ids=[
        "read grant allows get",
        "read grant does not allow patch",
        "a grant on services does not cover services/status",
        "services/status grant allows patching status",
        "services/* covers every subresource",
        "*/status covers status of anything",
        "ippools/status does not cover tenants/status",
        "the API group must match",
        "resourceNames allow the named object",
        "resourceNames refuse another name",
        "resourceNames cannot limit create (no name)",
        "resourceNames cannot limit an unpinned list",
    ],
)
def test_rule_matching(rule: dict[str, Any], attrs: Attributes, allowed: bool) -> None:
    assert rule_allows(rule, attrs) is allowed


def _put(store: Store, kind: str, plural: str, body: dict[str, Any]) -> None:
    body = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, **body}
    store.put(("rbac.authorization.k8s.io", plural), body)


def test_role_and_cluster_role_scoping() -> None:
    store = Store()
    sa = {"kind": "ServiceAccount", "name": "agent", "namespace": "sys"}
    rule = [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]
    _put(store, "ClusterRole", "clusterroles", {"metadata": {"name": "cm-reader"}, "rules": rule})
    _put(store, "Role", "roles", {"metadata": {"name": "local", "namespace": "sys"}, "rules": rule})
    _put(
        store,
        "RoleBinding",
        "rolebindings",
        {
            "metadata": {"name": "b1", "namespace": "team-a"},
            "subjects": [sa],
            "roleRef": {"kind": "ClusterRole", "name": "cm-reader", "apiGroup": "rbac.authorization.k8s.io"},
        },
    )
    _put(
        store,
        "RoleBinding",
        "rolebindings",
        {
            "metadata": {"name": "b2", "namespace": "sys"},
            "subjects": [sa],
            "roleRef": {"kind": "Role", "name": "local", "apiGroup": "rbac.authorization.k8s.io"},
        },
    )
    authz, user = Authorizer(store), User.service_account("sys", "agent")
    assert authz.allowed(
        user, Attributes("get", "", "configmaps", namespace="team-a")
    )  # ClusterRole via RoleBinding
    assert authz.allowed(user, Attributes("get", "", "configmaps", namespace="sys"))  # Role in its namespace
    assert not authz.allowed(user, Attributes("get", "", "configmaps", namespace="team-b"))
    assert not authz.allowed(user, Attributes("get", "", "configmaps"))  # all namespaces: cluster scope
    assert not authz.allowed(
        User.service_account("other", "agent"), Attributes("get", "", "configmaps", namespace="sys")
    )
    group = User("alice", ("devs", "system:authenticated"))
    _put(
        store,
        "ClusterRoleBinding",
        "clusterrolebindings",
        {
            "metadata": {"name": "devs"},
            "subjects": [{"kind": "Group", "name": "devs"}],
            "roleRef": {"kind": "ClusterRole", "name": "cm-reader", "apiGroup": "rbac.authorization.k8s.io"},
        },
    )
    assert authz.allowed(group, Attributes("get", "", "configmaps"))
    assert authz.allowed(group, Attributes("get", "", "configmaps", namespace="anywhere"))


async def test_denials_are_403_with_the_real_message_and_reported(
    apiserver: ApiServer, admin: AdminClient
) -> None:
    rules = [{"apiGroups": [""], "resources": ["services"], "verbs": [*READ, "patch"]}]
    await admin.load([*service_account_rbac("default", "agent", rules, cluster=True), service("web")])
    client = await sa_client(apiserver, admin, "default", "agent")
    try:
        await client.patch(Service, "web", {"metadata": {"labels": {"a": "b"}}}, namespace="default")
        with pytest.raises(ApiError) as denied:
            await client.patch(
                Service.Status, "web", {"status": {}}, namespace="default", patch_type=PatchType.MERGE
            )
        assert denied.value.status.code == 403
        assert denied.value.status.message == (
            'services "web" is forbidden: User "system:serviceaccount:default:agent" cannot patch resource '
            '"services/status" in API group "" in the namespace "default"'
        )
        with pytest.raises(ApiError) as denied:
            await client.get(Namespace, "default")
        assert str(denied.value.status.message).endswith('in API group "" at the cluster scope')
    finally:
        await client.close()
    forbidden = apiserver.report()["violations"]["forbidden"]
    assert [(f["verb"], f["resource"], f["subresource"], f["name"]) for f in forbidden] == [
        ("patch", "services", "status", "web"),
        ("get", "namespaces", "", "default"),
    ]
    assert forbidden[0]["user"] == "system:serviceaccount:default:agent"


async def test_a_role_binding_grants_only_in_its_namespace(apiserver: ApiServer, admin: AdminClient) -> None:
    rules = [{"apiGroups": [""], "resources": ["services"], "verbs": READ}]
    await admin.load(
        [
            namespace("team-a"),
            namespace("team-b"),
            *service_account_rbac("default", "agent", rules, cluster=True, bind_in="team-a"),
            service("a", "team-a"),
            service("b", "team-b"),
        ]
    )
    client = await sa_client(apiserver, admin, "default", "agent")
    try:
        assert [s.metadata and s.metadata.name async for s in client.list(Service, namespace="team-a")] == [
            "a"
        ]
        with pytest.raises(ApiError):
            [s async for s in client.list(Service, namespace="team-b")]
        with pytest.raises(ApiError):
            [
                s async for s in client.list(Service, namespace="*")
            ]  # all namespaces needs a ClusterRoleBinding
    finally:
        await client.close()


async def test_resource_names_allow_a_single_name_watch(apiserver: ApiServer, admin: AdminClient) -> None:
    rules = [{"apiGroups": [""], "resources": ["services"], "verbs": READ, "resourceNames": ["web"]}]
    await admin.load([*service_account_rbac("default", "agent", rules), service("web"), service("db")])
    token = await admin.token("default", "agent")
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx2.AsyncClient(
        base_url=apiserver.url, verify=ssl.create_default_context(cafile=apiserver.ca_file), headers=headers
    ) as http:
        base = "/api/v1/namespaces/default/services"
        assert (await http.get(f"{base}/web")).status_code == 200
        assert (await http.get(f"{base}/db")).status_code == 403
        assert (await http.get(base)).status_code == 403
        assert (await http.get(base, params={"fieldSelector": "metadata.name=web"})).status_code == 200
        async with http.stream(
            "GET", base, params={"watch": "1", "fieldSelector": "metadata.name=web"}
        ) as watch:
            assert watch.status_code == 200
            async for line in watch.aiter_lines():
                assert '"web"' in line
                break


async def test_tokens_authenticate_while_their_service_account_exists(
    apiserver: ApiServer, admin: AdminClient
) -> None:
    await admin.load(service_account_rbac("default", "agent", []))
    token = await admin.token("default", "agent")
    async with httpx2.AsyncClient(
        base_url=apiserver.url, verify=ssl.create_default_context(cafile=apiserver.ca_file)
    ) as http:
        ok = await http.get("/api", headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200  # discovery: every authenticated user
        assert (await http.get("/api/v1/nodes", headers={"Authorization": "Bearer nope"})).status_code == 401
        assert (await http.get("/api/v1/nodes")).status_code == 401
        forged = {
            "Authorization": f"Bearer {token}",
            "X-Ironlb-Lab-Identity": '{"name":"x","groups":["system:masters"]}',
        }
        assert (
            await http.get("/api/v1/nodes", headers=forged)
        ).status_code == 403  # the header is not trusted
        await admin.delete("v1", "ServiceAccount", "agent", "default")
        gone = await http.get("/api", headers={"Authorization": f"Bearer {token}"})
        assert gone.status_code == 401 and gone.json()["reason"] == "Unauthorized"
    code, _ = await admin.request("POST", "/api/v1/namespaces/default/serviceaccounts/nobody/token", {})
    assert code == 404
    assert [u["reason"] for u in apiserver.report()["violations"]["unauthorized"]] == [
        "unknown or revoked token",
        "no bearer token",
        "unknown or revoked token",
    ]


async def test_only_masters_read_the_report(apiserver: ApiServer, admin: AdminClient) -> None:
    await admin.load(
        service_account_rbac(
            "default", "agent", [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}], cluster=True
        )
    )
    client = client_for_token(apiserver, await admin.token("default", "agent"))
    try:
        await client.get(Namespace, "default")  # a wildcard ClusterRole grants every resource...
    finally:
        await client.close()
    async with httpx2.AsyncClient(
        base_url=apiserver.url, verify=ssl.create_default_context(cafile=apiserver.ca_file)
    ) as http:
        token = await admin.token("default", "agent")
        answer = await http.get("/lab/v1/report", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 403  # ...but not the lab's admin endpoint
