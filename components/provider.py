"""The IronLB component provider: every component, served to any Pulumi language.

``pulumi package add`` (from a clone: ``pulumi package add <clone>/provider``; from git:
``pulumi package add github.com/<org>/ironlb.git/provider@v<version>``) runs the plugin
directory ``provider/`` (``PulumiPlugin.yaml`` + ``__main__.py``) the way the engine runs
every Python plugin: ``<venv>/bin/python provider/ <engine address>``.  Its
``__main__.py`` calls :func:`main`, which serves :data:`ironlb.components.COMPONENTS` over
gRPC and prints the port on stdout; the engine then asks for the schema (the SDK's
Analyzer infers it from the components' typed args) and sends ``Construct`` for every
component a TypeScript, Go, .NET, Java or YAML program declares.  Decision 0070.

This is the SDK's ``component_provider_host`` with two corrections, made by subclassing
its public ``ComponentProvider`` (nothing is patched):

- an invalid input fails ``Construct`` with the schema's messages, one per property
  (``InputPropertiesError``), instead of an exception text followed by a Python
  traceback (the host wraps every constructor error that way);
- inputs that arrive as Outputs (a secret, or a value with dependencies) keep their
  shape: the host's input mapping drops a complex value that is an Output and calls
  ``int()`` on integer Outputs; here such values are mapped once they resolve, and
  integers arrive as ``int`` (the wire carries only doubles).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from importlib import metadata
from typing import Any

import pulumi
from pulumi.errors import InputPropertiesError, InputPropertyErrorDetails
from pulumi.output import Unknown
from pulumi.provider.experimental.analyzer import PropertyDefinition, PropertyType
from pulumi.provider.experimental.component import ComponentProvider
from pulumi.provider.provider import ConstructResult
from pulumi.provider.server import main as serve

from ironlb.components import COMPONENTS
from ironlb.components.base import PACKAGE, InvalidConfigError

#: The package name: type tokens are ``ironlb:index:<Component>``.
NAME = PACKAGE


def version() -> str:
    """The package version (the installed distribution's; 0.0.0 when run from a bare checkout)."""
    try:
        return metadata.version("ironlb")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def _as_int(value: Any) -> Any:
    """Integers travel as doubles; give components ints (anything else is left for the schema)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


class IronLBProvider(ComponentProvider):
    """The SDK's component provider, with schema errors per property and Output-safe inputs."""

    def __init__(self, components: Sequence[type[pulumi.ComponentResource]] = COMPONENTS) -> None:
        super().__init__(list(components), NAME, None, version())

    def construct(
        self,
        name: str,
        resource_type: str,
        inputs: Mapping[str, Any],
        options: pulumi.ResourceOptions | None = None,
    ) -> ConstructResult:
        try:
            return super().construct(name, resource_type, dict(inputs), options)
        except Exception as exc:  # the host wraps the component's own error: unwrap ours
            inner = getattr(exc, "inner", None)
            if isinstance(inner, InvalidConfigError):
                raise input_error(inner) from None
            raise

    def map_input_properties(
        self,
        inputs: Any,
        properties: dict[str, PropertyDefinition],
        mapping: dict[str, str],
        component_name: str,
        property_path: str,
    ) -> Any:
        plain = dict(inputs) if isinstance(inputs, Mapping) else {}
        late: dict[str, Any] = {}
        for schema_name, prop in properties.items():
            value = plain.get(schema_name)
            if value is None:
                continue
            if isinstance(value, Unknown):  # preview: stays unknown (the host would turn objects into {})
                late[mapping[schema_name]] = value
                del plain[schema_name]
            elif prop.type == PropertyType.INTEGER:
                late[mapping[schema_name]] = (
                    value.apply(_as_int) if isinstance(value, pulumi.Output) else _as_int(value)
                )
                del plain[schema_name]
            elif isinstance(value, pulumi.Output) and _complex(prop):
                late[mapping[schema_name]] = value.apply(
                    self._mapper(schema_name, prop, mapping[schema_name], component_name, property_path)
                )
                del plain[schema_name]
        rest = {k: p for k, p in properties.items() if mapping[k] not in late}
        mapped = super().map_input_properties(plain, rest, mapping, component_name, property_path)
        return {**mapped, **late}

    def _mapper(
        self, schema_name: str, prop: PropertyDefinition, py_name: str, component: str, path: str
    ) -> Callable[[Any], Any]:
        """Maps one property's resolved value as the host maps plain ones."""

        def map_one(value: Any) -> Any:
            one = self.map_input_properties(
                {schema_name: value}, {schema_name: prop}, {schema_name: py_name}, component, path
            )
            return one.get(py_name)

        return map_one


def _complex(prop: PropertyDefinition) -> bool:
    """A property the host maps structurally: an object type, or a list or map of them."""
    return bool(
        prop.ref
        or (prop.items is not None and prop.items.ref)
        or (prop.additional_properties is not None and prop.additional_properties.ref)
    )


def input_error(exc: InvalidConfigError) -> InputPropertiesError:
    """The schema's issues as the engine's per-property errors (the message keeps every sentence)."""
    details: list[InputPropertyErrorDetails] = [
        {"property_path": issue.field or "", "reason": str(issue)} for issue in exc.issues
    ]
    return InputPropertiesError(str(exc), details)


def schema() -> dict[str, Any]:
    """The package schema the provider serves (what ``GetSchema`` returns), as a dict."""
    import json

    return dict(json.loads(IronLBProvider().schema or "{}"))


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the provider: the engine passes its address; the chosen port goes to stdout."""
    serve(IronLBProvider(), list(sys.argv[1:] if argv is None else argv))
