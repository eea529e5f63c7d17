"""A Service's allocation record against the controller's answer: what to rewrite, and why (pure).

The controller writes two records of what it assigned: the annotations
``ironlb.io/allocated-ips`` / ``ip-allocated-from-pool`` (output only: tenants can write
them, so nothing reads them) and ``status.loadBalancer.ingress`` (what the speakers
announce, after the trust check).  :func:`compare` says which of the two differ from the
controller's answer and, when one holds something the controller did not put there, how
to report it:

- status addresses the TrustCheck refused (``view.rejected``): reason ``AddressRejected``,
  with the check's word (``NoPool``, ``OtherTenant``, ``Conflict``...) for the condition;
- status addresses that are none of: the controller's answer, the view's trusted reading,
  an address the view refused, what this controller term itself wrote (``ours``): written
  by someone else after the view was taken (the pass reads the Service later than the
  view), reported as ``AddressRejected`` with the word ``NotAssigned``;
- annotations that are neither the controller's answer nor its previous record (the
  trusted status): ``RecordRewritten`` -- forged, or left by something else.

A record that merely lags (a new answer, an earlier write that failed) is not reported:
it is rewritten with the usual ``Allocated`` Event.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ironlb.agent.kube.writers import allocation_annotations
from ironlb.agent.viewbuild import recorded_ips
from ironlb.ipam import Rejected
from ironlb.model import ANN_ALLOCATED_IPS, ANN_ALLOCATED_POOL
from ironlb.service import Assignment

REJECTED, REWRITTEN = "AddressRejected", "RecordRewritten"


@dataclass(frozen=True)
class Fix:
    """How a Service's record differs from the controller's answer (None fields: leave as is)."""

    annotations: Mapping[str, str | None] | None  # the values to write
    ingress: list[str] | None  # the addresses to write into status
    event: str | None = None  # REJECTED or REWRITTEN when something foreign was found
    reason: str = ""  # the condition's reason: the TrustCheck word, or "Rewritten"
    message: str = ""  # what was found and what it is replaced with
    rejected: tuple[Rejected, ...] = ()

    @property
    def changes(self) -> bool:
        return self.annotations is not None or self.ingress is not None


def annotations_of(doc: Mapping[str, Any]) -> dict[str, str | None]:
    """The two allocation annotations as they stand (None: absent)."""
    ann = (doc.get("metadata") or {}).get("annotations") or {}
    out: dict[str, str | None] = {}
    for key in (ANN_ALLOCATED_IPS, ANN_ALLOCATED_POOL):
        value = ann.get(key)
        out[key] = None if value is None else str(value)
    return out


def describe(held: Assignment | None) -> str:
    if held is None or not held.ips:
        return "no address"
    return ", ".join(f"{a.ip} from pool {a.pool}" for a in held.ips)


def compare(
    doc: Mapping[str, Any],
    held: Assignment | None,
    trusted: Assignment | None,
    rejected: Sequence[Rejected] = (),
    ours: Sequence[str] = (),
) -> Fix:
    """What to write so ``doc`` records ``held``; ``trusted``/``rejected``: the view's reading of it;
    ``ours``: the ingress this controller last wrote for it."""
    have = annotations_of(doc)
    want = allocation_annotations(held)
    ingress = list(recorded_ips(doc))
    wanted_ips = list(held.addresses) if held is not None else []
    fix_ann = None if have == want else want
    fix_ips = None if ingress == wanted_ips else wanted_ips
    known = {*wanted_ips, *(trusted.addresses if trusted is not None else ()), *ours}
    known.update(r.ip for r in rejected)
    rejected = [
        *rejected,
        *(Rejected(ip, "NotAssigned", "was not assigned by IronLB") for ip in ingress if ip not in known),
    ]
    found: list[str] = []
    if rejected:
        found.append(
            "status.loadBalancer.ingress held "
            + "; ".join(f"{r.ip}, which {r.message} ({r.reason})" for r in rejected)
            + ": no node announces it"
        )
    previous = allocation_annotations(trusted)
    foreign = fix_ann is not None and have != previous and any(v is not None for v in have.values())
    if foreign:
        shown = ", ".join(f'{k}="{v}"' for k, v in have.items() if v is not None)
        found.append(f"annotations {shown} are not what IronLB assigned (they are output only, never read)")
    if not found:
        return Fix(fix_ann, fix_ips)
    done = "Rewritten to" if fix_ann is not None or fix_ips is not None else "It keeps"
    return Fix(
        fix_ann,
        fix_ips,
        event=REJECTED if rejected else REWRITTEN,
        reason=rejected[0].reason if rejected else "Rewritten",
        message="; ".join(found) + f". {done} what IronLB assigned: {describe(held)}",
        rejected=tuple(rejected),
    )
