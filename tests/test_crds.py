"""Generated CRDs: valid apiextensions/v1 objects, structural schemas, CEL rules that mirror the model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import celpy
import jsonschema
import kubernetes_validate
import pytest
import yaml
from celpy.adapter import json_to_cel

from ironlb.crds import CEL_RULES, crd_manifests
from ironlb.model import RESOURCE_KINDS, Resource
from ironlb.nodestate import REPORT_KINDS

CRDS = {c["spec"]["names"]["kind"]: c for c in crd_manifests()}
#: Configuration kinds plus the kinds agents report (NodeState): every CRD installed.
ALL_KINDS: dict[str, type[Resource]] = {**RESOURCE_KINDS, **{c.KIND: c for c in REPORT_KINDS}}
VALID = sorted((Path(__file__).parent / "data" / "valid").glob("*.yaml"))


def schema_of(kind: str) -> dict[str, Any]:
    schema: dict[str, Any] = CRDS[kind]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def walk(node: dict[str, Any], path: str = ""):
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from walk(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}{{}}")


def test_there_is_one_crd_per_kind() -> None:
    assert set(CRDS) == set(ALL_KINDS)


@pytest.mark.parametrize("kind", sorted(CRDS))
def test_the_crd_is_a_valid_apiextensions_v1_object(kind: str) -> None:
    assert kubernetes_validate.validate(CRDS[kind], "1.37.0", strict=True) == "1.37"


@pytest.mark.parametrize("kind", sorted(CRDS))
def test_the_schema_is_structural(kind: str) -> None:
    for path, node in walk(schema_of(kind)):
        assert "type" in node, f"{kind}{path} has no type"
        for banned in ("$ref", "anyOf", "oneOf", "allOf", "title", "propertyNames", "$defs"):
            assert banned not in node, f"{kind}{path} has {banned}"
        assert node.get("additionalProperties") is not False
        assert not ("properties" in node and "additionalProperties" in node)


@pytest.mark.parametrize("kind", sorted(CRDS))
def test_status_subresource_and_printer_columns(kind: str) -> None:
    version = CRDS[kind]["spec"]["versions"][0]
    assert CRDS[kind]["spec"]["scope"] == "Cluster"
    assert version["additionalPrinterColumns"][-1]["name"] == "Age"
    if ALL_KINDS[kind].STATUS is not None:
        assert version["subresources"] == {"status": {}}
        assert "status" in version["schema"]["openAPIV3Schema"]["properties"]


def test_pool_columns_answer_used_and_available() -> None:
    columns = {
        c["name"]: c["jsonPath"] for c in CRDS["IPPool"]["spec"]["versions"][0]["additionalPrinterColumns"]
    }
    assert columns["Addresses"] == ".spec.addresses"
    assert columns["Used v4"] == ".status.assignedIPv4"
    assert columns["Free v4"] == ".status.availableIPv4"
    status = schema_of("IPPool")["properties"]["status"]["properties"]
    assert {"assignedIPv4", "availableIPv4", "assignedIPv6", "availableIPv6", "conditions"} <= set(status)


def valid_objects() -> list[dict[str, Any]]:
    out = []
    for path in VALID:
        out += [d for d in yaml.safe_load_all(path.read_text()) if d and d.get("kind") in CRDS]
    return out


@pytest.mark.parametrize("obj", valid_objects(), ids=lambda o: f"{o['kind']}-{o['metadata']['name']}")
def test_valid_examples_validate_against_the_generated_schema(obj: dict[str, Any]) -> None:
    jsonschema.validate(obj, schema_of(obj["kind"]))
    for rules_at, value in cel_targets(obj):
        for rule, message in rules_at:
            assert evaluate(rule, value), message


def test_the_objects_corpus_is_not_empty() -> None:
    assert len(valid_objects()) >= 10


@pytest.mark.parametrize(
    ("kind", "spec"),
    [
        ("IPPool", {"addresses": []}),
        ("IPPool", {"addresses": ["10.0.0.0/24 junk"]}),
        ("BGPPeer", {"myASN": 0, "peerASN": 1, "peerAddress": "192.0.2.1"}),
        ("BGPPeer", {"myASN": 1, "peerASN": 1, "peerAddress": "192.0.2.1", "keepaliveTime": 30000}),
        ("BGPAdvertisement", {"aggregationLength": 33}),
        ("Tenant", {"namespaces": ["Bad_NS"]}),
    ],
    ids=[
        "empty addresses",
        "garbage address",
        "ASN zero",
        "keepalive too long",
        "aggregation too long",
        "namespace not DNS-1123",
    ],
)
def test_the_schema_rejects_what_the_model_rejects(kind: str, spec: dict[str, Any]) -> None:
    obj = {"apiVersion": "ironlb.io/v1alpha1", "kind": kind, "metadata": {"name": "x"}, "spec": spec}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(obj, schema_of(kind))


def evaluate(rule: str, value: Any) -> bool:
    env = celpy.Environment()
    return bool(env.program(env.compile(rule)).evaluate({"self": json_to_cel(value)}))


def cel_targets(obj: dict[str, Any]):
    spec = obj["spec"]
    if obj["kind"] == "BGPPeer":
        yield CEL_RULES["BGPPeerSpec"], spec
    for sel in (spec.get("nodeSelector"), spec.get("ipPoolSelector")):
        for req in (sel or {}).get("matchExpressions", []):
            yield CEL_RULES["LabelSelectorRequirement"], req


TIMERS = CEL_RULES["BGPPeerSpec"]
SELECTOR = CEL_RULES["LabelSelectorRequirement"][0][0]


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ({}, True),
        ({"holdTime": 9, "keepaliveTime": 3}, True),
        ({"holdTime": 0, "keepaliveTime": 0}, True),
        ({"holdTime": 90}, True),
        ({"keepaliveTime": 10}, True),
        ({"holdTime": 2}, False),
        ({"holdTime": 9, "keepaliveTime": 9}, False),
        ({"holdTime": 0, "keepaliveTime": 5}, False),
        ({"keepaliveTime": 0}, True),
    ],
    ids=[
        "no timers",
        "keepalive below hold",
        "both zero",
        "hold only",
        "keepalive only",
        "hold 2",
        "keepalive equals hold",
        "keepalive with hold 0",
        "keepalive 0 alone means no keepalives",
    ],
)
def test_cel_timer_rules_agree_with_the_model(value: dict[str, Any], ok: bool) -> None:
    from pydantic import ValidationError

    from ironlb.model import BGPPeerSpec

    cel_ok = all(evaluate(rule, value) for rule, _ in TIMERS)
    try:
        BGPPeerSpec.model_validate({"myASN": 1, "peerASN": 2, "peerAddress": "192.0.2.1", **value})
        model_ok = True
    except ValidationError:
        model_ok = False
    assert cel_ok == ok == model_ok


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ({"key": "a", "operator": "In", "values": ["x"]}, True),
        ({"key": "a", "operator": "Exists"}, True),
        ({"key": "a", "operator": "In"}, False),
        ({"key": "a", "operator": "Exists", "values": ["x"]}, False),
    ],
    ids=["In with values", "Exists alone", "In without values", "Exists with values"],
)
def test_cel_selector_rule_agrees_with_the_model(value: dict[str, Any], ok: bool) -> None:
    assert evaluate(SELECTOR, value) == ok
