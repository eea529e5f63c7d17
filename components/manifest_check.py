"""Check rendered manifests: built-in kinds against Kubernetes' JSON schemas, ours against our CRDs.

Built-in objects are checked against the strict JSON schemas ``kubernetes-validate`` ships
(unknown fields fail) for :data:`KUBERNETES_VERSION`, with one validator per kind built
once; :func:`problems_via_library` is the library's own (slower) entry point, and the
tests check that both agree.  IronLB's custom resources are checked against the
``openAPIV3Schema`` of the CRD that ``ironlb.crds`` generates -- the very schema the API
server would enforce -- with ``jsonschema``.  CEL ``x-kubernetes-validations`` rules are
not evaluated here (no CEL engine); the shared schema already enforces the same rules.
The optional ServiceMonitor is checked against the subset of its CRD schema that
``ironlb.components.monitoring`` pins.

:func:`problems` returns sentences naming the object, the field path and the message.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any

import jsonschema
import kubernetes_validate
from kubernetes_validate import utils as kv_utils
from referencing import Registry, Resource

from ironlb.components import monitoring
from ironlb.model import GROUP_VERSION

KUBERNETES_VERSION = "1.37.0"


@cache
def _crd_validators() -> dict[str, jsonschema.protocols.Validator]:
    from ironlb.crds import crd_manifests

    out: dict[str, jsonschema.protocols.Validator] = {}
    for crd in crd_manifests():
        kind = crd["spec"]["names"]["kind"]
        version = next(v for v in crd["spec"]["versions"] if v.get("storage"))
        out[kind] = jsonschema.Draft4Validator(version["schema"]["openAPIV3Schema"])
    return out


@cache
def _kubernetes_validator(api_version: str, kind: str) -> jsonschema.protocols.Validator | None:
    """The strict schema for one kind, built once (kubernetes-validate re-reads its 3 MB of
    definitions on every call; same files, same Draft 2020-12 validator, cached here)."""
    wanted = kv_utils.major_minor(KUBERNETES_VERSION)
    version = [v for v in kv_utils.all_versions() if kv_utils.major_minor(v) <= wanted][-1]
    folder = f"kubernetes-json-schema/v{version}-local-strict"
    api = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    try:
        schema = kv_utils.schema_contents(f"{folder}/{kind.lower()}-{api}.json", KUBERNETES_VERSION)
    except FileNotFoundError:
        return None
    definitions = kv_utils.schema_contents(f"{folder}/_definitions.json", KUBERNETES_VERSION)
    registry: Registry[Any] = Resource.from_contents(definitions) @ (
        Resource.from_contents(schema) @ Registry()
    )
    return jsonschema.validators.Draft202012Validator(schema, registry=registry)


def _where(manifest: Mapping[str, Any]) -> str:
    meta = manifest.get("metadata") or {}
    ns = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f'{manifest.get("kind")} "{ns}{meta.get("name")}"'


def _path(parts: Iterable[Any]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else ("." if out else "") + str(p)
    return out or "(root)"


def problems(manifest: Mapping[str, Any]) -> list[str]:
    """Every schema problem with one manifest (empty when it is valid)."""
    if manifest.get("apiVersion") == GROUP_VERSION:
        validator = _crd_validators().get(str(manifest.get("kind")))
        if validator is None:
            return [f"{_where(manifest)}: no CRD defines kind {manifest.get('kind')!r}"]
        return [
            f"{_where(manifest)}: {_path(e.absolute_path)}: {e.message}"
            for e in sorted(validator.iter_errors(dict(manifest)), key=lambda e: list(map(str, e.path)))
        ]
    if (manifest.get("apiVersion"), manifest.get("kind")) == (monitoring.API_VERSION, monitoring.KIND):
        return monitoring.problems(manifest)  # no upstream JSON schema: the pinned subset
    validator = _kubernetes_validator(str(manifest.get("apiVersion")), str(manifest.get("kind")))
    if validator is None:
        return [
            f"{_where(manifest)}: no Kubernetes {KUBERNETES_VERSION} schema for "
            f"{manifest.get('apiVersion')} {manifest.get('kind')}"
        ]
    return [
        f"{_where(manifest)}: {_path(e.absolute_path)}: {e.message}"
        for e in sorted(validator.iter_errors(dict(manifest)), key=lambda e: list(map(str, e.path)))
    ]


def problems_via_library(manifest: Mapping[str, Any]) -> list[str]:
    """The same check through kubernetes-validate's own entry point (slow; the tests compare the two)."""
    try:
        kubernetes_validate.validate(dict(manifest), KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{_where(manifest)}: {_path(exc.absolute_path)}: {exc.message}"]
    except kubernetes_validate.SchemaNotFoundError:
        return [f"{_where(manifest)}: no Kubernetes schema"]
    return []


def check_all(manifests: Iterable[Mapping[str, Any]]) -> list[str]:
    return [p for m in manifests for p in problems(m)]
