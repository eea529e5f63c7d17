"""Parse once: raw documents in, one checked :class:`Config` out.

``parse(docs)`` takes any mix of IronLB custom resources, ``v1 Namespace`` and ``v1
Service`` manifests (as dicts, the way YAML loads them), validates each object alone
(``ironlb.model``), then runs the cross-object rules in ``ironlb.validation``.  It
collects *every* problem and raises one :class:`~ironlb.errors.ConfigError`; everything
after ``parse`` trusts the returned Config and never re-checks it.

:class:`Config` and :class:`PoolInfo` live in ``ironlb.checked`` (re-exported here):
immutable, indexed by name, with derived facts computed once.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from ironlb import addresses, validation
from ironlb.checked import Config as Config
from ironlb.checked import PoolInfo as PoolInfo
from ironlb.errors import ConfigError, Issue
from ironlb.model import (
    ALIAS_RE,
    DNS1123_LABEL,
    DNS1123_SUBDOMAIN,
    GROUP_VERSION,
    RESOURCE_KINDS,
    Community,
    IPPool,
    Resource,
    Tenant,
)
from ironlb.service import ServiceRequest, request_from_manifest


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _value_at(doc: Any, loc: tuple[int | str, ...]) -> Any:
    for part in loc:
        try:
            doc = doc[part]
        except (KeyError, IndexError, TypeError):
            return None
    return doc


def _field_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> FieldInfo | None:
    """The pydantic FieldInfo that ``loc`` points into (following nested models), if any."""
    found: FieldInfo | None = None
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if (
            not (isinstance(current, type) and issubclass(current, BaseModel))
            or part not in current.model_fields
        ):
            return found
        found = current.model_fields[part]
        current = _inner_model(found.annotation)
    return found


def _inner_model(annotation: Any) -> Any:
    """The model class inside ``X | None``, ``tuple[X, ...]`` and the like, else the annotation."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        inner = _inner_model(arg)
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            return inner
    return annotation


def _bounds(info: FieldInfo | None) -> tuple[Any, Any]:
    """(minimum, maximum) of a field: its ge/le, else the bounds its schema declares."""
    low = high = None
    for item in info.metadata if info is not None else ():
        low = getattr(item, "ge", low)
        high = getattr(item, "le", high)
    extra = info.json_schema_extra if info is not None else None
    if isinstance(extra, dict):
        low = extra.get("minimum", low) if low is None else low
        high = extra.get("maximum", high) if high is None else high
    return low, high


def _num(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _allowed_range(info: FieldInfo | None, ctx: Mapping[str, Any]) -> str:
    low, high = (_num(v) for v in _bounds(info))
    low = _num(ctx.get("ge", low))
    high = _num(ctx.get("le", high))
    if low is not None and high is not None:
        return f"must be {low}-{high}"
    if low is not None:
        return f"must be at least {low}"
    return f"must be at most {high}"


_PATTERNS = {
    DNS1123_LABEL: "must be a DNS-1123 label: lower-case letters, digits and '-', starting and ending "
    "with a letter or digit, at most 63 characters",
    ALIAS_RE.pattern: "must be lower-case letters, digits and '-', starting with a letter",
    DNS1123_SUBDOMAIN: "must be a DNS-1123 name: lower-case letters, digits, '-' and '.', "
    "starting and ending with a letter or digit",
}


def _friendly(err: Mapping[str, Any], info: FieldInfo | None) -> str:
    """Say what is allowed instead of pydantic's generic sentence."""
    kind, ctx = err["type"], err.get("ctx") or {}
    msg = str(err["msg"]).removeprefix("Value error, ")
    number = "a whole number" if kind.startswith("int") else "a number"
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        return _allowed_range(info, ctx)
    if kind in ("int_parsing", "int_type", "int_from_float", "float_parsing", "float_type"):
        low, high = _bounds(info)
        limits = f" ({low}-{high})" if low is not None and high is not None else ""
        return f"must be {number}{limits}"
    if kind in ("bool_parsing", "bool_type"):
        return "must be true or false"
    if kind in ("string_type", "str_type"):
        return "must be a string"
    if kind in ("list_type", "tuple_type", "set_type"):
        return "must be a list"
    if kind in ("dict_type", "model_type", "model_attributes_type", "mapping_type"):
        return "must be a mapping"
    if kind == "literal_error":
        expected = str(ctx.get("expected", "")).replace("'", "")
        return f"must be one of: {expected}"
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern", ""))
        return _PATTERNS.get(pattern, f"must match the pattern {pattern}")
    if kind == "too_short":
        n = ctx.get("min_length", 1)
        return f"needs at least {n} {'entry' if n == 1 else 'entries'}"
    if kind == "too_long":
        return f"may have at most {ctx.get('max_length')} entries"
    if kind == "string_too_short":
        return (
            "must not be empty"
            if ctx.get("min_length") == 1
            else f"needs at least {ctx.get('min_length')} characters"
        )
    if kind == "string_too_long":
        return f"may be at most {ctx.get('max_length')} characters"
    if kind == "extra_forbidden" and err["loc"][-1:] == ("password",):
        return "passwords are never written inline: put it in a Secret and use passwordSecretRef {name, key}"
    if kind == "extra_forbidden":
        return "unknown field; check the spelling against the IronLB schema (`ironlb crds` prints it)"
    if kind == "missing":
        return "is required"
    return msg


def _pydantic_issues(
    kind: str, name: str, doc: Mapping[str, Any], exc: ValidationError, model: type[BaseModel] | None = None
) -> list[Issue]:
    issues = []
    errors = exc.errors()
    deeper = {tuple(e["loc"][:-1]) for e in errors if len(e["loc"]) > 1}
    for err in errors:
        loc = tuple(err["loc"])
        if err["type"] == "too_short" and any(d[: len(loc)] == loc for d in deeper):
            continue  # a list shorter only because its items failed: the item errors say why
        # Drop pydantic's internal markers such as function-after[...]
        loc = tuple(p for p in loc if not (isinstance(p, str) and "[" in p and p.endswith("]")))
        shown = loc[1:] if loc[:1] == ("spec",) else loc
        msg = _friendly(err, _field_at(model, loc) if model is not None else None)
        value = err.get("input") if err["type"] not in ("missing", "too_short", "too_long") else None
        if isinstance(value, Mapping):
            value = _value_at(doc, loc) if not isinstance(_value_at(doc, loc), Mapping) else None
        issues.append(Issue(kind, name, _loc(shown), value, msg))
    return issues


def load_objects(
    docs: Iterable[Mapping[str, Any] | None],
) -> tuple[list[Resource], list[dict[str, Any]], list[Issue]]:
    """Sort raw documents into our resources and plain Kubernetes objects, checking each alone."""
    resources: list[Resource] = []
    others: list[dict[str, Any]] = []
    issues: list[Issue] = []
    for index, doc in enumerate(docs):
        if doc is None:
            continue
        if not isinstance(doc, Mapping):
            issues.append(Issue("document", f"#{index}", "", None, "must be a mapping (a Kubernetes object)"))
            continue
        kind = str(doc.get("kind") or "")
        name = str((doc.get("metadata") or {}).get("name") or f"#{index}")
        api = doc.get("apiVersion")
        if kind in RESOURCE_KINDS and api == GROUP_VERSION:
            try:
                resources.append(RESOURCE_KINDS[kind].model_validate(doc))
            except ValidationError as exc:
                issues.extend(_pydantic_issues(kind, name, doc, exc, RESOURCE_KINDS[kind]))
        elif api == GROUP_VERSION:
            issues.append(
                Issue(
                    kind or "document",
                    name,
                    "kind",
                    kind,
                    f"unknown kind; allowed: {', '.join(sorted(RESOURCE_KINDS))}",
                )
            )
        elif str(api or "").startswith("ironlb.io/"):
            issues.append(Issue(kind or "document", name, "apiVersion", api, f"must be {GROUP_VERSION}"))
        else:
            others.append(dict(doc))
    return resources, others, issues


def parse(docs: Iterable[Mapping[str, Any] | None]) -> Config:
    """Parse and validate every document; raise ConfigError listing all problems."""
    resources, others, issues = load_objects(docs)
    by_kind: dict[str, dict[str, Resource]] = {k: {} for k in RESOURCE_KINDS}
    for res in resources:
        bucket = by_kind[res.kind]
        if res.name in bucket:
            issues.append(
                Issue(res.kind, res.name, "metadata.name", res.name, "is defined twice; names must be unique")
            )
        bucket[res.name] = res

    namespaces: dict[str, dict[str, str]] = {}
    services: list[ServiceRequest] = []
    for doc in others:
        kind = doc.get("kind")
        meta = doc.get("metadata") or {}
        if kind == "Namespace" and meta.get("name"):
            namespaces[str(meta["name"])] = dict(meta.get("labels") or {})
        elif kind == "Service":
            request, found = request_from_manifest(doc)
            issues.extend(found)
            if request is not None:
                services.append(request)

    tenants: dict[str, Tenant] = by_kind["Tenant"]  # type: ignore[assignment]
    owner_by_pool: dict[str, str] = {}
    for tname, tenant in sorted(tenants.items()):
        for pname in tenant.spec.pools:
            owner_by_pool.setdefault(pname, tname)

    pools: dict[str, PoolInfo] = {}
    for pname, res in by_kind["IPPool"].items():
        assert isinstance(res, IPPool)
        ranges = tuple(addresses.parse_block(a) for a in res.spec.addresses)
        pools[pname] = PoolInfo(res, ranges, res.spec.tenant or owner_by_pool.get(pname))

    aliases: dict[str, str] = {}
    for res in by_kind["Community"].values():
        assert isinstance(res, Community)
        aliases.update(res.spec.communities)

    config = Config(
        pools=pools,
        peers=by_kind["BGPPeer"],  # type: ignore[arg-type]
        l2_advertisements=by_kind["L2Advertisement"],  # type: ignore[arg-type]
        bgp_advertisements=by_kind["BGPAdvertisement"],  # type: ignore[arg-type]
        communities=aliases,
        tenants=tenants,
        bfd_profiles=by_kind["BFDProfile"],  # type: ignore[arg-type]
        namespaces=namespaces,
        services=tuple(services),
    )
    issues.extend(validation.check(config))
    errors = [i for i in issues if not i.warning]
    if errors:
        raise ConfigError(issues)
    return dataclasses.replace(config, warnings=tuple(i for i in issues if i.warning))
