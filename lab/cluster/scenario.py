"""Issue 9's end-to-end scenario, as steps that assert (shared by the dev and prod tests and
``bench/install.py``).  Each step leaves the cluster as it found it, so they run in order:

1. :func:`converge` -- every pod ready, every Service has its addresses, every address is
   announced (BGP: a path from every node at every router) and reached over TCP;
2. :func:`soak` -- idle for N seconds, then the figures of that window;
3. :func:`kill_leader` -- SIGKILL the pod holding the controller Lease: a controller holds it
   again, allocation resumes (a new Service gets a new address), nothing moves;
4. :func:`kill_agent` -- SIGKILL the agent pod serving a layer-2 address: another node answers
   for it, then the restarted agent is ready again and every address is reached;
5. :func:`edit_pool` -- add a range to a pool as admin: its status counts it, nothing moves;
6. :func:`tenant_lifecycle` -- as a tenant (a token for a ServiceAccount with a namespaced
   Role, over TLS from the LAN client): a Service naming another tenant's pool is refused
   with a Warning Event and gets nothing; a Service of its own is allocated, routed by every
   router, and withdrawn from every router when deleted.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from ironlb.model import ANN_POOL
from lab import manifests
from lab.cluster import checks
from lab.cluster.api import UserApi
from lab.cluster.deploy import API_PORT, Cluster
from lab.errors import WaitTimeout
from lab.probe import who_serves
from lab.waiting import wait_for

T = TypeVar("T")
#: Seconds between two reads while waiting on the cluster: each read is an API request, a birdc
#: run or a TCP probe from a client, on a shared 2-core machine.
POLL = 0.2


def all_ready(cluster: Cluster) -> dict[str, bool]:
    assert cluster.kubelet is not None
    return {n: all(r.ready for r in w.containers.values()) for n, w in cluster.kubelet.workers.items()}


def bgp_next_hops(cluster: Cluster, ip: str) -> dict[str, set[str]]:
    """Router -> next hops it holds for ``ip``'s host route."""
    v6 = ":" in ip
    prefix = f"{ip}/{128 if v6 else 32}"
    return {
        name: {p.next_hop for p in router.routes("master6" if v6 else "master4").get(prefix, [])}
        for name, router in cluster.routers.items()
    }


def every_node(cluster: Cluster, ip: str) -> set[str]:
    lab = cluster.the_lab
    return {lab.addr(n, 6 if ":" in ip else 4) for n in lab.nodes}


def routed_by_all(cluster: Cluster, ip: str) -> Callable[[], bool]:
    """A probe: does every router route ``ip`` via every node?"""
    return lambda: all(hops == every_node(cluster, ip) for hops in bgp_next_hops(cluster, ip).values())


@dataclass
class Converged:
    addresses: dict[str, list[str]]
    probes: list[checks.Probe]
    seconds: float


def converge(cluster: Cluster, timeout: float = 90) -> Converged:
    start = time.monotonic()
    try:
        wait_for(
            "every pod to be ready", lambda: all(all_ready(cluster).values()), timeout=timeout, interval=POLL
        )
    except WaitTimeout as exc:
        raise WaitTimeout(f"{exc}\n{pod_problems(cluster)}") from None
    addresses = checks.wait_addresses(cluster, timeout)
    topo = cluster.topology
    for ip in (ip for ips in addresses.values() for ip in ips if topo.pool_of(ip) in topo.bgp_pools):
        wait_for(
            f"every router to route {ip} via every node",
            routed_by_all(cluster, ip),
            timeout=30,
            interval=POLL,
        )
    probes = checks.wait_reachable(cluster, addresses, timeout=30)
    return Converged(addresses, probes, time.monotonic() - start)


def pod_problems(cluster: Cluster) -> str:
    if cluster.kubelet is None:
        return ""
    lines = []
    for name, worker in cluster.kubelet.workers.items():
        for c, run in worker.containers.items():
            if not run.ready:
                probes = ", ".join(f"{s.probe.kind}: {s.last or 'not run'}" for s in run.probes)
                lines.append(f"{name}/{c}: restarts {run.restarts}, waiting {run.waiting or '-'}, {probes}")
    return "pods not ready:\n  " + "\n  ".join(lines) if lines else ""


#: Convergence is judged from outside (addresses, routes, TCP), and the speakers' last reports
#: (a BGP or BFD session coming up at the second router, then the controller's peer status) can
#: still be in flight when it is reached (seen: NodeState patches 0.4 s before convergence was
#: judged, none in the 600 s after).  The idle window starts once no pod has written for this
#: long: 3 ticks of the speakers' 1 s status tick, well past the NodeState writer's 0.2 s
#: debounce, so a report still due has been made.
QUIET_S = 3.0


def soak(cluster: Cluster, seconds: float) -> checks.Figures:
    """Wait until the pods have stopped writing (:data:`QUIET_S`), then idle ``seconds`` and
    return the figures of that window: at rest, nothing but Leases may be written."""
    wait_for(
        f"no API write (Leases aside) for {QUIET_S:.0f} s after convergence",
        lambda: time.time() - checks.last_write(cluster),
        lambda idle: idle >= QUIET_S,
        timeout=60,
        interval=0.5,
    )
    since = time.time()
    time.sleep(seconds)
    return checks.figures(cluster, since)


def service(
    name: str, namespace: str, port: int = 8443, annotations: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """A Service as the rendered stacks' workloads are exposed: a named TCP port to the same port."""
    tcp = {"name": "tcp", "port": port, "protocol": "TCP", "targetPort": port}
    return manifests.service(name, namespace, annotations=annotations, selector={"app": name}, ports=[tcp])


def ingress(cluster: Cluster, name: str, namespace: str) -> list[str]:
    live = cluster.admin.get("v1", "Service", name, namespace) or {}
    return [str(i["ip"]) for i in ((live.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []]


@dataclass
class Failover:
    old: str
    new: str | None
    seconds: float  # kill -> a new Service has an address


def kill_leader(
    cluster: Cluster, before: Mapping[str, list[str]], timeout: float = 60, down_for: float | None = None
) -> Failover:
    """SIGKILL the Lease holder; a new Service (in a rendered Service's namespace and pool) must
    get a fresh address, and no address may move.

    The kubelet restarts the killed container in place at once, and it may take its own Lease
    back before it expires; with ``down_for`` it stays down that long, so the standby replica
    must take over (a node lost with its pod)."""
    namespace, pool = _namespace_and_pool(cluster, before)
    old = wait_for(
        "a controller to hold the Lease", lambda: checks.leader(cluster), timeout=30, interval=POLL
    )
    cluster.kill_pod(old, down_for=down_for)
    killed = time.monotonic()
    cluster.admin.create(service("after-failover", namespace, annotations={ANN_POOL: pool}))
    try:
        got = wait_for(
            "the next controller to allocate a new Service",
            lambda: ingress(cluster, "after-failover", namespace),
            timeout=timeout,
            interval=POLL,
        )
        seconds = time.monotonic() - killed
        assert not set(got) & {ip for ips in before.values() for ip in ips}, (
            f"new Service got a used address: {got}"
        )
        assert checks.service_addresses(cluster) == dict(before), "the failover changed an address"
        return Failover(old, checks.leader(cluster), seconds)
    finally:
        cluster.admin.delete("v1", "Service", "after-failover", namespace)


def _namespace_and_pool(cluster: Cluster, addresses: Mapping[str, list[str]]) -> tuple[str, str]:
    """Where a new Service surely gets an address: beside a rendered one, from its pool."""
    for key, ips in sorted(addresses.items()):
        pool = cluster.topology.pool_of(ips[0]) if ips else None
        if pool:
            return key.split("/")[0], pool
    raise AssertionError(f"no rendered Service has an address: {dict(addresses)}")


def _l2_target(cluster: Cluster, addresses: Mapping[str, list[str]]) -> tuple[str, int] | None:
    topo = cluster.topology
    for svc in cluster.services():
        key = f"{svc['metadata']['namespace']}/{svc['metadata']['name']}"
        ports = [int(p["port"]) for p in svc["spec"]["ports"] if p.get("protocol", "TCP") == "TCP"]
        for ip in addresses.get(key, []):
            if topo.pool_of(ip) in topo.l2_pools and ":" not in ip and ports:
                return ip, ports[0]
    return None


def kill_agent(
    cluster: Cluster, addresses: Mapping[str, list[str]], timeout: float = 30
) -> tuple[str, str, float]:
    """Kill the agent on the node serving a layer-2 address; (old node, new node, seconds)."""
    target = _l2_target(cluster, addresses)
    assert target is not None, "the stack has no IPv4 layer-2 address to fail over"
    ip, port = target
    lab = cluster.the_lab
    owner = wait_for(
        f"a node to serve {ip}", lambda: who_serves(lab, "client", ip, port), timeout=30, interval=POLL
    )
    speakers = [p for p in cluster.pods() if p.workload_kind == "DaemonSet" and p.node == owner]
    assert speakers, f"no DaemonSet pod on {owner}"
    cluster.kill_pod(speakers[0].name)
    killed = time.monotonic()
    seen: list[str | None] = []

    def another() -> str | None:
        seen.append(who_serves(lab, "client", ip, port, timeout=0.5))
        return seen[-1] if seen[-1] not in (None, owner) else None

    try:
        other = wait_for(
            f"another node to answer for {ip} after the agent on {owner} was killed",
            another,
            timeout=timeout,
            interval=0.05,
        )
    except WaitTimeout as exc:
        raise WaitTimeout(f"{exc}; answers seen in order: {_runs(seen)}") from None
    seconds = time.monotonic() - killed
    wait_for(
        "every pod to be ready again", lambda: all(all_ready(cluster).values()), timeout=60, interval=POLL
    )
    return owner, other, seconds


def _runs(values: list[str | None]) -> list[tuple[str | None, int]]:
    """[a, a, b] -> [(a, 2), (b, 1)]"""
    out: list[tuple[str | None, int]] = []
    for v in values:
        out = [*out[:-1], (v, out[-1][1] + 1)] if out and out[-1][0] == v else [*out, (v, 1)]
    return out


def _free_range(cluster: Cluster, after: ipaddress.IPv4Address, size: int) -> tuple[str, str]:
    """``size`` consecutive LAN addresses after ``after`` in no pool and used by no lab host."""
    lab, topo = cluster.the_lab, cluster.topology
    lan = ipaddress.IPv4Network(topo.topology.lan[0])
    used = {ipaddress.IPv4Address(lab.addr(h)) for h, (net, _) in lab.hosts.items() if net == "lan"}
    run: list[ipaddress.IPv4Address] = []
    for addr in lan.hosts():
        free = addr > after and addr not in used and topo.pool_of(str(addr)) is None
        run = [*run, addr] if free else []
        if len(run) == size:
            return str(run[0]), str(run[-1])
    raise AssertionError(f"no {size} free addresses after {after} on {lan}")


def edit_pool(cluster: Cluster, timeout: float = 30, size: int = 5) -> tuple[str, int]:
    """Add a free IPv4 range to the first layer-2 pool as admin; wait for its status to count it."""
    topo = cluster.topology
    name = sorted(topo.l2_pools)[0]
    pool = cluster.admin.get("ironlb.io/v1alpha1", "IPPool", name) or {}
    before = int((pool.get("status") or {}).get("availableIPv4", 0))
    last = max(ipaddress.IPv4Address(str(r[-1])) for r in topo.pool_ranges[name] if r.version == 4)
    first, end = _free_range(cluster, last, size)
    addresses = [*pool["spec"]["addresses"], f"{first}-{end}"]
    cluster.edit("ironlb.io/v1alpha1", "IPPool", name, {"spec": {"addresses": addresses}})

    def counted() -> bool:
        live = cluster.admin.get("ironlb.io/v1alpha1", "IPPool", name) or {}
        return int((live.get("status") or {}).get("availableIPv4", 0)) == before + size

    wait_for(
        f"IPPool {name} status to count the {size} added addresses (had {before} free)",
        counted,
        timeout=timeout,
        interval=POLL,
    )
    return name, size


def tenant_api(
    cluster: Cluster, namespace: str, account: str = "tenant-deployer"
) -> Callable[[Callable[[UserApi], T]], T]:
    """Run calls as a tenant: a ServiceAccount with a Role on Services in ``namespace`` only."""
    admin = cluster.admin
    admin.create(
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": account, "namespace": namespace}}
    )
    rules = [
        {
            "apiGroups": [""],
            "resources": ["services"],
            "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"],
        }
    ]
    admin.create(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": account, "namespace": namespace},
            "rules": rules,
        }
    )
    admin.create({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": account, "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": account},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
    })  # fmt: skip
    user = UserApi(cluster.api_host, API_PORT, admin.token(namespace, account), cluster.ca_file)
    return lambda fn: cluster.the_lab.call("client", lambda: fn(user))


def events(cluster: Cluster, namespace: str, name: str) -> list[tuple[str, str, str]]:
    items = cluster.admin.list("v1", "Event", namespace)
    return [
        (str(e.get("type")), str(e.get("reason")), str(e.get("message")))
        for e in items
        if (e.get("involvedObject") or {}).get("name") == name
    ]


def tenant_lifecycle(cluster: Cluster, namespace: str, foreign_pool: str, timeout: float = 30) -> str:
    """Refused foreign pool; own Service allocated, routed, withdrawn on delete. Returns its address."""
    as_tenant = tenant_api(cluster, namespace)
    as_tenant(lambda api: api.create(service("thief", namespace, annotations={ANN_POOL: foreign_pool})))
    refused = wait_for(
        "a Warning Event refusing the foreign pool",
        lambda: [e for e in events(cluster, namespace, "thief") if e[0] == "Warning"],
        timeout=timeout,
        interval=POLL,
    )
    assert any(foreign_pool in e[2] for e in refused), refused
    assert ingress(cluster, "thief", namespace) == [], "a tenant got an address from another tenant's pool"
    as_tenant(lambda api: api.delete("v1", "Service", "thief", namespace))
    as_tenant(lambda api: api.create(service("own", namespace)))
    ip = wait_for(
        "the tenant's Service to get an address",
        lambda: ingress(cluster, "own", namespace),
        timeout=timeout,
        interval=POLL,
    )[0]
    topo = cluster.topology
    if topo.pool_of(ip) in topo.bgp_pools:
        wait_for(
            f"every router to route {ip}",
            lambda: all(bgp_next_hops(cluster, ip).values()),
            timeout=timeout,
            interval=POLL,
        )
    as_tenant(lambda api: api.delete("v1", "Service", "own", namespace))
    if topo.pool_of(ip) in topo.bgp_pools:
        wait_for(
            f"every router to withdraw {ip}",
            lambda: not any(bgp_next_hops(cluster, ip).values()),
            timeout=timeout,
            interval=POLL,
        )
    return ip


def _ingress_of(cluster: Cluster, name: str, namespace: str) -> Callable[[], list[str]]:
    return lambda: ingress(cluster, name, namespace)


def tcp_connects(cluster: Cluster, client: str, ip: str, port: int, timeout: float) -> float | None:
    """Seconds until a TCP connect from ``client`` to ip:port succeeds (20 ms tries), or None."""

    def connects() -> bool:
        with socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.05)
            return sock.connect_ex((ip, port)) == 0

    def loop() -> float | None:
        start = time.monotonic()
        try:
            wait_for(f"a TCP connect to {ip}:{port}", connects, timeout=timeout, interval=0.02)
        except WaitTimeout:
            return None
        return time.monotonic() - start

    return cluster.the_lab.call(client, loop, timeout + 10)


def create_to_reachable(
    cluster: Cluster, addresses: Mapping[str, list[str]], runs: int, timeout: float = 30
) -> list[float]:
    """Seconds from POSTing a Service (beside a rendered one, in its pool) until the client's TCP
    connect to its address succeeds, over ``runs`` Services (each deleted afterwards)."""
    namespace, pool = _namespace_and_pool(cluster, addresses)
    port = next(
        int(p["port"])
        for s in cluster.services()
        for p in s["spec"]["ports"]
        if p.get("protocol", "TCP") == "TCP"
    )
    topo = cluster.topology
    out = []
    for i in range(runs):
        name = f"bench-create-{i}"
        for client in ("client", "extclient"):  # no neighbour entry left from the previous Service
            cluster.the_lab.run(client, "ip", "neigh", "flush", "all")
        start = time.monotonic()
        cluster.admin.create(service(name, namespace, port=port, annotations={ANN_POOL: pool}))
        try:
            ip = wait_for(
                f"{name} to get an address",
                _ingress_of(cluster, name, namespace),
                timeout=timeout,
                interval=0.01,
            )[0]
            client = "client" if topo.pool_of(ip) in topo.l2_pools else "extclient"
            took = tcp_connects(cluster, client, ip, port, timeout)
            assert took is not None, f"{name}: {ip}:{port} never reachable from {client}"
            out.append(time.monotonic() - start)
        finally:
            cluster.admin.delete("v1", "Service", name, namespace)
            time.sleep(0.5)
    return out
