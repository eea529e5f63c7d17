"""NodeAgent: the split install (speaker DaemonSet + controller Deployment), its settings and keys."""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pytest
import yaml

from components import InvalidConfigError, NodeAgent
from components.offline import manifests, run_mocked

KEY = "k" * 40


def render(**args: Any) -> dict[str, dict[str, Any]]:
    ev = run_mocked(lambda: NodeAgent("ironlb", {"membership_key": KEY, **args}) and None)
    return {
        m["kind"]: m for m in manifests(ev) if m["kind"] in ("DaemonSet", "Deployment", "ConfigMap", "Secret")
    }


def pod(found: dict[str, dict[str, Any]], kind: str) -> dict[str, Any]:
    return found[kind]["spec"]["template"]["spec"]


def test_the_controller_runs_unprivileged_off_the_host_network_with_its_own_account() -> None:
    found = render()
    spec = found["Deployment"]["spec"]
    p = pod(found, "Deployment")
    box = p["containers"][0]
    assert spec["replicas"] == 2 and spec["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    assert "hostNetwork" not in p and p["serviceAccountName"] == "ironlb-controller"
    assert p["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert box["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert box["command"] == ["ironlb-controller"]
    assert [v["name"] for v in p["volumes"]] == ["config"], "no key, no password, no scratch space"
    assert {e["name"] for e in box["env"]} == {"IRONLB_CONFIG", "POD_NAME", "POD_IP"}
    spread = p["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]
    assert spread["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"


@pytest.mark.parametrize("kind", ["DaemonSet", "Deployment"])
def test_probes_hit_the_health_endpoints_on_the_port_the_settings_give(kind: str) -> None:
    found = render(health_port=9099, metrics_port=9100)
    config = yaml.safe_load(found["ConfigMap"]["data"]["agent.yaml"])
    box = pod(found, kind)["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in box["ports"]}
    assert ports["health"] == config["health"]["port"] == 9099
    assert ports["metrics"] == config["metrics"]["port"] == 9100
    assert box["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert box["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
    assert box["livenessProbe"]["failureThreshold"] * box["livenessProbe"]["periodSeconds"] >= 30


def test_the_speaker_keeps_secrets_in_memory_and_reads_settings_from_the_config_map() -> None:
    found = render()
    p = pod(found, "DaemonSet")
    box = p["containers"][0]
    assert box["command"] == ["ironlb-agent"]
    assert {e["name"] for e in box["env"]} == {"IRONLB_CONFIG", "NODE_NAME", "POD_IP"}
    scratch = {v["name"]: v["emptyDir"] for v in p["volumes"] if "emptyDir" in v}
    assert scratch == {
        "run": {"medium": "Memory", "sizeLimit": "16Mi"},
        "tmp": {"medium": "Memory", "sizeLimit": "16Mi"},
    }, "the BGP speaker's config with passwords never touches a disk"
    config = yaml.safe_load(found["ConfigMap"]["data"]["agent.yaml"])
    assert (config["runDir"], config["source"]["kind"]) == ("/run/ironlb", "kube")
    assert {m["mountPath"] for m in box["volumeMounts"]} >= {config["runDir"], "/etc/ironlb/config"}


@pytest.mark.parametrize("as_output", [False, True], ids=["a plain value", "a secret Output"])
@pytest.mark.parametrize("field", ["membership_key", "membership_next_key"])
def test_a_key_shorter_than_32_bytes_fails_preview_without_showing_it(
    field: str, as_output: bool, capsys: Any
) -> None:
    short = "too-short-secret"
    value: Any = pulumi.Output.secret(short) if as_output else short
    args = {"membership_key": KEY, field: value}
    with pytest.raises(InvalidConfigError) as info:
        run_mocked(lambda: NodeAgent("edge", args) and None)  # type: ignore[arg-type]
    message = str(info.value)
    assert f'NodeAgent "edge": {field}: must be at least 32 bytes' in message
    assert short not in message + "".join(capsys.readouterr())


def test_a_rotation_mounts_the_next_key_and_a_version_bump_rolls_only_the_speakers() -> None:
    before = render()
    rotating = render(membership_next_key=KEY + "-next", membership_key_version="2")
    secret = rotating["Secret"]
    assert set(secret["stringData"]) == {"key", "next-key"}
    items = next(v for v in pod(rotating, "DaemonSet")["volumes"] if v["name"] == "membership")["secret"][
        "items"
    ]
    assert items == [{"key": "key", "path": "key"}, {"key": "next-key", "path": "next-key"}]
    config = yaml.safe_load(rotating["ConfigMap"]["data"]["agent.yaml"])
    assert config["membership"]["nextKeyFile"] == "/etc/ironlb/membership/next-key"

    def hash_of(found: dict[str, Any], kind: str) -> str:
        return str(found[kind]["spec"]["template"]["metadata"]["annotations"]["ironlb.io/config-hash"])

    bumped = render(membership_key_version="2")
    assert hash_of(bumped, "DaemonSet") != hash_of(before, "DaemonSet"), (
        "a new key version rolls the speakers"
    )
    assert hash_of(bumped, "Deployment") == hash_of(before, "Deployment"), "the controller holds no key"
    text = json.dumps([m for m in rotating.values() if m["kind"] != "Secret"])
    assert KEY not in text, "no key material outside the Secret"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"metrics_port": 70000}, 'NodeAgent "ironlb": metrics_port "70000": must be 0-65535'),
        ({"health_port": 0}, 'NodeAgent "ironlb": health_port "0": must be 1-65535: the kubelet probes it'),
        ({"log_format": "xml"}, 'NodeAgent "ironlb": log_format "xml": must be one of: json or text'),
        ({"metrics_address": "eth0"}, "metrics_address \"eth0\": must be 'podIP' or an IPv4/IPv6 address"),
    ],
    ids=["a port out of range", "no health port", "an unknown log format", "an interface for an address"],
)
def test_bad_settings_args_fail_preview_naming_the_arg(args: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidConfigError) as info:
        render(**args)
    assert message in str(info.value)
