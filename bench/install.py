"""The rendered install, deployed unmodified in the cluster-mode lab, measured at rest and in failover.

``ironlb render --stack STACK`` (secrets revealed for the lab) is loaded into the API stand-in
and every rendered pod runs as processes (``lab.cluster``), with BIRD as the router(s).  Then:

1. converge: every pod ready, every Service has its addresses, announced and reached over TCP
   (``reachable`` of ``services``: a Service counts when every address and TCP port answers);
2. an idle soak of ``--soak`` seconds; over that window: ``restarts`` (all of them),
   ``unauthorized``/``forbidden`` (401/403), ``pruned`` and ``ignored`` fields, ``invalid``
   writes, ``conflicts_unhandled`` (409s outside the Lease election), ``api_writes_per_min``
   per pod role (Leases excluded: ``lease_writes_per_min``), and ``rss_mb`` per role (the
   largest pod of the role, all its processes);
3. ``controller_failover_s``: SIGKILL the Lease holder and keep it down, until a new Service
   has an address (the standby must take the Lease over: the figure of a lost node);
   ``controller_restart_s``: the same with the kubelet restarting the container in place at
   once (it may take its own Lease back before it expires);
4. ``create_to_reachable_p50_ms``/``_p95_ms``: a Service POSTed (beside a rendered one, in its
   pool) until the client's TCP connect to its address succeeds, over ``--creates`` Services.

Floors (issue 9, ``--soak 120``): restarts, forbidden, pruned, conflicts_unhandled all 0;
reachable = services; api_writes_per_min 0 for every role.  Issue 12 adds
controller_failover_s <= 3 and create_to_reachable_p50_ms <= 300.

Run as root: ``python bench/install.py --stack prod --soak 120``.  Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lab.cluster import scenario
from lab.cluster.deploy import Cluster


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


#: How long the killed leader stays down in the failover measurement: longer than the Lease
#: (2 s), so the figure is the standby's takeover, never the killed pod taking its Lease back.
FAILOVER_DOWN_S = 10.0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stack", default="prod")
    parser.add_argument("--soak", type=float, default=120, help="idle seconds measured (default 120)")
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--creates", type=int, default=10, help="Services created for create_to_reachable")
    args = parser.parse_args()
    result: dict[str, object] = {"stack": args.stack, "soak_s": args.soak, "nodes": args.nodes}
    with Cluster(args.stack, nodes=args.nodes) as cluster:
        converged = scenario.converge(cluster)
        services = len(cluster.services())
        ok = {p.service for p in converged.probes if p.node} - {
            p.service for p in converged.probes if not p.node
        }
        print(f"converged in {converged.seconds:.1f} s: {len(ok)}/{services} Services reachable", flush=True)
        fig = scenario.soak(cluster, args.soak)
        restarts = fig.restarts
        print(f"soak {args.soak:.0f} s: {fig.zeros()}", flush=True)
        print(f"  API writes/min per role (Leases aside): {fig.api_writes_per_min}")
        print(f"  Lease writes/min per role: {fig.lease_writes_per_min}")
        print(f"  RSS MB per role: {fig.rss_mb}")
        failover = scenario.kill_leader(cluster, converged.addresses, down_for=FAILOVER_DOWN_S)
        print(
            f"controller failover: {failover.old} killed and kept down, {failover.new} leads; "
            f"allocation resumed after {failover.seconds:.2f} s"
        )
        restart = scenario.kill_leader(cluster, converged.addresses)
        print(
            f"controller restart in place: {restart.old} killed, {restart.new} leads; "
            f"allocation resumed after {restart.seconds:.2f} s"
        )
        times = [t * 1000 for t in scenario.create_to_reachable(cluster, converged.addresses, args.creates)]
        if times:
            p50, p95 = statistics.median(times), pct(times, 0.95)
            print(f"create -> reachable over {len(times)} Services: p50 {p50:.0f} ms, p95 {p95:.0f} ms")
        result.update(
            restarts=restarts,
            unauthorized=fig.unauthorized,
            forbidden=fig.forbidden,
            pruned=fig.pruned,
            ignored=fig.ignored,
            invalid=fig.invalid,
            conflicts_unhandled=fig.conflicts_unhandled,
            reachable=len(ok),
            services=services,
            converge_s=round(converged.seconds, 2),
            api_writes_per_min=fig.api_writes_per_min,
            lease_writes_per_min=fig.lease_writes_per_min,
            rss_mb=fig.rss_mb,
            controller_failover_s=round(failover.seconds, 2),
            controller_restart_s=round(restart.seconds, 2),
            create_to_reachable_p50_ms=round(statistics.median(times), 1) if times else None,
            create_to_reachable_p95_ms=round(pct(times, 0.95), 1) if times else None,
        )
        if fig.details and any(fig.details.values()):
            print(f"  violations: {json.dumps({k: v for k, v in fig.details.items() if v})[:2000]}")
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    started = time.monotonic()
    code = main()
    print(f"# took {time.monotonic() - started:.0f} s", file=sys.stderr)
    sys.exit(code)
