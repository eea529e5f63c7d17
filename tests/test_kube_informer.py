"""The list-then-watch informer against kmock, with the failures kmock cannot make itself.

Scripted here: a 410 Gone on the watch (resourceVersion expired), a watch stream the
server closes, and a vanished API server (our wrapper raising ApiUnavailable, as the real
client does on connection refused).

Real-apiserver behaviour NOT covered (kmock has no resourceVersion and ignores watch
parameters): that a watch really resumes *from* the listed resourceVersion without
replaying; bookmarks; server-side timeoutSeconds; label/field selectors; watch cache
consistency across API server replicas.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import kmock as km
import pytest

from ironlb.agent.kube.client import SERVICES, ApiUnavailable, KubeClient
from ironlb.agent.kube.informer import Informer, InformerSettings
from lab.manifests import service
from lab.waiting import eventually
from tests.kube_support import SVC
from tests.kube_support import kmock_client as client_for
from tests.kube_support import kmock_declare as declare_all
from tests.kube_support import kmock_put as put_object

FAST = InformerSettings(resync_seconds=30, backoff_initial=0.05, backoff_max=0.2)


class Flaky(KubeClient):
    """Our wrapper with a switch that makes the API server vanish (connection refused)."""

    def __init__(self, inner: KubeClient):
        self.inner = inner
        self.down = False
        self.lists = 0

    async def list(self, kind: Any) -> Any:
        if self.down:
            raise ApiUnavailable("list: ConnectError: connection refused")
        self.lists += 1
        return await self.inner.list(kind)

    async def watch(self, kind: Any, resource_version: Any) -> Any:
        if self.down:
            raise ApiUnavailable("watch: ConnectError: connection refused")
        async for item in self.inner.watch(kind, resource_version):
            if self.down:
                raise ApiUnavailable("watch: RemoteProtocolError: peer closed connection")
            yield item


@contextlib.asynccontextmanager
async def running(inf: Informer):
    task = asyncio.create_task(inf.run())
    try:
        yield inf
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def recorder(inf: Informer) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    inf.add_listener(lambda ev, key, obj: seen.append((ev, key)))
    return seen


async def test_lists_then_streams_changes_and_swallows_replays(kmock: Any) -> None:
    declare_all(kmock)
    put_object(kmock, SERVICES, service("a"))
    client = client_for(kmock)
    inf = Informer(client, SERVICES, FAST)
    seen = recorder(inf)
    async with running(inf):
        await asyncio.wait_for(inf.synced.wait(), 5)
        assert set(inf.store) == {"default/a"}
        await client.create(SERVICES, service("b"))
        await eventually("b in cache", lambda: "default/b" in inf.store)
        await client.patch(SERVICES, "a", "default", {"metadata": {"labels": {"x": "1"}}})
        await eventually(
            "a's new labels in the cache",
            lambda: inf.store["default/a"]["metadata"].get("labels"),
            lambda labels: labels == {"x": "1"},
        )
    # kmock replays "a" as ADDED on the watch: the informer reports it once, not twice
    assert seen == [("ADDED", "default/a"), ("ADDED", "default/b"), ("MODIFIED", "default/a")]
    await client.close()


async def test_a_410_relists_and_reports_what_happened_meanwhile(kmock: Any) -> None:
    declare_all(kmock)
    put_object(kmock, SERVICES, service("a"))
    put_object(kmock, SERVICES, service("gone"))
    gone = {
        "type": "ERROR",
        "object": {
            "apiVersion": "v1",
            "kind": "Status",
            "status": "Failure",
            "code": 410,
            "reason": "Expired",
            "message": "too old resource version",
        },
    }
    kmock[km.action.WATCH, SVC][:1] << gone  # only the first watch expires
    client = client_for(kmock)
    inf = Informer(client, SERVICES, FAST)
    seen = recorder(inf)
    first_list = asyncio.Event()
    inf.add_listener(lambda *a: first_list.set())
    async with running(inf):
        await asyncio.wait_for(inf.synced.wait(), 5)
        # while the expired watch is being handled, one object disappears server-side
        del kmock.objects[km.resource("", "v1", "services"), "default", "gone"]
        await eventually("a relist after 410", lambda: inf.relists >= 2)
        await eventually("deletion found by the relist", lambda: "default/gone" not in inf.store)
    assert ("DELETED", "default/gone") in seen
    assert inf.errors == 0  # a 410 is routine, not an error


async def test_a_vanished_api_server_keeps_the_cache_and_recovers(kmock: Any) -> None:
    declare_all(kmock)
    put_object(kmock, SERVICES, service("a"))
    flaky = Flaky(client_for(kmock))
    inf = Informer(flaky, SERVICES, FAST)
    async with running(inf):
        await asyncio.wait_for(inf.synced.wait(), 5)
        flaky.down = True
        await flaky.inner.create(SERVICES, service("b"))  # wakes the watch, which now "breaks"
        await eventually("retries while the API is down", lambda: inf.errors >= 2)
        assert set(inf.store) == {"default/a"}, "the last known state stays while the API is down"
        flaky.down = False
        await eventually("catch-up after recovery", lambda: set(inf.store) == {"default/a", "default/b"})
    await flaky.inner.close()


async def test_a_stream_closed_by_the_server_is_resumed(kmock: Any) -> None:
    declare_all(kmock)
    put_object(kmock, SERVICES, service("a"))
    kmock[km.action.WATCH, SVC][:1] << b""  # first watch: headers, then the server hangs up
    client = client_for(kmock)
    inf = Informer(client, SERVICES, FAST)
    async with running(inf):
        await asyncio.wait_for(inf.synced.wait(), 5)
        await client.create(SERVICES, service("b"))
        await eventually("event after the re-watch", lambda: "default/b" in inf.store)
    watches = [r for r in kmock if r.action == km.action.WATCH]
    assert len(watches) >= 2
    await client.close()


@pytest.mark.parametrize(
    "before, after, expected",
    [
        ({"a": 1}, {"a": 1}, []),
        ({"a": 1}, {"a": 2}, [("MODIFIED", "ns/a")]),
        ({"a": 1}, {}, [("DELETED", "ns/a")]),
        ({}, {"a": 1}, [("ADDED", "ns/a")]),
    ],
    ids=[
        "an identical relist reports nothing",
        "a changed object is MODIFIED",
        "a missing object is DELETED",
        "a new object is ADDED",
    ],
)
def test_relist_diff(before: dict[str, int], after: dict[str, int], expected: list[tuple[str, str]]) -> None:
    inf = Informer(None, SERVICES)  # type: ignore[arg-type]
    for name, gen in before.items():
        inf.apply("ADDED", {"metadata": {"name": name, "namespace": "ns"}, "g": gen})
    seen = recorder(inf)
    inf.replace_all([{"metadata": {"name": n, "namespace": "ns"}, "g": g} for n, g in after.items()])
    assert seen == expected
