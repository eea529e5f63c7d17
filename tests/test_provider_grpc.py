"""The component provider, started the way the Pulumi engine starts it, and driven over gRPC.

The engine runs a Python plugin directory as ``<python> <plugin dir> <engine address>``
(pulumi-language-python ``RunPlugin``), reads the port from the plugin's first stdout
line, then speaks the ``ResourceProvider`` gRPC protocol: GetPluginInfo, Configure,
GetSchema, Construct.  This test does exactly that with ``provider/`` and the SDK's
generated stubs.

``Construct`` needs the engine's side: a resource monitor the provider registers the
component's children with, and an engine endpoint for its log messages.
:class:`FakeEngine` serves both over real gRPC, minimally: it records every
registration (type, name, parent, custom, inputs, secret outputs) and answers with a URN,
an id and the inputs as state, as the engine does for a create.  What it does not cover:
no resource provider runs behind it (no Kubernetes), no diffing or state, and it does
not advertise ``outputValues`` (so nested values arrive plain, as from older SDKs);
inputs with dependencies and secrets are still exercised through ``inputDependencies``
and the secret signature.

The schema snapshot is ``tests/golden/schema.json``; after an intended change to any
component's args, regenerate it with ``IRONLB_UPDATE_GOLDEN=1`` and review the diff.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime.proto import (
    engine_pb2,
    engine_pb2_grpc,
    provider_pb2,
    provider_pb2_grpc,
    resource_pb2,
    resource_pb2_grpc,
)

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "provider"
GOLDEN = ROOT / "tests" / "golden" / "schema.json"
UPDATE = os.environ.get("IRONLB_UPDATE_GOLDEN") == "1"
SECRET_KEY, SECRET_SIG = "4dabf18193072939515e22adb298388d", "1b47061264138c4ac30d75fd1eb44270"
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
PROJECT, STACK = "consumer", "test"
STACK_URN = f"urn:pulumi:{STACK}::{PROJECT}::pulumi:pulumi:Stack::{PROJECT}-{STACK}"
PASSWORD = "md5-never-in-plain-text"


@dataclass
class Registration:
    type: str
    name: str
    parent: str
    custom: bool
    inputs: dict[str, Any]
    secret_outputs: list[str]
    urn: str


@dataclass
class FakeEngine(resource_pb2_grpc.ResourceMonitorServicer, engine_pb2_grpc.EngineServicer):
    """The engine's resource monitor and log endpoint, recording what the provider sends."""

    registrations: list[Registration] = field(default_factory=list)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    logs: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    # --- ResourceMonitor
    def GetDeploymentInfo(self, request: Any, context: Any) -> Any:
        return resource_pb2.DeploymentInfo(
            supportedFeatures=[
                resource_pb2.RESOURCE_MONITOR_FEATURE_SECRETS,
                resource_pb2.RESOURCE_MONITOR_FEATURE_RESOURCE_REFERENCES,
                resource_pb2.RESOURCE_MONITOR_FEATURE_ALIAS_SPECS,
                resource_pb2.RESOURCE_MONITOR_FEATURE_DELETED_WITH,
            ]
        )

    def SupportsFeature(self, request: Any, context: Any) -> Any:
        return resource_pb2.SupportsFeatureResponse(
            hasSupport=request.id in {"secrets", "resourceReferences"}
        )

    def RegisterResource(self, request: Any, context: Any) -> Any:
        urn = _urn(request.parent, request.type, request.name)
        with self.lock:
            self.registrations.append(
                Registration(
                    request.type,
                    request.name,
                    request.parent,
                    request.custom,
                    json_format.MessageToDict(request.object),
                    list(request.additionalSecretOutputs),
                    urn,
                )
            )
        return resource_pb2.RegisterResourceResponse(
            urn=urn, id=f"{request.name}-id" if request.custom else "", object=request.object
        )

    def RegisterResourceOutputs(self, request: Any, context: Any) -> Any:
        with self.lock:
            self.outputs[request.urn] = json_format.MessageToDict(request.outputs)
        return empty_pb2.Empty()

    def Invoke(self, request: Any, context: Any) -> Any:
        return resource_pb2.ResourceInvokeResponse(**{"return": struct_pb2.Struct()})

    def RegisterPackage(self, request: Any, context: Any) -> Any:
        return resource_pb2.RegisterPackageResponse(ref=f"{request.name}-ref")

    def SignalAndWaitForShutdown(self, request: Any, context: Any) -> Any:
        return empty_pb2.Empty()

    # --- Engine
    def Log(self, request: Any, context: Any) -> Any:
        with self.lock:
            self.logs.append(request.message)
        return empty_pb2.Empty()

    def GetRootResource(self, request: Any, context: Any) -> Any:
        return engine_pb2.GetRootResourceResponse(urn=STACK_URN)

    def SetRootResource(self, request: Any, context: Any) -> Any:
        return engine_pb2.SetRootResourceResponse()

    def named(self, suffix: str) -> Registration:
        return next(r for r in self.registrations if r.name.endswith(suffix))


def _urn(parent: str, typ: str, name: str) -> str:
    if parent:
        typ = parent.split("::")[2].split("$")[-1] + "$" + typ
    return f"urn:pulumi:{STACK}::{PROJECT}::{typ}::{name}"


@pytest.fixture()
def engine() -> Iterator[tuple[FakeEngine, str]]:
    fake = FakeEngine()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    resource_pb2_grpc.add_ResourceMonitorServicer_to_server(fake, server)
    engine_pb2_grpc.add_EngineServicer_to_server(fake, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield fake, f"127.0.0.1:{port}"
    finally:
        server.stop(grace=None)


@pytest.fixture()
def provider(engine: tuple[FakeEngine, str], tmp_path: Path) -> Iterator[Any]:
    """``python provider/ <engine>`` in a consumer's program directory; the port from stdout."""
    _, address = engine
    proc = subprocess.Popen(
        [sys.executable, str(PLUGIN), address],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        port_line = _first_line(proc, timeout=60)
        assert port_line.isdigit(), f"the plugin must print its port first, got {port_line!r}"
        channel = grpc.insecure_channel(f"127.0.0.1:{port_line}")
        grpc.channel_ready_future(channel).result(timeout=30)
        yield provider_pb2_grpc.ResourceProviderStub(channel)
        channel.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _first_line(proc: subprocess.Popen[str], timeout: float) -> str:
    box: list[str] = []
    reader = threading.Thread(target=lambda: box.append(proc.stdout.readline() if proc.stdout else ""))
    reader.start()
    reader.join(timeout)
    if not box or not box[0]:
        proc.kill()
        _, err = proc.communicate()
        pytest.fail(f"the plugin printed no port within {timeout} s; stderr:\n{err}")
    return box[0].strip()


def _struct(values: dict[str, Any]) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    out.update(values)
    return out


def _secret(value: Any) -> dict[str, Any]:
    return {SECRET_KEY: SECRET_SIG, "value": value}


def construct(stub: Any, address: str, typ: str, name: str, inputs: dict[str, Any], **extra: Any) -> Any:
    deps = extra.pop("deps", {})
    return stub.Construct(
        provider_pb2.ConstructRequest(
            project=PROJECT,
            stack=STACK,
            dryRun=extra.pop("dry_run", False),
            monitorEndpoint=address,
            type=f"ironlb:index:{typ}",
            name=name,
            parent=STACK_URN,
            inputs=_struct(inputs),
            inputDependencies={
                k: provider_pb2.ConstructRequest.PropertyDependencies(urns=v) for k, v in deps.items()
            },
            accepts_output_values=False,
        ),
        timeout=60,
    )


# --- the plugin's handshake and schema -----------------------------------------------------


def test_the_plugin_prints_its_port_and_answers_like_a_provider(provider):
    info = provider.GetPluginInfo(empty_pb2.Empty(), timeout=30)
    assert info.version
    provider.Configure(provider_pb2.ConfigureRequest(acceptSecrets=True, acceptResources=True), timeout=30)


def test_schema_matches_the_snapshot(provider):
    schema = json.loads(provider.GetSchema(provider_pb2.GetSchemaRequest(version=0), timeout=60).schema)
    text = json.dumps({**schema, "version": "(any)"}, indent=2, sort_keys=True) + "\n"
    if UPDATE:
        GOLDEN.write_text(text)
    assert GOLDEN.is_file(), "no schema snapshot; run with IRONLB_UPDATE_GOLDEN=1"
    assert text == GOLDEN.read_text(), "the package schema changed; IRONLB_UPDATE_GOLDEN=1 and review"


def test_schema_has_every_component_and_no_enum_or_union(provider):
    schema = json.loads(provider.GetSchema(provider_pb2.GetSchemaRequest(version=0), timeout=60).schema)
    from ironlb.components import COMPONENTS

    assert sorted(schema["resources"]) == sorted(f"ironlb:index:{c.__name__}" for c in COMPONENTS)
    assert all(r["isComponent"] for r in schema["resources"].values())
    assert not [t for t in schema["types"].values() if "enum" in t]
    assert "oneOf" not in json.dumps(schema)


# --- Construct -----------------------------------------------------------------------------


def test_construct_registers_the_component_and_its_custom_resource(provider, engine):
    fake, address = engine
    answer = construct(provider, address, "IpPool", "lan", {"addresses": ["192.168.50.240/29"]})
    assert answer.urn == _urn(STACK_URN, "ironlb:index:IpPool", "lan")
    state = json_format.MessageToDict(answer.state)
    assert state == {"poolName": "lan", "addresses": ["192.168.50.240/29"]}
    component, cr = fake.named("lan"), fake.named("lan-ippool")
    assert (component.type, component.custom, component.parent) == ("ironlb:index:IpPool", False, STACK_URN)
    assert (cr.type, cr.custom, cr.parent) == ("kubernetes:ironlb.io/v1alpha1:IPPool", True, component.urn)
    assert cr.inputs["spec"]["addresses"] == ["192.168.50.240/29"]
    assert fake.outputs[component.urn] == {"pool_name": "lan", "addresses": state["addresses"]}


def test_an_invalid_input_fails_with_the_schemas_message_per_property(provider, engine):
    fake, address = engine
    with pytest.raises(grpc.RpcError) as err:
        construct(provider, address, "IpPool", "lan", {"addresses": ["192.168.50.0/33"]})
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert 'IPPool "lan": addresses[0] "192.168.50.0/33": prefix length must be 0-32' in err.value.details()
    assert "Traceback" not in err.value.details() and 'File "' not in err.value.details()
    assert fake.registrations == [], "nothing registers when the args are invalid"


def test_a_secret_password_stays_secret_on_the_wire(provider, engine):
    fake, address = engine
    inputs = {"myAsn": 64513, "peerAsn": 64512, "peerAddress": "10.0.0.1", "password": _secret(PASSWORD)}
    construct(provider, address, "BgpPeer", "tor", inputs)
    secret = fake.named("tor-password")
    assert secret.inputs["stringData"] in (_secret({"password": PASSWORD}), {"password": _secret(PASSWORD)})
    assert {"data", "stringData"} <= set(secret.secret_outputs)
    assert PASSWORD not in json.dumps(fake.named("tor-bgppeer").inputs)
    assert fake.named("tor-bgppeer").inputs["spec"]["myASN"] == 64513


def test_inputs_with_dependencies_arrive_as_outputs_and_keep_their_shape(provider, engine):
    fake, address = engine
    dep = _urn(STACK_URN, "kubernetes:core/v1:Namespace", "team")
    inputs = {"namespace": "team", "ports": [{"port": 443, "targetPort": 8443}], "pool": "lan"}
    construct(
        provider, address, "LoadBalancerService", "web", inputs, deps={"ports": [dep], "namespace": [dep]}
    )
    spec = fake.named("web-service").inputs["spec"]
    assert spec["ports"] == [{"name": "tcp-443", "port": 443, "protocol": "TCP", "targetPort": 8443}]
    assert fake.named("web-service").inputs["metadata"]["namespace"] == "team"


def test_an_unknown_input_at_preview_is_not_an_error(provider, engine):
    fake, address = engine
    construct(provider, address, "IpPool", "lan", {"addresses": UNKNOWN}, dry_run=True)
    assert fake.named("lan-ippool").type == "kubernetes:ironlb.io/v1alpha1:IPPool"


def test_a_tenant_builds_its_namespaces_pools_and_quotas(provider, engine):
    fake, address = engine
    inputs = {
        "namespaces": ["team-a"],
        "pools": {"team-a-lan": {"addresses": ["10.40.0.0/29"]}},
        "maxAddresses": 4,
        "maxLoadBalancerServices": 2,
    }
    construct(provider, address, "Tenant", "team-a", inputs)
    tenant = fake.named("team-a-tenant").inputs["spec"]
    assert (tenant["namespaces"], tenant["pools"], tenant["maxAddresses"]) == (["team-a"], ["team-a-lan"], 4)
    assert fake.named("team-a-lan").type == "ironlb:index:IpPool"
    pool = fake.named("team-a-lan-ippool").inputs["spec"]
    assert (pool["addresses"], pool["tenant"]) == (["10.40.0.0/29"], "team-a")
    assert fake.named("team-a-quota-team-a").inputs["spec"] == {"hard": {"services.loadbalancers": "2"}}
