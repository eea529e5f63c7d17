"""Both roles against the lab API server, with exactly the RBAC the NodeAgent component renders.

The controller (``ControllerRuntime``: informers, Lease, controller) and a speaker's
Kubernetes source (informers, NodeState reporter) run as their ServiceAccounts over HTTPS.
Every request either makes is recorded by our client wrapper (``KubeClient.calls``) and by
the server, which enforces the rendered ClusterRoles/Roles, prunes what the CRD schemas do
not declare, and answers 409 to stale writes.  The scenario touches every write path:
allocation, release, a refused Service, tenant quota, an invalid advertisement and an
invalid Community, a NodeState with an announcement, a BGP session and a conflict.

Asserted: the server saw no 403, no pruned or ignored field, no 409 and no 422; every call
each role made is granted by ``ironlb.components.rbac`` for that role, and every grant of the
table was used (or is listed below with the reason this scenario cannot use it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from ironlb.agent.announcements import BGPRoute, L2Announcement, Ownership, Plan
from ironlb.agent.kube.client import CRDS, NODE_STATES, SERVICES, SPEAKER_KINDS, Call, KubeClient
from ironlb.agent.kube.informer import Caches, InformerSettings
from ironlb.agent.kube.runtime import ControllerRuntime
from ironlb.agent.sources.kube import KubeSource
from ironlb.agentconfig import AgentConfig
from ironlb.components import rbac
from ironlb.model import ANN_ALLOCATED_IPS, ANN_POOL
from lab.manifests import node, pool, resource, service, tenant
from lab.waiting import eventually
from tests import apiserver_support
from tests.kube_support import (
    NS,
    annotation,
    events,
    generator,
    get,
    ingress_ips,
    install,
    role_client,
    violations,
)

apiserver, admin = apiserver_support.apiserver, apiserver_support.admin  # pytest fixtures

FAST = InformerSettings(resync_seconds=60, backoff_initial=0.05, backoff_max=0.5)

#: Grants this scenario cannot exercise, and why they stay.
UNUSED: dict[tuple[str, str, str, str], str] = {}


def allowed(call: Call, grants: tuple[rbac.Grant, ...]) -> bool:
    """Would the API server's RBAC allow ``call`` under ``grants``? (as the authorizer matches)."""
    for g in grants:
        if g.api_group != call.group or call.resource not in g.resources or call.verb not in g.verbs:
            continue
        if g.namespaced and call.namespace != NS:
            continue
        return True
    return False


def used(grant: rbac.Grant, calls: set[Call]) -> set[tuple[str, str, str]]:
    return {
        (grant.api_group, r, v)
        for r in grant.resources
        for v in grant.verbs
        if any(c.group == grant.api_group and c.resource == r and c.verb == v for c in calls)
    }


@contextlib.asynccontextmanager
async def controller(client: KubeClient) -> AsyncIterator[ControllerRuntime]:
    runtime = ControllerRuntime(client, "controller-0", AgentConfig(), informer=FAST)
    task = asyncio.create_task(runtime.run())
    try:
        yield runtime
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_each_role_makes_only_calls_its_rbac_grants_and_the_server_finds_no_violation(
    apiserver: Any, admin: Any, tmp_path: Path
) -> None:
    await install(
        admin,
        node("n1", "192.0.2.1"),
        node("n2", "192.0.2.2"),
        pool("lan", "10.0.0.10-10.0.0.13", allowUntenanted=True),
        pool("red-pool", "10.1.0.0/30"),
        pool("blue-pool", "10.2.0.0/30"),
        tenant("red", ["red-ns"], ["red-pool"]),
        tenant("blue", ["blue-ns"], ["blue-pool"], quota=1),
        resource("L2Advertisement", "lan", ipPools=["lan"]),
        resource("BGPAdvertisement", "bad", ipPools=["lan"], communities=["no-such-alias"]),
        resource("BGPPeer", "tor", myASN=64513, peerASN=64512, peerAddress="192.0.2.254"),
        resource("Community", "dc1", communities={"dc1-lb": "65010:100"}),
        resource("Community", "broken", communities={"x": "65010:999999"}),
        service("web"),
        service("leaving"),
        service("thief", "red-ns", annotations={ANN_POOL: "blue-pool"}),
        service("ok", "blue-ns"),
    )
    ctrl_client = await role_client(apiserver, admin, "controller", tmp_path)
    speaker_client = await role_client(apiserver, admin, "speaker", tmp_path)
    source = KubeSource(speaker_client, "n1", Caches(speaker_client, SPEAKER_KINDS, FAST), status_debounce=0)
    views = generator(source.views())
    async with controller(ctrl_client):
        await eventually("web allocated (annotation and status)", lambda: _allocated(admin, "web"))
        await eventually("leaving allocated", lambda: _allocated(admin, "leaving"))
        view = await eventually(
            "a view with web's assignment",
            lambda: asyncio.wait_for(anext(views), 10),
            lambda v: "default/web" in v.assignments,
            timeout=30,
            interval=0,
        )
        ip = view.assignments["default/web"].addresses[0]
        plan = Plan(
            node="n1",
            l2=(L2Announcement(ip, ("default/web",)),),
            bgp=(BGPRoute(f"{ip}/32", ("tor",), services=("default/web",)),),
            ownership=(
                Ownership(ip, "layer2", ("n1",), "ranked first among eligible nodes", ("default/web",)),
            ),
        )
        bgp = {"BGPShell": {"sessions": {"tor": {"state": "established", "prefixes_sent": 1}}}}
        conflict = {
            "ip": ip,
            "mac": "02:00:00:00:00:99",
            "interface": "eth0",
            "first_seen": 2.0e9,
            "last_seen": 2.0e9 + 3,
            "state": "refused",
            "claims": 4,
        }
        l2 = {"addresses": {ip: {"state": "conflict", "conflict": conflict}}, "conflict_details": [conflict]}
        source.reporter.observe(plan, {"L2Shell": l2, **bgp})
        await eventually("the speaker's conflict Event", lambda: _has_event(admin, "web", "AddressConflict"))
        source.reporter.observe(
            plan, {"L2Shell": {"addresses": {ip: {"state": "announcing", "since": 1e9}}}, **bgp}
        )
        text = await eventually("who announces web, published", lambda: _announced_by(admin, "web", "n1"))
        assert json.loads(text) == [
            {"ip": ip, "mode": "layer2", "nodes": ["n1"], "reason": "ranked first among eligible nodes"}
        ]
        await admin.request(  # no longer a LoadBalancer: released, and what the controller wrote cleared
            "PATCH",
            "/api/v1/namespaces/default/services/leaving",
            {"spec": {"type": "ClusterIP"}},
            content_type="application/merge-patch+json",
        )
        await eventually("leaving released and cleared", lambda: _released(admin, "leaving"))
        peer = await eventually("BGPPeer sessions", lambda: _status(admin, "bgppeers", "tor", "state"))
        assert peer == "Established"
        assert await eventually("tenant usage", lambda: _status(admin, "tenants", "blue", "used")) == 1
        broken = await eventually("Valid", lambda: _status(admin, "communities", "broken", "conditions"))
        assert broken[0]["status"] == "False" and "65010:999999" in broken[0]["message"]
        bad = await eventually("Valid", lambda: _status(admin, "bgpadvertisements", "bad", "conditions"))
        assert bad[0]["status"] == "False"
        node_state = await get(admin, NODE_STATES, "n1")
        assert node_state["status"]["announcing"] == 2 and node_state["status"]["conflictCount"] == 0
    await views.aclose()

    found = violations(apiserver)
    assert found == {}, f"the API server refused, pruned or ignored something: {found}"
    for role, client in (("controller", ctrl_client), ("speaker", speaker_client)):
        grants = rbac.grants(role)
        calls = set(client.calls)
        denied = sorted(c for c in calls if not allowed(c, grants))
        assert denied == [], f"{role} made calls its RBAC does not grant: {denied}"
        every = {(g.api_group, r, v) for g in grants for r in g.resources for v in g.verbs}
        unused = every - {t for g in grants for t in used(g, calls)}
        assert unused <= {k[:3] for k in UNUSED if k[3] == role}, (
            f"{role}: grants never used: {sorted(unused)}"
        )


async def _allocated(admin: Any, name: str, namespace: str = "default") -> dict[str, Any] | None:
    doc = await get(admin, SERVICES, name, namespace)
    ip = annotation(doc, ANN_ALLOCATED_IPS)
    return doc if ip and ingress_ips(doc) == [ip] else None


async def _released(admin: Any, name: str) -> bool:
    doc = await get(admin, SERVICES, name, "default")
    return annotation(doc, ANN_ALLOCATED_IPS) is None and ingress_ips(doc) == []


async def _announced_by(admin: Any, name: str, node_name: str) -> str | None:
    text = annotation(await get(admin, SERVICES, name, "default"), "ironlb.io/announcements")
    return text if text and any(node_name in r["nodes"] for r in json.loads(text)) else None


async def _has_event(admin: Any, name: str, reason: str) -> bool:
    return any(e[1] == reason for e in await events(admin, name))


async def _status(admin: Any, plural: str, name: str, key: str) -> Any:
    doc = await get(admin, CRDS[plural], name)
    return (doc.get("status") or {}).get(key)
