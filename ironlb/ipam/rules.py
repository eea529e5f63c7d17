"""Who may use which pool, and who may share an address: the policy every IPAM path applies.

Allocation (:class:`~ironlb.ipam.Allocator`), the cross-object rules
(``ironlb.validation``) and the trust check (:class:`~ironlb.ipam.TrustCheck`) all ask
these two questions, and get the same answer from the same functions.

Tenant isolation is absolute: a Service in a tenant's namespace may use only the pools
its tenant owns.  A Service in a namespace that no Tenant lists may use only pools
without a tenant, and, once any Tenant exists, only those of them that say so
(``allowUntenanted``, ADR 0004).  Within what tenancy allows, a pool's
``serviceAllocation`` (namespaces, namespaceSelector, serviceSelector) narrows further.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ironlb.checked import Config, PoolInfo
from ironlb.service import Assignment, ServiceRequest

RefusalReason = Literal["OtherTenant", "NoTenant", "Forbidden"]


@dataclass(frozen=True)
class Refusal:
    """Why a Service may not use a pool: a machine word and the sentence a user reads.

    ``OtherTenant``: the pool belongs to another tenant (or the namespace's tenant may
    use only its own pools).  ``NoTenant``: the namespace belongs to no Tenant and the
    pool does not admit such namespaces.  ``Forbidden``: the pool's serviceAllocation
    (namespaces or selectors) leaves this Service out.
    """

    reason: RefusalReason
    message: str

    def __str__(self) -> str:
        return self.message


def pool_refusal(
    config: Config, request: ServiceRequest, info: PoolInfo, tenant: str | None = None
) -> Refusal | None:
    """Why ``request`` may not use pool ``info``, or None when it may.

    ``tenant`` is the tenant owning the service's namespace (looked up when not given).
    """
    if tenant is None:
        tenant = config.tenant_of_namespace(request.namespace)
    if tenant != info.tenant:
        if tenant is None:
            message = f'pool "{info.name}" belongs to tenant "{info.tenant}"; only its namespaces may use it'
        elif info.tenant is None:
            message = (
                f'namespace "{request.namespace}" belongs to tenant "{tenant}", '
                f'which may use only its own pools; pool "{info.name}" has no tenant'
            )
        else:
            message = f'pool "{info.name}" belongs to tenant "{info.tenant}", not to tenant "{tenant}"'
        return Refusal("OtherTenant", message)
    if tenant is None and config.tenants and not info.allow_untenanted:
        return Refusal(
            "NoTenant",
            f'namespace "{request.namespace}" belongs to no Tenant, and pool "{info.name}" does not '
            "admit such namespaces; list the namespace in a Tenant, or set allowUntenanted: true on the pool",
        )
    alloc = info.pool.spec.serviceAllocation
    if alloc.namespaces and request.namespace not in alloc.namespaces:
        return Refusal(
            "Forbidden", f'pool "{info.name}" serves only namespaces {", ".join(alloc.namespaces)}'
        )
    if alloc.namespaceSelector is not None and not alloc.namespaceSelector.matches(
        dict(config.namespace_labels(request.namespace))
    ):
        return Refusal(
            "Forbidden",
            f'pool "{info.name}" namespaceSelector does not match namespace "{request.namespace}"',
        )
    if alloc.serviceSelector is not None and not alloc.serviceSelector.matches(dict(request.labels)):
        return Refusal(
            "Forbidden", f'pool "{info.name}" serviceSelector does not match the service\'s labels'
        )
    return None


def no_tenant_refusal(config: Config, namespace: str) -> Refusal | None:
    """The NoTenant refusal when ``namespace`` is untenanted and no pool admits it, else None."""
    if not config.tenants or config.tenant_of_namespace(namespace) is not None:
        return None
    if any(info.allow_untenanted for info in config.pools.values()):
        return None
    return Refusal(
        "NoTenant",
        f'namespace "{namespace}" belongs to no Tenant, and no IPPool admits such namespaces; '
        "list the namespace in a Tenant, or set allowUntenanted: true on a pool without a tenant",
    )


def can_share(a: Assignment | ServiceRequest, b: Assignment | ServiceRequest) -> str | None:
    """Why services ``a`` and ``b`` may not share an address, or None when they may."""
    if a.sharing_key is None or b.sharing_key is None:
        return "both services need the same sharing key (ironlb.io/allow-shared-ip)"
    if a.sharing_key != b.sharing_key:
        return f'sharing keys differ ("{a.sharing_key}" vs "{b.sharing_key}")'
    overlap = sorted(set(a.ports) & set(b.ports))
    if overlap:
        used = ", ".join(f"{p.port}/{p.protocol}" for p in overlap)
        return f"both use port {used}"
    a_policy = a.traffic_policy
    b_policy = b.traffic_policy
    if a_policy != b_policy:
        return "externalTrafficPolicy differs (Cluster vs Local)"
    if a_policy == "Local" and dict(a.selector) != dict(b.selector):
        return "externalTrafficPolicy is Local and the pod selectors differ"
    return None
