"""The IronLB Pulumi program: stack config in, components out (``__main__.py`` only calls :func:`run`).

Order matters and is the point of this module:

1. read the structured stack config (``ironlb.components.stackconfig``);
2. parse *every* object of the program with the shared schema (``ironlb.config.parse``),
   so a bad pool, an unknown reference or a service naming another tenant's pool fails
   ``pulumi preview`` with the schema's messages -- before a single resource registers;
3. build the components from the checked models: the NodeAgent (with the CRDs), pools
   (a tenant's pools as children of its Tenant), peers, advertisements, services.

A tenant stack (``ironlb:platform`` set) reads the platform stack's ``tenantGrants``
through a StackReference and checks its services against the pools granted to it; its
Services depend on that check, so a service naming a pool the platform did not grant
never registers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pulumi

from ironlb.components.args import to_args
from ironlb.components.base import InvalidConfigError
from ironlb.components.bfd import BfdProfile
from ironlb.components.node_agent import NodeAgent
from ironlb.components.resources import BgpAdvertisement, BgpPeer, Community, IpPool, L2Advertisement
from ironlb.components.service import LoadBalancerService
from ironlb.components.stackconfig import (
    OBJECT_KEYS,
    REDACTED,
    SETTING_KEYS,
    StackSpec,
    documents,
    spec_from_values,
    tenant_documents,
    tenant_grants,
)
from ironlb.components.tenant import Tenant
from ironlb.config import Config, parse
from ironlb.errors import ConfigError
from ironlb.model import LOAD_BALANCER_CLASS

SecretReader = Callable[[str], pulumi.Output[str]]
#: Secret stack keys of the NodeAgent: the membership key, and the next one during a rotation.
KEY_SECRETS = {"membershipKey", "membershipNextKey"}


def read_values(cfg: pulumi.Config) -> dict[str, Any]:
    """The structured IronLB keys of the current stack; secrets only as "present" markers."""
    values = {}
    for key in sorted({*OBJECT_KEYS, *SETTING_KEYS} - KEY_SECRETS):
        value = cfg.get_object(key)
        if value is not None:
            values[key] = value
    secret_keys = set(KEY_SECRETS) | {
        str(p["passwordConfig"])
        for p in values.get("peers") or []
        if isinstance(p, Mapping) and "passwordConfig" in p
    }
    for key in sorted(secret_keys):
        if cfg.get_secret(key) is not None:
            values[key] = REDACTED
    for key in _stack_keys() - set(values) - secret_keys:  # unknown keys, so a typo is reported
        values[key] = REDACTED
    return values


def _stack_keys() -> set[str]:
    """Every ``ironlb:*`` key set for this stack (the engine hands the program the whole map)."""
    from pulumi.runtime import config as runtime_config

    names = {*runtime_config.CONFIG.get(), *runtime_config.get_config_env()}
    return {k.partition(":")[2] for k in names if k.startswith("ironlb:") and k.partition(":")[2]}


def checked(spec_docs: list[dict[str, Any]]) -> Config:
    """parse(), with ConfigError turned into Pulumi's clean error."""
    try:
        return parse(spec_docs)
    except ConfigError as exc:
        raise InvalidConfigError.from_config_error(exc) from None


def run(cfg: pulumi.Config | None = None) -> dict[str, Any]:
    """Build the whole program for the current stack; return the stack outputs."""
    cfg = cfg or pulumi.Config("ironlb")
    try:
        spec = spec_from_values(read_values(cfg))
    except ConfigError as exc:
        raise InvalidConfigError.from_config_error(exc) from None
    if spec.platform is not None:
        return build_tenant_stack(spec)
    config = checked(documents(spec))
    next_key = cfg.get_secret("membershipNextKey")
    return build_platform(spec, config, cfg.require_secret, next_key)


def build_platform(
    spec: StackSpec, config: Config, secret: SecretReader, next_key: pulumi.Output[str] | None = None
) -> dict[str, Any]:
    """Every component of a full (or platform) stack, from the checked Config."""
    ns = spec.namespace
    agent = NodeAgent(
        "ironlb",
        {
            **spec.agent,  # type: ignore[typeddict-item]
            "membership_key": secret(spec.membership_key),
            **({"membership_next_key": next_key} if next_key is not None else {}),
            "bgp_password_secrets": sorted(
                f"{p.spec.passwordSecretRef.name}/{p.spec.passwordSecretRef.key}"
                for p in config.peers.values()
                if p.spec.passwordSecretRef is not None
            ),
        },
    )
    after = pulumi.ResourceOptions(depends_on=[*agent.crds] or [agent])
    for name in sorted({c["metadata"]["name"] for c in spec.objects if c["kind"] == "Community"}):
        Community(name, {"communities": dict(_community_spec(spec, name)), "namespace": ns}, opts=after)
    pools: dict[str, IpPool] = {}
    for name, info in sorted(config.pools.items()):
        if info.tenant is None:
            pools[name] = IpPool(name, _pool_args(info.pool, ns), opts=after)  # type: ignore[arg-type]
    owners: dict[str, pulumi.Resource] = {}
    for name, tenant in sorted(config.tenants.items()):
        own = {p: _pool_args(i.pool, ns) for p, i in sorted(config.pools.items()) if i.tenant == name}
        extras = spec.tenant_extras.get(name, {})
        component = Tenant(
            name,
            {
                "namespaces": list(tenant.spec.namespaces),
                "adopt_namespaces": list(extras.get("adopt_namespaces", [])),
                "pools": own,  # type: ignore[typeddict-item]
                "granted_pools": [p for p in tenant.spec.pools if p not in own],
                **(
                    {"max_addresses": tenant.spec.maxAddresses}
                    if tenant.spec.maxAddresses is not None
                    else {}
                ),
                **(
                    {"max_load_balancer_services": extras["max_load_balancer_services"]}
                    if "max_load_balancer_services" in extras
                    else {}
                ),
                "namespace": ns,
            },
            opts=after,
        )
        # Services wait for their Namespace only (not the whole Tenant: cheaper to resolve).
        owners.update(zip(tenant.spec.namespaces, component.namespace_resources, strict=True))
    for name, profile in sorted(config.bfd_profiles.items()):
        BfdProfile(name, {**to_args(profile.spec), "namespace": ns}, opts=after)  # type: ignore[typeddict-item]
    for name, peer in sorted(config.peers.items()):
        args = to_args(peer.spec)
        if name in spec.password_keys:  # the password is in stack config: the component makes the Secret
            ref = args.pop("password_secret_ref")
            args["password"] = secret(spec.password_keys[name])
            args["password_secret_name"] = ref["name"]
        BgpPeer(name, {**args, "namespace": ns}, opts=after)  # type: ignore[typeddict-item]
    for name, l2 in sorted(config.l2_advertisements.items()):
        L2Advertisement(name, {**to_args(l2.spec), "namespace": ns}, opts=after)  # type: ignore[typeddict-item]
    for name, bgp in sorted(config.bgp_advertisements.items()):
        BgpAdvertisement(name, {**to_args(bgp.spec), "namespace": ns}, opts=after)  # type: ignore[typeddict-item]
    services = _services(spec, None, owners)
    outputs: dict[str, Any] = {
        "namespace": agent.namespace,
        "loadBalancerClass": LOAD_BALANCER_CLASS,
        "pools": {
            n: {"addresses": list(i.pool.spec.addresses), "tenant": i.tenant or ""}
            for n, i in sorted(config.pools.items())
        },
        "peers": sorted(config.peers),
        "tenants": sorted(config.tenants),
        "services": services,
    }
    if spec.export_grants:
        outputs["tenantGrants"] = tenant_grants(config)
    return outputs


def build_tenant_stack(spec: StackSpec) -> dict[str, Any]:
    """A tenant stack: services only, checked against what the platform granted."""
    assert spec.platform is not None
    tenant = spec.platform.tenant
    ref = pulumi.StackReference("platform", stack_name=spec.platform.qualified(pulumi.get_organization()))
    grants = ref.require_output("tenantGrants")

    def check(value: Any) -> pulumi.StackReference:
        try:
            parse(tenant_documents(value if isinstance(value, Mapping) else {}, tenant, spec))
        except ConfigError as exc:
            raise InvalidConfigError.from_config_error(exc) from None
        return ref

    gate = grants.apply(check)
    return {"tenant": tenant, "services": _services(spec, gate)}


def _services(
    spec: StackSpec,
    gate: pulumi.Output[pulumi.StackReference] | None,
    owners: Mapping[str, pulumi.Resource] | None = None,
) -> dict[str, Any]:
    """One LoadBalancerService per entry; each waits for its tenant's Namespace (and the gate)."""
    out: dict[str, Any] = {}
    for svc in spec.services:
        args = {k: v for k, v in svc.items() if k != "name"}
        key = f"{args.get('namespace', 'default')}/{svc['name']}"
        owner = (owners or {}).get(str(args.get("namespace", "default")))
        depends: list[Any] = [d for d in (gate, owner) if d is not None]
        opts = pulumi.ResourceOptions(depends_on=depends) if depends else None
        component = LoadBalancerService(
            f"{args.get('namespace', 'default')}-{svc['name']}",
            {**args, "service_name": svc["name"]},  # type: ignore[typeddict-item]
            opts=opts,
        )
        out[key] = component.ip
    return out


def _pool_args(pool: Any, ns: str) -> dict[str, Any]:
    args = to_args(pool.spec)
    args.pop("tenant", None)
    labels = dict(pool.metadata.labels)
    return {**args, "namespace": ns, **({"labels": labels} if labels else {})}


def _community_spec(spec: StackSpec, name: str) -> Mapping[str, str]:
    doc = next(c for c in spec.objects if c["kind"] == "Community" and c["metadata"]["name"] == name)
    communities: Mapping[str, str] = doc["spec"].get("communities", {})
    return communities
