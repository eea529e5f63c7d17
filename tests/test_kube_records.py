"""``ironlb.agent.kube.records.compare``: what the controller rewrites on a Service, and what it reports.

Pure table tests. The race they pin: a controller pass takes its view first and reads each
Service from the cache later, so a status written in between is in the Service but in
neither the view's trusted reading nor its refusals. Such an address must still be
reported (``AddressRejected`` / ``NotAssigned``), while the controller's own earlier write
arriving in the same gap must not be.
"""

from __future__ import annotations

from typing import Any

import pytest

from ironlb.agent.kube.records import REJECTED, REWRITTEN, compare
from ironlb.agent.kube.writers import allocation_annotations
from ironlb.ipam import Rejected
from ironlb.model import ANN_ALLOCATED_IPS
from ironlb.service import AssignedIP, Assignment, ServiceRequest
from lab.manifests import service

REQUEST = ServiceRequest(namespace="team-a", name="web")
HELD = Assignment.for_request(REQUEST, (AssignedIP("10.0.0.5", "a"),))
OLD = Assignment.for_request(REQUEST, (AssignedIP("10.0.0.4", "a"),))


def doc(ingress: list[str], annotations: dict[str, str | None] | None = None) -> dict[str, Any]:
    """team-a/web recording ``ingress`` and the ``annotations`` that are not None."""
    ann = {k: v for k, v in (annotations or {}).items() if v is not None}
    return service("web", "team-a", *ingress, annotations=ann)


MINE = allocation_annotations(HELD)


@pytest.mark.parametrize(
    ("case", "service", "trusted", "rejected", "ours", "event", "reason"),
    [
        ("in sync: nothing to write or report", doc(["10.0.0.5"], MINE), HELD, (), (), None, ""),
        (
            "a new answer: rewritten, not reported",
            doc(["10.0.0.4"], allocation_annotations(OLD)),
            OLD,
            (),
            (),
            None,
            "",
        ),
        (
            "refused by the view's trust check",
            doc(["10.9.9.9"], MINE),
            None,
            (Rejected("10.9.9.9", "NoPool", "is in no pool"),),
            (),
            REJECTED,
            "NoPool",
        ),
        (
            "written after the view was taken: still reported",
            doc(["10.9.9.9"], MINE),
            HELD,
            (),
            (),
            REJECTED,
            "NotAssigned",
        ),
        (
            "our own write arriving after the view: not reported",
            doc(["10.0.0.4"], MINE),
            None,
            (),
            ("10.0.0.4",),
            None,
            "",
        ),
        (
            "forged annotations only",
            doc(["10.0.0.5"], {**MINE, ANN_ALLOCATED_IPS: "10.7.7.7"}),
            HELD,
            (),
            (),
            REWRITTEN,
            "Rewritten",
        ),
    ],
)
def test_compare(
    case: str,
    service: dict[str, Any],
    trusted: Assignment | None,
    rejected: tuple[Rejected, ...],
    ours: tuple[str, ...],
    event: str | None,
    reason: str,
) -> None:
    fix = compare(service, HELD, trusted, rejected, ours)
    assert fix.event == event, case
    assert fix.reason == reason, case
    if event is not None:
        assert "10.0.0.5 from pool a" in fix.message, case


def test_an_unaccounted_address_is_rewritten_and_counted_once() -> None:
    fix = compare(doc(["10.0.0.5", "10.9.9.9"], MINE), HELD, HELD, (), ())
    assert fix.ingress == ["10.0.0.5"]
    assert [(r.ip, r.reason) for r in fix.rejected] == [("10.9.9.9", "NotAssigned")]
