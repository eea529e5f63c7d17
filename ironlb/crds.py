"""CustomResourceDefinitions generated from ``ironlb.model``: one source of truth.

``crd_for(IPPool)`` turns a resource class into an ``apiextensions.k8s.io/v1``
CustomResourceDefinition; ``crd_manifests()`` returns all of them.  The schema comes
from pydantic's JSON schema of the spec (and status) model, rewritten into a
*structural* openAPIV3Schema: ``$ref`` inlined, ``X | None`` turned into
``nullable: true``, titles and ``additionalProperties: false`` dropped (the API server
prunes unknown fields; ``kubectl`` warns about them).

Single-object rules that the OpenAPI keywords cannot express are CEL
``x-kubernetes-validations`` (:data:`CEL_RULES`), each mirroring a pydantic validator in
``ironlb.model``, so the API server rejects what ``ironlb validate`` rejects without an
admission webhook.  Cross-object rules (overlaps, references, tenants) cannot be
checked per object; the controller reports them in status conditions and Events.

All kinds are cluster-scoped: pools, peers and tenants are platform infrastructure and
the tenant boundary itself, so a namespace admin must not be able to create them.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel

from ironlb.model import API_GROUP, API_VERSION, RESOURCE_KINDS, Resource

#: CEL rules per model class name: (rule, message). Each mirrors a validator in ironlb.model.
CEL_RULES: dict[str, list[tuple[str, str]]] = {
    "LabelSelectorRequirement": [
        (
            "self.operator in ['In', 'NotIn'] ? (has(self.values) && size(self.values) > 0)"
            " : (!has(self.values) || size(self.values) == 0)",
            "operators In and NotIn need at least one value; Exists and DoesNotExist take none",
        ),
    ],
    "BFDProfileSpec": [
        ("!has(self.echoMode) || !self.echoMode", "echoMode must be false: the speaker has no BFD echo"),
    ],
    "BGPPeerSpec": [
        (
            "!has(self.holdTime) || self.holdTime == 0 || self.holdTime >= 3",
            "holdTime must be 0 or 3-65535 seconds",
        ),
        (
            "!has(self.holdTime) || !has(self.keepaliveTime) || "
            "(self.holdTime == 0 ? self.keepaliveTime == 0 : self.keepaliveTime < self.holdTime)",
            "keepaliveTime must be less than holdTime (and 0 when holdTime is 0)",
        ),
    ],
}

_SHORT_NAMES = {
    "IPPool": ["ilbpool"],
    "BGPPeer": ["ilbpeer"],
    "L2Advertisement": ["ilbl2"],
    "BGPAdvertisement": ["ilbbgpadv"],
    "Community": ["ilbcommunity"],
    "Tenant": ["ilbtenant"],
    "BFDProfile": ["ilbbfd"],
    "NodeState": ["ilbnode"],
}

_AGE = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
_COLUMNS: dict[str, list[dict[str, Any]]] = {
    "IPPool": [
        {"name": "Addresses", "type": "string", "jsonPath": ".spec.addresses"},
        {"name": "Tenant", "type": "string", "jsonPath": ".spec.tenant"},
        {"name": "Used v4", "type": "integer", "jsonPath": ".status.assignedIPv4"},
        {"name": "Free v4", "type": "integer", "jsonPath": ".status.availableIPv4"},
        {"name": "Used v6", "type": "integer", "jsonPath": ".status.assignedIPv6"},
        {"name": "Free v6", "type": "integer", "jsonPath": ".status.availableIPv6", "priority": 1},
        {"name": "Disabled", "type": "boolean", "jsonPath": ".spec.disabled", "priority": 1},
    ],
    "BGPPeer": [
        {"name": "Address", "type": "string", "jsonPath": ".spec.peerAddress"},
        {"name": "Peer ASN", "type": "integer", "jsonPath": ".spec.peerASN"},
        {"name": "My ASN", "type": "integer", "jsonPath": ".spec.myASN"},
        {"name": "State", "type": "string", "jsonPath": ".status.state"},
    ],
    "L2Advertisement": [
        {"name": "Pools", "type": "string", "jsonPath": ".spec.ipPools"},
        {"name": "Interfaces", "type": "string", "jsonPath": ".spec.interfaces"},
        {"name": "Addresses", "type": "integer", "jsonPath": ".status.addresses"},
    ],
    "BGPAdvertisement": [
        {"name": "Pools", "type": "string", "jsonPath": ".spec.ipPools"},
        {"name": "Peers", "type": "string", "jsonPath": ".spec.peers"},
        {"name": "Communities", "type": "string", "jsonPath": ".spec.communities"},
        {"name": "Addresses", "type": "integer", "jsonPath": ".status.addresses"},
    ],
    "Community": [],
    "Tenant": [
        {"name": "Namespaces", "type": "string", "jsonPath": ".spec.namespaces"},
        {"name": "Used", "type": "integer", "jsonPath": ".status.used"},
        {"name": "Quota", "type": "integer", "jsonPath": ".spec.maxAddresses"},
    ],
    "BFDProfile": [
        {"name": "Receive ms", "type": "integer", "jsonPath": ".spec.receiveInterval"},
        {"name": "Transmit ms", "type": "integer", "jsonPath": ".spec.transmitInterval"},
        {"name": "Multiplier", "type": "integer", "jsonPath": ".spec.detectMultiplier"},
    ],
    "NodeState": [
        {"name": "Announcing", "type": "integer", "jsonPath": ".status.announcing"},
        {"name": "Sessions Up", "type": "integer", "jsonPath": ".status.sessionsEstablished"},
        {"name": "Conflicts", "type": "integer", "jsonPath": ".status.conflictCount"},
    ],
}

_DROP = {"title", "propertyNames"}


def structural_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The structural openAPIV3Schema of ``model`` (refs inlined, nullable, CEL attached)."""
    raw = model.model_json_schema(mode="validation")
    defs = raw.pop("$defs", {})
    return _convert(raw, defs, model.__name__)


def _convert(node: dict[str, Any], defs: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    node = copy.deepcopy(node)
    if "$ref" in node:
        ref = node.pop("$ref").rsplit("/", 1)[-1]
        target = _convert(defs[ref], defs, ref)
        for key in ("description", "default"):
            if key in node:
                target[key] = node[key]
        return target
    if "anyOf" in node:
        every = node.pop("anyOf")
        options = [o for o in every if o.get("type") != "null"]
        if len(options) != 1:
            raise TypeError(f"{name}: unions other than X | None have no structural schema")
        inner = _convert(options[0], defs)
        extra = _convert({"type": inner["type"], **node}, defs)
        return {**inner, **extra, **({"nullable": True} if len(every) > 1 else {})}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP or (key == "default" and value is None):
            continue
        if key == "additionalProperties":
            if isinstance(value, dict):
                out[key] = _convert(value, defs)
            continue  # `false`: the API server prunes unknown fields instead
        if key == "patternProperties":  # not allowed in a v1 CRD: a map plus a CEL rule on its keys
            ((pattern, inner),) = value.items()
            out["additionalProperties"] = _convert(inner, defs)
            out.setdefault("x-kubernetes-validations", []).append(
                {"rule": f"self.all(k, k.matches('{pattern}'))", "message": f"every key must match {pattern}"}
            )
        elif key == "properties":
            out[key] = {k: _convert(v, defs) for k, v in value.items()}
        elif key == "items":
            out[key] = _convert(value, defs)
        elif key == "description":
            out[key] = " ".join(str(value).split())
        else:
            out[key] = value
    if "type" not in out:
        raise TypeError(f"{name}: every schema node needs a type for a structural schema: {node}")
    rules = CEL_RULES.get(name or "")
    if rules:
        out["x-kubernetes-validations"] = [
            *out.get("x-kubernetes-validations", []),
            *({"rule": r, "message": m} for r, m in rules),
        ]
    return out


def crd_for(cls: type[Resource]) -> dict[str, Any]:
    """The CustomResourceDefinition of one resource class."""
    spec_model = cls.model_fields["spec"].annotation
    assert isinstance(spec_model, type) and issubclass(spec_model, BaseModel)
    spec_schema = structural_schema(spec_model)
    spec_schema["description"] = " ".join((spec_model.__doc__ or cls.KIND).split())
    properties: dict[str, Any] = {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {"type": "object"},
        "spec": spec_schema,
    }
    version: dict[str, Any] = {
        "name": API_VERSION,
        "served": True,
        "storage": True,
        "schema": {"openAPIV3Schema": {"type": "object", "required": ["spec"], "properties": properties}},
    }
    if cls.STATUS is not None:
        status = structural_schema(cls.STATUS)
        status["description"] = " ".join((cls.STATUS.__doc__ or "").split())
        properties["status"] = status
        version["subresources"] = {"status": {}}
    version["additionalPrinterColumns"] = [*_COLUMNS.get(cls.KIND, []), _AGE]
    singular = cls.KIND.lower()
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{cls.PLURAL}.{API_GROUP}",
            "labels": {"app.kubernetes.io/name": "ironlb", "app.kubernetes.io/component": "crd"},
        },
        "spec": {
            "group": API_GROUP,
            "scope": "Cluster",
            "names": {
                "kind": cls.KIND,
                "listKind": f"{cls.KIND}List",
                "plural": cls.PLURAL,
                "singular": singular,
                "shortNames": _SHORT_NAMES.get(cls.KIND, []),
                "categories": ["ironlb"],
            },
            "versions": [version],
        },
    }


def crd_manifests() -> list[dict[str, Any]]:
    """Every IronLB CRD, in a stable order (by kind): configuration kinds, then what agents report."""
    from ironlb.nodestate import REPORT_KINDS  # local: nodestate imports ironlb.model, as we do

    return [crd_for(RESOURCE_KINDS[kind]) for kind in sorted(RESOURCE_KINDS)] + [
        crd_for(cls) for cls in REPORT_KINDS
    ]
