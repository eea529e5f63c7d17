"""What every IronLB component shares: schema validation, custom-resource emission, naming.

- :class:`InvalidConfigError` is a :class:`pulumi.RunError`, so ``pulumi preview`` prints the
  schema's messages and exits cleanly instead of dumping a Python traceback.
- :func:`validate` runs one object through the shared schema (``ironlb.config.load_objects``,
  the same path ``ironlb validate`` and the agent use) *before* the component registers
  anything, and returns the frozen model.
- :func:`custom_resource` emits one ``ironlb.io/v1alpha1`` object as a
  ``kubernetes.apiextensions.CustomResource`` whose spec is exactly the model's manifest.

Only modules in ``components/`` import Pulumi; they never import the agent.
"""

from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any, TypeVar

import pulumi
import pulumi_kubernetes as k8s

from ironlb.config import load_objects
from ironlb.errors import ConfigError, Issue
from ironlb.model import GROUP_VERSION, Resource

PACKAGE = "ironlb"
DEFAULT_NAMESPACE = "ironlb-system"
MANAGED_BY = {"app.kubernetes.io/managed-by": "ironlb-pulumi", "app.kubernetes.io/part-of": "ironlb"}

R = TypeVar("R", bound=Resource)


class InvalidConfigError(pulumi.RunError):
    """The program's IronLB configuration is invalid; the message lists every problem."""

    def __init__(self, issues: Sequence[Issue]):
        self.issues = [i for i in issues if not i.warning]
        lines = "\n".join(f"  - {i}" for i in self.issues)
        super().__init__(f"invalid IronLB configuration:\n{lines}")

    @classmethod
    def from_config_error(cls, exc: ConfigError) -> "InvalidConfigError":
        return cls(exc.issues)


def token(cls_name: str) -> str:
    """The component type token, in the form component providers require."""
    return f"{PACKAGE}:index:{cls_name}"


def validate(
    model: type[R], name: str, spec: Mapping[str, Any], labels: Mapping[str, str] | None = None
) -> R:
    """Check one object alone against the shared schema; raise InvalidConfigError if it fails."""
    doc = {
        "apiVersion": GROUP_VERSION,
        "kind": model.KIND,
        "metadata": {"name": name, **({"labels": dict(labels)} if labels else {})},
        "spec": dict(spec),
    }
    resources, _, issues = load_objects([doc])
    if issues:
        raise InvalidConfigError(issues)
    found = resources[0]
    assert isinstance(found, model)
    return found


@cache
def _scopes() -> dict[str, str]:
    from ironlb.crds import crd_manifests

    return {c["spec"]["names"]["kind"]: c["spec"]["scope"] for c in crd_manifests()}


def is_namespaced(kind: str) -> bool:
    """Whether our CRD for ``kind`` is namespaced (read from the generated CRDs)."""
    return _scopes().get(kind, "Namespaced") == "Namespaced"


def metadata(res: Resource, namespace: str) -> dict[str, Any]:
    """metadata for a custom resource: name, namespace when namespaced, labels."""
    meta: dict[str, Any] = {"name": res.name}
    if is_namespaced(res.kind):
        meta["namespace"] = namespace
    labels = {**MANAGED_BY, **res.metadata.labels}
    meta["labels"] = labels
    if res.metadata.annotations:
        meta["annotations"] = dict(res.metadata.annotations)
    return meta


def custom_resource(
    resource_name: str, res: Resource, namespace: str, opts: pulumi.ResourceOptions
) -> k8s.apiextensions.CustomResource:
    """Emit ``res`` (already validated) as a CustomResource."""
    manifest = res.to_manifest()
    return k8s.apiextensions.CustomResource(
        resource_name,
        api_version=GROUP_VERSION,
        kind=res.kind,
        metadata=metadata(res, namespace),
        spec=manifest["spec"],
        opts=opts,
    )


def child_opts(
    parent: pulumi.Resource, opts: pulumi.ResourceOptions | None, **extra: Any
) -> pulumi.ResourceOptions:
    """Options for a child: parented (so providers and transforms flow down) and keeping depends_on."""
    depends = list(opts.depends_on) if opts is not None and isinstance(opts.depends_on, Sequence) else []
    if opts is not None and isinstance(opts.depends_on, pulumi.Resource):
        depends = [opts.depends_on]
    more = list(extra.pop("depends_on", []) or [])
    return pulumi.ResourceOptions(parent=parent, depends_on=[*depends, *more] or None, **extra)
