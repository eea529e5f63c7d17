"""Prometheus scraping for an install: the metrics Services and the ServiceMonitor (pure specs).

With the NodeAgent's ``service_monitor`` on (off by default, so an install without the
prometheus-operator's CRDs applies cleanly) the component adds, per role, a headless
Service selecting that role's pods with one port named ``metrics``, and one
``monitoring.coreos.com/v1`` ServiceMonitor scraping both Services' ``metrics`` port at
``/metrics``.  The Services are headless: Prometheus scrapes every pod (every node's
speaker) through the Endpoints, never a load-balanced address; for the hostNetwork speaker
the endpoint is the node's address, where ``metrics.address: podIP`` makes it listen.

The job label is the Service name (``ironlb-speaker-metrics``, ``ironlb-controller-metrics``).
``service_monitor_labels`` go on the ServiceMonitor: a kube-prometheus-stack Prometheus
selects ServiceMonitors by its Helm release label (``release: <name>``) unless told otherwise.

No JSON schema for ServiceMonitor ships with kubernetes-validate, so
:data:`SERVICE_MONITOR_SCHEMA` pins the part we write: a subset of the CRD of
prometheus-operator v0.84.1 (``example/prometheus-operator-crd/
monitoring.coreos.com_servicemonitors.yaml``), the fields we set checked with the same
types and patterns, unknown fields refused (the API server would prune them silently).
``ironlb.components.manifest_check`` validates rendered ServiceMonitors with it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

API_VERSION = "monitoring.coreos.com/v1"
KIND = "ServiceMonitor"
NAME = "ironlb"
#: Marks the metrics Services; the ServiceMonitor selects on it (value: the role).
METRICS_LABEL = "ironlb.io/metrics"
SCRAPE_INTERVAL = "30s"
SCRAPE_TIMEOUT = "10s"


_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_LABEL_PREFIX = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")


def label_problems(labels: Any) -> list[tuple[str, str]]:
    """(key, what is wrong) for every label Kubernetes would refuse (a mapping of strings expected)."""
    if not isinstance(labels, Mapping):
        return [("", "must be a mapping of label keys to values, e.g. {release: kube-prometheus-stack}")]
    out = []
    for key, value in labels.items():
        prefix, _, name = str(key).rpartition("/")
        if (
            not isinstance(key, str)
            or not _LABEL_NAME.match(name)
            or (prefix and not _LABEL_PREFIX.match(prefix))
        ):
            out.append((str(key), "is not a label key: [prefix/]name, name 1-63 of A-Z a-z 0-9 - _ ."))
        elif not isinstance(value, str) or not _LABEL_VALUE.match(value):
            out.append((key, f"value {value!r} is not a label value: a string of 0-63 of A-Z a-z 0-9 - _ ."))
    return out


def service_name(role: str) -> str:
    return f"ironlb-{role}-metrics"


def metrics_service(role: str, namespace: str, pod_labels: Mapping[str, str], port: int) -> dict[str, Any]:
    """The headless Service in front of one role's ``metrics`` port (``metadata`` and ``spec``)."""
    return {
        "metadata": {
            "name": service_name(role),
            "namespace": namespace,
            "labels": {**pod_labels, METRICS_LABEL: role},
        },
        "spec": {
            "clusterIP": "None",
            "selector": dict(pod_labels),
            "ports": [{"name": "metrics", "port": port, "targetPort": "metrics", "protocol": "TCP"}],
            "publishNotReadyAddresses": True,  # a pod failing readiness is when its metrics matter
        },
    }


def service_monitor(namespace: str, roles: tuple[str, ...], labels: Mapping[str, str]) -> dict[str, Any]:
    """The ServiceMonitor scraping every role's metrics Service (a whole manifest)."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": NAME, "namespace": namespace, "labels": dict(labels)},
        "spec": {
            "selector": {
                "matchExpressions": [{"key": METRICS_LABEL, "operator": "In", "values": list(roles)}]
            },
            "namespaceSelector": {"matchNames": [namespace]},
            "endpoints": [
                {
                    "port": "metrics",
                    "path": "/metrics",
                    "scheme": "http",
                    "interval": SCRAPE_INTERVAL,
                    "scrapeTimeout": SCRAPE_TIMEOUT,
                }
            ],
        },
    }


_DURATION = r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
_STRINGS = {"type": "array", "items": {"type": "string"}}
_SELECTOR = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
        "matchExpressions": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["key", "operator"],
                "properties": {
                    "key": {"type": "string"},
                    "operator": {"enum": ["In", "NotIn", "Exists", "DoesNotExist"]},
                    "values": _STRINGS,
                },
            },
        },
    },
}
_ENDPOINT = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "port": {"type": "string"},
        "targetPort": {"type": ["integer", "string"]},
        "path": {"type": "string"},
        "scheme": {"enum": ["http", "https"]},
        "interval": {"type": "string", "pattern": _DURATION},
        "scrapeTimeout": {"type": "string", "pattern": _DURATION},
        "honorLabels": {"type": "boolean"},
    },
}
#: The pinned subset of the ServiceMonitor CRD schema (see the module docstring).
SERVICE_MONITOR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": API_VERSION},
        "kind": {"const": KIND},
        "metadata": {
            "type": "object",
            "required": ["name", "namespace"],
            "properties": {
                "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", "maxLength": 253},
                "namespace": {"type": "string"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
        "spec": {
            "type": "object",
            "required": ["endpoints", "selector"],
            "additionalProperties": False,
            "properties": {
                "selector": _SELECTOR,
                "namespaceSelector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"any": {"type": "boolean"}, "matchNames": _STRINGS},
                },
                "endpoints": {"type": "array", "minItems": 1, "items": _ENDPOINT},
                "jobLabel": {"type": "string"},
                "targetLabels": _STRINGS,
                "podTargetLabels": _STRINGS,
            },
        },
    },
}


def problems(manifest: Mapping[str, Any]) -> list[str]:
    """Schema problems of one ServiceMonitor manifest (empty when valid)."""
    import jsonschema

    meta = manifest.get("metadata") or {}
    where = f'{KIND} "{meta.get("namespace")}/{meta.get("name")}"'
    validator = jsonschema.Draft202012Validator(SERVICE_MONITOR_SCHEMA)
    return [
        f"{where}: {'.'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
        for e in sorted(validator.iter_errors(dict(manifest)), key=lambda e: list(map(str, e.path)))
    ]
