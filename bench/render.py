"""Benchmark: render a generated stack with 1,000 services, 50 pools and 10 tenants.

Measures the whole offline render path -- stack structure check, schema parse, the Pulumi
program under the mock runtime, manifests and YAML -- and, separately, the schema check of
every manifest (kubernetes-validate + CRD schema) and the allocator plan.

Run: ``python bench/render.py [--runs 3]``.  Prints figures, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from components.manifest_check import check_all
from components.offline import evaluate, file_name, manifests
from components.stackconfig import documents, spec_from_values
from ironlb.config import parse
from ironlb.ipam import allocate_all
from ironlb_cli.render import dump, write

TENANTS, POOLS, SERVICES = 10, 50, 1000


def generated_stack() -> dict[str, Any]:
    """10 tenants with 4 pools each (one dual-stack), 10 shared pools, 1,000 services."""
    pools: list[dict[str, Any]] = []
    tenants: list[dict[str, Any]] = []
    for t in range(TENANTS):
        names = []
        for p in range(4):
            name = f"t{t}-pool{p}"
            blocks = [f"10.{100 + t}.{p}.0/24"] + ([f"fd00:{t}:{p}::/120"] if p == 0 else [])
            pools.append({"name": name, "tenant": f"tenant-{t}", "addresses": blocks})
            names.append(name)
        tenants.append(
            {
                "name": f"tenant-{t}",
                "namespaces": [f"t{t}-a", f"t{t}-b"],
                "pools": names,
                "maxAddresses": 200,
                "maxLoadBalancerServices": 150,
            }
        )
    for s in range(POOLS - len(pools)):
        pools.append({"name": f"shared-{s}", "addresses": [f"10.200.{s}.0/24"], "autoAssign": s < 5})
    services = []
    for i in range(SERVICES):
        t = i % (TENANTS + 1)
        ns = "default" if t == TENANTS else f"t{t}-{'ab'[i % 2]}"
        svc: dict[str, Any] = {
            "name": f"svc-{i}",
            "namespace": ns,
            "ports": [{"port": 443, "name": "https"}],
            "selector": {"app": f"svc-{i}"},
        }
        if t < TENANTS and i % 7 == 0:
            svc.update(ipFamilyPolicy="PreferDualStack", ipFamilies=["IPv4", "IPv6"], pool=f"t{t}-pool0")
        services.append(svc)
    return {
        "membershipKey": "[secret]",
        "pools": pools,
        "tenants": tenants,
        "peers": [{"name": "tor-a", "myASN": 65010, "peerASN": 65001, "peerAddress": "10.20.0.1"}],
        "bgpAdvertisements": [{"name": "all", "peers": ["tor-a"]}],
        "services": services,
    }


def timed(fn: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    values = generated_stack()
    render_s: list[float] = []
    cpu_s: list[float] = []
    count = 0
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.runs):

            def render() -> list[dict[str, Any]]:
                parse(documents(spec_from_values(values)))
                found = manifests(evaluate(values, {"membershipKey"}, stack="bench"))
                write([(file_name(i, m), dump(m)) for i, m in enumerate(found)], Path(tmp))
                return found

            cpu = time.process_time()
            seconds, found = timed(render)
            cpu_s.append(time.process_time() - cpu)
            render_s.append(seconds)
            count = len(found)
        on_disk = len(list(Path(tmp).glob("*.yaml")))
    validate_s, bad = timed(lambda: check_all(found))
    config = parse(documents(spec_from_values(values)))
    plan_s, (assigned, failed) = timed(lambda: allocate_all(config))
    print(
        f"stack: {SERVICES} services, {POOLS} pools, {TENANTS} tenants -> {count} manifests ({on_disk} files)"
    )
    print(
        f"render (parse + program under mocks + YAML), {args.runs} runs: "
        f"median {statistics.median(render_s):.2f} s, "
        f"p95 {p95(render_s):.2f} s, runs {[round(s, 2) for s in render_s]}; "
        f"CPU median {statistics.median(cpu_s):.2f} s (wall >> CPU means the machine is busy)"
    )
    print(f"schema check of every manifest: {validate_s:.2f} s ({len(bad)} problems)")
    print(f"plan (allocate_all): {plan_s:.3f} s ({len(assigned)} assigned, {len(failed)} without an address)")
    print(
        json.dumps(
            {
                "render_1000_s": round(statistics.median(render_s), 3),
                "render_1000_p95_s": round(p95(render_s), 3),
                "render_1000_cpu_s": round(statistics.median(cpu_s), 3),
                "validate_1000_s": round(validate_s, 3),
                "plan_1000_s": round(plan_s, 4),
                "manifests": count,
                "schema_problems": len(bad),
                "unallocated": len(failed),
            }
        )
    )


if __name__ == "__main__":
    main()
