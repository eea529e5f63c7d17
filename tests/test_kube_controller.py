"""The IPAM controller on the lab API server, as its ServiceAccount with the rendered RBAC.

Rebuild before assign, status, events, release, tenants, invalid objects, an API outage,
and publishing who announces each address from the speakers' NodeStates.  The server
enforces status subresources (a status patch changes only status, a main patch only the
rest), CRD schemas with pruning, and RBAC, and each test ends asserting it saw no
violation.  Not covered here: Event aggregation and rate limits of a real server.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from ironlb.agent.kube.client import CRDS, NODE_STATES, SERVICES, ApiUnavailable, KubeClient
from ironlb.agent.kube.controller import Controller, ControllerSettings
from ironlb.agent.kube.informer import InformerSettings
from ironlb.agent.kube.writers import ANN_ANNOUNCEMENTS
from ironlb.model import ANN_ALLOCATED_IPS, ANN_ALLOCATED_POOL, ANN_POOL
from lab.manifests import node, pool, service, tenant
from lab.waiting import eventually
from tests import apiserver_support
from tests.kube_support import (
    annotation,
    events,
    get,
    ingress_ips,
    install,
    role_client,
    running_controller,
    set_ingress,
    violations,
)

apiserver, admin = apiserver_support.apiserver, apiserver_support.admin  # pytest fixtures

QUICK_RETRY = ControllerSettings(retry_initial=0.1, retry_max=0.3)
FAST = InformerSettings(resync_seconds=30, backoff_initial=0.05, backoff_max=0.2)
POOLS, TENANTS = CRDS["ippools"], CRDS["tenants"]


@pytest.fixture
async def client(apiserver: Any, admin: Any, tmp_path: Path) -> AsyncIterator[KubeClient]:
    await install(admin)
    client = await role_client(apiserver, admin, "controller", tmp_path)
    yield client
    await client.close()
    found = violations(apiserver, "controller")
    assert found == {}, f"the API server refused, pruned or ignored a controller write: {found}"


def running(client: KubeClient) -> contextlib.AbstractAsyncContextManager[Controller]:
    return running_controller(client, QUICK_RETRY, FAST)


async def load(admin: Any, *docs: dict[str, Any]) -> None:
    await admin.load(list(docs))


async def svc(admin: Any, name: str, namespace: str = "default") -> dict[str, Any]:
    return await get(admin, SERVICES, name, namespace)


async def ips_of(admin: Any, name: str, namespace: str = "default") -> str | None:
    return annotation(await svc(admin, name, namespace), ANN_ALLOCATED_IPS)


async def ingress(admin: Any, name: str, namespace: str = "default") -> list[str]:
    return ingress_ips(await svc(admin, name, namespace))


async def status_of(admin: Any, kind: Any, name: str) -> dict[str, Any]:
    return (await get(admin, kind, name)).get("status") or {}


LAN = pool("lan", "10.0.0.10-10.0.0.12", allowUntenanted=True)


async def test_a_new_service_gets_an_address_status_annotation_and_event(admin: Any, client: Any) -> None:
    await load(admin, LAN, service("web"))
    async with running(client):
        await eventually("status written", lambda: ingress(admin, "web"), lambda got: got == ["10.0.0.10"])
        doc = await svc(admin, "web")
        assert annotation(doc, ANN_ALLOCATED_IPS) == "10.0.0.10"
        assert annotation(doc, ANN_ALLOCATED_POOL) == "lan"
        await eventually(
            "the Allocated event",
            lambda: events(admin, "web"),
            lambda got: ("Normal", "Allocated", "assigned 10.0.0.10 from pool lan") in got,
        )
        st = await eventually(
            "the pool's status to count the address",
            lambda: status_of(admin, POOLS, "lan"),
            lambda st: st.get("assignedIPv4") == 1,
        )
        assert (st["availableIPv4"], st["assignedIPv6"]) == (2, 0)


async def test_a_restart_rebuilds_from_status_before_assigning_new_ones_and_never_from_annotations(
    admin: Any, client: Any
) -> None:
    # "kept" holds .10 (status and annotations, as a previous term wrote them), "old" .11 in
    # status only (as another version might have left it): a fresh controller must not move
    # them. "forger" claims .13 by annotation only: tenants can write annotations, so that is
    # no record at all; it gets the first free address (.12), "new" the next (.13).
    kept = service("kept", annotations={ANN_ALLOCATED_IPS: "10.0.0.10", ANN_ALLOCATED_POOL: "lan"})
    forger = service("forger", annotations={ANN_ALLOCATED_IPS: "10.0.0.13", ANN_ALLOCATED_POOL: "lan"})
    await load(admin, pool("lan", "10.0.0.10-10.0.0.13", allowUntenanted=True), kept, service("old"), forger)
    await set_ingress(admin, "kept", "10.0.0.10")
    await set_ingress(admin, "old", "10.0.0.11")
    await admin.load([service("new")])
    async with running(client):
        await eventually("new allocated", lambda: ips_of(admin, "new"), lambda got: got == "10.0.0.13")
        got = [await ips_of(admin, n) for n in ("kept", "old", "forger", "new")]
        assert got == ["10.0.0.10", "10.0.0.11", "10.0.0.12", "10.0.0.13"]
        await eventually("status written", lambda: ingress(admin, "forger"), lambda got: got == ["10.0.0.12"])
        warn = await eventually("the forgery reported", lambda: _reason(admin, "forger", "RecordRewritten"))
        assert 'ironlb.io/allocated-ips="10.0.0.13"' in warn[0][2] and "10.0.0.12 from pool lan" in warn[0][2]


async def test_delete_releases_and_a_type_change_clears_what_we_wrote(admin: Any, client: Any) -> None:
    await load(admin, pool("lan", "10.0.0.10-10.0.0.11", allowUntenanted=True), service("a"), service("b"))
    async with running(client) as ctrl:
        await eventually("both allocated", lambda: ips_of(admin, "b"), lambda got: got == "10.0.0.11")
        await admin.request(
            "PATCH",
            "/api/v1/namespaces/default/services/b",
            {"spec": {"type": "ClusterIP"}},
            content_type="application/merge-patch+json",
        )
        await eventually("b cleared", lambda: _released(admin, "b"))
        await eventually(
            "Released event",
            lambda: events(admin, "b"),
            lambda got: ("Normal", "Released", "no longer a LoadBalancer served by IronLB") in got,
        )
        await admin.request("DELETE", "/api/v1/namespaces/default/services/a")
        await admin.load([service("c")])
        await eventually(
            "c reuses a's released address", lambda: ips_of(admin, "c"), lambda got: got == "10.0.0.10"
        )
        assert ctrl.allocator is not None and "default/a" not in ctrl.allocator.assignments


async def test_a_tenant_naming_another_tenants_pool_is_refused_with_an_event(admin: Any, client: Any) -> None:
    await load(
        admin,
        pool("red-pool", "10.1.0.0/30"),
        pool("blue-pool", "10.2.0.0/30"),
        tenant("red", ["red-ns"], ["red-pool"]),
        tenant("blue", ["blue-ns"], ["blue-pool"], quota=1),
        service("thief", "red-ns", annotations={ANN_POOL: "blue-pool"}),
        service("ok", "blue-ns"),
    )
    async with running(client):
        ok = await eventually("blue's own service allocated", lambda: ips_of(admin, "ok", "blue-ns"))
        assert ok.startswith("10.2.0.")
        found = await eventually("refusal", lambda: _warnings(admin, "thief"))
        assert found[0][1] == "Forbidden" and "blue-pool" in found[0][2], found
        assert (
            await ips_of(admin, "thief", "red-ns") is None and await ingress(admin, "thief", "red-ns") == []
        )
        st = await eventually(
            "tenant status", lambda: status_of(admin, TENANTS, "blue"), lambda st: st.get("used") == 1
        )
        assert st["quota"] == 1
        assert {c["type"]: c["status"] for c in st["conditions"]}["QuotaReached"] == "True"


async def test_an_invalid_pool_edit_keeps_the_last_good_version_in_force(admin: Any, client: Any) -> None:
    await load(admin, pool("lan", "10.0.0.10-10.0.0.11", allowUntenanted=True), service("a"))
    async with running(client):
        await eventually("a allocated", lambda: ips_of(admin, "a"), lambda got: got == "10.0.0.10")
        code, answer = await admin.request(
            "PATCH",
            "/apis/ironlb.io/v1alpha1/ippools/lan",
            {"spec": {"addresses": ["10.0.0.300"]}},
            content_type="application/merge-patch+json",
        )
        assert code == 200, answer
        warn = await eventually("InvalidConfig event", lambda: _reason(admin, "lan", "InvalidConfig"))
        assert "10.0.0.300" in warn[0][2] and "last valid version stays in force" in warn[0][2]
        await eventually("Valid=False on the pool", lambda: _valid_false(admin, "lan"))
        await admin.load([service("b")])
        await eventually(
            "b allocated from the last good pool", lambda: ips_of(admin, "b"), lambda got: got == "10.0.0.11"
        )
        assert await ips_of(admin, "a") == "10.0.0.10"


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


async def test_an_api_outage_during_a_pass_loses_nothing_and_is_retried(admin: Any, client: Any) -> None:
    await load(admin, LAN, service("a"))
    outage = Outage(client)
    async with running(outage) as ctrl:
        await eventually("a allocated", lambda: ips_of(admin, "a"), lambda got: got == "10.0.0.10")
        outage.down = True
        await admin.load([service("b")])
        await eventually(
            "a failed pass", lambda: ctrl.metrics.api_errors.labels("reconcile")._value.get() >= 1
        )
        await eventually(
            "b allocated in memory while writes fail",
            lambda: ctrl.allocator is not None and "default/b" in ctrl.allocator.assignments,
        )
        assert await ips_of(admin, "b") is None
        outage.down = False
        await eventually(
            "the retried pass writes b", lambda: ips_of(admin, "b"), lambda got: got == "10.0.0.11"
        )
        assert await ips_of(admin, "a") == "10.0.0.10"


def node_state(
    name: str, *rows: dict[str, Any], conflicts: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {
        "apiVersion": "ironlb.io/v1alpha1",
        "kind": "NodeState",
        "metadata": {"name": name},
        "spec": {},
        "status": {"announcements": list(rows), "conflicts": conflicts or []},
    }


def row(ip: str, state: str = "announcing", since: str = "2026-12-01T10:00:00Z") -> dict[str, Any]:
    return {
        "ip": ip,
        "mode": "layer2",
        "state": state,
        "reason": f"ranked first ({state})",
        "services": ["default/web"],
        "since": since,
    }


async def put_status(admin: Any, doc: dict[str, Any]) -> None:
    name = doc["metadata"]["name"]
    code, answer = await admin.request(
        "PATCH",
        f"/apis/ironlb.io/v1alpha1/nodestates/{name}/status",
        {"status": doc["status"]},
        content_type="application/merge-patch+json",
    )
    assert code == 200, answer


async def test_who_announces_is_published_from_the_node_states_only_on_change(
    admin: Any, client: Any
) -> None:
    a, b = node_state("node-a"), node_state("node-b")
    await load(
        admin,
        pool("lan", "10.0.0.10/32", allowUntenanted=True),
        service("web"),
        node("node-a", "192.0.2.1"),
        node("node-b", "192.0.2.2"),
        a,
        b,
    )
    async with running(client) as ctrl:
        await eventually("web allocated", lambda: ips_of(admin, "web"))
        await put_status(admin, node_state("node-b", row("10.0.0.10")))
        text = await eventually("announcement annotation", lambda: _published(admin, "node-b"))
        assert json.loads(text)[0]["reason"] == "ranked first (announcing)"
        conds = {c["type"]: c for c in (await svc(admin, "web"))["status"]["conditions"]}
        assert (
            conds["ironlb.io/Announced"]["status"] == "True"
            and "node-b" in conds["ironlb.io/Announced"]["message"]
        )
        await eventually("Announcing event", lambda: _reason(admin, "web", "Announcing"))
        # a takeover in flight: node-a claims it later than node-b; the newest claim is shown
        await put_status(admin, node_state("node-a", row("10.0.0.10", since="2026-12-01T10:00:05Z")))
        await eventually("the successor is published", lambda: _published(admin, "node-a"))
        # node-a's Node goes NotReady: its (stale) claim no longer counts
        await admin.request(
            "PATCH",
            "/api/v1/nodes/node-a/status",
            {"status": {"conditions": [{"type": "Ready", "status": "False"}]}},
            content_type="application/merge-patch+json",
        )
        await eventually("a NotReady node's claim is ignored", lambda: _published(admin, "node-b"))
        writes = ctrl.writer.writes
        passes = ctrl.passes
        await admin.request(
            "PATCH",
            "/api/v1/nodes/node-a",
            {"metadata": {"labels": {"x": "1"}}},
            content_type="application/merge-patch+json",
        )
        await eventually("a pass after an unrelated change", lambda: ctrl.passes > passes)
        assert ctrl.writer.writes == writes, "nothing changed for anyone: no write"
        announcing = len(await _reason(admin, "web", "Announcing"))
        reworded = row("10.0.0.10")
        reworded["reason"] = "ranked first among eligible nodes with a ready endpoint"
        await put_status(admin, node_state("node-b", reworded))
        await eventually("the new reason published", lambda: _published_reason(admin, reworded["reason"]))
        # Not a fixed wait: the pass that published the new reason has finished (its duration is
        # observed last), so any Event it was going to write is written.
        publishing = ctrl.passes
        await eventually(
            "the publishing pass to finish", lambda: _finished_passes(ctrl), lambda n: n >= publishing
        )
        assert len(await _reason(admin, "web", "Announcing")) == announcing, "same node: no new Event"


def _finished_passes(ctrl: Controller) -> float:
    return ctrl.metrics.registry.get_sample_value("ironlb_reconcile_duration_seconds_count") or 0.0


async def _released(admin: Any, name: str) -> bool:
    return await ips_of(admin, name) is None and await ingress(admin, name) == []


async def _warnings(admin: Any, name: str) -> list[tuple[str, str, str]]:
    return [e for e in await events(admin, name) if e[0] == "Warning"]


async def _reason(admin: Any, name: str, reason: str) -> list[tuple[str, str, str]]:
    return [e for e in await events(admin, name) if e[1] == reason]


async def _valid_false(admin: Any, name: str) -> bool:
    conds = (await status_of(admin, POOLS, name)).get("conditions") or []
    return any(c["type"] == "Valid" and c["status"] == "False" for c in conds)


async def _published_reason(admin: Any, reason: str) -> bool:
    text = annotation(await svc(admin, "web"), ANN_ANNOUNCEMENTS)
    return bool(text) and json.loads(str(text))[0]["reason"] == reason


async def _published(admin: Any, node_name: str) -> str | None:
    text = annotation(await svc(admin, "web"), ANN_ANNOUNCEMENTS)
    return text if text and json.loads(text)[0]["nodes"] == [node_name] else None


def test_services_of_other_classes_are_left_alone() -> None:
    from ironlb.agent.viewbuild import SERVICES as KIND
    from ironlb.agent.viewbuild import ViewBuilder

    docs = [
        service("mine"),
        service("theirs", cls="other.io/lb"),
        service("classless", cls=None),
        service("internal", type_="ClusterIP"),
    ]
    for claim, expected in ((False, ["default/mine"]), (True, ["default/classless", "default/mine"])):
        builder = ViewBuilder(claim_classless=claim)
        builder.replace(KIND, docs)
        builder.build()
        assert sorted(builder.requests) == expected


_ = NODE_STATES  # the kind the controller reads the speakers' reports from
