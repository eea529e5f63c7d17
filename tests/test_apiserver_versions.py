"""Lab API server: resourceVersion concurrency, generation, and watches (replay, 410, selectors).

Watches are read as a client reads them: a streaming GET over the admin socket, one JSON
event per line.  A small ``--history`` makes the 410 case cheap to reach.
"""

# ruff: noqa: F811  (pytest fixtures imported from tests.apiserver_support are redefined as arguments)
from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import httpx2
import pytest

from ironlb.crds import crd_manifests
from lab.apiserver import AdminClient, ApiServer
from lab.manifests import pool, service
from lab.waiting import eventually
from tests.apiserver_support import admin, apiserver  # noqa: F401

SVC = "/api/v1/namespaces/default/services"


async def watch(
    server: ApiServer, path: str, count: int, timeout: float = 5.0, **params: str
) -> list[dict[str, Any]]:
    """The first ``count`` events of a watch on ``path`` (fails after ``timeout``)."""
    transport = httpx2.AsyncHTTPTransport(uds=str(server.socket))
    events: list[dict[str, Any]] = []
    async with httpx2.AsyncClient(transport=transport, base_url="http://apiserver") as http:
        async with asyncio.timeout(timeout):
            query = {"watch": "true", **params}
            async with http.stream("GET", path, params=query, timeout=None) as response:
                assert response.status_code == 200
                async for line in response.aiter_lines():
                    if line.strip():
                        events.append(json.loads(line))
                    if len(events) >= count:
                        break
    return events


def rv(obj: dict[str, Any]) -> int:
    return int(obj["metadata"]["resourceVersion"])


async def test_every_write_bumps_one_global_counter(admin: AdminClient) -> None:
    (a,) = await admin.load([service("a")])
    (b,) = await admin.load([service("b")])
    assert rv(b) == rv(a) + 1
    patched = await admin.patch(
        "v1", "Service", "a", {"metadata": {"labels": {"x": "1"}}}, namespace="default"
    )
    assert rv(patched) == rv(b) + 1
    same = await admin.patch("v1", "Service", "a", {"metadata": {"labels": {"x": "1"}}}, namespace="default")
    assert rv(same) == rv(patched)  # a write that changes nothing is not a write
    code, listed = await admin.request("GET", SVC)
    assert code == 200 and int(listed["metadata"]["resourceVersion"]) == rv(patched)


async def test_a_stale_put_is_a_409_conflict(apiserver: ApiServer, admin: AdminClient) -> None:
    (first,) = await admin.load([service("web")])
    await admin.patch("v1", "Service", "web", {"metadata": {"labels": {"x": "1"}}}, namespace="default")
    code, answer = await admin.request("PUT", f"{SVC}/web", first)
    assert (code, answer["reason"]) == (409, "Conflict")
    assert answer["message"] == (
        'Operation cannot be fulfilled on services "web": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )
    (conflict,) = apiserver.report()["violations"]["conflicts"]
    assert (conflict["verb"], conflict["name"], conflict["conflict"]) == (
        "update",
        "web",
        "stale-resource-version",
    )


async def test_a_patch_carrying_a_stale_resource_version_is_a_409(admin: AdminClient) -> None:
    (first,) = await admin.load([service("web")])
    await admin.patch("v1", "Service", "web", {"metadata": {"labels": {"x": "1"}}}, namespace="default")
    stale = {"metadata": {"resourceVersion": first["metadata"]["resourceVersion"], "labels": {"y": "2"}}}
    code, _ = await admin.request("PATCH", f"{SVC}/web", stale, content_type="application/merge-patch+json")
    assert code == 409
    current = await admin.get("v1", "Service", "web", "default")
    assert current is not None
    fresh = {"metadata": {"resourceVersion": current["metadata"]["resourceVersion"], "labels": {"y": "2"}}}
    code, _ = await admin.request("PATCH", f"{SVC}/web", fresh, content_type="application/merge-patch+json")
    assert code == 200


async def test_custom_resources_refuse_an_unconditional_put(admin: AdminClient) -> None:
    await admin.load([*crd_manifests(), pool("p", "10.0.0.0/24")])
    code, answer = await admin.request("PUT", "/apis/ironlb.io/v1alpha1/ippools/p", pool("p", "10.0.0.0/24"))
    assert code == 422 and "metadata.resourceVersion" in answer["message"]


async def test_generation_moves_on_spec_changes_only(admin: AdminClient) -> None:
    await admin.load([*crd_manifests(), pool("p", "10.0.0.0/24")])
    kind = ("ironlb.io/v1alpha1", "IPPool", "p")
    out = await admin.patch(*kind, {"metadata": {"labels": {"a": "b"}}})
    assert out["metadata"]["generation"] == 1
    out = await admin.patch(*kind, {"status": {"assignedIPv4": 3}}, subresource="status")
    assert out["metadata"]["generation"] == 1
    out = await admin.patch(*kind, {"spec": {"addresses": ["10.0.1.0/24"]}})
    assert out["metadata"]["generation"] == 2


async def watching(apiserver: ApiServer) -> None:
    """Wait until the server holds a watch (the one a test just opened)."""
    await eventually("a watch to be registered", lambda: apiserver.state.store.watchers, interval=0.01)


async def test_a_watch_without_resource_version_starts_with_added(
    apiserver: ApiServer, admin: AdminClient
) -> None:
    await admin.load([service("a"), service("b")])
    events = await watch(apiserver, SVC, 2)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "a"), ("ADDED", "b")]


async def test_a_watch_from_a_resource_version_replays_only_what_came_after(
    apiserver: ApiServer, admin: AdminClient
) -> None:
    (a,) = await admin.load([service("a")])
    await admin.load([service("b")])
    await admin.patch("v1", "Service", "a", {"metadata": {"labels": {"x": "1"}}}, namespace="default")
    task = asyncio.create_task(watch(apiserver, SVC, 3, resourceVersion=str(rv(a))))
    await watching(apiserver)  # the delete below arrives live, not replayed
    await admin.delete("v1", "Service", "b", "default")
    events = await task
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "b"),
        ("MODIFIED", "a"),
        ("DELETED", "b"),
    ]
    assert [rv(e["object"]) for e in events] == sorted(rv(e["object"]) for e in events)


async def test_a_watch_from_before_the_history_gets_410_gone() -> None:
    work = Path(tempfile.mkdtemp(prefix="ilb-api-"))
    try:
        async with ApiServer(work, history=3) as server, server.admin() as admin:
            (first,) = await admin.load([service("s0")])
            await admin.load([service(f"s{i}") for i in range(1, 6)])
            (event,) = await watch(server, SVC, 1, resourceVersion=str(rv(first)))
            assert event["type"] == "ERROR"
            assert (event["object"]["code"], event["object"]["reason"]) == (410, "Expired")
            assert event["object"]["message"].startswith(f"too old resource version: {rv(first)}")
            recent = await watch(server, SVC, 1, resourceVersion=str(server.state.store.rv - 1))
            assert recent[0]["type"] == "ADDED" and recent[0]["object"]["metadata"]["name"] == "s5"
    finally:
        shutil.rmtree(work, ignore_errors=True)


async def test_a_selector_watch_sees_objects_enter_and_leave(
    apiserver: ApiServer, admin: AdminClient
) -> None:
    await admin.load([service("a")])
    task = asyncio.create_task(watch(apiserver, SVC, 2, labelSelector="tier=web"))
    await watching(apiserver)
    await admin.patch("v1", "Service", "a", {"metadata": {"labels": {"tier": "web"}}}, namespace="default")
    await admin.patch("v1", "Service", "a", {"metadata": {"labels": {"tier": "db"}}}, namespace="default")
    events = await task
    assert [e["type"] for e in events] == ["ADDED", "DELETED"]


async def test_a_single_name_watch_and_timeout_seconds(apiserver: ApiServer, admin: AdminClient) -> None:
    await admin.load([service("a"), service("b")])
    events = await watch(apiserver, f"{SVC}", 1, fieldSelector="metadata.name=b")
    assert events[0]["object"]["metadata"]["name"] == "b"
    transport = httpx2.AsyncHTTPTransport(uds=str(apiserver.socket))
    async with httpx2.AsyncClient(transport=transport, base_url="http://apiserver") as http:
        async with asyncio.timeout(5):
            response = await http.get(
                SVC,
                params={
                    "watch": "1",
                    "resourceVersion": str(apiserver.state.store.rv),
                    "timeoutSeconds": "1",
                },
            )
    assert response.status_code == 200 and response.text.strip() == ""


@pytest.mark.parametrize("selector", ["tier in (web", "a=b=c"])
async def test_a_malformed_label_selector_is_400(admin: AdminClient, selector: str) -> None:
    code, answer = await admin.request("GET", SVC, params={"labelSelector": selector})
    assert code == 400 and answer["reason"] == "BadRequest"


async def test_a_closed_watch_leaves_no_watcher_behind(apiserver: ApiServer, admin: AdminClient) -> None:
    await admin.load([service("a")])
    store = apiserver.state.store
    assert await watch(apiserver, SVC, 1)  # the client disconnects after one event
    await eventually("no watcher left", lambda: store.watchers, lambda n: n == 0, timeout=5, interval=0.02)
    await admin.load([service("b")])  # and writes after it still work
    assert store.watchers == 0
