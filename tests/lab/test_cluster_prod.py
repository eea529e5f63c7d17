"""The prod stack's rendered install in the cluster-mode lab (issue 9): tenants, dual-stack,
two top-of-rack routers (one BIRD each) with MD5 passwords from their Secrets, ``bond0``.

The shared steps are the dev test's (imported below, run against this module's cluster);
prod adds a tenant's life: a tenant (a ServiceAccount token with a namespaced Role, over TLS
from the LAN client) naming another tenant's pool is refused with a Warning Event and gets
no address; its own Service is allocated from its pool, routed by both routers, and
withdrawn from both when deleted.  This replaces the kmock-based ``test_e2e_kube.py``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from lab.cluster import scenario
from lab.cluster.checks import figures
from lab.cluster.deploy import Cluster, deployed
from tests.lab.test_cluster_dev import (
    assert_zeros,
    converged,
    test_an_idle_soak_keeps_every_figure_at_zero,
    test_editing_a_pool_updates_its_status_and_moves_nothing,
    test_every_service_gets_its_addresses_is_announced_and_reached_over_tcp,
    test_killing_an_agent_fails_its_layer2_address_over,
    test_killing_the_controller_leader_resumes_allocation_and_moves_nothing,
)

pytestmark = [pytest.mark.lab, pytest.mark.timeout(900)]
STACK = "prod"
__all__ = [
    "converged",
    "test_an_idle_soak_keeps_every_figure_at_zero",
    "test_editing_a_pool_updates_its_status_and_moves_nothing",
    "test_every_service_gets_its_addresses_is_announced_and_reached_over_tcp",
    "test_killing_an_agent_fails_its_layer2_address_over",
    "test_killing_the_controller_leader_resumes_allocation_and_moves_nothing",
]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with deployed(STACK) as c:
        yield c


def test_prod_runs_two_routers_with_md5_and_nodes_on_bond0(
    cluster: Cluster, converged: scenario.Converged
) -> None:
    assert sorted(r.host for r in cluster.routers.values()) == ["router", "router2"]
    assert all(r.neighbors[0].password for r in cluster.routers.values()), (
        "every session uses its MD5 password"
    )
    for router in cluster.routers.values():
        router.wait_established(cluster.the_lab.nodes)
    assert cluster.the_lab.dev("node1") == "bond0"


def test_a_tenant_is_refused_a_foreign_pool_and_its_own_service_is_withdrawn_on_delete(
    cluster: Cluster, converged: scenario.Converged
) -> None:
    since = time.time()
    ip = scenario.tenant_lifecycle(cluster, "team-a-prod", foreign_pool="team-b-bgp")
    assert cluster.topology.pool_of(ip) == "team-a-bgp", ip
    assert_zeros(figures(cluster, since), "after a tenant's Service lived and died")
