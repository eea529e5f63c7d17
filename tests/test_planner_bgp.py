"""BGP planning as a table: sessions, routes, next hops, attributes, ownership, reasons."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from ironlb import addresses
from ironlb.agent.announcements import BGPRoute
from ironlb.agent.planner import plan
from ironlb.agent.planner.bgp import plan_bgp, plan_sessions
from ironlb.agent.view import ClusterView, NodeInfo
from ironlb.config import Config, PoolInfo
from ironlb.model import BGPAdvertisement, BGPPeer, IPPool, L2Advertisement
from ironlb.service import AssignedIP, Assignment

NODES = {
    "n1": NodeInfo("n1", {"rack": "a"}, addresses=("10.0.0.11", "fd00::11")),
    "n2": NodeInfo("n2", {"rack": "b"}, addresses=("10.0.0.12",)),
    "n3": NodeInfo("n3", {"rack": "a"}, addresses=("10.0.0.13", "fd00::13")),
}


def pool(name: str, *blocks: str, labels: dict[str, str] | None = None) -> PoolInfo:
    res = IPPool.build(name, {"addresses": list(blocks)}, labels=labels or {})
    return PoolInfo(res, tuple(addresses.parse_block(b) for b in blocks), None)


def peer(name: str, **spec: Any) -> BGPPeer:
    body = {"myASN": 64513, "peerASN": 64512, "peerAddress": "10.0.0.1", **spec}
    return BGPPeer.build(name, body)  # type: ignore[no-any-return]


def adv(name: str, **spec: Any) -> BGPAdvertisement:
    return BGPAdvertisement.build(name, spec)  # type: ignore[no-any-return]


def view(
    *,
    peers: list[BGPPeer] | None = None,
    advs: list[BGPAdvertisement] | None = None,
    services: dict[str, tuple[list[str], str]] | None = None,
    endpoints: dict[str, set[str]] | None = None,
    nodes: dict[str, NodeInfo] | None = None,
    live: set[str] | None = None,
    communities: dict[str, str] | None = None,
) -> ClusterView:
    pools = {
        "pub": pool("pub", "192.0.2.0/24", "2001:db8::/120", labels={"tier": "public"}),
        "priv": pool("priv", "198.51.100.0/24"),
    }
    cfg = Config(
        pools=pools,
        peers={p.name: p for p in (peers if peers is not None else [peer("tor")])},
        bgp_advertisements={a.name: a for a in (advs if advs is not None else [adv("all")])},
        communities=communities or {},
    )
    assignments = {}
    for key, (ips, policy) in (services or {"default/web": (["192.0.2.10"], "Cluster")}).items():
        assigned = tuple(AssignedIP(ip, "priv" if ip.startswith("198.51") else "pub") for ip in ips)
        assignments[key] = Assignment(key, assigned, traffic_policy=policy)  # type: ignore[arg-type]
    return ClusterView(
        config=cfg,
        assignments=assignments,
        endpoints={k: frozenset(v) for k, v in (endpoints or {}).items()},
        nodes=nodes if nodes is not None else NODES,
        live_members=frozenset(live) if live is not None else None,
    )


ROUTE_CASES = [
    pytest.param(
        view(),
        "n1",
        [BGPRoute("192.0.2.10/32", ("tor",), services=("default/web",))],
        id="an ETP=Cluster service is announced as a /32 from every node",
    ),
    pytest.param(
        view(services={"default/web": (["192.0.2.10"], "Local")}, endpoints={"default/web": {"n2"}}),
        "n1",
        [],
        id="ETP=Local: a node without a ready endpoint announces nothing",
    ),
    pytest.param(
        view(services={"default/web": (["192.0.2.10"], "Local")}, endpoints={"default/web": {"n2"}}),
        "n2",
        [BGPRoute("192.0.2.10/32", ("tor",), services=("default/web",))],
        id="ETP=Local: the node with the endpoint announces",
    ),
    pytest.param(
        view(
            advs=[adv("agg", aggregationLength=24)],
            services={"a/x": (["192.0.2.10"], "Cluster"), "a/y": (["192.0.2.20"], "Cluster")},
        ),
        "n1",
        [BGPRoute("192.0.2.0/24", ("tor",), services=("a/x", "a/y"))],
        id="aggregationLength folds two services into one /24",
    ),
    pytest.param(
        view(services={"a/v6": (["2001:db8::5"], "Cluster")}),
        "n1",
        [BGPRoute("2001:db8::5/128", ("tor",), services=("a/v6",))],
        id="an IPv6 address is announced as a /128",
    ),
    pytest.param(
        view(
            advs=[adv("c", communities=["65000:1", "edge", "large:1:2:3"])], communities={"edge": "65000:99"}
        ),
        "n1",
        [
            BGPRoute(
                "192.0.2.10/32", ("tor",), ("65000:1", "65000:99", "large:1:2:3"), services=("default/web",)
            )
        ],
        id="community aliases are resolved to literals",
    ),
    pytest.param(
        view(
            peers=[peer("tor"), peer("ibgp", peerASN=64513, peerAddress="10.0.0.2")],
            advs=[adv("lp", localPref=200)],
        ),
        "n1",
        [
            BGPRoute("192.0.2.10/32", ("ibgp",), local_pref=200, services=("default/web",)),
            BGPRoute("192.0.2.10/32", ("tor",), services=("default/web",)),
        ],
        id="localPref is sent to iBGP peers only",
    ),
    pytest.param(
        view(peers=[peer("tor"), peer("other", peerAddress="10.0.0.2")], advs=[adv("to-tor", peers=["tor"])]),
        "n1",
        [BGPRoute("192.0.2.10/32", ("tor",), services=("default/web",))],
        id="an advertisement restricted to one peer sends only to it",
    ),
    pytest.param(
        view(advs=[adv("rack-b", nodeSelector={"matchLabels": {"rack": "b"}})]),
        "n1",
        [],
        id="a node outside the advertisement's nodeSelector announces nothing",
    ),
    pytest.param(
        view(peers=[peer("tor", nodeSelector={"matchLabels": {"rack": "b"}})]),
        "n1",
        [],
        id="a node no BGPPeer selects has no session and announces nothing",
    ),
    pytest.param(
        view(advs=[adv("pub-only", ipPools=["pub"])], services={"a/p": (["198.51.100.7"], "Cluster")}),
        "n1",
        [],
        id="an advertisement for another pool does not announce",
    ),
    pytest.param(
        view(advs=[adv("by-label", ipPoolSelector={"matchLabels": {"tier": "public"}})]),
        "n1",
        [BGPRoute("192.0.2.10/32", ("tor",), services=("default/web",))],
        id="ipPoolSelector matches pools by label",
    ),
    pytest.param(view(live={"n2", "n3"}), "n1", [], id="a node whose agent is not alive announces nothing"),
    pytest.param(
        view(
            nodes={
                **NODES,
                "n1": NodeInfo(
                    "n1",
                    {"node.kubernetes.io/exclude-from-external-load-balancers": ""},
                    addresses=("10.0.0.11",),
                ),
            }
        ),
        "n1",
        [],
        id="an excluded node announces nothing",
    ),
    pytest.param(
        view(advs=[adv("a", communities=["65000:1"]), adv("b", communities=["65000:2"], localPref=50)]),
        "n1",
        [BGPRoute("192.0.2.10/32", ("tor",), ("65000:1", "65000:2"), services=("default/web",))],
        id="two advertisements of one prefix union their communities (eBGP drops localPref)",
    ),
]


@pytest.mark.parametrize(("v", "node", "expected"), ROUTE_CASES)
def test_routes(v: ClusterView, node: str, expected: list[BGPRoute]) -> None:
    routes, _, _ = plan_bgp(v, node)
    assert list(routes) == expected


def test_ownership_lists_every_announcing_node_with_a_reason() -> None:
    _, owners, missing = plan_bgp(view(), "n1")
    assert [(o.ip, o.mode, o.nodes) for o in owners] == [("192.0.2.10", "bgp", ("n1", "n2", "n3"))]
    assert "externalTrafficPolicy Cluster" in owners[0].reason and "all" in owners[0].reason
    assert missing == {}


def test_etp_local_ownership_follows_endpoints() -> None:
    v = view(services={"default/web": (["192.0.2.10"], "Local")}, endpoints={"default/web": {"n1", "n3"}})
    _, owners, _ = plan_bgp(v, "n2")
    assert owners[0].nodes == ("n1", "n3")
    assert "ready endpoint" in owners[0].reason


UNANNOUNCED = [
    pytest.param(view(advs=[]), "no BGPAdvertisement selects its pool pub", id="no advertisement at all"),
    pytest.param(
        view(services={"default/web": (["192.0.2.10"], "Local")}),
        "externalTrafficPolicy is Local and no node has a ready endpoint",
        id="ETP=Local without endpoints",
    ),
    pytest.param(view(peers=[]), "no eligible node has a session", id="no BGPPeer at all"),
    pytest.param(view(live=set()), "no node is ready", id="no live agent"),
]


@pytest.mark.parametrize(("v", "words"), UNANNOUNCED)
def test_unannounced_reason(v: ClusterView, words: str) -> None:
    _, owners, missing = plan_bgp(v, "n1")
    assert owners == ()
    assert words in missing["default/web"]


SESSION_CASES = [
    pytest.param(
        peer("tor"),
        "n1",
        {
            "router_id": "10.0.0.11",
            "next_hops": ("10.0.0.11", "fd00::11"),
            "hold_time": 90,
            "keepalive_time": 30,
            "source_address": None,
        },
        id="router ID and next hops default to the node's addresses",
    ),
    pytest.param(
        peer("tor", routerID="1.1.1.1", sourceAddress="10.9.9.9", holdTime=9),
        "n2",
        {"router_id": "1.1.1.1", "next_hops": ("10.9.9.9",), "hold_time": 9, "keepalive_time": 3},
        id="explicit router ID, source address and hold time win",
    ),
    pytest.param(
        peer(
            "tor",
            passwordSecretRef={"name": "bgp-auth", "key": "pw"},
            ebgpMultiHop=True,
            enableGracefulRestart=True,
            peerPort=1179,
            connectTime=2,
        ),
        "n1",
        {
            "password_ref": ("bgp-auth", "pw"),
            "ebgp_multihop": True,
            "graceful_restart": True,
            "peer_port": 1179,
            "connect_time": 2,
        },
        id="password reference, multihop, GR, port carry over",
    ),
]


@pytest.mark.parametrize(("p", "node", "fields"), SESSION_CASES)
def test_sessions(p: BGPPeer, node: str, fields: dict[str, Any]) -> None:
    (session,) = plan_sessions(view(peers=[p]), node)
    assert {k: getattr(session, k) for k in fields} == fields


def test_sessions_follow_the_peer_node_selector() -> None:
    v = view(
        peers=[peer("a", nodeSelector={"matchLabels": {"rack": "a"}}), peer("b", peerAddress="10.0.0.2")]
    )
    assert [s.name for s in plan_sessions(v, "n1")] == ["a", "b"]
    assert [s.name for s in plan_sessions(v, "n2")] == ["b"]


def test_no_session_without_an_ipv4_router_id() -> None:
    v = view(nodes={"v6": NodeInfo("v6", addresses=("fd00::1",))})
    assert plan_sessions(v, "v6") == ()


def test_the_full_plan_carries_sessions_and_routes() -> None:
    p = plan(view(), "n3")
    assert [s.name for s in p.bgp_sessions] == ["tor"]
    assert [r.prefix for r in p.bgp] == ["192.0.2.10/32"]
    assert any(o.mode == "bgp" for o in p.ownership)


def test_a_bgp_only_service_is_unannounced_for_its_bgp_reason_not_for_lacking_layer_2() -> None:
    p = plan(view(live=set()), "n1")
    assert p.unannounced == {
        "default/web": "BGPAdvertisement all selects it, but no node is ready, reachable and not excluded"
    }


def test_a_service_both_modes_select_gives_both_reasons() -> None:
    v = view(live=set())
    lan = L2Advertisement.build("lan", {})
    v = replace(v, config=replace(v.config, l2_advertisements={"lan": lan}))
    why = plan(v, "n1").unannounced["default/web"]
    assert why.startswith("layer 2: no eligible node for layer 2: n1: agent not alive")
    assert "; BGP: BGPAdvertisement all selects it, but no node is ready" in why
