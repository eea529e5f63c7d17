"""The speaker's layer-2, BGP and membership families, read from their ``status()`` snapshots.

The status board takes every shell's ``status()`` and the membership's on each tick (on the
event loop); :func:`families` turns the latest snapshots into Prometheus families when
Prometheus scrapes (in an HTTP thread, reading immutable snapshots only).  So ``/metrics``
and ``/status`` never disagree, and a shell needs no metrics code of its own.

Every family is emitted on every scrape, zeros included (a closed label set in full), so
``rate()`` and alerts work from the first scrape and a static-membership or BGP-less node
exports the same names.  The tables below map a family's label values to the status keys.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ironlb.agent.metric_catalog import spec

#: Layer-2 counter families: label values -> the shell's counter key (agent/l2/shell.py, responders.py).
L2_COUNTERS: dict[str, dict[tuple[str, ...], str]] = {
    "ironlb_l2_claims_total": {(): "claims"},
    "ironlb_l2_defences_total": {(): "defences"},
    "ironlb_l2_conflicts_found_total": {(): "conflicts"},
    "ironlb_l2_bad_hop_limit_total": {(): "bad_hop_limit"},
    "ironlb_l2_malformed_packets_total": {(): "malformed"},
    "ironlb_l2_packets_received_total": {("arp",): "arp_received", ("ndp",): "nd_received"},
    "ironlb_l2_replies_sent_total": {("arp",): "arp_replies", ("ndp",): "na_sent"},
    "ironlb_l2_gratuitous_sent_total": {("arp",): "garp_sent", ("ndp",): "unsolicited_na_sent"},
    "ironlb_l2_probes_sent_total": {(): "probes_sent"},
    "ironlb_l2_foreign_probes_total": {(): "foreign_probes"},
    "ironlb_l2_send_errors_total": {(): "send_errors"},
    "ironlb_l2_receive_errors_total": {(): "recv_errors"},
}
#: Layer-2 address states always exported (others appear when present).
L2_STATES = ("probing", "announcing", "conflict", "no-interface")

#: BGP counter families: (part of the status: "speaker" or the shell itself, counter key).
BGP_COUNTERS: dict[str, tuple[str | None, str]] = {
    "ironlb_bgp_speaker_starts_total": ("speaker", "starts"),
    "ironlb_bgp_reconfigures_total": ("speaker", "reconfigures"),
    "ironlb_bgp_reconfigure_errors_total": ("speaker", "reconfigure_errors"),
    "ironlb_bgp_session_restarts_total": (None, "session_restarts"),
}

#: Why a membership datagram is dropped (agent/membership/core.py and node.py counters).
DROPPED = (
    "unknown_source", "unknown_key", "bad_mac", "malformed", "unknown_sender", "stale_incarnation",
    "replayed", "unconfirmed",
)  # fmt: skip
MEMBERSHIP_COUNTERS: dict[str, dict[tuple[str, ...], str]] = {
    "ironlb_membership_datagrams_received_total": {(): "received"},
    "ironlb_membership_datagrams_sent_total": {(): "sent"},
    "ironlb_membership_datagrams_dropped_total": {(r,): r for r in DROPPED},
    "ironlb_membership_send_errors_total": {(): "send_errors"},
    "ironlb_membership_receive_errors_total": {(): "receive_errors"},
    "ironlb_membership_rate_limited_total": {(): "rate_limited"},
    "ironlb_membership_obituaries_sent_total": {(): "obituaries_sent"},
    "ironlb_membership_obituaries_received_total": {(): "obituaries_received"},
    "ironlb_membership_leaves_received_total": {(): "leaves_received"},
    "ironlb_membership_refutations_total": {(): "refutations"},
    "ironlb_membership_isolations_total": {(): "isolations"},
    "ironlb_membership_stalls_total": {("table",): "stalls", ("loop",): "loop_stalls"},
}
PEER_STATES = ("alive", "suspect", "dead", "left", "unknown")
LANES = ("fast", "slow")
#: A peer's key as membership reports it (None: nothing heard from it yet -> "unheard").
KEYS = ("current", "next", "unknown", "unheard")


def family(name: str) -> CounterMetricFamily | GaugeMetricFamily:
    """An empty family for the catalog entry ``name`` (counter or gauge)."""
    s = spec(name)
    cls = CounterMetricFamily if s.kind == "counter" else GaugeMetricFamily
    return cls(s.name, s.help, labels=list(s.labels))


def families(statuses: Mapping[str, Mapping[str, Any]], membership: Mapping[str, Any]) -> Iterable[Metric]:
    """Every layer-2, BGP and membership family from the latest snapshots."""
    l2 = [
        s for s in statuses.values() if any(isinstance(s.get(k), Mapping) for k in ("addresses", "counters"))
    ]
    bgp = [s for s in statuses.values() if isinstance(s.get("sessions"), Mapping)]
    yield from _l2(l2)
    yield from _bgp(bgp)
    yield from _membership(membership)


def _count(rows: Iterable[Mapping[str, Any]], key: str) -> int:
    return sum(v for r in rows if isinstance(v := r.get(key), int))


def _counters(
    table: Mapping[str, Mapping[tuple[str, ...], str]], rows: list[Mapping[str, Any]]
) -> Iterable[Metric]:
    for name, series in table.items():
        f = family(name)
        for labels, key in series.items():
            f.add_metric(list(labels), _count(rows, key))
        yield f


def _l2(statuses: list[Mapping[str, Any]]) -> Iterable[Metric]:
    counters = [c for s in statuses if isinstance(c := s.get("counters"), Mapping)]
    yield from _counters(L2_COUNTERS, counters)
    states: dict[str, int] = dict.fromkeys(L2_STATES, 0)
    for s in statuses:
        for state, n in (s.get("states") or {}).items():
            states[str(state)] = states.get(str(state), 0) + int(n)
    f = family("ironlb_l2_addresses")
    for state, n in sorted(states.items()):
        f.add_metric([state], n)
    yield f


def _bgp(statuses: list[Mapping[str, Any]]) -> Iterable[Metric]:
    up, prefixes, bfd = (
        family("ironlb_bgp_session_up"),
        family("ironlb_bgp_session_prefixes"),
        family("ironlb_bgp_bfd_up"),
    )
    running = 0
    for s in statuses:
        for name, row in sorted((s.get("sessions") or {}).items()):
            if not isinstance(row, Mapping):
                continue
            established = str(row.get("state", "")).lower() == "established"
            up.add_metric([str(name)], 1 if established else 0)
            sent = row.get("prefixes_sent")
            prefixes.add_metric([str(name)], sent if established and isinstance(sent, int) else 0)
            if "bfd" in row:
                bfd.add_metric([str(name)], 1 if row["bfd"] == "up" else 0)
        speaker = s.get("speaker")
        running += 1 if isinstance(speaker, Mapping) and speaker.get("state") == "running" else 0
    yield from (up, prefixes, bfd)
    f = family("ironlb_bgp_speaker_up")
    f.add_metric([], running)
    yield f
    for name, (part, key) in BGP_COUNTERS.items():
        rows = [p for s in statuses if isinstance(p := (s.get(part) if part else s), Mapping)]
        f = family(name)
        f.add_metric([], _count(rows, key))
        yield f


def _membership(status: Mapping[str, Any]) -> Iterable[Metric]:
    peers = [p for p in (status.get("peers") or {}).values() if isinstance(p, Mapping)]
    for name, values, key in (
        ("ironlb_membership_peers", PEER_STATES, "state"),
        ("ironlb_membership_lanes", LANES, "lane"),
        ("ironlb_membership_peers_by_key", KEYS, "key"),
    ):
        counts = dict.fromkeys(values, 0)
        for p in peers:
            value = str(p.get(key) or "unheard")
            counts[value] = counts.get(value, 0) + 1
        f = family(name)
        for value, n in counts.items():
            f.add_metric([value], n)
        yield f
    f = family("ironlb_membership_isolated_seconds")
    isolated = status.get("isolated_s")
    f.add_metric([], float(isolated) if isinstance(isolated, (int, float)) else 0.0)
    yield f
    counters = status.get("counters")
    yield from _counters(MEMBERSHIP_COUNTERS, [counters] if isinstance(counters, Mapping) else [])
