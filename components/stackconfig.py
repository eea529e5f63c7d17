"""Structured stack configuration: ``stacks/Pulumi.<stack>.yaml`` -> documents for the schema.

A stack file holds IronLB's objects under ``ironlb:*`` keys, in the same camelCase the CRDs
use (a pool entry is ``{name, labels?, <IPPool spec fields>}``).  This module is pure (no
Pulumi): the program, ``ironlb render`` and ``ironlb plan`` all call it, so they read a
stack exactly the same way.

- :func:`read_stack_file` loads a stack file for offline use.  ``secure:`` values become
  :data:`REDACTED` and are reported as secret keys; only a caller that passes ``reveal``
  (``ironlb.components.stacksecrets``, e.g. the lab's cluster mode) gets their plaintext.
- :func:`spec_from_values` checks the stack-level structure (unknown keys, missing names)
  and :func:`documents` turns it into the documents ``ironlb.config.parse`` takes: our
  custom resources, Namespaces and Services.
- :func:`tenant_grants` is what a platform stack exports for tenant stacks, and
  :func:`tenant_documents` rebuilds, inside a tenant stack, the only pools it may use.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic.alias_generators import to_snake

from ironlb.config import Config
from ironlb.errors import ConfigError, Issue
from ironlb.model import GROUP_VERSION

PROJECT = "ironlb"
REDACTED = "[secret]"
#: libyaml's safe loader when PyYAML has it (same documents, ~20x faster on a 1,000-service stack).
SAFE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
#: Stack keys holding lists of our objects, and their kind.
OBJECT_KEYS = {
    "pools": "IPPool",
    "peers": "BGPPeer",
    "l2Advertisements": "L2Advertisement",
    "bgpAdvertisements": "BGPAdvertisement",
    "communities": "Community",
    "tenants": "Tenant",
    "bfdProfiles": "BFDProfile",
}
SETTING_KEYS = {"agent", "services", "membershipKey", "membershipNextKey", "platform", "exportGrants"}
TENANT_EXTRA = {"adoptNamespaces", "maxLoadBalancerServices"}
SERVICE_KEYS = {
    "name",
    "namespace",
    "ports",
    "selector",
    "pool",
    "ips",
    "sharingKey",
    "externalTrafficPolicy",
    "ipFamilyPolicy",
    "ipFamilies",
    "labels",
    "annotations",
}
AGENT_KEYS = {
    "namespace",
    "createNamespace",
    "installCrds",
    "image",
    "version",
    "nodeSelector",
    "tolerations",
    "cpuRequest",
    "memoryRequest",
    "cpuLimit",
    "memoryLimit",
    "metricsPort",
    "metricsAddress",
    "healthPort",
    "statusEndpoint",
    "membershipPort",
    "membershipKeyVersion",
    "logLevel",
    "logFormat",
    "controllerReplicas",
    "claimClassless",
    "serviceMonitor",
    "serviceMonitorLabels",
}


@dataclass(frozen=True)
class PlatformRef:
    """In a tenant stack: which platform stack to read, and which tenant this stack is."""

    stack: str  # "<stack>", "<project>/<stack>" or "<org>/<project>/<stack>"
    tenant: str

    def qualified(self, organization: str) -> str:
        """The fully qualified stack name; the organization, when not written, is this stack's own
        (so stack files name no organization, and CI sets it once: decision 0073)."""
        parts = self.stack.split("/")
        if len(parts) == 3:
            return self.stack
        return "/".join([organization, *([PROJECT] if len(parts) == 1 else []), *parts])


@dataclass(frozen=True)
class StackSpec:
    """A stack's IronLB settings, structurally checked (object rules come from the schema)."""

    agent: Mapping[str, Any] = field(default_factory=dict)  # NodeAgentArgs (snake_case)
    objects: tuple[dict[str, Any], ...] = ()  # our custom resources, as documents
    services: tuple[dict[str, Any], ...] = ()  # LoadBalancerServiceArgs (snake_case), with "name"
    password_keys: Mapping[str, str] = field(default_factory=dict)  # peer -> config key of its password
    tenant_extras: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # tenant -> adopt/quota
    membership_key: str = "membershipKey"
    platform: PlatformRef | None = None
    export_grants: bool = False

    @property
    def namespace(self) -> str:
        return str(self.agent.get("namespace", "ironlb-system"))


def load_yaml(text: str) -> Any:
    """``yaml.safe_load`` through :data:`SAFE_LOADER`."""
    return yaml.load(text, Loader=SAFE_LOADER)  # a safe loader (libyaml or pure Python)


def read_stack_file(
    path: Path, reveal: Callable[[str, str], str] | None = None
) -> tuple[dict[str, Any], set[str]]:
    """(values by key without the ``ironlb:`` prefix, keys holding secrets). Secrets are redacted,
    unless ``reveal(ciphertext, key)`` is given: then they hold its plaintext (still reported secret)."""
    return stack_values(load_yaml(path.read_text()) or {}, reveal)


def is_stack_file(doc: Any) -> bool:
    """Whether a YAML document is a Pulumi stack file (a ``config:`` mapping, no ``kind``)."""
    return isinstance(doc, Mapping) and "kind" not in doc and isinstance(doc.get("config"), Mapping)


def stack_values(
    raw: Mapping[str, Any], reveal: Callable[[str, str], str] | None = None
) -> tuple[dict[str, Any], set[str]]:
    """:func:`read_stack_file` for a stack file already loaded."""
    config = raw.get("config") or {}
    values: dict[str, Any] = {}
    secrets: set[str] = set()
    for full_key, value in config.items():
        project, _, key = str(full_key).partition(":")
        if project != PROJECT or not key:
            continue
        redacted, had_secret = _redact(value, _secure_reader(reveal, str(full_key)))
        values[key] = redacted
        if had_secret:
            secrets.add(key)
    return values, secrets


def _secure_reader(reveal: Callable[[str, str], str] | None, key: str) -> Callable[[str], str]:
    if reveal is None:
        return lambda _ciphertext: REDACTED
    return lambda ciphertext: reveal(ciphertext, key)


def _redact(value: Any, secure: Callable[[str], str]) -> tuple[Any, bool]:
    if isinstance(value, Mapping) and set(value) == {"secure"}:
        return secure(str(value["secure"])), True
    if isinstance(value, Mapping):
        pairs = {k: _redact(v, secure) for k, v in value.items()}
        return {k: v for k, (v, _) in pairs.items()}, any(s for _, s in pairs.values())
    if isinstance(value, list):
        items = [_redact(v, secure) for v in value]
        return [v for v, _ in items], any(s for _, s in items)
    return value, False


def _entries(values: Mapping[str, Any], key: str, issues: list[Issue]) -> list[dict[str, Any]]:
    raw = values.get(key) or []
    if not isinstance(raw, list):
        issues.append(_stack_issue(key, "must be a list of objects"))
        return []
    out = []
    for i, entry in enumerate(raw):
        if not isinstance(entry, Mapping) or not entry.get("name"):
            issues.append(
                Issue(
                    "stack config",
                    f"ironlb:{key}[{i}]",
                    "name",
                    None,
                    "every entry must be a mapping with a name",
                )
            )
            continue
        out.append(dict(entry))
    return out


def _stack_issue(key: str, message: str) -> Issue:
    """A problem with the stack file's ``ironlb:<key>`` as a whole."""
    return Issue("stack config", f"ironlb:{key}", "", None, message)


def _check_keys(where: str, entry: Mapping[str, Any], allowed: set[str], issues: list[Issue]) -> None:
    for key in sorted(set(entry) - allowed):
        issues.append(
            Issue("stack config", where, key, None, f"unknown key; allowed: {', '.join(sorted(allowed))}")
        )


def spec_from_values(values: Mapping[str, Any]) -> StackSpec:
    """Check the stack-level structure; raise ConfigError naming every problem."""
    issues: list[Issue] = []
    for key in sorted(set(values) - set(OBJECT_KEYS) - SETTING_KEYS):
        ref = next((p for p in _entries(values, "peers", []) if p.get("passwordConfig") == key), None)
        if ref is None:
            issues.append(
                _stack_issue(
                    key,
                    f"unknown key; allowed: {', '.join(sorted({*OBJECT_KEYS, *SETTING_KEYS}))} "
                    "or a password key named by a peer's passwordConfig",
                )
            )
    objects: list[dict[str, Any]] = []
    passwords: dict[str, str] = {}
    extras: dict[str, dict[str, Any]] = {}
    for key, kind in OBJECT_KEYS.items():
        for entry in _entries(values, key, issues):
            name = str(entry.pop("name"))
            labels = entry.pop("labels", None)
            if kind == "BGPPeer" and "passwordConfig" in entry:
                passwords[name] = str(entry.pop("passwordConfig"))
                entry["passwordSecretRef"] = {"name": f"ironlb-bgp-{name}", "key": "password"}
            if kind == "Tenant":
                extras[name] = {to_snake(k): entry.pop(k) for k in sorted(TENANT_EXTRA & set(entry))}
            meta: dict[str, Any] = {"name": name, **({"labels": labels} if labels else {})}
            objects.append({"apiVersion": GROUP_VERSION, "kind": kind, "metadata": meta, "spec": entry})
    services = []
    for i, entry in enumerate(_entries(values, "services", issues)):
        _check_keys(f"ironlb:services[{i}]", entry, SERVICE_KEYS, issues)
        args = {to_snake(k): v for k, v in entry.items() if k in SERVICE_KEYS}
        args["ports"] = [
            {to_snake(k): v for k, v in p.items()} if isinstance(p, Mapping) else p
            for p in args.get("ports") or []
        ]
        services.append(args)
    agent = values.get("agent") or {}
    if not isinstance(agent, Mapping):
        issues.append(_stack_issue("agent", "must be a mapping"))
        agent = {}
    _check_keys("ironlb:agent", agent, AGENT_KEYS, issues)
    platform = None
    if values.get("platform") is not None:
        ref = values["platform"]
        if not isinstance(ref, Mapping) or not ref.get("stack") or not ref.get("tenant"):
            issues.append(
                _stack_issue(
                    "platform",
                    "must be {stack: <platform stack> (or <org>/<project>/<stack>), tenant: <tenant name>}",
                )
            )
        else:
            platform = PlatformRef(str(ref["stack"]), str(ref["tenant"]))
            if objects:
                issues.append(
                    _stack_issue(
                        "platform",
                        "a tenant stack defines only services; pools, peers and tenants "
                        "belong to the platform stack",
                    )
                )
    if platform is None and any(o["kind"] != "Tenant" for o in objects) and "membershipKey" not in values:
        issues.append(
            _stack_issue(
                "membershipKey",
                "is required: set it with `pulumi config set --secret membershipKey <random>`",
            )
        )
    for peer, key in sorted(passwords.items()):
        if key not in values:
            issues.append(
                _stack_issue(
                    key,
                    f'is named by peer "{peer}" passwordConfig but not set; set it with '
                    f"`pulumi config set --secret {key} <password>`",
                )
            )
    if issues:
        raise ConfigError(issues)
    return StackSpec(
        agent={to_snake(k): v for k, v in agent.items()},
        objects=tuple(objects),
        services=tuple(services),
        password_keys=passwords,
        tenant_extras=extras,
        platform=platform,
        export_grants=bool(values.get("exportGrants", False)),
    )


def service_documents(spec: StackSpec) -> list[dict[str, Any]]:
    from ironlb.components.service import service_manifest

    return [
        service_manifest(str(s["name"]), {k: v for k, v in s.items() if k != "name"}) for s in spec.services
    ]


def documents(spec: StackSpec) -> list[dict[str, Any]]:
    """Everything ``ironlb.config.parse`` needs: our objects, the tenants' Namespaces, Services."""
    namespaces = []
    for obj in spec.objects:
        if obj["kind"] == "Tenant":
            for ns in obj["spec"].get("namespaces") or []:
                labels = {"ironlb.io/tenant": obj["metadata"]["name"]}
                namespaces.append(
                    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": labels}}
                )
    return [*spec.objects, *namespaces, *service_documents(spec)]


def tenant_grants(config: Config) -> dict[str, Any]:
    """What a platform stack exports: per tenant, its namespaces, its pools (with specs) and quota."""
    grants: dict[str, Any] = {}
    for name, tenant in sorted(config.tenants.items()):
        pools = {
            p: info.pool.to_manifest()["spec"]
            for p, info in sorted(config.pools.items())
            if info.tenant == name
        }
        grant: dict[str, Any] = {"namespaces": list(tenant.spec.namespaces), "pools": pools}
        if tenant.spec.maxAddresses is not None:
            grant["maxAddresses"] = tenant.spec.maxAddresses
        grants[name] = grant
    return grants


def tenant_documents(grants: Mapping[str, Any], tenant: str, spec: StackSpec) -> list[dict[str, Any]]:
    """Inside a tenant stack: the tenant, only the pools the platform granted it, and its services."""
    grant = grants.get(tenant)
    if not isinstance(grant, Mapping):
        raise ConfigError(
            [
                Issue(
                    "stack config",
                    "ironlb:platform",
                    "tenant",
                    tenant,
                    f"the platform stack grants nothing to this tenant; known tenants: "
                    f"{', '.join(sorted(grants)) or 'none'}",
                )
            ]
        )
    pools = dict(grant.get("pools") or {})
    tenant_spec: dict[str, Any] = {"namespaces": list(grant.get("namespaces") or []), "pools": sorted(pools)}
    if grant.get("maxAddresses") is not None:
        tenant_spec["maxAddresses"] = grant["maxAddresses"]
    docs: list[dict[str, Any]] = [
        {"apiVersion": GROUP_VERSION, "kind": "Tenant", "metadata": {"name": tenant}, "spec": tenant_spec},
        *(
            {"apiVersion": GROUP_VERSION, "kind": "IPPool", "metadata": {"name": p}, "spec": dict(s)}
            for p, s in sorted(pools.items())
        ),
    ]
    return [*docs, *service_documents(spec)]
