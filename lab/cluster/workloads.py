"""Pods for the rendered workloads: what the DaemonSet and Deployment controllers and the
scheduler would create (pure: manifests and nodes in, Pod manifests out).

- **DaemonSet**: one Pod per node whose labels match the template's ``nodeSelector`` and
  required node affinity (``matchExpressions`` on labels), and whose taints the Pod
  tolerates (``NoSchedule``/``NoExecute``), as the DaemonSet controller does.
- **Deployment**: ``spec.replicas`` (default 1) Pods, spread: each replica goes to the
  eligible node with the fewest Pods of this Deployment, ties broken by node name, which is
  what the default scheduler's spreading gives on empty, equal nodes.  Pod (anti-)affinity
  and topology spread constraints are not evaluated (the spread rule above is applied
  instead); resources are not counted.

Names follow the controllers' shapes: ``<daemonset>-<5 chars>`` and
``<deployment>-<10 chars>-<5 chars>``, derived from a hash so a run is reproducible.  Each
Pod carries the template's labels and annotations, ``pod-template-hash`` or
``controller-revision-hash``, an ownerReference-style ``ironlb.lab/owner`` annotation,
``spec.nodeName`` (bound, as after scheduling) and the template's spec.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Manifest = Mapping[str, Any]
WORKLOAD_KINDS = ("DaemonSet", "Deployment")
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # the controllers' "safe" alphabet


@dataclass(frozen=True)
class Node:
    name: str
    labels: Mapping[str, str]
    taints: tuple[Mapping[str, str], ...] = ()


@dataclass(frozen=True)
class PodPlacement:
    """One Pod to run: its manifest (bound to a node) and the workload it belongs to."""

    workload_kind: str
    workload: str  # the DaemonSet / Deployment name: the pod's "role"
    node: str
    manifest: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.manifest["metadata"]["name"])

    @property
    def namespace(self) -> str:
        return str(self.manifest["metadata"]["namespace"])


def _safe(text: str, n: int) -> str:
    digest = hashlib.sha256(text.encode()).digest()
    return "".join(_ALPHABET[b % len(_ALPHABET)] for b in digest[:n])


def _expression_matches(expr: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    key, op, values = expr.get("key"), expr.get("operator"), list(expr.get("values") or [])
    present = key in labels
    if op == "Exists":
        return present
    if op == "DoesNotExist":
        return not present
    if op == "In":
        return present and labels[str(key)] in values
    if op == "NotIn":
        return not present or labels[str(key)] not in values
    if op in ("Gt", "Lt") and present and values:
        try:
            have, want = int(labels[str(key)]), int(values[0])
        except ValueError:
            return False
        return have > want if op == "Gt" else have < want
    return False


def _affinity_matches(spec: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    terms = required.get("nodeSelectorTerms") or []
    if not terms:
        return True
    return any(all(_expression_matches(e, labels) for e in t.get("matchExpressions") or []) for t in terms)


def _tolerates(spec: Mapping[str, Any], taint: Mapping[str, str]) -> bool:
    if taint.get("effect") == "PreferNoSchedule":
        return True
    for tol in spec.get("tolerations") or []:
        if tol.get("effect") and tol.get("effect") != taint.get("effect"):
            continue
        if tol.get("operator") == "Exists" and (not tol.get("key") or tol.get("key") == taint.get("key")):
            return True
        if tol.get("key") == taint.get("key") and tol.get("value", "") == taint.get("value", ""):
            return True
    return False


def eligible(spec: Mapping[str, Any], node: Node) -> bool:
    """May a pod with ``spec`` run on ``node`` (nodeSelector, required node affinity, taints)?"""
    selector = spec.get("nodeSelector") or {}
    if any(node.labels.get(str(k)) != str(v) for k, v in selector.items()):
        return False
    return _affinity_matches(spec, node.labels) and all(_tolerates(spec, t) for t in node.taints)


def _pod(
    workload: Manifest, template: Mapping[str, Any], name: str, node: str, hash_label: tuple[str, str]
) -> dict[str, Any]:
    meta = workload.get("metadata") or {}
    tmeta = template.get("metadata") or {}
    spec = copy.deepcopy(dict(template.get("spec") or {}))
    spec["nodeName"] = node
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": meta.get("namespace", "default"),
            "labels": {**(tmeta.get("labels") or {}), hash_label[0]: hash_label[1]},
            "annotations": {
                **(tmeta.get("annotations") or {}),
                "ironlb.lab/owner": f"{workload.get('kind')}/{meta.get('name')}",
            },
        },
        "spec": spec,
    }


def place(manifests: Iterable[Manifest], nodes: Sequence[Node]) -> list[PodPlacement]:
    """Every Pod of every rendered DaemonSet and Deployment, bound to a node."""
    out: list[PodPlacement] = []
    for m in manifests:
        kind = m.get("kind")
        if kind not in WORKLOAD_KINDS:
            continue
        name = str(m["metadata"]["name"])
        template = (m.get("spec") or {}).get("template") or {}
        tspec = template.get("spec") or {}
        revision = _safe(json.dumps(template, sort_keys=True, default=str), 10)
        fits = [n for n in sorted(nodes, key=lambda n: n.name) if eligible(tspec, n)]
        if kind == "DaemonSet":
            for node in fits:
                pod = _pod(
                    m,
                    template,
                    f"{name}-{_safe(name + node.name, 5)}",
                    node.name,
                    ("controller-revision-hash", revision),
                )
                out.append(PodPlacement("DaemonSet", name, node.name, pod))
            continue
        replicas = int((m.get("spec") or {}).get("replicas", 1))
        if replicas and not fits:
            raise ValueError(f"Deployment {name}: no lab node fits its nodeSelector/affinity/tolerations")
        count: dict[str, int] = {n.name: 0 for n in fits}
        for i in range(replicas):
            chosen = min(fits, key=lambda n: (count[n.name], n.name)).name
            count[chosen] += 1
            pod_name = f"{name}-{revision}-{_safe(f'{name}{i}', 5)}"
            out.append(
                PodPlacement(
                    "Deployment",
                    name,
                    chosen,
                    _pod(m, template, pod_name, chosen, ("pod-template-hash", revision)),
                )
            )
    return out
