"""Pruning of unknown fields, as the API server drops them, with the path of each dropped field.

The real server never rejects an unknown field on a write (unless the client asks for strict
field validation); it silently drops it: for built-in kinds because the Go struct has no
such field, for custom resources because the structural schema does not declare it.  A
silently dropped field is how a status field the controller writes vanishes in production,
so every pruned path is returned for the report.

Rules (custom resources, per the CRD docs): an object node prunes keys not in
``properties``; ``additionalProperties`` maps keep every key and prune inside the values;
an object node with neither prunes *all* its fields unless it has
``x-kubernetes-preserve-unknown-fields: true``; ``x-kubernetes-embedded-resource`` nodes keep
``apiVersion``/``kind``/``metadata``.  ``apiVersion``, ``kind`` and ``metadata`` at the root
are always kept, and ``metadata`` is pruned to ObjectMeta's fields (for every kind).
Built-in kinds follow their Kubernetes 1.37 schema, where an object node without fields
(``FieldsV1``, ``RawExtension``) is opaque and kept whole.

Non-nullable ``null`` values of custom resources are dropped before defaulting (not reported:
no data is lost); :func:`apply_defaults` then fills CRD ``default:`` values.
"""

from __future__ import annotations

import copy
from typing import Any

from lab.apiserver import kschema
from lab.apiserver.kschema import Node
from lab.apiserver.resources import ResourceType


def field_path(parts: list[str | int]) -> str:
    """``spec.ports[0].name``: the server's way of naming a field."""
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else ("." if out else "") + p
    return out


def _prune(value: Any, node: Node, path: list[str | int], out: list[str], custom: bool) -> None:
    node = kschema.resolve(node)
    if isinstance(value, dict):
        if node.get("x-kubernetes-preserve-unknown-fields") and "properties" not in node:
            return
        if kschema.is_open(node):
            if custom and not node.get("x-kubernetes-embedded-resource"):
                for key in list(value):
                    out.append(field_path([*path, key]))
                    del value[key]
            return
        keep = {"apiVersion", "kind", "metadata"} if node.get("x-kubernetes-embedded-resource") else set()
        for key in list(value):
            sub = kschema.child(node, key)
            if sub is None:
                if key in keep or node.get("x-kubernetes-preserve-unknown-fields"):
                    continue
                out.append(field_path([*path, key]))
                del value[key]
            else:
                _prune(value[key], sub, [*path, key], out, custom)
    elif isinstance(value, list):
        item = kschema.items(node)
        for i, element in enumerate(value):
            _prune(element, item, [*path, i], out, custom)


def prune(rt: ResourceType, obj: dict[str, Any]) -> list[str]:
    """Drop the fields ``rt`` does not know from ``obj`` (in place); return their paths."""
    out: list[str] = []
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        _prune(meta, kschema.object_meta(), ["metadata"], out, custom=False)
    node = rt.crd_schema or {} if rt.custom else kschema.root(rt.api_version, rt.kind)
    if node is None:
        return out
    for key in list(obj):
        if key in ("apiVersion", "kind", "metadata"):
            continue
        sub = kschema.child(node, key)
        if sub is None:
            if rt.custom and node.get("x-kubernetes-preserve-unknown-fields"):
                continue
            out.append(key)
            del obj[key]
        else:
            _prune(obj[key], sub, [key], out, custom=rt.custom)
    return out


def _drop_nulls(value: Any, node: Node) -> None:
    if isinstance(value, dict):
        for key in list(value):
            sub = kschema.child(node, key)
            if sub is None:
                continue
            if value[key] is None and not sub.get("nullable"):
                del value[key]
            else:
                _drop_nulls(value[key], sub)
    elif isinstance(value, list):
        item = kschema.items(node)
        for element in value:
            _drop_nulls(element, item)


def _default(value: Any, node: Node) -> None:
    if isinstance(value, dict):
        props = node.get("properties") or {}
        for key, sub in props.items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
        for key in list(value):
            sub = kschema.child(node, key)
            if sub is not None:
                _default(value[key], sub)
    elif isinstance(value, list):
        item = kschema.items(node)
        for element in value:
            _default(element, item)


def apply_defaults(rt: ResourceType, obj: dict[str, Any]) -> None:
    """Drop non-nullable nulls, then fill the CRD's ``default:`` values (custom resources only)."""
    if not rt.custom or not rt.crd_schema:
        return
    meta = obj.pop("metadata", None)
    try:
        _drop_nulls(obj, rt.crd_schema)
        _default(obj, rt.crd_schema)
    finally:
        if meta is not None:
            obj["metadata"] = meta
