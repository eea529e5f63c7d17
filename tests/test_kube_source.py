"""The speaker's Kubernetes source on the lab API server, as the speaker ServiceAccount.

Informers -> the same ClusterView the planner consumes; the NodeState reporter writes this
node's status only when it changes (and not at all after a restart when it still holds);
every Namespace is watched (pools' namespaceSelector), as in production.  The server
enforces the rendered speaker RBAC (read-only but for its NodeState and Events), and each
test ends asserting it saw no violation.  Not covered: EndpointSlice churn at scale.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from ironlb.agent.kube.client import NODE_STATES, SERVICES, SPEAKER_KINDS, KubeClient
from ironlb.agent.kube.informer import Caches, InformerSettings
from ironlb.agent.sources.kube import KubeSource
from ironlb.model import ANN_ALLOCATED_IPS, ANN_ALLOCATED_POOL
from lab.manifests import endpoint_slice, node, pool, service
from lab.waiting import always, eventually
from tests import apiserver_support
from tests.factories import owned_plan
from tests.kube_support import generator, get, install, role_client, set_ingress, violations

apiserver, admin = apiserver_support.apiserver, apiserver_support.admin  # pytest fixtures

FAST = InformerSettings(resync_seconds=30, backoff_initial=0.05, backoff_max=0.2)


@pytest.fixture
async def client(apiserver: Any, admin: Any, tmp_path: Path) -> AsyncIterator[KubeClient]:
    await install(admin)
    client = await role_client(apiserver, admin, "speaker", tmp_path)
    yield client
    found = violations(apiserver, "speaker")
    assert found == {}, f"the API server refused, pruned or ignored a speaker request: {found}"


#: The gap between two ticks of the status loop here: the reporter's debounce is 0, so a write
#: a tick causes is under way within one event-loop turn; 50 ms lets it land before the next.
TICK = 0.05


def source_for(client: KubeClient) -> KubeSource:
    return KubeSource(client, "n1", Caches(client, SPEAKER_KINDS, FAST), status_debounce=0)


async def test_views_carry_assignments_endpoints_nodes_and_namespaces_and_follow_changes(
    admin: Any, client: KubeClient
) -> None:
    await admin.load(
        [
            pool("lan", "10.0.0.0/29", allowUntenanted=True),
            service("web"),
            node("n1", "192.168.1.1", labels={"zone": "a"}),
            node("n2", "192.168.1.2", ready=False),
            endpoint_slice("web", "n2"),
        ]
    )
    await set_ingress(admin, "web", "10.0.0.3")
    src = source_for(client)
    views = generator(src.views())
    try:
        view = await asyncio.wait_for(anext(views), 10)
        assert view.assignments["default/web"].addresses == ("10.0.0.3",)
        assert view.assignments["default/web"].ips[0].pool == "lan"
        assert view.endpoints["default/web"] == frozenset({"n2"})
        assert (view.nodes["n1"].addresses, view.nodes["n2"].ready) == (("192.168.1.1",), False)
        assert list(view.config.pools) == ["lan"]
        assert "ironlb-system" in view.config.namespaces, "Namespaces are watched (namespaceSelector)"
        # an annotation is no record: db holds nothing until its status says so
        await admin.load(
            [service("db", annotations={ANN_ALLOCATED_IPS: "10.0.0.4", ANN_ALLOCATED_POOL: "x"})]
        )
        await eventually("db in the cache", lambda: src.caches.get("services", "default/db"))
        assert src.build() == view, "nothing to announce: the same view (and none is yielded)"
        await set_ingress(admin, "db", "10.0.0.4")
        view = await asyncio.wait_for(anext(views), 10)
        assert view.assignments["default/db"].ips[0].pool == "lan", "pool found from the address"
        await set_ingress(admin, "db", "10.0.0.99")  # in no pool (a stale or forged status)
        view = await asyncio.wait_for(anext(views), 10)
        assert "default/db" not in view.assignments
        assert [(r.ip, r.reason) for r in view.rejected["default/db"]] == [("10.0.0.99", "NoPool")]
        assert src.not_ready() is None
    finally:
        await views.aclose()


async def test_the_node_state_is_written_on_change_only_and_survives_a_restart_without_a_write(
    apiserver: Any, admin: Any, client: KubeClient, tmp_path: Path
) -> None:
    await admin.load([node("n1", "192.168.1.1")])
    statuses = {"L2Shell": {"addresses": {"10.0.0.3": {"state": "probing", "since": 1.0e9}}}}
    src = source_for(client)
    views = generator(src.views())
    try:
        await asyncio.wait_for(anext(views), 10)
        for _ in range(5):  # ticks with nothing new: one write
            src.reporter.observe(owned_plan("n1", "10.0.0.3"), statuses)
            await always(
                "at most one NodeState write", lambda: src.reporter.writes, lambda n: n <= 1, seconds=TICK
            )
        await eventually("the first NodeState write", lambda: src.reporter.writes, lambda n: n == 1)
        statuses["L2Shell"]["addresses"]["10.0.0.3"] = {"state": "announcing", "since": 1.0e9 + 1}
        src.reporter.observe(owned_plan("n1", "10.0.0.3"), statuses)
        await eventually("a write for the change", lambda: src.reporter.writes == 2)
        doc = await get(admin, NODE_STATES, "n1")
        assert doc["status"]["announcing"] == 1
        assert doc["status"]["announcements"][0]["state"] == "announcing"
        owner = doc["metadata"].get("ownerReferences") or []
        assert [o["kind"] for o in owner] == ["Node"], "deleted with its Node"
    finally:
        await views.aclose()
    restarted = source_for(await role_client(apiserver, admin, "speaker", tmp_path))
    views = generator(restarted.views())
    try:
        await asyncio.wait_for(anext(views), 10)
        restarted.reporter.observe(owned_plan("n1", "10.0.0.3"), statuses)
        reporter = restarted.reporter
        await eventually(  # its first sync read the NodeState back (or wrote it: counted below)
            "the restarted reporter to hold what it wants written",
            lambda: reporter.written,
            lambda written: written == reporter.wanted,
        )
        await reporter.sync()
        assert restarted.reporter.writes == 0, (
            "a restarted speaker whose NodeState still holds writes nothing"
        )
    finally:
        await views.aclose()


_ = SERVICES
