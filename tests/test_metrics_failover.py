"""The failover histogram on a real takeover: the dev stack deployed in the cluster-mode lab.

Once the install has converged (every address announced and reached), the speaker serving an
IPv4 layer-2 address is SIGKILLed (``lab.cluster.scenario.kill_agent``: a crash, no LEAVE) and
the client waits for another node to answer.  The new owner's ``/metrics`` must then show the
takeover: ``ironlb_failovers_total`` and ``ironlb_failover_duration_seconds`` grown, with a
duration that is positive and no longer than the outage the client saw (kill -> an answer from
the new owner, which also holds the detection the histogram does not), plus a margin for this
loaded machine.  Its ``ironlb_announcement_duration_seconds`` grew by at least as much: a
takeover is also a first announcement.  The figures are printed.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from lab.cluster import scenario
from lab.cluster.deploy import Cluster, deployed

pytestmark = [pytest.mark.lab, pytest.mark.timeout(600)]

METRICS_PORT = 7948
MARGIN = 1.0  # seconds: scrapes, scheduling on a loaded 2-core machine


def figures(cluster: Cluster, node: str) -> dict[str, float]:
    def fetch() -> str:
        url = f"http://{cluster.the_lab.addr(node)}:{METRICS_PORT}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:
            return str(resp.read().decode())

    wanted = {
        ("ironlb_failovers_total", "layer2"): "failovers",
        ("ironlb_failover_duration_seconds_count", "layer2"): "count",
        ("ironlb_failover_duration_seconds_sum", "layer2"): "sum",
        ("ironlb_announcement_duration_seconds_count", "layer2"): "announced",
    }
    out = dict.fromkeys(wanted.values(), 0.0)
    for family in text_string_to_metric_families(cluster.the_lab.call(node, fetch)):
        for s in family.samples:
            key = wanted.get((s.name, s.labels.get("mode", "")))
            if key:
                out[key] = float(s.value)
    return out


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with deployed("dev") as c:
        yield c


def test_the_new_owner_reports_the_takeover_and_how_long_it_took(cluster: Cluster) -> None:
    converged = scenario.converge(cluster)
    before = {n: figures(cluster, n) for n in cluster.the_lab.nodes}
    old, new, outage = scenario.kill_agent(cluster, converged.addresses)
    after = figures(cluster, new)
    delta = {k: after[k] - before[new][k] for k in after}
    print(f"killed the speaker on {old}; {new} answered after {outage:.3f} s (client view); metrics: {delta}")
    assert delta["failovers"] >= 1 and delta["count"] == delta["failovers"], delta
    mean = delta["sum"] / delta["count"]
    print(f"failover duration on {new}: mean {mean * 1000:.0f} ms over {delta['count']:.0f} address(es)")
    assert 0 < mean <= outage + MARGIN, f"{mean:.3f} s measured by {new}, {outage:.3f} s seen by the client"
    assert delta["announced"] >= delta["count"], "a takeover is also a first announcement"
