"""NodeState, pure: what a speaker reports about itself, and what the controller makes of all reports."""

from __future__ import annotations

from typing import Any

from ironlb.agent.announcements import BGPRoute, L2Announcement, Ownership, Plan
from ironlb.agent.kube.nodestate import peer_statuses, published_rows, speaker_status
from ironlb.nodestate import NodeStateStatus
from lab.manifests import l2_advertisement, pool

PLAN = Plan(
    node="n1",
    l2=(L2Announcement("10.0.0.5", ("default/web",)), L2Announcement("10.0.0.6", ("default/db",))),
    bgp=(BGPRoute("10.1.0.7/32", ("tor-a", "tor-b"), services=("team/api",)),),
    ownership=(
        Ownership("10.0.0.5", "layer2", ("n1",), "ranked first of 3", ("default/web",)),
        Ownership("10.0.0.6", "layer2", ("n1",), "ranked first of 2", ("default/db",)),
        Ownership("10.1.0.7", "bgp", ("n1", "n2"), "every eligible node", ("team/api",)),
    ),
)
SHELLS: dict[str, Any] = {
    "L2Shell": {
        "addresses": {
            "10.0.0.5": {"state": "announcing", "since": 1.7e9, "interfaces": ["eth0"]},
            "10.0.0.6": {"state": "conflict", "since": 1.7e9 + 5},
        },
        "conflict_details": [  # the L2 shell's records: a refused address and a defended one
            {
                "ip": "10.0.0.6",
                "interface": "eth0",
                "mac": "02:00:00:00:00:99",
                "first_seen": 1.7e9 + 5,
                "last_seen": 1.7e9 + 9,
                "state": "refused",
                "claims": 3,
                "next_probe": 1.7e9 + 13,
            },
            {
                "ip": "10.0.0.5",
                "interface": "eth0",
                "mac": "02:00:00:00:00:98",
                "first_seen": 1.7e9 + 7,
                "last_seen": 1.7e9 + 8,
                "state": "defending",
                "claims": 1,
                "next_probe": None,
            },
        ],
        "counters": {"arp_replies": 12345},  # moves all the time: must not move the report
    },
    "BGPShell": {
        "sessions": {
            "tor-a": {"state": "established", "prefixes_sent": 1, "uptime_s": 812.4},
            "tor-b": {"state": "active", "prefixes_sent": 0, "last_error": "connection refused"},
        }
    },
}


def test_the_speaker_reports_announcements_sessions_and_conflicts_and_the_crd_accepts_it() -> None:
    status = speaker_status(PLAN, SHELLS)
    rows = {(r["ip"], r["mode"]): r for r in status["announcements"]}
    assert rows[("10.0.0.5", "layer2")]["state"] == "announcing"
    assert rows[("10.0.0.5", "layer2")]["since"] == "2023-11-14T22:13:20Z"
    assert rows[("10.0.0.6", "layer2")]["state"] == "conflict"
    assert rows[("10.1.0.7", "bgp")] == {
        "ip": "10.1.0.7",
        "mode": "bgp",
        "state": "announcing",
        "reason": "every eligible node",
        "services": ["team/api"],
        "since": None,
    }, "one session of two is up: the route is announced"
    assert status["conflicts"] == [
        {
            "ip": "10.0.0.5",
            "mac": "02:00:00:00:00:98",
            "interface": "eth0",
            "state": "defending",
            "since": "2023-11-14T22:13:27Z",
        },
        {
            "ip": "10.0.0.6",
            "mac": "02:00:00:00:00:99",
            "interface": "eth0",
            "state": "refused",
            "since": "2023-11-14T22:13:25Z",
        },
    ], "every conflict the shell records, defended ones too; first_seen is since"
    assert [(s["peer"], s["state"], s["error"]) for s in status["sessions"]] == [
        ("tor-a", "established", ""),
        ("tor-b", "active", "connection refused"),
    ]
    assert (status["announcing"], status["sessionsEstablished"], status["conflictCount"]) == (2, 1, 2)
    NodeStateStatus.model_validate(status)  # the status schema (and so the CRD) holds every field


def test_counters_uptimes_and_claim_counts_never_change_the_report() -> None:
    first = speaker_status(PLAN, SHELLS)
    claimed = [
        {**c, "claims": c["claims"] + 50, "last_seen": 1.8e9} for c in SHELLS["L2Shell"]["conflict_details"]
    ]
    moved = {
        "L2Shell": {**SHELLS["L2Shell"], "counters": {"arp_replies": 99999}, "conflict_details": claimed},
        "BGPShell": {
            "sessions": {k: {**v, "uptime_s": 9999.0} for k, v in SHELLS["BGPShell"]["sessions"].items()}
        },
    }
    assert speaker_status(PLAN, moved) == first, "no write at rest, nor for every foreign packet"


def ready(name: str, ok: bool = True) -> dict[str, Any]:
    return {"metadata": {"name": name}, "status": {"conditions": [{"type": "Ready", "status": str(ok)}]}}


def state(name: str, *rows: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "status": {"announcements": list(rows), **extra}}


def claim(ip: str, since: str, state_: str = "announcing") -> dict[str, Any]:
    return {
        "ip": ip,
        "mode": "layer2",
        "state": state_,
        "reason": "ranked first",
        "services": ["ns/a"],
        "since": since,
    }


def test_the_newest_layer2_claim_wins_and_not_ready_or_missing_nodes_are_ignored() -> None:
    states = [
        state("old", claim("10.0.0.5", "2026-01-01T00:00:00Z")),
        state("new", claim("10.0.0.5", "2026-01-01T00:00:09Z")),
        state("gone", claim("10.0.0.5", "2026-01-01T00:00:10Z")),
        state("sick", claim("10.0.0.5", "2026-01-01T00:00:11Z")),
    ]
    nodes = {"old": ready("old"), "new": ready("new"), "sick": ready("sick", ok=False)}
    (row,) = published_rows(states, nodes)["ns/a"]
    assert row["nodes"] == ["new"]


def test_an_address_nobody_announces_says_why_and_shows_the_conflict() -> None:
    states = [
        state(
            "n1",
            claim("10.0.0.6", "t", "conflict"),
            conflicts=[{"ip": "10.0.0.6", "mac": "02:00:00:00:00:99"}],
        ),
        state("n2", claim("10.0.0.6", "t", "probing")),
    ]
    (row,) = published_rows(states, {"n1": ready("n1"), "n2": ready("n2")})["ns/a"]
    assert row["nodes"] == [] and row["reason"] == "n1: conflict; n2: probing (not announced yet)"
    assert row["conflicts"] == [{"node": "n1", "mac": "02:00:00:00:00:99"}]


def test_bgp_sessions_are_summed_per_peer() -> None:
    states = [
        state("n1", sessions=[{"peer": "tor", "state": "established", "prefixes": 3}]),
        state("n2", sessions=[{"peer": "tor", "state": "connect", "prefixes": 0}]),
    ]
    got = peer_statuses(states, {"n1": ready("n1"), "n2": ready("n2")})
    assert got["tor"]["state"] == "1/2 Established"
    assert got["tor"]["sessions"] == [
        {"node": "n1", "state": "Established", "prefixes": 3},
        {"node": "n2", "state": "Connect", "prefixes": 0},
    ]


def test_a_node_going_not_ready_rewrites_only_the_services_it_announced() -> None:
    """The write storm (H7): reasons held a count of eligible nodes, so one node event changed every row."""
    from ironlb.agent import planner
    from ironlb.agent.view import ClusterView, NodeInfo
    from ironlb.config import parse
    from ironlb.service import AssignedIP, Assignment

    config = parse([pool("lan", "10.0.0.0/24"), l2_advertisement("lan")])
    assignments = {
        f"ns/s{i}": Assignment(f"ns/s{i}", (AssignedIP(f"10.0.0.{i}", "lan"),)) for i in range(1, 41)
    }
    names = ("n1", "n2", "n3", "n4")

    def published(ready: set[str]) -> dict[str, Any]:
        nodes = {n: NodeInfo(n, ready=n in ready) for n in names}
        view = ClusterView(config=config, assignments=assignments, nodes=nodes)
        states = []
        for n in sorted(ready):
            plan = planner.plan(view, n)
            shells = {
                "L2Shell": {"addresses": {a.ip: {"state": "announcing", "since": 1.7e9} for a in plan.l2}}
            }
            states.append({"metadata": {"name": n}, "status": speaker_status(plan, shells)})
        return published_rows(states, {n: {"metadata": {"name": n}} for n in names})

    before = published(set(names))
    after = published({"n1", "n2", "n4"})
    moved = {svc for svc in before if before[svc] != after.get(svc)}
    owned_by_n3 = {svc for svc, rows in before.items() if any(r["nodes"] == ["n3"] for r in rows)}
    assert owned_by_n3, "the test needs n3 to own something"
    assert moved == owned_by_n3, "only the Services whose owner changed are rewritten"
