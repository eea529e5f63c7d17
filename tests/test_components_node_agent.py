"""NodeAgent: the split install (speaker DaemonSet + controller Deployment), its settings and keys."""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pytest
import yaml

from ironlb.components import InvalidConfigError, NodeAgent
from ironlb.components.offline import manifests, run_mocked

KEY = "k" * 40


def render(**args: Any) -> dict[str, dict[str, Any]]:
    settings: Any = {"membership_key": KEY, **args}  # NodeAgentArgs, as each test passes them
    ev = run_mocked(lambda: NodeAgent("ironlb", settings) and None)
    return {
        m["kind"]: m for m in manifests(ev) if m["kind"] in ("DaemonSet", "Deployment", "ConfigMap", "Secret")
    }


def pod(found: dict[str, dict[str, Any]], kind: str) -> dict[str, Any]:
    spec: dict[str, Any] = found[kind]["spec"]["template"]["spec"]
    return spec


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


# --- the optional ServiceMonitor ----------------------------------------------------------------


def _matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A Kubernetes label selector (matchLabels, matchExpressions In/NotIn/Exists) against labels."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for e in selector.get("matchExpressions") or []:
        present, value = e["key"] in labels, labels.get(e["key"])
        ok = {
            "In": present and value in e.get("values", []),
            "NotIn": not present or value not in e.get("values", []),
            "Exists": present,
            "DoesNotExist": not present,
        }[e["operator"]]
        if not ok:
            return False
    return True


def test_there_is_no_service_monitor_and_no_metrics_service_by_default() -> None:
    ev = run_mocked(lambda: NodeAgent("ironlb", {"membership_key": KEY}) and None)
    kinds = {m["kind"] for m in manifests(ev)}
    assert "ServiceMonitor" not in kinds and "Service" not in kinds


def service_monitor_stack(tmp_path: Any, **agent: Any) -> list[dict[str, Any]]:
    """The dev stack with ``agent`` settings added, rendered by `ironlb render` (schema-checked)."""
    from pathlib import Path

    from ironlb_cli.render import render as render_stack

    stacks = Path(__file__).resolve().parents[1] / "stacks"
    doc = yaml.safe_load((stacks / "Pulumi.dev.yaml").read_text())
    doc["config"]["ironlb:agent"].update(agent)
    (tmp_path / "Pulumi.dev.yaml").write_text(yaml.safe_dump(doc))
    return [yaml.safe_load(text) for _, text in render_stack("dev", tmp_path)]


def test_a_stack_with_service_monitor_renders_one_that_scrapes_every_pod_of_both_roles(tmp_path: Any) -> None:
    found = service_monitor_stack(tmp_path, serviceMonitor=True, serviceMonitorLabels={"release": "kps"})
    (monitor,) = [m for m in found if m["kind"] == "ServiceMonitor"]
    services = {
        m["metadata"]["name"]: m
        for m in found
        if m["kind"] == "Service" and "ironlb.io/metrics" in m["metadata"]["labels"]
    }
    workloads = {m["kind"]: m for m in found if m["kind"] in ("DaemonSet", "Deployment")}
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kps", (
        "the Prometheus that selects by release finds it"
    )
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["ironlb-system"]}
    assert sorted(services) == ["ironlb-controller-metrics", "ironlb-speaker-metrics"]
    (endpoint,) = monitor["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("metrics", "/metrics")
    for name, kind in (("ironlb-speaker-metrics", "DaemonSet"), ("ironlb-controller-metrics", "Deployment")):
        svc, workload = services[name], workloads[kind]
        assert _matches(monitor["spec"]["selector"], svc["metadata"]["labels"]), f"{name} is not selected"
        assert svc["spec"]["clusterIP"] == "None", "headless: every pod is a target, not one behind a VIP"
        template = workload["spec"]["template"]
        assert _matches({"matchLabels": svc["spec"]["selector"]}, template["metadata"]["labels"])
        (port,) = svc["spec"]["ports"]
        container_ports = {p["name"]: p["containerPort"] for p in template["spec"]["containers"][0]["ports"]}
        assert port["name"] == endpoint["port"] and port["targetPort"] == "metrics"
        assert port["port"] == container_ports["metrics"] == 7948
    other = [m for m in found if m["kind"] == "Service" and m not in services.values()]
    assert all(not _matches(monitor["spec"]["selector"], m["metadata"].get("labels") or {}) for m in other), (
        "the tenants' LoadBalancer Services are never scraped"
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda m: m["spec"]["endpoints"][0].update(intervall="30s"),
            "Additional properties are not allowed ('intervall'",
        ),
        (lambda m: m["spec"]["endpoints"][0].update(interval="30 seconds"), "does not match"),
        (lambda m: m["spec"].pop("selector"), "'selector' is a required property"),
        (lambda m: m["spec"].update(endpoints=[]), "should be non-empty"),
        (lambda m: m["spec"]["endpoints"][0].update(scheme="ftp"), "is not one of ['http', 'https']"),
    ],
    ids=[
        "a misspelt field",
        "a duration Prometheus cannot read",
        "no selector",
        "no endpoint",
        "a bad scheme",
    ],
)
def test_the_pinned_schema_refuses_what_the_operator_would_not_take(change: Any, message: str) -> None:
    from ironlb.components import monitoring
    from ironlb.components.manifest_check import problems

    good = monitoring.service_monitor("ironlb-system", ("speaker", "controller"), {"release": "kps"})
    assert problems(good) == []
    change(good)
    found = problems(good)
    assert found and message in found[0] and found[0].startswith('ServiceMonitor "ironlb-system/ironlb"')


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"service_monitor": True, "metrics_port": 0}, "service_monitor: needs /metrics: metrics_port is 0"),
        ({"service_monitor": "yes"}, 'service_monitor "yes": must be true or false'),
        (
            {"service_monitor": True, "metrics_address": "127.0.0.1"},
            "metrics_address 127.0.0.1 is loopback (use podIP)",
        ),
        (
            {"service_monitor_labels": {"release!": "kps"}},
            "service_monitor_labels.release!: is not a label key",
        ),
        (
            {"service_monitor_labels": {"release": "a b"}},
            "service_monitor_labels.release: value 'a b' is not",
        ),
    ],
    ids=["no metrics port", "not a boolean", "metrics on loopback", "a bad label key", "a bad label value"],
)
def test_a_service_monitor_that_could_not_work_fails_preview(args: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidConfigError) as info:
        render(**args)
    assert message in str(info.value) and 'NodeAgent "ironlb"' in str(info.value)
