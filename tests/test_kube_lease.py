"""Lease election (get/create/replace with resourceVersion CAS) against kmock + scripted PUT.

kmock has no PUT and no resourceVersion; tests.kube_support.install_put_with_cas adds both
for Leases.  Not covered against a real API server: resourceVersion semantics across
apiserver replicas, server-side validation of MicroTime fields, RBAC on leases.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from agent.kube.client import LEASES, ApiUnavailable
from agent.kube.lease import LeaseElector, LeaseSettings
from tests.kube_support import client_for, declare_all, eventually, install_put_with_cas

S = LeaseSettings(namespace="ironlb-system", duration=1.0, renew_deadline=0.6, retry_period=0.1)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
async def api(kmock: Any) -> Any:
    declare_all(kmock)
    install_put_with_cas(kmock)
    client = client_for(kmock)
    yield client
    await client.close()


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
    await eventually(lambda: a.is_leader, what="a leads")
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
        await eventually(lambda: a.is_leader, what="a leads")

        async def down(*args: Any, **kw: Any) -> Any:
            raise ApiUnavailable("get: ConnectError: connection refused")

        api.get = down  # type: ignore[method-assign]
        await eventually(lambda: not a.is_leader, timeout=S.duration * 2, what="a steps down")
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
