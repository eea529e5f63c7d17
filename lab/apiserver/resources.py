"""What the server serves: the built-in resource types, and custom ones derived from stored CRDs.

A :class:`ResourceType` says where a resource lives in the API (group, version, plural,
scope), its kind, whether it has a status subresource and how status behaves on create, and
where its schema comes from (a Kubernetes 1.37 definition for built-ins, the CRD's
``openAPIV3Schema`` for custom resources).  :class:`Registry` holds the built-ins and adds or
drops custom types as CustomResourceDefinitions are stored, updated and deleted -- the way
the real server starts serving a CRD's resources once it is created.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

StatusOnCreate = Literal["reset", "keep", "namespace", "pod"]


@dataclass(frozen=True)
class ResourceType:
    """One served resource (one group/version/plural)."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    status: bool = False  # has a /status subresource
    status_on_create: StatusOnCreate = "reset"  # what create does to .status (with a subresource)
    generation: bool = False  # metadata.generation tracks spec changes
    subresources: tuple[str, ...] = ()  # others besides status (e.g. serviceaccounts/token)
    crd_schema: Mapping[str, Any] | None = field(default=None, compare=False, hash=False)
    crd_name: str = ""  # the CRD that defines it ("" for built-ins)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def custom(self) -> bool:
        return bool(self.crd_name)

    @property
    def key(self) -> tuple[str, str]:
        """Storage key: the objects of a resource, whichever version serves them."""
        return (self.group, self.plural)

    @property
    def singular(self) -> str:
        return self.kind.lower()

    def all_subresources(self) -> tuple[str, ...]:
        return (("status",) if self.status else ()) + self.subresources


def _t(api_version: str, plural: str, kind: str, namespaced: bool = True, **kw: Any) -> ResourceType:
    group, _, version = api_version.rpartition("/")
    return ResourceType(group, version, plural, kind, namespaced, **kw)


#: The built-in resources IronLB, its install and the lab use.
BUILTINS: tuple[ResourceType, ...] = (
    _t("v1", "namespaces", "Namespace", False, status=True, status_on_create="namespace"),
    _t("v1", "nodes", "Node", False, status=True, status_on_create="keep"),
    _t("v1", "services", "Service", status=True),
    _t("v1", "pods", "Pod", status=True, status_on_create="pod"),
    _t("v1", "configmaps", "ConfigMap"),
    _t("v1", "secrets", "Secret"),
    _t("v1", "serviceaccounts", "ServiceAccount", subresources=("token",)),
    _t("v1", "events", "Event"),
    _t("v1", "endpoints", "Endpoints"),
    _t("v1", "resourcequotas", "ResourceQuota", status=True),
    _t("events.k8s.io/v1", "events", "Event"),
    _t("discovery.k8s.io/v1", "endpointslices", "EndpointSlice"),
    _t("coordination.k8s.io/v1", "leases", "Lease"),
    _t("apps/v1", "daemonsets", "DaemonSet", status=True, generation=True),
    _t("apps/v1", "deployments", "Deployment", status=True, generation=True),
    _t("policy/v1", "poddisruptionbudgets", "PodDisruptionBudget", status=True, generation=True),
    _t("rbac.authorization.k8s.io/v1", "clusterroles", "ClusterRole", False),
    _t("rbac.authorization.k8s.io/v1", "clusterrolebindings", "ClusterRoleBinding", False),
    _t("rbac.authorization.k8s.io/v1", "roles", "Role"),
    _t("rbac.authorization.k8s.io/v1", "rolebindings", "RoleBinding"),
    _t(
        "apiextensions.k8s.io/v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        False,
        status=True,
        generation=True,
    ),
)

CRDS = next(t for t in BUILTINS if t.plural == "customresourcedefinitions")
NAMESPACES = next(t for t in BUILTINS if t.plural == "namespaces")
SERVICE_ACCOUNTS = next(t for t in BUILTINS if t.plural == "serviceaccounts")
SECRETS = next(t for t in BUILTINS if t.plural == "secrets" and not t.group)


def types_of_crd(crd: Mapping[str, Any]) -> list[ResourceType]:
    """The resource types a stored CRD serves: one per served version."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    out = []
    for version in spec.get("versions") or []:
        if not version.get("served", True):
            continue
        schema = (version.get("schema") or {}).get("openAPIV3Schema") or {}
        out.append(
            ResourceType(
                group=str(spec.get("group", "")),
                version=str(version.get("name", "")),
                plural=str(names.get("plural", "")),
                kind=str(names.get("kind", "")),
                namespaced=spec.get("scope") == "Namespaced",
                status="status" in (version.get("subresources") or {}),
                status_on_create="reset",
                generation=True,
                crd_schema=schema,
                crd_name=str((crd.get("metadata") or {}).get("name", "")),
            )
        )
    return out


class Registry:
    """Every served resource type, by (group, version, plural); custom ones follow the CRDs."""

    def __init__(self) -> None:
        self._types: dict[tuple[str, str, str], ResourceType] = {}
        for t in BUILTINS:
            self._types[(t.group, t.version, t.plural)] = t

    def __iter__(self) -> Iterator[ResourceType]:
        return iter(list(self._types.values()))

    def get(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._types.get((group, version, plural))

    def by_kind(self, api_version: str, kind: str) -> ResourceType | None:
        return next(
            (t for t in self._types.values() if t.api_version == api_version and t.kind == kind), None
        )

    def set_crd(
        self, name: str, crd: Mapping[str, Any] | None
    ) -> tuple[list[ResourceType], list[ResourceType]]:
        """Serve what CRD ``name`` now defines (None: it is gone); returns (removed, added)."""
        removed = [t for t in self._types.values() if t.crd_name == name]
        for t in removed:
            del self._types[(t.group, t.version, t.plural)]
        added = []
        for t in types_of_crd(crd) if crd is not None else []:
            if (t.group, t.version, t.plural) not in self._types:  # never shadow a built-in
                self._types[(t.group, t.version, t.plural)] = t
                added.append(t)
        return removed, added
