"""Build and tear down the namespace lab (see :mod:`lab` for the topology and API).

Everything is done with the ``ip`` tool (the recipe in shared/notes/lab.md).  Names: each
run picks a tag ``ilb<pid%100000><2 hex>`` and every namespace is ``<tag>-<host>``, so
parallel runs by several engineers never collide; interface names live inside the run's
own namespaces and are short fixed names (``eth0``, ``v-node1``).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

#: VIP ranges every lab node accepts locally (AnyIP); pools in tests come from these.
VIP_V4_NET = "10.77.0.192/26"
VIP_V6_NET = "fd77::c0/122"
#: TCP port of the per-node "who am I" server (lab.vipserver).
VIP_PORT = 8080
#: Hosts other than the nodes: name -> (LAN, host octet/suffix).
HOSTS_FIXED: dict[str, tuple[str, int]] = {
    "router": ("lan", 1),
    "client": ("lan", 100),
    "extclient": ("ext", 100),
}

_NETS = {"lan": ("10.77.0", "fd77:"), "ext": ("10.79.0", "fd79:")}
_LAN_INDEX = {"lan": 0, "ext": 1}


class LabError(RuntimeError):
    """A lab command failed; the message carries the command and its stderr."""


def _ip(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["ip", *argv], capture_output=True, text=True, timeout=60)  # rtnl may be busy
    if check and proc.returncode != 0:
        raise LabError(f"ip {' '.join(argv)}: {proc.stderr.strip() or proc.returncode}")
    return proc


def _cleanup(namespaces: list[str], procs: list[subprocess.Popen[bytes]]) -> None:
    """Kill tracked processes by PID, then anything left in our namespaces; delete them."""
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)  # own session: pgid == pid
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
    for ns in reversed(namespaces):
        pids = _ip("netns", "pids", ns, check=False).stdout.split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        _ip("netns", "del", ns, check=False)
    namespaces.clear()
    procs.clear()


def _exit_on_sigterm() -> None:
    """Make SIGTERM (e.g. `timeout`) exit normally, so atexit teardown still runs."""
    import threading

    if (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    ):
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


class Lab:
    """One lab run: namespaces, links, addresses, tracked processes and a work directory."""

    def __init__(
        self, nodes: int = 3, *, workdir: str | os.PathLike[str] | None = None, keep_workdir: bool = False
    ) -> None:
        if not 1 <= nodes <= 80:
            raise ValueError(f"nodes={nodes}: the lab holds 1-80 nodes")
        self.tag = f"ilb{os.getpid() % 100000}{secrets.token_hex(1)}"
        self.nodes = [f"node{i}" for i in range(1, nodes + 1)]
        self.hosts: dict[str, tuple[str, int]] = {
            **{n: ("lan", 10 + i) for i, n in enumerate(self.nodes, 1)},
            **HOSTS_FIXED,
        }
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix=f"{self.tag}-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._keep_workdir = keep_workdir or workdir is not None
        self._namespaces: list[str] = []
        self._procs: list[subprocess.Popen[bytes]] = []
        self._names: dict[int, str] = {}
        self._built = False
        self._finalizer = weakref.finalize(self, _cleanup, self._namespaces, self._procs)
        atexit.register(self._finalizer)
        _exit_on_sigterm()

    # --- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> Lab:
        self.build()
        return self

    def __exit__(self, *exc: object) -> None:
        self.teardown()

    def build(self) -> Lab:
        """Create the topology. On any failure everything created so far is removed."""
        if self._built:
            return self
        try:
            self._build()
        except BaseException:
            self.teardown()
            raise
        self._built = True
        return self

    def _build(self) -> None:
        br = self.ns("bridge")
        self._add_ns(br)
        for lan, dev in (("lan", "br0"), ("ext", "br1")):
            _ip("-n", br, "link", "add", dev, "type", "bridge", "forward_delay", "0")
            _ip("-n", br, "link", "set", dev, "type", "bridge", "stp_state", "0")
            _ip("-n", br, "link", "set", dev, "up")
            del lan
        for host in self.hosts:
            self._add_ns(self.ns(host))
        for host in self.hosts:
            self._sysctl(
                host,
                "net.ipv6.conf.all.accept_dad=0",
                "net.ipv6.conf.default.accept_dad=0",
                "net.ipv4.conf.all.rp_filter=0",
                "net.ipv4.conf.default.rp_filter=0",
            )
        for host, (lan, _octet) in self.hosts.items():
            self._attach(host, "eth0", lan)
        self._attach("router", "eth1", "ext")
        for host in self.hosts:
            ns = self.ns(host)
            _ip("-n", ns, "link", "set", "lo", "up")
            if host != "router":
                lan = self.hosts[host][0]
                _ip("-n", ns, "route", "add", "default", "via", f"{_NETS[lan][0]}.1")
                _ip("-n", ns, "-6", "route", "add", "default", "via", f"{_NETS[lan][1]}:1")
        self._sysctl("router", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
        for node in self.nodes:
            ns = self.ns(node)
            self._sysctl(node, "net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf.all.arp_announce=2")
            _ip("-n", ns, "route", "add", "local", VIP_V4_NET, "dev", "lo")
            _ip("-n", ns, "-6", "route", "add", "local", VIP_V6_NET, "dev", "lo")

    def _add_ns(self, ns: str) -> None:
        _ip("netns", "add", ns)
        self._namespaces.append(ns)

    def _attach(self, host: str, dev: str, lan: str) -> None:
        br, ns = self.ns("bridge"), self.ns(host)
        peer = f"{'v' if lan == 'lan' else 'x'}-{host}"[:15]
        octet = self.hosts[host][1] if dev == "eth0" else 1
        mac = self.mac(host, lan if dev == "eth0" else "ext")
        v4, v6 = _NETS[lan]
        _ip(
            "link", "add", dev, "netns", ns, "address", mac, "type", "veth", "peer", "name", peer, "netns", br
        )
        _ip("-n", br, "link", "set", peer, "master", "br0" if lan == "lan" else "br1")
        _ip("-n", br, "link", "set", peer, "up")
        _ip("-n", ns, "addr", "add", f"{v4}.{octet}/24", "dev", dev)
        _ip("-n", ns, "-6", "addr", "add", f"{v6}:{octet}/64", "dev", dev, "nodad")  # fd77::11 for .11
        _ip("-n", ns, "link", "set", dev, "up")

    def _sysctl(self, host: str, *settings: str) -> None:
        self.run(host, "sysctl", "-q", "-w", *settings, timeout=10)

    def teardown(self) -> None:
        """Kill every process (by PID) and delete every namespace. Idempotent."""
        _cleanup(self._namespaces, self._procs)
        self._built = False
        if not self._keep_workdir and not os.environ.get("IRONLB_LAB_KEEP"):
            shutil.rmtree(self.workdir, ignore_errors=True)

    # --- addressing -----------------------------------------------------------------------

    def ns(self, host: str) -> str:
        """Namespace name of ``host`` ("bridge" is the namespace holding both bridges)."""
        if host != "bridge" and host not in self.hosts:
            raise KeyError(f"host {host!r} is not in this lab; hosts: {', '.join(self.hosts)}")
        return f"{self.tag}-{host}"

    def addr(self, host: str, family: int = 4, lan: str | None = None) -> str:
        """``host``'s address on its LAN (the router: ``lan="ext"`` for its ext side)."""
        own_lan, octet = self.hosts[host]
        lan = lan or own_lan
        if host == "router" and lan == "ext":
            octet = 1
        v4, v6 = _NETS[lan]
        return f"{v4}.{octet}" if family == 4 else f"{v6}:{octet}"

    def mac(self, host: str, lan: str | None = None) -> str:
        own_lan, octet = self.hosts[host]
        lan = lan or own_lan
        if host == "router" and lan == "ext":
            octet = 1
        return f"02:77:00:00:{_LAN_INDEX[lan]:02x}:{octet:02x}"  # .11 -> :0b

    # --- processes ------------------------------------------------------------------------

    def run(
        self, host: str, *argv: str, timeout: float = 10, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` in ``host``'s namespace; raise LabError (with stderr) on failure."""
        cmd = ["ip", "netns", "exec", self.ns(host), *argv]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=input)
        except subprocess.TimeoutExpired as exc:
            raise LabError(f"{host}: {' '.join(argv)}: timed out after {timeout} s") from exc
        if check and proc.returncode != 0:
            raise LabError(f"{host}: {' '.join(argv)}: exit {proc.returncode}: {proc.stderr.strip()}")
        return proc

    def spawn(
        self,
        host: str,
        argv: Sequence[str],
        *,
        name: str | None = None,
        env: Mapping[str, str] | None = None,
        **popen: Any,
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` in ``host``'s namespace, logging to ``workdir/<name>.log``; tracked."""
        name = name or f"{host}-{Path(argv[0]).name}"
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        root = str(Path(__file__).resolve().parent.parent)
        full_env["PYTHONPATH"] = root + (
            os.pathsep + full_env["PYTHONPATH"] if full_env.get("PYTHONPATH") else ""
        )
        try:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", self.ns(host), *argv],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=full_env,
                start_new_session=True,
                cwd=self.workdir,
                **popen,
            )
        finally:
            log.close()
        self._procs.append(proc)
        self._names[proc.pid] = name
        return proc

    def stop(self, proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 10) -> int:
        """Signal ``proc`` (by PID), wait for it, return its exit code (SIGKILL after timeout)."""
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, sig)  # `ip netns exec` execs argv, so this is the program itself
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        return int(proc.returncode)

    def log(self, name: str) -> str:
        """Contents of a spawned process's log (by spawn name)."""
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start_vip_servers(self, port: int = VIP_PORT) -> None:
        """Start the "reply with my node name" TCP server on every node; wait until they listen."""
        for node in self.nodes:
            self.spawn(
                node,
                [sys.executable, "-m", "lab.vipserver", "--name", node, "--port", str(port)],
                name=f"vipserver-{node}",
            )
        deadline = time.monotonic() + 10
        for node in self.nodes:
            while True:
                out = self.run(node, "ss", "-Htln", f"sport = :{port}", check=False).stdout
                if out.strip():
                    break
                if time.monotonic() > deadline:
                    raise LabError(
                        f"vipserver on {node} did not listen on :{port}: {self.log(f'vipserver-{node}')}"
                    )
                time.sleep(0.02)
