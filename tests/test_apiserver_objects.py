"""Lab API server: resources and verbs over real HTTP (create/get/list/update/patch/delete, CRDs).

Each test drives the in-process server through its admin socket (``AdminClient.request`` is
plain HTTP) and checks what a real kube-apiserver answers: 201 on create, the namespace from
the URL, 400/404/409 in the real cases, custom resources served from stored CRDs, the three
patch types, finalizers.
"""

# ruff: noqa: F811  (pytest fixtures imported from tests.apiserver_support are redefined as arguments)
from __future__ import annotations

import pytest

from ironlb.crds import crd_manifests
from lab.apiserver import AdminClient, ApiServer
from lab.apiserver.handler import parse_path
from lab.manifests import namespace, pool, service
from tests.apiserver_support import admin, apiserver  # noqa: F401

SVC = "/api/v1/namespaces/default/services"
POOLS = "/apis/ironlb.io/v1alpha1/ippools"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/api/v1/namespaces", ("", "v1", "namespaces", "", "", "")),
        ("/api/v1/namespaces/team-a", ("", "v1", "namespaces", "", "team-a", "")),
        ("/api/v1/namespaces/team-a/status", ("", "v1", "namespaces", "", "team-a", "status")),
        ("/api/v1/namespaces/a/services/web/status", ("", "v1", "services", "a", "web", "status")),
        ("/apis/apps/v1/namespaces/a/daemonsets", ("apps", "v1", "daemonsets", "a", "", "")),
        ("/apis/ironlb.io/v1alpha1/ippools/p", ("ironlb.io", "v1alpha1", "ippools", "", "p", "")),
    ],
    ids=[
        "namespaces list",
        "a namespace",
        "namespace status",
        "service status",
        "namespaced list",
        "cluster CR",
    ],
)
def test_paths_are_taken_apart_like_the_server(path: str, expected: tuple[str, ...]) -> None:
    parsed = parse_path(path)
    assert parsed is not None
    assert (
        parsed.group,
        parsed.version,
        parsed.plural,
        parsed.namespace,
        parsed.name,
        parsed.subresource,
    ) == expected


async def test_create_answers_201_with_server_metadata(admin: AdminClient) -> None:
    code, body = await admin.request("POST", SVC, service("web"))
    assert code == 201
    meta = body["metadata"]
    assert meta["namespace"] == "default"
    assert meta["uid"] and meta["creationTimestamp"].endswith("Z") and int(meta["resourceVersion"]) > 0
    code, again = await admin.request("POST", SVC, service("web"))
    assert (code, again["reason"]) == (409, "AlreadyExists")
    assert again["message"] == 'services "web" already exists'


async def test_the_namespace_comes_from_the_url(admin: AdminClient) -> None:
    await admin.load([namespace("team-a")])
    body = service("web")
    del body["metadata"]["namespace"]
    code, created = await admin.request("POST", "/api/v1/namespaces/team-a/services", body)
    assert (code, created["metadata"]["namespace"]) == (201, "team-a")
    code, answer = await admin.request(
        "POST", "/api/v1/namespaces/team-a/services", service("other", "default")
    )
    assert code == 400 and "does not match the namespace" in answer["message"]
    code, answer = await admin.request("POST", "/api/v1/namespaces/nowhere/services", service("x", "nowhere"))
    assert (code, answer["message"]) == (404, 'namespaces "nowhere" not found')


async def test_unknown_resources_and_subresources_are_404(admin: AdminClient) -> None:
    assert (await admin.request("GET", "/api/v1/widgets"))[0] == 404
    assert (await admin.request("GET", POOLS))[0] == 404  # no CRD yet
    await admin.load([service("web")])
    assert (await admin.request("GET", f"{SVC}/web/scale"))[0] == 404
    assert (await admin.request("GET", f"{SVC}/missing"))[0] == 404


async def test_custom_resources_follow_their_crd(admin: AdminClient) -> None:
    await admin.load(crd_manifests())
    code, created = await admin.request("POST", POOLS, pool("p", "10.0.0.0/24"))
    assert code == 201 and created["metadata"]["generation"] == 1
    code, discovery = await admin.request("GET", "/apis/ironlb.io/v1alpha1")
    assert code == 200 and {"ippools", "ippools/status"} <= {r["name"] for r in discovery["resources"]}
    await admin.delete("apiextensions.k8s.io/v1", "CustomResourceDefinition", "ippools.ironlb.io")
    assert (await admin.request("GET", f"{POOLS}/p"))[0] == 404


async def test_list_filters_by_label_and_field_selectors(admin: AdminClient) -> None:
    for name, tier in (("a", "web"), ("b", "db"), ("c", None)):
        body = service(name)
        if tier:
            body["metadata"]["labels"] = {"tier": tier}
        await admin.load([body])

    async def names(**params: str) -> list[str]:
        code, body = await admin.request("GET", SVC, params=params)
        assert code == 200, body
        return [o["metadata"]["name"] for o in body["items"]]

    assert await names(labelSelector="tier=web") == ["a"]
    assert await names(labelSelector="tier!=web") == ["b", "c"]
    assert await names(labelSelector="tier in (web,db)") == ["a", "b"]
    assert await names(labelSelector="!tier") == ["c"]
    assert await names(fieldSelector="metadata.name=b") == ["b"]
    assert (await admin.request("GET", SVC, params={"fieldSelector": "spec.type=X"}))[0] == 400
    code, listed = await admin.request("GET", "/api/v1/services")
    assert code == 200 and int(listed["metadata"]["resourceVersion"]) >= 3


async def test_put_replaces_and_checks_the_name(admin: AdminClient) -> None:
    (created,) = await admin.load([service("web")])
    created["spec"]["ports"] = [{"port": 443, "protocol": "TCP"}]
    code, replaced = await admin.request("PUT", f"{SVC}/web", created)
    assert code == 200 and replaced["spec"]["ports"] == [{"port": 443, "protocol": "TCP"}]
    assert int(replaced["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
    code, answer = await admin.request("PUT", f"{SVC}/other", replaced)
    assert code == 400 and "does not match the name" in answer["message"]


async def test_patch_types(apiserver: ApiServer, admin: AdminClient) -> None:
    await admin.load([service("web", ports=[{"name": "http", "port": 80, "protocol": "TCP"}])])
    merged = await admin.patch(
        "v1", "Service", "web", {"metadata": {"labels": {"a": "1"}}}, namespace="default"
    )
    assert merged["metadata"]["labels"] == {"a": "1"}
    ops = [{"op": "add", "path": "/metadata/labels/b", "value": "2"}]
    patched = await admin.patch(
        "v1", "Service", "web", ops, namespace="default", content_type="application/json-patch+json"
    )
    assert patched["metadata"]["labels"] == {"a": "1", "b": "2"}
    bad = [{"op": "test", "path": "/metadata/labels/a", "value": "nope"}]
    code, _ = await admin.request("PATCH", f"{SVC}/web", bad, content_type="application/json-patch+json")
    assert code == 422
    code, answer = await admin.request("PATCH", f"{SVC}/web", {}, content_type="application/apply-patch+yaml")
    assert code == 415 and "server-side apply" in answer["message"]
    code, _ = await admin.request("DELETE", SVC)
    assert code == 405
    code, _ = await admin.request("PATCH", f"{SVC}/web", {}, content_type="text/plain")
    assert code == 415  # a bad request, not a gap of the stand-in
    unsupported = [u["message"] for u in apiserver.report()["violations"]["unsupported"]]
    assert (
        len(unsupported) == 2
        and "server-side apply" in unsupported[0]
        and "deletecollection" in unsupported[1]
    )


async def test_strategic_merge_honours_merge_keys(admin: AdminClient) -> None:
    await admin.load([service("web", ports=[{"name": "http", "port": 80, "protocol": "TCP"}])])
    smp = "application/strategic-merge-patch+json"
    body = {"spec": {"ports": [{"name": "https", "port": 443, "protocol": "TCP"}]}}
    out = await admin.patch("v1", "Service", "web", body, namespace="default", content_type=smp)
    assert [p["port"] for p in out["spec"]["ports"]] == [80, 443]  # merged by port, not replaced
    body = {"spec": {"ports": [{"port": 80, "$patch": "delete"}]}}
    out = await admin.patch("v1", "Service", "web", body, namespace="default", content_type=smp)
    assert [p["port"] for p in out["spec"]["ports"]] == [443]
    status = {
        "status": {
            "conditions": [
                {
                    "type": "A",
                    "status": "True",
                    "reason": "R",
                    "message": "",
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                }
            ]
        }
    }
    await admin.patch(
        "v1", "Service", "web", status, namespace="default", subresource="status", content_type=smp
    )
    status["status"]["conditions"][0]["type"] = "B"
    out = await admin.patch(
        "v1", "Service", "web", status, namespace="default", subresource="status", content_type=smp
    )
    assert [c["type"] for c in out["status"]["conditions"]] == ["A", "B"]  # merged by type


async def test_strategic_merge_of_containers_by_name(admin: AdminClient) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default"},
        "spec": {"containers": [{"name": "a", "image": "x:1"}, {"name": "b", "image": "y:1"}]},
    }
    await admin.load([pod])
    smp = "application/strategic-merge-patch+json"
    out = await admin.patch(
        "v1",
        "Pod",
        "p",
        {"spec": {"containers": [{"name": "b", "image": "y:2"}]}},
        namespace="default",
        content_type=smp,
    )
    assert [(c["name"], c["image"]) for c in out["spec"]["containers"]] == [("a", "x:1"), ("b", "y:2")]


async def test_strategic_merge_is_refused_for_custom_resources(admin: AdminClient) -> None:
    await admin.load([*crd_manifests(), pool("p", "10.0.0.0/24")])
    code, answer = await admin.request(
        "PATCH", f"{POOLS}/p", {"spec": {}}, content_type="application/strategic-merge-patch+json"
    )
    assert code == 415 and answer["reason"] == "UnsupportedMediaType"


async def test_delete_waits_for_finalizers(admin: AdminClient) -> None:
    body = service("web")
    body["metadata"]["finalizers"] = ["example.com/hold"]
    await admin.load([body])
    code, deleting = await admin.request("DELETE", f"{SVC}/web")
    assert code == 200 and deleting["metadata"]["deletionTimestamp"]
    assert (await admin.request("GET", f"{SVC}/web"))[0] == 200
    code, answer = await admin.request(
        "PATCH",
        f"{SVC}/web",
        {"metadata": {"finalizers": ["example.com/hold", "other/x"]}},
        content_type="application/merge-patch+json",
    )
    assert code == 422 and "no new finalizers" in answer["message"]
    await admin.patch("v1", "Service", "web", {"metadata": {"finalizers": None}}, namespace="default")
    assert (await admin.request("GET", f"{SVC}/web"))[0] == 404
    assert (await admin.request("DELETE", f"{SVC}/web"))[0] == 404


async def test_secret_string_data_becomes_data(admin: AdminClient) -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s", "namespace": "default"},
        "stringData": {"password": "hunter2"},
    }
    (stored,) = await admin.load([secret])
    assert stored["data"] == {"password": "aHVudGVyMg=="} and "stringData" not in stored


async def test_the_cli_contract_report_endpoint(apiserver: ApiServer, admin: AdminClient) -> None:
    await admin.load([service("web")])
    report = await admin.report()
    assert report["counts"]["requests"] >= 1
    assert set(report["violations"]) >= {
        "unauthorized",
        "forbidden",
        "pruned",
        "conflicts",
        "invalid",
        "ignored",
    }
    entry = next(r for r in report["requests"] if r["verb"] == "create" and r["resource"] == "services")
    assert entry["user"] == "system:admin" and entry["write"] and entry["codes"] == {"201": 1}
    assert report == {**apiserver.report(), "requests": report["requests"], "counts": report["counts"]}
