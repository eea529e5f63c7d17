"""Parse once: raw documents in, one checked :class:`Config` out.

``parse(docs)`` takes any mix of IronLB custom resources, ``v1 Namespace`` and ``v1
Service`` manifests (as dicts, the way YAML loads them), validates each object alone
(``ironlb.model``), then runs the cross-object rules in ``ironlb.validation``.  It
collects *every* problem and raises one :class:`~ironlb.errors.ConfigError`; everything
after ``parse`` trusts the returned Config and never re-checks it.

Config is immutable and indexed by name.  Derived facts that many callers need (the
parsed ranges of a pool, the effective owner tenant of a pool, which tenant owns a
namespace) are computed once here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import netaddr
from pydantic import ValidationError

from ironlb import addresses
from ironlb.errors import ConfigError, Issue
from ironlb.model import (
    GROUP_VERSION,
    RESOURCE_KINDS,
    BGPAdvertisement,
    BGPPeer,
    Community,
    IPPool,
    L2Advertisement,
    Resource,
    Tenant,
)
from ironlb.service import ServiceRequest, request_from_manifest


@dataclass(frozen=True)
class PoolInfo:
    """A pool with its derived facts."""

    pool: IPPool
    ranges: tuple[netaddr.IPRange, ...]
    tenant: str | None  # effective owner: spec.tenant, or the Tenant that lists it

    @property
    def name(self) -> str:
        return self.pool.name

    def contains(self, ip: str | netaddr.IPAddress) -> bool:
        addr = netaddr.IPAddress(ip)
        return any(addr in r for r in self.ranges)

    def size(self, family: int | None = None) -> int:
        return sum(
            len(r) for r in self.ranges if family is None or r.version == family
        )


@dataclass(frozen=True)
class Config:
    """The whole checked configuration. Maps are keyed by object name."""

    pools: Mapping[str, PoolInfo] = field(default_factory=dict)
    peers: Mapping[str, BGPPeer] = field(default_factory=dict)
    l2_advertisements: Mapping[str, L2Advertisement] = field(default_factory=dict)
    bgp_advertisements: Mapping[str, BGPAdvertisement] = field(default_factory=dict)
    communities: Mapping[str, str] = field(default_factory=dict)  # alias -> literal
    tenants: Mapping[str, Tenant] = field(default_factory=dict)
    namespaces: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # ns -> labels
    services: tuple[ServiceRequest, ...] = ()
    warnings: tuple[Issue, ...] = ()

    def tenant_of_namespace(self, namespace: str) -> str | None:
        """The tenant that owns ``namespace``, or None for platform namespaces."""
        for name, tenant in self.tenants.items():
            if namespace in tenant.spec.namespaces:
                return name
        return None

    def namespace_labels(self, namespace: str) -> Mapping[str, str]:
        labels = dict(self.namespaces.get(namespace, {}))
        labels.setdefault("kubernetes.io/metadata.name", namespace)
        return labels


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


def _pydantic_issues(kind: str, name: str, doc: Mapping[str, Any], exc: ValidationError) -> list[Issue]:
    issues = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        # Drop pydantic's internal markers such as function-after[...]
        loc = tuple(p for p in loc if not (isinstance(p, str) and "[" in p and p.endswith("]")))
        if loc[:1] == ("spec",):
            shown = loc[1:]
        else:
            shown = loc
        msg = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field; check the spelling against the IronLB schema"
        elif err["type"] == "missing":
            msg = "is required"
        value = err.get("input") if err["type"] != "missing" else None
        if isinstance(value, Mapping):
            value = _value_at(doc, loc) if not isinstance(_value_at(doc, loc), Mapping) else None
        issues.append(Issue(kind, name, _loc(shown), value, msg))
    return issues


def load_objects(docs: Iterable[Mapping[str, Any] | None]) -> tuple[list[Resource], list[dict[str, Any]], list[Issue]]:
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
                issues.extend(_pydantic_issues(kind, name, doc, exc))
        elif api == GROUP_VERSION:
            issues.append(
                Issue(kind or "document", name, "kind", kind,
                      f"unknown kind; allowed: {', '.join(sorted(RESOURCE_KINDS))}")
            )
        elif str(api or "").startswith("ironlb.io/"):
            issues.append(Issue(kind or "document", name, "apiVersion", api, f"must be {GROUP_VERSION}"))
        else:
            others.append(dict(doc))
    return resources, others, issues


def parse(docs: Iterable[Mapping[str, Any] | None]) -> Config:
    """Parse and validate every document; raise ConfigError listing all problems."""
    from ironlb import validation  # local: validation imports Config from here

    resources, others, issues = load_objects(docs)
    by_kind: dict[str, dict[str, Resource]] = {k: {} for k in RESOURCE_KINDS}
    for res in resources:
        bucket = by_kind[res.kind]
        if res.name in bucket:
            issues.append(Issue(res.kind, res.name, "metadata.name", res.name, "is defined twice; names must be unique"))
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
        namespaces=namespaces,
        services=tuple(services),
    )
    issues.extend(validation.check(config))
    errors = [i for i in issues if not i.warning]
    if errors:
        raise ConfigError(issues)
    return Config(**{**config.__dict__, "warnings": tuple(i for i in issues if i.warning)})
