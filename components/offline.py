"""Run the IronLB program without the Pulumi engine: Pulumi's own mock runtime, recorded.

``ironlb render`` and the tests use this to see exactly what ``pulumi up`` would create.
:class:`Recorder` is a :class:`pulumi.runtime.Mocks` that remembers every registered
resource (type, name, inputs in wire format); :func:`evaluate` sets the mocks and the
stack config *before* importing anything that builds resources (resources created
before ``set_mocks`` are silently lost), runs :func:`ironlb.components.program.run` inside
``@pulumi.runtime.test`` (so every registration has landed when it returns), and gives
back the recorded resources and the resolved stack outputs.

:func:`manifests` turns the recorded Kubernetes resources into plain manifests:
integral floats back to ints (the wire format has only doubles), secret values replaced
by :data:`~ironlb.components.stackconfig.REDACTED` (Pulumi marks them, so nothing secret can
slip through), and every Secret's data redacted whatever its marking.

A tenant stack's StackReference is answered from the platform stack's grants, computed
from the platform's own stack file (``tenant_grants``), so tenant stacks render offline too.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime.mocks import MockMonitor

from ironlb.components.base import InvalidConfigError
from ironlb.components.stackconfig import (
    PROJECT,
    REDACTED,
    StackSpec,
    documents,
    read_stack_file,
    spec_from_values,
    tenant_documents,
    tenant_grants,
)
from ironlb.config import Config, parse

SECRET_SIG = "4dabf18193072939515e22adb298388d"  # Pulumi's marker for a secret value on the wire
#: The organization offline runs are in (Pulumi's own default for backends without one).
ORGANIZATION = "organization"


@dataclass(frozen=True)
class Recorded:
    """One registration: what the engine would be asked to create."""

    typ: str
    name: str
    inputs: Mapping[str, Any]  # wire format: camelCase, secrets wrapped in the secret signature
    custom: bool
    provider: str | None
    urn: str = ""
    parent: str = ""  # parent URN ("" for the stack's direct children)
    secret_outputs: tuple[str, ...] = ()  # additional_secret_outputs
    dependencies: tuple[str, ...] = ()  # URNs from depends_on
    retain_on_delete: bool = False  # left in the cluster when deleted from the stack


@dataclass(frozen=True)
class LoadedStack:
    """A stack file read offline and checked with the shared schema."""

    name: str
    values: Mapping[str, Any]
    secret_keys: frozenset[str]
    spec: StackSpec
    config: Config
    #: platform stack name -> the outputs a StackReference to it returns
    references: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Evaluation:
    resources: tuple[Recorded, ...]
    outputs: Mapping[str, Any]


def stack_path(stacks_dir: Path, stack: str) -> Path:
    return stacks_dir / f"Pulumi.{stack}.yaml"


def load_stack(
    stack: str,
    stacks_dir: Path,
    *,
    passphrase: str | None = None,
    reveal: Callable[[str, str], str] | None = None,
) -> LoadedStack:
    """Read and check ``stacks/Pulumi.<stack>.yaml`` (raises ConfigError / FileNotFoundError).

    Secret values stay redacted unless ``passphrase`` is given: then they are decrypted
    (:mod:`ironlb.components.stacksecrets`; a wrong passphrase is a ConfigError naming the stack).
    ``reveal(ciphertext, key)``, when given, supplies them instead (``ironlb bundle``: from
    files, the passphrase, or both).
    """
    path = stack_path(stacks_dir, stack)
    if not path.is_file():
        known = sorted(
            p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in stacks_dir.glob("Pulumi.*.yaml")
        )
        raise FileNotFoundError(f"no stack file {path}; stacks here: {', '.join(known) or 'none'}")
    if reveal is None and passphrase is not None:
        from ironlb.components.stacksecrets import open_stack_file

        reveal = open_stack_file(path, stack, passphrase).decrypt
    values, secrets = read_stack_file(path, reveal)
    spec = spec_from_values(values)
    docs, references = _spec_documents(spec, stacks_dir)
    return LoadedStack(stack, values, frozenset(secrets), spec, parse(docs), references)


def stack_documents(path: Path) -> list[dict[str, Any]]:
    """The documents a stack file declares, secrets redacted (``ironlb validate`` on a stack file);
    a tenant stack's pools are those its platform stack, beside it, grants (raises ConfigError /
    FileNotFoundError)."""
    values, _secrets = read_stack_file(path)
    return _spec_documents(spec_from_values(values), path.parent)[0]


def _spec_documents(spec: StackSpec, stacks_dir: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The documents a stack stands for, and the StackReference outputs it reads: a tenant
    stack's pools are those its platform stack (in ``stacks_dir``) grants."""
    if spec.platform is None:
        return documents(spec), {}
    platform = load_stack(spec.platform.stack.rsplit("/", 1)[-1], stacks_dir)
    grants = tenant_grants(platform.config)
    reference = spec.platform.qualified(ORGANIZATION)
    return tenant_documents(grants, spec.platform.tenant, spec), {reference: {"tenantGrants": grants}}


_request = threading.local()


class _RecordingMonitor(MockMonitor):
    """The mock monitor, also keeping what Mocks are not told: parent, secret outputs, depends_on."""

    def RegisterResource(self, request: Any) -> Any:
        _request.value = request
        try:
            return super().RegisterResource(request)  # type: ignore[no-untyped-call]
        finally:
            _request.value = None


class Recorder(pulumi.runtime.Mocks):
    """Mocks that record registrations and answer StackReferences from ``references``."""

    def __init__(
        self,
        references: Mapping[str, Mapping[str, Any]] | None = None,
        planned: Mapping[str, tuple[str, ...]] | None = None,
    ) -> None:
        self.resources: list[Recorded] = []
        self.references = dict(references or {})
        self.planned = dict(planned or {})  # "ns/name" -> addresses, reported as the Service status

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[Any, Any]]:
        if args.typ == "pulumi:pulumi:StackReference":
            state = {**args.inputs, "outputs": dict(self.references.get(str(args.inputs.get("name")), {}))}
            self.resources.append(Recorded(args.typ, args.name, state, True, args.provider))
            return args.name, state
        req = getattr(_request, "value", None)
        extra: dict[str, Any] = {}
        if req is not None:
            monitor = pulumi.runtime.settings.get_monitor()
            urn = monitor.make_urn(req.parent, req.type, req.name) if isinstance(monitor, MockMonitor) else ""
            extra = {
                "urn": urn,
                "parent": req.parent,
                "secret_outputs": tuple(req.additionalSecretOutputs),
                "dependencies": tuple(req.dependencies),
                "retain_on_delete": bool(req.retainOnDelete),
            }
        self.resources.append(
            Recorded(args.typ, args.name, dict(args.inputs), bool(args.custom), args.provider, **extra)
        )
        state = dict(args.inputs)
        if args.typ == "kubernetes:core/v1:Service":
            meta = state.get("metadata") or {}
            ips = self.planned.get(f"{meta.get('namespace', 'default')}/{meta.get('name')}", ())
            state["status"] = {"loadBalancer": {"ingress": [{"ip": ip} for ip in ips]}}
        return f"{args.name}-id", state

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[Any, Any], list[tuple[str, str]] | None]:
        return {}, None


def config_map(values: Mapping[str, Any]) -> dict[str, str]:
    """Stack values -> the ``set_all_config`` form (``ironlb:key`` -> JSON or string)."""
    return {f"{PROJECT}:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}


def run_mocked(
    build: Callable[[], Any],
    values: Mapping[str, Any] | None = None,
    secret_keys: Iterable[str] = (),
    *,
    stack: str = "dev",
    references: Mapping[str, Mapping[str, Any]] | None = None,
    planned: Mapping[str, tuple[str, ...]] | None = None,
    preview: bool = False,
) -> Evaluation:
    """Run ``build()`` under fresh mocks and config; return what it registered and its resolved result.

    Mocks and config are set *before* ``build`` runs (resources created earlier are lost).
    ``planned`` (service key -> addresses) is what mocked Services report as their status.
    ``preview`` runs it as ``pulumi preview`` does (unknown values stay unknown).
    Exceptions raised by ``build`` (or inside an apply) propagate to the caller.
    """
    recorder = Recorder(references, planned)
    loop = _current_loop()  # before set_mocks: registering the root Stack needs a current loop
    pulumi.runtime.set_mocks(
        recorder,
        project=PROJECT,
        stack=stack,
        preview=preview,
        monitor=_RecordingMonitor(recorder),
        organization=ORGANIZATION,
    )
    pulumi.runtime.set_all_config(
        config_map(values or {}), secret_keys=[f"{PROJECT}:{k}" for k in secret_keys]
    )
    box: dict[str, Any] = {}

    @pulumi.runtime.test  # type: ignore[untyped-decorator]
    def program() -> pulumi.Output[Any]:
        return pulumi.Output.from_input(build()).apply(lambda v: box.update(result=v))

    loop.set_exception_handler(_quiet_config_errors)
    try:
        program()
    except InvalidConfigError as exc:
        clean = InvalidConfigError(exc.issues)
    else:
        return Evaluation(tuple(recorder.resources), _plain(box.get("result", {})))
    # What registered before the failure, for callers that must show nothing slipped through.
    setattr(clean, "recorded", tuple(recorder.resources))  # noqa: B010
    raise clean


def _current_loop() -> asyncio.AbstractEventLoop:
    """The loop Pulumi's synchronous test runner will use; set a fresh one if there is none
    (after an ``asyncio.run()`` in the same process, Python 3.11 leaves none set)."""
    try:
        loop = asyncio.get_event_loop_policy().get_event_loop()
    except RuntimeError:
        loop = None
    if loop is None or loop.is_closed():
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
    return loop


def _quiet_config_errors(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """A failed apply leaves futures holding the InvalidConfigError we already raised: the
    caller has it, so do not log it again (with a traceback) whenever they are collected."""
    if isinstance(context.get("exception"), InvalidConfigError):
        return
    loop.default_exception_handler(context)


def evaluate(
    values: Mapping[str, Any],
    secret_keys: Iterable[str] = (),
    *,
    stack: str = "dev",
    references: Mapping[str, Mapping[str, Any]] | None = None,
    planned: Mapping[str, tuple[str, ...]] | None = None,
) -> Evaluation:
    """Run the IronLB program for stack ``values``; the result is the stack outputs."""
    from ironlb.components.program import run

    return run_mocked(
        lambda: run(pulumi.Config(PROJECT)),
        values,
        secret_keys,
        stack=stack,
        references=references,
        planned=planned,
    )


def evaluate_stack(loaded: LoadedStack) -> Evaluation:
    """Run a loaded stack's program; Services report the addresses the allocator plans for them."""
    from ironlb.ipam import allocate_all

    assignments, _ = allocate_all(loaded.config)
    planned = {key: a.addresses for key, a in assignments.items()}
    return evaluate(
        loaded.values, loaded.secret_keys, stack=loaded.name, references=loaded.references, planned=planned
    )


# --- manifests ---------------------------------------------------------------------------


def _plain(value: Any, reveal: bool = False) -> Any:
    """Wire values -> plain YAML-able values: secrets redacted (unless ``reveal``), integral floats
    as ints."""
    if isinstance(value, Mapping):
        if SECRET_SIG in value:
            return _plain(value.get("value"), reveal) if reveal else REDACTED
        return {str(k): _plain(v, reveal) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_plain(v, reveal) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _unwrap(value: Any) -> Any:
    return value.get("value") if isinstance(value, Mapping) and SECRET_SIG in value else value


def to_manifest(res: Recorded, *, reveal_secrets: bool = False) -> dict[str, Any]:
    """One recorded resource as a manifest. A Secret keeps its keys; every value is redacted,
    unless ``reveal_secrets`` (the values then are whatever the program was given)."""
    inputs = dict(res.inputs)
    if reveal_secrets:
        revealed: dict[str, Any] = _plain(inputs, reveal=True)
        return revealed
    if inputs.get("kind") == "Secret":
        for key in ("data", "stringData"):
            if key in inputs:
                data = _unwrap(inputs[key])
                inputs[key] = {k: REDACTED for k in data} if isinstance(data, Mapping) else REDACTED
    body: dict[str, Any] = _plain(inputs)
    return body


#: Apply order: what must exist before what.
KIND_ORDER = (
    "Namespace",
    "CustomResourceDefinition",
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "ConfigMap",
    "Secret",
    "DaemonSet",
    "ResourceQuota",
    "Community",
    "IPPool",
    "Tenant",
    "BGPPeer",
    "L2Advertisement",
    "BGPAdvertisement",
    "Service",
)


def _sort_key(manifest: Mapping[str, Any]) -> tuple[int, str, str, str]:
    kind = str(manifest.get("kind"))
    meta = manifest.get("metadata") or {}
    rank = KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)
    return rank, kind, str(meta.get("namespace") or ""), str(meta.get("name") or "")


def manifests(evaluation: Evaluation, *, reveal_secrets: bool = False) -> list[dict[str, Any]]:
    """Every Kubernetes object the program creates, in apply order (deterministic).

    ``reveal_secrets`` keeps secret values (only meaningful for a stack loaded with its
    passphrase); the caller then owns keeping them private (never logged, files 0600).
    """
    found = [
        to_manifest(r, reveal_secrets=reveal_secrets)
        for r in evaluation.resources
        if r.custom and r.typ.startswith("kubernetes:")
    ]
    return sorted(found, key=_sort_key)


def file_name(index: int, manifest: Mapping[str, Any]) -> str:
    meta = manifest.get("metadata") or {}
    ns = f"{meta['namespace']}." if meta.get("namespace") else ""
    return f"{index:03d}-{str(manifest.get('kind')).lower()}-{ns}{meta.get('name')}.yaml"
