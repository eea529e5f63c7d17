"""Benchmark: render a generated stack with 1,000 services, 50 pools and 10 tenants.

Measures the whole offline render path -- stack structure check, schema parse, the Pulumi
program under the mock runtime, manifests and YAML -- and, separately, the schema check of
every manifest (kubernetes-validate + CRD schema), the allocator plan, and ``ironlb plan
--diff`` between two 1,000-service stacks (the base plan, the head plan holding the base's
addresses, and the diff; floor <= 5 s), and ``ironlb bundle`` of the same stack kept as
Pulumi keeps it (passphrase-provider secrets: the membership key and a BGP password), from
reading the stack file to the 0600 file on disk, schema check included (floor <= 20 s).

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

from ironlb.components.manifest_check import check_all
from ironlb.components.offline import evaluate, file_name, manifests
from ironlb.components.stackconfig import documents, spec_from_values
from ironlb.components.stacksecrets import StackSecrets
from ironlb.config import parse
from ironlb.ipam import allocate_all
from ironlb_cli.bundle import Bundle, build, write_private
from ironlb_cli.plan import build_plan
from ironlb_cli.plandiff import diff
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
        # the platform's shared pools serve the namespace no tenant lists ("default"): decision 0004
        shared = {"name": f"shared-{s}", "addresses": [f"10.200.{s}.0/24"], "autoAssign": s < 5}
        pools.append({**shared, "allowUntenanted": True})
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


def changed_stack(values: dict[str, Any]) -> dict[str, Any]:
    """The head of a change: 20 services added, 10 removed, one shared pool grown, a quota raised."""
    head: dict[str, Any] = json.loads(json.dumps(values))
    head["services"] = head["services"][10:] + [
        {"name": f"new-{i}", "namespace": "default", "ports": [{"port": 80}]} for i in range(20)
    ]
    head["pools"][-1]["addresses"] = ["10.200.199.0/24", "10.201.0.0/24"]
    head["tenants"][0]["maxAddresses"] = 300
    return head


def plan_diff(values: dict[str, Any], head: dict[str, Any], stacks: Path) -> dict[str, Any]:
    """``ironlb plan --diff``'s work: base plan, head plan holding the base's addresses, diff."""
    for name, stack in (("base", values), ("head", head)):
        doc = {"config": {f"ironlb:{k}": v for k, v in stack.items()}}
        (stacks / f"Pulumi.{name}.yaml").write_text(json.dumps(doc))
    base = build_plan("base", stacks)
    held = {s["service"]: tuple(s["addresses"]) for s in base["services"] if s["addresses"]}
    return diff(base, build_plan("head", stacks, base=held))


def bundle_stack(values: dict[str, Any], stacks: Path, passphrase: str) -> None:
    """The generated stack as a stack file with real secrets, as ``pulumi config set --secret`` writes it."""
    sealer, salt = StackSecrets.create("bundle", passphrase)
    config: dict[str, Any] = {f"ironlb:{k}": v for k, v in values.items() if k != "membershipKey"}
    config["ironlb:peers"] = [{**p, "passwordConfig": "torAPassword"} for p in values["peers"]]
    config["ironlb:membershipKey"] = {"secure": sealer.encrypt("m" * 48)}
    config["ironlb:torAPassword"] = {"secure": sealer.encrypt("bench-md5-password")}
    doc = {"encryptionsalt": salt, "config": config}
    (stacks / "Pulumi.bundle.yaml").write_text(json.dumps(doc))


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
    head = changed_stack(values)
    diff_s: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.runs):
            seconds, changes = timed(lambda: plan_diff(values, head, Path(tmp)))
            diff_s.append(seconds)
    moved = [r for r in changes["sections"]["Services"] if r["change"] == "changed"]
    bundle_s: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        bundle_stack(values, Path(tmp), "bench-passphrase")
        env = {"PULUMI_CONFIG_PASSPHRASE": "bench-passphrase"}

        def bundle_to_file() -> Bundle:
            built = build("bundle", Path(tmp), env=env)
            write_private(Path(tmp) / "bundle.yaml", built.text)
            return built

        for _ in range(args.runs):
            seconds, bundle = timed(bundle_to_file)
            bundle_s.append(seconds)
        bundle_bytes = (Path(tmp) / "bundle.yaml").stat().st_size
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
        f"plan --diff of two {SERVICES}-service stacks, {args.runs} runs: median "
        f"{statistics.median(diff_s):.2f} s, p95 {p95(diff_s):.2f} s (floor 5 s); "
        f"{len(moved)} services moved by the change (must be 0)"
    )
    print(
        f"bundle (decrypt + program + checks + 0600 file) of the same stack, {args.runs} runs: median "
        f"{statistics.median(bundle_s):.2f} s, p95 {p95(bundle_s):.2f} s (floor 20 s); "
        f"{bundle.objects} objects, {len(bundle.secrets)} Secrets with values, {bundle_bytes / 1e6:.1f} MB"
    )
    print(
        json.dumps(
            {
                "render_1000_s": round(statistics.median(render_s), 3),
                "render_1000_p95_s": round(p95(render_s), 3),
                "render_1000_cpu_s": round(statistics.median(cpu_s), 3),
                "validate_1000_s": round(validate_s, 3),
                "plan_1000_s": round(plan_s, 4),
                "plan_diff_1000_s": round(statistics.median(diff_s), 3),
                "plan_diff_1000_p95_s": round(p95(diff_s), 3),
                "plan_diff_moved": len(moved),
                "bundle_1000_s": round(statistics.median(bundle_s), 3),
                "bundle_1000_p95_s": round(p95(bundle_s), 3),
                "bundle_objects": bundle.objects,
                "manifests": count,
                "schema_problems": len(bad),
                "unallocated": len(failed),
            }
        )
    )


if __name__ == "__main__":
    main()
