"""RBAC authorisation from the Roles, ClusterRoles and bindings stored in the server.

The rendered RBAC objects the harness loads are what decides, exactly as the real RBAC
authoriser decides (``k8s.io/kubernetes/plugin/pkg/auth/authorizer/rbac``):

- a **ClusterRoleBinding** grants its ClusterRole's rules everywhere (cluster-scoped
  resources, every namespace, all-namespace lists);
- a **RoleBinding** grants its Role's -- or a ClusterRole's -- rules only for namespaced
  requests in the binding's own namespace;
- a rule matches when the verb (or ``*``), the API group (or ``*``) and the resource match:
  ``services``, ``services/status``, ``*``, ``services/*`` or ``*/status``; a rule with
  ``resourceNames`` matches only requests that name one of them, which create, list and watch
  do not -- except a list/watch pinned to one name by ``fieldSelector=metadata.name=X``;
- subjects: ``User`` by name, ``Group`` by name, ``ServiceAccount`` by namespace and name.

``system:masters`` is allowed everything (the real server's superuser group), and every
authenticated user may read discovery (``/api``, ``/apis``, ``/version``, ``/openapi``,
``/healthz``...: what ``system:discovery``/``system:public-info-viewer`` allow).  A denial
message has the real server's wording.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from lab.apiserver.store import Store

RBAC = "rbac.authorization.k8s.io"
MASTERS = "system:masters"
DISCOVERY_PREFIXES = ("/api", "/apis", "/version", "/openapi", "/healthz", "/livez", "/readyz")


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...]

    @classmethod
    def service_account(cls, namespace: str, name: str) -> User:
        groups = ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated")
        return cls(f"system:serviceaccount:{namespace}:{name}", groups)


ADMIN = User("system:admin", (MASTERS, "system:authenticated"))


@dataclass(frozen=True)
class Attributes:
    """One resource request, as the authoriser sees it."""

    verb: str
    group: str
    resource: str
    subresource: str = ""
    namespace: str = ""
    name: str = ""

    def describe(self, user: User) -> str:
        """The real server's 403 message."""
        qualified = f"{self.resource}.{self.group}" if self.group else self.resource
        what = f'{qualified} "{self.name}"' if self.name else qualified
        res = f"{self.resource}/{self.subresource}" if self.subresource else self.resource
        scope = f'in the namespace "{self.namespace}"' if self.namespace else "at the cluster scope"
        return (
            f'{what} is forbidden: User "{user.name}" cannot {self.verb} resource "{res}" '
            f'in API group "{self.group}" {scope}'
        )


def _subject_matches(subject: Mapping[str, Any], user: User, binding_namespace: str) -> bool:
    kind, name = subject.get("kind"), subject.get("name")
    if kind == "User":
        return bool(name == user.name)
    if kind == "Group":
        return name in user.groups
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        return user.name == f"system:serviceaccount:{namespace}:{name}"
    return False


def _resource_matches(rule_resources: list[str], resource: str, subresource: str) -> bool:
    combined = f"{resource}/{subresource}" if subresource else resource
    for r in rule_resources:
        if r in ("*", combined):
            return True
        if subresource and r in (f"{resource}/*", f"*/{subresource}"):
            return True
    return False


def rule_allows(rule: Mapping[str, Any], attrs: Attributes) -> bool:
    verbs = rule.get("verbs") or []
    if "*" not in verbs and attrs.verb not in verbs:
        return False
    groups = rule.get("apiGroups") or []
    if "*" not in groups and attrs.group not in groups:
        return False
    if not _resource_matches(list(rule.get("resources") or []), attrs.resource, attrs.subresource):
        return False
    names = rule.get("resourceNames") or []
    return not names or attrs.name in names


class Authorizer:
    """Decides from the RBAC objects in ``store`` at the moment of each request."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def _rules(self, kind: str, name: str, namespace: str) -> list[Mapping[str, Any]]:
        if kind == "ClusterRole":
            role = self.store.get((RBAC, "clusterroles"), "", name)
        elif kind == "Role":
            role = self.store.get((RBAC, "roles"), namespace, name)
        else:
            role = None
        return list((role or {}).get("rules") or [])

    def rules_for(self, user: User, namespace: str) -> Iterator[Mapping[str, Any]]:
        """Every rule that applies to ``user`` for a request in ``namespace`` ("" = cluster scope)."""
        for binding in self.store.list((RBAC, "clusterrolebindings")):
            if any(_subject_matches(s, user, "") for s in binding.get("subjects") or []):
                ref = binding.get("roleRef") or {}
                if ref.get("kind") == "ClusterRole":
                    yield from self._rules("ClusterRole", str(ref.get("name")), "")
        if not namespace:
            return
        for binding in self.store.list((RBAC, "rolebindings"), namespace):
            if any(_subject_matches(s, user, namespace) for s in binding.get("subjects") or []):
                ref = binding.get("roleRef") or {}
                yield from self._rules(str(ref.get("kind")), str(ref.get("name")), namespace)

    def allowed(self, user: User, attrs: Attributes) -> bool:
        if MASTERS in user.groups:
            return True
        return any(rule_allows(rule, attrs) for rule in self.rules_for(user, attrs.namespace))

    def allowed_path(self, user: User, path: str) -> bool:
        """Non-resource URLs: discovery for every authenticated user; the rest for masters."""
        if MASTERS in user.groups:
            return True
        return any(path == p or path.startswith(p + "/") for p in DISCOVERY_PREFIXES)
