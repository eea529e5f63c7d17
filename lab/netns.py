"""Build and tear down the namespace lab (see :mod:`lab` for the topology and API).

Everything is done with the ``ip`` tool (the recipe in shared/notes/lab.md).  Names: each
run picks a tag ``ilb<pid%100000><2 hex>`` and every namespace is ``<tag>-<host>``, so
parallel runs by several engineers never collide; interface names live inside the run's
own namespaces and are short fixed names (``eth0``, ``v-node1``).

The addressing is a :class:`Topology`: the default one is the fixed lab of :mod:`lab`
(10.77.0.0/24 + fd77::/64, one router at .1); :mod:`lab.cluster.topology` derives one
from a rendered stack (its LAN prefixes, one router per BGP peer address, the nodes' LAN
interface name, every pool range accepted on every node).  A host numbered ``n`` on a LAN
has the ``n``-th IPv4 address of the prefix and, on IPv6, the prefix plus ``n`` read as
hex digits (host 11 -> 10.77.0.11 and fd77::11), so both are easy to tell apart by eye.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import functools
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Any, TypeVar

from lab.errors import LabError
from lab.waiting import wait_for

T = TypeVar("T")

#: VIP ranges every lab node accepts locally (AnyIP); pools in tests come from these.
VIP_V4_NET = "10.77.0.192/26"
VIP_V6_NET = "fd77::c0/122"
#: TCP port of the per-node "who am I" server (lab.vipserver).
VIP_PORT = 8080
#: Hosts other than the nodes in the default topology: name -> (LAN, host number).
HOSTS_FIXED: dict[str, tuple[str, int]] = {
    "router": ("lan", 1),
    "client": ("lan", 100),
    "extclient": ("ext", 100),
}

_LAN_INDEX = {"lan": 0, "ext": 1}


@dataclass(frozen=True)
class Topology:
    """Addressing of one lab.  The defaults are the fixed lab described in :mod:`lab`.

    - ``lan``/``ext``: (IPv4, IPv6) prefixes of the nodes' LAN and of the LAN behind the
      routers (where ``extclient`` lives);
    - ``routers``: host numbers of the routers on the LAN; the first is ``router``, the next
      ``router2``, ...; router ``k`` (1-based) is host ``k`` on the ext LAN;
    - ``node_interface``: the name of each node's LAN interface (``bond0`` in prod);
    - ``anyip``: prefixes every node accepts locally (AnyIP routes on ``lo``: the lab's
      stand-in for kube-proxy, see :mod:`lab`);
    - ``extra``: more LAN hosts, name -> host number (e.g. the API server's host);
    - ``node_base``: node ``i`` (1-based) is host ``node_base + i``.
    """

    lan: tuple[str, str] = ("10.77.0.0/24", "fd77::/64")
    ext: tuple[str, str] = ("10.79.0.0/24", "fd79::/64")
    routers: tuple[int, ...] = (1,)
    node_interface: str = "eth0"
    anyip: tuple[str, ...] = (VIP_V4_NET, VIP_V6_NET)
    extra: Mapping[str, int] = field(default_factory=dict)
    client: int = 100
    ext_client: int = 100
    node_base: int = 10

    def __post_init__(self) -> None:
        for name, (v4, v6) in (("lan", self.lan), ("ext", self.ext)):
            if not isinstance(ip_network(v4), IPv4Network) or not isinstance(ip_network(v6), IPv6Network):
                raise ValueError(f"topology {name}={self.lan}: must be (IPv4 prefix, IPv6 prefix)")
        if not self.routers:
            raise ValueError("topology routers: at least one router")

    def router_names(self) -> list[str]:
        return ["router" if i == 0 else f"router{i + 1}" for i in range(len(self.routers))]

    def fixed_hosts(self) -> dict[str, tuple[str, int]]:
        """Every host but the nodes: name -> (LAN, host number)."""
        hosts = {name: ("lan", n) for name, n in zip(self.router_names(), self.routers, strict=True)}
        hosts.update({"client": ("lan", self.client), "extclient": ("ext", self.ext_client)})
        hosts.update({name: ("lan", n) for name, n in self.extra.items()})
        return hosts

    def host_address(self, lan: str, number: int, family: int) -> str:
        v4, v6 = self.lan if lan == "lan" else self.ext
        if family == 4:
            return str(ip_network(v4)[number])
        return str(ip_network(v6)[int(str(number), 16)])  # host 11 -> ::11

    def prefix_len(self, lan: str, family: int) -> int:
        v4, v6 = self.lan if lan == "lan" else self.ext
        return ip_network(v4 if family == 4 else v6).prefixlen


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


_CLONE_NEWNET = 0x40000000


def enter_netns(ns: str) -> None:
    """Move the calling thread (only it) into network namespace ``ns`` (by name)."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if libc.setns(fd, _CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns({ns})")
    finally:
        os.close(fd)


def call_in_netns(ns: str, fn: Callable[[], T], timeout: float = 60) -> T:
    """Run ``fn`` on a new thread that first joins network namespace ``ns`` (by name)."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            enter_netns(ns)
            box["value"] = fn()
        except BaseException as exc:  # handed to the caller's thread, re-raised there
            box["error"] = exc

    thread = threading.Thread(target=target, name=f"netns-{ns}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise LabError(f"call in namespace {ns} did not finish in {timeout} s")
    if "error" in box:
        raise box["error"]
    result: T = box["value"]
    return result


def _exit_on_sigterm() -> None:
    """Make SIGTERM (e.g. `timeout`) exit normally, so atexit teardown still runs."""
    if (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    ):
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


class Lab:
    """One lab run: namespaces, links, addresses, tracked processes and a work directory."""

    def __init__(
        self,
        nodes: int = 3,
        *,
        topology: Topology | None = None,
        workdir: str | os.PathLike[str] | None = None,
        keep_workdir: bool = False,
    ) -> None:
        if not 1 <= nodes <= 80:
            raise ValueError(f"nodes={nodes}: the lab holds 1-80 nodes")
        self.topology = topology or Topology()
        self.tag = f"ilb{os.getpid() % 100000}{secrets.token_hex(1)}"
        self.nodes = [f"node{i}" for i in range(1, nodes + 1)]
        self.routers = self.topology.router_names()
        self.hosts: dict[str, tuple[str, int]] = {
            **{n: ("lan", self.topology.node_base + i) for i, n in enumerate(self.nodes, 1)},
            **self.topology.fixed_hosts(),
        }
        used: dict[tuple[str, int], str] = {}
        for host, where in self.hosts.items():
            if where in used:
                raise ValueError(f"hosts {used[where]} and {host} share {where[0]} host number {where[1]}")
            used[where] = host
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix=f"{self.tag}-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._keep_workdir = keep_workdir or workdir is not None
        self._namespaces: list[str] = []
        self._extra_ns: dict[str, str] = {}
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
            self._attach(host, self.dev(host), lan)
        for router in self.routers:
            self._attach(router, "eth1", "ext")
        for host in self.hosts:
            ns = self.ns(host)
            _ip("-n", ns, "link", "set", "lo", "up")
            if host not in self.routers:  # the first router is everyone's gateway
                lan = self.hosts[host][0]
                _ip("-n", ns, "route", "add", "default", "via", self.addr("router", 4, lan))
                _ip("-n", ns, "-6", "route", "add", "default", "via", self.addr("router", 6, lan))
        for router in self.routers:
            self._sysctl(router, "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
        for node in self.nodes:
            ns = self.ns(node)
            self._sysctl(node, "net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf.all.arp_announce=2")
            for net in self.topology.anyip:
                _ip("-n", ns, "-6" if ":" in net else "-4", "route", "add", "local", net, "dev", "lo")

    def _add_ns(self, ns: str) -> None:
        _ip("netns", "add", ns)
        self._namespaces.append(ns)

    def add_netns(self, name: str) -> str:
        """Create one more namespace ``<tag>-<name>`` (e.g. a pod's), deleted at teardown.
        ``name`` then works like a host name in :meth:`run`, :meth:`spawn` and :meth:`call`."""
        if name in self.hosts or name in self._extra_ns:
            raise ValueError(f"namespace {name!r} already exists in this lab")
        ns = f"{self.tag}-{name}"
        self._add_ns(ns)
        self._extra_ns[name] = ns
        return ns

    def call(self, host: str, fn: Callable[[], T], timeout: float = 60) -> T:
        """Run ``fn`` on a fresh thread inside ``host``'s network namespace; return its result.
        (setns(2) on a thread moves only that thread, so sockets it opens live in ``host``.)"""
        return call_in_netns(self.ns(host), fn, timeout)

    def _attach(self, host: str, dev: str, lan: str) -> None:
        br, ns = self.ns("bridge"), self.ns(host)
        peer = self.switch_port(host, lan)
        pfx4, pfx6 = self.topology.prefix_len(lan, 4), self.topology.prefix_len(lan, 6)
        _ip(
            "link", "add", dev, "netns", ns, "address", self.mac(host, lan), "type", "veth",
            "peer", "name", peer, "netns", br,
        )  # fmt: skip
        _ip("-n", br, "link", "set", peer, "master", "br0" if lan == "lan" else "br1")
        _ip("-n", br, "link", "set", peer, "up")
        _ip("-n", ns, "addr", "add", f"{self.addr(host, 4, lan)}/{pfx4}", "dev", dev)
        _ip("-n", ns, "-6", "addr", "add", f"{self.addr(host, 6, lan)}/{pfx6}", "dev", dev, "nodad")
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
        if host in self._extra_ns:
            return self._extra_ns[host]
        if host != "bridge" and host not in self.hosts:
            raise KeyError(f"host {host!r} is not in this lab; hosts: {', '.join(self.hosts)}")
        return f"{self.tag}-{host}"

    def dev(self, host: str) -> str:
        """``host``'s interface on its own LAN (a router's ext side is always ``eth1``)."""
        return self.topology.node_interface if host in self.nodes else "eth0"

    def _number(self, host: str, lan: str | None) -> tuple[str, int]:
        own_lan, number = self.hosts[host]
        lan = lan or own_lan
        if host in self.routers and lan == "ext":
            number = self.routers.index(host) + 1
        return lan, number

    def addr(self, host: str, family: int = 4, lan: str | None = None) -> str:
        """``host``'s address on its LAN (a router: ``lan="ext"`` for its ext side)."""
        lan, number = self._number(host, lan)
        return self.topology.host_address(lan, number, family)

    def mac(self, host: str, lan: str | None = None) -> str:
        lan, number = self._number(host, lan)
        return f"02:77:00:00:{_LAN_INDEX[lan]:02x}:{number:02x}"  # .11 -> :0b

    def switch_port(self, host: str, lan: str | None = None) -> str:
        """The bridge port of ``host``'s link, in ``ns("bridge")``: setting it down unplugs the
        host's cable (its side sees carrier loss and keeps its addresses and routes, unlike
        ``ip link set eth0 down`` in the host, which flushes its IPv6 addresses and routes)."""
        return f"{'v' if (lan or self.hosts[host][0]) == 'lan' else 'x'}-{host}"[:15]

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

    def exited(self, proc: subprocess.Popen[bytes]) -> Callable[[], str | None]:
        """An ``abort`` for :mod:`lab.waiting`: once ``proc`` has exited, its exit code and log tail."""
        name = self._names.get(proc.pid, str(proc.pid))

        def exited() -> str | None:
            return (
                None if proc.poll() is None else f"{name} exited {proc.returncode}:\n{self.log(name)[-3000:]}"
            )

        return exited

    def start_vip_servers(self, port: int = VIP_PORT) -> None:
        """Start the "reply with my node name" TCP server on every node; wait until they listen."""
        argv = [sys.executable, "-m", "lab.vipserver", "--port", str(port)]
        procs = {n: self.spawn(n, [*argv, "--name", n], name=f"vipserver-{n}") for n in self.nodes}
        for node, proc in procs.items():
            wait_for(
                f"the vipserver on {node} to listen on :{port}",
                functools.partial(self.run, node, "ss", "-Htln", f"sport = :{port}", check=False),
                lambda done: done.stdout.strip(),
                interval=0.02,
                abort=self.exited(proc),
            )
