"""MetalLB objects -> an IronLB stack config, with a report of what could not be converted.

:func:`convert` takes ``metallb.io`` documents (IPAddressPool, L2Advertisement,
BGPAdvertisement, BGPPeer, Community, BFDProfile) and Services using the ``metallb.io/*``
(or older ``metallb.universe.tf/*``) annotations, and returns the ``ironlb:*`` stack values
(the same camelCase as the CRDs: ``ironlb.components.stackconfig`` reads them) plus one
:class:`Note` per object and field that did not convert as-is, saying why.  Nothing is
dropped silently: every field of every kind is in :data:`FIELDS` (converted) or
:data:`UNSUPPORTED` (reported); a field in neither is reported as unknown.

Secrets never pass through: a BGPPeer's inline ``password`` becomes a ``passwordConfig``
key the user sets with ``pulumi config set --secret``; a ``passwordSecret`` becomes a
``passwordSecretRef`` to a Secret that must exist in IronLB's namespace.

:func:`foreign_issues` is what ``ironlb validate`` uses to report MetalLB objects (and
IronLB-served Services carrying MetalLB's annotations) instead of ignoring them.  Pure.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ironlb.errors import Issue
from ironlb.model import ANN_IPS, LOAD_BALANCER_CLASS
from ironlb.service import is_ours

GROUP = "metallb.io"
OLD_ANNOTATION = "metallb.universe.tf/"
ANNOTATIONS = {"loadBalancerIPs": "ips", "address-pool": "pool", "allow-shared-ip": "sharingKey"}
STACK_KEY = {
    "IPAddressPool": "pools",
    "L2Advertisement": "l2Advertisements",
    "BGPAdvertisement": "bgpAdvertisements",
    "BGPPeer": "peers",
    "Community": "communities",
    "BFDProfile": "bfdProfiles",
}
#: kind -> MetalLB spec field -> IronLB field (None: handled by a converter function)
FIELDS: dict[str, dict[str, str | None]] = {
    "IPAddressPool": {
        "addresses": None,
        "autoAssign": "autoAssign",
        "avoidBuggyIPs": "avoidBuggyIPs",
        "serviceAllocation": None,
    },
    "L2Advertisement": {
        "ipAddressPools": "ipPools",
        "ipAddressPoolSelectors": None,
        "nodeSelectors": None,
        "interfaces": "interfaces",
    },
    "BGPAdvertisement": {
        "ipAddressPools": "ipPools",
        "ipAddressPoolSelectors": None,
        "nodeSelectors": None,
        "aggregationLength": "aggregationLength",
        "aggregationLengthV6": "aggregationLengthV6",
        "localPref": "localPref",
        "communities": "communities",
        "peers": "peers",
    },
    "BGPPeer": {
        "myASN": "myASN",
        "peerASN": "peerASN",
        "peerAddress": "peerAddress",
        "sourceAddress": "sourceAddress",
        "peerPort": "peerPort",
        "holdTime": None,
        "keepaliveTime": None,
        "connectTime": None,
        "routerID": "routerID",
        "nodeSelectors": None,
        "password": None,
        "passwordSecret": None,
        "bfdProfile": "bfdProfile",
        "ebgpMultiHop": "ebgpMultiHop",
        "enableGracefulRestart": "enableGracefulRestart",
    },
    "Community": {"communities": None},
    "BFDProfile": {
        "receiveInterval": "receiveInterval",
        "transmitInterval": "transmitInterval",
        "detectMultiplier": "detectMultiplier",
        "echoMode": None,
        "passiveMode": "passiveMode",
        "minimumTtl": "minimumTtl",
    },
}
#: kind -> field -> why IronLB cannot take it (yet)
UNSUPPORTED: dict[str, dict[str, str]] = {
    "BGPPeer": {
        "vrf": "IronLB's speaker peers from the node's main routing table; VRFs are not supported",
        "dynamicASN": "IronLB needs the router's ASN (peerASN); set it explicitly",
        "interface": "unnumbered BGP (peering over an interface) is not supported; set peerAddress",
        "disableMP": "IronLB opens one session per address family as needed; the field has no equivalent",
    },
    "BFDProfile": {"echoInterval": "the speaker has no BFD echo function"},
}
STATUS_KINDS = {"ServiceL2Status", "ServiceBGPStatus", "BGPSessionStatus", "ConfigurationState"}


@dataclass(frozen=True)
class Note:
    """One field of one object that did not convert as-is."""

    kind: str
    name: str
    field: str
    message: str
    converted: bool = False  # True: converted, with a step the user must take

    def __str__(self) -> str:
        where = f'{self.kind} "{self.name}"' + (f": {self.field}" if self.field else "")
        return f"{where}: {self.message}"


def duration_seconds(text: Any) -> int:
    """A Go duration (``90s``, ``9m0s``, ``1h``, ``1m30.5s``) in whole seconds; ValueError if not one."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return int(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|m|s)", str(text).strip())
    if not parts or "".join(n + u for n, u in parts) != str(text).strip():
        raise ValueError(f'"{text}" is not a duration like 90s or 1m30s')
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    return round(sum(float(n) * scale[u] for n, u in parts))


def is_metallb(doc: Mapping[str, Any]) -> bool:
    return str(doc.get("apiVersion") or "").split("/")[0] == GROUP


def _one_selector(kind: str, name: str, field: str, to: str, value: Any, notes: list[Note]) -> dict[str, Any]:
    """MetalLB's list of selectors (ORed) -> IronLB's single selector."""
    items = [v for v in (value or []) if isinstance(v, Mapping)]
    if not items:
        return {}
    if len(items) > 1:
        notes.append(
            Note(
                kind,
                name,
                field,
                f"{len(items)} selectors (MetalLB ORs them); IronLB takes one "
                f"in {to}; only the first was converted: split the object, one per selector",
            )
        )
    return {to: dict(items[0])}


def _pool(name: str, spec: Mapping[str, Any], notes: list[Note]) -> dict[str, Any]:
    out: dict[str, Any] = {"addresses": [re.sub(r"\s+", "", str(a)) for a in spec.get("addresses") or []]}
    alloc = spec.get("serviceAllocation")
    if isinstance(alloc, Mapping):
        got: dict[str, Any] = {k: alloc[k] for k in ("priority", "namespaces") if k in alloc}
        if alloc.get("namespaces") and alloc.get("namespaceSelectors"):
            notes.append(
                Note(
                    "IPAddressPool",
                    name,
                    "serviceAllocation.namespaceSelectors",
                    "not converted: MetalLB admits a namespace that is listed or selected, IronLB requires "
                    "every condition it is given; add the selected namespaces to namespaces",
                )
            )
        else:
            got |= _one_selector(
                "IPAddressPool",
                name,
                "serviceAllocation.namespaceSelectors",
                "namespaceSelector",
                alloc.get("namespaceSelectors"),
                notes,
            )
        got |= _one_selector(
            "IPAddressPool",
            name,
            "serviceAllocation.serviceSelectors",
            "serviceSelector",
            alloc.get("serviceSelectors"),
            notes,
        )
        out["serviceAllocation"] = got
    return out


def _peer(name: str, spec: Mapping[str, Any], notes: list[Note]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field in ("holdTime", "keepaliveTime", "connectTime"):
        if field in spec:
            try:
                out[field] = duration_seconds(spec[field])
            except ValueError as exc:
                notes.append(Note("BGPPeer", name, field, f"{exc}; not converted"))
    if spec.get("password"):
        key = re.sub(r"[^A-Za-z0-9]", "", name.title()) + "Password"
        out["passwordConfig"] = key[0].lower() + key[1:]
        notes.append(
            Note(
                "BGPPeer",
                name,
                "password",
                "converted to the stack secret "
                f"{out['passwordConfig']}; set it with `pulumi config set --secret "
                f"{out['passwordConfig']} <password>` (the importer never writes a password)",
                True,
            )
        )
    secret = spec.get("passwordSecret")
    if isinstance(secret, Mapping) and secret.get("name"):
        out["passwordSecretRef"] = {"name": str(secret["name"]), "key": "password"}
        notes.append(
            Note(
                "BGPPeer",
                name,
                "passwordSecret",
                f"converted to passwordSecretRef; copy the Secret "
                f'"{secret.get("namespace", "metallb-system")}/{secret["name"]}" (key password) into '
                "IronLB's namespace",
                True,
            )
        )
    out |= _one_selector("BGPPeer", name, "nodeSelectors", "nodeSelector", spec.get("nodeSelectors"), notes)
    return out


def _advertisement(kind: str, name: str, spec: Mapping[str, Any], notes: list[Note]) -> dict[str, Any]:
    out = _one_selector(
        kind, name, "ipAddressPoolSelectors", "ipPoolSelector", spec.get("ipAddressPoolSelectors"), notes
    )
    return out | _one_selector(kind, name, "nodeSelectors", "nodeSelector", spec.get("nodeSelectors"), notes)


def _object(kind: str, name: str, spec: Mapping[str, Any], notes: list[Note]) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    for field, value in spec.items():
        if field in UNSUPPORTED.get(kind, {}):
            notes.append(Note(kind, name, field, f"not converted: {UNSUPPORTED[kind][field]}"))
        elif field not in FIELDS[kind]:
            notes.append(Note(kind, name, field, "unknown MetalLB field; not converted"))
        elif FIELDS[kind][field] is not None:
            entry[str(FIELDS[kind][field])] = value
    if kind == "IPAddressPool":
        entry |= _pool(name, spec, notes)
    elif kind == "BGPPeer":
        entry |= _peer(name, spec, notes)
    elif kind in ("L2Advertisement", "BGPAdvertisement"):
        entry |= _advertisement(kind, name, spec, notes)
    elif kind == "Community":
        entry["communities"] = {
            str(c.get("name")): str(c.get("value")) for c in spec.get("communities") or []
        }
    elif kind == "BFDProfile" and spec.get("echoMode"):
        notes.append(Note(kind, name, "echoMode", "not converted: the speaker has no BFD echo function"))
    return entry


def _annotations(meta: Mapping[str, Any]) -> dict[str, str]:
    """MetalLB's Service annotations, old prefix folded into the new one."""
    out = {}
    for key, value in (meta.get("annotations") or {}).items():
        if key.startswith(OLD_ANNOTATION):
            key = GROUP + "/" + key.removeprefix(OLD_ANNOTATION)
        if key.startswith(GROUP + "/"):
            out[key.removeprefix(GROUP + "/")] = str(value)
    return out


def _service(doc: Mapping[str, Any], notes: list[Note]) -> dict[str, Any] | None:
    spec, meta = doc.get("spec") or {}, doc.get("metadata") or {}
    if spec.get("type") != "LoadBalancer":
        return None
    key = f"{meta.get('namespace', 'default')}/{meta.get('name')}"
    out: dict[str, Any] = {"name": meta.get("name"), "namespace": meta.get("namespace", "default")}
    out["ports"] = [
        {k: p[k] for k in ("port", "protocol", "name", "targetPort") if k in p}
        for p in spec.get("ports") or []
    ]
    for field in ("selector", "externalTrafficPolicy", "ipFamilyPolicy", "ipFamilies"):
        if spec.get(field):
            out[field] = spec[field]
    if meta.get("labels"):
        out["labels"] = dict(meta["labels"])
    kept = {
        k: v
        for k, v in (meta.get("annotations") or {}).items()
        if not k.startswith((GROUP + "/", OLD_ANNOTATION, "kubectl.kubernetes.io/"))
    }
    if kept:
        out["annotations"] = kept
    for ann, value in sorted(_annotations(meta).items()):
        if ann in ANNOTATIONS:
            out[ANNOTATIONS[ann]] = (
                [v.strip() for v in value.split(",") if v.strip()] if ann == "loadBalancerIPs" else value
            )
        elif ann != "ip-allocated-from-pool":  # output only: IronLB records its own
            notes.append(
                Note("Service", key, f"metadata.annotations[{GROUP}/{ann}]", "unknown MetalLB annotation")
            )
    if spec.get("loadBalancerIP") and "ips" not in out:
        out["ips"] = [str(spec["loadBalancerIP"])]
        notes.append(
            Note("Service", key, "spec.loadBalancerIP", "deprecated by Kubernetes; converted to ips", True)
        )
    if spec.get("loadBalancerClass"):
        notes.append(
            Note(
                "Service",
                key,
                "spec.loadBalancerClass",
                f'"{spec["loadBalancerClass"]}" replaced by {LOAD_BALANCER_CLASS} (the component sets it)',
                True,
            )
        )
    return out


def convert(docs: Iterable[Mapping[str, Any] | None]) -> tuple[dict[str, list[dict[str, Any]]], list[Note]]:
    """(stack values by ``ironlb:`` key without the prefix, notes) for MetalLB documents and Services."""
    values: dict[str, list[dict[str, Any]]] = {}
    notes: list[Note] = []
    for doc in docs:
        if not isinstance(doc, Mapping):
            continue
        kind = str(doc.get("kind") or "")
        meta = doc.get("metadata") or {}
        name = str(meta.get("name") or "?")
        if kind == "Service" and doc.get("apiVersion") == "v1":
            service = _service(doc, notes)
            if service is not None:
                values.setdefault("services", []).append(service)
            continue
        if not is_metallb(doc):
            continue
        if kind in STATUS_KINDS:
            notes.append(
                Note(kind, name, "", "status written by MetalLB; IronLB keeps its own (ironlb status)")
            )
            continue
        if kind not in FIELDS:
            notes.append(Note(kind, name, "kind", "unknown MetalLB kind; not converted"))
            continue
        entry = {"name": name, **_object(kind, name, doc.get("spec") or {}, notes)}
        if meta.get("labels") and kind == "IPAddressPool":
            entry["labels"] = dict(meta["labels"])
        values.setdefault(STACK_KEY[kind], []).append(entry)
    for key in values:
        values[key].sort(key=lambda e: (str(e.get("namespace", "")), str(e["name"])))
    return values, notes


def foreign_issues(docs: Iterable[Any]) -> tuple[list[Issue], list[Any]]:
    """(errors for MetalLB objects and IronLB-served Services with MetalLB annotations, the other docs)."""
    issues: list[Issue] = []
    kept: list[Any] = []
    for doc in docs:
        if isinstance(doc, Mapping) and is_metallb(doc):
            name = str((doc.get("metadata") or {}).get("name") or "?")
            issues.append(
                Issue(
                    str(doc.get("kind") or "document"),
                    name,
                    "apiVersion",
                    doc.get("apiVersion"),
                    "is a MetalLB object, which IronLB does not read; convert it with "
                    "`ironlb import metallb FILE...`",
                )
            )
            continue
        kept.append(doc)
        if isinstance(doc, Mapping) and doc.get("kind") == "Service":
            spec, meta = doc.get("spec") or {}, doc.get("metadata") or {}
            ours = is_ours(spec.get("loadBalancerClass"), claim_classless=False)
            for ann in sorted(_annotations(meta)) if ours else ():
                key = f"{meta.get('namespace', 'default')}/{meta.get('name')}"
                issues.append(
                    Issue(
                        "Service",
                        key,
                        f"metadata.annotations[{GROUP}/{ann}]",
                        None,
                        "is MetalLB's annotation and IronLB ignores it (the Service would get "
                        f"another address); use {ANN_IPS} and the other ironlb.io annotations",
                    )
                )
    return issues, kept
