"""IronLB's CrossGuard policies (pulumi-policy): guard rails a preview enforces before apply.

- ``ironlb-pools-private``: every IPPool address block lies in private space (RFC 1918
  10/8, 172.16/12, 192.168/16) or IPv6 ULA (fc00::/7), unless its range is listed in the
  policy config ``allowedRanges``.
- ``ironlb-private-asn``: BGPPeer ``myASN`` and ``peerASN`` are private (64512-65534,
  4200000000-4294967294, RFC 6996), unless listed in ``allowedAsns``.
- ``ironlb-service-pins-in-tenant``: a Service pinning addresses (``ironlb.io/loadBalancerIPs``)
  pins only addresses of pools its namespace's tenant owns (or, outside every tenant, of
  pools no tenant owns).  A stack policy: it needs the pools and tenants of the stack (in a
  tenant stack, those the platform stack's ``tenantGrants`` output hands it).
- ``ironlb-bgp-password-secret``: a BGPPeer never carries a password inline, and the
  Secret its ``passwordSecretRef`` names, when the stack creates it, keeps ``data`` and
  ``stringData`` secret in state (``additional_secret_outputs``).  The Python policy SDK
  unwraps secret values before validation, so the option is the observable signal.

This module is importable without starting anything (``PolicyPack`` blocks forever; only
``policy/__main__.py`` builds it) and depends only on the standard library and
pulumi-policy, so the pack can be published on its own.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

POOL_TYPE = "kubernetes:ironlb.io/v1alpha1:IPPool"
PEER_TYPE = "kubernetes:ironlb.io/v1alpha1:BGPPeer"
TENANT_TYPE = "kubernetes:ironlb.io/v1alpha1:Tenant"
SERVICE_TYPE = "kubernetes:core/v1:Service"
SECRET_TYPE = "kubernetes:core/v1:Secret"
STACK_REFERENCE_TYPE = "pulumi:pulumi:StackReference"
ANN_IPS = "ironlb.io/loadBalancerIPs"  # == ironlb.model.ANN_IPS (a test pins it)

PRIVATE_NETWORKS = tuple(
    ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
)
PRIVATE_ASNS = ((64512, 65534), (4200000000, 4294967294))

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def block_bounds(text: str) -> tuple[Address, Address]:
    """First and last address of a CIDR, an ``a-b`` range or one address."""
    text = text.strip()
    if "/" in text:
        net = ipaddress.ip_network(text, strict=False)
        return net[0], net[-1]
    if "-" in text:
        first, last = text.split("-", 1)
        return ipaddress.ip_address(first.strip()), ipaddress.ip_address(last.strip())
    ip = ipaddress.ip_address(text)
    return ip, ip


def _inside(bounds: tuple[Address, Address], nets: Iterable[Network]) -> bool:
    first, last = bounds
    return any(first.version == n.version and first in n and last in n for n in nets)


def _within(ip: Address, bounds: tuple[Address, Address]) -> bool:
    first, last = bounds
    return ip.version == first.version and int(first) <= int(ip) <= int(last)


def _spec(props: Mapping[str, Any]) -> Mapping[str, Any]:
    spec = props.get("spec")
    return spec if isinstance(spec, Mapping) else {}


def _name(props: Mapping[str, Any]) -> str:
    meta = props.get("metadata")
    return str(meta.get("name")) if isinstance(meta, Mapping) else "?"


# --- pools in private space --------------------------------------------------------------


def check_pool_private(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != POOL_TYPE:
        return
    allowed = [ipaddress.ip_network(n, strict=False) for n in args.get_config().get("allowedRanges", [])]
    for i, block in enumerate(_spec(args.props).get("addresses") or []):
        try:
            bounds = block_bounds(str(block))
        except ValueError:
            continue  # the schema reports malformed blocks
        if not _inside(bounds, (*PRIVATE_NETWORKS, *allowed)):
            report(
                f'IPPool "{_name(args.props)}": addresses[{i}] "{block}" is not in private (RFC 1918) or ULA '
                "space; add its range to this policy's allowedRanges if that is intended",
                None,
            )


pools_private = ResourceValidationPolicy(
    name="ironlb-pools-private",
    description="IPPool addresses must be RFC 1918 or ULA unless explicitly allowed.",
    validate=check_pool_private,
    enforcement_level=EnforcementLevel.MANDATORY,
    config_schema=PolicyConfigSchema(
        properties={"allowedRanges": {"type": "array", "items": {"type": "string"}, "default": []}}
    ),
)


# --- private ASNs ------------------------------------------------------------------------


def is_private_asn(asn: int) -> bool:
    return any(lo <= asn <= hi for lo, hi in PRIVATE_ASNS)


def check_private_asn(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != PEER_TYPE:
        return
    allowed = {int(a) for a in args.get_config().get("allowedAsns", [])}
    spec = _spec(args.props)
    for field in ("myASN", "peerASN"):
        value = spec.get(field)
        if value is None:
            continue
        asn = int(value)
        if not is_private_asn(asn) and asn not in allowed:
            report(
                f'BGPPeer "{_name(args.props)}": {field} "{asn}" is not a private ASN (64512-65534 or '
                "4200000000-4294967294); add it to this policy's allowedAsns if that is intended",
                None,
            )


private_asn = ResourceValidationPolicy(
    name="ironlb-private-asn",
    description="BGP peers use private ASNs unless explicitly allowed.",
    validate=check_private_asn,
    enforcement_level=EnforcementLevel.MANDATORY,
    config_schema=PolicyConfigSchema(
        properties={"allowedAsns": {"type": "array", "items": {"type": "integer"}, "default": []}}
    ),
)


# --- pinned addresses stay inside the tenant ---------------------------------------------


def check_pins_in_tenant(args: StackValidationArgs, report: ReportViolation) -> None:
    pools: dict[str, list[tuple[Address, Address]]] = {}
    pool_tenant: dict[str, str | None] = {}
    ns_tenant: dict[str, str] = {}
    for res in args.resources:
        spec = _spec(res.props)
        if res.resource_type == STACK_REFERENCE_TYPE:  # a tenant stack: pools come from the platform's grants
            grants = (res.props.get("outputs") or {}).get("tenantGrants") or {}
            for tenant, grant in grants.items():
                for ns in grant.get("namespaces") or []:
                    ns_tenant[str(ns)] = tenant
                for name, pool_spec in (grant.get("pools") or {}).items():
                    pools[name] = [block_bounds(str(b)) for b in pool_spec.get("addresses") or []]
                    pool_tenant[name] = tenant
        elif res.resource_type == POOL_TYPE:
            name = _name(res.props)
            pools[name] = [block_bounds(str(b)) for b in spec.get("addresses") or []]
            pool_tenant.setdefault(name, spec.get("tenant"))
        elif res.resource_type == TENANT_TYPE:
            tenant = _name(res.props)
            for ns in spec.get("namespaces") or []:
                ns_tenant[str(ns)] = tenant
            for pool in spec.get("pools") or []:
                pool_tenant[str(pool)] = tenant
    for res in args.resources:
        if res.resource_type != SERVICE_TYPE:
            continue
        meta = res.props.get("metadata") or {}
        pins = [
            p.strip() for p in str((meta.get("annotations") or {}).get(ANN_IPS, "")).split(",") if p.strip()
        ]
        namespace = str(meta.get("namespace") or "default")
        who = f'Service "{namespace}/{meta.get("name")}"'
        tenant = ns_tenant.get(namespace)
        for pin in pins:
            try:
                ip = ipaddress.ip_address(pin)
            except ValueError:
                continue
            owner = next((p for p, blocks in pools.items() if any(_within(ip, b) for b in blocks)), None)
            if owner is None:
                report(f'{who}: pinned address "{pin}" is in no IPPool of this stack', res.urn)
            elif pool_tenant.get(owner) != tenant:
                whose = f'tenant "{tenant}"' if tenant else "no tenant"
                owner_tenant = pool_tenant.get(owner) or "-"
                report(
                    f'{who}: pinned address "{pin}" is in pool "{owner}" (tenant "{owner_tenant}"), '
                    f'but namespace "{namespace}" belongs to {whose}',
                    res.urn,
                )


pins_in_tenant = StackValidationPolicy(
    name="ironlb-service-pins-in-tenant",
    description="A Service pins only addresses from pools of its own tenant.",
    validate=check_pins_in_tenant,
    enforcement_level=EnforcementLevel.MANDATORY,
)


# --- BGP passwords are secrets -----------------------------------------------------------


def check_passwords_secret(args: StackValidationArgs, report: ReportViolation) -> None:
    secrets = {}
    for res in args.resources:
        if res.resource_type == SECRET_TYPE:
            meta = res.props.get("metadata") or {}
            secrets[(str(meta.get("namespace") or "default"), _name(res.props))] = res
    secret_names = {name: res for (_, name), res in secrets.items()}
    for res in args.resources:
        if res.resource_type != PEER_TYPE:
            continue
        spec = _spec(res.props)
        if "password" in spec:
            report(
                f'BGPPeer "{_name(res.props)}": spec.password is plain text; put the password in a Secret '
                "and reference it with passwordSecretRef",
                res.urn,
            )
        ref = spec.get("passwordSecretRef")
        if not isinstance(ref, Mapping) or ref.get("name") not in secret_names:
            continue
        secret = secret_names[str(ref["name"])]
        marked = set(secret.opts.additional_secret_outputs or [])
        missing = sorted({"data", "stringData"} - marked)
        if missing:
            report(
                f'Secret "{ref["name"]}" holds BGPPeer "{_name(res.props)}"\'s password but '
                f"{', '.join(missing)} is not kept secret in state; "
                "create it with additional_secret_outputs=['data', 'stringData'] "
                "(the BgpPeer component does)",
                secret.urn,
            )


passwords_secret = StackValidationPolicy(
    name="ironlb-bgp-password-secret",
    description="BGP passwords live only in Secrets whose data stays secret in Pulumi state.",
    validate=check_passwords_secret,
    enforcement_level=EnforcementLevel.MANDATORY,
)

#: Every policy of the pack, in report order.
POLICIES = [pools_private, private_asn, pins_in_tenant, passwords_secret]
