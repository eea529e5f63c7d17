"""Shared helpers for the kmock-based Kubernetes tests (tests/test_kube_*.py).

kmock 0.8 gaps this module works around, honestly and visibly:

- **No PUT** (replace): :func:`install_put_with_cas` adds PUT for chosen resources, with a
  resourceVersion counter so a stale PUT gets 409 -- the compare-and-swap the Lease
  election relies on.  Only objects written through this PUT carry a resourceVersion.
- **The namespace comes from the body**, so every body we send carries metadata.namespace
  (the client wrapper does it for patches).
- **Watch replays every object as ADDED** and ignores resourceVersion: informers must
  swallow unchanged objects (they do; tests count events).
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import time
from collections.abc import Callable
from typing import Any

import kmock as km

from agent.kube.client import AGENT_KINDS, LEASES, Kind, KubeClient

SVC = km.resource("", "v1", "services")


def res(kind: Kind) -> km.resource:
    return km.resource(kind.group, kind.version, kind.plural)


def declare_all(mock: Any) -> None:
    """Make every kind the agent watches listable (empty) in kmock."""
    for kind in [*AGENT_KINDS.values(), LEASES]:
        group = f"{kind.group}/" if kind.group else ""
        mock.resources[f"{group}{kind.version}/{kind.plural}"] = {"namespaced": kind.namespaced}
    mock.resources["v1/events"] = {"namespaced": True}


def _status(code: int, reason: str, message: str) -> Any:
    body = {
        "apiVersion": "v1",
        "kind": "Status",
        "status": "Failure",
        "code": code,
        "reason": reason,
        "message": message,
        "metadata": {},
    }
    return km.Response(status=code, payload=body)  # type: ignore[attr-defined]  # public, not in __all__


def install_put_with_cas(mock: Any, kind: Kind = LEASES) -> None:
    counter = itertools.count(1)
    resource = res(kind)

    def put(request: km.Request) -> Any:
        key = (resource, request.namespace, request.name)
        if key not in mock.objects or mock.objects[key].deleted:
            return _status(404, "NotFound", f"{kind.plural} {request.name} not found")
        current = mock.objects[key].raw
        sent = (request.data.get("metadata") or {}).get("resourceVersion")
        have = (current.get("metadata") or {}).get("resourceVersion")
        if sent != have:
            return _status(409, "Conflict", f"resourceVersion {sent} is stale (now {have})")
        new = copy.deepcopy(request.data)
        new.setdefault("metadata", {})["resourceVersion"] = str(next(counter))
        mock.objects[key] = new
        return new

    mock["put", resource] << put


def client_for(mock: Any, timeout: float = 3.0) -> KubeClient:
    return KubeClient.connect(server=str(mock.servers[0].url), timeout=timeout)


def service(
    name: str,
    namespace: str = "default",
    *,
    annotations: dict[str, str] | None = None,
    cls: str | None = "ironlb.io/ironlb",
    type_: str = "LoadBalancer",
    **spec: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {"type": type_, "ports": [{"port": 80, "protocol": "TCP"}], **spec}
    if cls is not None:
        body["loadBalancerClass"] = cls
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations or {}},
        "spec": body,
    }


def pool(name: str, *addresses: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "ironlb.io/v1alpha1",
        "kind": "IPPool",
        "metadata": {"name": name},
        "spec": {"addresses": list(addresses), **spec},
    }


def tenant(name: str, namespaces: list[str], pools: list[str], quota: int | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"namespaces": namespaces, "pools": pools}
    if quota is not None:
        spec["maxAddresses"] = quota
    return {"apiVersion": "ironlb.io/v1alpha1", "kind": "Tenant", "metadata": {"name": name}, "spec": spec}


def put_object(mock: Any, kind: Kind, body: dict[str, Any]) -> None:
    meta = body["metadata"]
    mock.objects[res(kind), meta.get("namespace"), meta["name"]] = body


async def eventually(check: Callable[[], Any], timeout: float = 5.0, what: str = "condition") -> Any:
    """Poll ``check`` until it returns something truthy (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value {value!r}")
        await asyncio.sleep(0.02)
