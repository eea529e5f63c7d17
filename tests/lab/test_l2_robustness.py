"""Lab: a flood of malformed ARP/NDP frames never crashes the agent nor stops it answering."""

from __future__ import annotations

import sys

import pytest

from lab import Lab
from lab.agents import Agents
from lab.manifests import l2_advertisement, lab_service, nodes, pool
from lab.probe import arping_macs, ndisc_mac
from lab.waiting import wait_for

pytestmark = pytest.mark.lab


def test_100k_malformed_frames_leave_the_agent_alive_and_answering(lab: Lab) -> None:
    agents = Agents(lab)
    agents.write(
        pool(),
        l2_advertisement(),
        *nodes(lab),
        lab_service("web", "10.77.0.200"),
        lab_service("web6", "fd77::c8", families=["IPv6"]),
    )
    agents.start_all()
    owner4, owner6 = agents.wait_owner("10.77.0.200"), agents.wait_owner("fd77::c8")
    out = lab.run(
        "client", sys.executable, "-m", "lab.flood", "--count", "100000", "--vip6", "fd77::c8", timeout=120
    ).stdout
    assert "sent=100000" in out, out
    for node, proc in agents.procs.items():
        assert proc.poll() is None, f"agent on {node} died: {lab.log(f'agent-{node}')[-2000:]}"
    assert arping_macs(lab, "client", "10.77.0.200", count=2) == {lab.mac(owner4)}
    assert ndisc_mac(lab, "client", "fd77::c8") == lab.mac(owner6)

    def malformed() -> int:
        return sum(
            (agents.status(n) or {})
            .get("shells", {})
            .get("L2Shell", {})
            .get("counters", {})
            .get("malformed", 0)
            for n in lab.nodes
        )

    # the flood reached the agents and was counted as malformed
    wait_for("malformed frames to be counted", malformed, lambda n: n > 0, timeout=5)
