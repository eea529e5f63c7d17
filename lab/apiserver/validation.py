"""Validation of writes: custom resources against their CRD's structural schema and CEL rules.

Custom resources are checked with ``jsonschema`` (Draft 4, the base of OpenAPI v3), extended
with what Kubernetes adds: ``nullable``, ``x-kubernetes-int-or-string``, and the formats
the API server knows (ipv4, ipv6, cidr, mac, uuid, date-time, byte, ...).  Each problem
becomes a :class:`~.status.Cause` worded as the server words it
(``spec.addresses: Invalid value: 0: spec.addresses in body should have at least 1 items``).
Then each ``x-kubernetes-validations`` rule on a node whose value is present runs through
:mod:`.cel`; rules cel-python cannot run are returned separately, for the report.

Built-in objects are checked for JSON types only (the schemas of :mod:`.kschema`): a value of
the wrong type is the 400 the real server's decoder gives; required fields missing are 422.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import uuid
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

import jsonschema
from jsonschema import Draft4Validator, ValidationError
from jsonschema import _keywords as draft_keywords

from lab.apiserver import cel, kschema
from lab.apiserver.kschema import Node
from lab.apiserver.pruning import field_path
from lab.apiserver.resources import ResourceType
from lab.apiserver.status import Cause

FORMATS = jsonschema.FormatChecker(formats=())


def _ipv4(v: object) -> bool:
    return not isinstance(v, str) or bool(ipaddress.IPv4Address(v))


def _ipv6(v: object) -> bool:
    return not isinstance(v, str) or bool(ipaddress.IPv6Address(v))


def _cidr(v: object) -> bool:
    return not isinstance(v, str) or bool(ipaddress.ip_network(v, strict=False))


def _uuid(v: object) -> bool:
    return not isinstance(v, str) or bool(uuid.UUID(v))


def _datetime(v: object) -> bool:
    return not isinstance(v, str) or bool(datetime.fromisoformat(v.replace("Z", "+00:00")))


def _byte(v: object) -> bool:
    return not isinstance(v, str) or (base64.b64decode(v, validate=True) is not None)


def _mac(v: object) -> bool:
    if not isinstance(v, str):
        return True
    parts = v.replace("-", ":").split(":")
    return len(parts) in (6, 8, 20) and all(len(p) == 2 and int(p, 16) >= 0 for p in parts)


for _name, _check in {
    "ipv4": _ipv4,
    "ipv6": _ipv6,
    "cidr": _cidr,
    "uuid": _uuid,
    "date-time": _datetime,
    "byte": _byte,
    "mac": _mac,
}.items():
    FORMATS.checks(_name, raises=(ValueError, TypeError))(_check)


def _properties(validator: Any, properties: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if not isinstance(instance, dict):
        return
    for name, sub in properties.items():
        if name in instance and not (instance[name] is None and sub.get("nullable")):
            yield from validator.descend(instance[name], sub, path=name, schema_path=name)


def _additional(validator: Any, extra: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if isinstance(instance, dict) and isinstance(extra, dict) and "properties" not in schema:
        for name, value in instance.items():
            if not (value is None and extra.get("nullable")):
                yield from validator.descend(value, extra, path=name)


def _items(validator: Any, items: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if isinstance(instance, list) and isinstance(items, dict):
        for i, value in enumerate(instance):
            if not (value is None and items.get("nullable")):
                yield from validator.descend(value, items, path=i)


def _int_or_string(validator: Any, on: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if on and (isinstance(instance, bool) or not isinstance(instance, int | str)):
        yield ValidationError(f"{instance!r} is not of type 'integer' or 'string'", validator="type")


def _type(validator: Any, types: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if instance is None and schema.get("nullable"):
        return
    yield from draft_keywords.type(validator, types, instance, schema)


OpenApiValidator = jsonschema.validators.extend(
    Draft4Validator,
    validators={
        "properties": _properties,
        "additionalProperties": _additional,
        "items": _items,
        "type": _type,
        "x-kubernetes-int-or-string": _int_or_string,
    },
)


def _json(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, dict | list) else f'"{type(value).__name__}"'


def _cause(error: ValidationError) -> Cause:
    parts: list[str | int] = [p for p in error.absolute_path if isinstance(p, str | int)]
    where = field_path(parts)
    value, schema, kind = error.instance, error.schema, error.validator
    got = _json(value)
    if kind == "required":
        missing = str(error.message).split("'")[1] if "'" in str(error.message) else ""
        return Cause(field_path([*parts, missing]), "FieldValueRequired", "Required value")
    if kind == "enum":
        allowed = ", ".join(json.dumps(v) for v in schema.get("enum", []))
        return Cause(
            where, "FieldValueNotSupported", f"Unsupported value: {got}: supported values: {allowed}"
        )
    if kind == "maxLength":
        return Cause(
            where, "FieldValueTooLong", f"Too long: may not be more than {schema['maxLength']} bytes"
        )
    if kind == "maxItems":
        return Cause(
            where,
            "FieldValueTooMany",
            f"Too many: {len(value)}: must have at most {schema['maxItems']} items",
        )
    wording = {
        "type": lambda: f"{where} in body must be of type {schema.get('type', 'integer or string')}: {got}",
        "minItems": lambda: f"{where} in body should have at least {schema['minItems']} items",
        "minLength": lambda: f"{where} in body should be at least {schema['minLength']} chars long",
        "minimum": lambda: f"{where} in body should be greater than or equal to {schema['minimum']}",
        "maximum": lambda: f"{where} in body should be less than or equal to {schema['maximum']}",
        "pattern": lambda: f"{where} in body should match '{schema['pattern']}'",
        "format": lambda: f"{where} in body must be of type {schema['format']}: {got}",
        "uniqueItems": lambda: f"{where} in body shouldn't contain duplicates",
    }.get(str(kind), lambda: str(error.message))()
    shown = len(value) if kind == "minItems" and isinstance(value, list) else got
    reason = "FieldValueTypeInvalid" if kind == "type" else "FieldValueInvalid"
    return Cause(where, reason, f"Invalid value: {shown}: {wording}")


def _rules(
    value: Any, old: Any, node: Node, path: list[str | int], causes: list[Cause], unsupported: list[str]
) -> None:
    """Run the CEL rules of ``node`` and below on ``value`` (``old``: the stored value, or None)."""
    for rule in node.get("x-kubernetes-validations") or []:
        text = str(rule.get("rule", ""))
        if cel.uses_old_self(text) and old is None:
            continue
        outcome, detail = cel.evaluate(text, value, old)
        if outcome == cel.UNSUPPORTED:
            unsupported.append(f"{field_path(path) or '<root>'}: {text}: {detail}")
        elif not outcome:
            where = str(rule.get("fieldPath", "")).lstrip(".") or field_path(path)
            message = str(rule.get("message") or f"failed rule: {text}")
            shown = _json(value)
            causes.append(
                Cause(
                    where,
                    str(rule.get("reason") or "FieldValueInvalid"),
                    f"Invalid value: {shown}: {message}",
                )
            )
    if isinstance(value, dict):
        for key, sub_value in value.items():
            sub = kschema.child(node, key)
            if sub is not None and sub_value is not None:
                sub_old = old.get(key) if isinstance(old, dict) else None
                _rules(sub_value, sub_old, sub, [*path, key], causes, unsupported)
    elif isinstance(value, list):
        item = kschema.items(node)
        if item:
            for i, element in enumerate(value):
                _rules(element, None, item, [*path, i], causes, unsupported)


def validate_custom(
    rt: ResourceType, obj: Mapping[str, Any], old: Mapping[str, Any] | None
) -> tuple[list[Cause], list[str]]:
    """Schema and CEL problems of a custom resource; and the rules that could not be run."""
    schema = dict(rt.crd_schema or {})
    props = dict(schema.get("properties") or {})
    props.pop("metadata", None)  # metadata is ObjectMeta, checked by the server, not the CRD
    schema["properties"] = props
    body = {k: v for k, v in obj.items() if k != "metadata"}
    causes = [_cause(e) for e in OpenApiValidator(schema, format_checker=FORMATS).iter_errors(body)]
    unsupported: list[str] = []
    if not causes:
        old_body = {k: v for k, v in old.items() if k != "metadata"} if old is not None else None
        _rules(body, old_body, schema, [], causes, unsupported)
    return causes, unsupported


def builtin_problems(rt: ResourceType, obj: Mapping[str, Any]) -> tuple[list[Cause], list[Cause]]:
    """(type errors -> 400, other schema errors -> 422) of a pruned built-in object."""
    types, others = [], []
    for error in kschema.type_errors(rt.api_version, rt.kind, obj):
        parts: list[str | int] = [p for p in error.absolute_path if isinstance(p, str | int)]
        cause = _cause(error)
        if error.validator in ("type", "oneOf", "anyOf"):
            types.append(Cause(field_path(parts), "FieldValueTypeInvalid", f"{error.message}"))
        else:
            others.append(cause)
    return types, others
