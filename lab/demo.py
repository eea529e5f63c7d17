"""``ironlb demo``: what ``pulumi up -s <stack>`` gives, on one machine, with no cluster.

The stack is rendered and deployed **unmodified** in the cluster-mode lab
(:mod:`lab.cluster`): the Kubernetes API stand-in enforcing the rendered RBAC, the IPAM
controller Deployment and the speaker DaemonSet running as processes with their exact pod
specs and probes, one BIRD per rendered BGPPeer, a client on the LAN and one behind the
routers.  The demo then waits, bounded, until every LoadBalancer Service has an address per
requested family **and** the network shows what the speakers say they announce (their
NodeStates) **and** the client reaches every address over TCP, and prints one table:

=====================  =========================================================================
SERVICE, IP            the rendered Service and the addresses in its ``status.loadBalancer``
MODE                   from the rendered advertisements that select the address's pool
OWNER / NEXT HOPS      layer 2: the node whose MAC answers the client's ARP/NDP request;
                       BGP: the next hops each router holds for the address (``birdc``)
CLIENT TCP             a TCP connect from the LAN client (layer 2) or the client behind the
                       routers (BGP); every node's backend replies with its name
=====================  =========================================================================

With ``once`` it stops there; otherwise it keeps observing and prints every change (an
owner moving, a next hop leaving, the client failing) with a timestamp until Ctrl-C, and
says how to unplug a node to watch a failover.  Teardown (pods, routers, API server,
namespaces, emptyDir mounts, the work dir holding the revealed secrets) runs in every case:
success, timeout, error, Ctrl-C, SIGTERM, SIGHUP.  Logs live in the work dir while it runs;
``keep_logs`` (and any failure) copies the ``*.log`` files out before teardown.

The table is built by a pure core (:func:`row_for`, :func:`table`, :func:`changes`) from
what :class:`Observer` reads from the running lab.
"""

from __future__ import annotations

import ipaddress
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from ironlb.errors import IronLBError
from lab.cluster import scenario
from lab.cluster.checks import expected_families
from lab.cluster.deploy import Cluster
from lab.cluster.topology import TopologyError
from lab.errors import LabError, WaitTimeout
from lab.probe import arping_macs, ndisc_mac, who_serves
from lab.waiting import wait_for

COLUMNS = ("SERVICE", "IP", "MODE", "OWNER / NEXT HOPS", "CLIENT TCP")
#: Programs the lab runs (``./scripts/setup`` installs them).
NEEDS = ("ip", "bird", "birdc", "nc", "arping", "ndisc6", "unshare", "setpriv")
NODESTATE = ("ironlb.io/v1alpha1", "NodeState")


@dataclass(frozen=True)
class Row:
    """One line of the table; ``ready``: the network agrees with the speakers, the client got in."""

    service: str
    ip: str
    mode: str
    owner: str
    client: str
    ready: bool
    note: str = ""  # why it is not ready (said when the demo gives up waiting)

    def cells(self) -> tuple[str, str, str, str, str]:
        return self.service, self.ip, self.mode, self.owner, self.client

    @property
    def name(self) -> str:
        return self.service if self.ip == "-" else f"{self.service} {self.ip}"


@dataclass(frozen=True)
class Seen:
    """What the network shows for one address (node names; unknown addresses as they are)."""

    lan: tuple[str, ...] | None  # layer 2: who answered ARP/NDP (None: not a layer-2 address)
    routers: Mapping[str, tuple[str, ...]] | None  # BGP: router -> next hops (None: not BGP)
    answered: Mapping[int, str | None]  # TCP port -> the node that answered (None: failed)


# --- the pure core -------------------------------------------------------------------------------


def _names(nodes: Sequence[str]) -> str:
    return ", ".join(sorted(nodes)) or "none"


def row_for(service: str, ip: str, seen: Seen, announcing: Sequence[str]) -> Row:
    """The row for one address, given what the network shows and which speakers announce it."""
    want = set(announcing)
    modes, owners, agree = [], [], bool(want)
    if seen.lan is not None:
        modes.append("layer2")
        owners.append(_names(seen.lan) if seen.lan else f"nobody answers {'NDP' if ':' in ip else 'ARP'}")
        agree = agree and set(seen.lan) == want and len(want) == 1
    if seen.routers is not None:
        modes.append("bgp")
        hops = {tuple(sorted(h)) for h in seen.routers.values()}
        if len(hops) == 1:
            only = next(iter(hops))
            at = f" at {', '.join(sorted(seen.routers))}" if len(seen.routers) > 1 else ""
            owners.append(f"{_names(only)}{at}" if only else "no route at the router")
        else:
            owners.append("; ".join(f"{r}: {_names(h)}" for r, h in sorted(seen.routers.items())))
        agree = agree and bool(seen.routers) and all(set(h) == want for h in seen.routers.values())
    failed = sorted(p for p, who in seen.answered.items() if who is None)
    if not seen.answered:
        client = "- (no TCP port)"
    elif failed:
        client = f"FAILED (port {', '.join(map(str, failed))})"
    else:
        client = f"ok, answered by {_names(sorted({str(w) for w in seen.answered.values()}))}"
    mode, owner = "+".join(modes) or "none", "; ".join(owners) or "no advertisement selects its pool"
    note = f"the network shows {owner}; the speakers report announcing it: {_names(sorted(want))}"
    note += f"; client {client}"
    return Row(service, ip, mode, owner, client, agree and not failed, "" if agree and not failed else note)


def pending(service: str, why: str) -> Row:
    return Row(service, "-", "-", why, "-", False, why)


def table(rows: Sequence[Row]) -> str:
    """An aligned table; cells never hold two spaces in a row, so columns split on ``\\s{2,}``."""
    if not rows:
        return "(no LoadBalancer Service in the stack)"
    cells = [r.cells() for r in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(COLUMNS)]
    lines = [COLUMNS, *cells]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )


def changes(before: Sequence[Row], after: Sequence[Row]) -> list[str]:
    """One line per address whose owner or client result changed, appeared or went away."""
    old = {r.name: r for r in before}
    new = {r.name: r for r in after}
    out = []
    for name in sorted(old.keys() | new.keys()):
        a, b = old.get(name), new.get(name)
        if a is None and b is not None:
            out.append(f"{name}: {b.owner}; client {b.client}")
        elif b is None and a is not None:
            out.append(f"{name}: gone")
        elif a is not None and b is not None and (a.owner, a.client) != (b.owner, b.client):
            parts = [f"{a.owner} -> {b.owner}"] if a.owner != b.owner else [b.owner]
            parts.append(f"client {a.client} -> {b.client}" if a.client != b.client else f"client {b.client}")
            out.append(f"{name}: {'; '.join(parts)}")
    return out


def _key(svc: Mapping[str, Any]) -> str:
    return f"{svc['metadata']['namespace']}/{svc['metadata']['name']}"


def _condition(live: Mapping[str, Any], kind: str) -> str:
    for c in (live.get("status") or {}).get("conditions") or []:
        if c.get("type") == kind and c.get("message"):
            return str(c["message"])
    return ""


# --- the shell: reading the running lab -----------------------------------------------------------


class Observer:
    """Reads, from the running cluster, what :func:`row_for` needs for every rendered Service."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster, self.lab, self.topo = cluster, cluster.the_lab, cluster.topology
        nodes = self.lab.nodes
        self.by_mac = {self.lab.mac(n): n for n in nodes}
        self.by_addr = {ipaddress.ip_address(self.lab.addr(n, f)): n for n in nodes for f in (4, 6)}

    def _node(self, address: str) -> str:
        return self.by_addr.get(ipaddress.ip_address(address), address)

    def announcing(self) -> dict[str, list[str]]:
        """address -> nodes whose speaker reports it ``announcing`` (NodeState status, speakers only)."""
        out: dict[str, list[str]] = {}
        for state in self.cluster.admin.list(*NODESTATE):
            for a in (state.get("status") or {}).get("announcements") or []:
                if a.get("state") == "announcing":
                    out.setdefault(str(a.get("ip")), []).append(str(state["metadata"]["name"]))
        return out

    def seen(self, ip: str, ports: Sequence[int]) -> Seen:
        pool = self.topo.pool_of(ip)
        lan = routers = None
        client = self.lab.dev("client")
        if pool in self.topo.l2_pools:
            if ":" in ip:
                mac = ndisc_mac(self.lab, "client", ip, dev=client, tries=1)
                macs = {mac} if mac else set()
            else:
                macs = arping_macs(self.lab, "client", ip, dev=client, timeout=1)
            lan = tuple(self.by_mac.get(m, m) for m in sorted(macs))
        if pool in self.topo.bgp_pools:
            hops = scenario.bgp_next_hops(self.cluster, ip)
            routers = {r: tuple(self._node(h) for h in sorted(nh)) for r, nh in hops.items()}
        host = "client" if lan is not None else "extclient"
        answered = {p: who_serves(self.lab, host, ip, p, timeout=1) for p in ports}
        return Seen(lan, routers, answered)

    def rows(self) -> list[Row]:
        announcing = self.announcing()
        out = []
        for svc in sorted(self.cluster.services(), key=_key):
            meta, key = svc["metadata"], _key(svc)
            live = self.cluster.admin.get("v1", "Service", meta["name"], meta["namespace"]) or {}
            ingress = ((live.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
            ips = [str(i["ip"]) for i in ingress if i.get("ip")]
            ports = [
                int(p["port"]) for p in svc["spec"].get("ports") or [] if p.get("protocol", "TCP") == "TCP"
            ]
            for ip in ips:
                out.append(row_for(key, ip, self.seen(ip, ports), announcing.get(ip, [])))
            want = expected_families(svc)
            if len(ips) < want:
                why = _condition(live, "ironlb.io/AddressAllocated") or "waiting for the controller"
                out.append(pending(key, f"{len(ips)} of {want} addresses: {why}"))
        return out


# --- running it ------------------------------------------------------------------------------------


def _say(err: TextIO, text: str) -> None:
    print(text, file=err, flush=True)


def _stamp() -> str:
    return time.strftime("%H:%M:%S")


def _check_programs() -> None:
    missing = [p for p in NEEDS if shutil.which(p) is None]
    if missing:
        raise IronLBError(f"the lab needs {', '.join(missing)} (not found on PATH): run ./scripts/setup")


def _raise_to_exit(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


@contextmanager
def _signals_end_the_run() -> Iterator[None]:
    """SIGTERM/SIGHUP end the run through ``finally`` (teardown), as Ctrl-C does."""
    saved = {s: signal.signal(s, _raise_to_exit) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)


def _teardown(cluster: Cluster, err: TextIO) -> None:
    """Tear down with Ctrl-C ignored: a second Ctrl-C must not leave namespaces or mounts behind."""
    saved = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        cluster.teardown()
    finally:
        signal.signal(signal.SIGINT, saved)
    _say(err, "lab torn down")


def copy_logs(cluster: Cluster, dest: Path | None) -> Path | None:
    """Copy the run's ``*.log`` files (never the manifests or pod plans: they hold secrets)."""
    if cluster.workdir is None:
        return None
    if dest is None:
        dest = Path(tempfile.mkdtemp(prefix="ironlb-demo-logs-"))
    dest.mkdir(mode=0o700, parents=True, exist_ok=True)
    for log in sorted(cluster.workdir.glob("*.log")):
        shutil.copy2(log, dest / log.name)
    return dest


def _failover_hint(cluster: Cluster, rows: Sequence[Row]) -> str:
    """How to unplug the node answering for a layer-2 address (and plug it back in)."""
    lab = cluster.the_lab
    owner = next((r for r in rows if r.mode == "layer2" and r.owner in lab.nodes), None)
    if owner is None:
        return ""
    unplug = f"ip -n {lab.ns('bridge')} link set {lab.switch_port(owner.owner)}"
    return f"to watch a failover, unplug {owner.owner} (owner of {owner.ip}): {unplug} down  (then: up)"


def converge(observer: Observer, timeout: float, interval: float = 0.5) -> tuple[list[Row], bool]:
    """Rows once every address is ready (bounded by ``timeout``); the last rows and whether they are."""
    try:
        rows = wait_for(
            "every address to be ready",
            observer.rows,
            lambda rows: all(r.ready for r in rows),
            timeout=timeout,
            interval=interval,
        )
    except WaitTimeout:
        rows = observer.rows()
        return rows, all(r.ready for r in rows)
    return rows, True


def _deploy(cluster: Cluster, err: TextIO) -> None:
    _say(
        err, f"rendering stack {cluster.stack!r} and deploying it unmodified into a network-namespace lab..."
    )
    started = time.monotonic()
    try:
        cluster.start()
    except (LabError, TopologyError, FileNotFoundError, KeyError) as exc:
        raise IronLBError(f"cannot deploy stack {cluster.stack!r} in the lab: {exc}") from exc
    lab, pods = cluster.the_lab, cluster.pods()
    roles = ", ".join(sorted({p.workload for p in pods}))
    _say(
        err,
        f"lab {lab.tag} up in {time.monotonic() - started:.1f} s: API server, {len(pods)} pods ({roles}) "
        f"on {', '.join(lab.nodes)}, BIRD as {', '.join(cluster.routers)}, clients; "
        f"logs: {cluster.workdir}/*.log",
    )


def _watch(
    cluster: Cluster, observer: Observer, rows: list[Row], interval: float, out: TextIO, err: TextIO
) -> None:
    """Print every change until interrupted."""
    _say(err, f"watching every {interval:g} s; changes are printed below; Ctrl-C stops and tears down")
    hint = _failover_hint(cluster, rows)
    if hint:
        _say(err, hint)
    while True:
        time.sleep(interval)
        now = observer.rows()
        for line in changes(rows, now):
            print(f"{_stamp()}  {line}", file=out, flush=True)
        rows = now


def run(
    stack: str = "dev",
    *,
    once: bool = False,
    timeout: float = 90.0,
    interval: float = 1.0,
    keep_logs: Path | None = None,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """The demo (see the module docstring); 0 when everything converged, 1 if not, 130 on Ctrl-C."""
    _check_programs()
    cluster, start, failed = Cluster(stack), time.monotonic(), False
    with _signals_end_the_run():
        try:
            _deploy(cluster, err)
            deployed = time.monotonic()
            observer = Observer(cluster)
            rows, done = converge(observer, timeout)
            print(table(rows), file=out, flush=True)
            if not done:
                failed = True
                late = [f"{r.name}: {r.note}" for r in rows if not r.ready]
                _say(err, f"not converged {timeout:g} s after the deploy:\n  " + "\n  ".join(late))
                _say(err, scenario.pod_problems(cluster) or "every pod is ready")
                return 1
            now = time.monotonic()
            _say(err, f"converged {now - deployed:.1f} s after the deploy ({now - start:.1f} s in all)")
            if not once:
                _watch(cluster, observer, rows, interval, out, err)
            return 0
        except KeyboardInterrupt:
            _say(err, "interrupted")
            return 130
        except Exception:
            failed = True
            raise
        finally:
            if failed or keep_logs is not None:
                kept = copy_logs(cluster, keep_logs)
                if kept is not None:
                    _say(err, f"logs copied to {kept}")
            _teardown(cluster, err)
