"""NodeAgent: everything IronLB needs on a cluster -- the speaker DaemonSet and the controller Deployment.

Children: the Namespace (labelled for the privileged Pod Security level that hostNetwork
and NET_ADMIN need), the ``ironlb.io`` CRDs (``ironlb.crds``, from the same models as the
schema, NodeState included), per role a ServiceAccount and least-privilege ClusterRole
(and, for the controller, a Role for its Lease) from ``ironlb.components.rbac``, the settings
ConfigMap, the membership-key Secret, the speaker DaemonSet and the controller Deployment
(``ironlb.components.workloads``).

The settings file is :class:`ironlb.agentconfig.AgentConfig`, the model both roles read at
start: this component builds it from its args and writes ``AgentConfig.dump()``, so every
key it writes is a field the agents read, with the model's defaults (ports that do not
collide with MetalLB: membership 7947, metrics 7948, health 7949).

The membership key is checked here, at preview: at least 32 bytes, or the component fails
naming the field (never the value).  A key rotation (ADR 0030) adds ``membership_next_key``
and bumps ``membership_key_version``: the version enters the speaker's rollout hash, so the
pods restart and read the new files, while no secret material reaches a non-secret field.

No PodDisruptionBudget for the DaemonSet (docs/decisions/0012); the controller's two
replicas prefer different nodes and roll one at a time (maxUnavailable 0).

With ``service_monitor`` (off by default) it also creates a headless metrics Service per role
and a prometheus-operator ServiceMonitor scraping both (``ironlb.components.monitoring``).

No ``from __future__ import annotations`` here: the Analyzer reads the annotations.
"""

import hashlib
import ipaddress
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import yaml

from ironlb import agentconfig
from ironlb.components import monitoring, rbac, workloads
from ironlb.components.args import NodeAgentArgs
from ironlb.components.base import DEFAULT_NAMESPACE, MANAGED_BY, InvalidConfigError, child_opts, token
from ironlb.components.stackconfig import REDACTED
from ironlb.errors import ConfigError, Issue

DEFAULT_VERSION = "0.1.0"
DEFAULT_IMAGE_REPO = "ghcr.io/ironlb/agent"
MIN_KEY_BYTES = 32
DEFAULT_TOLERATIONS = [
    {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"},
]
SPEAKER = "ironlb-speaker"
CONTROLLER = "ironlb-controller"
CONFIG_MAP = "ironlb-config"
KEY_SECRET = "ironlb-membership"

#: NodeAgent args -> settings key (dotted camelCase), for the args that are settings.
SETTING_ARGS = {
    "log_level": "logLevel",
    "log_format": "logFormat",
    "metrics_port": "metrics.port",
    "metrics_address": "metrics.address",
    "health_port": "health.port",
    "status_endpoint": "status.enabled",
    "membership_port": "membership.port",
    "claim_classless": "kubernetes.claimClassless",
}


def agent_config(name: str, args: NodeAgentArgs, namespace: str) -> agentconfig.AgentConfig:
    """The settings both roles read, from the component's args (an InvalidConfigError names the arg)."""
    overrides: dict[str, Any] = {
        "namespace": namespace,
        "source.kind": "kube",
        "membership.keyFile": workloads.MEMBERSHIP_KEY_FILE,
        "secretsDir": workloads.SECRETS_DIR,
        "runDir": workloads.RUN_DIR,
    }
    if args.get("membership_next_key") is not None:
        overrides["membership.nextKeyFile"] = workloads.MEMBERSHIP_NEXT_KEY_FILE
    overrides.update({key: args[arg] for arg, key in SETTING_ARGS.items() if args.get(arg) is not None})  # type: ignore[literal-required]
    try:
        config = agentconfig.merged({}, overrides, f"NodeAgent {name}")
    except ConfigError as exc:
        by_key = {key: arg for arg, key in SETTING_ARGS.items()}
        raise InvalidConfigError(
            [Issue("NodeAgent", name, by_key.get(i.field, i.field), i.value, i.message) for i in exc.issues]
        ) from None
    if not config.health.port:
        raise InvalidConfigError(
            [Issue("NodeAgent", name, "health_port", 0, "must be 1-65535: the kubelet probes it")]
        )
    return config


def check_monitoring(name: str, args: NodeAgentArgs, config: agentconfig.AgentConfig) -> None:
    """``service_monitor`` needs a /metrics Prometheus can reach; its labels must be labels."""
    issues = [
        Issue(
            "NodeAgent", name, f"service_monitor_labels.{key}" if key else "service_monitor_labels", None, why
        )
        for key, why in monitoring.label_problems(args.get("service_monitor_labels", {}))
    ]
    if not isinstance(args.get("service_monitor", False), bool):
        issues.append(
            Issue("NodeAgent", name, "service_monitor", args.get("service_monitor"), "must be true or false")
        )
    elif args.get("service_monitor"):
        if not config.metrics.port:
            issues.append(
                Issue("NodeAgent", name, "service_monitor", None, "needs /metrics: metrics_port is 0 (off)")
            )
        elif (
            config.metrics.address != agentconfig.POD_IP
            and ipaddress.ip_address(config.metrics.address).is_loopback
        ):
            issues.append(
                Issue(
                    "NodeAgent",
                    name,
                    "service_monitor",
                    None,
                    f"needs /metrics where Prometheus reaches it: metrics_address "
                    f"{config.metrics.address} is loopback (use podIP)",
                )
            )
    if issues:
        raise InvalidConfigError(issues)


def check_key(name: str, field: str, value: Any) -> Any:
    """A membership key must be at least 32 bytes; the error never shows the key."""
    if isinstance(value, str) and value != REDACTED and len(value.encode()) < MIN_KEY_BYTES:
        raise InvalidConfigError(
            [
                Issue(
                    "NodeAgent",
                    name,
                    field,
                    None,
                    f"must be at least {MIN_KEY_BYTES} bytes (this one has {len(value.encode())}); "
                    "generate one with `openssl rand -base64 48`",
                )
            ]
        )
    return value


def _checked_key(name: str, field: str, value: Any) -> Any:
    """Check now when the value is known; else when it resolves (an Output), failing the update."""
    if isinstance(value, pulumi.Output):
        return pulumi.Output.secret(value.apply(lambda v: check_key(name, field, v)))
    return pulumi.Output.secret(check_key(name, field, value))


def image_of(args: NodeAgentArgs) -> str:
    return args.get("image") or f"{DEFAULT_IMAGE_REPO}:{args.get('version', DEFAULT_VERSION)}"


def config_hash(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


class NodeAgent(pulumi.ComponentResource):
    """IronLB on a cluster: namespace, CRDs, RBAC, settings, membership key, speaker and controller."""

    namespace: pulumi.Output[str]
    """Namespace IronLB runs in."""
    service_account_name: pulumi.Output[str]
    """The speaker's ServiceAccount."""
    controller_service_account_name: pulumi.Output[str]
    """The controller's ServiceAccount."""
    crd_names: pulumi.Output[list[str]]
    """Names of the installed CRDs."""
    daemon_set_name: pulumi.Output[str]
    """The speaker DaemonSet's name."""
    deployment_name: pulumi.Output[str]
    """The controller Deployment's name."""

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
        ns = args.get("namespace", DEFAULT_NAMESPACE)
        config = agent_config(name, args, ns)
        check_monitoring(name, args, config)
        key = _checked_key(name, "membership_key", args["membership_key"])
        next_key = args.get("membership_next_key")
        checked_next = _checked_key(name, "membership_next_key", next_key) if next_key is not None else None
        super().__init__(token("NodeAgent"), name, {}, opts)
        after: list[pulumi.Resource] = []
        self.ns: k8s.core.v1.Namespace | None = None
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
        self.crds = self._crds(name, args, opts)
        meta = {"namespace": ns, "labels": dict(MANAGED_BY)}
        in_ns = child_opts(self, opts, depends_on=after)
        self.service_accounts = {
            role: self._rbac(name, role, ns, config.kubernetes.lease.name, opts, in_ns)
            for role in (rbac.SPEAKER, rbac.CONTROLLER)
        }
        settings = yaml.safe_dump(config.dump(), sort_keys=True)
        self.config_map = k8s.core.v1.ConfigMap(
            f"{name}-config", metadata={"name": CONFIG_MAP, **meta}, data={"agent.yaml": settings}, opts=in_ns
        )
        self.membership_secret = k8s.core.v1.Secret(
            f"{name}-membership-key",
            metadata={"name": KEY_SECRET, **meta},
            type="Opaque",
            string_data={"key": key, **({"next-key": checked_next} if checked_next is not None else {})},
            opts=child_opts(self, opts, depends_on=after, additional_secret_outputs=["data", "stringData"]),
        )
        self.daemon_set, self.deployment = self._workloads(name, args, config, settings, meta, opts, after)
        if args.get("service_monitor"):
            self._monitoring(name, args, config, meta, opts, after)
        self.namespace = pulumi.Output.from_input(ns)
        self.service_account_name = pulumi.Output.from_input(SPEAKER)
        self.controller_service_account_name = pulumi.Output.from_input(CONTROLLER)
        self.crd_names = pulumi.Output.from_input(
            [c["metadata"]["name"] for c in _crd_list()] if self.crds else []
        )
        self.daemon_set_name = pulumi.Output.from_input(SPEAKER)
        self.deployment_name = pulumi.Output.from_input(CONTROLLER)
        self.register_outputs(
            {
                "namespace": self.namespace,
                "service_account_name": self.service_account_name,
                "controller_service_account_name": self.controller_service_account_name,
                "crd_names": self.crd_names,
                "daemon_set_name": self.daemon_set_name,
                "deployment_name": self.deployment_name,
            }
        )

    def _crds(
        self, name: str, args: NodeAgentArgs, opts: pulumi.ResourceOptions | None
    ) -> list[k8s.apiextensions.v1.CustomResourceDefinition]:
        if not args.get("install_crds", True):
            return []
        return [
            k8s.apiextensions.v1.CustomResourceDefinition(
                f"{name}-crd-{crd['spec']['names']['plural']}",
                metadata={**crd["metadata"], "labels": {**crd["metadata"].get("labels", {}), **MANAGED_BY}},
                spec=crd["spec"],
                # Deleting a CRD deletes every pool, peer and tenant with it: `pulumi destroy` or
                # removing the install leaves the CRDs in the cluster (docs/uninstall.md).
                opts=child_opts(self, opts, retain_on_delete=True),
            )
            for crd in _crd_list()
        ]

    def _rbac(
        self,
        name: str,
        role: str,
        ns: str,
        lease: str,
        opts: pulumi.ResourceOptions | None,
        in_ns: pulumi.ResourceOptions,
    ) -> k8s.core.v1.ServiceAccount:
        """A role's ServiceAccount and ClusterRole(+Binding); a Role(+Binding) for namespaced grants."""
        sa = f"ironlb-{role}"
        meta = {"namespace": ns, "labels": dict(MANAGED_BY)}
        account = k8s.core.v1.ServiceAccount(
            f"{name}-{role}-serviceaccount", metadata={"name": sa, **meta}, opts=in_ns
        )
        subject = [{"kind": "ServiceAccount", "name": sa, "namespace": ns}]
        cluster_name = f"{sa}-{ns}"
        k8s.rbac.v1.ClusterRole(
            f"{name}-{role}-clusterrole",
            metadata={"name": cluster_name, "labels": dict(MANAGED_BY)},
            rules=rbac.cluster_rules(role, lease),
            opts=child_opts(self, opts),
        )
        k8s.rbac.v1.ClusterRoleBinding(
            f"{name}-{role}-clusterrolebinding",
            metadata={"name": cluster_name, "labels": dict(MANAGED_BY)},
            role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_name},
            subjects=subject,
            opts=child_opts(self, opts),
        )
        rules = rbac.namespace_rules(role, lease)
        if rules:
            k8s.rbac.v1.Role(f"{name}-{role}-role", metadata={"name": sa, **meta}, rules=rules, opts=in_ns)
            k8s.rbac.v1.RoleBinding(
                f"{name}-{role}-rolebinding",
                metadata={"name": sa, **meta},
                role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": sa},
                subjects=subject,
                opts=in_ns,
            )
        return account

    def _workloads(
        self,
        name: str,
        args: NodeAgentArgs,
        config: agentconfig.AgentConfig,
        settings: str,
        meta: dict[str, Any],
        opts: pulumi.ResourceOptions | None,
        after: list[pulumi.Resource],
    ) -> tuple[k8s.apps.v1.DaemonSet, k8s.apps.v1.Deployment]:
        tolerations = [dict(t) for t in args.get("tolerations", DEFAULT_TOLERATIONS)]
        speaker = workloads.speaker_spec(
            image=image_of(args),
            namespace=meta["namespace"],
            service_account=SPEAKER,
            config_map=CONFIG_MAP,
            key_secret=KEY_SECRET,
            config_hash=config_hash(
                settings, f"membership-key-version={args.get('membership_key_version', '1')}"
            ),
            ports=(config.metrics.port, config.health.port, config.membership.port),
            next_key=args.get("membership_next_key") is not None,
            password_secrets=args.get("bgp_password_secrets", []),
            resources={
                "requests": {
                    "cpu": args.get("cpu_request", "50m"),
                    "memory": args.get("memory_request", "64Mi"),
                },
                "limits": {"cpu": args.get("cpu_limit", "500m"), "memory": args.get("memory_limit", "256Mi")},
            },
            tolerations=tolerations,
            node_selector=dict(args.get("node_selector", {})),
        )
        controller = workloads.controller_spec(
            image=image_of(args),
            namespace=meta["namespace"],
            service_account=CONTROLLER,
            config_map=CONFIG_MAP,
            config_hash=config_hash(settings),
            ports=(config.metrics.port, config.health.port),
            replicas=args.get("controller_replicas", 2),
            resources={
                "requests": {"cpu": "20m", "memory": "64Mi"},
                "limits": {"cpu": "500m", "memory": "256Mi"},
            },
            tolerations=tolerations,
        )
        for spec in (speaker, controller):
            spec["template"]["metadata"]["labels"].update(MANAGED_BY)
        accounts = list(self.service_accounts.values())
        daemon_set = k8s.apps.v1.DaemonSet(
            f"{name}-daemonset",
            metadata={"name": SPEAKER, **meta},
            spec=speaker,
            opts=child_opts(
                self,
                opts,
                depends_on=[*after, *accounts, self.config_map, self.membership_secret, *self.crds],
            ),
        )
        deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata={"name": CONTROLLER, **meta},
            spec=controller,
            opts=child_opts(self, opts, depends_on=[*after, *accounts, self.config_map, *self.crds]),
        )
        return daemon_set, deployment

    def _monitoring(
        self,
        name: str,
        args: NodeAgentArgs,
        config: agentconfig.AgentConfig,
        meta: dict[str, Any],
        opts: pulumi.ResourceOptions | None,
        after: list[pulumi.Resource],
    ) -> None:
        """A headless metrics Service per role and the ServiceMonitor scraping them."""
        ns = meta["namespace"]
        in_ns = child_opts(self, opts, depends_on=after)
        for role in (rbac.SPEAKER, rbac.CONTROLLER):
            body = monitoring.metrics_service(role, ns, workloads.pod_labels(role, ns), config.metrics.port)
            body["metadata"]["labels"].update(MANAGED_BY)
            k8s.core.v1.Service(f"{name}-{role}-metrics-service", **body, opts=in_ns)
        monitor = monitoring.service_monitor(
            ns, (rbac.SPEAKER, rbac.CONTROLLER), {**MANAGED_BY, **args.get("service_monitor_labels", {})}
        )
        k8s.apiextensions.CustomResource(
            f"{name}-servicemonitor",
            api_version=monitor["apiVersion"],
            kind=monitor["kind"],
            metadata=monitor["metadata"],
            spec=monitor["spec"],
            opts=in_ns,
        )


def _crd_list() -> list[dict[str, Any]]:
    from ironlb.crds import crd_manifests

    return crd_manifests()
