"""The layer-2 shell (agent.l2.shell) with recording responders and a faked netlink.

Timings are shrunk (probe rounds of ~40 ms, a 0.2 s hand-over grace) so the tests run on
the real event loop in well under a second each; the rules themselves are tested without
any clock in tests/test_l2_conflicts.py.  The network behaviour (real packets, a client's
neighbour cache) is in tests/lab/test_l2_*.py.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator
from typing import Any

import pytest

from ironlb.agent import netlink
from ironlb.agent.announcements import L2Announcement, Plan
from ironlb.agent.l2 import packets as pk
from ironlb.agent.l2 import shell as shell_mod
from ironlb.agent.l2.responders import ArpResponder, NdpResponder
from ironlb.agent.settings import L2Settings
from lab.waiting import eventually
from tests.factories import owned_plan

NODE_MAC = "02:77:00:00:00:0b"
FOREIGN = pk.mac_bytes("02:77:00:00:00:64")
SETTINGS = L2Settings(
    probe_count=2,
    probe_interval=0.01,
    probe_wait=0.03,
    handover_grace=0.2,
    conflict_retry=0.4,
    garp_schedule=(0.0,),
)


class Recorder:
    """Mixed into both responders: no socket; remembers what would have been sent."""

    probes: list[bytes]
    announced: list[bytes]

    def start(self) -> None:
        self.probes, self.announced = [], []

    def close(self) -> None:
        pass

    def probe(self, addrs: list[bytes]) -> None:
        self.probes += addrs

    def announce(self, addrs: list[bytes]) -> None:
        self.announced += addrs

    def listen(self, addr: bytes) -> None:
        pass

    def unlisten(self, addr: bytes) -> None:
        pass


class FakeArp(Recorder, ArpResponder):
    pass


class FakeNdp(Recorder, NdpResponder):
    pass


@pytest.fixture
async def l2(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[shell_mod.L2Shell]:
    link = netlink.Link("eth0", 2, NODE_MAC, netlink.IFF_UP, "veth", None)
    monkeypatch.setattr(netlink, "links", lambda: {"eth0": link})
    monkeypatch.setattr(
        netlink,
        "subnets",
        lambda: [(ipaddress.ip_network("fd77::/64"), 2), (ipaddress.ip_network("10.77.0.0/24"), 2)],
    )
    monkeypatch.setattr(shell_mod, "ArpResponder", FakeArp)
    monkeypatch.setattr(shell_mod, "NdpResponder", FakeNdp)
    monkeypatch.setattr(shell_mod, "TICK", 0.02)
    monkeypatch.setattr(shell_mod, "WATCH_INTERVAL", 0.1)
    monkeypatch.setattr(shell_mod, "CLEAR_AFTER", 0.3)
    s = shell_mod.L2Shell("node1", SETTINGS)
    yield s
    await s.close()


def plan(*ips: str, owner: str = "node1") -> Plan:
    return owned_plan(owner, *ips, node="node1")


def responder(s: shell_mod.L2Shell, family: int = 4) -> Any:
    return s.responders[("eth0", family)]


def state(s: shell_mod.L2Shell, ip: str) -> str:
    return str(s.status()["addresses"][ip]["state"])


async def reaches(s: shell_mod.L2Shell, ip: str, wanted: str, timeout: float = 2.0) -> None:
    """Wait until ``ip`` is ``wanted`` (probing, announcing, conflict) on the shell."""
    await eventually(
        f"{ip} {wanted}", lambda: state(s, ip), lambda st: st == wanted, timeout=timeout, interval=0.005
    )


async def test_every_first_announcement_is_probed_takeovers_included(l2: shell_mod.L2Shell) -> None:
    await l2.apply(plan("10.77.0.200", owner="node2"))
    assert l2.entries == {}
    await l2.apply(plan("10.77.0.200"))  # node2 died: a takeover
    assert state(l2, "10.77.0.200") == "probing"
    r = responder(l2)
    await reaches(l2, "10.77.0.200", "announcing", 1.0)
    assert r.probes == [pk.ip_bytes("10.77.0.200")] * 2, "two probes before the first answer"
    assert pk.ip_bytes("10.77.0.200") in r.owned and r.announced[0] == pk.ip_bytes("10.77.0.200")


async def test_a_host_answering_through_the_grace_is_refused_reported_and_retried(
    l2: shell_mod.L2Shell,
) -> None:
    changes: list[str] = []
    l2.on_change = lambda: changes.append(state(l2, "fd77::c8") if "fd77::c8" in l2.entries else "-")
    await l2.apply(plan("fd77::c8"))
    r = responder(l2, 6)
    vip = pk.ip_bytes("fd77::c8")
    answering = True

    async def foreign_host() -> None:  # answers every probe, like a host holding the address
        seen = 0
        while True:
            if answering and len(r.probes) > seen:
                seen = len(r.probes)
                l2._on_claim(r, vip, FOREIGN, "na")
            await asyncio.sleep(0.002)

    task = asyncio.create_task(foreign_host())
    try:
        await reaches(l2, "fd77::c8", "conflict")
        st = l2.status()
        detail = st["addresses"]["fd77::c8"]["conflict"]
        assert detail["mac"] == pk.mac_text(FOREIGN) and detail["state"] == "refused"
        assert detail["interface"] == "eth0" and detail["first_seen"] <= detail["last_seen"]
        assert st["conflicts"] == ["fd77::c8"] and st["conflict_details"] == [detail]
        assert vip not in r.owned and r.announced == [], "never announced while the host holds it"
        assert st["counters"]["conflicts"] == 1
        assert "conflict" in changes, "on_change reported the refusal"
        probes = len(r.probes)
        await eventually("a probe after the retry delay", lambda: r.probes, lambda sent: len(sent) > probes)
        assert state(l2, "fd77::c8") == "conflict" and l2.status()["counters"]["conflicts"] == 1
        answering = False  # the host let the address go
        await reaches(l2, "fd77::c8", "announcing", 3.0)
        assert "conflict" not in l2.status()["addresses"]["fd77::c8"]
        assert l2.status()["conflicts"] == [] and changes[-1] == "announcing"
    finally:
        task.cancel()


async def test_the_previous_owner_still_answering_briefly_is_not_a_conflict(l2: shell_mod.L2Shell) -> None:
    await l2.apply(plan("10.77.0.200"))
    r = responder(l2)
    l2._on_claim(r, pk.ip_bytes("10.77.0.200"), pk.mac_bytes("02:77:00:00:00:0c"), "arp")
    first_round = SETTINGS.probe_count
    await eventually(  # the first round is over: claimed -> probe again
        "a probe of the second round", lambda: r.probes, lambda sent: len(sent) > first_round, interval=0.002
    )
    assert state(l2, "10.77.0.200") == "probing"
    await reaches(l2, "10.77.0.200", "announcing", 1.0)
    assert l2.status()["conflict_details"] == [] and l2.status()["counters"].get("conflicts", 0) == 0


async def test_a_claim_after_we_announce_is_defended_once_reported_and_cleared(
    l2: shell_mod.L2Shell,
) -> None:
    await l2.apply(plan("10.77.0.200"))
    await reaches(l2, "10.77.0.200", "announcing")
    r = responder(l2)
    vip = pk.ip_bytes("10.77.0.200")
    r.announced.clear()
    calls = 0

    def count() -> None:
        nonlocal calls
        calls += 1

    l2.on_change = count
    for _ in range(3):
        l2._on_claim(r, vip, FOREIGN, "arp")
    assert r.announced == [vip], "one defensive announcement, not one per claim"
    detail = l2.status()["addresses"]["10.77.0.200"]["conflict"]
    assert detail["state"] == "defending" and detail["claims"] == 3 and calls == 1
    assert state(l2, "10.77.0.200") == "announcing" and vip in r.owned, "we keep the address"
    assert l2.status()["conflicts"] == [], "not held back"
    probes = len(r.probes)
    await eventually(
        "a contested address to be watched with probes", lambda: r.probes, lambda sent: len(sent) > probes
    )
    await eventually(
        "the conflict to clear", lambda: not l2.status()["conflict_details"], timeout=1.0, interval=0.005
    )
    assert calls == 2


async def test_a_withdrawn_address_in_conflict_is_announced_again_after_it_comes_back(
    l2: shell_mod.L2Shell,
) -> None:
    await l2.apply(plan("fd77::c8"))
    r = responder(l2, 6)
    vip = pk.ip_bytes("fd77::c8")
    for _ in range(10):
        l2._on_claim(r, vip, FOREIGN, "na")
        await asyncio.sleep(0.03)
    await reaches(l2, "fd77::c8", "conflict")
    await l2.apply(plan())
    assert l2.entries == {} and l2.responders == {}
    await l2.apply(plan("fd77::c8"))
    await reaches(l2, "fd77::c8", "announcing")
    assert vip in responder(l2, 6).owned


async def test_a_services_change_keeps_announcing_without_a_new_probe(l2: shell_mod.L2Shell) -> None:
    await l2.apply(plan("10.77.0.200"))
    await reaches(l2, "10.77.0.200", "announcing")
    probes = len(responder(l2).probes)
    shared = Plan("node1", l2=(L2Announcement("10.77.0.200", ("default/a", "default/web")),))
    await l2.apply(shared)
    assert state(l2, "10.77.0.200") == "announcing" and len(responder(l2).probes) == probes
    assert l2.entries["10.77.0.200"].ann.services == ("default/a", "default/web")
