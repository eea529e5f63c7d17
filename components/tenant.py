"""Tenant: a team's namespaces, the pools only it may use, and its quotas.

Children: one Namespace per owned namespace (labelled ``ironlb.io/tenant``), or a
``NamespacePatch`` for namespaces that already exist (adopted: labelled by server-side
apply, never created or deleted); the ``Tenant`` custom resource; an :class:`IpPool` per
pool it owns (their ``tenant`` field is set to this tenant); and, when asked, a
ResourceQuota per namespace capping ``services.loadbalancers``.

Two quotas, two jobs: ``max_addresses`` is IronLB's (addresses held across all the
tenant's namespaces, enforced by the allocator); ``max_load_balancer_services`` is
Kubernetes' own (Service objects per namespace, enforced by the API server).

``namespaces``, ``adopt_namespaces`` and the pool names decide which children exist, so
they must be plain values (an Output there is refused, naming the field); everything else
may be an Output and is checked when it resolves (:func:`ironlb.components.base.when_known`).

No ``from __future__ import annotations`` here: the Analyzer reads the annotations.
"""

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from ironlb import model
from ironlb.components.args import TenantArgs, to_spec
from ironlb.components.base import (
    DEFAULT_NAMESPACE,
    MANAGED_BY,
    InvalidConfigError,
    child_opts,
    child_resource,
    has_outputs,
    lift,
    token,
    validate,
    when_known,
)
from ironlb.components.resources import IpPool
from ironlb.errors import Issue

TENANT_LABEL = "ironlb.io/tenant"


class Tenant(pulumi.ComponentResource):
    """A tenant: owned namespaces (created or adopted), its pools, and its quotas."""

    tenant_name: pulumi.Output[str]
    """The Tenant's metadata.name."""
    namespaces: pulumi.Output[list[str]]
    """Namespaces the tenant owns."""
    pool_names: pulumi.Output[list[str]]
    """Pools the tenant owns."""

    def __init__(self, name: str, args: TenantArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        install_ns = args.get("namespace", DEFAULT_NAMESPACE)
        _require_plain(name, args)
        own_pools = dict(args.get("pools", {}))
        namespaces = list(args.get("namespaces", []))

        def spec(granted: Any, max_addresses: Any) -> dict[str, Any]:
            return to_spec(
                model.TenantSpec,
                {
                    "namespaces": namespaces,
                    "pools": sorted({*own_pools, *(granted or [])}),
                    "max_addresses": max_addresses,
                },
            )

        # What is plain is checked now, before anything registers: the namespaces and own pools.
        validate(model.Tenant, name, spec([], None))
        for p, a in sorted(own_pools.items()):
            if not has_outputs(a):
                validate(model.IPPool, p, to_spec(model.IPPoolSpec, _pool_spec(a, name)))
        res = when_known(
            {"granted": args.get("granted_pools", []), "max": args.get("max_addresses")},
            lambda v: validate(model.Tenant, name, spec(v["granted"], v["max"])),
        )
        super().__init__(token("Tenant"), name, {}, opts)
        self.resource = res
        adopt = set(args.get("adopt_namespaces", []))
        labels = {**MANAGED_BY, TENANT_LABEL: name}
        self.namespace_resources: list[pulumi.CustomResource] = []
        for ns in namespaces:
            if ns in adopt:
                self.namespace_resources.append(
                    k8s.core.v1.NamespacePatch(
                        f"{name}-namespace-{ns}",
                        metadata={"name": ns, "labels": {TENANT_LABEL: name}},
                        opts=child_opts(self, opts),
                    )
                )
            else:
                self.namespace_resources.append(
                    k8s.core.v1.Namespace(
                        f"{name}-namespace-{ns}",
                        metadata={"name": ns, "labels": labels},
                        opts=child_opts(self, opts),
                    )
                )
        self.cr = child_resource(self, name, model.Tenant, res, install_ns, opts)
        self.pools = [
            IpPool(pname, {**pargs, "tenant": name, "namespace": install_ns}, opts=child_opts(self, opts))
            for pname, pargs in sorted(own_pools.items())
        ]
        self.quotas: list[k8s.core.v1.ResourceQuota] = []
        limit = args.get("max_load_balancer_services")
        if limit is not None:
            for ns, ns_res in zip(namespaces, self.namespace_resources, strict=True):
                self.quotas.append(
                    k8s.core.v1.ResourceQuota(
                        f"{name}-quota-{ns}",
                        metadata={"name": "ironlb-load-balancers", "namespace": ns, "labels": labels},
                        spec={"hard": {"services.loadbalancers": pulumi.Output.from_input(limit).apply(str)}},
                        opts=child_opts(self, opts, depends_on=[ns_res]),
                    )
                )
        self.tenant_name = pulumi.Output.from_input(name)
        self.namespaces = pulumi.Output.from_input(namespaces)
        self.pool_names = lift(res, lambda r: sorted(r.spec.pools))
        self.register_outputs(
            {"tenant_name": self.tenant_name, "namespaces": self.namespaces, "pool_names": self.pool_names}
        )


def _pool_spec(args: Any, tenant: str) -> dict[str, Any]:
    return {k: v for k, v in {**args, "tenant": tenant}.items() if k not in ("namespace", "labels")}


def _require_plain(name: str, args: TenantArgs) -> None:
    """The fields that decide which children exist must be known when the program runs."""
    issues = []
    pools = args.get("pools", {})
    for field, value in (
        ("namespaces", args.get("namespaces", [])),
        ("adopt_namespaces", args.get("adopt_namespaces", [])),
        ("pools", list(pools) if isinstance(pools, dict) else pools),
    ):
        if has_outputs(value):
            issues.append(
                Issue(
                    "Tenant",
                    name,
                    field,
                    None,
                    "must be known when the program runs (it names the Tenant's child resources); "
                    "pass plain values, not Outputs",
                )
            )
    if issues:
        raise InvalidConfigError(issues)
