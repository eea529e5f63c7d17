"""What a LoadBalancer Service asks for, and what it was given.

:class:`ServiceRequest` is read from a plain ``v1 Service`` manifest (the YAML a user or
``ironlb render`` writes, or the object the Kubernetes informer sees).  It carries only
what allocation and announcement need: ports, requested addresses, pool, sharing key,
traffic policy and IP families.  :class:`Assignment` is the allocator's answer and is
what the controller records on the Service (status + annotation), so that a restarted
controller rebuilds exactly the same state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

from ironlb import addresses
from ironlb.errors import Issue
from ironlb.model import ANN_IPS, ANN_POOL, ANN_SHARING, LOAD_BALANCER_CLASS

Protocol = Literal["TCP", "UDP", "SCTP"]
FamilyPolicy = Literal["SingleStack", "PreferDualStack", "RequireDualStack"]
TrafficPolicy = Literal["Cluster", "Local"]


def is_ours(load_balancer_class: str | None, *, claim_classless: bool) -> bool:
    """Is a LoadBalancer Service of this ``spec.loadBalancerClass`` IronLB's to serve?

    Its own class (:data:`ironlb.model.LOAD_BALANCER_CLASS`) always; no class only when the
    installation claims classless Services (``kubernetes.claimClassless``); any other class
    never: it belongs to another load balancer.  The one statement of the rule: the view
    builder, the allocator, validation, the trust check and ``ironlb status`` all ask here.
    """
    return load_balancer_class == LOAD_BALANCER_CLASS or (load_balancer_class is None and claim_classless)


@dataclass(frozen=True, order=True)
class Port:
    port: int
    protocol: Protocol = "TCP"


@dataclass(frozen=True)
class ServiceRequest:
    """A LoadBalancer Service as IronLB sees it."""

    namespace: str
    name: str
    ports: tuple[Port, ...] = ()
    requested_ips: tuple[str, ...] = ()
    pool: str | None = None
    sharing_key: str | None = None
    traffic_policy: TrafficPolicy = "Cluster"
    family_policy: FamilyPolicy = "SingleStack"
    families: tuple[int, ...] = (4,)
    load_balancer_class: str | None = LOAD_BALANCER_CLASS
    selector: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """``namespace/name``: the identity used everywhere (assignments, events, plans)."""
        return f"{self.namespace}/{self.name}"

    def is_ours(self, *, claim_classless: bool) -> bool:
        """Does IronLB serve this Service? (:func:`is_ours` of its class)"""
        return is_ours(self.load_balancer_class, claim_classless=claim_classless)

    @property
    def foreign(self) -> bool:
        """Another load balancer's Service: its class is set and not IronLB's (classless is not foreign)."""
        return not is_ours(self.load_balancer_class, claim_classless=True)

    def wanted_families(self) -> tuple[int, ...]:
        """Families to allocate, in preference order."""
        if self.family_policy == "SingleStack":
            return self.families[:1] or (4,)
        first = self.families[0] if self.families else 4
        return (first, 6 if first == 4 else 4)


@dataclass(frozen=True)
class AssignedIP:
    ip: str
    pool: str

    @property
    def family(self) -> int:
        return addresses.family_of(self.ip)


@dataclass(frozen=True)
class Assignment:
    """Addresses held by one service. Order: the service's family preference."""

    service: str  # namespace/name
    ips: tuple[AssignedIP, ...]
    sharing_key: str | None = None
    ports: tuple[Port, ...] = ()
    traffic_policy: TrafficPolicy = "Cluster"
    selector: Mapping[str, str] = field(default_factory=dict)

    @cached_property
    def addresses(self) -> tuple[str, ...]:
        return tuple(a.ip for a in self.ips)

    @classmethod
    def for_request(cls, request: ServiceRequest, ips: tuple[AssignedIP, ...]) -> Assignment:
        """``ips`` held by ``request``'s service, with the request's sharing terms."""
        return cls(
            service=request.key,
            ips=ips,
            sharing_key=request.sharing_key,
            ports=request.ports,
            traffic_policy=request.traffic_policy,
            selector=dict(request.selector),
        )


_FAMILY = {"IPv4": 4, "IPv6": 6}


def request_from_manifest(doc: Mapping[str, Any]) -> tuple[ServiceRequest | None, list[Issue]]:
    """Read a ``v1 Service`` manifest. Returns (None, []) for non-LoadBalancer services.

    Problems are returned as issues naming the Service, the field and the value.
    """
    meta = doc.get("metadata") or {}
    spec = doc.get("spec") or {}
    name = str(meta.get("name") or "")
    namespace = str(meta.get("namespace") or "default")
    who = f"{namespace}/{name}"
    issues: list[Issue] = []

    def bad(field_: str, value: Any, message: str) -> None:
        issues.append(Issue("Service", who, field_, value, message))

    if not name:
        bad("metadata.name", "", "every Service needs a name")
    if spec.get("type") != "LoadBalancer":
        return None, issues
    ann: Mapping[str, str] = meta.get("annotations") or {}

    ports: list[Port] = []
    for i, p in enumerate(spec.get("ports") or []):
        number, proto = p.get("port"), p.get("protocol", "TCP")
        if not isinstance(number, int) or not 1 <= number <= 65535:
            bad(f"spec.ports[{i}].port", number, "must be a port number 1-65535")
            continue
        if proto not in ("TCP", "UDP", "SCTP"):
            bad(f"spec.ports[{i}].protocol", proto, "must be TCP, UDP or SCTP")
            continue
        ports.append(Port(number, proto))

    requested: list[str] = []
    raw_ips = [s for s in str(ann.get(ANN_IPS, "")).split(",") if s.strip()]
    if spec.get("loadBalancerIP"):
        raw_ips.append(str(spec["loadBalancerIP"]))
    for text in raw_ips:
        try:
            ip = addresses.parse_host(text)
        except ValueError as exc:
            bad(f"metadata.annotations[{ANN_IPS}]", text.strip(), str(exc))
            continue
        if ip not in requested:
            requested.append(ip)

    etp = spec.get("externalTrafficPolicy", "Cluster")
    if etp not in ("Cluster", "Local"):
        bad("spec.externalTrafficPolicy", etp, "must be Cluster or Local")
        etp = "Cluster"
    policy = spec.get("ipFamilyPolicy", "SingleStack")
    if policy not in ("SingleStack", "PreferDualStack", "RequireDualStack"):
        bad("spec.ipFamilyPolicy", policy, "must be SingleStack, PreferDualStack or RequireDualStack")
        policy = "SingleStack"
    families: list[int] = []
    for i, fam in enumerate(spec.get("ipFamilies") or []):
        if fam not in _FAMILY:
            bad(f"spec.ipFamilies[{i}]", fam, "must be IPv4 or IPv6")
        elif _FAMILY[fam] not in families:
            families.append(_FAMILY[fam])
    if not families:
        families = [addresses.family_of(requested[0])] if requested else [4]

    request = ServiceRequest(
        namespace=namespace,
        name=name,
        ports=tuple(sorted(ports)),
        requested_ips=tuple(requested),
        pool=ann.get(ANN_POOL) or None,
        sharing_key=ann.get(ANN_SHARING) or None,
        traffic_policy=etp,
        family_policy=policy,
        families=tuple(families),
        load_balancer_class=spec.get("loadBalancerClass"),
        selector=dict(spec.get("selector") or {}),
        labels=dict(meta.get("labels") or {}),
    )
    return request, issues
