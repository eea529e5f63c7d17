"""Every Prometheus metric IronLB exports: name, type, labels, meaning, and the label policy.

This table is the one definition: :mod:`ironlb.agent.metrics` builds each metric from its entry
(nothing is registered that is not listed here), ``docs/metrics.md`` is generated from it
(:func:`markdown`; tests/test_metrics_docs.py fails when the file differs), and
tests/test_metrics_conventions.py checks every registered family against it and against
the conventions below.

Conventions (https://prometheus.io/docs/practices/naming/):

- every name starts with ``ironlb_``, is snake_case, and says its unit in base units as a
  suffix (``_seconds``, ``_bytes``); a counter ends in ``_total``, nothing else does;
  a histogram measures a unit (``_seconds``);
- a gauge that only ever reads 1 and carries facts as labels ends in ``_info``;
- ``sum()`` over any label of a metric means something (no ``state="used|size"`` mix);
- labels follow :data:`LABELS`: each value comes from a closed set written in the code,
  or is the name of an object the administrator configured (an IPPool, a BGPPeer).  A
  label never carries an address, a Service, a namespace, a node, a MAC or anything else a
  tenant or the network chooses: such series would grow without bound, and would let a
  tenant's Service names into every scrape.  Per-address and per-Service facts are in
  ``/status`` and on the Services.

The process and Python runtime families (``process_*``, ``python_*``) come from
prometheus-client's standard collectors and follow the same conventions.
"""

from __future__ import annotations

from dataclasses import dataclass

SPEAKER, CONTROLLER = "speaker", "controller"
BOTH = (SPEAKER, CONTROLLER)

#: Histogram buckets for announcement and failover, in seconds: our figures are sub-second
#: (probe about 0.07 s, a takeover about 0.1-0.3 s), so the resolution is there; the tail
#: up to 30 s still tells a slow probe round (a handover grace) from a stuck one.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0, 30.0)
#: Buckets for work on the event loop (planning, a controller pass): 1 ms to 30 s.
WORK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass(frozen=True)
class Label:
    """What bounds a label's values: a closed set in the code, or the administrator's config."""

    bound: str  # "closed" or "config"
    meaning: str
    values: frozenset[str] | None = None  # the closed set, when the code fixes it here


def _closed(meaning: str, *values: str) -> Label:
    return Label("closed", meaning, frozenset(values) if values else None)


#: Every label name an ``ironlb_*`` metric may carry (anything else fails the conventions test).
LABELS: dict[str, Label] = {
    "mode": _closed("announcement mode", "layer2", "bgp"),
    "family": _closed("address family", "ipv4", "ipv6"),
    "protocol": _closed("layer-2 protocol", "arp", "ndp"),
    "lane": _closed("membership lane", "fast", "slow"),
    "key": _closed("membership key a peer signs with", "current", "next", "unknown", "unheard"),
    "kind": _closed("what stalled", "table", "loop"),
    "state": _closed(
        "layer-2 address state, membership peer state",
        *("new", "probing", "announcing", "conflict", "no-interface", "withdrawn"),
        *("alive", "suspect", "dead", "left", "unknown"),
    ),
    "reason": _closed(
        "a reason word from the code (IPAM refusals, dropped datagrams), CamelCase or snake_case"
    ),
    "result": _closed("allocation outcome", "allocated", "failed"),
    "operation": _closed("what the failed API call was for", "reconcile", "nodestate"),
    "field": _closed("part of a Service record", "annotations", "status"),
    "verb": _closed("Kubernetes API verb"),
    "resource": _closed("Kubernetes API resource (group/plural)"),
    "role": _closed("which IronLB program", SPEAKER, CONTROLLER),
    "version": _closed("IronLB's version"),
    "python": _closed("the Python version running it"),
    "pool": Label("config", "an IPPool's name"),
    "peer": Label("config", "a BGPPeer's name"),
}


@dataclass(frozen=True)
class Spec:
    """One metric family."""

    name: str  # as exposed: counters end in _total
    kind: str  # counter | gauge | histogram
    help: str
    labels: tuple[str, ...] = ()
    roles: tuple[str, ...] = (SPEAKER,)


def _c(name: str, text: str, *labels: str, roles: tuple[str, ...] = (SPEAKER,)) -> Spec:
    return Spec(name, "counter", text, labels, roles)


def _g(name: str, text: str, *labels: str, roles: tuple[str, ...] = (SPEAKER,)) -> Spec:
    return Spec(name, "gauge", text, labels, roles)


def _h(name: str, text: str, *labels: str, roles: tuple[str, ...] = (SPEAKER,)) -> Spec:
    return Spec(name, "histogram", text, labels, roles)


CATALOG: tuple[Spec, ...] = (
    # --- both roles -----------------------------------------------------------------------
    _g(
        "ironlb_build_info",
        "Always 1: the version and Python of this program",
        "version",
        "python",
        "role",
        roles=BOTH,
    ),
    _g("ironlb_healthy", "1 while liveness (/healthz) passes, else 0", roles=BOTH),
    _c(
        "ironlb_kube_api_requests_total",
        "Kubernetes API requests by verb and resource",
        "verb",
        "resource",
        roles=BOTH,
    ),
    _c(
        "ironlb_kube_api_errors_total",
        "Kubernetes API calls that failed, by what they were for",
        "operation",
        roles=BOTH,
    ),
    # --- speaker: the plan ------------------------------------------------------------------
    _g("ironlb_announcements", "Addresses this node announces now", "mode"),
    _c(
        "ironlb_failovers_total",
        "Addresses this node took over from another node (sum over speakers: the cluster's failovers)",
        "mode",
    ),
    _c("ironlb_replans_total", "Plans computed and applied"),
    _h("ironlb_plan_duration_seconds", "Time to compute one plan from the cluster view"),
    _h(
        "ironlb_announcement_duration_seconds",
        "From a plan giving this node an address to announcing it: layer2, the first gratuitous "
        "ARP/NA (probe included); bgp, the route handed to the BGP speaker",
        "mode",
    ),
    _h(
        "ironlb_failover_duration_seconds",
        "From this node learning of the change that makes it an address's new owner (a peer's "
        "death or leave, a Node change) to its first gratuitous ARP/NA: replan, probe, announce",
        "mode",
    ),
    _g(
        "ironlb_rejected_addresses",
        "Addresses in Services' status the trust check refuses now (never announced)",
        "reason",
    ),
    _c(
        "ironlb_address_rejections_total",
        "Recorded addresses refused by the trust check, counted when first seen, by reason",
        "reason",
        roles=BOTH,
    ),
    # --- speaker: layer 2 -------------------------------------------------------------------
    _g("ironlb_address_conflicts", "Addresses held back: in use by another host on the LAN"),
    _g(
        "ironlb_l2_addresses",
        "This node's layer-2 addresses by state (probing, announcing, conflict, no-interface)",
        "state",
    ),
    _c("ironlb_l2_claims_total", "Packets from another host claiming one of our addresses"),
    _c("ironlb_l2_defences_total", "Announcements sent to defend an address against a claim (RFC 5227)"),
    _c("ironlb_l2_conflicts_found_total", "Times an address was refused: another host answered our probes"),
    _c("ironlb_l2_bad_hop_limit_total", "NDP packets dropped: hop limit not 255 (RFC 4861)"),
    _c("ironlb_l2_malformed_packets_total", "ARP/NDP packets dropped as malformed"),
    _c("ironlb_l2_packets_received_total", "ARP/NDP packets read", "protocol"),
    _c("ironlb_l2_replies_sent_total", "ARP replies / solicited NAs sent", "protocol"),
    _c(
        "ironlb_l2_gratuitous_sent_total",
        "Gratuitous ARP / unsolicited NA packets sent (takeover schedule, refresh)",
        "protocol",
    ),
    _c("ironlb_l2_probes_sent_total", "Conflict probes sent (RFC 5227 ARP probes, DAD-style NS)"),
    _c(
        "ironlb_l2_foreign_probes_total",
        "Probes by another host for one of our addresses (answered, to make it back off)",
    ),
    _c("ironlb_l2_send_errors_total", "ARP/NDP packets the kernel refused to send"),
    _c("ironlb_l2_receive_errors_total", "Errors reading the ARP/NDP sockets"),
    # --- speaker: BGP ------------------------------------------------------------------------
    _g("ironlb_bgp_session_up", "1 while the session to this BGPPeer is Established, else 0", "peer"),
    _g(
        "ironlb_bgp_session_prefixes",
        "Prefixes this node exports to the BGPPeer (0 while the session is down)",
        "peer",
    ),
    _g("ironlb_bgp_bfd_up", "1 while BFD to the BGPPeer is up (sessions with a BFD profile only)", "peer"),
    _g("ironlb_bgp_speaker_up", "1 while the BGP speaker (BIRD) runs, 0 when stopped or failed"),
    _c(
        "ironlb_bgp_speaker_starts_total",
        "Starts of the BGP speaker process (restarts after a crash included)",
    ),
    _c("ironlb_bgp_reconfigures_total", "Configuration reloads of the BGP speaker"),
    _c("ironlb_bgp_reconfigure_errors_total", "Configuration reloads the BGP speaker refused"),
    _c(
        "ironlb_bgp_session_restarts_total",
        "Sessions restarted because their BGPPeer settings or password changed",
    ),
    # --- speaker: membership -----------------------------------------------------------------
    _g(
        "ironlb_membership_peers",
        "Other speakers by state as this node sees them (alive, suspect, dead, left, unknown)",
        "state",
    ),
    _g(
        "ironlb_membership_lanes",
        "Other speakers by heartbeat lane: fast (they watch this node) or slow",
        "lane",
    ),
    _g(
        "ironlb_membership_peers_by_key",
        "Other speakers by the key they sign with (never the key itself)",
        "key",
    ),
    _g(
        "ironlb_membership_isolated_seconds",
        "How long this node has seemed cut off from its peers (0: it is not)",
    ),
    _c("ironlb_membership_datagrams_received_total", "Membership datagrams read"),
    _c("ironlb_membership_datagrams_sent_total", "Membership datagrams sent"),
    _c("ironlb_membership_datagrams_dropped_total", "Membership datagrams dropped, by reason", "reason"),
    _c("ironlb_membership_send_errors_total", "Membership datagrams the kernel refused to send"),
    _c("ironlb_membership_receive_errors_total", "Errors reading the membership sockets"),
    _c("ironlb_membership_rate_limited_total", "Datagrams not sent: the per-node packet budget was spent"),
    _c("ironlb_membership_obituaries_sent_total", "Death votes this node sent about a silent peer"),
    _c("ironlb_membership_obituaries_received_total", "Death votes received from other speakers"),
    _c("ironlb_membership_leaves_received_total", "Graceful LEAVE messages received"),
    _c("ironlb_membership_refutations_total", "Times this node refuted a report of its own death"),
    _c(
        "ironlb_membership_isolations_total",
        "Times this node found itself cut off (it then takes nothing over)",
    ),
    _c(
        "ironlb_membership_stalls_total",
        "Times membership held back verdicts: table (no look for 2 periods), loop (event loop stalled)",
        "kind",
    ),
    # --- controller ------------------------------------------------------------------------------
    _g("ironlb_controller_leader", "1 while this controller replica holds the Lease", roles=(CONTROLLER,)),
    _c("ironlb_controller_terms_total", "Times this replica became the leader", roles=(CONTROLLER,)),
    _c(
        "ironlb_allocations_total",
        "Allocation attempts by result and reason",
        "result",
        "reason",
        roles=(CONTROLLER,),
    ),
    _g(
        "ironlb_services_pending",
        "LoadBalancer Services whose allocation fails now, by reason (the leader only)",
        "reason",
        roles=(CONTROLLER,),
    ),
    _g(
        "ironlb_pool_addresses",
        "Addresses in each pool, per family (the leader only)",
        "pool",
        "family",
        roles=(CONTROLLER,),
    ),
    _g(
        "ironlb_pool_addresses_used",
        "Addresses in use in each pool, per family (the leader only)",
        "pool",
        "family",
        roles=(CONTROLLER,),
    ),
    _c(
        "ironlb_records_rewritten_total",
        "Service records (annotations, status) the controller found it had not written and rewrote",
        "field",
        roles=(CONTROLLER,),
    ),
    _h(
        "ironlb_reconcile_duration_seconds",
        "Time of one full controller pass over every Service",
        roles=(CONTROLLER,),
    ),
)

BY_NAME: dict[str, Spec] = {s.name: s for s in CATALOG}


def spec(name: str) -> Spec:
    return BY_NAME[name]


def for_role(role: str) -> list[Spec]:
    return [s for s in CATALOG if role in s.roles]


def markdown() -> str:
    """``docs/metrics.md``: every metric, then the label policy (regenerate, never hand-edit)."""
    out = [
        "# Metrics",
        "",
        "<!-- Generated from agent/metric_catalog.py by tests/test_metrics_docs.py: do not edit by hand.",
        "     Regenerate: IRONLB_UPDATE_GOLDEN=1 .venv/bin/pytest -q tests/test_metrics_docs.py -->",
        "",
        "Both programs serve Prometheus text on `/metrics` at their `metrics` port (7948 by default,",
        "the pod IP: the node's address for the speaker). With the NodeAgent's `service_monitor`",
        "on, a ServiceMonitor scrapes both (jobs `ironlb-speaker-metrics`, `ironlb-controller-metrics`).",
        "Besides the families below, each exports prometheus-client's `process_*` (CPU seconds,",
        "resident memory bytes, open fds, start time) and `python_*` (GC, `python_info`) families.",
        "",
    ]
    for role, title in ((SPEAKER, "Speaker (`ironlb-agent`, every node)"), (CONTROLLER, "Controller")):
        out += [f"## {title}", "", "| name | type | labels | meaning |", "| --- | --- | --- | --- |"]
        for s in for_role(role):
            labels = ", ".join(f"`{label}`" for label in s.labels) or "-"
            out.append(f"| `{s.name}` | {s.kind} | {labels} | {s.help} |")
        out.append("")
    buckets = ", ".join(f"{b:g}" for b in LATENCY_BUCKETS)
    out += [
        "Histograms: `ironlb_announcement_duration_seconds` and `ironlb_failover_duration_seconds`",
        f"use buckets {buckets} s; the others 1 ms to 30 s.",
        "",
        "## Labels",
        "",
        "Every value comes from a closed set written in the code, or is the name of an object the",
        "administrator configured. A label never carries an address, a Service, a namespace, a node",
        "or a MAC: per-address and per-Service facts are in `ironlb status` and on the Services.",
        "",
        "| label | bound | values |",
        "| --- | --- | --- |",
    ]
    for name, label in sorted(LABELS.items()):
        values = ", ".join(f"`{v}`" for v in sorted(label.values)) if label.values else label.meaning
        bound = "closed set" if label.bound == "closed" else "configuration"
        out.append(f"| `{name}` | {bound} | {values} |")
    return "\n".join(out) + "\n"
