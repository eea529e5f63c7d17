"""The listeners and the server's life: HTTPS for pods, a Unix socket for the test process.

Both listeners feed one :class:`~.handler.KubeApi` (one store).  Each has a thin front that
authenticates before kmock sees the request -- the HTTPS front by bearer token (401 for
none or an unknown one, recorded), the socket front as :data:`~.rbac.ADMIN` -- and passes
the identity on in :data:`~.auth.IDENTITY_HEADER` (stripped from what the client sent).

:class:`ApiServer` runs it in-process (unit tests; ``async with``) and :func:`serve` as a
process (``python -m lab.apiserver``).  Both use the same listeners: in-process, HTTPS on
127.0.0.1 with a free port and the socket in the work directory, so unit tests exercise the
exact path the pods use (TLS, CA, token).  The socket file appears only once every listener
accepts (readiness); watches are closed and the socket removed on stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import ssl
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp.web
from multidict import CIMultiDict

from lab.apiserver import auth, pki
from lab.apiserver.admin import AdminClient
from lab.apiserver.handler import ApiState, KubeApi, json_response
from lab.apiserver.rbac import ADMIN
from lab.apiserver.status import unauthorized

MAX_BODY = 16 * 1024 * 1024


def split_host_port(text: str) -> tuple[str, int]:
    """``10.0.0.1:6443`` or ``[fd00::1]:6443`` -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"--listen {text!r}: expected HOST:PORT (IPv6 as [ADDR]:PORT)")
    return host.strip("[]"), int(port)


def _front(api: KubeApi, state: ApiState, trusted: bool) -> Any:
    async def handle(request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        headers = CIMultiDict(
            (k, v) for k, v in request.headers.items() if k.lower() != auth.IDENTITY_HEADER.lower()
        )
        user = ADMIN if trusted else state.tokens.authenticate(request.headers.get("Authorization", ""))
        if user is None:
            reason = (
                "no bearer token" if "Authorization" not in request.headers else "unknown or revoked token"
            )
            state.recorder.add(
                "unauthorized",
                verb=request.method,
                path=request.path,
                remote=request.remote or "",
                reason=reason,
            )
            return json_response(unauthorized().body(), 401)
        headers[auth.IDENTITY_HEADER] = auth.encode(user)
        response: aiohttp.web.StreamResponse = await api(
            request.clone(headers=headers, client_max_size=MAX_BODY)
        )
        return response

    return handle


class ApiServer:
    """The server with its listeners; ``async with ApiServer(work_dir) as api: ...``."""

    def __init__(
        self,
        work_dir: Path,
        *,
        listen: Sequence[tuple[str, int]] = (("127.0.0.1", 0),),
        socket: Path | None = None,
        pki_dir: Path | None = None,
        history: int = 10000,
    ) -> None:
        self.work_dir = Path(work_dir)
        self.socket = socket or self.work_dir / "apiserver.sock"
        self.pki_dir = pki_dir or self.work_dir / "pki"
        self._listen = list(listen)
        self.state = ApiState(history)
        self.handler = KubeApi(state=self.state)
        self._runners: list[aiohttp.web.BaseRunner] = []
        self.addresses: list[tuple[str, int]] = []

    @property
    def ca_file(self) -> Path:
        return self.pki_dir / "ca.crt"

    @property
    def url(self) -> str:
        host, port = self.addresses[0]
        return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"

    def report(self, since: float = 0.0) -> dict[str, Any]:
        return self.state.report(since)

    def admin(self) -> AdminClient:
        return AdminClient(self.socket)

    async def start(self) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        keys = pki.ensure(self.pki_dir, [h for h, _ in self._listen])
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(keys.server_cert, keys.server_key)
        await self.handler.__aenter__()
        try:
            for host, port in self._listen:
                runner = await self._runner(trusted=False)
                site = aiohttp.web.TCPSite(runner, host, port, ssl_context=context)
                await site.start()
                bound = runner.addresses[-1]
                self.addresses.append((host, int(bound[1])))
            runner = await self._runner(trusted=True)
            tmp = self.socket.with_name(f".{self.socket.name}.tmp")
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            await aiohttp.web.UnixSite(runner, str(tmp)).start()
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.socket)  # ready: every listener accepts
        except BaseException:
            await self.stop()
            raise

    async def _runner(self, trusted: bool) -> aiohttp.web.BaseRunner:
        server = aiohttp.web.Server(_front(self.handler, self.state, trusted), handler_cancellation=True)
        runner = aiohttp.web.ServerRunner(server, shutdown_timeout=1)
        await runner.setup()
        self._runners.append(runner)
        return runner

    async def stop(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()
        self.state.store.close_watches()
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
        if self.handler.active:
            await self.handler.__aexit__(None, None, None)

    async def __aenter__(self) -> ApiServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


async def serve(listen: Sequence[tuple[str, int]], socket: Path, pki_dir: Path, history: int) -> None:
    """Run until SIGTERM/SIGINT (the ``python -m lab.apiserver`` entry point)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = ApiServer(socket.parent, listen=listen, socket=socket, pki_dir=pki_dir, history=history)
    async with server:
        where = ", ".join(f"https://{h}:{p}" for h, p in server.addresses)
        print(f"lab API server on {where} and unix:{socket} (CA {server.ca_file})", flush=True)
        await stop.wait()
