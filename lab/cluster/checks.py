"""What tests and benchmarks ask of a deployed :class:`~lab.cluster.deploy.Cluster`.

- :func:`service_addresses` / :func:`wait_addresses`: the addresses in each LoadBalancer
  Service's ``status.loadBalancer.ingress`` (one per requested IP family);
  :func:`layer2_addresses`: those from layer-2 pools.
- :func:`reachability`: a TCP connect to every (address, TCP port) of every Service, from the
  LAN client for layer-2 pools and from the client behind the routers for BGP pools, IPv6 too;
  which node answered (``lab.vipserver`` replies with its name).
- :func:`leader`: the Pod holding the controller Lease.
- :func:`observe`: what a container's process really runs with (uid, capabilities,
  no_new_privs, env, mounts, network namespace, whether it can write to a path).
- :func:`figures`: the run's violation figures from the API stand-in's report and the
  kubelet: restarts (those a test did not cause), 401/403s, pruned and ignored fields,
  409s nobody handles, invalid writes, API writes per minute per role, RSS per role.

**Which 409s are handled.**  A 409 on a ``leases`` write is the Lease election's
compare-and-swap doing its job (the loser re-reads and retries); every other 409 by a pod
is counted as unhandled: nothing in IronLB should race another writer on the same object.
Requests by the harness itself (``system:admin``) never count.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.cluster.deploy import Cluster
from lab.cluster.kubelet import rss_bytes
from lab.errors import WaitTimeout
from lab.probe import who_serves
from lab.waiting import wait_for

ADMIN = "system:admin"


def _key(svc: Mapping[str, Any]) -> str:
    return f"{svc['metadata']['namespace']}/{svc['metadata']['name']}"


def service_addresses(cluster: Cluster) -> dict[str, list[str]]:
    """``namespace/name`` -> ingress IPs, for every rendered LoadBalancer Service."""
    out = {}
    for svc in cluster.services():
        meta = svc["metadata"]
        live = cluster.admin.get("v1", "Service", meta["name"], meta["namespace"]) or {}
        ingress = ((live.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        out[_key(svc)] = [str(i["ip"]) for i in ingress if i.get("ip")]
    return out


def layer2_addresses(cluster: Cluster) -> list[str]:
    """Every address a rendered Service holds from a pool some L2Advertisement selects."""
    topo = cluster.topology
    return [
        ip for ips in service_addresses(cluster).values() for ip in ips if topo.pool_of(ip) in topo.l2_pools
    ]


def expected_families(svc: Mapping[str, Any]) -> int:
    spec = svc.get("spec") or {}
    policy = spec.get("ipFamilyPolicy") or "SingleStack"
    return 1 if policy == "SingleStack" else len(spec.get("ipFamilies") or ["IPv4"])


def wait_addresses(cluster: Cluster, timeout: float = 60) -> dict[str, list[str]]:
    """Wait until every Service has an address per requested family; raise naming those that don't."""
    want = {_key(s): expected_families(s) for s in cluster.services()}

    def missing(got: Mapping[str, list[str]]) -> dict[str, list[str]]:
        return {k: got.get(k, []) for k, n in want.items() if len(got.get(k, [])) < n}

    try:
        return wait_for(
            "every Service to have an address per requested family",
            lambda: service_addresses(cluster),
            lambda got: not missing(got),
            timeout=timeout,
            interval=0.5,
        )
    except WaitTimeout:
        raise WaitTimeout(
            f"Services without all their addresses after {timeout} s: {missing(service_addresses(cluster))}"
        ) from None


@dataclass(frozen=True)
class Probe:
    service: str
    ip: str
    port: int
    client: str
    node: str | None  # who answered; None: unreachable


def reachability(cluster: Cluster, addresses: Mapping[str, list[str]]) -> list[Probe]:
    lab, topo = cluster.the_lab, cluster.topology
    out = []
    for svc in cluster.services():
        ports = [int(p["port"]) for p in svc["spec"].get("ports") or [] if p.get("protocol", "TCP") == "TCP"]
        for ip in addresses.get(_key(svc), []):
            pool = topo.pool_of(ip)
            client = "client" if pool in topo.l2_pools else "extclient"
            for port in ports:
                out.append(Probe(_key(svc), ip, port, client, who_serves(lab, client, ip, port, timeout=2)))
    return out


def wait_reachable(cluster: Cluster, addresses: Mapping[str, list[str]], timeout: float = 60) -> list[Probe]:
    """Probe until every address is reached over TCP (the probes); raise naming those that are not."""
    try:
        return wait_for(
            "every address to be reached over TCP",
            lambda: reachability(cluster, addresses),
            lambda probes: all(p.node for p in probes),
            timeout=timeout,
            interval=1,
        )
    except WaitTimeout:
        bad = [p for p in reachability(cluster, addresses) if not p.node]
        raise WaitTimeout(f"unreachable over TCP after {timeout} s: {bad}") from None


def leader(cluster: Cluster) -> str | None:
    """The Pod (name) holding the controller's Lease, matched by pod name, node name or prefix."""
    leases = cluster.admin.list("coordination.k8s.io/v1", "Lease", cluster.agent_namespace)
    holders = [str((lease.get("spec") or {}).get("holderIdentity") or "") for lease in leases]
    candidates = [p for p in cluster.pods() if p.workload_kind == "Deployment"] or cluster.pods()
    for holder in filter(None, holders):
        for pod in candidates:
            if holder == pod.name or holder.startswith(pod.name) or holder == pod.node:
                return pod.name
    return None


def _role_of_user(cluster: Cluster) -> dict[str, str]:
    roles: dict[str, list[str]] = defaultdict(list)
    for p in cluster.pods():
        sa = str(p.manifest["spec"].get("serviceAccountName") or "default")
        user = f"system:serviceaccount:{p.namespace}:{sa}"
        if p.workload not in roles[user]:
            roles[user].append(p.workload)
    return {user: "+".join(names) for user, names in roles.items()}


@dataclass
class Figures:
    restarts: int
    restart_details: list[str]
    unauthorized: int
    forbidden: int
    pruned: int
    ignored: int
    invalid: int
    conflicts_unhandled: int
    conflicts_handled: int
    api_writes_per_min: dict[str, float]  # role -> writes/min, leases excluded
    lease_writes_per_min: dict[str, float]
    rss_mb: dict[str, float]  # role -> largest pod RSS (all its processes)
    details: dict[str, list[Any]] = field(default_factory=dict)

    def zeros(self) -> dict[str, int]:
        """The figures issue 9 wants at 0."""
        return {
            "restarts": self.restarts,
            "unauthorized": self.unauthorized,
            "forbidden": self.forbidden,
            "pruned": self.pruned,
            "ignored": self.ignored,
            "invalid": self.invalid,
            "conflicts_unhandled": self.conflicts_unhandled,
        }


def _pod_records(records: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [r for r in records if r.get("user") != ADMIN]


def figures(cluster: Cluster, since: float, until: float | None = None, induced_ok: bool = True) -> Figures:
    """Figures for the window [since, until] (unix seconds); restarts a test induced don't count."""
    until = until or time.time()
    report = cluster.admin.report(since=since)
    v = report.get("violations") or {}
    restarts = [
        r for r in (cluster.kubelet.restarts if cluster.kubelet else [])
        if since <= r.at <= until and not (induced_ok and r.reason == "induced")
    ]  # fmt: skip
    conflicts = _pod_records(v.get("conflicts") or [])
    handled = [c for c in conflicts if c.get("resource") == "leases"]
    roles = _role_of_user(cluster)
    minutes = max((until - since) / 60, 1e-9)
    writes: Counter[str] = Counter()
    lease_writes: Counter[str] = Counter()
    for req in report.get("requests") or []:
        user = str(req.get("user"))
        if user == ADMIN or not req.get("write"):
            continue
        n = sum(1 for t in req.get("times") or [] if since <= float(t) <= until)
        target = lease_writes if req.get("resource") == "leases" else writes
        target[roles.get(user, user)] += n
    rss: dict[str, float] = {}
    if cluster.kubelet:
        for worker in cluster.kubelet.workers.values():
            role = worker.placement.workload
            rss[role] = max(rss.get(role, 0.0), rss_bytes(worker.pids()) / 2**20)
    return Figures(
        restarts=len(restarts),
        restart_details=[f"{r.pod}/{r.container}: {r.reason} (exit {r.exit_code})" for r in restarts],
        unauthorized=len(v.get("unauthorized") or []),
        forbidden=len(_pod_records(v.get("forbidden") or [])),
        pruned=len(_pod_records(v.get("pruned") or [])),
        ignored=len(_pod_records(v.get("ignored") or [])),
        invalid=len(_pod_records(v.get("invalid") or [])),
        conflicts_unhandled=len(conflicts) - len(handled),
        conflicts_handled=len(handled),
        api_writes_per_min={r: round(n / minutes, 2) for r, n in sorted(writes.items())},
        lease_writes_per_min={r: round(n / minutes, 2) for r, n in sorted(lease_writes.items())},
        rss_mb={r: round(mb, 1) for r, mb in sorted(rss.items())},
        details={
            k: _pod_records(v.get(k) or [])[:20]
            for k in ("forbidden", "pruned", "ignored", "invalid", "conflicts", "unauthorized", "unsupported")
        },
    )


@dataclass
class Observed:
    """What one running container's main process really has (read from /proc and its namespaces)."""

    uid: int
    gid: int
    cap_eff: set[str]
    cap_bnd: set[str]
    no_new_privs: bool
    env: dict[str, str]
    mounts: dict[str, bool]  # mount point -> read-only, inside the container's mount namespace
    netns: str  # the network namespace's inode, as "net:[N]"
    writes: dict[str, bool]  # path -> could the container create a file there


def last_write(cluster: Cluster) -> float:
    """When a pod last wrote to the API, Leases aside (unix seconds; 0 if never)."""
    report = cluster.admin.report(since=0)
    times = [
        float(t)
        for req in report.get("requests") or []
        if req.get("write") and req.get("resource") != "leases" and str(req.get("user")) != ADMIN
        for t in req.get("times") or []
    ]
    return max(times, default=0.0)


def _caps(hexmask: str) -> set[str]:
    out = subprocess.run(["capsh", f"--decode={hexmask}"], capture_output=True, text=True, check=True).stdout
    names = out.strip().partition("=")[2]
    return {n.removeprefix("cap_").upper() for n in names.split(",") if n}


def observe(pid: int, try_write: Iterable[str] = ()) -> Observed:
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
    )
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    env = dict(e.decode().split("=", 1) for e in environ if b"=" in e)
    mounts = {}
    for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines():
        fields = line.split()
        mounts[fields[4]] = "ro" in fields[5].split(",")
    writes = {}
    for path in try_write:
        probe = f"{path.rstrip('/')}/.lab-write-probe"
        argv = ["nsenter", "-t", str(pid), "-m", "--", "sh", "-c", f"touch {probe} && rm -f {probe}"]
        writes[path] = subprocess.run(argv, capture_output=True, check=False).returncode == 0
    return Observed(
        uid=int(status["Uid"].split()[1]),
        gid=int(status["Gid"].split()[1]),
        cap_eff=_caps(status["CapEff"].strip()),
        cap_bnd=_caps(status["CapBnd"].strip()),
        no_new_privs=status.get("NoNewPrivs", "0").strip() == "1",
        env=env,
        mounts=mounts,
        netns=os.readlink(f"/proc/{pid}/ns/net"),
        writes=writes,
    )
