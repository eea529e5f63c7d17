"""What the metrics say: build info and runtime collectors, the announcement and failover
histograms, per-peer BGP sessions, membership in /status and /metrics (never the key), and
the controller's pool, pending and leadership figures.

Shell status documents here have the shape the real shells report (agent/l2/shell.py,
agent/bgp/shell.py); membership runs for real on loopback.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from typing import Any

from prometheus_client import generate_latest

from ironlb import __version__
from ironlb.agent.membership import Membership, MembershipSettings
from ironlb.agent.membership.wire import Keyring
from ironlb.agent.metrics import ControllerMetrics, Metrics, SpeakerMetrics, Timing
from ironlb.agent.observability import StatusBoard
from ironlb.ipam.allocator import PoolUsage
from lab.waiting import eventually
from tests.factories import owned_plan
from tests.test_observability import FakeShell

IP = "10.0.0.5"


def value(metrics: Metrics, name: str, **labels: str) -> float:
    got = metrics.registry.get_sample_value(name, labels)
    return 0.0 if got is None else got


def l2_status(state: str, since: float) -> dict[str, Any]:
    return {"addresses": {IP: {"state": state, "interfaces": ["eth0"], "since": since}}, "counters": {}}


def test_both_programs_export_build_info_and_the_process_and_python_collectors() -> None:
    for metrics, role in ((SpeakerMetrics(), "speaker"), (ControllerMetrics(), "controller")):
        text = generate_latest(metrics.registry).decode()
        build = [line for line in text.splitlines() if line.startswith("ironlb_build_info{")]
        assert len(build) == 1 and f'version="{__version__}"' in build[0] and f'role="{role}"' in build[0]
        assert build[0].endswith(" 1.0")
        for family in ("process_cpu_seconds_total", "process_resident_memory_bytes", "python_info"):
            assert f"\n{family}" in text, f"{family} missing for the {role}"
        assert "_created" not in text, "no *_created series"


def test_a_takeover_times_the_announcement_from_the_plan_and_the_failover_from_the_change() -> None:
    l2 = FakeShell(l2_status("withdrawn", 0))
    board = StatusBoard("n1")
    board.shells = {"L2Shell": l2}
    board.record_plan(owned_plan("n2", IP))
    t0 = time.time()
    l2._status = l2_status("probing", t0 + 0.02)
    board.record_plan(owned_plan("n1", IP), Timing(changed_at=t0, applied_at=t0 + 0.02, plan_seconds=0.004))
    m = board.metrics
    assert value(m, "ironlb_failovers_total", mode="layer2") == 1
    assert value(m, "ironlb_announcement_duration_seconds_count", mode="layer2") == 0, "still probing"
    l2._status = l2_status("announcing", t0 + 0.12)  # the probe took 0.1 s, then the first GARP
    board.tick()
    assert value(m, "ironlb_announcement_duration_seconds_count", mode="layer2") == 1
    assert abs(value(m, "ironlb_announcement_duration_seconds_sum", mode="layer2") - 0.10) < 1e-6
    assert abs(value(m, "ironlb_failover_duration_seconds_sum", mode="layer2") - 0.12) < 1e-6
    assert value(m, "ironlb_failover_duration_seconds_bucket", mode="layer2", le="0.15") == 1
    assert value(m, "ironlb_failover_duration_seconds_bucket", mode="layer2", le="0.1") == 0
    assert value(m, "ironlb_plan_duration_seconds_count") == 1 and value(m, "ironlb_replans_total") == 2
    board.tick()
    assert value(m, "ironlb_announcement_duration_seconds_count", mode="layer2") == 1, "observed once"


def test_a_new_address_is_no_failover_and_a_refused_one_is_not_timed() -> None:
    l2 = FakeShell(l2_status("probing", 0))
    board = StatusBoard("n1")
    board.shells = {"L2Shell": l2}
    t0 = time.time()
    board.record_plan(owned_plan("n1", IP), Timing(t0, t0))  # the agent's first plan: nobody owned it before
    l2._status = l2_status("conflict", t0 + 0.2)
    board.tick()
    l2._status = l2_status("announcing", t0 + 40)  # refused, probed again later: not an announcement time
    board.tick()
    m = board.metrics
    assert value(m, "ironlb_announcement_duration_seconds_count", mode="layer2") == 0
    assert value(m, "ironlb_failovers_total", mode="layer2") == 0
    assert value(m, "ironlb_failover_duration_seconds_count", mode="layer2") == 0


def test_a_bgp_route_counts_as_announced_once_the_speaker_runs() -> None:
    bgp = FakeShell({"speaker": {"state": "starting"}, "sessions": {}})
    board = StatusBoard("n1")
    board.shells = {"BGPShell": bgp}
    t0 = time.time() - 0.05
    board.record_plan(owned_plan("n2", IP, prefixes=("10.100.0.1/32",)), Timing(t0, t0))
    assert value(board.metrics, "ironlb_announcement_duration_seconds_count", mode="bgp") == 0
    bgp._status = {"speaker": {"state": "running"}, "sessions": {}}
    board.tick()
    assert value(board.metrics, "ironlb_announcement_duration_seconds_count", mode="bgp") == 1
    assert 0.05 <= value(board.metrics, "ironlb_announcement_duration_seconds_sum", mode="bgp") < 60


def test_bgp_sessions_are_exported_per_peer_with_prefixes_and_bfd() -> None:
    board = StatusBoard("n1")
    sessions = {
        "tor-a": {"state": "established", "prefixes_sent": 12, "bfd": "up"},
        "tor-b": {"state": "connect", "prefixes_sent": 0, "bfd": "down"},
        "tor-c": {"state": "failed", "uptime_s": 0, "prefixes_sent": 0, "last_error": "no password file"},
    }
    status = {"speaker": {"state": "running", "starts": 1, "reconfigures": 4}, "sessions": sessions}
    board.shells = {"BGPShell": FakeShell({**status, "session_restarts": 2})}
    board.tick()
    m = board.metrics
    assert [value(m, "ironlb_bgp_session_up", peer=p) for p in ("tor-a", "tor-b", "tor-c")] == [1, 0, 0]
    assert value(m, "ironlb_bgp_session_prefixes", peer="tor-a") == 12
    assert (
        value(m, "ironlb_bgp_bfd_up", peer="tor-a") == 1 and value(m, "ironlb_bgp_bfd_up", peer="tor-b") == 0
    )
    assert m.registry.get_sample_value("ironlb_bgp_bfd_up", {"peer": "tor-c"}) is None, "no BFD profile"
    assert value(m, "ironlb_bgp_speaker_up") == 1 and value(m, "ironlb_bgp_reconfigures_total") == 4
    assert value(m, "ironlb_bgp_session_restarts_total") == 2


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_membership_is_in_status_and_in_metrics_and_its_keys_never_are() -> None:
    old, new = b"o" * 32, b"n" * 32
    ports = {"a": _free_udp_port(), "b": _free_udp_port()}
    nodes = {
        "a": Membership("a", Keyring(old, new), MembershipSettings(port=ports["a"]), bind_host="127.0.0.1"),
        "b": Membership("b", Keyring(new, old), MembershipSettings(port=ports["b"]), bind_host="127.0.0.1"),
    }  # mid-rotation: b already signs with the next key
    addresses = {n: f"127.0.0.1:{p}" for n, p in ports.items()}
    for m in nodes.values():
        m.update_peers({**addresses, "c": "127.0.0.1:9"})  # c never answers
    await asyncio.gather(*(m.start() for m in nodes.values()))
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b"not a membership datagram", ("127.0.0.1", ports["a"]))
        await eventually(
            "a to hear b and count the malformed datagram (a's status)",
            nodes["a"].status,
            lambda st: st["peers"]["b"]["state"] == "alive" and st["counters"]["malformed"],
        )
        board = StatusBoard("a")
        board.membership = nodes["a"]
        board.tick()
    finally:
        await asyncio.gather(*(m.stop(graceful=False) for m in nodes.values()))
    metrics = board.metrics
    doc = json.loads(board.snapshot())
    assert (
        doc["membership"]["peers"]["b"]["state"] == "alive"
        and doc["membership"]["peers"]["b"]["key"] == "next"
    )
    assert value(metrics, "ironlb_membership_peers", state="alive") == 1
    states = ("alive", "suspect", "dead", "left", "unknown")
    assert sum(value(metrics, "ironlb_membership_peers", state=s) for s in states) == 2, "sum() is every peer"
    assert value(metrics, "ironlb_membership_peers_by_key", key="next") == 1, "b signs with the next key"
    assert value(metrics, "ironlb_membership_peers_by_key", key="unheard") == 1, "nothing heard from c"
    assert value(metrics, "ironlb_membership_lanes", lane="fast") == 2, "two peers: both watch a"
    assert value(metrics, "ironlb_membership_datagrams_dropped_total", reason="malformed") >= 1
    assert value(metrics, "ironlb_membership_datagrams_received_total") > 1
    assert value(metrics, "ironlb_membership_isolated_seconds") == 0
    exposition = generate_latest(metrics.registry)
    for key in (old, new):
        for form in (key, key.hex().encode(), key.decode().encode()):
            assert form not in exposition and form not in board.snapshot()


def test_the_controller_reports_pools_and_pending_services_only_while_it_leads() -> None:
    m = ControllerMetrics()
    m.observe_leadership(True)
    m.observe_usage(
        {
            "lan": PoolUsage("lan", {4: 3, 6: 0}, {4: 40, 6: 256}, None),
            "old": PoolUsage("old", {4: 1}, {4: 8}, None),
        }
    )
    m.observe_pending(["PoolExhausted", "PoolExhausted", "QuotaExceeded"])
    assert value(m, "ironlb_pool_addresses", pool="lan", family="ipv4") == 40
    assert value(m, "ironlb_pool_addresses_used", pool="lan", family="ipv4") == 3
    assert value(m, "ironlb_services_pending", reason="PoolExhausted") == 2
    m.observe_usage({"lan": PoolUsage("lan", {4: 3, 6: 0}, {4: 40, 6: 256}, None)})
    m.observe_pending(["QuotaExceeded"])
    assert m.registry.get_sample_value("ironlb_pool_addresses", {"pool": "old", "family": "ipv4"}) is None, (
        "a deleted pool's series goes away"
    )
    assert value(m, "ironlb_services_pending", reason="PoolExhausted") == 0
    m.observe_leadership(False)
    assert value(m, "ironlb_controller_leader") == 0 and value(m, "ironlb_controller_terms_total") == 1
    assert m.registry.get_sample_value("ironlb_pool_addresses", {"pool": "lan", "family": "ipv4"}) is None, (
        "a standby reports no pools: sum() over the replicas stays right"
    )
    assert value(m, "ironlb_services_pending", reason="QuotaExceeded") == 0
