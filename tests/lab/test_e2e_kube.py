"""End to end with ``--source kube``: kmock as the API server, three real agents, a client.

Issue 6's CI scenario.  kmock (``lab.kmock_server``) runs in the router namespace on
10.77.0.1:6443, so the agents in the node namespaces reach it over the lab LAN; the test
process talks to the same object store through a Unix socket in the lab's directory.
One test walks the whole life of a Service, because every step needs the agents and the
API server to be up (starting them is most of the cost):

1. a LoadBalancer Service in tenant A's namespace gets an address from tenant A's pool,
   with the allocation annotation, ``status.loadBalancer.ingress`` and an Allocated Event;
   one node announces it (layer 2) and the client reaches it over TCP; tenant B's Service
   gets an address from tenant B's pool, announced over BGP: BIRD on the router learns a
   path from every node and the client, routed through it, reaches a node;
2. a Service of tenant A naming tenant B's pool is refused with a Forbidden Warning Event
   and gets no address;
3. the Lease holder is killed (SIGKILL, no release): another agent takes the Lease, the
   Service keeps its address, the client still reaches it, and the new controller gives
   a new Service a *different* address (it rebuilt from what the cluster records);
4. deleting the Service withdraws the address (no ARP answer) and releases it: a new
   Service asking for that exact address gets it; deleting tenant B's Service removes
   its route from BIRD.

Real-apiserver behaviour NOT covered (kmock gaps, see /work/shared/notes/libraries.md):
resourceVersion on anything but Leases, watch resumption from a resourceVersion and 410s,
the status subresource's separate write path, admission and CRD schema validation,
uid/finalizer-driven deletion, Event aggregation, Namespace watches (the driver serves a
fixed list), RBAC, and TLS/authentication to the API server.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from lab import VIP_PORT, Lab, LabError
from lab.agents import Agents, nodes
from lab.probe import arping_macs, who_serves
from lab.routers import NODE_ASN, ROUTER_ASN, Bird, Neighbor
from tests.kube_support import pool, service, tenant

pytestmark = [pytest.mark.lab, pytest.mark.timeout(120)]

T = TypeVar("T")
API_PORT = 6443
LEASE = "/apis/coordination.k8s.io/v1/namespaces/ironlb-system/leases/ironlb-controller"
CRD = "/apis/ironlb.io/v1alpha1"
POOL_A, POOL_B = "10.77.0.200-10.77.0.209", "10.78.0.10-10.78.0.19"
BGP_NET = "10.78.0.0/24"  # routed by BIRD, off the LAN (as in ``ironlb demo``)
ANN_IPS, ANN_POOL, ANN_ALLOCATED = (
    "ironlb.io/loadBalancerIPs",
    "ironlb.io/address-pool",
    "ironlb.io/allocated-ips",
)


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("kmock", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(str(self.path))
        self.sock = sock


class Api:
    """Just enough REST to drive kmock from the test process (over the Unix socket)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def call(self, method: str, url: str, body: Any = None) -> tuple[int, Any]:
        conn = _UnixConnection(self.path, timeout=5)
        try:
            data = json.dumps(body) if body is not None else None
            conn.request(method, url, body=data, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else None
        finally:
            conn.close()

    def create(self, url: str, body: dict[str, Any]) -> None:
        code, answer = self.call("POST", url, body)
        assert code in (200, 201), f"POST {url}: HTTP {code}: {answer}"

    def get(self, url: str) -> dict[str, Any]:
        code, answer = self.call("GET", url)
        return answer if code == 200 and isinstance(answer, dict) else {}

    def delete(self, url: str) -> None:
        code, answer = self.call("DELETE", url)
        assert code in (200, 202), f"DELETE {url}: HTTP {code}: {answer}"


def svc_url(namespace: str, name: str = "") -> str:
    return f"/api/v1/namespaces/{namespace}/services" + (f"/{name}" if name else "")


class KubeAgents(Agents):
    """lab.agents.Agents, but each agent runs ``--source kube`` against the lab's kmock."""

    def argv(self, node: str, extra: Iterable[str] = ()) -> list[str]:
        argv = [sys.executable, "-m", "agent.main", "--source", "kube", "--node", node]
        argv += ["--status-file", str(self.status_path(node)), "--membership", self.membership]
        argv += ["--membership-key", str(self.key)] if self.membership == "gossip" else []
        return argv + self.extra_args + list(extra)


def wait(what: str, probe: Callable[[], T | None], timeout: float = 15) -> T:
    """Poll until ``probe()`` is truthy (bounded); the failure names ``what`` and the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:  # falsy (None, False, empty) means "not yet"
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}; last value: {value!r}")
        time.sleep(0.1)


def next_hops(bird: Bird, ip: str) -> set[str]:
    return {p.next_hop for p in bird.routes().get(f"{ip}/32", [])}


def in_range(ip: str, spec: str) -> bool:
    lo, hi = (ipaddress.IPv4Address(x) for x in spec.split("-"))
    return lo <= ipaddress.IPv4Address(ip) <= hi


def crd(kind: str, name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "ironlb.io/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec}


def start_kmock(lab: Lab, namespaces: Iterable[str]) -> Api:
    sock = lab.workdir / "kube.sock"
    if len(str(sock)) > 100:  # AF_UNIX paths are limited to 108 bytes
        raise LabError(f"socket path {sock} is too long for AF_UNIX (max ~100 chars): shorten TMPDIR")
    argv = [sys.executable, "-m", "lab.kmock_server", "--host", lab.addr("router", 4)]
    argv += ["--port", str(API_PORT), "--socket", str(sock), *(f"--namespace={n}" for n in namespaces)]
    proc = lab.spawn("router", argv, name="kmock")
    deadline = time.monotonic() + 15
    while not sock.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise LabError(f"kmock did not start (exit {proc.poll()}):\n{lab.log('kmock')[-3000:]}")
        time.sleep(0.05)
    return Api(sock)


def test_a_service_lives_its_whole_life_through_real_agents_and_a_controller_failover(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = time.monotonic()
    api = start_kmock(lab, ["default", "team-a", "team-b", "ironlb-system"])
    for doc in nodes(lab):
        api.create("/api/v1/nodes", doc)
    api.create(f"{CRD}/ippools", pool("pool-a", POOL_A))
    api.create(f"{CRD}/ippools", pool("pool-b", POOL_B))
    api.create(f"{CRD}/tenants", tenant("a", ["team-a"], ["pool-a"]))
    api.create(f"{CRD}/tenants", tenant("b", ["team-b"], ["pool-b"]))
    api.create(f"{CRD}/l2advertisements", crd("L2Advertisement", "lan", ipPools=["pool-a"]))
    api.create(f"{CRD}/bgpadvertisements", crd("BGPAdvertisement", "tor", ipPools=["pool-b"]))
    tor = crd(
        "BGPPeer", "tor", myASN=NODE_ASN, peerASN=ROUTER_ASN, peerAddress=lab.addr("router"), holdTime=6
    )
    api.create(f"{CRD}/bgppeers", {**tor, "spec": {**tor["spec"], "connectTime": 1}})
    bird = Bird(lab, [Neighbor(n, lab.addr(n)) for n in lab.nodes]).start()
    for node in lab.nodes:  # BGP addresses arrive routed: nodes accept them, the client routes them
        lab.run(node, "ip", "route", "add", "local", BGP_NET, "dev", "lo")
    lab.run("client", "ip", "route", "replace", BGP_NET, "via", lab.addr("router"))
    lab.start_vip_servers()
    monkeypatch.setenv("IRONLB_KUBE_SERVER", f"http://{lab.addr('router', 4)}:{API_PORT}")
    monkeypatch.setenv("POD_NAMESPACE", "ironlb-system")
    agents = KubeAgents(lab)
    agents.start_all()
    ports = [{"port": VIP_PORT, "protocol": "TCP"}]

    def recorded(name: str, namespace: str = "team-a") -> tuple[str | None, list[str]]:
        doc = api.get(svc_url(namespace, name))
        ann = (doc.get("metadata") or {}).get("annotations") or {}
        ingress = ((doc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        return ann.get(ANN_ALLOCATED), [i.get("ip") for i in ingress]

    def allocated(name: str, namespace: str = "team-a") -> str | None:
        """The address recorded in both the annotation and the status, once they agree."""
        ip, ingress = recorded(name, namespace)
        return ip if ip is not None and ingress == [ip] else None

    def events(name: str) -> list[tuple[str, str, str]]:
        items = api.get("/api/v1/events").get("items") or []
        return [
            (e["type"], e["reason"], e["message"])
            for e in items
            if (e.get("involvedObject") or {}).get("name") == name
        ]

    def holder() -> str | None:
        spec = api.get(LEASE).get("spec") or {}
        h = spec.get("holderIdentity")
        return str(h) if h else None

    # 1. allocate from the tenant's pool, write status, announce, serve.
    api.create(svc_url("team-a"), service("web", "team-a", ports=ports))
    ip = wait("web's address and status", lambda: allocated("web"))
    assert in_range(ip, POOL_A), ip
    assert any(e[1] == "Allocated" and ip in e[2] for e in events("web")), events("web")
    owner = agents.wait_owner(ip)
    assert who_serves(lab, "client", ip) == owner

    # 1b. tenant B's Service: its own pool, announced over BGP; BIRD routes the client to a node.
    api.create(svc_url("team-b"), service("db", "team-b", ports=ports))
    db_ip = wait("db's address and status", lambda: allocated("db", "team-b"))
    assert in_range(db_ip, POOL_B), db_ip
    every = {lab.addr(n) for n in lab.nodes}
    wait("BIRD to route db's address to every node", lambda: next_hops(bird, db_ip) == every, timeout=20)
    assert who_serves(lab, "client", db_ip) in lab.nodes

    # 2. another tenant's pool: refused with an Event, no address.
    api.create(svc_url("team-a"), service("thief", "team-a", annotations={ANN_POOL: "pool-b"}, ports=ports))
    refused = wait("the Forbidden event", lambda: [e for e in events("thief") if e[0] == "Warning"])
    assert refused[0][1] == "Forbidden" and "pool-b" in refused[0][2], refused
    assert recorded("thief") == (None, [])

    # 3. kill the controller without a release: another agent takes over, nothing moves.
    leader = wait("a Lease holder", holder)
    agents.stop(leader, signal.SIGKILL)
    killed = time.monotonic()
    successor = wait(
        "another agent to take the Lease", lambda: h if (h := holder()) != leader else None, timeout=30
    )
    assert successor in agents.procs, successor
    print(f"{successor} took the Lease {time.monotonic() - killed:.1f} s after {leader} was killed")
    api.create(svc_url("team-a"), service("api", "team-a", ports=ports))
    api_ip = wait("the new controller to allocate", lambda: allocated("api"))
    assert in_range(api_ip, POOL_A) and api_ip != ip, (api_ip, ip)
    assert recorded("web") == (ip, [ip]), "the failover changed web's address"
    assert allocated("db", "team-b") == db_ip, "the failover changed db's address"
    owner = agents.wait_owner(ip)
    assert owner != leader and who_serves(lab, "client", ip) == owner

    # 4. delete: withdrawn (nobody answers ARP) and released (the address can be had again).
    api.delete(svc_url("team-a", "web"))
    wait("agents to drop web's address", lambda: all(not agents.owners(ip).get(n) for n in agents.procs))
    wait("ARP for web's address to go unanswered", lambda: arping_macs(lab, "client", ip) == set())
    api.create(svc_url("team-a"), service("web2", "team-a", annotations={ANN_IPS: ip}, ports=ports))
    assert wait("the released address to be reassigned", lambda: recorded("web2")[0]) == ip
    api.delete(svc_url("team-b", "db"))
    wait("BIRD to lose db's route", lambda: not next_hops(bird, db_ip), timeout=10)
    print(f"e2e kube scenario took {time.monotonic() - started:.1f} s")
