"""Issue 10's hostile LAN against a deployed stack with layer-2 pools (dev): a LAN host that is no node.

The *intruder* is an extra LAN host (``Cluster(..., extra_hosts=(INTRUDER,))``, see
:mod:`lab.cluster.topology`).  It floods the membership port, spoofs ARP, and holds or claims
pool addresses.  Each step here runs one attack and returns what it changed, read where it
shows, never from a test-only hook:

- **who announces** each layer-2 address: every speaker's NodeState (its own report, through
  the API), and the LAN client's neighbour table (``ip monitor neigh``: a gratuitous ARP or NA
  that moves an entry shows there);
- **conflicts**: each node's NodeState, as the controller's ServiceAccount reads them, the
  controller's published ``ironlb.io/announcements``, the speakers' Warning Events, and the
  speakers' metrics (claims, defences, failovers);
- **memory**: the speaker pod's RSS, all its processes;
- **what was answered**: :class:`~lab.cluster.exposure.Watch` at the client.

The Services under attack are the platform's own (created as admin in ``default``), each
pinned to one pool address, so every step knows its address in advance.
"""

from __future__ import annotations

import base64
import contextlib
import re
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import netaddr

from ironlb.agent.membership.wire import key_id as wire_key_id
from ironlb.model import ANN_IPS
from lab import arpping
from lab.cluster import checks, scenario
from lab.cluster.deploy import Cluster
from lab.cluster.kubelet import rss_bytes
from lab.flood import flood_result, start_membership_flood
from lab.probe import NeighWatch
from lab.waiting import wait_for

INTRUDER = "intruder"
GROUP = "ironlb.io/v1alpha1"
MEMBERSHIP_TROUBLE = (" is dead", " is suspect", "cut off")  # the speaker's membership log lines


# --- reading the cluster ---------------------------------------------------------------------------


def speaker(cluster: Cluster, node: str) -> str:
    """The DaemonSet pod on ``node``."""
    return next(p.name for p in cluster.pods() if p.workload_kind == "DaemonSet" and p.node == node)


def nodestates(cluster: Cluster) -> dict[str, Mapping[str, Any]]:
    return {str(d["metadata"]["name"]): d.get("status") or {} for d in cluster.admin.list(GROUP, "NodeState")}


def owners(cluster: Cluster, states: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, set[str]]:
    """Layer-2 address -> the nodes whose NodeState says they announce it."""
    out: dict[str, set[str]] = {}
    for node, status in (states or nodestates(cluster)).items():
        for row in status.get("announcements") or ():
            if row.get("mode") == "layer2" and row.get("state") == "announcing":
                out.setdefault(str(row["ip"]), set()).add(node)
    return out


def conflicts(cluster: Cluster, ip: str) -> dict[str, Mapping[str, Any]]:
    """node -> its NodeState's conflict row for ``ip``."""
    return {
        node: row
        for node, status in nodestates(cluster).items()
        for row in status.get("conflicts") or ()
        if row.get("ip") == ip
    }


def metrics_port(cluster: Cluster) -> int:
    """The speaker's container port named ``metrics``, as rendered."""
    for m in cluster.manifests:
        if m["kind"] == "DaemonSet":
            for c in m["spec"]["template"]["spec"]["containers"]:
                for port in c.get("ports") or ():
                    if port.get("name") == "metrics":
                        return int(port["containerPort"])
    raise LookupError("the rendered speaker has no port named metrics")


def metric(cluster: Cluster, node: str, name: str) -> float:
    """The sum of every sample of ``name`` on the node speaker's /metrics (its rendered port)."""
    url = f"http://{cluster.the_lab.addr(node)}:{metrics_port(cluster)}/metrics"
    text = cluster.the_lab.call(node, lambda: urllib.request.urlopen(url, timeout=5).read().decode())
    found = re.findall(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", text, re.MULTILINE)
    return sum(float(v) for v in found)


def free_l2(cluster: Cluster, per_pool: int = 64) -> dict[int, list[str]]:
    """Addresses of the layer-2 pools no Service holds, per family, lowest first."""
    topo = cluster.topology
    held = {ip for ips in checks.service_addresses(cluster).values() for ip in ips}
    out: dict[int, list[str]] = {4: [], 6: []}
    for pool in sorted(topo.l2_pools):
        for rng in topo.pool_ranges[pool]:
            for k in range(min(rng.size, per_pool)):
                addr = str(netaddr.IPAddress(rng.first + k, rng.version))
                if addr not in held:
                    out[rng.version].append(addr)
    return out


def pod_rss_mb(cluster: Cluster, pod: str) -> float:
    return rss_bytes(cluster.worker(pod).pids()) / 2**20


def key_id(cluster: Cluster) -> int:
    """The membership key's public id, as a LAN sniffer reads it off any heartbeat."""
    for m in cluster.manifests:
        if m["kind"] == "Secret" and m["metadata"]["name"].endswith("membership"):
            raw = (m.get("stringData") or {}).get("key") or base64.b64decode(
                (m.get("data") or {})["key"]
            ).decode()
            return wire_key_id(str(raw).encode().strip())
    raise LookupError("the render holds no membership Secret")


# --- the intruder and the platform's Services --------------------------------------------------------


def hold(cluster: Cluster, ip: str, add: bool = True) -> None:
    """Give the intruder ``ip`` (or take it away), as a misconfigured host would have it."""
    arpping.hold(cluster.the_lab, INTRUDER, ip, add)


def claim(cluster: Cluster, ip: str, mac: str | None = None) -> None:
    """The intruder says ``ip`` is at its MAC (or ``mac``): gratuitous ARP, or an unsolicited NA."""
    arpping.claim_from(cluster.the_lab, INTRUDER, ip, mac)


def pin(cluster: Cluster, name: str, ip: str, namespace: str = "default", port: int = 80) -> None:
    """The platform's Service ``name``, pinned to ``ip`` (single stack of its family)."""
    doc = scenario.service(name, namespace, port=port, annotations={ANN_IPS: ip})
    doc["spec"].update(ipFamilyPolicy="SingleStack", ipFamilies=["IPv6" if ":" in ip else "IPv4"])
    cluster.admin.create(doc)


def unpin(cluster: Cluster, name: str, namespace: str = "default") -> None:
    if cluster.admin.get("v1", "Service", name, namespace) is not None:
        cluster.admin.delete("v1", "Service", name, namespace)


def announced_by(cluster: Cluster, ip: str, timeout: float = 30) -> str:
    """Wait until exactly one node announces ``ip``; its name."""
    found = wait_for(
        f"one node to announce {ip}",
        lambda: owners(cluster).get(ip) or None,
        timeout=timeout,
        interval=scenario.POLL,
    )
    if len(found) != 1:
        raise AssertionError(f"{ip} is announced by {sorted(found)}")
    return next(iter(found))


def settled(cluster: Cluster, timeout: float = 60) -> None:
    """Every pod ready again (after a kill)."""
    wait_for(
        "every pod to be ready",
        lambda: all(scenario.all_ready(cluster).values()),
        timeout=timeout,
        interval=scenario.POLL,
    )


@contextlib.contextmanager
def pinned_neighbours(cluster: Cluster) -> Iterator[None]:
    """Node-to-node neighbour entries made permanent for the duration.

    Spoofed ARPs whose sender address is a node's poison every *kernel's* entry for that
    address (any ARP spoofing does; switches stop it with dynamic ARP inspection), which cuts
    node-to-node traffic, membership included, and moves addresses for reasons that are the
    LAN's, not IronLB's.  Pinning the entries keeps the test about what the speaker itself
    does with the packets."""
    lab = cluster.the_lab
    pairs = [(n, m) for n in lab.nodes for m in lab.nodes if n != m]
    for n, m in pairs:
        lab.run(
            n,
            "ip",
            "neigh",
            "replace",
            lab.addr(m),
            "lladdr",
            lab.mac(m),
            "dev",
            lab.dev(n),
            "nud",
            "permanent",
        )
    try:
        yield
    finally:
        for n, m in pairs:
            lab.run(n, "ip", "neigh", "del", lab.addr(m), "dev", lab.dev(n), check=False)


def _changes(base: Mapping[str, set[str]], now: Mapping[str, set[str]], at: float) -> list[str]:
    return [
        f"{at:.2f} s: {ip} {sorted(nodes)} -> {sorted(now.get(ip, set()))}"
        for ip, nodes in base.items()
        if now.get(ip, set()) != nodes
    ]


def _speaker_logs(cluster: Cluster) -> dict[str, str]:
    """log name -> text, for every container of every speaker pod."""
    pods = [p.name for p in cluster.pods() if p.workload_kind == "DaemonSet"]
    names = [f"{pod}.{c}" for pod in pods for c in cluster.worker(pod).containers]
    return {name: cluster.the_lab.log(name) for name in names}


def membership_trouble(before: Mapping[str, str], after: Mapping[str, str]) -> list[str]:
    """Membership log lines (a peer dead or suspect, cut off) written between two reads of the logs."""
    new = {name: text[len(before.get(name, "")) :] for name, text in after.items()}
    return [f"{name}: {line[:300]}" for name, text in new.items() for line in text.splitlines()
            if any(t in line for t in MEMBERSHIP_TROUBLE)]  # fmt: skip


def _flips(watch: NeighWatch, want: Mapping[str, str]) -> list[str]:
    """Client neighbour entries that took another MAC than ``want[ip]``."""
    return [f"{ip} -> {mac}" for ip, mac in want.items() for mac in watch.macs(ip) if mac != want[ip]]


# --- network attacks ---------------------------------------------------------------------------------


@dataclass
class Flood:
    target: str
    sent: int
    pps: float
    changes: list[str]  # owner changes seen in the NodeStates, in order
    flips: list[str]  # client neighbour entries that moved
    membership: list[str]  # membership trouble in the speakers' logs
    failovers: float  # increase of ironlb_failovers_total over every node
    reached: int  # UDP datagrams the target's kernel took in meanwhile (delivered or dropped for buffer)


def flood(cluster: Cluster, addresses: Sequence[str], seconds: float = 10, rate: int = 50_000) -> Flood:
    """Flood the membership port of the node announcing the fewest of ``addresses`` from the
    intruder (random bytes from its own address, badly signed heads forged from every other
    node's address); watch every owner through the NodeStates and the client until 1 s after."""
    lab = cluster.the_lab
    base = {ip: owners(cluster).get(ip, set()) for ip in addresses}
    if bad := {ip: n for ip, n in base.items() if len(n) != 1}:
        raise AssertionError(f"addresses without one owner before the flood: {bad}")
    mine = {n: sum(1 for o in base.values() if n in o) for n in lab.nodes}
    target = min(lab.nodes, key=lambda n: (mine[n], n))
    want = {ip: lab.mac(next(iter(n))) for ip, n in base.items()}
    for ip in addresses:  # the client holds an entry for every address: a gratuitous ARP would move it
        lab.run("client", "ping", *(["-6"] if ":" in ip else []), "-c1", "-W1", ip, check=False)
    failovers = sum(metric(cluster, n, "ironlb_failovers_total") for n in lab.nodes)
    reached = udp_in(cluster, target)
    logs, neigh = _speaker_logs(cluster), NeighWatch(lab, "client")
    name = f"flood-{time.monotonic_ns()}"
    proc = start_membership_flood(
        lab, target, key_id=key_id(cluster), seconds=seconds, rate=rate, source=INTRUDER, name=name
    )
    start, changes = time.monotonic(), []
    try:
        while proc.poll() is None or time.monotonic() - start < seconds + 1:
            changes += _changes(base, owners(cluster), time.monotonic() - start)
            time.sleep(0.1)
    finally:
        neigh.stop()
        if proc.poll() is None:
            lab.stop(proc)
    result = flood_result(lab, name)
    return Flood(
        target=target,
        sent=int(result["sent"]),
        pps=float(result["pps"]),
        changes=changes,
        flips=_flips(neigh, want),
        membership=membership_trouble(logs, _speaker_logs(cluster)),
        failovers=sum(metric(cluster, n, "ironlb_failovers_total") for n in lab.nodes) - failovers,
        reached=udp_in(cluster, target) - reached,
    )


def udp_in(cluster: Cluster, node: str) -> int:
    """UDP datagrams ``node``'s kernel took in: delivered to a socket, or dropped for its buffer."""
    rows = [line.split() for line in cluster.the_lab.run(node, "cat", "/proc/net/snmp").stdout.splitlines()]
    head, values = (r for r in rows if r and r[0] == "Udp:")
    return sum(int(values[head.index(k)]) for k in ("InDatagrams", "RcvbufErrors"))


@dataclass
class Spoof:
    owner: str
    sent: int
    read: int  # what the owner's speaker read: sent minus what its ARP socket dropped
    rss_before: float
    rss_after: float
    changes: list[str]
    flips: list[str]
    first_mac: str = ""

    @property
    def growth(self) -> float:
        return self.rss_after - self.rss_before


def _arp_drops(cluster: Cluster, node: str, pids: Sequence[int]) -> int:
    """Frames dropped by the speaker's ARP socket(s) on ``node`` (``ss``: skmem ``d``)."""
    out = cluster.the_lab.run(node, "ss", "-0", "-a", "-e", "-m", "-p").stdout.splitlines()
    total = 0
    for line, detail in zip(out, [*out[1:], ""], strict=True):
        if "arp:" in line and any(f"pid={pid}," in line for pid in pids):
            found = re.search(r"skmem:\([^)]*,d(\d+)\)", detail)
            total += int(found.group(1)) if found else 0
    return total


def spoof(cluster: Cluster, ip: str, count: int = 1_000_000, max_runs: int = 8) -> Spoof:
    """ARP requests from the intruder to the owner of ``ip``, sender address another node's, sender
    MAC random, until the owner's speaker has read ``count``; its RSS before and after, and every
    owner change meanwhile."""
    lab = cluster.the_lab
    owner = announced_by(cluster, ip)
    pod = speaker(cluster, owner)
    pids = cluster.worker(pod).pids()
    base = {a: n for a, n in owners(cluster).items()}
    want = {a: lab.mac(next(iter(n))) for a, n in base.items() if len(n) == 1}
    senders = [arg for n in lab.nodes if n != owner for arg in ("--sender", lab.addr(n))]
    with pinned_neighbours(cluster):
        lab.run("client", "ping", *(["-6"] if ":" in ip else []), "-c1", "-W1", ip, check=False)
        time.sleep(1.0)
        before, drops, neigh = (
            pod_rss_mb(cluster, pod),
            _arp_drops(cluster, owner, pids),
            NeighWatch(lab, "client"),
        )
        sent, first_mac, changes, start = 0, "", [], time.monotonic()
        try:
            for run in range(1, max_runs + 1):
                name = f"spoof-{run}-{time.monotonic_ns()}"
                argv = [sys.executable, "-m", "lab.arpping", "spoof", "eth0", str(count), *senders]
                argv += ["--dst", lab.mac(owner), "--target", lab.addr("router"), "--seed", str(run)]
                proc = lab.spawn(INTRUDER, argv, name=name)
                while proc.poll() is None:
                    changes += _changes(base, owners(cluster), time.monotonic() - start)
                    time.sleep(0.2)
                out = lab.log(name)
                sent += int(re.search(r"sent=(\d+)", out).group(1))  # type: ignore[union-attr]
                first_mac = first_mac or out.split("first_mac=")[1].split()[0]
                time.sleep(0.5)  # the speaker drains its socket
                if sent - (_arp_drops(cluster, owner, pids) - drops) >= count:
                    break
            time.sleep(1.0)
            changes += _changes(base, owners(cluster), time.monotonic() - start)
        finally:
            neigh.stop()
        read = sent - (_arp_drops(cluster, owner, pids) - drops)
        return Spoof(
            owner, sent, read, before, pod_rss_mb(cluster, pod), changes, _flips(neigh, want), first_mac
        )
