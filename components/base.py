"""What every IronLB component shares: schema validation, custom-resource emission, naming.

- :class:`InvalidConfigError` is a :class:`pulumi.RunError`, so ``pulumi preview`` prints the
  schema's messages and exits cleanly instead of dumping a Python traceback.
- :func:`validate` runs one object through the shared schema (``ironlb.config.load_objects``,
  the same path ``ironlb validate`` and the agent use) *before* the component registers
  anything, and returns the frozen model.
- :func:`when_known` is how every component accepts Pulumi Outputs (a StackReference
  output, an IPAM provider's result) anywhere in its args: plain values are validated at
  once, before anything registers (decision 0010); args holding Outputs are validated
  when they resolve, with the same function and so the same messages.  An unknown value
  at preview is not an error.  The validated value feeds the custom resource's spec, so
  an invalid resolved value fails that registration, and with it the update: it is never
  just logged (decision 0071).
- :func:`custom_resource` emits one ``ironlb.io/v1alpha1`` object as a
  ``kubernetes.apiextensions.CustomResource`` whose spec is exactly the model's manifest;
  :func:`child_resource` is the one every component uses: its own object, named
  ``<component>-<kind>`` and parented to the component.

Only modules in ``components/`` import Pulumi; they never import the agent.
"""

from collections.abc import Callable, Mapping, Sequence
from functools import cache
from inspect import isawaitable
from typing import Any, TypeVar

import pulumi
import pulumi_kubernetes as k8s
from pulumi.output import Unknown

from ironlb.config import load_objects
from ironlb.errors import ConfigError, Issue
from ironlb.model import GROUP_VERSION, Resource

PACKAGE = "ironlb"
DEFAULT_NAMESPACE = "ironlb-system"
MANAGED_BY = {"app.kubernetes.io/managed-by": "ironlb-pulumi", "app.kubernetes.io/part-of": "ironlb"}

R = TypeVar("R", bound=Resource)
T = TypeVar("T")
U = TypeVar("U")


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


def has_outputs(value: Any) -> bool:
    """Whether ``value`` holds, at any depth, something not yet plain: an Output, an awaitable,
    or an unknown (what a component provider receives at preview)."""
    if isinstance(value, (pulumi.Output, Unknown)) or isawaitable(value):
        return True
    if isinstance(value, Mapping):
        return any(has_outputs(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(has_outputs(v) for v in value)
    return False


def when_known(value: Any, check: Callable[[Any], T]) -> T | pulumi.Output[T]:
    """``check(value)`` now when ``value`` is plain (so an error stops the program before anything
    registers), else an Output of ``check`` applied to the deeply resolved value.

    The Output stays unknown while any part is unknown (preview): ``check`` never sees an
    unknown.  Secretness and dependencies of the inputs carry over to the result.
    """
    if not has_outputs(value):
        return check(value)
    return pulumi.Output.from_input(value).apply(check)


def lift(value: T | pulumi.Output[T], read: Callable[[T], U]) -> pulumi.Output[U]:
    """``read`` applied to a checked value, as an Output (for component outputs)."""
    if isinstance(value, pulumi.Output):
        return value.apply(read)
    return pulumi.Output.from_input(read(value))


def custom_resource(
    resource_name: str,
    res: Resource | pulumi.Output[Any],
    namespace: pulumi.Input[str],
    opts: pulumi.ResourceOptions,
    kind: str | None = None,
) -> k8s.apiextensions.CustomResource:
    """Emit ``res`` (already validated, or an Output of the validated model) as a CustomResource.

    ``kind`` is needed when ``res`` is an Output (the kind must be known to register)."""
    if not isinstance(res, pulumi.Output) and not isinstance(namespace, pulumi.Output):
        manifest = res.to_manifest()
        return k8s.apiextensions.CustomResource(
            resource_name,
            api_version=GROUP_VERSION,
            kind=res.kind,
            metadata=metadata(res, str(namespace)),
            spec=manifest["spec"],
            opts=opts,
        )
    if kind is None:
        raise TypeError("custom_resource: kind is required when the resource is an Output")
    both = pulumi.Output.all(res, namespace)
    return k8s.apiextensions.CustomResource(
        resource_name,
        api_version=GROUP_VERSION,
        kind=kind,
        metadata=both.apply(lambda pair: metadata(pair[0], str(pair[1]))),
        spec=both.apply(lambda pair: pair[0].to_manifest()["spec"]),
        opts=opts,
    )


def child_resource(
    parent: pulumi.Resource,
    name: str,
    cls: type[Resource],
    res: Resource | pulumi.Output[Any],
    namespace: pulumi.Input[str],
    opts: pulumi.ResourceOptions | None,
    **extra: Any,
) -> k8s.apiextensions.CustomResource:
    """Component ``name``'s own ``cls`` object: ``<name>-<kind>``, a child of ``parent``
    (``extra`` goes to :func:`child_opts`, e.g. ``depends_on``)."""
    return custom_resource(
        f"{name}-{cls.KIND.lower()}", res, namespace, child_opts(parent, opts, **extra), kind=cls.KIND
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
