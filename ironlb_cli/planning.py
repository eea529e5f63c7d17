"""The plan's address prediction: live addresses kept, new ones predicted, order-independent.

The controller never moves an address a Service already holds, and it gives new Services
the lowest free address.  A faithful plan therefore starts from what is already held,
in this order of trust:

1. **live** -- what the cluster recorded (``ironlb_cli.livestate``), re-checked against
   the *new* config with the agents' own :class:`~ironlb.ipam.TrustCheck` (an address the
   new config no longer allows is dropped, and the plan says why);
2. **base** -- for a ``--diff``: what the base revision's plan gave the Services that are
   not live (they were there first, so a Service added by the change cannot take their
   address; re-checked the same way);
3. then every remaining Service is allocated by :func:`~ironlb.ipam.allocate_all`, which
   handles held Services first and the rest sorted by key: the order of the stack file's
   list never matters.

So adding a Service never moves another in the plan (given a base or live state, which
is when "another" exists).  Each address is labelled ``live`` (the cluster holds it for
this Service) or ``predicted``.  Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ironlb import addresses
from ironlb.checked import Config
from ironlb.errors import AllocationError
from ironlb.ipam import TrustCheck, allocate_all
from ironlb.service import Assignment

LIVE, PREDICTED = "live", "predicted"


@dataclass(frozen=True)
class Prediction:
    """Every Service's addresses, where each came from, and what could not be kept."""

    assignments: Mapping[str, Assignment]
    errors: Mapping[str, AllocationError]
    #: service -> {address: LIVE | PREDICTED}
    origin: Mapping[str, Mapping[str, str]]
    #: service -> sentences for live addresses the new config no longer allows
    dropped: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


def predict(
    config: Config,
    live: Mapping[str, tuple[str, ...]] | None = None,
    base: Mapping[str, tuple[str, ...]] | None = None,
) -> Prediction:
    """The addresses ``config``'s Services get, holding ``live`` first, then ``base``."""
    live, base = dict(live or {}), dict(base or {})
    requests = {r.key: r for r in config.services}
    check = TrustCheck(config)
    held: list[Assignment] = []
    dropped: dict[str, tuple[str, ...]] = {}
    accepted: dict[str, list[Assignment]] = {}
    for source in (live, base):
        for key in sorted(source):
            request = requests.get(key)
            if request is None or any(a.service == key for a in held):
                continue
            verdict = check.check(request, source[key], accepted)
            if source is live and verdict.rejected:
                dropped[key] = tuple(f"live address {r}; it will be withdrawn" for r in verdict.rejected)
            assignment = verdict.assignment(request)
            if assignment is not None:
                held.append(assignment)
                for ip in assignment.addresses:
                    accepted.setdefault(ip, []).append(assignment)
    assignments, errors = allocate_all(config, existing=held)
    live_ips = {key: {_canonical(ip) for ip in ips} for key, ips in live.items()}
    origin = {
        key: {ip: LIVE if ip in live_ips.get(key, ()) else PREDICTED for ip in a.addresses}
        for key, a in assignments.items()
    }
    return Prediction(assignments, errors, origin, dropped)


def _canonical(text: str) -> str:
    try:
        return str(addresses.parse_ip(text))
    except ValueError:
        return text
