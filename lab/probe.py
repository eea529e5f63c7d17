"""Client-side probes for lab tests and benchmarks: who answers ARP/NDP, who serves TCP.

All probes run inside a lab namespace through :meth:`lab.Lab.run`, with bounded timeouts.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from lab.errors import LabError
from lab.netns import VIP_PORT, Lab
from lab.waiting import wait_for

_MAC = re.compile(r"\[([0-9a-fA-F:]{17})\]")
_NDISC_MAC = re.compile(r"Target link-layer address:\s*([0-9A-Fa-f:]{17})")


def arping_macs(
    lab: Lab, host: str, ip: str, count: int = 1, dev: str = "eth0", timeout: float = 2
) -> set[str]:
    """MACs that answered ``count`` ARP requests for ``ip`` (lower case; empty when none)."""
    proc = lab.run(
        host, "arping", "-I", dev, "-c", str(count), "-w", str(timeout), ip, timeout=timeout + 5, check=False
    )
    return {m.lower() for m in _MAC.findall(proc.stdout)}


def ndisc_mac(lab: Lab, host: str, ip: str, dev: str = "eth0", tries: int = 2) -> str | None:
    """The MAC that answered a Neighbour Solicitation for ``ip`` (ndisc6), or None."""
    proc = lab.run(host, "ndisc6", "-n", "-r", str(tries), "-w", "500", ip, dev, timeout=10, check=False)
    found = _NDISC_MAC.search(proc.stdout)
    return found.group(1).lower() if found else None


def neigh_mac(lab: Lab, host: str, ip: str, dev: str = "eth0") -> str | None:
    """The kernel neighbour entry for ``ip`` on ``host`` (``ip neigh``), or None."""
    out = lab.run(host, "ip", "neigh", "show", ip, "dev", dev, check=False).stdout
    found = re.search(r"lladdr ([0-9a-f:]{17})", out)
    return found.group(1) if found else None


class NeighWatch:
    """Every change of ``host``'s neighbour entries (``ip monitor neigh``) while it runs.

    ``macs(ip)`` lists the link-layer addresses the entry for ``ip`` took, in order: a
    neighbour entry that "never flips" shows one MAC (or none).
    """

    def __init__(self, lab: Lab, host: str) -> None:
        self.lab, self.name = lab, f"neighwatch-{host}-{time.monotonic_ns()}"
        self.proc: subprocess.Popen[bytes] = lab.spawn(host, ["ip", "monitor", "neigh"], name=self.name)
        wait_subscribed(lab, host, self.proc)  # before the caller acts, or its first change is missed

    def stop(self) -> None:
        self.lab.stop(self.proc, signal.SIGTERM, timeout=5)

    def macs(self, ip: str) -> list[str]:
        out = []
        for line in self.lab.log(self.name).splitlines():
            words = line.split()
            if words and words[0] == ip and "lladdr" in words:
                out.append(words[words.index("lladdr") + 1].lower())
        return out


def netlink_groups(lab: Lab, host: str, pid: int) -> int:
    """The netlink multicast groups (first 32, a bit mask) process ``pid`` listens to in ``host``'s
    namespace; 0 until it has bound its socket (``/proc/net/netlink`` there: Pid is the port id,
    which the kernel sets to the process id for its first socket)."""
    groups = 0
    for line in lab.run(host, "cat", "/proc/net/netlink").stdout.splitlines()[1:]:
        words = line.split()
        if len(words) > 3 and words[2] == str(pid):
            groups |= int(words[3], 16)
    return groups


def wait_subscribed(lab: Lab, host: str, proc: subprocess.Popen[bytes], timeout: float = 10) -> int:
    """Wait until ``proc`` (an ``ip monitor``) has joined its netlink groups; return them."""
    return wait_for(
        f"pid {proc.pid} to subscribe to netlink events in {host}",
        lambda: netlink_groups(lab, host, proc.pid),
        timeout=timeout,
        interval=0.02,
        abort=lab.exited(proc),
    )


def log_line(
    lab: Lab,
    name: str,
    proc: subprocess.Popen[bytes],
    ok: Callable[[str], object],
    what: str,
    timeout: float = 20,
) -> str:
    """The first line spawned process ``name`` wrote to its log for which ``ok`` holds
    (waiting for it; giving up, with its log, when it exits without one)."""
    lines = wait_for(
        what,
        lambda: lab.log(name).splitlines(),
        lambda found: any(ok(line) for line in found),
        timeout=timeout,
        interval=0.02,
        abort=lab.exited(proc),
    )
    return next(line for line in lines if ok(line))


def rss_mb(pid: int) -> float:
    """Resident memory of a process, in MiB (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise LabError(f"no VmRSS for pid {pid}")


def who_serves(lab: Lab, host: str, ip: str, port: int = VIP_PORT, timeout: float = 2) -> str | None:
    """Connect from ``host`` to ip:port; the node name the vipserver replied, or None (also on timeout)."""
    try:
        proc = lab.run(
            host, "nc", "-w", str(max(1, int(timeout))), "-n", ip, str(port), timeout=timeout + 5, check=False
        )
    except LabError:
        return None
    name = proc.stdout.strip()
    return name or None
