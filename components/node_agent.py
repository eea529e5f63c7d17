"""NodeAgent: everything the IronLB node agent needs on a cluster.

Children: the Namespace (labelled for the privileged Pod Security level that hostNetwork
and NET_ADMIN need), the ``ironlb.io`` CRDs (from ``ironlb.crds``, the same models as the
schema), a ServiceAccount, a least-privilege ClusterRole/Role (``components.rbac``), the
agent's ConfigMap, the membership-key Secret, and the DaemonSet.

File layout inside the agent container (agreed with the agent; see docs/pulumi.md):

- ``/etc/ironlb/config/agent.yaml`` -- the agent settings (ConfigMap, read-only);
- ``/etc/ironlb/membership/key`` -- the membership key (Secret, mode 0400);
- ``/etc/ironlb/secrets/<secret-name>/<key>`` -- BGP passwords (one projected volume);
- ``/run/ironlb`` and ``/tmp`` -- writable emptyDirs (root filesystem is read-only).

No PodDisruptionBudget: node drains skip DaemonSet pods and DaemonSet rollouts do not go
through eviction, so a PDB would guard nothing (docs/decisions/0012).  Rollouts are
paced by ``maxUnavailable: 1`` instead.

No ``from __future__ import annotations`` here: the Analyzer reads the annotations.
"""

import hashlib
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import yaml

from components import rbac
from components.args import NodeAgentArgs
from components.base import DEFAULT_NAMESPACE, MANAGED_BY, InvalidConfigError, child_opts, token
from ironlb.errors import Issue

DEFAULT_VERSION = "0.1.0"
DEFAULT_IMAGE_REPO = "ghcr.io/ironlb/agent"
CONFIG_DIR = "/etc/ironlb/config"
CONFIG_FILE = f"{CONFIG_DIR}/agent.yaml"
MEMBERSHIP_DIR = "/etc/ironlb/membership"
MEMBERSHIP_KEY_FILE = f"{MEMBERSHIP_DIR}/key"
SECRETS_DIR = "/etc/ironlb/secrets"
RUN_DIR = "/run/ironlb"
AGENT_COMMAND = ["ironlb-agent", "--source", "kube"]
DEFAULT_TOLERATIONS = [
    {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"},
]


def agent_settings(args: NodeAgentArgs, namespace: str) -> dict[str, Any]:
    """The agent's settings file, as a dict (written to the ConfigMap as YAML)."""
    return {
        "source": "kube",
        "namespace": namespace,
        "logLevel": args.get("log_level", "info"),
        "metricsPort": args.get("metrics_port", 7472),
        "healthPort": args.get("health_port", 7473),
        "membership": {"port": args.get("membership_port", 7946), "keyFile": MEMBERSHIP_KEY_FILE},
        "secretsDir": SECRETS_DIR,
        "runDir": RUN_DIR,
    }


def _container(args: NodeAgentArgs, image: str) -> dict[str, Any]:
    health = args.get("health_port", 7473)
    membership = args.get("membership_port", 7946)
    return {
        "name": "agent",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": list(AGENT_COMMAND),
        "args": ["--membership-port", str(membership), "--log-level", str(args.get("log_level", "info"))],
        "env": [
            {"name": "IRONLB_CONFIG", "value": CONFIG_FILE},
            {"name": "IRONLB_MEMBERSHIP_KEY", "value": MEMBERSHIP_KEY_FILE},
            {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        ],
        "ports": [
            {"name": "metrics", "containerPort": args.get("metrics_port", 7472), "protocol": "TCP"},
            {"name": "health", "containerPort": health, "protocol": "TCP"},
            {"name": "membership", "containerPort": membership, "protocol": "UDP"},
        ],
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": "health"},
            "initialDelaySeconds": 5,
            "periodSeconds": 10,
            "timeoutSeconds": 2,
            "failureThreshold": 3,
        },
        "readinessProbe": {
            "httpGet": {"path": "/readyz", "port": "health"},
            "periodSeconds": 5,
            "timeoutSeconds": 2,
            "failureThreshold": 2,
        },
        "resources": {
            "requests": {"cpu": args.get("cpu_request", "50m"), "memory": args.get("memory_request", "64Mi")},
            "limits": {"cpu": args.get("cpu_limit", "500m"), "memory": args.get("memory_limit", "256Mi")},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"], "add": ["NET_RAW", "NET_ADMIN"]},
        },
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "membership", "mountPath": MEMBERSHIP_DIR, "readOnly": True},
            {"name": "run", "mountPath": RUN_DIR},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }


def daemonset_spec(
    args: NodeAgentArgs,
    *,
    namespace: str,
    service_account: str,
    config_map: str,
    key_secret: str,
    config_hash: str,
) -> dict[str, Any]:
    """The DaemonSet spec (pure; tested directly)."""
    image = args.get("image") or f"{DEFAULT_IMAGE_REPO}:{args.get('version', DEFAULT_VERSION)}"
    labels = {"app.kubernetes.io/name": "ironlb-agent", "app.kubernetes.io/instance": namespace}
    refs = sorted(
        {
            (r.partition("/")[0], r.partition("/")[2] or "password")
            for r in args.get("bgp_password_secrets", [])
        }
    )
    sources = [
        {"secret": {"name": name, "optional": True, "items": [{"key": key, "path": f"{name}/{key}"}]}}
        for name, key in refs
    ]
    volumes: list[dict[str, Any]] = [
        {"name": "config", "configMap": {"name": config_map}},
        {"name": "membership", "secret": {"secretName": key_secret, "defaultMode": 0o400}},
        {"name": "run", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}},
        {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
    ]
    container = _container(args, image)
    if sources:  # a projected volume needs at least one source
        volumes.insert(2, {"name": "bgp-secrets", "projected": {"sources": sources, "defaultMode": 0o400}})
        container["volumeMounts"].insert(
            2, {"name": "bgp-secrets", "mountPath": SECRETS_DIR, "readOnly": True}
        )
    pod: dict[str, Any] = {
        "serviceAccountName": service_account,
        "hostNetwork": True,
        "dnsPolicy": "ClusterFirstWithHostNet",
        "terminationGracePeriodSeconds": 15,
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "tolerations": [dict(t) for t in args.get("tolerations", DEFAULT_TOLERATIONS)],
        "nodeSelector": {"kubernetes.io/os": "linux", **args.get("node_selector", {})},
        "containers": [container],
        "volumes": volumes,
    }
    return {
        "selector": {"matchLabels": labels},
        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
        "template": {
            "metadata": {
                "labels": {**labels, **MANAGED_BY},
                "annotations": {"ironlb.io/config-hash": config_hash},
            },
            "spec": pod,
        },
    }


class NodeAgent(pulumi.ComponentResource):
    """The IronLB node agent: namespace, CRDs, RBAC, config, membership key and DaemonSet."""

    namespace: pulumi.Output[str]
    """Namespace the agent runs in."""
    service_account_name: pulumi.Output[str]
    """The agent's ServiceAccount."""
    crd_names: pulumi.Output[list[str]]
    """Names of the installed CRDs."""
    daemon_set_name: pulumi.Output[str]
    """The agent DaemonSet's name."""

    def __init__(self, name: str, args: NodeAgentArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        if args.get("membership_key") is None:
            raise InvalidConfigError(
                [
                    Issue(
                        "NodeAgent",
                        name,
                        "membership_key",
                        None,
                        "is required: pass a Pulumi secret (e.g. config ironlb:membershipKey)",
                    )
                ]
            )
        super().__init__(token("NodeAgent"), name, {}, opts)
        ns = args.get("namespace", DEFAULT_NAMESPACE)
        self.ns: k8s.core.v1.Namespace | None = None
        after: list[pulumi.Resource] = []
        if args.get("create_namespace", True):
            self.ns = k8s.core.v1.Namespace(
                f"{name}-namespace",
                metadata={
                    "name": ns,
                    "labels": {
                        **MANAGED_BY,
                        "pod-security.kubernetes.io/enforce": "privileged",
                        "pod-security.kubernetes.io/warn": "privileged",
                    },
                },
                opts=child_opts(self, opts),
            )
            after.append(self.ns)
        self.crds: list[k8s.apiextensions.v1.CustomResourceDefinition] = []
        if args.get("install_crds", True):
            from ironlb.crds import crd_manifests

            for crd in crd_manifests():
                plural = crd["spec"]["names"]["plural"]
                self.crds.append(
                    k8s.apiextensions.v1.CustomResourceDefinition(
                        f"{name}-crd-{plural}",
                        metadata={
                            **crd["metadata"],
                            "labels": {**crd["metadata"].get("labels", {}), **MANAGED_BY},
                        },
                        spec=crd["spec"],
                        opts=child_opts(self, opts),
                    )
                )
        base = "ironlb-agent"
        meta = {"namespace": ns, "labels": dict(MANAGED_BY)}
        in_ns = child_opts(self, opts, depends_on=after)
        self.service_account = k8s.core.v1.ServiceAccount(
            f"{name}-serviceaccount", metadata={"name": base, **meta}, opts=in_ns
        )
        self.cluster_role = k8s.rbac.v1.ClusterRole(
            f"{name}-clusterrole",
            metadata={"name": f"{base}-{ns}", "labels": dict(MANAGED_BY)},
            rules=rbac.cluster_rules(),
            opts=child_opts(self, opts),
        )
        subject = [{"kind": "ServiceAccount", "name": base, "namespace": ns}]
        self.cluster_role_binding = k8s.rbac.v1.ClusterRoleBinding(
            f"{name}-clusterrolebinding",
            metadata={"name": f"{base}-{ns}", "labels": dict(MANAGED_BY)},
            role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": f"{base}-{ns}"},
            subjects=subject,
            opts=child_opts(self, opts),
        )
        self.role = k8s.rbac.v1.Role(
            f"{name}-role", metadata={"name": base, **meta}, rules=rbac.namespace_rules(), opts=in_ns
        )
        self.role_binding = k8s.rbac.v1.RoleBinding(
            f"{name}-rolebinding",
            metadata={"name": base, **meta},
            role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": base},
            subjects=subject,
            opts=in_ns,
        )
        settings = yaml.safe_dump(agent_settings(args, ns), sort_keys=True)
        self.config_map = k8s.core.v1.ConfigMap(
            f"{name}-config",
            metadata={"name": f"{base}-config", **meta},
            data={"agent.yaml": settings},
            opts=in_ns,
        )
        self.membership_secret = k8s.core.v1.Secret(
            f"{name}-membership-key",
            metadata={"name": f"{base}-membership", **meta},
            type="Opaque",
            string_data={"key": pulumi.Output.secret(args["membership_key"])},
            opts=child_opts(self, opts, depends_on=after, additional_secret_outputs=["data", "stringData"]),
        )
        spec = daemonset_spec(
            args,
            namespace=ns,
            service_account=base,
            config_map=f"{base}-config",
            key_secret=f"{base}-membership",
            config_hash=hashlib.sha256(settings.encode()).hexdigest()[:16],
        )
        self.daemon_set = k8s.apps.v1.DaemonSet(
            f"{name}-daemonset",
            metadata={"name": base, **meta},
            spec=spec,
            opts=child_opts(
                self,
                opts,
                depends_on=[
                    *after,
                    self.service_account,
                    self.config_map,
                    self.membership_secret,
                    *self.crds,
                ],
            ),
        )
        self.namespace = pulumi.Output.from_input(ns)
        self.service_account_name = pulumi.Output.from_input(base)
        self.crd_names = pulumi.Output.from_input(
            [c["metadata"]["name"] for c in _crd_list()] if self.crds else []
        )
        self.daemon_set_name = pulumi.Output.from_input(base)
        self.register_outputs(
            {
                "namespace": self.namespace,
                "service_account_name": self.service_account_name,
                "crd_names": self.crd_names,
                "daemon_set_name": self.daemon_set_name,
            }
        )


def _crd_list() -> list[dict[str, Any]]:
    from ironlb.crds import crd_manifests

    return crd_manifests()
