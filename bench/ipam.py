"""Benchmark the IPAM core: allocate 10k services over 50 pools, release half, re-allocate.

Pools: one IPv4 /16, one IPv6 /112, and 48 IPv4 /24s (a few with avoidBuggyIPs and
selectors, one per tenant for 4 tenants).  Services spread over tenant and platform
namespaces; every 10th is PreferDualStack, every 25th shares an address.

Wall-clock figures suffer on a loaded machine; ``allocate_10k_cpu_s`` (process CPU time)
shows the cost without other processes' load.

Run: ``python bench/ipam.py [--runs N]``.  Prints median and p95 per phase over N runs,
then one JSON line: {"allocate_10k_s": ..., "reallocate_5k_s": ..., ...} (medians).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the lab's document builders

from ironlb import ipam
from ironlb.config import Config, parse
from ironlb.errors import AllocationError
from ironlb.service import Port, ServiceRequest
from lab.manifests import pool, tenant

TENANTS = ("red", "green", "blue", "gold")


def build_config() -> Config:
    docs = [
        pool("big", "10.100.0.0/16", serviceAllocation={"priority": 10}, allowUntenanted=True),
        pool("v6", "fd00:100::/112", allowUntenanted=True),
    ]
    for i in range(48):
        spec: dict[str, Any] = {"avoidBuggyIPs": i % 3 == 0}
        if i < len(TENANTS):
            spec["tenant"] = TENANTS[i]
        else:
            spec["allowUntenanted"] = True  # platform pools serve the namespaces no Tenant lists
        if i >= len(TENANTS) and i % 7 == 0:
            spec["serviceAllocation"] = {"priority": i, "serviceSelector": {"matchLabels": {"tier": "edge"}}}
        docs.append(pool(f"p{i:02d}", f"10.{i // 200}.{i % 200}.0/24", **spec))
    docs += [tenant(t, [f"{t}-a", f"{t}-b"], quota=200) for t in TENANTS]
    return parse(docs)


def requests(n: int) -> list[ServiceRequest]:
    out = []
    for i in range(n):
        ns = f"{TENANTS[i // 50 % 4]}-{'ab'[i % 2]}" if i % 50 == 0 else f"team{i % 40}"
        out.append(
            ServiceRequest(
                namespace=ns,
                name=f"svc{i:05d}",
                ports=(Port(80 + (i % 25)),),
                sharing_key="shared" if i % 25 == 0 else None,
                family_policy="PreferDualStack" if i % 10 == 0 else "SingleStack",
                labels={"tier": "edge"} if i % 13 == 0 else {},
            )
        )
    return out


def run_once(config: Config, reqs: list[ServiceRequest]) -> dict[str, float]:
    alloc = ipam.Allocator(config)
    t0, c0 = time.perf_counter(), time.process_time()
    errors = 0
    for r in reqs:
        try:
            alloc.allocate(r)
        except AllocationError:
            errors += 1
    t1, c1 = time.perf_counter(), time.process_time()
    for r in reqs[::2]:
        alloc.release(r.key)
    t2 = time.perf_counter()
    for r in reqs[::2]:
        try:
            alloc.allocate(r)
        except AllocationError:
            errors += 1
    t3 = time.perf_counter()
    rebuilt = ipam.Allocator(config, alloc.assignments.values())
    t4 = time.perf_counter()
    assert rebuilt.assignments == alloc.assignments
    t5 = time.perf_counter()
    ipam.allocate_all(config, reqs)
    t6 = time.perf_counter()
    return {
        "allocate_10k_s": t1 - t0,
        "allocate_10k_cpu_s": c1 - c0,
        "release_5k_s": t2 - t1,
        "reallocate_5k_s": t3 - t2,
        "rebuild_10k_s": t4 - t3,
        "allocate_all_10k_s": t6 - t5,
        "errors": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    config = build_config()
    reqs = requests(10_000)
    runs = [run_once(config, reqs) for _ in range(args.runs)]
    summary: dict[str, float] = {}
    for metric in runs[0]:
        values = sorted(r[metric] for r in runs)
        median = statistics.median(values)
        p95 = values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]
        if metric == "errors":
            print(f"{metric:20s} {int(median)} (quota / exhaustion refusals, expected)")
            summary["allocation_errors"] = int(median)
            continue
        print(f"{metric:20s} median {median:.3f} s   p95 {p95:.3f} s   ({len(values)} runs)")
        summary[metric] = round(median, 4)
        summary[metric.replace("_s", "_p95_s")] = round(p95, 4)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
