"""One supervised ExaBGP process per BGP session.

A :class:`Speaker` owns a private directory (0700) holding the session's config (0600,
with the MD5 password) and the Unix socket the API relay connects to.  It starts
``python -m agent.bgp.launcher server CONF`` in its own session (process group), keeps
the routes it was told to announce, and:

- sends route changes as batched ``announce/withdraw attributes`` lines and waits for
  ExaBGP's acks, so :meth:`set_routes` returns once ExaBGP holds the change;
- follows the session state from ExaBGP's ``neighbor-changes`` events (status: state,
  uptime, prefixes sent, last error, counters);
- supervises the process: if ExaBGP dies it is restarted (back-off 0.5 s doubling to
  30 s) and every route is announced again;
- :meth:`stop` withdraws first, then SIGTERMs the process group (ExaBGP closes the session
  with a Cease, so the router drops our paths at once) and SIGKILLs it after
  ``stop_timeout``.  Processes are only ever signalled by their own PID / process group.

If the agent itself dies, the launcher's ``PR_SET_PDEATHSIG`` makes ExaBGP exit too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agent.announcements import BGPSession
from agent.bgp import api, exaconf
from agent.bgp.settings import BGPSettings

log = logging.getLogger(__name__)

BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0


class SpeakerError(Exception):
    """The speaker could not start or did not answer in time (retried by the shell)."""


class Speaker:
    """Keeps one session up through one ExaBGP process and announces its routes."""

    def __init__(self, session: BGPSession, settings: BGPSettings, password: str | None = None) -> None:
        self.session = session
        self.settings = settings
        self._password = password
        self.routes: dict[str, api.Route] = {}  # prefix -> route as ExaBGP holds it
        self.state = "idle"  # idle, starting, connect, established, restarting, stopped
        self.established_at: float | None = None
        self.last_error = ""
        self.counters: dict[str, int] = {
            "starts": 0,
            "session_ups": 0,
            "session_downs": 0,
            "prefixes_announced": 0,
            "prefixes_withdrawn": 0,
            "commands": 0,
            "command_errors": 0,
        }
        self.proc: asyncio.subprocess.Process | None = None
        self._dir: Path | None = None
        self._server: asyncio.Server | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._connected = asyncio.Event()
        self._acks: deque[asyncio.Future[bool]] = deque()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._supervisor: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()  # one batch of commands at a time
        self._stopping = False
        self.log_tail: deque[str] = deque(maxlen=50)

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Start ExaBGP and wait until its API relay is connected."""
        self._stopping = False
        await self._spawn()
        self._supervisor = asyncio.create_task(self._supervise(), name=f"bgp-{self.session.name}")

    async def _spawn(self) -> None:
        self.state = "starting"
        self.counters["starts"] += 1
        parent = self.settings.run_dir
        if parent is not None:
            parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._dir = Path(tempfile.mkdtemp(prefix="ironlb-bgp-", dir=parent))  # 0700
        sock = self._dir / "api.sock"
        conf = self._dir / "exabgp.conf"
        fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(exaconf.render(self.session, sock, self._password))
        self._connected.clear()
        self._server = await asyncio.start_unix_server(self._on_relay, path=str(sock))
        argv = [
            *self.settings.command_prefix,
            sys.executable,
            "-m",
            "agent.bgp.launcher",
            "server",
            str(conf),
        ]
        self.proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env=exaconf.environment(self.session, os.environ),
            cwd=str(self._dir),
            start_new_session=True,
        )
        stderr = asyncio.ensure_future(self._read_stderr(self.proc))
        connected = asyncio.ensure_future(self._connected.wait())
        await asyncio.wait(
            (connected, stderr), timeout=self.settings.start_timeout, return_when=asyncio.FIRST_COMPLETED
        )
        connected.cancel()
        if not self._connected.is_set():
            code = self.proc.returncode
            if stderr.done():  # stderr closed: the process is ending; collect its exit code
                with contextlib.suppress(TimeoutError):
                    code = await asyncio.wait_for(self.proc.wait(), 2)
            tail = " | ".join(list(self.log_tail)[-3:]) or "no output"
            how = (
                f"exited with {code}"
                if code is not None
                else f"no API connection in {self.settings.start_timeout} s"
            )
            self.last_error = f"ExaBGP did not start ({how}): {tail}"
            await self._kill()
            stderr.cancel()
            raise SpeakerError(f'BGPPeer "{self.session.name}": {self.last_error}') from None
        self._tasks.add(stderr)
        stderr.add_done_callback(self._tasks.discard)
        conf.unlink(missing_ok=True)  # ExaBGP has parsed it (its API helper runs); no secret left on disk
        if self.state == "starting":  # events may already have moved it on
            self.state = "connect"

    async def _supervise(self) -> None:
        delay = BACKOFF_FIRST
        while not self._stopping:
            proc = self.proc
            if proc is not None:  # None: the last restart failed; try again after the delay
                code = await proc.wait()
                if self._stopping:
                    return
                tail = self.log_tail[-1] if self.log_tail else ""
                self._session_down(f"ExaBGP exited with {code}: {tail}")
                await self._cleanup_dir()
            self.state = "restarting"
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX)
            try:
                await self._spawn()
                routes, self.routes = self.routes, {}
                await self.set_routes(routes)
                delay = BACKOFF_FIRST
            except (SpeakerError, OSError) as exc:
                self.last_error = str(exc)
                log.warning("%s", exc)

    async def stop(self, withdraw: bool = True) -> None:
        """Withdraw every route (if asked), close the session, end the process. Idempotent."""
        if self._stopping and self.proc is None:
            return
        self._stopping = True
        if (
            withdraw
            and self.routes
            and self._writer is not None
            and self.proc
            and self.proc.returncode is None
        ):
            with contextlib.suppress(SpeakerError, OSError):
                await self._send(api.withdraw_commands(self.routes.values(), self.settings.batch))
        await self._kill()
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        self.state = "stopped"
        self.established_at = None

    async def _kill(self) -> None:
        proc = self.proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)  # own session: pgid == pid
            try:
                await asyncio.wait_for(proc.wait(), self.settings.stop_timeout)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
        self.proc = None
        await self._cleanup_dir()

    async def _cleanup_dir(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._server is not None:
            self._server.close()
            self._server = None
        for fut in self._acks:
            if not fut.done():
                fut.set_result(False)
        self._acks.clear()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    # --- routes ---------------------------------------------------------------------------

    async def set_routes(self, routes: Mapping[str, api.Route]) -> None:
        """Make ExaBGP announce exactly ``routes`` (prefix -> route); sends only the difference."""
        gone = [r for p, r in self.routes.items() if p not in routes]
        new = [r for p, r in routes.items() if self.routes.get(p) != r]
        if not gone and not new:
            return
        lines = api.withdraw_commands(gone, self.settings.batch) + api.announce_commands(
            new, self.settings.batch
        )
        self.routes = dict(routes)
        await self._send(lines)
        self.counters["prefixes_withdrawn"] += len(gone)
        self.counters["prefixes_announced"] += len(new)

    async def _send(self, lines: list[str]) -> None:
        if not lines:
            return
        async with self._lock:
            writer = self._writer
            if writer is None:
                raise SpeakerError(f'BGPPeer "{self.session.name}": speaker is not running')
            loop = asyncio.get_running_loop()
            futures = [loop.create_future() for _ in lines]
            self._acks.extend(futures)
            writer.write("".join(line + "\n" for line in lines).encode())
            self.counters["commands"] += len(lines)
            await writer.drain()
            try:
                results = await asyncio.wait_for(asyncio.gather(*futures), self.settings.ack_timeout)
            except TimeoutError:
                raise SpeakerError(
                    f'BGPPeer "{self.session.name}": ExaBGP did not acknowledge '
                    f"{len(lines)} commands within {self.settings.ack_timeout} s"
                ) from None
            failed = [line for line, ok in zip(lines, results, strict=True) if not ok]
            if failed:
                self.counters["command_errors"] += len(failed)
                self.last_error = f"ExaBGP rejected {len(failed)} commands, first: {failed[0][:160]}"
                log.warning('BGPPeer "%s": %s', self.session.name, self.last_error)

    # --- events ---------------------------------------------------------------------------

    async def _on_relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        self._connected.set()
        while line := await reader.readline():
            event = api.parse_line(line.decode(errors="replace"))
            log.debug("exabgp: %s", line[:300])
            if event.kind == "ack":
                if self._acks:
                    fut = self._acks.popleft()
                    if not fut.done():
                        fut.set_result(event.ok)
            elif event.kind == "state":
                self._on_state(event)
            elif event.kind == "notification":
                self.last_error = f"notification: {event.reason}"
        if self._writer is writer:
            self._writer = None

    def _on_state(self, event: api.Event) -> None:
        if event.state == "up":
            self.state = "established"
            self.established_at = time.monotonic()
            self.counters["session_ups"] += 1
            log.info(
                'BGPPeer "%s": session established with %s', self.session.name, self.session.peer_address
            )
        elif event.state == "down":
            self._session_down(event.reason or "session down")
        elif event.state == "connected" and self.state != "established":
            self.state = "connect"

    def _session_down(self, reason: str) -> None:
        if self.state == "established":
            self.counters["session_downs"] += 1
            log.warning('BGPPeer "%s": session down: %s', self.session.name, reason)
        self.state = "connect"
        self.established_at = None
        self.last_error = reason

    async def _read_stderr(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stderr is not None
        while line := await proc.stderr.readline():
            text = line.decode(errors="replace").rstrip()
            if text:
                self.log_tail.append(text[-300:])

    # --- status ---------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        up = self.established_at
        return {
            "peer": self.session.peer_address,
            "state": self.state,
            "uptime_s": round(time.monotonic() - up, 1) if up is not None else 0,
            "prefixes_sent": len(self.routes) if self.state == "established" else 0,
            "prefixes": len(self.routes),
            "last_error": self.last_error,
            "pid": self.proc.pid if self.proc else None,
            **self.counters,
        }
