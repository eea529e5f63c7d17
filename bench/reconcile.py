"""Benchmark: planning at scale, and from a Service event at the informer to a decision.

Cluster: 10,000 LoadBalancer Services (addresses recorded by the controller) and 100
Nodes, one IPPool, one L2Advertisement and a BGPAdvertisement with one peer for half the
services.  Figures:

- ``plan_10k_ms``: one full ``agent.planner.plan(view, node)`` over that view (floor <= 200);
- ``view_10k_ms``: building the ClusterView from the informer caches after one change
  (memoised per Service, so one change re-reads one object);
- ``event_to_decision_ms``: a Service ADDED event folded into the informer cache -> new
  view -> plan -> the new address appears in the ownership table.

Everything runs in-process (no API server): the informers are fed their events directly,
which is the path a watch event takes after decoding.  Run::

    python bench/reconcile.py [--services 10000] [--nodes 100] [--runs 15]

Prints medians and p95, then one JSON line.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent import planner
from agent.kube.client import AGENT_KINDS
from agent.kube.informer import Caches
from agent.kube.runtime import KubeRuntime, KubeSettings
from agent.main import configure_gc
from agent.sources.kube import KubeSource
from ironlb.model import ANN_ALLOCATED_IPS, ANN_ALLOCATED_POOL, LOAD_BALANCER_CLASS

BASE = ipaddress.IPv4Address("10.64.0.0")


def cr(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "ironlb.io/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec}


def svc(i: int) -> dict[str, Any]:
    ns = "bgp" if i % 2 else "l2"
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": f"s{i}",
            "namespace": ns,
            "annotations": {ANN_ALLOCATED_IPS: str(BASE + i), ANN_ALLOCATED_POOL: f"{ns}-pool"},
        },
        "spec": {
            "type": "LoadBalancer",
            "loadBalancerClass": LOAD_BALANCER_CLASS,
            "ports": [{"port": 80, "protocol": "TCP"}],
        },
    }


def node(i: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": f"n{i}", "labels": {}},
        "status": {
            "conditions": [{"type": "Ready", "status": "True"}],
            "addresses": [{"type": "InternalIP", "address": f"192.168.{i // 250}.{i % 250 + 1}"}],
        },
    }


def build_source(services: int, nodes: int) -> KubeSource:
    runtime = KubeRuntime.__new__(KubeRuntime)  # no client: caches are fed directly
    runtime.caches = Caches(None, AGENT_KINDS)  # type: ignore[arg-type]
    runtime.settings = KubeSettings()
    src = KubeSource(runtime)
    crs = [
        cr("IPPool", "l2-pool", {"addresses": [f"{BASE}/16"], "serviceAllocation": {"namespaces": ["l2"]}}),
        cr(
            "IPPool",
            "bgp-pool",
            {"addresses": [f"{BASE + 65536}/16"], "serviceAllocation": {"namespaces": ["bgp"]}},
        ),
        cr("L2Advertisement", "lan", {"ipPools": ["l2-pool"]}),
        cr("BGPPeer", "tor", {"myASN": 64512, "peerASN": 64513, "peerAddress": "192.168.255.1"}),
        cr("BGPAdvertisement", "tor", {"ipPools": ["bgp-pool"]}),
    ]
    for doc in crs:
        plural = {
            "IPPool": "ippools",
            "L2Advertisement": "l2advertisements",
            "BGPPeer": "bgppeers",
            "BGPAdvertisement": "bgpadvertisements",
        }[doc["kind"]]
        src.caches.informers[plural].apply("ADDED", doc)
    for i in range(nodes):
        src.caches.informers["nodes"].apply("ADDED", node(i))
    for i in range(services):
        src.caches.informers["services"].apply("ADDED", svc(i))
    return src


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--services", type=int, default=10_000)
    ap.add_argument("--nodes", type=int, default=100)
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    configure_gc()  # the GC thresholds the agent process runs with

    t0 = time.perf_counter()
    src = build_source(args.services, args.nodes)
    view = src.build()
    took = 1000 * (time.perf_counter() - t0)
    print(f"setup: {args.services} services, {args.nodes} nodes, first view in {took:.0f} ms")
    assert len(view.assignments) == args.services, len(view.assignments)

    plan_ms: list[float] = []
    for _ in range(args.runs):
        t = time.perf_counter()
        p = planner.plan(view, "n0")
        plan_ms.append(1000 * (time.perf_counter() - t))
    owned = len(p.ownership)

    view_ms: list[float] = []
    e2d_ms: list[float] = []
    for r in range(args.runs):
        i = args.services + r  # a new Service in the L2 namespace (even index)
        i += i % 2
        doc = svc(i)
        ip = doc["metadata"]["annotations"][ANN_ALLOCATED_IPS]
        t = time.perf_counter()
        src.caches.informers["services"].apply("ADDED", doc)  # the watch event lands
        v = src.build()
        t_view = time.perf_counter()
        decided = planner.plan(v, "n0")
        done = time.perf_counter()
        assert any(o.ip == ip and o.nodes for o in decided.ownership), f"{ip} got no owner"
        view_ms.append(1000 * (t_view - t))
        e2d_ms.append(1000 * (done - t))

    def show(name: str, xs: list[float]) -> None:
        print(
            f"{name:24s} median {statistics.median(xs):8.1f} ms   p95 {pct(xs, 0.95):8.1f} ms   (n={len(xs)})"
        )

    print(f"ownership rows: {owned}")
    show("plan_10k", plan_ms)
    show("view_after_one_change", view_ms)
    show("event_to_decision", e2d_ms)
    print(
        json.dumps(
            {
                "plan_10k_ms": round(statistics.median(plan_ms), 1),
                "plan_10k_p95_ms": round(pct(plan_ms, 0.95), 1),
                "view_10k_ms": round(statistics.median(view_ms), 1),
                "event_to_decision_ms": round(statistics.median(e2d_ms), 1),
                "event_to_decision_p95_ms": round(pct(e2d_ms, 0.95), 1),
                "services": args.services,
                "nodes": args.nodes,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
