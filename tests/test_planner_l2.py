"""Layer-2 planner: who owns each address, and why (table tests over small cluster views)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ironlb.agent.planner import plan
from ironlb.agent.planner.l2 import plan_l2, rank
from ironlb.agent.planner.ranking import Ranking
from ironlb.agent.view import ClusterView, NodeInfo
from ironlb.config import parse
from ironlb.model import EXCLUDE_LABEL
from ironlb.service import Assignment
from lab.manifests import l2_advertisement, pool
from tests.factories import assignment

NODES = ("n1", "n2", "n3")


def config(*advs: dict[str, Any], pools: tuple[dict[str, Any], ...] = ()) -> Any:
    docs = list(pools) or [
        pool("lan", "10.0.0.0/24", "fd00::/120", labels={"zone": "a"}),
        pool("dmz", "10.9.0.0/24"),
    ]
    return parse([*docs, *(l2_advertisement(f"adv{i}", **spec) for i, spec in enumerate(advs))])


def view(
    *assignments: Assignment,
    advs: tuple[dict[str, Any], ...] = ({},),
    nodes: dict[str, NodeInfo] | None = None,
    live: frozenset[str] | None = None,
    endpoints: dict[str, frozenset[str]] | None = None,
) -> ClusterView:
    return ClusterView(
        config=config(*advs),
        assignments={a.service: a for a in assignments},
        nodes=nodes if nodes is not None else {n: NodeInfo(n) for n in NODES},
        live_members=live,
        endpoints=endpoints or {},
    )


def owner(v: ClusterView, ip: str) -> str | None:
    rows = [o for o in plan_l2(v, "n1")[1] if o.ip == ip]
    return rows[0].nodes[0] if rows else None


def first(ip: str, nodes: tuple[str, ...] = NODES) -> str:
    return rank(nodes, ip)[0]


def test_ranking_is_deterministic_and_independent_of_input_order() -> None:
    assert rank(["n1", "n2", "n3"], "10.0.0.1") == rank(["n3", "n1", "n2"], "10.0.0.1")
    owners = {rank(NODES, f"10.0.0.{i}")[0] for i in range(1, 40)}
    assert owners == set(NODES), "39 addresses spread over all three nodes"


@pytest.mark.parametrize(
    ("case", "kwargs", "expected"),
    [
        ("every node eligible: the first ranked owns", {}, lambda: first("10.0.0.1")),
        (
            "a dead agent never owns",
            {"live": "not-first"},
            lambda: first("10.0.0.1", tuple(n for n in NODES if n != first("10.0.0.1"))),
        ),
        (
            "a NotReady node never owns",
            {"notready": True},
            lambda: first("10.0.0.1", tuple(n for n in NODES if n != first("10.0.0.1"))),
        ),
        (
            "a NetworkUnavailable node never owns",
            {"netunavail": True},
            lambda: first("10.0.0.1", tuple(n for n in NODES if n != first("10.0.0.1"))),
        ),
        (
            "an excluded node never owns",
            {"excluded": True},
            lambda: first("10.0.0.1", tuple(n for n in NODES if n != first("10.0.0.1"))),
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_owner_is_the_first_eligible_node(case: str, kwargs: dict[str, Any], expected: Any) -> None:
    top = first("10.0.0.1")
    nodes = {n: NodeInfo(n) for n in NODES}
    live = None
    if kwargs.get("live"):
        live = frozenset(n for n in NODES if n != top)
    if kwargs.get("notready"):
        nodes[top] = NodeInfo(top, ready=False)
    if kwargs.get("netunavail"):
        nodes[top] = NodeInfo(top, network_unavailable=True)
    if kwargs.get("excluded"):
        nodes[top] = NodeInfo(top, labels={EXCLUDE_LABEL: ""})
    v = view(assignment("ns/a", "10.0.0.1"), nodes=nodes, live=live)
    assert owner(v, "10.0.0.1") == expected()


def test_all_addresses_of_a_service_share_one_owner() -> None:
    v = view(
        assignment("ns/dual", "10.0.0.7", "fd00::7"),
        assignment("ns/multi", "10.0.0.8", "10.0.0.9", "10.0.0.10"),
    )
    assert owner(v, "10.0.0.7") == owner(v, "fd00::7")
    assert owner(v, "10.0.0.8") == owner(v, "10.0.0.9") == owner(v, "10.0.0.10")


def test_services_sharing_an_address_are_announced_from_one_node_even_through_other_addresses() -> None:
    # a and b share .20; b and c share .21: all of .19 .20 .21 .22 form one group
    v = view(
        assignment("ns/a", "10.0.0.19", "10.0.0.20"),
        assignment("ns/b", "10.0.0.20", "10.0.0.21"),
        assignment("ns/c", "10.0.0.21", "10.0.0.22"),
    )
    owners = {owner(v, f"10.0.0.{i}") for i in (19, 20, 21, 22)}
    assert len(owners) == 1
    row = next(o for o in plan_l2(v, "n1")[1] if o.ip == "10.0.0.20")
    assert row.services == ("ns/a", "ns/b")


def test_etp_local_owner_holds_a_ready_endpoint_and_follows_it() -> None:
    for node in NODES:
        v = view(assignment("ns/l", "10.0.0.30", local=True), endpoints={"ns/l": frozenset({node})})
        assert owner(v, "10.0.0.30") == node
    v = view(assignment("ns/l", "10.0.0.30", local=True), endpoints={"ns/l": frozenset()})
    _, rows, missing = plan_l2(v, "n1")
    assert rows == ()
    assert "no ready endpoint of ns/l" in missing["ns/l"]


@pytest.mark.parametrize(
    ("case", "adv", "pool", "announced"),
    [
        ("an advertisement naming the pool covers it", {"ipPools": ["lan"]}, "lan", True),
        ("an advertisement naming another pool does not", {"ipPools": ["dmz"]}, "lan", False),
        (
            "a pool selector matching the pool's labels covers it",
            {"ipPoolSelector": {"matchLabels": {"zone": "a"}}},
            "lan",
            True,
        ),
        (
            "a pool selector not matching does not",
            {"ipPoolSelector": {"matchLabels": {"zone": "b"}}},
            "lan",
            False,
        ),
        ("an empty advertisement covers every pool", {}, "dmz", True),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_which_advertisements_cover_a_pool(
    case: str, adv: dict[str, Any], pool: str, announced: bool
) -> None:
    ip = "10.0.0.40" if pool == "lan" else "10.9.0.40"
    v = view(assignment("ns/s", ip, pool=pool), advs=(adv,))
    _, rows, missing = plan_l2(v, "n1")
    assert bool(rows) is announced
    if not announced:
        assert missing["ns/s"] == f"no L2Advertisement selects pool {pool}"


def test_node_selector_limits_owners_and_interfaces_and_garp_come_from_the_advertisement() -> None:
    nodes = {"n1": NodeInfo("n1", labels={"l2": "yes"}), "n2": NodeInfo("n2"), "n3": NodeInfo("n3")}
    adv = {"nodeSelector": {"matchLabels": {"l2": "yes"}}, "interfaces": ["eth1"], "garpInterval": 30}
    v = view(assignment("ns/s", "10.0.0.50"), advs=(adv,), nodes=nodes)
    anns, rows, _ = plan_l2(v, "n1")
    assert rows[0].nodes == ("n1",)
    assert rows[0].reason == "ranked first by sha256(node#10.0.0.50) among eligible nodes"
    assert anns[0].interfaces == ("eth1",) and anns[0].garp_interval == 30
    assert plan_l2(v, "n2")[0] == (), "a node that does not own announces nothing"


def test_every_node_computes_the_same_ownership_and_only_the_owner_announces() -> None:
    v = view(*(assignment(f"ns/s{i}", f"10.0.0.{100 + i}") for i in range(20)))
    plans = {n: plan(v, n) for n in NODES}
    assert len({p.ownership for p in plans.values()}) == 1
    announced = [a.ip for p in plans.values() for a in p.l2]
    assert sorted(announced) == sorted(f"10.0.0.{100 + i}" for i in range(20)), "each address exactly once"


def test_losing_a_node_moves_only_the_addresses_it_owned() -> None:
    v = view(*(assignment(f"ns/s{i}", f"10.0.0.{100 + i}") for i in range(30)))
    before = {o.ip: o.nodes[0] for o in plan_l2(v, "n1")[1]}
    after = {o.ip: o.nodes[0] for o in plan_l2(replace(v, live_members=frozenset({"n1", "n2"})), "n1")[1]}
    moved = {ip for ip in before if before[ip] != after[ip]}
    assert moved == {ip for ip, n in before.items() if n == "n3"}


def test_no_eligible_node_explains_each_node() -> None:
    nodes = {"n1": NodeInfo("n1", ready=False), "n2": NodeInfo("n2", labels={EXCLUDE_LABEL: ""})}
    v = view(assignment("ns/s", "10.0.0.60"), nodes=nodes, live=frozenset({"n2"}))
    _, rows, missing = plan_l2(v, "n1")
    assert rows == ()
    assert missing["ns/s"] == (
        "no eligible node for layer 2: n1: agent not alive; n2: excluded from external load balancers"
    )


def test_plan_combines_unannounced_reasons() -> None:
    v = view(assignment("ns/s", "10.9.0.1", pool="dmz"), advs=({"ipPools": ["lan"]},))
    assert plan(v, "n1").unannounced == {"ns/s": "no L2Advertisement or BGPAdvertisement selects pool dmz"}


@settings(max_examples=300, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.frozensets(st.sampled_from([f"n{i}" for i in range(40)]), min_size=1),
            st.frozensets(st.sampled_from([f"n{i}" for i in range(40)])),
        ),
        min_size=1,
        max_size=12,
    ),
    keys=st.lists(st.sampled_from([f"10.0.0.{i}" for i in range(20)]), min_size=1, max_size=6),
)
def test_the_ranking_memo_stays_exact_as_nodes_come_and_go(
    steps: list[tuple[frozenset[str], frozenset[str]]], keys: list[str]
) -> None:
    """Ranking keeps per-key prefixes across node sets; it must always give the brute-force owner."""
    ranking = Ranking()
    for nodes, ineligible in steps:
        if not nodes - ineligible:
            continue
        current = ranking.nodes(nodes)
        for key in keys:
            expected = next(n for n in rank(nodes, key) if n not in ineligible)
            assert ranking.owner(key, current, dict.fromkeys(ineligible & nodes, "x")) == expected
