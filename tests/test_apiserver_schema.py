"""Lab API server: structural-schema validation (422), pruning (reported), defaulting and CEL.

Uses IronLB's own CRDs from ``ironlb.crds.crd_manifests()``: what the API server would do to
what our controller writes -- e.g. issue 9's Tenant ``status.usedAddresses``, which the CRD
does not declare and the server prunes.
"""

# ruff: noqa: F811  (pytest fixtures imported from tests.apiserver_support are redefined as arguments)
from __future__ import annotations

import copy
from typing import Any

import pytest

from ironlb.crds import crd_manifests
from lab.apiserver import AdminClient, ApiServer
from lab.apiserver.pruning import prune
from lab.apiserver.resources import BUILTINS, types_of_crd
from lab.manifests import bgp_peer, service
from tests.apiserver_support import admin, apiserver  # noqa: F401

GV = "ironlb.io/v1alpha1"


def thing_crd(schema: dict[str, Any]) -> dict[str, Any]:
    """A one-version, cluster-scoped CRD ``things.example.com`` with this schema."""
    version = {"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": schema}}
    names = {"plural": "things", "kind": "Thing"}
    spec = {"group": "example.com", "scope": "Cluster", "names": names, "versions": [version]}
    return {"metadata": {"name": "things.example.com"}, "spec": spec}


async def test_a_status_field_the_crd_does_not_declare_is_pruned_and_reported(
    apiserver: ApiServer, admin: AdminClient
) -> None:
    tenant = {
        "apiVersion": GV,
        "kind": "Tenant",
        "metadata": {"name": "team-a"},
        "spec": {"namespaces": ["a"], "pools": ["p"]},
    }
    await admin.load([*crd_manifests(), tenant])
    out = await admin.patch(
        GV, "Tenant", "team-a", {"status": {"usedAddresses": 3, "used": 3}}, subresource="status"
    )
    assert out["status"]["used"] == 3 and "usedAddresses" not in out["status"]
    (pruned,) = apiserver.report()["violations"]["pruned"]
    assert pruned["user"] == "system:admin"
    assert (pruned["verb"], pruned["resource"], pruned["subresource"], pruned["name"]) == (
        "patch",
        "tenants",
        "status",
        "team-a",
    )
    assert (pruned["kind"], pruned["path"]) == ("Tenant", "status.usedAddresses")


async def test_built_in_kinds_are_pruned_to_their_kubernetes_fields(
    apiserver: ApiServer, admin: AdminClient
) -> None:
    body = service("web")
    body["spec"]["loadBalancerIp"] = "192.0.2.1"  # a typo of loadBalancerIP
    body["metadata"]["labelz"] = {"a": "b"}
    (created,) = await admin.load([body])
    assert "loadBalancerIp" not in created["spec"] and "labelz" not in created["metadata"]
    assert sorted(p["path"] for p in apiserver.report()["violations"]["pruned"]) == [
        "metadata.labelz",
        "spec.loadBalancerIp",
    ]


@pytest.mark.parametrize(
    ("spec", "field", "words"),
    [
        ({"addresses": []}, "spec.addresses", "should have at least 1 items"),
        ({"addresses": ["10.0.0.0/24 junk"]}, "spec.addresses[0]", "should match"),
        ({"addresses": ["10.0.0.0/24"], "autoAssign": "yes"}, "spec.autoAssign", "must be of type boolean"),
        ({}, "spec.addresses", "Required value"),
    ],
    ids=["no addresses", "garbage address", "wrong type", "required field"],
)
async def test_schema_violations_are_422_with_field_paths(
    apiserver: ApiServer, admin: AdminClient, spec: dict[str, Any], field: str, words: str
) -> None:
    await admin.load(crd_manifests())
    body = {"apiVersion": GV, "kind": "IPPool", "metadata": {"name": "bad"}, "spec": spec}
    code, answer = await admin.request("POST", "/apis/ironlb.io/v1alpha1/ippools", body)
    assert (code, answer["reason"]) == (422, "Invalid"), answer
    assert answer["message"].startswith('IPPool.ironlb.io "bad" is invalid: ')
    assert field in [c["field"] for c in answer["details"]["causes"]]
    assert words in answer["message"]
    (invalid,) = apiserver.report()["violations"]["invalid"]
    assert invalid["verb"] == "create" and invalid["causes"][0]["field"] == field


async def test_enums_and_nullable(admin: AdminClient) -> None:
    await admin.load(crd_manifests())
    (created,) = await admin.load([bgp_peer(holdTime=None)])  # nullable: null is kept
    assert created["spec"]["holdTime"] is None
    bad = {"status": {"sessions": [{"node": "n1", "state": "Dancing"}]}}
    code, answer = await admin.request(
        "PATCH",
        "/apis/ironlb.io/v1alpha1/bgppeers/tor/status",
        bad,
        content_type="application/merge-patch+json",
    )
    assert code == 422 and 'Unsupported value: "Dancing"' in answer["message"]


async def test_cel_rules_of_our_crds_reject_what_the_model_rejects(
    apiserver: ApiServer, admin: AdminClient
) -> None:
    await admin.load(crd_manifests())
    code, answer = await admin.request("POST", "/apis/ironlb.io/v1alpha1/bgppeers", bgp_peer(holdTime=2))
    assert code == 422, answer
    assert "holdTime must be 0 or 3-65535 seconds" in answer["message"]
    assert answer["details"]["causes"][0]["field"] == "spec"
    code, answer = await admin.request(
        "POST", "/apis/ironlb.io/v1alpha1/bgppeers", bgp_peer(holdTime=9, keepaliveTime=9)
    )
    assert code == 422 and "keepaliveTime must be less than holdTime" in answer["message"]
    selector = {"matchExpressions": [{"key": "a", "operator": "In"}]}
    code, answer = await admin.request(
        "POST", "/apis/ironlb.io/v1alpha1/bgppeers", bgp_peer(nodeSelector=selector)
    )
    assert code == 422 and answer["details"]["causes"][0]["field"] == "spec.nodeSelector.matchExpressions[0]"
    code, _ = await admin.request(
        "POST", "/apis/ironlb.io/v1alpha1/bgppeers", bgp_peer(holdTime=9, keepaliveTime=3)
    )
    assert code == 201
    assert apiserver.report()["counts"]["unsupported"] == 0  # our rules are plain CEL, all enforced


async def test_cel_rules_cel_python_cannot_run_are_reported_not_enforced(
    apiserver: ApiServer, admin: AdminClient
) -> None:
    crd = copy.deepcopy(next(c for c in crd_manifests() if c["spec"]["names"]["kind"] == "BGPPeer"))
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    spec["x-kubernetes-validations"] = [{"rule": "isIP(self.peerAddress)", "message": "an IP"}]
    await admin.load([crd, bgp_peer()])
    (unsupported,) = apiserver.report()["violations"]["unsupported"]
    assert "isIP" in unsupported["message"]


async def test_crd_defaults_are_applied(admin: AdminClient) -> None:
    await admin.load(crd_manifests())
    (created,) = await admin.load([bgp_peer()])
    assert created["spec"]["peerPort"] == 179 and created["spec"]["connectTime"] == 5
    assert created["spec"]["ebgpMultiHop"] is False


async def test_every_ironlb_crd_is_accepted_and_community_keys_are_checked(admin: AdminClient) -> None:
    await admin.load(crd_manifests())
    community: dict[str, Any] = {
        "apiVersion": GV,
        "kind": "Community",
        "metadata": {"name": "dc1"},
        "spec": {"communities": {"dc1-lb": "65010:100"}},
    }
    (created,) = await admin.load([community])
    assert created["spec"]["communities"] == {"dc1-lb": "65010:100"}  # a map: nothing pruned
    community["spec"]["communities"] = {"Bad_Key": "65010:100"}
    community["metadata"]["name"] = "dc2"
    code, answer = await admin.request("POST", "/apis/ironlb.io/v1alpha1/communities", community)
    assert code == 422 and answer["details"]["causes"][0]["field"] == "spec.communities"


async def test_a_non_structural_crd_is_refused(admin: AdminClient) -> None:
    crd = copy.deepcopy(crd_manifests()[0])
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["patternProperties"] = {
        "^a": {"type": "string"}
    }
    code, answer = await admin.request("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
    assert code == 422
    assert (
        "properties[spec].patternProperties: Forbidden: patternProperties is not supported"
        in answer["message"]
    )


def test_pruning_rules_for_open_maps_preserved_fields_and_int_or_string() -> None:
    schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "blob": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                    "closed": {"type": "object"},
                    "port": {"x-kubernetes-int-or-string": True},
                },
            }
        },
    }
    (rt,) = types_of_crd(thing_crd(schema))
    obj = {
        "apiVersion": "example.com/v1",
        "kind": "Thing",
        "metadata": {"name": "t", "bogus": 1},
        "spec": {
            "labels": {"x": "y"},
            "blob": {"any": {"thing": 1}},
            "closed": {"gone": 1},
            "port": "http",
            "extra": True,
        },
        "top": 1,
    }
    assert sorted(prune(rt, obj)) == ["metadata.bogus", "spec.closed.gone", "spec.extra", "top"]
    assert obj["spec"] == {"labels": {"x": "y"}, "blob": {"any": {"thing": 1}}, "closed": {}, "port": "http"}


def test_every_built_in_type_has_a_kubernetes_schema() -> None:
    from lab.apiserver import kschema

    missing = [t.kind for t in BUILTINS if kschema.root(t.api_version, t.kind) is None]
    assert missing == []


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ({"port": 80, "ip": "192.0.2.1", "name": "ab"}, None),
        ({"port": "http"}, None),
        ({"port": 1.5}, "spec.port"),
        ({"port": True}, "spec.port"),
        ({"ip": "192.0.2.300"}, "spec.ip"),
        ({"name": "abcd"}, "spec.name"),
        ({"tags": ["a", "b", "c"]}, "spec.tags"),
        ({"note": None}, None),
        ({"name": None}, "spec.name"),
    ],
    ids=[
        "all valid",
        "int-or-string takes a string",
        "int-or-string refuses a float",
        "int-or-string refuses a bool",
        "format ipv4",
        "maxLength",
        "maxItems",
        "nullable null",
        "null where not nullable",
    ],
)
def test_openapi_extensions(spec: dict[str, Any], problem: str | None) -> None:
    from lab.apiserver.validation import validate_custom

    schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "port": {"x-kubernetes-int-or-string": True},
                    "ip": {"type": "string", "format": "ipv4"},
                    "name": {"type": "string", "maxLength": 3},
                    "tags": {"type": "array", "maxItems": 2, "items": {"type": "string"}},
                    "note": {"type": "string", "nullable": True},
                },
            }
        },
    }
    (rt,) = types_of_crd(thing_crd(schema))
    causes, unsupported = validate_custom(
        rt, {"apiVersion": "example.com/v1", "kind": "Thing", "spec": spec}, None
    )
    assert [c.field for c in causes] == ([problem] if problem else [])
    assert unsupported == []


async def test_the_report_can_start_at_a_time(apiserver: ApiServer, admin: AdminClient) -> None:
    import time

    await admin.load([service("a")])
    mark = time.time()
    await admin.load([service("b")])
    report = await admin.report(since=mark)
    assert report["counts"]["requests"] >= 1
    assert all(t >= round(mark, 3) - 0.001 for r in report["requests"] for t in r["times"])
    assert sum(r["count"] for r in report["requests"]) < apiserver.report()["counts"]["requests"]
