"""Lab: real agents answer ARP/NDP for the VIPs they own, and only they do.

Seen from the client namespace: arping, ``ip neigh``, ndisc6, ping -6 and a real TCP
connection to the lab's per-node "who am I" server.
"""

from __future__ import annotations

from collections import Counter

import pytest

from lab import Lab
from lab.agents import Agents
from lab.manifests import endpoint_slice, l2_advertisement, lab_service, nodes, pool
from lab.probe import arping_macs, ndisc_mac, neigh_mac, who_serves
from lab.waiting import wait_for

pytestmark = pytest.mark.lab

VIPS = ["10.77.0.200", "10.77.0.201", "10.77.0.202"]


def test_arping_neigh_and_tcp_reach_each_vips_owner_and_only_it(lab: Lab) -> None:
    lab.start_vip_servers()
    agents = Agents(lab)
    agents.write(
        pool(), l2_advertisement(), *nodes(lab), *(lab_service(f"web{i}", ip) for i, ip in enumerate(VIPS))
    )
    agents.start_all()
    for ip in VIPS:
        owner = agents.wait_owner(ip)
        assert arping_macs(lab, "client", ip, count=2) == {lab.mac(owner)}, (
            f"{ip} should be answered by {owner} only"
        )
        lab.run("client", "ping", "-c1", "-W2", ip)
        assert neigh_mac(lab, "client", ip) == lab.mac(owner)
        assert who_serves(lab, "client", ip) == owner
        reason = next(o["reason"] for o in agents.wait_status(owner)["ownership"] if o["ip"] == ip)
        assert reason.startswith("ranked first by sha256(") and reason.endswith("among eligible nodes")


def test_ownership_spreads_over_every_node_for_many_services(lab: Lab) -> None:
    agents = Agents(lab)
    agents.write(pool(), l2_advertisement(), *nodes(lab), *(lab_service(f"svc{i:02}") for i in range(30)))
    agents.start_all()
    ips = [f"10.77.0.{200 + i}" for i in range(30)]
    owners = {ip: agents.wait_owner(ip) for ip in ips}
    spread = Counter(owners.values())
    assert set(spread) == set(lab.nodes), f"every node should own some of 30 VIPs: {spread}"
    for ip in ips[:5]:
        assert arping_macs(lab, "client", ip) == {lab.mac(owners[ip])}


def test_ipv6_vip_resolves_with_ndisc6_and_serves_tcp(lab: Lab) -> None:
    lab.start_vip_servers()
    agents = Agents(lab)
    agents.write(
        pool(),
        l2_advertisement(),
        *nodes(lab),
        lab_service("web6", "fd77::c8", families=["IPv6"]),
        lab_service("dual", ["10.77.0.210", "fd77::d2"], families=["IPv4", "IPv6"]),
    )
    agents.start_all()
    owner = agents.wait_owner("fd77::c8")
    assert ndisc_mac(lab, "client", "fd77::c8") == lab.mac(owner)
    lab.run("client", "ping", "-6", "-c1", "-W2", "fd77::c8")
    assert neigh_mac(lab, "client", "fd77::c8") == lab.mac(owner)
    assert who_serves(lab, "client", "fd77::c8") == owner
    dual_v4, dual_v6 = agents.wait_owner("10.77.0.210"), agents.wait_owner("fd77::d2")
    assert dual_v4 == dual_v6, "both addresses of a dual-stack service are announced from one node"
    assert ndisc_mac(lab, "client", "fd77::d2") == lab.mac(dual_v4)


def test_etp_local_ownership_follows_the_ready_endpoint(lab: Lab) -> None:
    lab.start_vip_servers()
    agents = Agents(lab)
    base = [pool(), l2_advertisement(), *nodes(lab), lab_service("local", "10.77.0.220", etp="Local")]
    agents.write(*base, endpoint_slice("local", "node2"))
    agents.start_all()
    assert agents.wait_owner("10.77.0.220") == "node2"
    assert who_serves(lab, "client", "10.77.0.220") == "node2"
    agents.write(*base, endpoint_slice("local", "node3"))
    wait_for(
        "ownership to move to node3",
        lambda: agents.owners("10.77.0.220"),
        lambda o: set(o.values()) == {"node3"},
        timeout=10,
    )
    assert agents.wait_owner("10.77.0.220") == "node3"
    wait_for(
        "TCP to reach node3",
        lambda: who_serves(lab, "client", "10.77.0.220"),
        lambda v: v == "node3",
        timeout=5,
    )
    assert arping_macs(lab, "client", "10.77.0.220") == {lab.mac("node3")}
