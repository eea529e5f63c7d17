"""The Kubernetes 1.37 schemas of built-in kinds (from ``kubernetes-validate``), as walkable nodes.

This module owns the ``kubernetes-validate`` package for the server.  It serves three needs:

- the **field sets** of built-in kinds, for pruning unknown fields (:mod:`.pruning`);
- the **patch strategies** (``x-kubernetes-patch-strategy``/``-merge-key``) that strategic
  merge patch follows (:mod:`.patches`);
- the **JSON types** of built-in objects: strict Draft 2020-12 validators over the same
  files ``ironlb.components.manifest_check`` checks rendered manifests with (one per kind, built
  once).  That module is not imported: importing ``components`` loads Pulumi and gRPC
  (about 100 MB) into a server that needs neither.

A *node* is a schema dict; :func:`resolve` follows ``$ref`` into the shared definitions,
:func:`child` and :func:`items` step to a property's or an array item's node.  Custom
resources' schemas (plain structural schemas, no ``$ref``) walk through the same functions.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from typing import Any

import jsonschema
from kubernetes_validate import utils as kv_utils
from referencing import Registry, Resource

KUBERNETES_VERSION = "1.37.0"  # as components.manifest_check, which checks what we render

Node = Mapping[str, Any]
EMPTY: Node = {}


@cache
def _folder() -> str:
    wanted = kv_utils.major_minor(KUBERNETES_VERSION)
    version = [v for v in kv_utils.all_versions() if kv_utils.major_minor(v) <= wanted][-1]
    return f"kubernetes-json-schema/v{version}-local-strict"


@cache
def _definitions() -> dict[str, Any]:
    defs: dict[str, Any] = kv_utils.schema_contents(f"{_folder()}/_definitions.json", KUBERNETES_VERSION)[
        "$defs"
    ]
    return defs


def _file(api_version: str, kind: str) -> str:
    api = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    return f"{_folder()}/{kind.lower()}-{api}.json"


@cache
def root(api_version: str, kind: str) -> Node | None:
    """The schema of a built-in kind (None when Kubernetes 1.37 has none)."""
    try:
        schema: dict[str, Any] = kv_utils.schema_contents(_file(api_version, kind), KUBERNETES_VERSION)
    except FileNotFoundError:
        return None
    return schema


def object_meta() -> Node:
    return resolve({"$ref": "#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"})


def resolve(node: Node) -> Node:
    """Follow ``$ref`` (both the file-relative and the definitions-relative form)."""
    while "$ref" in node:
        name = str(node["$ref"]).rsplit("/", 1)[-1]
        node = _definitions().get(name, EMPTY)
    return node


def child(node: Node, key: str) -> Node | None:
    """The node of property ``key`` of an object node (None: not a known field)."""
    node = resolve(node)
    props = node.get("properties")
    if isinstance(props, Mapping) and key in props:
        return resolve(props[key])
    extra = node.get("additionalProperties")
    if isinstance(extra, Mapping):
        return resolve(extra)
    return None


def items(node: Node) -> Node:
    value = resolve(node).get("items")
    return resolve(value) if isinstance(value, Mapping) else EMPTY


def is_open(node: Node) -> bool:
    """An object node whose fields are unknown (no properties, no additionalProperties schema)."""
    node = resolve(node)
    return "properties" not in node and not isinstance(node.get("additionalProperties"), Mapping)


@cache
def _validator(api_version: str, kind: str) -> jsonschema.protocols.Validator | None:
    schema = root(api_version, kind)
    if schema is None:
        return None
    definitions = kv_utils.schema_contents(f"{_folder()}/_definitions.json", KUBERNETES_VERSION)
    registry: Registry[Any] = Resource.from_contents(definitions) @ (
        Resource.from_contents(schema) @ Registry()
    )
    return jsonschema.validators.Draft202012Validator(schema, registry=registry)


def type_errors(api_version: str, kind: str, obj: Mapping[str, Any]) -> list[jsonschema.ValidationError]:
    """Schema problems of a (pruned) built-in object (strict: unknown fields are already pruned)."""
    validator = _validator(api_version, kind)
    if validator is None:
        return []
    return sorted(validator.iter_errors(dict(obj)), key=lambda e: [str(p) for p in e.absolute_path])
