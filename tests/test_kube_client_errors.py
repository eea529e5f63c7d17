"""The Kubernetes client wrapper sorts errors by what the caller should do, and only those.

An answer from the API server (404, 409, 410), a server in trouble (5xx, 429, an HTML page
from a proxy) and no server at all become the wrapper's :class:`KubeError` kinds; anything
else raised inside a call is a bug and must surface as itself, never as a retryable
``ApiUnavailable`` that the informers would retry forever.  The server here is a small
aiohttp app on loopback answering each Service name with a fixed status.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from ironlb.agent.kube import client as kube_client
from ironlb.agent.kube.client import SERVICES, ApiUnavailable, Conflict, KubeClient, NotFound

#: Service name -> (HTTP status, content type, body)
JSON = "application/json"
ANSWERS: dict[str, tuple[int, str, str]] = {
    name: (code, JSON, f'{{"kind":"Status","code":{code},"reason":"{reason}","message":"x"}}')
    for name, code, reason in (
        ("missing", 404, "NotFound"),
        ("taken", 409, "Conflict"),
        ("broken", 500, "InternalError"),
        ("busy", 429, "TooManyRequests"),
    )
}
ANSWERS["proxy"] = (502, "text/html", "<html><body>Bad Gateway</body></html>")


@pytest.fixture
async def api() -> AsyncIterator[str]:
    async def handle(request: web.Request) -> web.Response:
        status, ctype, body = ANSWERS[request.match_info["name"]]
        return web.Response(status=status, text=body, content_type=ctype)

    app = web.Application()
    app.router.add_get("/api/v1/namespaces/{ns}/services/{name}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    ("name", "kind", "code"),
    [
        pytest.param("missing", NotFound, 404, id="404 is an answer: NotFound"),
        pytest.param("taken", Conflict, 409, id="409 is an answer: Conflict"),
        pytest.param("broken", ApiUnavailable, 500, id="a 5xx is retryable"),
        pytest.param("busy", ApiUnavailable, 429, id="429 is retryable"),
        pytest.param("proxy", ApiUnavailable, 502, id="a proxy's HTML error page is retryable"),
    ],
)
async def test_api_answers_become_the_kube_error_the_caller_acts_on(
    api: str, name: str, kind: type[Exception], code: int
) -> None:
    client = KubeClient.connect(server=api, timeout=5)
    try:
        with pytest.raises(kind) as caught:
            await client.get(SERVICES, name, "default")
        assert type(caught.value) is kind
        assert getattr(caught.value, "code", None) == code
        assert name in str(caught.value), "the message names the object"
    finally:
        await client.close()


async def test_no_server_at_all_is_retryable() -> None:
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = KubeClient.connect(server=f"http://127.0.0.1:{port}", timeout=2)
    try:
        with pytest.raises(ApiUnavailable) as caught:
            await client.list(SERVICES)
        assert caught.value.code == 0
    finally:
        await client.close()


async def test_a_bug_inside_a_call_surfaces_as_itself(api: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(kind: Any) -> Any:
        raise TypeError("a bug in the wrapper")

    monkeypatch.setattr(kube_client, "_res", broken)
    client = KubeClient.connect(server=api, timeout=5)
    try:
        for call in (
            client.get(SERVICES, "web", "default"),
            client.list(SERVICES),
            client.create(SERVICES, {"metadata": {"name": "web", "namespace": "default"}}),
            client.patch(SERVICES, "web", "default", {"metadata": {"labels": {"a": "b"}}}),
        ):
            with pytest.raises(TypeError, match="a bug in the wrapper"):
                await call
    finally:
        await client.close()
