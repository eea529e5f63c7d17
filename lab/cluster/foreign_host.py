"""A foreign host on the LAN holding a pool address, and the owner that dies under it (issue 10).

Steps on a deployed stack with layer-2 pools and an intruder host (:mod:`lab.cluster.hostile_lan`):

- :func:`foreign_host` -- the intruder holds an address *before* a Service is pinned to it, or
  *claims* it after its owner announced it; then the owner's speaker pod is SIGKILLed and kept
  down (``down_for``) so that another node takes over.  Returns who refused or defended it (the
  NodeStates, as the controller's ServiceAccount reads them), what the client saw (a watch of
  every frame claiming the address, and its neighbour entry), Events, metrics, and what the
  controller published;
- :func:`reannounce_v6` -- an IPv6 address refused for a conflict, withdrawn, released by the
  intruder and announced again must keep answering Neighbour Solicitations (the solicited-node
  group re-joined), while its node keeps another IPv6 address (so the NDP socket stays open);
- :func:`takeover` -- SIGKILL the owner of an address until the client's TCP connect reaches
  another node (the successor's RFC 5227 probe included), run after run.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lab.cluster import scenario
from lab.cluster.api import UserApi
from lab.cluster.deploy import API_PORT, Cluster
from lab.cluster.exposure import Exposure, Watch
from lab.cluster.hostile_lan import (
    GROUP,
    INTRUDER,
    announced_by,
    claim,
    conflicts,
    hold,
    metric,
    nodestates,
    owners,
    pin,
    settled,
    speaker,
    unpin,
)
from lab.probe import NeighWatch, arping_macs, ndisc_mac, neigh_mac, who_serves
from lab.waiting import wait_for


def _refused_by(cluster: Cluster, ip: str, mac: str, but: str | None = None) -> str | None:
    found = [
        n
        for n, row in sorted(conflicts(cluster, ip).items())
        if row.get("state") == "refused" and row.get("mac") == mac
    ]
    return next((n for n in found if n != but), None)


def controller_reads(cluster: Cluster, ip: str) -> list[Mapping[str, Any]]:
    """The conflict rows for ``ip`` in every NodeState, listed with the controller's own token."""
    sa = next(
        str(p.manifest["spec"].get("serviceAccountName") or "default")
        for p in cluster.pods()
        if p.workload_kind == "Deployment"
    )
    admin = cluster.admin
    user = UserApi(
        cluster.api_host, API_PORT, admin.token(cluster.agent_namespace, sa), cluster.ca_file, admin.paths
    )
    docs = cluster.the_lab.call("client", lambda: user.list(GROUP, "NodeState"))
    return [
        row for d in docs for row in (d.get("status") or {}).get("conflicts") or () if row.get("ip") == ip
    ]


def published(cluster: Cluster, name: str, namespace: str = "default") -> list[Mapping[str, Any]]:
    """The controller's ``ironlb.io/announcements`` rows for the Service."""
    live = cluster.admin.get("v1", "Service", name, namespace) or {}
    text = ((live.get("metadata") or {}).get("annotations") or {}).get("ironlb.io/announcements") or "[]"
    rows: list[Mapping[str, Any]] = json.loads(text)
    return rows


@dataclass
class Foreign:
    ip: str
    first: str  # the node that refused it (held before) or defended it (claimed after)
    first_row: Mapping[str, Any]  # its NodeState conflict row then
    successor: str  # the node that took over after the kill and refused it
    successor_row: Mapping[str, Any]
    restarted_row: Mapping[str, Any]  # the first node's row once its speaker is back
    exposure: Exposure  # before: from before the Service; after: from the kill
    flips: list[str]  # the client's neighbour entry taking a node's MAC (same window)
    events: list[str]  # AddressConflict Warning Events on the Service
    controller_rows: list[Mapping[str, Any]]  # conflicts as the controller's ServiceAccount lists them
    published: list[Mapping[str, Any]]  # the controller's announcements rows for the Service
    claims: float = 0.0  # claim packets the first owner counted (claimed after)
    defences: float = 0.0  # defences it sent for them (one per DEFEND_INTERVAL)
    recovered_by: str = ""  # once the intruder let the address go: the node announcing it
    recovered_s: float = 0.0  # release -> announced, the client resolving it there, no conflict left

    def taken(self) -> list[str]:
        """How a node took the foreign host's address, in words (empty: never)."""
        out = [f"{self.ip} {how}" for how in self.exposure.exposed([self.ip]).values()]
        return out + [f"the client's entry moved: {f}" for f in self.flips]


def foreign_host(
    cluster: Cluster, ip: str, *, claimed_after: bool, name: str = "foreign", down_for: float = 6.0
) -> Foreign:
    """The intruder holds ``ip`` before a Service is pinned to it (``claimed_after=False``: the first
    owner probes and refuses it) or claims it, twice, after its owner announced it (the owner
    defends it once); then the owner's speaker is SIGKILLed and kept down ``down_for`` s.  The
    client is watched from before the Service (held before) or from the kill (claimed after;
    the owner's own answers until the kill are expected) until the window ends."""
    lab = cluster.the_lab
    intruder, window = lab.mac(INTRUDER), down_for + 8
    neigh: NeighWatch | None = None
    initial: str | None = None
    claims = defences = 0.0
    try:
        if claimed_after:
            pin(cluster, name, ip)
            first = announced_by(cluster, ip)
            wait_for(
                f"the client to resolve {ip} to {first}",
                lambda: _resolves(cluster, ip) == {lab.mac(first)},
                timeout=30,
                interval=scenario.POLL,
            )
            hold(cluster, ip)
            claim(cluster, ip)
            wait_for(
                f"{first} to defend {ip}",
                lambda: _state(cluster, ip, first) == "defending",
                timeout=10,
                interval=scenario.POLL,
            )
            row = conflicts(cluster, ip)[first]
            counted = metric(cluster, first, "ironlb_l2_claims_total")
            claim(cluster, ip)  # a second claim within DEFEND_INTERVAL: counted, not answered
            wait_for(
                "the second claim",
                lambda: metric(cluster, first, "ironlb_l2_claims_total") > counted,
                timeout=10,
                interval=scenario.POLL,
            )
            claims = metric(cluster, first, "ironlb_l2_claims_total")
            defences = metric(cluster, first, "ironlb_l2_defences_total")
            watch = Watch(cluster, [ip], window)
            until = {first: watch.now() + 0.2}  # its answers until the kill are its defence
        else:
            hold(cluster, ip)
            lab.run("client", "ping", *(["-6"] if ":" in ip else []), "-c1", "-W2", ip)
            initial, neigh = neigh_mac(lab, "client", ip), NeighWatch(lab, "client")
            watch, until = Watch(cluster, [ip], window), {}
            pin(cluster, name, ip)
            first = wait_for(
                f"a node to refuse {ip}",
                lambda: _refused_by(cluster, ip, intruder),
                timeout=15,
                interval=scenario.POLL,
            )
            row = conflicts(cluster, ip)[first]
        cluster.kill_pod(speaker(cluster, first), down_for=down_for)
        if neigh is None:
            initial, neigh = neigh_mac(lab, "client", ip), NeighWatch(lab, "client")
        successor = wait_for(
            f"another node to probe {ip} and refuse it",
            lambda: _refused_by(cluster, ip, intruder, but=first),
            timeout=15,
            interval=scenario.POLL,
        )
        successor_row = conflicts(cluster, ip)[successor]
        exposure = watch.result(until)
        settled(cluster)
        wait_for(
            f"{first}'s restarted speaker to refuse {ip} too",
            lambda: _state(cluster, ip, first) == "refused",
            timeout=30,
            interval=scenario.POLL,
        )
        events = [
            m
            for typ, r, m in scenario.events(cluster, "default", name)
            if typ == "Warning" and r == "AddressConflict"
        ]
        restarted_row = conflicts(cluster, ip)[first]
        assert neigh is not None
        flips, rows, shown = (
            _flips(neigh.macs(ip), initial, cluster),
            controller_reads(cluster, ip),
            published(cluster, name),
        )
        hold(cluster, ip, add=False)  # the intruder lets go: the address comes back
        released = time.monotonic()
        back = announced_by(cluster, ip, timeout=45)  # the next probe: at most conflictRetry (30 s) away
        wait_for(
            f"the client to resolve {ip} to {back}",
            lambda: _resolves(cluster, ip) == {lab.mac(back)},
            timeout=15,
            interval=scenario.POLL,
        )
        wait_for(
            f"the conflict on {ip} to end",
            lambda: not conflicts(cluster, ip),
            timeout=15,
            interval=scenario.POLL,
        )
        recovered = time.monotonic() - released
        return Foreign(
            ip, first, row, successor, successor_row, restarted_row, exposure, flips, events, rows, shown,
            claims, defences, back, recovered,
        )  # fmt: skip
    finally:
        if neigh is not None:
            neigh.stop()
        unpin(cluster, name)
        hold(cluster, ip, add=False)
        settled(cluster)


def _state(cluster: Cluster, ip: str, node: str) -> str | None:
    row = conflicts(cluster, ip).get(node)
    return str(row.get("state")) if row else None


def _flips(macs: Sequence[str], initial: str | None, cluster: Cluster) -> list[str]:
    """The client's entry taking a node's MAC it did not have (``ip monitor`` also prints state changes)."""
    lab = cluster.the_lab
    nodes = {lab.mac(n): n for n in lab.nodes}
    out, prev = [], initial
    for mac in macs:
        if mac != prev and mac in nodes:
            out.append(f"{prev} -> {mac} ({nodes[mac]})")
        prev = mac
    return out


def _resolves(cluster: Cluster, ip: str) -> set[str]:
    lab = cluster.the_lab
    if ":" in ip:
        mac = ndisc_mac(lab, "client", ip, tries=1)
        return {mac} if mac else set()
    return arping_macs(lab, "client", ip, count=1, timeout=1)


@dataclass
class Reannounce:
    ip: str
    refused_by: str  # the node that refused it while the intruder held it
    announced_by: str  # the node announcing it again
    keeper: str  # another IPv6 address the refusing node announced throughout
    answers: list[str | None]  # the MAC answering each of four NS from the client after re-announcing
    keeper_answer: str | None


def reannounce_v6(cluster: Cluster, ip: str, spares: Sequence[str], name: str = "reannounce") -> Reannounce:
    """``ip`` refused while the intruder holds it, withdrawn (its Service deleted), released, and
    pinned again: the re-announced address must answer NS.  Its node keeps another IPv6 address
    announced throughout (pinning ``spares`` one by one until one lands there), so the NDP socket
    and the solicited-node group bookkeeping outlive the withdrawal."""
    lab = cluster.the_lab
    created = [name]
    try:
        hold(cluster, ip)
        pin(cluster, name, ip)
        owner = wait_for(
            f"a node to refuse {ip}",
            lambda: _refused_by(cluster, ip, lab.mac(INTRUDER)),
            timeout=15,
            interval=scenario.POLL,
        )
        keeper = next((a for a, n in sorted(owners(cluster).items()) if ":" in a and n == {owner}), None)
        for i, spare in enumerate(spares):
            if keeper is not None:
                break
            created.append(f"{name}-keep{i}")
            pin(cluster, created[-1], spare)
            if announced_by(cluster, spare) == owner:
                keeper = spare
            else:
                unpin(cluster, created.pop())
        assert keeper is not None, f"no IPv6 address of {spares} landed on {owner}"
        unpin(cluster, name)  # withdrawn while in conflict
        wait_for(
            f"{owner} to forget {ip}",
            lambda: _forgotten(cluster, owner, ip),
            timeout=15,
            interval=scenario.POLL,
        )
        hold(cluster, ip, add=False)
        pin(cluster, name, ip)
        again = announced_by(cluster, ip, timeout=40)
        answers = []
        for _ in range(4):
            answers.append(ndisc_mac(lab, "client", ip))
            time.sleep(0.3)
        return Reannounce(ip, owner, again, keeper, answers, ndisc_mac(lab, "client", keeper))
    finally:
        for svc in created:
            unpin(cluster, svc)
        hold(cluster, ip, add=False)


def _forgotten(cluster: Cluster, node: str, ip: str) -> bool:
    status = nodestates(cluster).get(node) or {}
    rows = [*(status.get("announcements") or ()), *(status.get("conflicts") or ())]
    return not any(r.get("ip") == ip for r in rows)


@dataclass(frozen=True)
class Takeover:
    old: str
    new: str
    ms: float  # SIGKILL of the owner's speaker -> the client's TCP connect reaches another node


def takeover(
    cluster: Cluster, ip: str, runs: int, *, port: int = 80, down_for: float = 2.0, name: str = "takeover"
) -> list[Takeover]:
    """Pin ``ip``; ``runs`` times: SIGKILL its owner's speaker (kept down ``down_for`` s) while the
    client connects in a tight loop (``lab.tcpwatch``, 50 ms connect timeout) until another node
    answers; then wait for the cluster to settle (every pod ready, one owner the client reaches)."""
    lab = cluster.the_lab
    pin(cluster, name, ip, port=port)
    out = []
    try:
        for i in range(runs):
            old = _stable_owner(cluster, ip, port)
            log = f"tcpwatch-{i}-{time.monotonic_ns()}"
            proc = lab.spawn(
                "client", [sys.executable, "-m", "lab.tcpwatch", ip, str(port), old, "20"], name=log
            )
            wait_for(
                f"the client to reach {old}",
                functools.partial(_ready, cluster, proc, log),
                timeout=30,
                interval=scenario.POLL,
            )
            started = time.monotonic()
            cluster.kill_pod(speaker(cluster, old), down_for=down_for)
            proc.wait(timeout=30)
            words = lab.log(log).split()
            if "moved" not in words:
                raise AssertionError(f"{ip} never moved off {old} after its speaker was killed: {words}")
            at = words.index("moved")
            out.append(Takeover(old, words[at + 1], (float(words[at + 2]) - started) * 1000))
            settled(cluster)
    finally:
        unpin(cluster, name)
    return out


def _ready(cluster: Cluster, proc: subprocess.Popen[bytes], log: str) -> bool:
    return proc.poll() is not None or "ready" in cluster.the_lab.log(log)


def _stable_owner(cluster: Cluster, ip: str, port: int) -> str:
    """Wait until exactly one node announces ``ip`` and the client's TCP connect reaches it."""

    def probe() -> str | None:
        found = owners(cluster).get(ip) or set()
        node = next(iter(found)) if len(found) == 1 else None
        return node if node and who_serves(cluster.the_lab, "client", ip, port, timeout=1) == node else None

    return wait_for(f"one owner of {ip} that the client reaches", probe, timeout=30, interval=0.2)
