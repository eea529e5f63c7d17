"""CustomResourceDefinition objects: what the apiextensions server checks and sets on them.

:func:`problems` lists why the real server would refuse a CRD: a name that is not
``<plural>.<group>``, a bad scope, not exactly one storage version, and schemas that are not
*structural* (``patternProperties``, ``$ref``, ``uniqueItems: true``, a node without a
type, ``properties`` beside ``additionalProperties``, ...), each as a
:class:`~.status.Cause` with the server's field path.  :func:`status` is the status the
server gives an accepted CRD (names accepted, established, stored versions).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lab.apiserver.status import Cause


def status(crd: Mapping[str, Any], when: str) -> dict[str, Any]:
    spec = crd.get("spec") or {}
    storage = [v.get("name") for v in spec.get("versions") or [] if v.get("storage")]
    conditions = [
        {"type": t, "status": "True", "reason": r, "message": m, "lastTransitionTime": when}
        for t, r, m in (
            ("NamesAccepted", "NoConflicts", "no conflicts found"),
            ("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        )
    ]
    return {"acceptedNames": spec.get("names") or {}, "storedVersions": storage, "conditions": conditions}


def problems(crd: Mapping[str, Any]) -> list[Cause]:
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    out = []
    expected = f"{names.get('plural')}.{spec.get('group')}"
    if crd["metadata"].get("name") != expected:
        out.append(
            Cause(
                "metadata.name",
                "FieldValueInvalid",
                f'Invalid value: "{crd["metadata"].get("name")}": must be spec.names.plural+"."+spec.group',
            )
        )
    if spec.get("scope") not in ("Cluster", "Namespaced"):
        out.append(
            Cause(
                "spec.scope",
                "FieldValueNotSupported",
                f'Unsupported value: "{spec.get("scope")}": supported values: "Cluster", "Namespaced"',
            )
        )
    storage = [v for v in spec.get("versions") or [] if v.get("storage")]
    if len(storage) != 1:
        out.append(
            Cause(
                "spec.versions",
                "FieldValueInvalid",
                "Invalid value: must have exactly one version marked as storage version",
            )
        )
    return out + schema_problems(crd)


#: JSON-schema keywords a v1 CRD may not use (the server's structural-schema rules).
FORBIDDEN_KEYWORDS = (
    "patternProperties",
    "dependencies",
    "additionalItems",
    "definitions",
    "$ref",
    "$schema",
    "id",
)


def _structural(node: Any, where: str, out: list[Cause]) -> None:
    if not isinstance(node, Mapping):
        return
    for key in FORBIDDEN_KEYWORDS:
        if key in node:
            out.append(Cause(f"{where}.{key}", "FieldValueForbidden", f"Forbidden: {key} is not supported"))
    if node.get("uniqueItems") is True:
        message = (
            "Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic"
        )
        out.append(Cause(f"{where}.uniqueItems", "FieldValueForbidden", message))
    if "properties" in node and "additionalProperties" in node:
        message = "Forbidden: additionalProperties and properties are mutual exclusive"
        out.append(Cause(f"{where}.additionalProperties", "FieldValueForbidden", message))
    untyped_ok = node.get("x-kubernetes-int-or-string") or node.get("x-kubernetes-preserve-unknown-fields")
    if not node.get("type") and not untyped_ok:
        out.append(
            Cause(
                f"{where}.type",
                "FieldValueRequired",
                "Required value: must not be empty for specified object fields",
            )
        )
    for name, sub in (node.get("properties") or {}).items():
        _structural(sub, f"{where}.properties[{name}]", out)
    if isinstance(node.get("additionalProperties"), Mapping):
        _structural(node["additionalProperties"], f"{where}.additionalProperties", out)
    if isinstance(node.get("items"), Mapping):
        _structural(node["items"], f"{where}.items", out)


def schema_problems(crd: Mapping[str, Any]) -> list[Cause]:
    """Why the real server would refuse this CRD's schemas as non-structural (empty: fine)."""
    out: list[Cause] = []
    for i, version in enumerate((crd.get("spec") or {}).get("versions") or []):
        schema = (version.get("schema") or {}).get("openAPIV3Schema")
        if schema is None:
            out.append(
                Cause(
                    f"spec.versions[{i}].schema.openAPIV3Schema",
                    "FieldValueRequired",
                    "Required value: schemas are required",
                )
            )
        else:
            _structural(schema, f"spec.versions[{i}].schema.openAPIV3Schema", out)
    return out
