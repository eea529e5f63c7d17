"""The two workloads of an IronLB install, as pure pod specs (the NodeAgent component registers them).

- **Speaker** DaemonSet (``ironlb-agent``, every matching node): hostNetwork, capabilities
  dropped to NET_RAW and NET_ADMIN (raw ARP/NDP sockets, netlink), read-only root, the
  settings file, the membership key(s) and the BGP password Secrets as files, and two
  memory-backed scratch directories (``/run/ironlb``, the run dir where the BGP speaker's
  configuration with passwords goes, and ``/tmp``), so nothing secret touches a disk.
- **Controller** Deployment (``ironlb-controller``, two replicas, one elected by a Lease):
  no host network, no capability at all, a non-root user, read-only root, seccomp
  RuntimeDefault, only the settings file mounted; the replicas prefer different nodes.

Both probe the real health endpoints (``ironlb.agent.endpoints``) on their ``health`` port at the
pod IP; the Prometheus port is named ``metrics``.  The pod templates carry a hash of the
settings (and, for the speaker, the membership key's version) so a change rolls them.

File layout (docs/pulumi.md, "Paths agreed with the agent"):

- ``/etc/ironlb/config/agent.yaml`` -- the settings (ConfigMap), ``$IRONLB_CONFIG``;
- ``/etc/ironlb/membership/key`` (and ``next-key`` during a rotation) -- Secret, mode 0400;
- ``/etc/ironlb/secrets/<secret-name>/<key>`` -- BGP passwords (one projected volume).
"""

from __future__ import annotations

from typing import Any

CONFIG_DIR = "/etc/ironlb/config"
CONFIG_FILE = f"{CONFIG_DIR}/agent.yaml"
MEMBERSHIP_DIR = "/etc/ironlb/membership"
MEMBERSHIP_KEY_FILE = f"{MEMBERSHIP_DIR}/key"
MEMBERSHIP_NEXT_KEY_FILE = f"{MEMBERSHIP_DIR}/next-key"
SECRETS_DIR = "/etc/ironlb/secrets"
RUN_DIR = "/run/ironlb"
SPEAKER_COMMAND = ["ironlb-agent"]
CONTROLLER_COMMAND = ["ironlb-controller"]
NONROOT_UID = 65532  # the image's `ironlb` user

_FIELD = {
    "NODE_NAME": "spec.nodeName",
    "POD_NAME": "metadata.name",
    "POD_NAMESPACE": "metadata.namespace",
    "POD_IP": "status.podIP",
}


def _env(*names: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"name": "IRONLB_CONFIG", "value": CONFIG_FILE}]
    out += [{"name": n, "valueFrom": {"fieldRef": {"fieldPath": _FIELD[n]}}} for n in names]
    return out


def _probes(*, initial: int) -> dict[str, Any]:
    return {
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": "health"},
            "initialDelaySeconds": initial,
            "periodSeconds": 10,
            "timeoutSeconds": 3,
            "failureThreshold": 3,
        },
        "readinessProbe": {
            "httpGet": {"path": "/readyz", "port": "health"},
            "periodSeconds": 5,
            "timeoutSeconds": 3,
            "failureThreshold": 2,
        },
    }


def _ports(metrics: int, health: int) -> list[dict[str, Any]]:
    return [
        *([{"name": "metrics", "containerPort": metrics, "protocol": "TCP"}] if metrics else []),
        {"name": "health", "containerPort": health, "protocol": "TCP"},
    ]


def pod_labels(role: str, namespace: str) -> dict[str, str]:
    """The labels a role's pods carry and its selector matches (the metrics Service's too)."""
    return {
        "app.kubernetes.io/name": f"ironlb-{role}",
        "app.kubernetes.io/instance": namespace,
        "app.kubernetes.io/component": role,
    }


def speaker_spec(
    *,
    image: str,
    namespace: str,
    service_account: str,
    config_map: str,
    key_secret: str,
    config_hash: str,
    ports: tuple[int, int, int],
    next_key: bool = False,
    password_secrets: list[str] | tuple[str, ...] = (),
    resources: dict[str, Any] | None = None,
    tolerations: list[dict[str, Any]] | None = None,
    node_selector: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The speaker DaemonSet's spec. ``ports``: (metrics, health, membership)."""
    metrics, health, membership = ports
    labels = pod_labels("speaker", namespace)
    refs = sorted({(r.partition("/")[0], r.partition("/")[2] or "password") for r in password_secrets})
    items = [{"key": "key", "path": "key"}]
    if next_key:
        items.append({"key": "next-key", "path": "next-key"})
    volumes: list[dict[str, Any]] = [
        {"name": "config", "configMap": {"name": config_map}},
        {"name": "membership", "secret": {"secretName": key_secret, "defaultMode": 0o400, "items": items}},
        {"name": "run", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}},
        {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}},
    ]
    mounts: list[dict[str, Any]] = [
        {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
        {"name": "membership", "mountPath": MEMBERSHIP_DIR, "readOnly": True},
        {"name": "run", "mountPath": RUN_DIR},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    if refs:  # a projected volume needs at least one source
        sources = [
            {"secret": {"name": name, "optional": True, "items": [{"key": key, "path": f"{name}/{key}"}]}}
            for name, key in refs
        ]
        volumes.insert(2, {"name": "bgp-secrets", "projected": {"sources": sources, "defaultMode": 0o400}})
        mounts.insert(2, {"name": "bgp-secrets", "mountPath": SECRETS_DIR, "readOnly": True})
    container = {
        "name": "speaker",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": list(SPEAKER_COMMAND),
        "env": _env("NODE_NAME", "POD_IP"),
        "ports": [
            *_ports(metrics, health),
            {"name": "membership", "containerPort": membership, "protocol": "UDP"},
        ],
        **_probes(initial=10),
        "resources": resources or {},
        "securityContext": {
            # uid 0 explicitly: the image's default user is 65532, and only root gets the two
            # capabilities effective (no ambient capabilities in Kubernetes; ADR 0052)
            "runAsUser": 0,
            "runAsGroup": 0,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"], "add": ["NET_RAW", "NET_ADMIN"]},
        },
        "volumeMounts": mounts,
    }
    pod: dict[str, Any] = {
        "serviceAccountName": service_account,
        "hostNetwork": True,
        "dnsPolicy": "ClusterFirstWithHostNet",
        "terminationGracePeriodSeconds": 15,
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "tolerations": [dict(t) for t in tolerations or []],
        "nodeSelector": {"kubernetes.io/os": "linux", **(node_selector or {})},
        "containers": [container],
        "volumes": volumes,
    }
    return {
        "selector": {"matchLabels": labels},
        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
        "template": {
            "metadata": {"labels": dict(labels), "annotations": {"ironlb.io/config-hash": config_hash}},
            "spec": pod,
        },
    }


def controller_spec(
    *,
    image: str,
    namespace: str,
    service_account: str,
    config_map: str,
    config_hash: str,
    ports: tuple[int, int],
    replicas: int = 2,
    resources: dict[str, Any] | None = None,
    tolerations: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The controller Deployment's spec. ``ports``: (metrics, health)."""
    metrics, health = ports
    labels = pod_labels("controller", namespace)
    container = {
        "name": "controller",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": list(CONTROLLER_COMMAND),
        "env": _env("POD_NAME", "POD_IP"),
        "ports": _ports(metrics, health),
        **_probes(initial=5),
        "resources": resources or {},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "config", "mountPath": CONFIG_DIR, "readOnly": True}],
    }
    spread = {
        "weight": 100,
        "podAffinityTerm": {
            "topologyKey": "kubernetes.io/hostname",
            "labelSelector": {"matchLabels": labels},
        },
    }
    pod: dict[str, Any] = {
        "serviceAccountName": service_account,
        "terminationGracePeriodSeconds": 10,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": NONROOT_UID,
            "runAsGroup": NONROOT_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [spread]}},
        "tolerations": [dict(t) for t in tolerations or []],
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "containers": [container],
        "volumes": [{"name": "config", "configMap": {"name": config_map}}],
    }
    return {
        "replicas": replicas,
        "selector": {"matchLabels": labels},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
        "template": {
            "metadata": {"labels": dict(labels), "annotations": {"ironlb.io/config-hash": config_hash}},
            "spec": pod,
        },
    }
