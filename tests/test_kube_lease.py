"""Lease election (get/create/replace with resourceVersion CAS) on the lab API server.

The elector runs as the controller's ServiceAccount with the rendered Role (get/update on
this one Lease, create), so a grant missing there fails here.  Not covered against a real
API server: resourceVersion semantics across apiserver replicas.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from ironlb.agent.kube.client import LEASES, SERVICES, ApiUnavailable
from ironlb.agent.kube.informer import InformerSettings
from ironlb.agent.kube.lease import LeaseElector, LeaseSettings
from ironlb.agent.kube.runtime import ControllerRuntime
from ironlb.model import ANN_ALLOCATED_IPS
from lab.manifests import pool, service
from lab.waiting import eventually
from tests import apiserver_support
from tests.kube_support import annotation, cancel, get, ingress_ips, install, role_client, violations

apiserver, admin = apiserver_support.apiserver, apiserver_support.admin  # pytest fixtures

S = LeaseSettings(namespace="ironlb-system", duration=1.0, renew_deadline=0.6, retry_period=0.1)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
async def api(apiserver: Any, admin: Any, tmp_path: Any) -> Any:
    await install(admin)
    client = await role_client(apiserver, admin, "controller", tmp_path)
    yield client
    await client.close()
    assert {k: v for k, v in violations(apiserver, "controller").items() if k != "conflicts"} == {}


async def holder(api: Any) -> str:
    lease = await api.get(LEASES, S.name, S.namespace)
    return str(lease["spec"]["holderIdentity"])


async def test_first_campaigner_wins_and_the_second_waits(api: Any) -> None:
    a, b = LeaseElector(api, "node-a", S), LeaseElector(api, "node-b", S)
    assert await a.try_acquire_or_renew() is True
    assert await b.try_acquire_or_renew() is False
    assert await a.try_acquire_or_renew() is True, "the holder renews"
    assert await holder(api) == "node-a"


async def test_a_silent_holder_is_replaced_after_the_lease_duration_on_our_own_clock(api: Any) -> None:
    clock = Clock()
    a = LeaseElector(api, "node-a", S)
    b = LeaseElector(api, "node-b", S, clock=clock)
    assert await a.try_acquire_or_renew()
    assert not await b.try_acquire_or_renew()  # b starts observing a's record
    clock.t += S.duration * 0.9
    assert not await b.try_acquire_or_renew(), "not yet expired"
    clock.t += S.duration * 0.2
    assert await b.try_acquire_or_renew(), "expired: b takes over"
    lease = await api.get(LEASES, S.name, S.namespace)
    assert lease["spec"]["holderIdentity"] == "node-b"
    assert lease["spec"]["leaseTransitions"] == 1


async def test_a_stale_write_loses_the_compare_and_swap(api: Any) -> None:
    a, b = LeaseElector(api, "node-a", S), LeaseElector(api, "node-b", S)
    await a.try_acquire_or_renew()
    lease = await api.get(LEASES, S.name, S.namespace)
    await a.try_acquire_or_renew()  # moves the resourceVersion on
    stale = b._body(lease, b.wall())
    with pytest.raises(Exception) as info:
        await api.replace(LEASES, stale)
    assert type(info.value).__name__ == "Conflict"
    assert await holder(api) == "node-a"


async def test_a_clean_shutdown_releases_so_the_next_agent_takes_over_at_once(api: Any) -> None:
    a, b = LeaseElector(api, "node-a", S), LeaseElector(api, "node-b", S)
    task = asyncio.create_task(a.run())
    await eventually("a leads", lambda: a.is_leader)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert not a.is_leader
    assert await holder(api) == ""
    assert await b.try_acquire_or_renew(), "a released holder is free to take without waiting"


async def test_a_leader_cut_off_from_the_api_steps_down_before_the_lease_expires(api: Any) -> None:
    changes: list[bool] = []
    a = LeaseElector(api, "node-a", S, on_change=changes.append)
    task = asyncio.create_task(a.run())
    try:
        await eventually("a leads", lambda: a.is_leader)

        async def down(*args: Any, **kw: Any) -> Any:
            raise ApiUnavailable("get: ConnectError: connection refused")

        api.get = down
        await eventually("a steps down", lambda: not a.is_leader, timeout=S.duration * 2)
        assert not task.done(), "an unreachable API server never crashes the elector"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert changes == [True, False]


@pytest.mark.parametrize(
    "duration, deadline, retry",
    [(10, 10, 2), (15, 10, 10), (15, 20, 2), (15, 10, 0)],
    ids=["deadline equal to duration", "retry equal to deadline", "deadline above duration", "zero retry"],
)
def test_lease_timings_must_nest(duration: float, deadline: float, retry: float) -> None:
    with pytest.raises(ValueError, match="retry_period"):
        LeaseSettings(duration=duration, renew_deadline=deadline, retry_period=retry)


class Crashable:
    """Our client, cut off at once on ``crash()`` (a SIGKILLed pod: no release, no more renewals)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.dead = False

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not callable(attr) or name in ("close",):
            return attr

        async def call(*a: Any, **kw: Any) -> Any:
            if self.dead:
                raise ApiUnavailable(f"{name}: the pod is gone")
            return await attr(*a, **kw)

        return call

    def watch(self, *a: Any, **kw: Any) -> Any:
        return self.inner.watch(*a, **kw)

    def crash(self) -> None:
        self.dead = True


async def test_a_crashed_leader_is_replaced_and_allocation_resumes_within_3_s(
    apiserver: Any, admin: Any, api: Any, tmp_path: Any
) -> None:
    """Issue 12: new allocations resume within 3 s of the leader's crash (default Lease timings)."""
    await admin.load([pool("lan", "10.0.0.10-10.0.0.20", allowUntenanted=True), service("before")])
    fast = InformerSettings(resync_seconds=30, backoff_initial=0.05, backoff_max=0.2)
    a = Crashable(api)
    runtimes = [
        ControllerRuntime(a, "controller-a", informer=fast),  # type: ignore[arg-type]
        ControllerRuntime(
            await role_client(apiserver, admin, "controller", tmp_path), "controller-b", informer=fast
        ),
    ]
    tasks = [asyncio.create_task(r.run()) for r in runtimes]
    try:
        await eventually("a leads", lambda: runtimes[0].elector.is_leader)
        await eventually("before exists", lambda: get(admin, SERVICES, "before", "default"))
        await eventually("a allocates", lambda: _allocated(admin, "before"), timeout=10)
        await eventually(  # annotations come first: a crash before the status is another test
            "a records before's status",
            lambda: get(admin, SERVICES, "before", "default"),
            ingress_ips,
        )
        crashed = asyncio.get_running_loop().time()
        a.crash()
        tasks[0].cancel()  # the process is gone; its release fails like the rest
        await admin.load([service("after")])
        await eventually("b allocates after the crash", lambda: _allocated(admin, "after"), timeout=10)
        took = asyncio.get_running_loop().time() - crashed
        print(f"controller failover: new allocation {took:.2f} s after the leader's crash")
        assert runtimes[1].elector.is_leader
        assert took < 3.0, f"allocation resumed {took:.2f} s after the crash (floor: 3 s)"
    finally:
        await cancel(tasks)


async def _allocated(admin: Any, name: str) -> str | None:
    return annotation(await get(admin, SERVICES, name, "default"), ANN_ALLOCATED_IPS)
