"""Every metric both programs register, checked against Prometheus' naming conventions and our
label policy (agent/metric_catalog.py), on registries populated the way a running agent fills
them: every label that can appear appears.

The linter (:func:`lint`) checks:

- names: snake_case, ``ironlb_`` (ours) or ``process_``/``python_`` (prometheus-client's);
- types: a counter's samples end in ``_total`` and nothing else does; no gauge is named like a
  counter or a histogram part; a histogram measures a base unit (``_seconds``, ``_bytes``);
  ``_info`` gauges read 1;
- units: base units only (no ``_ms``, ``_milliseconds``, ``_minutes``, ``_kb``, ``_percent``...),
  and a name about time (duration, latency, uptime, age, delay, isolated) ends in ``_seconds``;
- labels: snake_case, not reserved; on our families only the labels agent.metric_catalog.LABELS
  allows, closed sets checked value by value, configuration names shaped like object names,
  and never a value that is an IP address, a network or a MAC -- the values that would grow
  without bound or leak one tenant's Services into every scrape;
- the registry and the catalog agree: every family registered is listed with its type and
  labels, every listed family of the role is registered.

``test_the_linter_catches_each_kind_of_mistake`` shows each rule fails on a bad metric.
"""

from __future__ import annotations

import ipaddress
import re
import time
from collections.abc import Iterable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import Metric

from ironlb.agent.announcements import BGPRoute, L2Announcement, Ownership, Plan
from ironlb.agent.metric_catalog import BY_NAME, CATALOG, CONTROLLER, LABELS, SPEAKER, for_role
from ironlb.agent.metrics import ControllerMetrics, Timing
from ironlb.agent.observability import StatusBoard
from ironlb.ipam import Rejected
from ironlb.ipam.allocator import PoolUsage
from tests.test_observability import FakeShell

SNAKE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
NOT_BASE_UNITS = (
    *("_ms", "_milliseconds", "_microseconds", "_minutes", "_hours", "_days"),
    *("_kb", "_mb", "_kilobytes", "_megabytes", "_percent"),
)
TIME_WORDS = ("duration", "latency", "uptime", "_age", "delay", "isolated", "elapsed")
UNITS = ("_seconds", "_bytes")
CONFIG_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
MAC = re.compile(r"^([0-9a-f]{2}[:-]){5}[0-9a-f]{2}$", re.IGNORECASE)


def _is_address(value: str) -> bool:
    for parse in (ipaddress.ip_address, ipaddress.ip_network):
        try:
            parse(value)
            return True
        except ValueError:
            pass
    return bool(MAC.match(value))


def lint(families: Iterable[Metric], role: str | None = None) -> list[str]:
    """Every convention a family breaks (see the module docstring); ``role``: check the catalog too."""
    problems: list[str] = []
    seen: set[str] = set()
    for f in families:
        name, kind = f.name, f.type
        exposed = f"{name}_total" if kind == "counter" else name
        seen.add(exposed)

        def bad(text: str, name: str = exposed) -> None:
            problems.append(f"{name}: {text}")

        if not SNAKE.match(name):
            bad("not snake_case")
        if not name.startswith(("ironlb_", "process_", "python_")):
            bad("not in the ironlb_ namespace")
        if kind == "counter":
            if any(not (s.name.endswith("_total") or s.name.endswith("_created")) for s in f.samples):
                bad("a counter's samples must end in _total")
        elif kind == "gauge" or kind == "info":
            if re.search(r"_(total|count|sum|bucket|created)$", name):
                bad(f"a {kind} must not be named like a counter or a histogram part")
        elif kind == "histogram":
            if not name.endswith(UNITS):
                bad(f"a histogram measures a unit: end in one of {UNITS}")
        else:
            bad(f"type {kind!r}: use counter, gauge or histogram")
        base = name.removesuffix("_total")
        if any(base.endswith(u) or f"{u}_" in base for u in NOT_BASE_UNITS):
            bad("use base units (seconds, bytes) and say them as a suffix")
        if any(w in base for w in TIME_WORDS) and not base.endswith("_seconds"):
            bad("a time must be in seconds, with the _seconds suffix")
        if name.endswith("_info") and any(s.value != 1 for s in f.samples):
            bad("an _info gauge reads 1")
        labels = {k for s in f.samples for k in s.labels} - ({"le"} if kind == "histogram" else set())
        for label in sorted(labels):
            if not SNAKE.match(label) or label.startswith("__") or label in ("le", "quantile"):
                bad(f"label {label!r}: snake_case, not reserved")
        if not name.startswith("ironlb_"):
            continue
        for s in f.samples:
            for label, v in s.labels.items():
                rule = LABELS.get(label)
                if label == "le" and kind == "histogram":
                    continue
                if rule is None:
                    bad(f"label {label!r} is not in agent.metric_catalog.LABELS (unbounded?)")
                elif rule.values is not None and v not in rule.values:
                    bad(f"{label}={v!r}: not one of {sorted(rule.values)}")
                elif rule.bound == "config" and not CONFIG_NAME.match(v):
                    bad(f"{label}={v!r}: not an object name")
                elif _is_address(v):
                    bad(f"{label}={v!r}: an address in a label (unbounded, and it leaks tenants)")
        if role is not None:
            spec = BY_NAME.get(exposed)
            if spec is None or role not in spec.roles:
                bad(f"registered but not in agent/metric_catalog.py for the {role}")
            elif spec.kind != kind:
                bad(f"registered as a {kind}, listed as a {spec.kind}")
            elif not labels <= set(spec.labels):
                bad(f"labels {sorted(labels)} but the catalog lists {list(spec.labels)}")
    if role is not None:
        problems += [
            f"{s.name}: listed for the {role}, not registered" for s in for_role(role) if s.name not in seen
        ]
    return problems


# --- registries filled as at run time ---------------------------------------------------------


class Call:
    def __init__(self, verb: str, group: str, resource: str) -> None:
        self.verb, self.group, self.resource = verb, group, resource


def speaker_registry() -> CollectorRegistry:
    board = StatusBoard("n1")
    l2 = {
        "addresses": {"10.0.0.5": {"state": "announcing", "since": time.time()}},
        "states": {"announcing": 1, "conflict": 1, "probing": 2},
        "conflicts": ["10.0.0.9"],
        "counters": {"claims": 3, "arp_received": 100, "nd_received": 7, "garp_sent": 12},
    }
    bgp = {
        "speaker": {"state": "running", "starts": 1, "reconfigures": 2, "reconfigure_errors": 0},
        "sessions": {"tor-a": {"state": "established", "prefixes_sent": 3, "bfd": "up"}},
        "session_restarts": 1,
    }
    membership = {
        "isolated_s": 1.5,
        "peers": {
            "n2": {"state": "alive", "lane": "fast", "key": "current"},
            "n3": {"state": "suspect", "lane": "slow", "key": "next"},
            "n4": {"state": "unknown", "lane": "slow", "key": None},
        },
        "counters": {"received": 10, "bad_mac": 2, "loop_stalls": 1},
    }
    board.shells = {"L2Shell": FakeShell(l2), "BGPShell": FakeShell(bgp)}
    board.membership = FakeShell(membership)
    first = Plan(node="n1", ownership=(Ownership("10.0.0.5", "layer2", ("n2",), "ranked", ("d/web",)),))
    t0 = time.time()
    board.record_plan(first, Timing(t0, t0))
    taken = Plan(
        node="n1",
        l2=(L2Announcement("10.0.0.5", ("d/web",)),),
        bgp=(BGPRoute("10.100.0.1/32", ("tor-a",)),),
        ownership=(Ownership("10.0.0.5", "layer2", ("n1",), "ranked", ("d/web",)),),
    )
    board.record_plan(taken, Timing(t0, t0, 0.002))
    board.record_rejected({"red/evil": (Rejected("10.78.0.16", "OtherTenant", "is blue's"),)})
    board.metrics.api_requests.sources.append(
        lambda: {Call("watch", "", "services"): 3, Call("patch", "ironlb.io", "nodestates"): 1}
    )
    board.metrics.api_errors.labels("nodestate").inc()
    assert (
        board.metrics.registry.get_sample_value("ironlb_failover_duration_seconds_count", {"mode": "layer2"})
        == 1
    )
    return board.metrics.registry


def controller_registry() -> CollectorRegistry:
    m = ControllerMetrics()
    m.observe_leadership(True)
    m.observe_usage({"lan": PoolUsage("lan", {4: 1, 6: 0}, {4: 40, 6: 2**64}, None)})
    m.observe_pending(["PoolExhausted", "NoTenant"])
    m.allocations.labels("allocated", "").inc()
    m.allocations.labels("failed", "QuotaExceeded").inc()
    m.records_rewritten.labels("annotations").inc()
    m.rejections.labels("NotOurs").inc()
    m.api_errors.labels("reconcile").inc()
    m.reconcile_seconds.observe(0.02)
    m.api_requests.sources.append(lambda: {Call("list", "", "services"): 1})
    return m.registry


@pytest.mark.parametrize(("role", "build"), [(SPEAKER, speaker_registry), (CONTROLLER, controller_registry)])
def test_every_registered_metric_follows_the_conventions_and_is_in_the_catalog(role: str, build: Any) -> None:
    registry = build()
    families = list(registry.collect())
    assert len(families) > 20
    assert lint(families, role) == []
    unlabelled_families_with_samples = [
        f.name for f in families if f.name.startswith("ironlb_") and not f.samples
    ]
    assert unlabelled_families_with_samples == [], "the populated registry exercises every family's labels"


def test_the_catalog_itself_is_consistent() -> None:
    names = [s.name for s in CATALOG]
    assert len(names) == len(set(names))
    for s in CATALOG:
        assert s.kind in ("counter", "gauge", "histogram") and s.help and s.roles
        assert set(s.labels) <= set(LABELS), s.name
        assert s.name.endswith("_total") == (s.kind == "counter"), s.name


def test_the_linter_catches_each_kind_of_mistake() -> None:
    r = CollectorRegistry()
    Gauge("ironlb_pool_addresses_total", "a gauge named like a counter", registry=r)
    Histogram("ironlb_probe_latency", "no unit", registry=r).observe(1)
    Gauge("ironlb_announce_latency_ms", "not a base unit", registry=r)
    Counter("ironlb_claims_total", "an address in a label", ["ip"], registry=r).labels("10.0.0.5").inc()
    Counter("ironlb_hits_total", "a Service name", ["reason"], registry=r).labels("10.0.0.0/24").inc()
    Gauge("ironlb_session_up", "a peer that is no name", ["peer"], registry=r).labels("Tor A!").set(1)
    Gauge("ironlbSessions", "camelCase", registry=r)
    Gauge("ironlb_mode_up", "a value outside the closed set", ["mode"], registry=r).labels("layer3").set(1)
    found = "\n".join(lint(r.collect(), SPEAKER))
    for expected in (
        "ironlb_pool_addresses_total: a gauge must not be named like a counter",
        "ironlb_probe_latency: a histogram measures a unit",
        "ironlb_announce_latency_ms: use base units",
        "label 'ip' is not in agent.metric_catalog.LABELS",
        "reason='10.0.0.0/24': an address in a label",
        "peer='Tor A!': not an object name",
        "ironlbSessions: not snake_case",
        "mode='layer3': not one of",
        "ironlb_pool_addresses_total: registered but not in agent/metric_catalog.py",
        "ironlb_announcements: listed for the speaker, not registered",
    ):
        assert expected in found, f"{expected!r} not reported:\n{found}"
