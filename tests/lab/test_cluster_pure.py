"""The cluster-mode lab's pure decisions (no namespaces): what the kubelet would run for a pod
spec, where the controllers place pods, the network a stack asks for, and the image config."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import pytest

from lab.cluster.image import REPO, ImageConfig, image_config, image_files, parse_dockerfile
from lab.cluster.podinit import hidden_by, setpriv_argv
from lab.cluster.podspec import SA_DIR, PodContext, PodSpecError, plan_pod
from lab.cluster.resolve import expand
from lab.cluster.topology import TopologyError, derive
from lab.cluster.workloads import Node, eligible, place

IMAGE = ImageConfig("img", {"PATH": "/venv/bin:/usr/bin"}, "0", "/", ("entry",), ("--cmd",))
DATA: dict[tuple[str, str, str], dict[str, bytes]] = {
    ("ConfigMap", "ns", "cfg"): {"agent.yaml": b"a: 1\n", "level": b"debug"},
    ("Secret", "ns", "sec"): {"key": b"s3cret", "password": b"pw"},
    ("ConfigMap", "ns", "kube-root-ca.crt"): {"ca.crt": b"CA"},
}


def ctx(**overrides: Any) -> PodContext:
    base: dict[str, Any] = {
        "node": "node1",
        "host_ip": "10.0.0.11",
        "host_ips": ("10.0.0.11", "fd00::11"),
        "pod_ip": "10.244.1.6",
        "uid": "uid-1",
        "api_host": "10.0.0.250",
        "api_port": 6443,
        "token": lambda ns, sa: f"token-{ns}-{sa}",
        "lookup": lambda kind, ns, name: DATA.get((kind, ns, name)),
        "image": lambda ref: IMAGE,
    }
    return PodContext(**{**base, **overrides})


def pod(container: Mapping[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    c = {"name": "main", "image": "img", **(container or {})}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "ns", "labels": {"app": "x"}},
        "spec": {"containers": [c], "serviceAccountName": "sa", **spec},
    }


def test_command_replaces_entrypoint_args_replace_cmd_and_vars_expand() -> None:
    env = [{"name": "LEVEL", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "level"}}}]
    c = plan_pod(pod({"command": ["run", "--level=$(LEVEL)", "$$(LEVEL)"], "env": env}), ctx()).containers[0]
    assert c.argv == ["run", "--level=debug", "$(LEVEL)"]
    assert plan_pod(pod(), ctx()).containers[0].argv == ["entry", "--cmd"]
    assert plan_pod(pod({"args": ["x"]}), ctx()).containers[0].argv == ["entry", "x"]
    assert plan_pod(pod({"command": ["only"]}), ctx()).containers[0].argv == ["only"]
    assert expand("$(A)-$(B)", {"A": "1"}) == "1-$(B)"


def test_env_has_the_image_env_the_api_service_the_downward_api_and_secret_keys() -> None:
    env = [
        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "HOST", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
        {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
        {"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "key"}}},
        {"name": "GONE", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k", "optional": True}}},
    ]
    got = plan_pod(pod({"env": env}), ctx()).containers[0].env
    assert {k: got[k] for k in ("NODE", "NS", "IP", "HOST", "APP", "KEY")} == {
        "NODE": "node1", "NS": "ns", "IP": "10.244.1.6", "HOST": "10.0.0.11", "APP": "x", "KEY": "s3cret",
    }  # fmt: skip
    assert "GONE" not in got
    assert got["PATH"] == "/venv/bin:/usr/bin" and got["HOSTNAME"] == "p"
    assert (got["KUBERNETES_SERVICE_HOST"], got["KUBERNETES_SERVICE_PORT"]) == ("10.0.0.250", "6443")


@pytest.mark.parametrize(
    ("container", "message"),
    [
        (
            {"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k"}}}]},
            'Secret "nope" not found',
        ),
        (
            {"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "k"}}}]},
            'has no key "k"',
        ),
        ({"env": [{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "spec.bogus"}}}]}, "spec.bogus"),
        ({"securityContext": {"runAsNonRoot": True}}, "runAsNonRoot"),
        (
            {"livenessProbe": {"httpGet": {"path": "/", "port": "health"}}},
            'port "health" names no containerPort',
        ),
        ({"livenessProbe": {"grpc": {"port": 1}}}, "not supported"),
    ],
    ids=[
        "missing secret",
        "missing key",
        "unknown fieldPath",
        "root with runAsNonRoot",
        "unknown named port",
        "grpc probe",
    ],
)
def test_what_the_kubelet_refuses_is_refused_naming_pod_and_field(
    container: dict[str, Any], message: str
) -> None:
    with pytest.raises(PodSpecError, match='Pod "p": containers\\[0\\] "main"') as err:
        plan_pod(pod(container), ctx())
    assert message in str(err.value)


def test_capabilities_user_and_privilege_escalation_follow_the_security_context() -> None:
    sc = {
        "capabilities": {"drop": ["ALL"], "add": ["NET_RAW", "CAP_NET_ADMIN"]},
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
    }
    c = plan_pod(pod({"securityContext": sc}), ctx()).containers[0]
    assert (c.caps, c.no_new_privs, c.read_only_root, c.uid) == (["NET_ADMIN", "NET_RAW"], True, True, 0)
    default = plan_pod(pod(), ctx()).containers[0]
    assert "NET_RAW" in default.caps and "SYS_ADMIN" not in default.caps and not default.no_new_privs
    assert plan_pod(pod({"securityContext": {"privileged": True}}), ctx()).containers[0].caps == ["ALL"]
    user = plan_pod(
        pod(securityContext={"runAsUser": 65532, "runAsGroup": 65532, "runAsNonRoot": True}), ctx()
    )
    assert (user.containers[0].uid, user.containers[0].gid) == (65532, 65532)
    argv = setpriv_argv(
        {"uid": 65532, "gid": 65532, "groups": [], "caps": ["NET_RAW"], "no_new_privs": True, "argv": ["x"]}
    )
    assert argv == [
        "/usr/bin/setpriv", "--reuid", "65532", "--regid", "65532", "--clear-groups",
        "--bounding-set", "-all,+net_raw", "--inh-caps", "-all", "--no-new-privs", "--", "x",
    ]  # fmt: skip


def test_volumes_resolve_items_modes_and_the_service_account_token() -> None:
    volumes = [
        {"name": "config", "configMap": {"name": "cfg"}},
        {"name": "key", "secret": {"secretName": "sec", "defaultMode": 0o400,
                                   "items": [{"key": "key", "path": "k"}]}},
        {"name": "proj", "projected": {"defaultMode": 0o440, "sources": [
            {"secret": {"name": "sec", "items": [{"key": "password", "path": "tor/password"}]}},
            {"secret": {"name": "absent", "optional": True}},
        ]}},
        {"name": "run", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}},
    ]  # fmt: skip
    mounts = [{"name": n, "mountPath": f"/m/{n}"} for n in ("config", "key", "proj", "run")]
    plan = plan_pod(
        pod({"volumeMounts": mounts}, volumes=volumes, securityContext={"runAsUser": 1000}), ctx()
    )
    files = {n: {f.path: (f.data, oct(f.mode), f.uid) for f in v.files} for n, v in plan.volumes.items()}
    assert files["config"] == {"agent.yaml": (b"a: 1\n", "0o644", 0), "level": (b"debug", "0o644", 0)}
    assert files["key"] == {"k": (b"s3cret", "0o400", 0)}
    assert files["proj"] == {"tor/password": (b"pw", "0o440", 0)}
    assert files["kube-api-access-lab"]["token"] == (
        b"token-ns-sa",
        "0o600",
        1000,
    )  # a non-root container's own
    assert (
        files["kube-api-access-lab"]["ca.crt"][0] == b"CA"
        and files["kube-api-access-lab"]["namespace"][0] == b"ns"
    )
    assert (plan.volumes["run"].kind, plan.volumes["run"].size_limit) == ("memory", 16 * 2**20)
    ro = {m.target: m.read_only for m in plan.containers[0].mounts}
    assert ro == {"/m/config": True, "/m/key": True, "/m/proj": True, "/m/run": False, SA_DIR: True}
    assert SA_DIR not in {
        m.target for m in plan_pod(pod(automountServiceAccountToken=False), ctx()).containers[0].mounts
    }


def test_probes_resolve_named_ports_and_default_to_the_pod_ip_and_kubernetes_defaults() -> None:
    c = pod({"ports": [{"name": "health", "containerPort": 7949}],
             "livenessProbe": {"httpGet": {"path": "/healthz", "port": "health"}, "periodSeconds": 5},
             "readinessProbe": {"tcpSocket": {"port": 7949}}})  # fmt: skip
    live, ready = plan_pod(c, ctx()).containers[0].probes
    got = (live.kind, live.host, live.port, live.path, live.period, live.timeout, live.failure_threshold)
    assert got == ("liveness", "10.244.1.6", 7949, "/healthz", 5.0, 1.0, 3)
    assert (ready.kind, ready.handler, ready.port, ready.initial_delay) == ("readiness", "tcp", 7949, 0.0)


def _workload(kind: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": kind.lower(), "namespace": "ns"},
            "spec": {"template": {"metadata": {"labels": {"app": "x"}},
                                  "spec": {"containers": [{"name": "c"}], **spec}}}}  # fmt: skip


def test_a_daemonset_runs_on_every_matching_node_and_a_deployment_spreads() -> None:
    nodes = [
        Node("node1", {"role": "worker"}),
        Node("node2", {"role": "worker"}),
        Node("node3", {}),
        Node(
            "cp",
            {"role": "worker"},
            ({"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"},),
        ),
    ]
    ds = _workload("DaemonSet", nodeSelector={"role": "worker"})
    deploy = copy.deepcopy(_workload("Deployment"))
    deploy["spec"]["replicas"] = 2
    pods = place([ds, deploy], nodes)
    assert sorted(p.node for p in pods if p.workload_kind == "DaemonSet") == ["node1", "node2"]
    assert len({p.node for p in pods if p.workload_kind == "Deployment"}) == 2
    assert all(p.manifest["spec"]["nodeName"] == p.node for p in pods)
    tolerant = {
        "tolerations": [
            {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}
        ]
    }
    assert eligible(tolerant, nodes[3]) and not eligible({}, nodes[3])


def test_the_prod_stack_asks_for_two_routers_bond0_workers_and_every_pool_accepted(
    prod_manifests: list[dict[str, Any]],
) -> None:
    topo = derive(prod_manifests, 3)
    assert topo.topology.lan == ("10.20.0.0/24", "fd00:20::/64")
    assert [(p.name, p.router, p.address, p.password_ref) for p in topo.peers] == [
        ("tor-a", "router", "10.20.0.1", ("ironlb-bgp-tor-a", "password")),
        ("tor-b", "router2", "10.20.0.2", ("ironlb-bgp-tor-b", "password")),
    ]
    assert topo.topology.node_interface == "bond0"
    assert "node-role.kubernetes.io/worker" in topo.node_labels
    team_a = {"10.100.0.1/32", "10.100.0.2/31", "10.100.0.62/32", "fd00:100:a::/120"}  # .1-.62 as CIDRs
    assert team_a <= set(topo.topology.anyip)
    assert topo.l2_pools == {"shared-l2"} and "team-a-bgp" in topo.bgp_pools
    assert topo.pool_of("10.100.1.10") == "team-b-bgp" and topo.pool_of("10.99.0.1") is None


def test_a_peer_off_the_lan_or_two_interface_names_cannot_be_built(
    prod_manifests: list[dict[str, Any]],
) -> None:
    bad = copy.deepcopy(prod_manifests)
    next(m for m in bad if m["kind"] == "BGPPeer")["spec"]["peerAddress"] = "10.30.0.1"
    with pytest.raises(TopologyError, match=r'peerAddress "10\.20\.0\.2" is not on the LAN 10\.30\.0\.0/24'):
        derive(bad, 3)
    bad = copy.deepcopy(prod_manifests)
    bad.append({**next(m for m in bad if m["kind"] == "L2Advertisement"), "spec": {"interfaces": ["eth1"]}})
    with pytest.raises(TopologyError, match="bond0, eth1"):
        derive(bad, 3)


def test_extra_hosts_get_free_lan_numbers_and_taken_names_are_refused(
    prod_manifests: list[dict[str, Any]],
) -> None:
    topo = derive(prod_manifests, 3, extra_hosts=("intruder",))
    numbers = dict(topo.topology.extra)
    assert set(numbers) == {"api", "intruder"} and numbers["api"] != numbers["intruder"]
    assert topo.pool_of(f"10.20.0.{numbers['intruder']}") is None
    for taken in ("client", "router2", "node1", "api"):
        with pytest.raises(TopologyError, match=f"extra host '{taken}': that name is taken"):
            derive(prod_manifests, 3, extra_hosts=(taken,))


@pytest.fixture(scope="module")
def prod_manifests() -> list[dict[str, Any]]:
    from ironlb.components.offline import evaluate_stack, load_stack, manifests

    return manifests(evaluate_stack(load_stack("prod", REPO / "stacks")))


def test_the_image_config_comes_from_the_dockerfile_with_the_venv_remapped() -> None:
    text = (
        "FROM a AS build\nENV X=1\nFROM b\nENV PATH=/opt/ironlb/bin:$PATH Y=2\nUSER 0\n"
        'ENTRYPOINT ["ironlb-agent"]\nCMD ["--source", "kube"]\n'
    )
    cfg = parse_dockerfile(text, "img", venv="/v")
    assert cfg.env["PATH"].startswith("/v/bin:/usr/local/bin") and cfg.env["Y"] == "2" and "X" not in cfg.env
    assert (cfg.user, cfg.entrypoint, cfg.cmd) == ("0", ("ironlb-agent",), ("--source", "kube"))
    assert image_config("ghcr.io/ironlb/agent:0.1.0").entrypoint
    with pytest.raises(
        ValueError, match='image "nginx": the lab runs only images built from this repository'
    ):
        image_config("nginx")


def test_the_image_files_stay_visible_under_a_volume_on_a_parent() -> None:
    # a clone in /tmp is the image's files; the speaker mounts an emptyDir at /tmp
    assert hidden_by("/tmp/clone", ["/etc/ironlb/config", "/tmp"]) == "/tmp"
    assert hidden_by("/tmp/clone/.venv", ["/tmp/"]) == "/tmp/"
    assert hidden_by("/work/clone", ["/tmp", "/run/ironlb"]) is None
    assert hidden_by("/tmp", ["/tmp"]) is None  # a volume on the path itself is the pod's choice
    assert hidden_by("/tmpfoo/clone", ["/tmp"]) is None
    assert image_files("/elsewhere/venv")[1:] == ["/elsewhere/venv"]
    assert len(image_files(str(REPO / ".venv"))) == 1  # a venv inside the checkout comes with it
