"""The incremental planner equals the reference plan after every event, for every node.

A hypothesis state machine drives a small cluster through random events -- services added,
removed, re-addressed (sharing addresses, dual-stack), ETP flips, endpoints moving, nodes
added/removed/relabelled/NotReady/NetworkUnavailable, liveness changes, pools, L2 and BGP
advertisements, peers and community aliases edited, and views rebuilt equal but not
identical (as the manifest source does) -- and after each event compares
``Planner(node).plan(view)`` with ``agent.planner.plan(view, node)`` on every node and on a
node absent from the view.  Views keep unchanged parts identical, as the Kubernetes source
does.  The planners under test never fall back to a plan from scratch, so the comparison is
of the incremental path itself.
"""

from __future__ import annotations

import math
from dataclasses import fields, replace
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from ironlb import addresses
from ironlb.agent.announcements import Plan
from ironlb.agent.planner import Planner, plan
from ironlb.agent.view import ClusterView, NodeInfo
from ironlb.config import Config, PoolInfo
from ironlb.model import EXCLUDE_LABEL, BGPAdvertisement, BGPPeer, IPPool, L2Advertisement
from ironlb.service import AssignedIP, Assignment

NODES = ("n1", "n2", "n3", "n4", "n5")
SERVICES = tuple(f"ns/s{i}" for i in range(8))
POOLS = {"p1": "10.0.0.0/24", "p2": "10.1.0.0/24", "p6": "fd00::/120"}
ADDRESSES = (
    *(f"10.0.0.{i}" for i in range(1, 6)),
    *(f"10.1.0.{i}" for i in range(1, 6)),
    *(f"fd00::{i}" for i in range(1, 4)),
)
L2_ADVS: dict[str, dict[str, Any]] = {
    "all": {},
    "p1-only": {"ipPools": ["p1"]},
    "p2-only": {"ipPools": ["p2"]},
    "zone-b": {"ipPoolSelector": {"matchLabels": {"zone": "b"}}},
    "l2-nodes": {"nodeSelector": {"matchLabels": {"l2": "yes"}}, "interfaces": ["eth1"], "garpInterval": 5},
    "p6-eth2": {"ipPools": ["p6"], "interfaces": ["eth2"], "garpInterval": 2},
}
BGP_ADVS: dict[str, dict[str, Any]] = {
    "all": {},
    "agg": {"ipPools": ["p2"], "aggregationLength": 24, "communities": ["65000:1", "edge"]},
    "lp": {"ipPoolSelector": {"matchLabels": {"zone": "a"}}, "localPref": 200},
    "to-ibgp": {"ipPools": ["p6", "p1"], "localPref": 50, "peers": ["ibgp"]},
    "rack-a": {
        "nodeSelector": {"matchLabels": {"rack": "a"}},
        "communities": ["65000:2"],
        "aggregationLengthV6": 64,
    },
}
PEERS: dict[str, dict[str, Any]] = {
    "tor": {"myASN": 64513, "peerASN": 64512, "peerAddress": "192.168.0.1"},
    "ibgp": {"myASN": 64513, "peerASN": 64513, "peerAddress": "192.168.0.2"},
    "rack-b": {
        "myASN": 64513,
        "peerASN": 64514,
        "peerAddress": "192.168.0.3",
        "nodeSelector": {"matchLabels": {"rack": "b"}},
    },
}
LABELS = st.fixed_dictionaries(
    {},
    optional={
        "l2": st.just("yes"),
        "rack": st.sampled_from(["a", "b"]),
        EXCLUDE_LABEL: st.just(""),
        "unrelated": st.sampled_from(["x", "y"]),
    },
)
SUBSET_OF_NODES = st.frozensets(st.sampled_from(NODES))


def pool_of(ip: str) -> str:
    return "p6" if ":" in ip else ("p1" if ip.startswith("10.0.") else "p2")


def node(name: str, labels: dict[str, str], ready: bool = True, unavailable: bool = False) -> NodeInfo:
    i = NODES.index(name) + 1
    return NodeInfo(name, labels, ready, unavailable, (f"192.168.1.{i}", f"fd01::{i}"))


class Cluster(RuleBasedStateMachine):
    """A cluster's state; ``view()`` builds the ClusterView the planners see."""

    @initialize()
    def start(self) -> None:
        self.nodes = {n: node(n, {"rack": "a" if i % 2 else "b"}) for i, n in enumerate(NODES[:3])}
        self.live: frozenset[str] | None = None
        self.assignments: dict[str, Assignment] = {}
        self.endpoints: dict[str, frozenset[str]] = {}
        self.pools: dict[str, str | None] = {"p1": "a", "p2": "b", "p6": None}  # pool -> zone label
        self.l2_advs: frozenset[str] = frozenset({"all"})
        self.bgp_advs: frozenset[str] = frozenset({"agg", "lp"})
        self.peers: frozenset[str] = frozenset({"tor", "ibgp"})
        self.alias = "65000:99"
        self.tor_asn = 64512
        self.config = self.make_config()
        self.last: ClusterView | None = None
        self.reuse = False
        self.planners = {n: Planner(n, full_fraction=math.inf) for n in (*NODES, "ghost")}
        self.default = Planner("n1", check_every=4)  # falls back when most groups change

    def make_config(self) -> Config:
        pools = {}
        for name, zone in self.pools.items():
            if zone != "deleted":
                res = IPPool.build(name, {"addresses": [POOLS[name]]}, labels={"zone": zone} if zone else {})
                pools[name] = PoolInfo(res, (addresses.parse_block(POOLS[name]),), None)
        return Config(
            pools=pools,
            peers={
                p: BGPPeer.build(p, {**PEERS[p], "peerASN": self.tor_asn} if p == "tor" else PEERS[p])
                for p in sorted(self.peers)
            },
            l2_advertisements={a: L2Advertisement.build(a, L2_ADVS[a]) for a in sorted(self.l2_advs)},
            bgp_advertisements={a: BGPAdvertisement.build(a, BGP_ADVS[a]) for a in sorted(self.bgp_advs)},
            communities={"edge": self.alias},
        )

    def view(self) -> ClusterView:
        return ClusterView(
            config=self.config,
            assignments=dict(self.assignments),
            endpoints=dict(self.endpoints),
            nodes=dict(self.nodes),
            live_members=self.live,
        )

    # --- services ---------------------------------------------------------------------------

    @rule(
        key=st.sampled_from(SERVICES),
        ips=st.lists(st.sampled_from(ADDRESSES), min_size=1, max_size=2, unique=True),
        local=st.booleans(),
    )
    def set_service(self, key: str, ips: list[str], local: bool) -> None:
        """Added, or re-addressed: addresses may be shared with other services."""
        assigned = tuple(AssignedIP(ip, pool_of(ip)) for ip in ips)
        self.assignments[key] = Assignment(key, assigned, traffic_policy="Local" if local else "Cluster")

    @rule(key=st.sampled_from(SERVICES))
    def remove_service(self, key: str) -> None:
        self.assignments.pop(key, None)

    @rule(key=st.sampled_from(SERVICES))
    def flip_traffic_policy(self, key: str) -> None:
        if key in self.assignments:
            a = self.assignments[key]
            self.assignments[key] = replace(
                a, traffic_policy="Cluster" if a.traffic_policy == "Local" else "Local"
            )

    @rule(key=st.sampled_from(SERVICES), nodes=SUBSET_OF_NODES)
    def move_endpoints(self, key: str, nodes: frozenset[str]) -> None:
        self.endpoints[key] = nodes

    # --- nodes ------------------------------------------------------------------------------

    @rule(name=st.sampled_from(NODES), labels=LABELS)
    def set_node(self, name: str, labels: dict[str, str]) -> None:
        """A node added, or relabelled (conditions kept)."""
        was = self.nodes.get(name)
        self.nodes[name] = node(name, labels, *((was.ready, was.network_unavailable) if was else ()))

    @rule(name=st.sampled_from(NODES), ready=st.booleans(), unavailable=st.booleans())
    def set_conditions(self, name: str, ready: bool, unavailable: bool) -> None:
        """A node turns NotReady / NetworkUnavailable, or recovers."""
        if name in self.nodes:
            self.nodes[name] = replace(self.nodes[name], ready=ready, network_unavailable=unavailable)

    @rule(name=st.sampled_from(NODES))
    def remove_node(self, name: str) -> None:
        self.nodes.pop(name, None)

    @rule(live=st.none() | SUBSET_OF_NODES)
    def set_live(self, live: frozenset[str] | None) -> None:
        self.live = live

    # --- configuration ----------------------------------------------------------------------

    @rule(pool=st.sampled_from(sorted(POOLS)), zone=st.sampled_from([None, "a", "b", "deleted"]))
    def edit_pool(self, pool: str, zone: str | None) -> None:
        """Relabel a pool, or delete it while services still hold its addresses."""
        self.pools[pool] = zone
        self.config = self.make_config()

    @rule(advs=st.frozensets(st.sampled_from(sorted(L2_ADVS))))
    def set_l2_advertisements(self, advs: frozenset[str]) -> None:
        self.l2_advs = advs
        self.config = self.make_config()

    @rule(advs=st.frozensets(st.sampled_from(sorted(BGP_ADVS))))
    def set_bgp_advertisements(self, advs: frozenset[str]) -> None:
        self.bgp_advs = advs
        self.config = self.make_config()

    @rule(peers=st.frozensets(st.sampled_from(sorted(PEERS))))
    def set_peers(self, peers: frozenset[str]) -> None:
        self.peers = peers
        self.config = self.make_config()

    @rule(ibgp=st.booleans())
    def set_tor_session_type(self, ibgp: bool) -> None:
        """The same peer turns iBGP (it now gets localPref) or back."""
        self.tor_asn = 64513 if ibgp else 64512
        self.config = self.make_config()

    @rule(alias=st.sampled_from(["65000:99", "large:1:2:3"]))
    def set_alias(self, alias: str) -> None:
        self.alias = alias
        self.config = self.make_config()

    @rule()
    def rebuild_everything(self) -> None:
        """Equal values, new objects: what a source that re-reads everything produces."""
        self.config = self.make_config()
        self.assignments = {k: replace(a) for k, a in self.assignments.items()}
        self.nodes = {k: replace(n, labels=dict(n.labels)) for k, n in self.nodes.items()}
        self.endpoints = {k: frozenset(v) for k, v in self.endpoints.items()}

    @rule()
    def same_view_again(self) -> None:
        """The daemon replans the very same view (a membership change that changed nothing)."""
        self.reuse = True

    # --- the property -----------------------------------------------------------------------

    @invariant()
    def incremental_equals_reference(self) -> None:
        v = self.last if self.reuse and self.last is not None else self.view()
        self.last, self.reuse = v, False
        for name, planner in self.planners.items():
            got, expected = planner.plan(v), plan(v, name)
            assert got == expected, f"{name}: {differences(got, expected)}"
            assert planner.stats.full == 1, "the incremental path itself is under test"
        assert self.default.plan(v) == plan(v, "n1")
        assert self.default.stats.mismatches == 0, self.default.last_mismatch


def differences(got: Plan, expected: Plan) -> str:
    return "; ".join(
        f"{f.name}: got {getattr(got, f.name)!r}, expected {getattr(expected, f.name)!r}"
        for f in fields(Plan)
        if getattr(got, f.name) != getattr(expected, f.name)
    )


Cluster.TestCase.settings = settings(
    max_examples=200,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestIncrementalEqualsReference = Cluster.TestCase


# --- what an event costs: the groups it replans ------------------------------------------


def config(
    l2: tuple[str, ...] = ("all",), bgp: tuple[str, ...] = ("all",), peers: tuple[str, ...] = ("tor",)
) -> Config:
    pools = {
        name: PoolInfo(IPPool.build(name, {"addresses": [block]}), (addresses.parse_block(block),), None)
        for name, block in {"p1": "10.0.0.0/16", "p2": "10.1.0.0/16"}.items()
    }
    return Config(
        pools=pools,
        peers={p: BGPPeer.build(p, PEERS[p]) for p in peers},
        l2_advertisements={a: L2Advertisement.build(a, L2_ADVS[a]) for a in l2},
        bgp_advertisements={a: BGPAdvertisement.build(a, BGP_ADVS[a]) for a in bgp},
        communities={"edge": "65000:99"},
    )


def big_view(services: int = 300, **kwargs: Any) -> ClusterView:
    """``services`` services, one address each, half in each pool; three nodes."""
    assignments = {}
    for i in range(services):
        ip = f"10.{i % 2}.{i // 256}.{i % 256}"
        key = f"ns/s{i}"
        assignments[key] = Assignment(key, (AssignedIP(ip, pool_of(ip)),))
    return ClusterView(
        config=config(**kwargs),
        assignments=assignments,
        nodes={n: node(n, {}) for n in NODES[:3]},
    )


def test_one_new_service_replans_one_group() -> None:
    v = big_view()
    planner = Planner("n1")
    planner.plan(v)
    added = replace(
        v, assignments={**v.assignments, "ns/new": Assignment("ns/new", (AssignedIP("10.0.9.9", "p1"),))}
    )
    assert planner.plan(added) == plan(added, "n1")
    assert (planner.stats.last_replanned, planner.stats.full) == (1, 1)
    removed = replace(added, assignments={k: a for k, a in added.assignments.items() if k != "ns/s7"})
    assert planner.plan(removed) == plan(removed, "n1")
    assert planner.stats.last_replanned == 1, "the removed service's group"


def test_a_label_no_selector_reads_and_endpoints_of_cluster_services_replan_nothing() -> None:
    v = big_view()
    planner = Planner("n1")
    planner.plan(v)
    relabelled = replace(v, nodes={**v.nodes, "n2": node("n2", {"unrelated": "x"})})
    churn = replace(relabelled, endpoints={"ns/s1": frozenset({"n1"}), "ns/s2": frozenset({"n3"})})
    for step in (relabelled, churn):
        assert planner.plan(step) == plan(step, "n1")
        assert planner.stats.last_replanned == 0


def test_a_node_every_group_may_use_going_not_ready_replans_from_scratch() -> None:
    v = big_view()
    planner = Planner("n1")
    planner.plan(v)
    down = replace(v, nodes={**v.nodes, "n2": node("n2", {}, ready=False)})
    assert planner.plan(down) == plan(down, "n1")
    assert planner.stats.full == 2 and planner.stats.last_replanned == 300


def test_an_advertisement_edit_replans_only_the_pools_it_selects() -> None:
    v = big_view(l2=("p1-only",), bgp=("agg",))
    planner = Planner("n1", full_fraction=math.inf)
    planner.plan(v)
    edited = replace(v, config=config(l2=("p1-only", "p6-eth2"), bgp=("agg",)))  # p6 holds no service
    assert planner.plan(edited) == plan(edited, "n1")
    assert planner.stats.last_replanned == 0
    edited = replace(v, config=config(l2=("p1-only",), bgp=("agg", "lp")))  # lp selects zone a: none
    assert planner.plan(edited) == plan(edited, "n1")
    assert planner.stats.last_replanned == 0
    edited = replace(v, config=config(l2=("p1-only", "p2-only"), bgp=("agg",)))  # now p2 is covered too
    assert planner.plan(edited) == plan(edited, "n1")
    assert planner.stats.last_replanned == 150, "the p2 services, not the p1 ones"


def test_a_bgp_only_reason_follows_liveness_without_any_session() -> None:
    """Rare enough that the state machine may miss it: nothing but the BGP reason changes."""
    v = big_view(services=4, l2=(), bgp=("all",), peers=())
    planners = {n: Planner(n, full_fraction=math.inf) for n in NODES[:3]}
    for step in (v, replace(v, live_members=frozenset()), v):
        for n, planner in planners.items():
            assert planner.plan(step) == plan(step, n)
    assert "no node is ready" in plan(replace(v, live_members=frozenset()), "n1").unannounced["ns/s0"]


def test_the_periodic_check_catches_a_view_mutated_in_place_and_the_reference_wins() -> None:
    """Sources must never mutate a view they handed out; if one does, the check repairs it."""
    endpoints = {"ns/s0": frozenset({"n1"})}
    v = big_view(services=4)
    v = replace(
        v, assignments={**v.assignments, "ns/s0": replace(v.assignments["ns/s0"], traffic_policy="Local")}
    )
    v = replace(v, endpoints=endpoints)
    planner = Planner("n1", check_every=2)
    assert planner.plan(v).l2[0].ip == "10.0.0.0"
    endpoints["ns/s0"] = frozenset({"n2"})  # the bug: same dict, new content
    fixed = planner.plan(replace(v, live_members=None))
    assert fixed == plan(v, "n1") and not any(a.ip == "10.0.0.0" for a in fixed.l2)
    assert planner.stats.mismatches == 1
    assert planner.last_mismatch is not None and "l2" in planner.last_mismatch


def test_a_plan_that_raises_leaves_a_planner_that_starts_over() -> None:
    """A view the rules reject (here an alias no Community defines: the schema never lets one
    through) must not leave half-patched state behind."""
    v = big_view(services=20, bgp=("all",))
    planner = Planner("n1")
    planner.plan(v)
    broken = replace(v, config=replace(config(bgp=("agg",)), communities={}))
    with pytest.raises(ValueError, match="edge"):
        planner.plan(broken)
    fixed = replace(v, config=config(bgp=("agg",)))
    assert planner.plan(fixed) == plan(fixed, "n1")
    assert planner.stats.full == 2
