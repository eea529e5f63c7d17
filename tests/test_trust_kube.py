"""Issue 10's forged state against the real roles on the lab API server (RBAC enforced).

Three speakers (the shipped pipeline: ``KubeSource`` -> ``Daemon`` with its incremental
planner -> shells, wired by ``ironlb.agent.main.observe``; the shells here record every plan they
are given instead of opening raw sockets) and the IPAM controller, each with the rendered
RBAC of its role; a tenant with the Role recommended in docs/decisions/0062-trust-boundary.md
(Services in its namespace, not their status), or misconfigured with ``services/status``.

Checked: a forged address is in no plan any speaker ever applied; the controller clears
forged annotations and rewrites a forged status, reporting each once (an Event and the
``ironlb.io/RecordTrusted`` condition, from the controller only, never from N speakers)
and counting it; no legitimate Service is displaced, before or after a controller
restart.  Not covered here: the addresses on the wire (tests/lab/test_cluster_*.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from ironlb.agent.announcements import Plan
from ironlb.agent.daemon import Daemon
from ironlb.agent.kube.client import SERVICES, SPEAKER_KINDS, KubeClient, KubeError
from ironlb.agent.kube.controller import Controller, ControllerSettings
from ironlb.agent.kube.informer import Caches, InformerSettings
from ironlb.agent.kube.writers import COND_TRUSTED
from ironlb.agent.main import observe
from ironlb.agent.observability import StatusBoard
from ironlb.agent.settings import Settings
from ironlb.agent.sources.kube import KubeSource
from ironlb.agentconfig import AgentConfig, MembershipOptions, SourceOptions
from ironlb.model import ANN_ALLOCATED_IPS, ANN_ALLOCATED_POOL, ANN_POOL
from lab.manifests import node, pool, resource, service, tenant
from lab.waiting import always, eventually
from tests import apiserver_support
from tests.kube_support import (
    annotation,
    cancel,
    events,
    get,
    ingress_ips,
    install,
    role_client,
    running_controller,
    tenant_client,
    violations,
)

apiserver, admin = apiserver_support.apiserver, apiserver_support.admin  # pytest fixtures

FAST = InformerSettings(resync_seconds=30, backoff_initial=0.05, backoff_max=0.2)
ROUTER, NO_POOL, BLUE_IP = "192.0.2.254", "10.77.0.99", "10.78.0.16"
NODES = ("n1", "n2", "n3")
CLUSTER = [
    *(node(n, f"192.0.2.{i}") for i, n in enumerate(NODES, 1)),
    pool("red-pool", "10.77.1.0/29"),
    pool("blue-pool", "10.78.0.16/29"),
    tenant("red", ["red-ns"], ["red-pool"]),
    tenant("blue", ["blue-ns"], ["blue-pool"]),
    resource("L2Advertisement", "red", ipPools=["red-pool"]),
    resource("BGPPeer", "router", myASN=64512, peerASN=64513, peerAddress=ROUTER),
    resource("BGPAdvertisement", "blue", ipPools=["blue-pool"]),
]
FORGED = {ANN_ALLOCATED_IPS: f"{NO_POOL},{BLUE_IP},{ROUTER}", ANN_ALLOCATED_POOL: "red-pool"}
#: How long "no speaker announced it" must hold once every speaker has cached the Service's last
#: version: speakers replan at once on a new view (daemon.settle is 0) and a plan of these few
#: Services takes milliseconds, so a forged address would reach a plan well within 0.5 s.
REPLAN_WINDOW = 0.5


class RecordingShell:
    """Stands in for the L2/BGP shells: keeps every plan the daemon applies."""

    def __init__(self) -> None:
        self.plans: list[Plan] = []
        self.on_change: Callable[[], None] = lambda: None

    async def apply(self, plan: Plan) -> None:
        self.plans.append(plan)

    async def close(self) -> None: ...

    def status(self) -> Mapping[str, Any]:
        return {}

    def announced(self) -> set[tuple[str, str]]:
        """(service, address) this node was ever told to announce (layer 2 or BGP)."""
        out = {(s, a.ip) for p in self.plans for a in p.l2 for s in a.services}
        return out | {(s, r.prefix.split("/")[0]) for p in self.plans for r in p.bgp for s in r.services}

    def now(self) -> set[tuple[str, str]]:
        last = self.plans[-1] if self.plans else Plan(node="")
        return {(s, a.ip) for a in last.l2 for s in a.services} | {
            (s, r.prefix.split("/")[0]) for r in last.bgp for s in r.services
        }


class Speakers:
    """Three speaker pipelines (source, daemon, board, recording shell), wired as in ``agent/main.py``."""

    def __init__(self, client: KubeClient) -> None:
        self.shells: dict[str, RecordingShell] = {}
        self.boards: dict[str, StatusBoard] = {}
        self.daemons: dict[str, Daemon] = {}
        self.sources: dict[str, KubeSource] = {}
        for name in NODES:
            config = AgentConfig(
                source=SourceOptions(kind="kube"), membership=MembershipOptions(mode="static")
            )
            source = KubeSource(client, name, Caches(client, SPEAKER_KINDS, FAST), status_debounce=0.05)
            shell = RecordingShell()
            daemon = Daemon(Settings(node=name, config=config), source, [shell])
            board = observe(daemon)
            source.attach(board)
            self.shells[name], self.boards[name], self.daemons[name] = shell, board, daemon
            self.sources[name] = source

    def versions(self, key: str) -> set[str | None]:
        """The resourceVersions of Service ``key`` in the speakers' caches (None: not cached)."""
        docs = [s.caches.get("services", key) for s in self.sources.values()]
        return {(d or {}).get("metadata", {}).get("resourceVersion") for d in docs}

    def everything(self) -> set[tuple[str, str]]:
        return {pair for shell in self.shells.values() for pair in shell.announced()}

    def now(self) -> set[tuple[str, str]]:
        return {pair for shell in self.shells.values() for pair in shell.now()}

    def rejected(self, reason: str) -> list[float]:
        return [b.metrics.rejections.labels(reason)._value.get() for b in self.boards.values()]


@contextlib.asynccontextmanager
async def speakers(client: KubeClient) -> AsyncIterator[Speakers]:
    found = Speakers(client)
    tasks = [asyncio.create_task(d.run()) for d in found.daemons.values()]
    try:
        yield found
    finally:
        await cancel(tasks)


def controller(client: KubeClient) -> contextlib.AbstractAsyncContextManager[Controller]:
    """One controller term (its own caches: a restart is a new process)."""
    return running_controller(client, ControllerSettings(retry_initial=0.1), FAST)


@pytest.fixture
async def roles(apiserver: Any, admin: Any, tmp_path: Path) -> AsyncIterator[tuple[KubeClient, KubeClient]]:
    await install(admin, *CLUSTER, service("api", "blue-ns"))
    ctrl = await role_client(apiserver, admin, "controller", tmp_path)
    speaker = await role_client(apiserver, admin, "speaker", tmp_path)
    yield ctrl, speaker
    await ctrl.close()
    await speaker.close()
    found = violations(apiserver, "controller", "speaker")
    assert found == {}, f"the API server refused, pruned or ignored a request of IronLB's: {found}"


async def doc(admin: Any, name: str, ns: str) -> dict[str, Any]:
    return await get(admin, SERVICES, name, ns)


async def ingress(admin: Any, name: str, ns: str) -> list[str]:
    return ingress_ips(await doc(admin, name, ns))


async def reasons(admin: Any, name: str) -> list[tuple[str, str, str]]:
    return await events(admin, name)


async def with_reason(admin: Any, name: str, reason: str) -> list[tuple[str, str, str]]:
    return [e for e in await events(admin, name) if e[1] == reason]


async def trusted_condition(admin: Any, name: str, ns: str) -> dict[str, Any] | None:
    conds = ((await doc(admin, name, ns)).get("status") or {}).get("conditions") or []
    return next((c for c in conds if c.get("type") == COND_TRUSTED), None)


async def test_forged_annotations_are_never_announced_and_the_controller_clears_them_once(
    apiserver: Any, admin: Any, roles: tuple[KubeClient, KubeClient], tmp_path: Path
) -> None:
    ctrl_client, speaker_client = roles
    red = await tenant_client(apiserver, admin, "red-ns", tmp_path)
    async with controller(ctrl_client) as ctrl, speakers(speaker_client) as nodes:
        blue = (await eventually("blue allocated", lambda: ingress(admin, "api", "blue-ns")))[0]
        await eventually("blue announced", lambda: ("blue-ns/api", blue) in nodes.now())
        # the attack: controller-owned annotations, and a pool that does not exist so
        # that allocation fails and (before the fix) nothing rewrote them
        evil = service("evil", "red-ns", annotations={**FORGED, ANN_POOL: "ghost"})
        await red.create(SERVICES, evil)
        with pytest.raises(KubeError) as denied:
            await red.patch(SERVICES, "evil", "red-ns", {"status": {"loadBalancer": {}}}, status=True)
        assert denied.value.code == 403, "the recommended tenant Role cannot write status"
        found = await eventually("reported", lambda: with_reason(admin, "evil", "RecordRewritten"))
        assert (
            found[0][0] == "Warning"
            and f'ironlb.io/allocated-ips="{NO_POOL},{BLUE_IP},{ROUTER}"' in found[0][2]
        )
        assert "no address" in found[0][2]
        cleared = await doc(admin, "evil", "red-ns")
        assert (
            annotation(cleared, ANN_ALLOCATED_IPS) is None and annotation(cleared, ANN_ALLOCATED_POOL) is None
        )
        assert ingress_ips(cleared) == []
        assert await with_reason(admin, "evil", "NoPool"), "why it has no address: the pool does not exist"
        assert ctrl.metrics.records_rewritten.labels("annotations")._value.get() == 1
        await eventually("RecordTrusted False, then True", lambda: _trusted_again(admin, "evil"))

        async def cached() -> tuple[str, set[str | None]]:
            """(the Service's resourceVersion at the API server, those in the speakers' caches)"""
            return (await doc(admin, "evil", "red-ns"))["metadata"]["resourceVersion"], nodes.versions(
                "red-ns/evil"
            )

        await eventually(
            "every speaker to cache evil as the API server has it (API version, cached versions)",
            cached,
            lambda seen: seen[1] == {seen[0]},
        )
        await always(
            "no speaker announcing evil or a forged address",
            nodes.everything,
            lambda pairs: not any(ip in (NO_POOL, ROUTER) or s == "red-ns/evil" for s, ip in pairs),
            seconds=REPLAN_WINDOW,
        )
        for pair in nodes.everything():
            assert pair[1] not in (NO_POOL, ROUTER) and pair[0] != "red-ns/evil", f"announced {pair}"
        assert ("blue-ns/api", blue) in nodes.now(), "the legitimate Service is still announced"
        assert len(await with_reason(admin, "evil", "RecordRewritten")) == 1, (
            "reported once, by the controller"
        )
        speaker_events = [
            e for e in await reasons(admin, "evil") if e[1] not in ("RecordRewritten", "NoPool")
        ]
        assert speaker_events == []


async def test_a_forged_status_is_refused_by_every_node_and_displaces_nobody_across_a_restart(
    apiserver: Any, admin: Any, roles: tuple[KubeClient, KubeClient], tmp_path: Path
) -> None:
    ctrl_client, speaker_client = roles
    red = await tenant_client(apiserver, admin, "red-ns", tmp_path, status=True)  # misconfigured
    await red.create(SERVICES, service("holder", "red-ns"))
    await red.create(SERVICES, service("thief", "red-ns"))  # created after holder (or same second: by name)
    async with speakers(speaker_client) as nodes:
        async with controller(ctrl_client):
            for name, ns in (("api", "blue-ns"), ("holder", "red-ns"), ("thief", "red-ns")):
                await eventually(f"{name} allocated", functools.partial(ingress, admin, name, ns))
            blue = (await ingress(admin, "api", "blue-ns"))[0]
            held = (await ingress(admin, "holder", "red-ns"))[0]
            before = {
                (f"{ns}/{n}", (await ingress(admin, n, ns))[0])
                for n, ns in (("api", "blue-ns"), ("holder", "red-ns"))
            }
            await eventually("both announced", lambda: before <= nodes.now())
        # the controller is down (a restart): the tenant writes status, every speaker sees it
        forged = [blue, held, NO_POOL, ROUTER]
        body = {"status": {"loadBalancer": {"ingress": [{"ip": ip} for ip in forged]}}}
        await red.patch(SERVICES, "thief", "red-ns", body, status=True)
        for reason in ("OtherTenant", "Conflict", "NoPool"):
            await eventually(
                f"{reason} counted on every node",
                functools.partial(nodes.rejected, reason),
                lambda counts: all(n >= 1 for n in counts),
            )
        await eventually("thief withdrawn", lambda: not any(s == "red-ns/thief" for s, _ in nodes.now()))
        assert before <= nodes.now(), "the holders keep their addresses on every node"
        async with controller(ctrl_client) as ctrl:  # the restart: rebuild from what passes the check
            report = await eventually("reported", lambda: with_reason(admin, "thief", "AddressRejected"))
            assert all(f"{ip}, which" in report[0][2] for ip in forged), report
            assert (
                "(OtherTenant)" in report[0][2]
                and "(Conflict)" in report[0][2]
                and "(NoPool)" in report[0][2]
            )
            mine = await eventually("thief re-allocated from its own pool", lambda: _own_address(admin))
            assert mine not in forged
            assert ctrl.allocator is not None
            assert ctrl.allocator.assignments["blue-ns/api"].addresses == (blue,)
            assert ctrl.allocator.assignments["red-ns/holder"].addresses == (held,)
            assert ctrl.metrics.rejections.labels("NoPool")._value.get() >= 1
            await eventually("thief announced again", lambda: ("red-ns/thief", mine) in nodes.now())
            await eventually("RecordTrusted False, then True", lambda: _trusted_again(admin, "thief"))
        assert await ingress(admin, "api", "blue-ns") == [blue] and await ingress(
            admin, "holder", "red-ns"
        ) == [held]
        for s, ip in nodes.everything():
            assert ip not in (NO_POOL, ROUTER), f"{s} announced {ip}"
            assert not (s == "red-ns/thief" and ip in forged), f"the forged {ip} was announced for thief"
        for name in ("api", "holder"):
            allocated = await with_reason(admin, name, "Allocated")
            assert len(allocated) == 1, f"{name} was allocated once and never moved: {allocated}"


async def _trusted_again(admin: Any, name: str) -> bool:
    """RecordTrusted is written True only over a False: True means it was reported, then fixed."""
    cond = await trusted_condition(admin, name, "red-ns")
    return cond is not None and (cond["status"], cond["reason"]) == ("True", "Trusted")


async def _own_address(admin: Any) -> str | None:
    ips = await ingress(admin, "thief", "red-ns")
    return ips[0] if len(ips) == 1 and ips[0].startswith("10.77.1.") else None
