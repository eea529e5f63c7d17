"""Writes to the API server: Service annotations/status/conditions, Events, CR status.

Every write is a JSON merge patch of just the fields IronLB owns, so other controllers'
fields survive (Service conditions of other types are carried over, not replaced).
Events are de-duplicated: the same (object, reason, message) is sent once per controller
term (per speaker process), so a reconcile loop never floods the API server.  Events
about cluster-scoped objects (pools, peers, NodeStates) go to the ``default`` namespace,
as the API server expects.

What IronLB records on a Service:

- ``status.loadBalancer.ingress``: the addresses, in family-preference order -- the record
  speakers announce from and a restarted controller rebuilds from (status is writable by
  the controller alone; both re-check it, docs/decisions/0062-trust-boundary.md);
- ``metadata.annotations["ironlb.io/allocated-ips"]`` ("ip[,ip]") and
  ``["ironlb.io/ip-allocated-from-pool"]`` (the pool, or one pool per address): the same,
  for people and tools; output only, never read back (tenants can write annotations);
- ``metadata.annotations["ironlb.io/announcements"]``: JSON rows ``{ip, mode, nodes, reason}``
  -- who announces each address and why (``ironlb status`` prints it), and conditions
  ``ironlb.io/AddressAllocated``, ``ironlb.io/Announced`` and ``ironlb.io/RecordTrusted``
  (False while the controller found a record it did not write) in ``status.conditions``.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from ironlb.agent.kube.client import EVENTS, SERVICES, Kind, KubeClient
from ironlb.agent.kube.lease import micro_time
from ironlb.model import ANN_ALLOCATED_IPS, ANN_ALLOCATED_POOL
from ironlb.service import Assignment

ANN_ANNOUNCEMENTS = "ironlb.io/announcements"
COND_ALLOCATED = "ironlb.io/AddressAllocated"
COND_ANNOUNCED = "ironlb.io/Announced"
COND_TRUSTED = "ironlb.io/RecordTrusted"
COMPONENT = "ironlb-controller"


def now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def allocation_annotations(assignment: Assignment | None) -> dict[str, str | None]:
    """The annotation values recording ``assignment`` (None values delete the keys)."""
    if assignment is None or not assignment.ips:
        return {ANN_ALLOCATED_IPS: None, ANN_ALLOCATED_POOL: None}
    pools = [a.pool for a in assignment.ips]
    pool_text = pools[0] if len(set(pools)) == 1 else ",".join(pools)
    return {ANN_ALLOCATED_IPS: ",".join(assignment.addresses), ANN_ALLOCATED_POOL: pool_text}


def condition(type_: str, ok: bool, reason: str, message: str, generation: Any = None) -> dict[str, Any]:
    cond: dict[str, Any] = {
        "type": type_,
        "status": "True" if ok else "False",
        "reason": reason,
        "message": message[:32000],
        "lastTransitionTime": now_text(),
    }
    if generation is not None:
        cond["observedGeneration"] = generation
    return cond


def merge_conditions(
    existing: Sequence[Mapping[str, Any]], new: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Replace conditions of the same type; keep lastTransitionTime when the status did not change."""
    out = [dict(c) for c in existing if c.get("type") not in {n["type"] for n in new}]
    old = {c.get("type"): c for c in existing}
    for cond in new:
        merged = dict(cond)
        prev = old.get(cond["type"])
        if prev is not None and prev.get("status") == cond["status"] and prev.get("lastTransitionTime"):
            merged["lastTransitionTime"] = prev["lastTransitionTime"]
        out.append(merged)
    return out


def same_conditions(existing: Sequence[Mapping[str, Any]], new: Sequence[Mapping[str, Any]]) -> bool:
    """True when every new condition is already present (ignoring timestamps)."""
    have = {c.get("type"): (c.get("status"), c.get("reason"), c.get("message")) for c in existing}
    return all(have.get(c["type"]) == (c["status"], c["reason"], c["message"]) for c in new)


class Writer:
    """The controller's hands (and the speaker's, for Events): every write goes through here."""

    def __init__(self, client: KubeClient, identity: str, component: str = COMPONENT):
        self.client = client
        self.identity = identity
        self.component = component
        self._sent: dict[tuple[str, str, str, str], str] = {}
        self.writes = 0
        #: "ns/name" -> the ingress addresses this controller term last wrote (so its own write
        #: arriving in the cache mid-pass is never mistaken for a foreign one)
        self.ingress_written: dict[str, tuple[str, ...]] = {}

    def _meta(self, doc: Mapping[str, Any]) -> tuple[str, str | None]:
        meta = doc.get("metadata") or {}
        return str(meta.get("name")), meta.get("namespace")

    async def service_annotations(self, doc: Mapping[str, Any], values: Mapping[str, str | None]) -> None:
        name, namespace = self._meta(doc)
        self.writes += 1
        await self.client.patch(SERVICES, name, namespace, {"metadata": {"annotations": dict(values)}})

    async def service_status(
        self, doc: Mapping[str, Any], ips: Sequence[str] | None, conditions: Sequence[Mapping[str, Any]] = ()
    ) -> None:
        """Set ``status.loadBalancer.ingress`` (None: leave it) and merge our conditions."""
        name, namespace = self._meta(doc)
        status: dict[str, Any] = {}
        if ips is not None:
            status["loadBalancer"] = {"ingress": [{"ip": ip, "ipMode": "VIP"} for ip in ips]}
            self.ingress_written[f"{namespace}/{name}"] = tuple(ips)
        if conditions:
            existing = (doc.get("status") or {}).get("conditions") or []
            status["conditions"] = merge_conditions(existing, conditions)
        if status:
            self.writes += 1
            await self.client.patch(SERVICES, name, namespace, {"status": status}, status=True)

    async def object_status(self, kind: Kind, name: str, status: Mapping[str, Any]) -> None:
        self.writes += 1
        await self.client.patch(kind, name, None, {"status": dict(status)}, status=True)

    async def event(
        self, kind: Kind, doc: Mapping[str, Any], reason: str, message: str, *, warning: bool = False
    ) -> bool:
        """Record an Event on the object (once per distinct message). True when sent."""
        name, namespace = self._meta(doc)
        key = (kind.kind, namespace or "", name, reason)
        if self._sent.get(key) == message:
            return False
        ev_ns = namespace or "default"  # events about cluster-scoped objects live in "default"
        stamp = now_text()
        body = {
            "metadata": {"name": f"{name}.{secrets.token_hex(8)}", "namespace": ev_ns},
            "involvedObject": {
                "apiVersion": kind.api_version,
                "kind": kind.kind,
                "name": name,
                **({"namespace": namespace} if namespace else {}),
                **({"uid": doc["metadata"]["uid"]} if (doc.get("metadata") or {}).get("uid") else {}),
            },
            "reason": reason,
            "message": message[:1024],
            "type": "Warning" if warning else "Normal",
            "source": {"component": self.component},
            "reportingComponent": f"ironlb.io/{self.component.removeprefix('ironlb-')}",
            "reportingInstance": self.identity,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "eventTime": micro_time(datetime.now(UTC)),
            "action": reason,
            "count": 1,
        }
        self.writes += 1
        await self.client.create(EVENTS, body)
        self._sent[key] = message
        return True
