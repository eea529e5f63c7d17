"""Issue 10's hostile LAN, on the dev stack's rendered install in the cluster-mode lab.

``ironlb render --stack dev`` runs unmodified (``lab.cluster``), plus one LAN host that is no
node, the *intruder* (:mod:`lab.cluster.hostile_lan`).  Each test is one attack, on addresses
of the layer-2 pool pinned by the platform's own Services:

- a membership flood at 50,000 packets/s for 10 s (random bytes, and heads signed with the
  cluster's key id but a wrong tag, forged from the other nodes' addresses): no address
  changes owner, in the NodeStates or in the client's neighbour table, no membership trouble
  in any speaker's log, no failover counted;
- a million spoofed ARPs (sender address another node's, random sender MACs) to an owner:
  its speaker reads them and its RSS grows < 16 MB, nothing moves, and a claim afterwards
  from one of the flood's MACs is a conflict, not a peer;
- a foreign host holding an address before it is assigned, and one claiming an announced
  address (defended once per DEFEND_INTERVAL), still there when the owner's speaker pod is
  SIGKILLed: the successor probes and refuses it, the client's entry never moves to a node,
  the conflict is in the NodeStates as the controller's own ServiceAccount reads them, in
  its published announcements and in Warning Events -- IPv4 and IPv6;
- an IPv6 address re-announced after a conflict keeps answering Neighbour Solicitations.

This replaces the today's-lab ``tests/lab/test_l2_hostile.py`` and the real-agent flood test
of ``tests/lab/test_membership_lab.py``: the same attacks against the rendered install, seen
from the client and the API.  One cluster per module; tests are independent of their order.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from lab.cluster import checks, scenario
from lab.cluster import foreign_host as fh
from lab.cluster import hostile_lan as hl
from lab.cluster.deploy import Cluster, deployed
from lab.waiting import wait_for
from tests.lab.test_cluster_dev import converged

pytestmark = [pytest.mark.lab, pytest.mark.timeout(600)]
__all__ = ["converged"]  # the dev test's fixture, on this module's cluster
STACK = "dev"
V4_V6 = pytest.mark.parametrize("family", [pytest.param(4, id="IPv4"), pytest.param(6, id="IPv6")])


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with deployed(STACK, extra_hosts=(hl.INTRUDER,)) as c:
        yield c


@pytest.fixture(scope="module")
def free(cluster: Cluster, converged: scenario.Converged) -> dict[int, list[str]]:
    """Unheld addresses of the layer-2 pools, per family, lowest first (each test takes its own)."""
    out = hl.free_l2(cluster)
    assert len(out[4]) >= 15 and len(out[6]) >= 10, out
    return out


def _no_crash(cluster: Cluster, since: float) -> None:
    fig = checks.figures(cluster, since)
    assert fig.restarts == 0, f"a container restarted that no test killed: {fig.restart_details}"


def test_a_50k_pps_membership_flood_from_a_lan_host_moves_no_address(
    cluster: Cluster, free: dict[int, list[str]]
) -> None:
    since = time.time()
    spread = free[4][:12]  # enough addresses that every node owns some: a grab would show
    try:
        for i, ip in enumerate(spread):
            hl.pin(cluster, f"spread-{i}", ip)
        owners = {ip: hl.announced_by(cluster, ip) for ip in spread}
        assert len(set(owners.values())) > 1, owners
        result = hl.flood(cluster, [*spread, *checks.layer2_addresses(cluster)])
        print(
            f"flood of {result.target}: {result.sent} datagrams at {result.pps:.0f}/s; "
            f"{result.reached} reached it"
        )
        assert result.pps >= 45_000, result
        assert result.reached >= 0.9 * result.sent, "the flood reached the target's membership port"
        assert result.changes == [], f"owners changed under the flood: {result.changes[:5]}"
        assert result.flips == [], f"the client's neighbour entries moved: {result.flips[:5]}"
        assert result.membership == [], result.membership[:5]
        assert result.failovers == 0
    finally:
        for i in range(len(spread)):
            hl.unpin(cluster, f"spread-{i}")
    _no_crash(cluster, since)


def test_a_million_spoofed_arps_leave_the_speaker_flat_and_trust_no_mac(
    cluster: Cluster, free: dict[int, list[str]]
) -> None:
    since = time.time()
    ip = free[4][12]
    try:
        hl.pin(cluster, "spoofed", ip)
        result = hl.spoof(cluster, ip)
        print(
            f"spoofed ARPs to {result.owner}: sent {result.sent}, its speaker read {result.read}; "
            f"RSS {result.rss_before:.1f} MB -> +{result.growth:.2f} MB"
        )
        assert result.read >= 1_000_000, result
        assert result.growth < 16, f"the speaker's RSS grew by {result.growth:.1f} MB"
        assert result.changes == [] and result.flips == [], (result.changes, result.flips)
        hl.claim(cluster, ip, mac=result.first_mac)  # a MAC the flood used "from a peer's address"
        row = wait_for(
            "a claim from a flood MAC to be a conflict, not a peer's",
            lambda: hl.conflicts(cluster, ip).get(result.owner),
            timeout=10,
            interval=scenario.POLL,
        )
        assert row["mac"] == result.first_mac and row["state"] == "defending", row
    finally:
        hl.unpin(cluster, "spoofed")
    _no_crash(cluster, since)


def _address(free: dict[int, list[str]], family: int, index: int) -> str:
    return free[family][13 + index] if family == 4 else free[6][index]


@V4_V6
def test_a_foreign_host_holding_an_address_before_it_is_assigned_keeps_it_through_an_owner_crash(
    cluster: Cluster, free: dict[int, list[str]], family: int
) -> None:
    since, ip = time.time(), _address(free, family, 0)
    result = fh.foreign_host(cluster, ip, claimed_after=False, name=f"held-v{family}")
    print(f"{ip}: refused by {result.first}, then (owner killed) by {result.successor}")
    _judge_foreign(cluster, result, "refused")
    _no_crash(cluster, since)


@V4_V6
def test_a_host_claiming_an_announced_address_is_defended_once_and_refused_by_the_successor(
    cluster: Cluster, free: dict[int, list[str]], family: int
) -> None:
    since, ip = time.time(), _address(free, family, 1)
    result = fh.foreign_host(cluster, ip, claimed_after=True, name=f"claimed-v{family}")
    print(
        f"{ip}: defended by {result.first} ({result.claims:.0f} claims counted), "
        f"refused by {result.successor}"
    )
    _judge_foreign(cluster, result, "defending")
    assert result.defences == 1, "one defence per DEFEND_INTERVAL, never a packet-for-packet fight"
    assert result.claims >= 2
    _no_crash(cluster, since)


def _judge_foreign(cluster: Cluster, result: fh.Foreign, first_state: str) -> None:
    intruder = cluster.the_lab.mac(hl.INTRUDER)
    assert (result.first_row["state"], result.first_row["mac"]) == (first_state, intruder), result.first_row
    assert result.successor != result.first
    assert (result.successor_row["state"], result.successor_row["mac"]) == ("refused", intruder)
    assert result.restarted_row["state"] == "refused", "the first owner's restarted speaker refuses it too"
    assert result.taken() == [], result.taken()
    assert "intruder" in result.exposure.answered[result.ip], "the watch saw the intruder answer"
    assert result.events, "a Warning Event (AddressConflict) on the Service"
    assert any(r["mac"] == intruder for r in result.controller_rows), (
        "the controller's ServiceAccount reads it"
    )
    conflicts = [c for row in result.published if row["ip"] == result.ip for c in row.get("conflicts", ())]
    assert conflicts and all(c["mac"] == intruder for c in conflicts), result.published
    assert result.first_row["interface"] == cluster.the_lab.dev(result.first)
    print(f"released: {result.ip} announced by {result.recovered_by} again after {result.recovered_s:.1f} s")
    assert result.recovered_by in cluster.the_lab.nodes, "once the host lets it go, the address comes back"


def test_an_ipv6_address_announced_again_after_a_conflict_keeps_answering_ns(
    cluster: Cluster, free: dict[int, list[str]]
) -> None:
    since = time.time()
    result = fh.reannounce_v6(cluster, free[6][2], free[6][3:10])
    owner_mac = cluster.the_lab.mac(result.announced_by)
    print(f"{result.ip}: refused by {result.refused_by}, announced again by {result.announced_by}")
    assert result.announced_by == result.refused_by, "the same node: its NDP socket outlived the conflict"
    assert result.answers == [owner_mac] * 4, f"NS for the re-announced address: {result.answers}"
    assert result.keeper_answer == owner_mac
    _no_crash(cluster, since)
