"""IPv6 pools of any size: usage, allocation, status and ``ironlb plan`` work for a /64 and a /48.

Sizes are allocatable counts as Python ints of any magnitude (``len()`` of a netaddr range
raised IndexError from a /64 up).  A property test checks that the counted size is exactly
what allocation hands out before the pool is exhausted, for random small pools.
"""

from __future__ import annotations

import ipaddress
import json
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ironlb import ipam
from ironlb.config import parse
from ironlb.errors import AllocationError
from ironlb.service import ServiceRequest
from ironlb_cli.main import main
from lab.manifests import pool
from tests.factories import req

STACKS = Path(__file__).parent / "data" / "stacks"


def v6(key: str) -> ServiceRequest:
    return req(key, families=(6,))


@pytest.mark.parametrize(
    ("entries", "size"),
    [
        (["fd00::/64"], 2**64 - 1),
        (["fd48:1:2::/48"], 2**80 - 2**16),
        (["2a00:1450::/32"], 2**96 - 2**32),
        (["fd00::100/120"], 255),
        (["fd00::ffff:ffff:ffff:fffe-fd00:0:0:1::1"], 3),
        (["fd00::1-fd00::10"], 16),
        (["fd00::/127"], 1),
    ],
    ids=[
        "a /64 less its anycast address",
        "a /48 less one anycast address per /64",
        "a /32",
        "a /120 less its first address",
        "a range crossing a /64 boundary",
        "a range without anycast addresses",
        "a /127 keeps only ::1",
    ],
)
def test_usage_counts_ipv6_pools_of_any_size(entries: list[str], size: int) -> None:
    usage = ipam.Allocator(parse([pool("p", *entries)])).usage()["p"]
    assert usage.size == {4: 0, 6: size}
    assert usage.used == {4: 0, 6: 0}


@pytest.mark.parametrize(
    ("entries", "avoid", "size"),
    [
        (["10.0.0.0/24"], False, 256),
        (["10.0.0.0/24"], True, 254),
        (["10.0.0.255-10.0.1.1"], True, 1),
        (["10.0.0.0/16"], True, 65536 - 512),
    ],
    ids=["a /24", "a /24 avoiding .0/.255", "a range across .255/.0", "a /16 avoiding 256 of each"],
)
def test_usage_counts_what_ipv4_allocation_can_hand_out(entries: list[str], avoid: bool, size: int) -> None:
    assert ipam.Allocator(parse([pool("p", *entries, avoidBuggyIPs=avoid)])).usage()["p"].size[4] == size


def test_allocation_in_a_48_is_fast_and_skips_anycast_addresses() -> None:
    alloc = ipam.Allocator(parse([pool("p", "fd48:1:2::/48")]))
    start = time.perf_counter()
    got = [alloc.allocate(v6(f"d/s{i}")).addresses[0] for i in range(2000)]
    elapsed = time.perf_counter() - start
    assert got[0] == "fd48:1:2::1" and got[-1] == "fd48:1:2::7d0"
    assert len(set(got)) == 2000
    assert elapsed < 10, f"2000 allocations took {elapsed:.1f} s: allocation must not enumerate the pool"
    usage = alloc.usage()["p"]
    assert usage.used[6] == 2000 and usage.available(6) == 2**80 - 2**16 - 2000


def test_a_pinned_address_deep_in_a_48_is_given_and_counted() -> None:
    alloc = ipam.Allocator(parse([pool("p", "fd48:1:2::/48")]))
    pinned = ServiceRequest(namespace="d", name="pin", requested_ips=("fd48:1:2:ffff:ffff:ffff:ffff:ffff",))
    assert alloc.allocate(pinned).addresses == ("fd48:1:2:ffff:ffff:ffff:ffff:ffff",)
    assert alloc.allocate(v6("d/next")).addresses == ("fd48:1:2::1",)
    alloc.release("d/pin")
    assert alloc.usage()["p"].used[6] == 1


def test_a_released_address_of_a_64_is_reused_lowest_first() -> None:
    alloc = ipam.Allocator(parse([pool("p", "fd00::/64")]))
    for i in range(5):
        alloc.allocate(v6(f"d/s{i}"))
    alloc.release("d/s1")
    assert alloc.allocate(v6("d/new")).addresses == ("fd00::2",)


def test_status_counts_are_capped_at_the_largest_exact_json_integer() -> None:
    alloc = ipam.Allocator(parse([pool("p", "fd00::/64", "10.0.0.0/24")]))
    alloc.allocate(v6("d/s"))
    counts = alloc.usage()["p"].status_counts()
    assert counts == {
        "assignedIPv4": 0,
        "availableIPv4": 256,
        "assignedIPv6": 1,
        "availableIPv6": ipam.STATUS_COUNT_MAX,
    }
    assert ipam.STATUS_COUNT_MAX == 2**53 - 1
    assert float(alloc.usage()["p"].size[6]) == 2.0**64, "what a Prometheus gauge (a float) reports"


@st.composite
def small_pools(draw: st.DrawFn) -> tuple[list[str], bool]:
    entries = []
    base = 0
    for _ in range(draw(st.integers(1, 3))):
        base += draw(st.integers(0, 300))
        length = draw(st.integers(1, 300))
        if draw(st.booleans()):
            first = 0x0A000000 + base
            entries.append(f"{_v4(first)}-{_v4(first + length - 1)}")
        else:
            first = (0xFD00 << 112) + (draw(st.integers(0, 3)) << 64) + base - 150
            entries.append(f"{_v6(first)}-{_v6(first + length - 1)}")
        base += length
    return entries, draw(st.booleans())


def _v4(value: int) -> str:
    return ".".join(str((value >> s) & 0xFF) for s in (24, 16, 8, 0))


def _v6(value: int) -> str:
    return str(ipaddress.IPv6Address(value))


@settings(max_examples=40, deadline=None)
@given(small_pools())
def test_the_counted_size_is_exactly_what_allocation_hands_out(spec: tuple[list[str], bool]) -> None:
    entries, avoid = spec
    alloc = ipam.Allocator(parse([pool("p", *entries, avoidBuggyIPs=avoid)]))
    sizes = alloc.usage()["p"].size
    for family in (4, 6):
        given_out = 0
        while True:
            try:
                alloc.allocate(
                    ServiceRequest(namespace="d", name=f"f{family}-{given_out}", families=(family,))
                )
            except AllocationError as exc:
                assert exc.reason in ("PoolExhausted", "NoPool")
                break
            given_out += 1
        assert given_out == sizes[family]
    assert alloc.usage()["p"].used == sizes


def test_plan_shows_ipv6_pools_of_any_size(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--stack", "ipv6-large", "--stacks-dir", str(STACKS), "--strict"]) == 0
    out = capsys.readouterr().out
    assert f"1/{2**64 - 1}" in out and f"2/{2**80 - 2**16}" in out
    assert main(["plan", "--stack", "ipv6-large", "--stacks-dir", str(STACKS), "--format", "json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    sizes = {p["name"]: p["size"]["IPv6"] for p in plan["pools"]}
    assert sizes == {"v4": 0, "v6-48": 2**80 - 2**16, "v6-64": 2**64 - 1}
    got = {s["service"]: s["addresses"] for s in plan["services"]}
    assert got == {
        "default/api": ["fd48:1:2::1"],
        "default/pinned": ["fd48:1:2:3::10"],
        "default/web": ["fd64::1", "10.64.0.1"],
    }


def test_metrics_report_huge_pools_as_floats() -> None:
    """Prometheus gauges are floats: exact below 2**53, rounded above (a /64 reads 1.8446744073709552e+19)."""
    from prometheus_client import generate_latest

    from ironlb.agent.metrics import ControllerMetrics

    alloc = ipam.Allocator(parse([pool("p", "fd00::/64", "fd48:1:2::/48")]))
    alloc.allocate(v6("d/s"))
    metrics = ControllerMetrics()
    metrics.observe_usage(alloc.usage())
    text = generate_latest(metrics.registry).decode()
    assert f'ironlb_pool_addresses{{family="ipv6",pool="p"}} {float(2**64 - 1 + 2**80 - 2**16)!r}' in text
    assert 'ironlb_pool_addresses_used{family="ipv6",pool="p"} 1.0' in text
