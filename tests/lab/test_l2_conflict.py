"""Lab: a foreign host already using a VIP is detected before announcing, and never fought."""

from __future__ import annotations

import pytest

from lab import Lab
from lab.agents import Agents
from lab.manifests import l2_advertisement, lab_service, nodes, pool
from lab.probe import arping_macs, ndisc_mac
from lab.waiting import wait_for

pytestmark = pytest.mark.lab


@pytest.mark.parametrize(
    "ip",
    [
        pytest.param("10.77.0.230", id="an IPv4 address held by the client is a conflict (ARP probe)"),
        pytest.param("fd77::e6", id="an IPv6 address held by the client is a conflict (DAD-style NS)"),
    ],
)
def test_foreign_host_answering_for_a_vip_is_a_conflict_then_released(lab: Lab, ip: str) -> None:
    v6 = ":" in ip
    lab.run(
        "client",
        "ip",
        *(["-6"] if v6 else []),
        "addr",
        "add",
        f"{ip}/{64 if v6 else 24}",
        "dev",
        "eth0",
        *(["nodad"] if v6 else []),
    )
    agents = Agents(lab, extra_args=["--conflict-retry", "1"])
    agents.write(
        pool(), l2_advertisement(), *nodes(lab), lab_service("clash", ip, families=["IPv6" if v6 else "IPv4"])
    )
    agents.start_all()
    owner = wait_for(
        "an owner in the plan",
        lambda: set(agents.owners(ip).values()),
        lambda o: len(o) == 1 and None not in o,
        timeout=10,
    ).pop()
    assert owner is not None
    wait_for(
        "the owner to report a conflict",
        lambda: agents.announcing(owner).get(ip),
        lambda s: s == "conflict",
        timeout=10,
    )
    l2 = agents.wait_status(owner)["shells"]["L2Shell"]
    assert l2["addresses"][ip]["conflict"]["mac"] == lab.mac("client")
    assert ip in l2["conflicts"]
    if v6:
        assert ndisc_mac(lab, "router", ip) == lab.mac("client")
    else:
        assert arping_macs(lab, "router", ip, count=2) == {lab.mac("client")}, (
            "the agent must not fight the owner"
        )
    lab.run("client", "ip", *(["-6"] if v6 else []), "addr", "del", f"{ip}/{64 if v6 else 24}", "dev", "eth0")
    assert agents.wait_owner(ip, timeout=10) == owner
    if v6:
        assert ndisc_mac(lab, "router", ip) == lab.mac(owner)
    else:
        assert arping_macs(lab, "router", ip) == {lab.mac(owner)}
