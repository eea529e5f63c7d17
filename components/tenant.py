"""Tenant: a team's namespaces, the pools only it may use, and its quotas.

Children: one Namespace per owned namespace (labelled ``ironlb.io/tenant``), or a
``NamespacePatch`` for namespaces that already exist (adopted: labelled by server-side
apply, never created or deleted); the ``Tenant`` custom resource; an :class:`IpPool` per
pool it owns (their ``tenant`` field is set to this tenant); and, when asked, a
ResourceQuota per namespace capping ``services.loadbalancers``.

Two quotas, two jobs: ``max_addresses`` is IronLB's (addresses held across all the
tenant's namespaces, enforced by the allocator); ``max_load_balancer_services`` is
Kubernetes' own (Service objects per namespace, enforced by the API server).

No ``from __future__ import annotations`` here: the Analyzer reads the annotations.
"""

import pulumi
import pulumi_kubernetes as k8s

from components.args import TenantArgs, to_spec
from components.base import DEFAULT_NAMESPACE, MANAGED_BY, child_opts, custom_resource, token, validate
from components.resources import IpPool
from ironlb import model

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
        own_pools = dict(args.get("pools", {}))
        pool_names = sorted({*own_pools, *args.get("granted_pools", [])})
        spec = to_spec(
            model.TenantSpec,
            {
                "namespaces": list(args.get("namespaces", [])),
                "pools": pool_names,
                "max_addresses": args.get("max_addresses"),
            },
        )
        res = validate(model.Tenant, name, spec)
        # Validate the pools too, before anything registers.
        checked = {
            p: validate(
                model.IPPool,
                p,
                to_spec(
                    model.IPPoolSpec,
                    {k: v for k, v in {**a, "tenant": name}.items() if k not in ("namespace", "labels")},
                ),
            )
            for p, a in sorted(own_pools.items())
        }
        del checked
        super().__init__(token("Tenant"), name, {}, opts)
        self.resource = res
        adopt = set(args.get("adopt_namespaces", []))
        labels = {**MANAGED_BY, TENANT_LABEL: name}
        self.namespace_resources: list[pulumi.CustomResource] = []
        for ns in res.spec.namespaces:
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
        self.cr = custom_resource(f"{name}-tenant", res, install_ns, child_opts(self, opts))
        self.pools = [
            IpPool(pname, {**pargs, "tenant": name, "namespace": install_ns}, opts=child_opts(self, opts))
            for pname, pargs in sorted(own_pools.items())
        ]
        self.quotas: list[k8s.core.v1.ResourceQuota] = []
        limit = args.get("max_load_balancer_services")
        if limit is not None:
            for ns, ns_res in zip(res.spec.namespaces, self.namespace_resources, strict=True):
                self.quotas.append(
                    k8s.core.v1.ResourceQuota(
                        f"{name}-quota-{ns}",
                        metadata={"name": "ironlb-load-balancers", "namespace": ns, "labels": labels},
                        spec={"hard": {"services.loadbalancers": str(limit)}},
                        opts=child_opts(self, opts, depends_on=[ns_res]),
                    )
                )
        self.tenant_name = pulumi.Output.from_input(name)
        self.namespaces = pulumi.Output.from_input(list(res.spec.namespaces))
        self.pool_names = pulumi.Output.from_input(pool_names)
        self.register_outputs(
            {"tenant_name": self.tenant_name, "namespaces": self.namespaces, "pool_names": self.pool_names}
        )
