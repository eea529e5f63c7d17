"""The Kubernetes source: informers -> the same ClusterView the planner consumes (kmock).

Not covered against a real API server: EndpointSlice churn at scale, Node status
heartbeats (every ~10 s per node, all swallowed as equal views only if unchanged).
"""

from __future__ import annotations

import asyncio
from typing import Any

from agent.kube.client import ENDPOINT_SLICES, NODES, SERVICES
from agent.kube.lease import LeaseSettings
from agent.kube.runtime import KubeRuntime, KubeSettings
from agent.sources.kube import KubeSource
from ironlb.model import ANN_ALLOCATED_IPS, ANN_ALLOCATED_POOL
from tests.kube_support import (
    client_for,
    declare_all,
    install_put_with_cas,
    pool,
    put_object,
    res,
    service,
)
from tests.test_kube_controller import POOLS, ingress

QUICK = LeaseSettings(namespace="ironlb-system", duration=1.0, renew_deadline=0.6, retry_period=0.1)


def node(name: str, ip: str, ready: str = "True") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"zone": "a"}},
        "status": {
            "conditions": [{"type": "Ready", "status": ready}],
            "addresses": [{"type": "InternalIP", "address": ip}],
        },
    }


def slice_(svc: str, *nodes: str) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{svc}-x",
            "namespace": "default",
            "labels": {"kubernetes.io/service-name": svc},
        },
        "endpoints": [{"nodeName": n, "conditions": {"ready": True}} for n in nodes],
    }


def source_for(kmock: Any, controller: bool) -> KubeSource:
    settings = KubeSettings(controller=controller, lease=QUICK, watch_namespaces=False)
    return KubeSource(KubeRuntime(client_for(kmock), "n1", settings))


async def test_views_carry_assignments_endpoints_and_nodes_and_follow_changes(kmock: Any) -> None:
    declare_all(kmock)
    put_object(kmock, POOLS, pool("lan", "10.0.0.0/29"))
    put_object(
        kmock,
        SERVICES,
        service("web", annotations={ANN_ALLOCATED_IPS: "10.0.0.3", ANN_ALLOCATED_POOL: "lan"}),
    )
    put_object(kmock, NODES, node("n1", "192.168.1.1"))
    put_object(kmock, NODES, node("n2", "192.168.1.2", ready="False"))
    put_object(kmock, ENDPOINT_SLICES, slice_("web", "n2"))
    src = source_for(kmock, controller=False)
    views = src.views()
    try:
        view = await asyncio.wait_for(anext(views), 10)
        assert view.assignments["default/web"].addresses == ("10.0.0.3",)
        assert view.assignments["default/web"].ips[0].pool == "lan"
        assert view.endpoints["default/web"] == frozenset({"n2"})
        assert (view.nodes["n1"].addresses, view.nodes["n2"].ready) == (("192.168.1.1",), False)
        assert list(view.config.pools) == ["lan"]
        await src.runtime.client.create(SERVICES, service("db", annotations={ANN_ALLOCATED_IPS: "10.0.0.4"}))
        view = await asyncio.wait_for(anext(views), 10)
        assert view.assignments["default/db"].ips[0].pool == "lan", "pool found from the address"
    finally:
        await views.aclose()
        await src.runtime.client.close()


async def test_the_agent_that_wins_the_lease_allocates_and_its_view_shows_it(kmock: Any) -> None:
    declare_all(kmock)
    install_put_with_cas(kmock)
    put_object(kmock, POOLS, pool("lan", "10.0.0.8/30"))
    put_object(kmock, SERVICES, service("web"))
    src = source_for(kmock, controller=True)
    views = src.views()
    try:
        first = await asyncio.wait_for(anext(views), 10)
        assert "default/web" not in first.assignments
        view = await asyncio.wait_for(anext(views), 10)
        assert view.assignments["default/web"].addresses == ("10.0.0.8",)
        assert ingress(kmock, "web") == ["10.0.0.8"]
        assert src.runtime.elector.is_leader and src.runtime.status()["leader"] is True
    finally:
        await views.aclose()
        await src.runtime.client.close()
    lease = kmock.objects[res_lease(), "ironlb-system", "ironlb-controller"].raw
    assert lease["spec"]["holderIdentity"] == "", "closing the source released the Lease"


def res_lease() -> Any:
    from agent.kube.client import LEASES

    return res(LEASES)


