"""Issue 10's hostile tenant, on the prod stack's rendered install in the cluster-mode lab.

``ironlb render --stack prod`` runs unmodified (``lab.cluster``): tenants with quotas,
dual-stack, BGP to two routers (one BIRD each), a shared layer-2 pool.  The attacker is a
tenant as a platform would set one up -- its own token, a Role on Services in its namespace,
no ``services/status`` -- and its target another tenant.  Every attack of the issue runs at
once (:func:`lab.cluster.hostile_tenant.launch`), one Service or a few each, while the LAN
client asks for every forged or foreign address and captures every frame claiming one, and
both routers' BIRD tables are read for any route containing one, for
:data:`~lab.cluster.hostile_tenant.WINDOW` seconds (its docstring says why that long).  Each
test then judges one attack: never answered at the client (arping/ndisc6 too), never routed
by either router, nothing but the attacker's own pool given, annotations rewritten to what
IronLB assigned, and a Warning Event with the reason.  A controller restart with forged
claims present (written while no controller leads) must displace nobody.

One cluster per module; the tests do not depend on their order (each reads the shared
outcome, and the restart builds its own claims).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from lab.cluster import checks, scenario
from lab.cluster import hostile_tenant as ht
from lab.cluster.deploy import Cluster, deployed
from tests.lab.test_cluster_dev import converged

pytestmark = [pytest.mark.lab, pytest.mark.timeout(600)]
__all__ = ["converged"]  # the dev test's fixture, on this module's cluster
STACK = "prod"
FORGED_STATE = (
    "forged-no-pool",
    "forged-foreign",
    "forged-router",
    "forged-pools",
    "foreign-status",
    "own-status",
)
ESCAPES = ("pin-annotation", "pin-spec", "pin-held", "share-pinned", "closed-pool")


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with deployed(STACK) as c:
        yield c


@pytest.fixture(scope="module")
def targets(cluster: Cluster, converged: scenario.Converged) -> ht.Targets:
    t = ht.targets(cluster)
    ht.prepare_platform(cluster, t)
    return t


@pytest.fixture(scope="module")
def started() -> float:
    return time.time()


@pytest.fixture(scope="module")
def outcomes(cluster: Cluster, targets: ht.Targets, started: float) -> dict[str, ht.Outcome]:
    attacks = ht.catalogue(targets)
    assert {a.id for a in attacks} == set(FORGED_STATE) | set(ESCAPES), "every attack is judged by a test"
    controls = [*targets.router, targets.victim_ip, *checks.layer2_addresses(cluster)]
    return ht.launch(cluster, attacks, controls=controls)


def _judge(cluster: Cluster, outcome: ht.Outcome) -> None:
    problems = outcome.problems(cluster.topology.pool_of)
    print(f"{outcome.attack.name}: ingress {outcome.ingress}, warnings {outcome.warnings}")
    assert not problems, f"{outcome.attack.name}:\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("attack", FORGED_STATE)
def test_forged_state_is_never_announced_or_routed_and_the_controller_rewrites_it(
    cluster: Cluster, outcomes: dict[str, ht.Outcome], attack: str
) -> None:
    _judge(cluster, outcomes[attack])


@pytest.mark.parametrize("attack", ESCAPES)
def test_a_tenant_cannot_escape_its_pools(
    cluster: Cluster, outcomes: dict[str, ht.Outcome], attack: str
) -> None:
    _judge(cluster, outcomes[attack])


def test_the_watch_sees_what_is_announced(
    cluster: Cluster, outcomes: dict[str, ht.Outcome], targets: ht.Targets
) -> None:
    """The observation can fail: in the same window it saw the router answer for its own
    address, a node answer for every layer-2 address, and both routers route the victim's."""
    exposure = next(iter(outcomes.values())).exposure
    for ip in targets.router:
        assert "router" in exposure.answered[ip] and exposure.by_nodes(ip) == set(), (
            ip,
            exposure.answered[ip],
        )
    for ip in checks.layer2_addresses(cluster):
        assert len(exposure.by_nodes(ip)) == 1, (ip, exposure.answered[ip], exposure.final[ip])
    every = scenario.every_node(cluster, targets.victim_ip)
    assert exposure.routed[targets.victim_ip] == dict.fromkeys(cluster.routers, every)


def test_the_victim_keeps_its_address_and_routes(
    cluster: Cluster, converged: scenario.Converged, outcomes: dict[str, ht.Outcome], targets: ht.Targets
) -> None:
    assert not ht.intact(cluster, targets, converged.addresses)
    victim_ns, victim = targets.victim.split("/")
    assert scenario.ingress(cluster, victim, victim_ns) == [targets.victim_ip]


def test_a_controller_restart_with_forged_claims_present_displaces_nobody(
    cluster: Cluster, converged: scenario.Converged, outcomes: dict[str, ht.Outcome], targets: ht.Targets
) -> None:
    restart = ht.restart_with_forged_claims(cluster, targets, converged.addresses)
    print(f"leader {restart.old} killed; {restart.new} leads after {restart.seconds:.2f} s")
    assert restart.new != restart.old
    assert not restart.problems, "\n  ".join(restart.problems)
    for outcome in outcomes.values():  # the attacks' Services are still refused after the rebuild
        for svc, before in outcome.ingress.items():
            assert scenario.ingress(cluster, svc, outcome.attack.namespace) == before, svc


def test_hostile_tenants_never_crash_ironlb_or_fail_its_requests(
    cluster: Cluster, outcomes: dict[str, ht.Outcome], started: float
) -> None:
    """Over the whole module: no IronLB container restarted unless a test killed it, and no
    request of IronLB's own ServiceAccounts was refused (403), invalid or an unhandled 409."""
    fig = checks.figures(cluster, started)
    assert fig.restarts == 0, fig.restart_details
    prefix = f"system:serviceaccount:{cluster.agent_namespace}:"
    violations = cluster.admin.report(since=started).get("violations") or {}
    ours: dict[str, list[Any]] = {
        kind: [
            r
            for r in violations.get(kind) or []
            if str(r.get("user", "")).startswith(prefix)
            and not (kind == "conflicts" and r.get("resource") == "leases")
        ]
        for kind in ("forbidden", "invalid", "conflicts")
    }
    assert not any(ours.values()), ours
