"""Lab: layer 2 on a hostile LAN, one agent's own report (issue 10 item 2, decision 0023).

Real agents, real packets, today's lab (a manifest directory, ``/status`` files): a foreign
host claims an address we announce; we keep it, defend once per DEFEND_INTERVAL, report it
with the details only ``/status`` carries (first and last seen, claims per address, the
claimant's MAC and interface), and the report ends when the host lets go.

The rest of the hostile LAN -- a foreign host through an owner crash, an IPv6 address
re-announced after a conflict, a million spoofed ARPs, the membership flood -- runs against
the rendered install in ``tests/lab/test_cluster_hostile_lan.py``, which replaced the
versions that were here.
"""

from __future__ import annotations

from typing import Any

import pytest

from lab import Lab
from lab.agents import Agents
from lab.arpping import claim_from, hold
from lab.manifests import l2_advertisement, lab_service, nodes, pool
from lab.probe import arping_macs, ndisc_mac, neigh_mac
from lab.waiting import wait_for

pytestmark = pytest.mark.lab

V4_V6 = pytest.mark.parametrize("v6", [pytest.param(False, id="IPv4"), pytest.param(True, id="IPv6")])


def l2(agents: Agents, node: str) -> dict[str, Any]:
    shell: dict[str, Any] = (agents.status(node) or {}).get("shells", {}).get("L2Shell", {})
    return shell


def address(agents: Agents, node: str, ip: str) -> dict[str, Any]:
    found: dict[str, Any] = l2(agents, node).get("addresses", {}).get(ip, {})
    return found


def resolve(lab: Lab, host: str, ip: str) -> set[str]:
    """Who answers ``ip`` for ``host`` right now (arping or ndisc6)."""
    if ":" in ip:
        mac = ndisc_mac(lab, host, ip)
        return {mac} if mac else set()
    return arping_macs(lab, host, ip, count=2)


@V4_V6
def test_a_host_claiming_an_announced_address_is_defended_once_reported_and_cleared(
    lab: Lab, v6: bool
) -> None:
    ip = "fd77::e7" if v6 else "10.77.0.231"
    agents = Agents(lab)
    agents.write(
        pool(), l2_advertisement(), *nodes(lab), lab_service("web", ip, families=["IPv6" if v6 else "IPv4"])
    )
    agents.start_all()
    owner = agents.wait_owner(ip)
    lab.run("router", "ping", *(["-6"] if v6 else []), "-c1", "-W2", ip)
    assert neigh_mac(lab, "router", ip) == lab.mac(owner)
    hold(lab, "client", ip)
    claim_from(lab, "client", ip)  # the host announces it, as ifup scripts do
    detail = wait_for(
        "the owner to report the claim",
        lambda: address(agents, owner, ip).get("conflict", {}),
        lambda c: c.get("state") == "defending",
        timeout=5,
    )
    assert detail["ip"] == ip and detail["mac"] == lab.mac("client") and detail["interface"] == "eth0"
    assert detail["first_seen"] <= detail["last_seen"]
    st = l2(agents, owner)
    assert st["addresses"][ip]["state"] == "announcing", "an address we hold first stays ours"
    assert st["conflicts"] == [] and [c["ip"] for c in st["conflict_details"]] == [ip]
    assert st["counters"]["defences"] == 1
    wait_for(
        "the defence to move the router's entry back to the owner",
        lambda: neigh_mac(lab, "router", ip),
        lambda m: m == lab.mac(owner),
        timeout=3,
    )
    claims = st["counters"]["claims"]
    claim_from(lab, "client", ip)
    wait_for("the second claim", lambda: l2(agents, owner)["counters"]["claims"], lambda n: n > claims)
    assert l2(agents, owner)["counters"]["defences"] == 1, "at most one defence per DEFEND_INTERVAL"
    hold(lab, "client", ip, add=False)
    wait_for(
        "the conflict to end once the host let the address go",
        lambda: address(agents, owner, ip),
        lambda a: "conflict" not in a and a.get("state") == "announcing",
        timeout=15,
    )
    assert resolve(lab, "router", ip) == {lab.mac(owner)}
