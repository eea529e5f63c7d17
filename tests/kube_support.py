"""Shared helpers for the kmock-based Kubernetes tests (tests/test_kube_*.py).

kmock 0.8 gaps worked around (the workarounds live in ``lab.kmock_server``, which the
namespace lab's API server also uses), honestly and visibly:

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
import time
from collections.abc import Callable
from typing import Any

import kmock as km

from agent.kube.client import Kind, KubeClient
from lab.kmock_server import declare_all as declare_all  # re-exported for the kube tests
from lab.kmock_server import install_put_with_cas as install_put_with_cas
from lab.kmock_server import res

SVC = km.resource("", "v1", "services")


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
