"""Benchmark: planning at scale, and from an event at the informer to a decision.

Cluster: N LoadBalancer Services (addresses recorded by the controller, both as the
``ironlb.io/allocated-ips`` annotation and in ``status.loadBalancer.ingress``, which is the
one the speakers read and re-check with the TrustCheck) on M Nodes;
two IPPools, an L2Advertisement for one and a BGPAdvertisement with one peer for the other;
every 20th Service has ``externalTrafficPolicy: Local`` with an EndpointSlice on 3 nodes.
Views are built by ``ironlb.agent.sources.kube.KubeSource`` from its informer caches, which are
fed their events directly (the path a watch event takes after decoding; no API server).

Figures (medians and p95):

- ``plan_cold_ms``: the first full plan in the process (the ranking memo is empty);
- ``plan_10k_ms``: the full reference plan, ``agent.planner.plan(view, node)`` (floor <= 200);
- ``view_10k_ms``: building the ClusterView after one Service event;
- ``event_to_decision_ms``: a Service or EndpointSlice event folded into the cache -> view ->
  the daemon's ``Planner.plan`` (incremental) -> the decision is in the plan (floor p95 <= 5).
  Events: a Service added (layer 2 / BGP), re-addressed, deleted, its traffic policy
  flipped, the endpoints of a Local Service moved.  Each kind is also reported alone;
- reported only: events that touch every group (a node NotReady, an agent dead, an
  L2Advertisement edited: the planner replans from scratch), a node label no selector reads
  (replans nothing), and the whole run again at 50,000 Services x 1,000 Nodes.

After the events, the incremental plan is checked equal to the reference plan.  Run::

    python bench/reconcile.py [--services 10000] [--nodes 100] [--runs 15] [--events 40] [--no-large]

Prints the figures, then one JSON line.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ironlb.agent import planner
from ironlb.agent.announcements import Plan
from ironlb.agent.kube.client import SPEAKER_KINDS
from ironlb.agent.kube.informer import Caches
from ironlb.agent.main import configure_gc
from ironlb.agent.sources.kube import KubeSource
from ironlb.agent.view import ClusterView
from ironlb.model import ANN_ALLOCATED_IPS, ANN_ALLOCATED_POOL
from lab.manifests import endpoint_slice, node, resource, service

L2_BASE = ipaddress.IPv4Address("10.64.0.0")
BGP_BASE = ipaddress.IPv4Address("10.65.0.0")
LOCAL_EVERY = 20


def address(i: int, moved: int = 0) -> str:
    """Service i's address: even i in the layer-2 pool, odd i in the BGP pool; moved: elsewhere."""
    return str((BGP_BASE if i % 2 else L2_BASE) + (65_000 + i % 500 if moved else i))


def svc(i: int, *, local: bool | None = None, moved: int = 0) -> dict[str, Any]:
    """Service i, allocated (status and annotations) in its namespace's pool."""
    ns = "bgp" if i % 2 else "l2"
    ip = address(i, moved)
    local = i % LOCAL_EVERY == 0 if local is None else local
    recorded = {ANN_ALLOCATED_IPS: ip, ANN_ALLOCATED_POOL: f"{ns}-pool"}
    return service(f"s{i}", ns, ip, annotations=recorded, etp="Local" if local else "Cluster")


def slice_of(i: int, nodes: list[str]) -> dict[str, Any]:
    """Service i's EndpointSlice: an endpoint on each of ``nodes``."""
    return endpoint_slice(f"s{i}", *nodes, namespace="bgp" if i % 2 else "l2")


def node_doc(i: int, *, ready: bool = True, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return node(f"n{i}", f"192.168.{i // 250}.{i % 250 + 1}", ready=ready, labels=labels or {})


L2ADV = {"ipPools": ["l2-pool"]}


def build_source(services: int, nodes: int) -> KubeSource:
    caches = Caches(None, SPEAKER_KINDS)  # type: ignore[arg-type]  # no client: fed directly
    src = KubeSource(None, "n0", caches)  # type: ignore[arg-type]
    inf = caches.informers
    for plural, doc in [
        (
            "ippools",
            resource(
                "IPPool",
                "l2-pool",
                {"addresses": [f"{L2_BASE}/16"], "serviceAllocation": {"namespaces": ["l2"]}},
            ),
        ),
        (
            "ippools",
            resource(
                "IPPool",
                "bgp-pool",
                {"addresses": [f"{BGP_BASE}/16"], "serviceAllocation": {"namespaces": ["bgp"]}},
            ),
        ),
        ("l2advertisements", resource("L2Advertisement", "lan", L2ADV)),
        (
            "bgppeers",
            resource("BGPPeer", "tor", {"myASN": 64512, "peerASN": 64513, "peerAddress": "192.168.255.1"}),
        ),
        ("bgpadvertisements", resource("BGPAdvertisement", "tor", {"ipPools": ["bgp-pool"]})),
    ]:
        inf[plural].apply("ADDED", doc)
    for i in range(nodes):
        inf["nodes"].apply("ADDED", node_doc(i))
    for i in range(services):
        inf["services"].apply("ADDED", svc(i))
        if i % LOCAL_EVERY == 0:
            inf["endpointslices"].apply("ADDED", slice_of(i, [f"n{(i + k) % nodes}" for k in range(3)]))
    return src


def owned(plan: Plan, ip: str) -> bool:
    return any(o.ip == ip and o.nodes for o in plan.ownership)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def stats(xs: list[float]) -> tuple[float, float]:
    return round(statistics.median(xs), 2), round(pct(xs, 0.95), 2)


class Run:
    """One cluster: its source, the daemon's incremental planner, and the event kinds."""

    def __init__(self, services: int, nodes: int) -> None:
        self.services, self.nodes = services, nodes
        self.src = build_source(services, nodes)
        self.inf = self.src.caches.informers
        self.planner = planner.Planner("n0")
        self.next = services + (services % 2)  # next new Service index (even: layer 2)
        self.live: frozenset[str] | None = None
        self.view_ms: list[float] = []
        self.plan_ms: list[float] = []  # the incremental planner's share of each step

    def step(self, event: Callable[[], None], check: Callable[[ClusterView, Plan], bool]) -> float:
        """Fold ``event`` into the caches, then build, plan and check: ms from event to decision."""
        t = time.perf_counter()
        event()
        built = self.src.build()
        self.view_ms.append(1000 * (time.perf_counter() - t))
        view = replace(built, live_members=self.live)  # what Daemon.replan does
        t_plan = time.perf_counter()
        plan = self.planner.plan(view)
        done = time.perf_counter()
        self.plan_ms.append(1000 * (done - t_plan))
        took = 1000 * (done - t)
        assert check(view, plan), "the event did not reach the decision"
        self.last_plan, self.last_view = plan, view
        return took

    def add(self, parity: int) -> float:
        """A new Service (layer 2: parity 0, BGP: 1): decided when its address has an owner."""
        i = self.next + parity
        self.next += 2 * parity
        ip = address(i)
        return self.step(
            lambda: self.inf["services"].apply("ADDED", svc(i, local=False)), lambda _, p: owned(p, ip)
        )

    def readdress(self, i: int) -> float:
        old, new = address(i), address(i, moved=1)
        return self.step(
            lambda: self.inf["services"].apply("MODIFIED", svc(i, moved=1)),
            lambda _, p: owned(p, new) and not owned(p, old),
        )

    def delete(self, i: int) -> float:
        ip = address(i)
        return self.step(lambda: self.inf["services"].apply("DELETED", svc(i)), lambda _, p: not owned(p, ip))

    def flip(self, i: int) -> float:
        """A BGP Service turns Local; without endpoints nobody announces it any more."""
        key = f"bgp/s{i}"
        return self.step(
            lambda: self.inf["services"].apply("MODIFIED", svc(i, local=True)),
            lambda v, p: v.assignments[key].traffic_policy == "Local" and key in p.unannounced,
        )

    def move_endpoints(self, i: int, r: int) -> float:
        """The endpoints of a Local layer-2 Service move: the owner follows them."""
        nodes = [f"n{(i + r + k + 1) % self.nodes}" for k in range(3)]
        ip = address(i)
        return self.step(
            lambda: self.inf["endpointslices"].apply("MODIFIED", slice_of(i, nodes)),
            lambda _, p: any(o.ip == ip and o.nodes[0] in nodes for o in p.ownership),
        )

    def service_events(self, count: int) -> dict[str, list[float]]:
        out: dict[str, list[float]] = {
            k: [] for k in ("add_l2", "add_bgp", "readdress", "delete", "etp_flip", "endpoints")
        }
        for r in range(count):
            out["add_l2"].append(self.add(0))
            out["add_bgp"].append(self.add(1))
            out["readdress"].append(self.readdress(2 * r + 2))
            out["delete"].append(self.delete((20 * (r + 50) + 2) % self.services))
            out["etp_flip"].append(self.flip(2 * r + 1))
            out["endpoints"].append(
                self.move_endpoints(LOCAL_EVERY * (r % (self.services // LOCAL_EVERY)), r)
            )
        return out

    def global_events(self) -> dict[str, float]:
        """Events touching every group (replanned from scratch), and one touching none."""
        inf, last = self.inf, f"n{self.nodes - 1}"
        full_before = self.planner.stats.full
        gone = lambda _, p: all(last not in o.nodes for o in p.ownership)  # noqa: E731
        back = lambda _, p: any(last in o.nodes for o in p.ownership)  # noqa: E731
        out = {
            "node_notready_ms": self.step(
                lambda: inf["nodes"].apply("MODIFIED", node_doc(self.nodes - 1, ready=False)), gone
            ),
            "node_ready_ms": self.step(
                lambda: inf["nodes"].apply("MODIFIED", node_doc(self.nodes - 1)), back
            ),
        }
        self.live = frozenset(f"n{i}" for i in range(self.nodes - 1))
        out["agent_dead_ms"] = self.step(lambda: None, gone)
        self.live = None
        out["agent_back_ms"] = self.step(lambda: None, back)
        extra = f"n{self.nodes}"
        out["node_added_ms"] = self.step(
            lambda: inf["nodes"].apply("ADDED", node_doc(self.nodes)),
            lambda _, p: any(extra in o.nodes for o in p.ownership),
        )
        out["node_removed_ms"] = self.step(
            lambda: inf["nodes"].apply("DELETED", node_doc(self.nodes)),
            lambda _, p: all(extra not in o.nodes for o in p.ownership),
        )
        edited = resource("L2Advertisement", "lan", {**L2ADV, "interfaces": ["eth1"]})
        out["l2adv_edit_ms"] = self.step(
            lambda: inf["l2advertisements"].apply("MODIFIED", edited),
            lambda _, p: bool(p.l2) and all(a.interfaces == ("eth1",) for a in p.l2),
        )
        out["full_replans"] = self.planner.stats.full - full_before
        out["unrelated_label_ms"] = self.step(
            lambda: inf["nodes"].apply("MODIFIED", node_doc(self.nodes - 1, labels={"unrelated": "x"})),
            lambda v, _: dict(v.nodes[last].labels) == {"unrelated": "x"},
        )
        out["unrelated_label_groups"] = self.planner.stats.last_replanned
        return out


def measure(services: int, nodes: int, runs: int, events: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    run = Run(services, nodes)
    view = run.src.build()
    assert len(view.assignments) == services, len(view.assignments)
    print(
        f"setup: {services} services, {nodes} nodes, first view in {1000 * (time.perf_counter() - t0):.0f} ms"
    )
    t = time.perf_counter()
    planner.plan(view, "n0")
    cold = 1000 * (time.perf_counter() - t)
    plan_ms = []
    for _ in range(runs):
        t = time.perf_counter()
        planner.plan(view, "n0")
        plan_ms.append(1000 * (time.perf_counter() - t))
    run.planner.plan(view)
    run.view_ms.clear()
    run.plan_ms.clear()
    kinds = run.service_events(events)
    full_in_service_events = run.planner.stats.full - 1
    everything = [x for xs in kinds.values() for x in xs]
    view_ms, planner_ms = list(run.view_ms), list(run.plan_ms)
    rare = run.global_events()
    assert run.last_plan == planner.plan(run.last_view, "n0"), "incremental plan differs from the reference"

    def show(name: str, xs: list[float]) -> None:
        med, p95 = stats(xs)
        print(f"{name:28s} median {med:8.2f} ms   p95 {p95:8.2f} ms   (n={len(xs)})")

    print(f"{'plan_cold':28s} {cold:8.1f} ms (first plan, empty ranking memo)")
    show("plan (full, reference)", plan_ms)
    show("view_after_one_change", view_ms)
    show("planner share of an event", planner_ms)
    show("event_to_decision (all)", everything)
    for kind, xs in kinds.items():
        show(f"  {kind}", xs)
    print(f"full replans during service events: {full_in_service_events}")
    for key, value in rare.items():
        print(f"{key:28s} {value:8.1f}")
    return {
        "plan_cold_ms": round(cold, 1),
        "plan_ms": stats(plan_ms)[0],
        "plan_p95_ms": stats(plan_ms)[1],
        "view_ms": stats(view_ms)[0],
        "view_p95_ms": stats(view_ms)[1],
        "incremental_plan_ms": stats(planner_ms)[0],
        "incremental_plan_p95_ms": stats(planner_ms)[1],
        "event_to_decision_ms": stats(everything)[0],
        "event_to_decision_p95_ms": stats(everything)[1],
        "events": {kind: stats(xs) for kind, xs in kinds.items()},
        "full_replans_in_service_events": full_in_service_events,
        **{k: round(v, 1) for k, v in rare.items()},
        "services": services,
        "nodes": nodes,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--services", type=int, default=10_000)
    ap.add_argument("--nodes", type=int, default=100)
    ap.add_argument("--runs", type=int, default=15, help="full plans timed")
    ap.add_argument("--events", type=int, default=40, help="events of each kind timed")
    ap.add_argument("--no-large", action="store_true", help="skip the 50,000 x 1,000 run")
    args = ap.parse_args()
    configure_gc()  # the GC thresholds the agent process runs with
    main_run = measure(args.services, args.nodes, args.runs, args.events)
    result: dict[str, Any] = {
        "plan_10k_ms": main_run["plan_ms"],
        "plan_10k_p95_ms": main_run["plan_p95_ms"],
        "view_10k_ms": main_run["view_ms"],
        **{k: v for k, v in main_run.items() if k not in ("plan_ms", "plan_p95_ms", "view_ms")},
    }
    if not args.no_large:
        print()
        large = measure(50_000, 1_000, 3, 10)
        result["large"] = large
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
