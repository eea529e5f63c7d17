"""The IPAM controller against kmock: rebuild before assign, status, events, release, tenants.

Real-apiserver behaviour NOT covered here (kmock gaps): the status subresource ignoring
metadata changes (and vice versa) -- kmock merges both into one object; the apiserver
clearing status.loadBalancer itself on a type change; admission and CRD schema
validation (our own validation is what runs); Event aggregation/rate limits; uid and
resourceVersion preconditions on patches.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import kmock as km

from agent.announcements import Ownership, Plan
from agent.kube.client import AGENT_KINDS, CRDS, SERVICES, ApiUnavailable, KubeClient
from agent.kube.controller import Controller, ControllerSettings
from agent.kube.informer import Caches, InformerSettings
from agent.kube.writers import ANN_ANNOUNCEMENTS, Writer
from ironlb.model import ANN_ALLOCATED_IPS, ANN_ALLOCATED_POOL, ANN_POOL
from tests.kube_support import (
    client_for,
    declare_all,
    eventually,
    pool,
    put_object,
    res,
    service,
    tenant,
)

QUICK_RETRY = ControllerSettings(retry_initial=0.1, retry_max=0.3)
FAST = InformerSettings(resync_seconds=30, backoff_initial=0.05, backoff_max=0.2)
POOLS = CRDS["ippools"]
KINDS = {k: v for k, v in AGENT_KINDS.items() if k != "namespaces"}  # kmock cannot parse /api/v1/namespaces
TENANTS = CRDS["tenants"]


@contextlib.asynccontextmanager
async def controller(kmock: Any, client: KubeClient | None = None, plan: Plan | None = None):
    client = client or client_for(kmock)
    caches = Caches(client, KINDS, FAST)
    ctrl = Controller(caches, Writer(client, "node-a"), QUICK_RETRY, plan=lambda: plan)
    tasks = [*caches.tasks(), asyncio.create_task(ctrl.run())]
    try:
        yield ctrl
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        await client.close()


def obj(kmock: Any, kind: Any, name: str, namespace: str | None = None) -> dict[str, Any]:
    key = (res(kind), namespace, name)
    return kmock.objects[key].raw if key in kmock.objects and not kmock.objects[key].deleted else {}


def ips_of(kmock: Any, name: str, namespace: str = "default") -> str | None:
    ann = (obj(kmock, SERVICES, name, namespace).get("metadata") or {}).get("annotations") or {}
    return ann.get(ANN_ALLOCATED_IPS)


def ingress(kmock: Any, name: str, namespace: str = "default") -> list[str]:
    st = obj(kmock, SERVICES, name, namespace).get("status") or {}
    return [i["ip"] for i in (st.get("loadBalancer") or {}).get("ingress") or []]


def events(kmock: Any, name: str | None = None) -> list[tuple[str, str, str]]:
    out = []
    for (resource, _ns, _n), o in kmock.objects.items():
        if resource.plural == "events" and not o.deleted:
            raw = o.raw
            if name is None or raw["involvedObject"]["name"] == name:
                out.append((raw["type"], raw["reason"], raw["message"]))
    return out


def setup(kmock: Any, *objs: dict[str, Any]) -> None:
    declare_all(kmock)
    for body in objs:
        kind = {"Service": SERVICES, "IPPool": POOLS, "Tenant": TENANTS}[body["kind"]]
        put_object(kmock, kind, body)


async def test_a_new_service_gets_an_address_status_annotation_and_event(kmock: Any) -> None:
    setup(kmock, pool("lan", "10.0.0.10-10.0.0.12"), service("web"))
    async with controller(kmock):
        await eventually(lambda: ingress(kmock, "web") == ["10.0.0.10"], what="status written")
        assert ips_of(kmock, "web") == "10.0.0.10"
        ann = obj(kmock, SERVICES, "web", "default")["metadata"]["annotations"]
        assert ann[ANN_ALLOCATED_POOL] == "lan"
        await eventually(
            lambda: ("Normal", "Allocated", "assigned 10.0.0.10 from pool lan") in events(kmock, "web")
        )
        await eventually(lambda: (obj(kmock, POOLS, "lan").get("status") or {}).get("assignedIPv4") == 1)
        st = obj(kmock, POOLS, "lan")["status"]
        assert (st["availableIPv4"], st["assignedIPv6"]) == (2, 0)


async def test_a_restart_rebuilds_recorded_addresses_before_assigning_new_ones(kmock: Any) -> None:
    # "old" holds .11 (recorded only in status, as another controller version might have left it);
    # "pinned" holds .10 by annotation. A fresh controller must not move them; "new" gets .12.
    old = service("old")
    old["status"] = {"loadBalancer": {"ingress": [{"ip": "10.0.0.11"}]}}
    pinned = service("pinned", annotations={ANN_ALLOCATED_IPS: "10.0.0.10", ANN_ALLOCATED_POOL: "lan"})
    setup(kmock, pool("lan", "10.0.0.10-10.0.0.12"), old, pinned, service("new"))
    async with controller(kmock):
        await eventually(lambda: ips_of(kmock, "new"), what="new allocated")
        assert (ips_of(kmock, "pinned"), ips_of(kmock, "old"), ips_of(kmock, "new")) == (
            "10.0.0.10",
            "10.0.0.11",
            "10.0.0.12",
        )
        await eventually(
            lambda: ingress(kmock, "pinned") == ["10.0.0.10"], what="status completed from the record"
        )


async def test_delete_releases_and_a_type_change_clears_what_we_wrote(kmock: Any) -> None:
    setup(kmock, pool("lan", "10.0.0.10-10.0.0.11"), service("a"), service("b"))
    async with controller(kmock) as ctrl:
        await eventually(lambda: ips_of(kmock, "b") == "10.0.0.11", what="both allocated")
        client = ctrl.writer.client
        await client.patch(SERVICES, "b", "default", {"spec": {"type": "ClusterIP"}})
        await eventually(lambda: ips_of(kmock, "b") is None and ingress(kmock, "b") == [], what="b cleared")
        await eventually(
            lambda: ("Normal", "Released", "no longer a LoadBalancer served by IronLB") in events(kmock, "b"),
            what="Released event",
        )
        await client.delete(SERVICES, "a", "default")
        await client.create(SERVICES, service("c"))
        await eventually(lambda: ips_of(kmock, "c") == "10.0.0.10", what="c reuses a's released address")
        assert "default/a" not in ctrl.allocator.assignments  # type: ignore[union-attr]


async def test_a_tenant_naming_another_tenants_pool_is_refused_with_an_event(kmock: Any) -> None:
    setup(
        kmock,
        pool("red-pool", "10.1.0.0/30"),
        pool("blue-pool", "10.2.0.0/30"),
        tenant("red", ["red-ns"], ["red-pool"]),
        tenant("blue", ["blue-ns"], ["blue-pool"], quota=1),
        service("thief", "red-ns", annotations={ANN_POOL: "blue-pool"}),
        service("ok", "blue-ns"),
    )
    async with controller(kmock):
        await eventually(lambda: ips_of(kmock, "ok", "blue-ns"), what="blue's own service allocated")
        assert str(ips_of(kmock, "ok", "blue-ns")).startswith("10.2.0.")
        found = await eventually(
            lambda: [e for e in events(kmock, "thief") if e[0] == "Warning"], what="refusal"
        )
        assert found[0][1] == "Forbidden" and "blue-pool" in found[0][2], found
        assert ips_of(kmock, "thief", "red-ns") is None and ingress(kmock, "thief", "red-ns") == []
        await eventually(lambda: (obj(kmock, TENANTS, "blue").get("status") or {}).get("usedAddresses") == 1)
        conds = {c["type"]: c["status"] for c in obj(kmock, TENANTS, "blue")["status"]["conditions"]}
        assert conds["QuotaReached"] == "True"


async def test_an_invalid_pool_edit_keeps_the_last_good_version_in_force(kmock: Any) -> None:
    setup(kmock, pool("lan", "10.0.0.10-10.0.0.11"), service("a"))
    async with controller(kmock) as ctrl:
        await eventually(lambda: ips_of(kmock, "a") == "10.0.0.10")
        await ctrl.writer.client.patch(POOLS, "lan", None, {"spec": {"addresses": ["10.0.0.300"]}})
        warn = await eventually(
            lambda: [e for e in events(kmock, "lan") if e[1] == "InvalidConfig"], what="InvalidConfig event"
        )
        assert "10.0.0.300" in warn[0][2] and "last valid version stays in force" in warn[0][2]
        await eventually(
            lambda: any(
                c["status"] == "False"
                for c in (obj(kmock, POOLS, "lan").get("status") or {}).get("conditions") or []
            )
        )
        await ctrl.writer.client.create(SERVICES, service("b"))
        await eventually(
            lambda: ips_of(kmock, "b") == "10.0.0.11", what="b allocated from the last good pool"
        )
        assert ips_of(kmock, "a") == "10.0.0.10"


class Outage(KubeClient):
    """Our wrapper; writes fail while ``down`` (the informers keep their caches)."""

    def __init__(self, inner: KubeClient):
        self.inner = inner
        self.down = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def patch(self, *a: Any, **kw: Any) -> Any:
        if self.down:
            raise ApiUnavailable("patch: ConnectError: connection refused")
        return await self.inner.patch(*a, **kw)

    async def create(self, *a: Any, **kw: Any) -> Any:
        if self.down:
            raise ApiUnavailable("create: ConnectError: connection refused")
        return await self.inner.create(*a, **kw)


async def test_an_api_outage_during_a_pass_loses_nothing_and_is_retried(kmock: Any) -> None:
    setup(kmock, pool("lan", "10.0.0.10-10.0.0.12"), service("a"))
    outage = Outage(client_for(kmock))
    async with controller(kmock, client=outage) as ctrl:
        await eventually(lambda: ips_of(kmock, "a") == "10.0.0.10")
        outage.down = True
        await outage.inner.create(SERVICES, service("b"))
        await eventually(
            lambda: ctrl.metrics.api_errors.labels("reconcile")._value.get() >= 1, what="a failed pass"
        )
        await eventually(
            lambda: ctrl.allocator is not None and "default/b" in ctrl.allocator.assignments,
            what="b allocated in memory while writes fail",
        )
        assert ips_of(kmock, "b") is None
        outage.down = False
        await eventually(lambda: ips_of(kmock, "b") == "10.0.0.11", what="the retried pass writes b")
        assert ips_of(kmock, "a") == "10.0.0.10"


async def test_the_plan_s_ownership_is_published_on_the_service(kmock: Any) -> None:
    setup(kmock, pool("lan", "10.0.0.10/32"), service("web"))
    plan = Plan(
        node="node-a",
        ownership=(
            Ownership(
                "10.0.0.10", "layer2", ("node-b",), "ranked first of 3 eligible nodes", ("default/web",)
            ),
        ),
    )
    async with controller(kmock, plan=plan):
        rows = await eventually(
            lambda: (obj(kmock, SERVICES, "web", "default")["metadata"].get("annotations") or {}).get(
                ANN_ANNOUNCEMENTS
            ),
            what="announcement annotation",
        )
        assert '"nodes":["node-b"]' in rows and "ranked first" in rows
        conds = await eventually(
            lambda: [
                c
                for c in obj(kmock, SERVICES, "web", "default").get("status", {}).get("conditions", [])
                if c["type"] == "ironlb.io/Announced"
            ]
        )
        assert conds[0]["status"] == "True" and "node-b" in conds[0]["message"]
        await eventually(
            lambda: any(e[1] == "Announcing" and "node-b" in e[2] for e in events(kmock, "web")),
            what="Announcing event",
        )


def test_services_of_other_classes_are_left_alone() -> None:
    from agent.kube.viewbuild import service_requests

    docs = [
        service("mine"),
        service("theirs", cls="other.io/lb"),
        service("classless", cls=None),
        service("internal", type_="ClusterIP"),
    ]
    assert sorted(service_requests(docs, claim_classless=False)[0]) == ["default/mine"]
    assert sorted(service_requests(docs, claim_classless=True)[0]) == ["default/classless", "default/mine"]


_ = km  # kmock is used through the fixture
