"""Lab API server: status subresource semantics, both directions, with what was ignored reported.

A write to the main resource never changes ``.status``; a write to ``/status`` changes only
``.status``; the real server drops the rest silently, the stand-in also reports it under
``ignored``.  A custom resource whose CRD has no status subresource keeps status as an
ordinary field.
"""

# ruff: noqa: F811  (pytest fixtures imported from tests.apiserver_support are redefined as arguments)
from __future__ import annotations

import copy
from typing import Any

from ironlb.crds import crd_manifests
from lab.apiserver import AdminClient, ApiServer
from lab.manifests import namespace, node, pool, service
from tests.apiserver_support import admin, apiserver  # noqa: F401

SVC = "/api/v1/namespaces/default/services"
INGRESS = {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}}


async def test_a_main_resource_write_keeps_status(apiserver: ApiServer, admin: AdminClient) -> None:
    await admin.load([service("web")])
    await admin.patch("v1", "Service", "web", {"status": INGRESS}, namespace="default", subresource="status")
    out = await admin.patch(
        "v1",
        "Service",
        "web",
        {"status": {"loadBalancer": {"ingress": []}}, "metadata": {"labels": {"a": "b"}}},
        namespace="default",
    )
    assert out["status"] == INGRESS and out["metadata"]["labels"] == {"a": "b"}
    ignored = apiserver.report()["violations"]["ignored"]
    assert [(i["verb"], i["subresource"], i["path"]) for i in ignored] == [
        ("patch", "", "status.loadBalancer.ingress")
    ]


async def test_a_status_write_changes_only_status(apiserver: ApiServer, admin: AdminClient) -> None:
    (created,) = await admin.load([service("web")])
    body = copy.deepcopy(created)
    body["status"] = INGRESS
    body["spec"]["ports"] = [{"port": 9999, "protocol": "TCP"}]
    body["metadata"]["labels"] = {"sneaky": "yes"}
    code, out = await admin.request("PUT", f"{SVC}/web/status", body)
    assert code == 200
    assert out["status"] == INGRESS
    assert out["spec"]["ports"] == created["spec"]["ports"] and "labels" not in out["metadata"]
    paths = sorted(i["path"] for i in apiserver.report()["violations"]["ignored"])
    assert paths == ["metadata.labels", "spec.ports"]


async def test_create_resets_status_where_there_is_a_subresource(
    apiserver: ApiServer, admin: AdminClient
) -> None:
    body: dict[str, Any] = service("web")
    body["status"] = INGRESS
    (created,) = await admin.load([body])
    assert "status" not in created or created["status"] in ({}, None)
    (stored,) = await admin.load([node("n1")])
    assert stored["status"]["conditions"][0]["type"] == "Ready"  # Node keeps status on create
    (ns,) = await admin.load([namespace("x")])
    assert ns["status"] == {"phase": "Active"}


async def test_custom_resource_status_follows_the_crd(apiserver: ApiServer, admin: AdminClient) -> None:
    crds = crd_manifests()
    pools = next(c for c in crds if c["metadata"]["name"] == "ippools.ironlb.io")
    await admin.load([pools, pool("p", "10.0.0.0/24")])
    kind = ("ironlb.io/v1alpha1", "IPPool", "p")
    out = await admin.patch(*kind, {"status": {"assignedIPv4": 1}})
    assert "assignedIPv4" not in (out.get("status") or {})  # ignored through the main resource
    out = await admin.patch(
        *kind, {"status": {"assignedIPv4": 1}, "spec": {"disabled": True}}, subresource="status"
    )
    assert out["status"]["assignedIPv4"] == 1 and out["spec"]["disabled"] is False  # spec ignored on /status

    no_status = copy.deepcopy(pools)
    no_status["metadata"]["name"] = "plainpools.ironlb.io"
    names = no_status["spec"]["names"]
    names.update(
        kind="PlainPool", listKind="PlainPoolList", plural="plainpools", singular="plainpool", shortNames=[]
    )
    del no_status["spec"]["versions"][0]["subresources"]
    await admin.load([no_status, {**pool("p", "10.0.0.0/24"), "kind": "PlainPool"}])
    out = await admin.patch("ironlb.io/v1alpha1", "PlainPool", "p", {"status": {"assignedIPv4": 2}})
    assert out["status"]["assignedIPv4"] == 2  # an ordinary field without the subresource
    code, _ = await admin.request("GET", "/apis/ironlb.io/v1alpha1/plainpools/p/status")
    assert code == 404


async def test_fields_a_client_leaves_out_are_not_reported(apiserver: ApiServer, admin: AdminClient) -> None:
    await admin.load([service("web")])
    await admin.patch("v1", "Service", "web", {"status": INGRESS}, namespace="default", subresource="status")
    current = await admin.get("v1", "Service", "web", "default")
    assert current is not None
    without_status = {k: v for k, v in current.items() if k != "status"}
    code, out = await admin.request("PUT", f"{SVC}/web", without_status)
    assert code == 200 and out["status"] == INGRESS  # status kept, and nothing was "ignored"
    only_status = {k: v for k, v in out.items() if k != "spec"}
    code, _ = await admin.request("PUT", f"{SVC}/web/status", only_status)
    assert code == 200
    assert apiserver.report()["violations"]["ignored"] == []
