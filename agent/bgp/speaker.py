"""The node's BIRD process: started, reconfigured, watched, restarted and stopped by the agent.

A :class:`Speaker` owns ``<runDir>/bgp`` (0700, memory-backed in a pod): a lock file (one
agent per run directory), BIRD's control socket, and -- only for the moment BIRD reads
it -- the configuration file with the MD5 passwords (0600, deleted once parsed).

- :meth:`start` checks the configuration with ``bird -p -c`` (as Calico does), starts
  ``launcher.py AGENT_PID bird -f -c CONF -s CTL -R`` in its own session (process
  group) and connects to the control socket.  ``-R`` starts BIRD in graceful-restart
  recovery, so routers that kept our routes through a restart keep them until BIRD's
  End-of-RIB instead of dropping them when the session comes back.
- :meth:`configure` writes the new file and sends ``configure "FILE"``.  BIRD parses
  the whole file first (a bad file leaves the running configuration untouched) and
  restarts only the protocols whose lines changed.
- A watcher task restarts BIRD if it dies (back-off 0.5 s doubling to 30 s) with the
  latest configuration; a poller reads ``show protocols all`` and ``show bfd sessions``
  every ``poll_interval`` for status, and calls ``on_change`` when a session changes.
- :meth:`stop` asks BIRD to shut down through the control socket (``graceful restart``:
  sessions with graceful restart close without a Cease and their routes stay at the
  routers for the restart time, the others are withdrawn; ``down``: every session sends
  a Cease), waits ``stop_timeout``, then SIGKILLs the process group.  The agent only ever
  signals the process group it started.

If the agent dies, the launcher's parent-death signal kills BIRD (see
:mod:`ironlb.agent.bgp.launcher`).  See docs/decisions/0041-bird-speaker.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import shutil
import signal
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ironlb.agent.bgp import birdctl
from ironlb.agent.bgp.settings import BGPSettings
from ironlb.errors import IronLBError

log = logging.getLogger(__name__)

LAUNCHER = Path(__file__).with_name("launcher.py")
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0
#: ``configure`` reply codes that mean the new configuration is taken.
CONFIGURED = {3, 4, 5, 18}


class SpeakerError(IronLBError):
    """BIRD could not be started or reconfigured now; the agent retries on the next change."""


class Speaker:
    """One BIRD process for the whole node (see module docstring)."""

    def __init__(self, settings: BGPSettings, node: str = "") -> None:
        self.settings = settings
        self.node = node
        self.dir = settings.run_dir / "bgp"
        self.ctl_path = self.dir / "bird.ctl"
        self.config = ""  # what BIRD runs (or will run after a restart)
        self.proc: asyncio.subprocess.Process | None = None
        self.ctl: birdctl.Control | None = None
        self.protocols: dict[str, birdctl.ProtocolState] = {}
        self.bfd: dict[str, str] = {}  # neighbour -> BFD state
        self.state = "stopped"  # stopped, starting, running, restarting
        self.last_error = ""
        self.log_tail: deque[str] = deque(maxlen=50)
        self.on_change: Callable[[], None] = lambda: None
        self.counters = {"starts": 0, "reconfigures": 0, "reconfigure_errors": 0}
        self._lock_fd: int | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._seq = 0

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    # --- files ----------------------------------------------------------------------------

    def _claim_dir(self) -> None:
        """Create the private directory and lock it: a second agent on this runDir fails clearly."""
        self.settings.run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.dir.mkdir(mode=0o700, exist_ok=True)
        os.chmod(self.dir, 0o700)
        fd = os.open(self.dir / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise SpeakerError(
                f"runDir {self.settings.run_dir} is in use by another agent (its bgp/lock is held); "
                "give every agent its own runDir"
            ) from None
        self._lock_fd = fd
        for stale in self.dir.iterdir():  # left by an agent that was killed
            if stale.name != "lock":
                stale.unlink(missing_ok=True)

    def _release_dir(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _write(self, config: str) -> Path:
        self._seq += 1
        path = self.dir / f"bird-{self._seq}.conf"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(config)
        return path

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self, config: str) -> None:
        """Check ``config``, start BIRD on it and connect to its control socket."""
        self._stopping = False
        self._claim_dir()
        self.config = config
        try:
            await self._spawn()
        except BaseException:  # cancelled too: free the run directory for the next start, then re-raise
            self._release_dir()
            self.state = "stopped"
            raise
        self._tasks += [
            asyncio.create_task(self._watch(), name="bird-watch"),
            asyncio.create_task(self._poll(), name="bird-poll"),
        ]

    async def _check(self, conf: Path) -> None:
        try:
            proc = await asyncio.create_subprocess_exec(
                self.settings.bird, "-p", "-c", str(conf),
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT, env=_environment(),
            )  # fmt: skip
        except OSError as exc:
            raise SpeakerError(
                f"cannot run {self.settings.bird} (is BIRD 2 installed?): {exc.strerror}"
            ) from None
        out, _ = await proc.communicate()
        if proc.returncode != 0:
            raise SpeakerError(
                f"BIRD rejected the generated configuration: {out.decode(errors='replace').strip()}"
            )

    async def _spawn(self) -> None:
        self.state = "starting"
        self.counters["starts"] += 1
        conf = self._write(self.config)
        try:
            await self._check(conf)
            self.ctl_path.unlink(missing_ok=True)
            argv = [sys.executable, "-I", "-S", str(LAUNCHER), str(os.getpid()), self.settings.bird]
            argv += ["-f", "-c", str(conf), "-s", str(self.ctl_path), "-R"]
            self.proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE, env=_environment(), cwd=str(self.dir), start_new_session=True,
            )  # fmt: skip
            self._tasks.append(asyncio.create_task(self._read_stderr(self.proc), name="bird-stderr"))
            await self._connect()
        except BaseException:  # cancelled too: never leave a half-started BIRD behind, then re-raise
            await self._kill()
            raise
        finally:
            conf.unlink(missing_ok=True)  # parsed: no password left on disk
        self.state = "running"
        log.info("BIRD started (pid %d)", self.proc.pid)

    async def _connect(self) -> None:
        deadline = time.monotonic() + self.settings.start_timeout
        while True:
            assert self.proc is not None
            if self.proc.returncode is not None:
                raise SpeakerError(f"BIRD exited with {self.proc.returncode} at start: {self._tail()}")
            ctl = birdctl.Control(self.ctl_path)
            try:
                await ctl.open()
                self.ctl = ctl
                return
            except birdctl.ControlError:
                if time.monotonic() > deadline:
                    raise SpeakerError(
                        f"BIRD did not open its control socket within {self.settings.start_timeout} s: "
                        f"{self._tail()}"
                    ) from None
                await asyncio.sleep(0.02)

    async def configure(self, config: str) -> None:
        """Make BIRD run ``config``; only protocols whose lines changed are restarted."""
        self.config = config
        if self.ctl is None or not self.running:
            raise SpeakerError(f"BIRD is {self.state}; the new configuration is used when it is back")
        conf = self._write(config)
        try:
            reply = await self.ctl.command(f'configure "{conf}"', self.settings.start_timeout)
        except birdctl.ControlError as exc:
            raise SpeakerError(f"BIRD did not take the new configuration: {exc}") from None
        finally:
            conf.unlink(missing_ok=True)
        self.counters["reconfigures"] += 1
        if reply.code not in CONFIGURED:
            self.counters["reconfigure_errors"] += 1
            self.last_error = f"BIRD rejected the configuration: {reply.text.replace(str(conf), 'CONF')}"
            raise SpeakerError(self.last_error)

    async def stop(self, graceful: bool = True) -> None:
        """Shut BIRD down (``graceful restart`` or ``down``), then kill what is left. Idempotent."""
        self._stopping = True
        for task in self._tasks:
            if task.get_name() != "bird-stderr":
                task.cancel()
        if self.running:
            with contextlib.suppress(birdctl.ControlError):
                if self.ctl is None or not self.ctl.connected:  # e.g. a status read was cancelled
                    self.ctl = birdctl.Control(self.ctl_path)
                    await self.ctl.open()
                await self.ctl.command("graceful restart" if graceful else "down", self.settings.stop_timeout)
        await self._kill()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        self._release_dir()
        self.state = "stopped"
        self.protocols, self.bfd = {}, {}

    async def _kill(self) -> None:
        if self.ctl is not None:
            self.ctl.close()
            self.ctl = None
        proc = self.proc
        if proc is not None and proc.returncode is None:
            try:
                await asyncio.wait_for(proc.wait(), self.settings.stop_timeout if self._stopping else 0)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)  # own session: pgid == pid
                await proc.wait()
        self.proc = None

    async def _watch(self) -> None:
        delay = BACKOFF_FIRST
        while not self._stopping:
            if self.proc is not None:
                code = await self.proc.wait()
                if self._stopping:
                    return
                self.last_error = f"BIRD exited with {code}: {self._tail()}"
                log.warning("%s; restarting it", self.last_error)
                await self._kill()
                self.protocols, self.bfd = {}, {}
                self._changed()
            self.state = "restarting"
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX)
            try:
                await self._spawn()
                delay = BACKOFF_FIRST
            except (SpeakerError, OSError) as exc:
                self.last_error = str(exc)
                log.warning("BIRD restart failed: %s", exc)

    # --- status ---------------------------------------------------------------------------

    async def refresh(self) -> None:
        """Read session and BFD state from BIRD now."""
        if self.ctl is None:
            return
        protocols = birdctl.parse_protocols(await self.ctl.command("show protocols all"))
        bfd = {}
        if any(p.proto == "BFD" for p in protocols.values()):
            bfd = birdctl.parse_bfd_sessions(await self.ctl.command("show bfd sessions"))
        before = {n: (p.state, p.bgp_state, p.exported) for n, p in self.protocols.items()}
        self.protocols, self.bfd = protocols, bfd
        if before != {n: (p.state, p.bgp_state, p.exported) for n, p in protocols.items()}:
            self._changed()

    async def _poll(self) -> None:
        while not self._stopping:
            with contextlib.suppress(birdctl.ControlError):
                await self.refresh()
            await asyncio.sleep(self.settings.poll_interval)

    def _changed(self) -> None:
        self.on_change()

    async def _read_stderr(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stderr is not None
        while line := await proc.stderr.readline():
            text = line.decode(errors="replace").rstrip()
            if not text:
                continue
            self.log_tail.append(text[-300:])
            serious = any(tag in text for tag in ("<ERR>", "<WARN>", "<BUG>", "<FATAL>", "<AUTH>"))
            serious = serious and not text.endswith("Shutdown completed")  # BIRD says it as FATAL
            log.log(logging.WARNING if serious else logging.INFO, "bird: %s", text[-300:])

    def _tail(self) -> str:
        return " | ".join(list(self.log_tail)[-3:]) or "no output"

    def status(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "pid": self.proc.pid if self.proc else None,
            "last_error": self.last_error,
            **self.counters,
        }


def _environment() -> dict[str, str]:
    """BIRD's environment: a search path and the C locale; nothing else of the agent's."""
    return {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "LC_ALL": "C"}
