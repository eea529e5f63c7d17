"""Lab: when the owner's agent stops (SIGTERM) or dies (SIGKILL), the VIP moves.

The lab's vipserver keeps running on the old node, so "moved" means the client's TCP
connections now land on another node -- the client's neighbour entry was updated by the
successor's gratuitous ARP / unsolicited NA, without the client asking.
"""

from __future__ import annotations

import signal
import time

import pytest

from lab import Lab
from lab.agents import Agents
from lab.manifests import l2_advertisement, lab_service, nodes, pool
from lab.probe import neigh_mac, who_serves
from lab.waiting import wait_for

pytestmark = pytest.mark.lab


@pytest.mark.parametrize(
    ("sig", "ip", "budget"),
    [
        pytest.param(
            signal.SIGTERM, "10.77.0.200", 5.0, id="graceful stop (SIGTERM) moves an IPv4 VIP within 5 s"
        ),
        pytest.param(signal.SIGKILL, "10.77.0.200", 6.0, id="crash (SIGKILL) moves an IPv4 VIP within 6 s"),
        pytest.param(signal.SIGKILL, "fd77::c8", 6.0, id="crash (SIGKILL) moves an IPv6 VIP within 6 s"),
    ],
)
def test_owner_loss_moves_the_vip(lab: Lab, sig: int, ip: str, budget: float) -> None:
    lab.start_vip_servers()
    agents = Agents(lab)
    fams = ["IPv6"] if ":" in ip else ["IPv4"]
    agents.write(pool(), l2_advertisement(), *nodes(lab), lab_service("web", ip, families=fams))
    agents.start_all()
    old = agents.wait_owner(ip)
    assert who_serves(lab, "client", ip) == old
    start = time.monotonic()
    agents.stop(old, sig)
    new = wait_for(
        f"TCP to {ip} to reach a node other than {old}",
        lambda: who_serves(lab, "client", ip, timeout=1),
        lambda v: v is not None and v != old,
        timeout=budget,
        interval=0.02,
    )
    elapsed = time.monotonic() - start
    assert new == agents.wait_owner(ip)
    assert neigh_mac(lab, "client", ip) == lab.mac(new)
    assert elapsed <= budget
    agents.start(old)
    agents.wait_status(old)
    back = agents.wait_owner(ip)
    assert back == old, "the original owner ranks first again once its agent is back"
    wait_for(
        "traffic back on the restarted owner",
        lambda: who_serves(lab, "client", ip, timeout=1),
        lambda v: v == old,
        timeout=5,
        interval=0.05,
    )
