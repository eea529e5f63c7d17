"""Lab: layer 2 on a hostile LAN (issue 10 item 2, decisions 0021 and 0023).

Real agents, real packets; what the other hosts see is checked at those hosts (arping,
ndisc6, ``ip neigh``, ``ip monitor neigh``).

- a foreign host holds a pool address and is still there when the owner is killed: the
  successor probes it too, refuses it, and the client's neighbour entry never moves;
- a foreign host claims an address we announce: we keep it, defend once per
  DEFEND_INTERVAL, report it, and the report ends when the host lets go;
- an IPv6 address withdrawn while in conflict and announced again still gets NS (the
  solicited-node group is re-joined);
- a million spoofed ARPs with random MACs: memory stays flat and no MAC becomes trusted.
"""

from __future__ import annotations

import signal
import sys
import time
from typing import Any

import pytest

from lab import Lab
from lab.agents import Agents, l2_advertisement, nodes, pool, service
from lab.probe import NeighWatch, arping_macs, ndisc_mac, neigh_mac, rss_mb, wait_for

pytestmark = pytest.mark.lab

V4_V6 = pytest.mark.parametrize("v6", [pytest.param(False, id="IPv4"), pytest.param(True, id="IPv6")])


def l2(agents: Agents, node: str) -> dict[str, Any]:
    shell: dict[str, Any] = (agents.status(node) or {}).get("shells", {}).get("L2Shell", {})
    return shell


def address(agents: Agents, node: str, ip: str) -> dict[str, Any]:
    found: dict[str, Any] = l2(agents, node).get("addresses", {}).get(ip, {})
    return found


def hold(lab: Lab, host: str, ip: str, add: bool = True) -> None:
    """Give ``host`` the address (or take it away), as a misconfigured host would have it."""
    v6 = ":" in ip
    lab.run(
        host,
        "ip",
        *(["-6"] if v6 else []),
        "addr",
        "add" if add else "del",
        f"{ip}/{64 if v6 else 24}",
        "dev",
        "eth0",
        *(["nodad"] if v6 and add else []),
    )


def claim(lab: Lab, host: str, ip: str, *extra: str) -> None:
    lab.run(host, sys.executable, "-m", "lab.arpping", "claim", "eth0", ip, *extra, timeout=20)


def resolve(lab: Lab, host: str, ip: str) -> set[str]:
    """Who answers ``ip`` for ``host`` right now (arping or ndisc6)."""
    if ":" in ip:
        mac = ndisc_mac(lab, host, ip)
        return {mac} if mac else set()
    return arping_macs(lab, host, ip, count=2)


def the_owner(agents: Agents, ip: str, but: str | None = None) -> str:
    owners = wait_for(
        f"one agreed owner of {ip}" + (f" other than {but}" if but else ""),
        lambda: set(agents.owners(ip).values()),
        lambda o: len(o) == 1 and None not in o and but not in o,
        timeout=15,
    )
    owner = owners.pop()
    assert owner is not None
    return owner


@V4_V6
def test_a_foreign_host_still_there_when_the_owner_dies_is_refused_by_the_successor(
    lab: Lab, v6: bool
) -> None:
    ip = "fd77::e8" if v6 else "10.77.0.232"
    hold(lab, "router", ip)  # a LAN host that is not a node uses a pool address
    agents = Agents(lab, extra_args=["--conflict-retry", "2"])
    agents.write(
        pool(), l2_advertisement(), *nodes(lab), service("web", ip, families=["IPv6" if v6 else "IPv4"])
    )
    agents.start_all()
    first = the_owner(agents, ip)
    wait_for(
        "the first owner to refuse it", lambda: address(agents, first, ip).get("state"), "conflict".__eq__
    )
    lab.run("client", "ping", *(["-6"] if v6 else []), "-c1", "-W2", ip)
    assert neigh_mac(lab, "client", ip) == lab.mac("router")
    watch = NeighWatch(lab, "client")
    try:
        agents.stop(first, signal.SIGKILL)
        successor = the_owner(agents, ip, but=first)
        wait_for(
            f"{successor} to probe {ip} and refuse it",
            lambda: address(agents, successor, ip).get("conflict", {}),
            lambda c: c.get("state") == "refused" and c.get("mac") == lab.mac("router"),
            timeout=10,
        )
        time.sleep(1.0)  # a gratuitous ARP/NA from the successor would have arrived by now
    finally:
        watch.stop()
    counters = l2(agents, successor)["counters"]
    assert counters.get("garp_sent", 0) == counters.get("unsolicited_na_sent", 0) == 0
    assert set(watch.macs(ip)) <= {lab.mac("router")}, f"the client's entry flipped: {watch.macs(ip)}"
    assert neigh_mac(lab, "client", ip) == lab.mac("router")
    assert resolve(lab, "client", ip) == {lab.mac("router")}
    assert address(agents, successor, ip)["state"] == "conflict"
    assert ip in l2(agents, successor)["conflicts"]


@V4_V6
def test_a_host_claiming_an_announced_address_is_defended_once_reported_and_cleared(
    lab: Lab, v6: bool
) -> None:
    ip = "fd77::e7" if v6 else "10.77.0.231"
    agents = Agents(lab)
    agents.write(
        pool(), l2_advertisement(), *nodes(lab), service("web", ip, families=["IPv6" if v6 else "IPv4"])
    )
    agents.start_all()
    owner = agents.wait_owner(ip)
    lab.run("router", "ping", *(["-6"] if v6 else []), "-c1", "-W2", ip)
    assert neigh_mac(lab, "router", ip) == lab.mac(owner)
    hold(lab, "client", ip)
    claim(lab, "client", ip)  # the host announces it, as ifup scripts do
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
    claim(lab, "client", ip)
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


def test_an_ipv6_address_announced_again_after_a_conflict_keeps_answering_ns(lab: Lab) -> None:
    ip = "fd77::e9"
    hold(lab, "client", ip)
    agents = Agents(lab)
    base = [pool(), l2_advertisement(), *nodes(lab)]
    agents.write(*base, service("v6", ip, families=["IPv6"]))
    agents.start_all()
    owner = the_owner(agents, ip)
    wait_for("a conflict", lambda: address(agents, owner, ip).get("state"), "conflict".__eq__)
    # A second IPv6 address on the same node keeps its NDP socket open across the withdrawal.
    other = agents.pick_ip_owned_by(owner, [f"fd77::{n:x}" for n in range(0xEA, 0xFA)])
    docs = [*base, service("keep", other, families=["IPv6"])]
    agents.write(*docs, service("v6", ip, families=["IPv6"]))
    assert agents.wait_owner(other) == owner
    agents.write(*docs)  # the Service goes: the address in conflict is withdrawn
    wait_for("the withdrawal", lambda: address(agents, owner, ip), lambda a: not a)
    hold(lab, "client", ip, add=False)
    agents.write(*docs, service("v6", ip, families=["IPv6"]))
    assert agents.wait_owner(ip) == owner
    for _ in range(4):
        assert ndisc_mac(lab, "router", ip) == lab.mac(owner), "NS for the address must reach the owner"
        time.sleep(0.3)
    assert ndisc_mac(lab, "router", other) == lab.mac(owner)


def test_a_million_spoofed_arps_with_random_macs_leave_memory_flat_and_no_mac_trusted(lab: Lab) -> None:
    """Static membership here: the spoofed ARPs also poison the *kernels'* neighbour entries
    for the other nodes' addresses (any ARP spoofing does), which would break node-to-node
    traffic, membership included, for tens of seconds; this test is about the agent's own
    tables."""
    ip = "10.77.0.233"
    agents = Agents(lab, membership="static")
    agents.write(pool(), l2_advertisement(), *nodes(lab), service("web", ip))
    agents.start_all()
    owner = agents.wait_owner(ip)
    pid = agents.procs[owner].pid
    senders = [arg for n in lab.nodes if n != owner for arg in ("--sender", lab.addr(n))]
    time.sleep(1.0)
    before, received_before = rss_mb(pid), l2(agents, owner)["counters"].get("arp_received", 0)
    first_mac, received, runs = "", 0, 0
    while received < 1_000_000 and runs < 8:  # until the agent itself has read a million
        runs += 1
        out = lab.run(
            "client",
            sys.executable,
            "-m",
            "lab.arpping",
            "spoof",
            "eth0",
            "1000000",
            *senders,
            "--dst",
            lab.mac(owner),
            "--seed",
            str(runs),
            timeout=600,
        ).stdout
        assert "sent=1000000" in out, out
        first_mac = first_mac or out.split("first_mac=")[1].split()[0]
        time.sleep(1.5)  # the agent drains its socket; the status file catches up
        received = l2(agents, owner)["counters"].get("arp_received", 0) - received_before
    grown = rss_mb(pid) - before
    assert agents.procs[owner].poll() is None, "the agent survived"
    print(f"spoofed ARPs: the agent read {received} in {runs} runs; RSS {before:.1f} MB -> +{grown:.2f} MB")
    assert received >= 1_000_000, f"the agent read only {received} spoofed ARPs"
    assert grown < 16, f"RSS grew by {grown:.1f} MB"
    assert arping_macs(lab, "router", ip, count=2) == {lab.mac(owner)}
    claim(lab, "client", ip, "--mac", first_mac)  # a MAC the flood used "from a peer's address"
    detail = wait_for(
        "a claim from a flood MAC to be a conflict, not a peer",
        lambda: address(agents, owner, ip).get("conflict", {}),
        lambda c: c.get("mac") == first_mac,
        timeout=5,
    )
    assert detail["state"] == "defending"
